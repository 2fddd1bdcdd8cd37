#include "fmt.h"

#include <ctype.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>

void fmt_utf8_ctype(void)
{
	const char *cs;

	setlocale(LC_CTYPE, "");
	cs = nl_langinfo(CODESET);
	if (cs == NULL || (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "utf8") != 0))
		setlocale(LC_CTYPE, "C.UTF-8");
}

const char *fmt_duration(double secs, char *buf, size_t len)
{
	static const struct { const char *name; long long size; } units[] = {
		{ "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 },
	};

	if (!(secs >= 0) || !isfinite(secs) || secs > 1e15) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (secs < 10 && secs != floor(secs)) {
		snprintf(buf, len, "%.1fs", secs);
		return buf;
	}
	long long s = (long long)floor(secs);
	for (size_t i = 0; i < 4; i++) {
		if (s < units[i].size && units[i].size > 1)
			continue;
		long long big = s / units[i].size, rest = s % units[i].size;
		if (i == 3 || rest / units[i + 1].size == 0)
			snprintf(buf, len, "%lld%s", big, units[i].name);
		else
			snprintf(buf, len, "%lld%s%lld%s", big, units[i].name, rest / units[i + 1].size,
				 units[i + 1].name);
		return buf;
	}
	snprintf(buf, len, "0s");
	return buf;
}

/* One code point of UTF-8 at s (n bytes used), or -1 with n = 1. */
static long utf8_next(const unsigned char *s, size_t *n)
{
	long cp;
	size_t need;

	if (s[0] < 0x80) {
		*n = 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		need = 1;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		need = 2;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		need = 3;
	} else {
		*n = 1;
		return -1;
	}
	for (size_t i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*n = 1;
			return -1;
		}
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	*n = need + 1;
	return cp;
}

size_t fmt_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0, n;

	while (*p) {
		long cp = utf8_next(p, &n);
		int cw = cp < 0 ? 1 : wcwidth((wchar_t)cp);
		/* Outside a UTF-8 locale wcwidth knows nothing: one column. */
		w += cw < 0 ? 1 : (size_t)cw;
		p += n;
	}
	return w;
}

/* A UTC date and time as seconds since the epoch: both parsers' end. */
static time_t utc_time(long long y, unsigned m, unsigned d, int h, int mi, int s)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	long long days = era * 146097 + (long long)doe - 719468;
	return (time_t)(days * 86400 + h * 3600 + mi * 60 + s);
}

time_t fmt_parse_iso(const char *iso)
{
	int y, mo, d, h, mi, s;

	if (iso == NULL || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6 ||
	    mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return (time_t)-1;
	return utc_time(y, (unsigned)mo, (unsigned)d, h, mi, s);
}

const char *fmt_local_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
		snprintf(buf, len, "-");
	return buf;
}

const char *fmt_local_short(time_t t, char *buf, size_t len)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	/* Month names in English whatever LC_TIME says, as the rest of our output. */
	if (localtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s %02d %02d:%02d:%02d", mon[tm.tm_mon % 12], tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	return buf;
}

size_t fmt_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 64 || lb > 64)
		return max + 1;
	if ((la > lb ? la - lb : lb - la) > max)
		return max + 1;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
			size_t best = d[i - 1][j - 1] + (ca != cb);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb] > max ? max + 1 : d[la][lb];
}

const char *fmt_closest(const char *word, const char *const *cands, size_t n)
{
	size_t limit = strlen(word) / 3, best = (size_t)-1;
	const char *found = NULL;

	if (limit < 1)
		limit = 1;
	if (limit > 3)
		limit = 3;
	for (size_t i = 0; i < n; i++) {
		size_t dist = fmt_distance(word, cands[i], limit);
		if (dist <= limit && dist < best) {
			best = dist;
			found = cands[i];
		}
	}
	return found;
}

/* "10m", "2h", "today", "yesterday", "now", or an ISO date/time with or
 * without a zone (none: local time), as journalctl --since reads them. */
bool fmt_parse_when(const char *s, time_t now, time_t *out)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, used = 0;

	if (s == NULL || *s == '\0')
		return false;
	if (strcmp(s, "now") == 0) {
		*out = now;
		return true;
	}
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		if (localtime_r(&now, &tm) == NULL)
			return false;
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		if (s[0] == 'y')
			tm.tm_mday -= 1;
		tm.tm_isdst = -1;
		*out = mktime(&tm);
		return *out != (time_t)-1;
	}
	/* A duration ago: digits, an optional fraction, one unit. */
	{
		char *end;
		double v = strtod(s, &end);
		double unit = 0;
		if (end != s && isdigit((unsigned char)s[0]) && v >= 0 && isfinite(v) && end[0] &&
		    end[1] == '\0') {
			switch (end[0]) {
			case 's': unit = 1; break;
			case 'm': unit = 60; break;
			case 'h': unit = 3600; break;
			case 'd': unit = 86400; break;
			case 'w': unit = 7 * 86400; break;
			}
			if (unit > 0) {
				*out = now - (time_t)(v * unit);
				return true;
			}
			return false;
		}
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
		return false;
	const char *p = s + used;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
			return false;
		p += 1 + n;
		if (*p == ':') {
			n = 0;
			if (sscanf(p + 1, "%2d%n", &sec, &n) != 1)
				return false;
			p += 1 + n;
			if (*p == '.' || *p == ',') /* fractions dropped */
				for (p++; isdigit((unsigned char)*p); p++)
					;
		}
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	if (*p == '\0') {
		/* No zone: the local time, as a person at this machine means it. */
		tm = (struct tm){ .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
				  .tm_min = mi, .tm_sec = sec, .tm_isdst = -1 };
		*out = mktime(&tm);
		return *out != (time_t)-1;
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om = 0, k = 0;
		int sign = *p == '-' ? -1 : 1;
		if (sscanf(p + 1, "%2d%n", &oh, &k) != 1 || k != 2)
			return false;
		p += 1 + k;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char)*p)) {
			if (sscanf(p, "%2d%n", &om, &k) != 1 || k != 2)
				return false;
			p += k;
		}
		off = sign * (oh * 3600L + om * 60L);
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	*out = utc_time(y, (unsigned)mo, (unsigned)d, h, mi, sec) - (time_t)off;
	return true;
}

const char *fmt_utc_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
	return buf;
}

const char *fmt_ms(double ms, char *buf, size_t len)
{
	char d[32];

	if (!(ms >= 0) || !isfinite(ms))
		snprintf(buf, len, "-");
	else if (ms < 1000)
		snprintf(buf, len, "%.2f ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%.2f s", ms / 1000);
	else
		snprintf(buf, len, "%s", fmt_duration(ms / 1000, d, sizeof d));
	return buf;
}
