#include "timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void iso8601_format(char out[ISO8601_LEN], time_t t, long msec, bool ms)
{
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(out, ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ms)
		snprintf(out + n, ISO8601_LEN - n, ".%03ldZ", msec % 1000);
	else
		snprintf(out + n, ISO8601_LEN - n, "Z");
}

void iso8601_now(char out[ISO8601_LEN], bool ms)
{
	/* Every message carries one: whole seconds are formatted once a
	 * second, not once per message (strftime was 3% of a SEND's cost). */
	static _Thread_local time_t cached_sec = (time_t)-1;
	static _Thread_local char cached[ISO8601_LEN];
	struct timespec ts;

	/* Whole seconds (every ACK carries one): the coarse clock, a read of
	 * the kernel's last tick, is exact enough and cheaper per message. */
	clock_gettime(ms ? CLOCK_REALTIME : CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != cached_sec) {
		iso8601_format(cached, ts.tv_sec, 0, false);
		cached_sec = ts.tv_sec;
	}
	memcpy(out, cached, ISO8601_LEN);
	if (ms) {
		/* "…:SSZ" -> "…:SS.mmmZ" */
		size_t n = strlen(cached) - 1;
		long msec = ts.tv_nsec / 1000000;
		out[n] = '.';
		out[n + 1] = (char)('0' + msec / 100);
		out[n + 2] = (char)('0' + msec / 10 % 10);
		out[n + 3] = (char)('0' + msec % 10);
		out[n + 4] = 'Z';
		out[n + 5] = '\0';
	}
}

/* Fixed-width decimal field; false unless exactly n digits. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

bool iso8601_parse(const char *s, double *epoch)
{
	int Y, M, D, h, m, sec, oh = 0, om = 0;
	double frac = 0;
	const char *p = s;
	struct tm tm = {0};

	if (s == NULL)
		return false;
	if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' ||
	    !digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m) || *p++ != ':' ||
	    !digits(&p, 2, &sec))
		return false;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return false;
	if (*p == '.' || *p == ',') {
		double scale = 0.1;
		p++;
		if (!isdigit((unsigned char)*p))
			return false;
		while (isdigit((unsigned char)*p)) {
			frac += (*p++ - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;
		if (!digits(&p, 2, &oh))
			return false;
		if (*p == ':')
			p++;
		if (*p != '\0' && !digits(&p, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
		oh *= sign;
		om *= sign;
	} /* else naive: UTC assumed */
	if (*p != '\0')
		return false;
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	*epoch = (double)timegm(&tm) + frac - oh * 3600.0 - om * 60.0;
	return true;
}
