#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "timeutil.h"

/* One formatted line is bounded: peers control some of what we log. */
#define LOG_LINE_MAX 2048
/* Kinds of line (call sites) tracked for the rate limit. */
#define KINDS 128

/* One kind of line: its format string (each call site has its own). */
struct kind {
	const char *fmt;
	const char *module;
	enum log_level level;
	double window;          /* mono_now() at its start */
	unsigned lines;         /* written in this window */
	unsigned long dropped;  /* held back in this window */
};

static struct {
	const char *prog;
	enum log_level level;
	FILE *file;
	bool journal;
	log_hook_fn hook;
	void *hook_ctx;
	enum log_level hook_level;
	bool in_hook;
	char *path;             /* of file, for rotation */
	long long size, max_size; /* bytes in file; rotate past max_size (0: never) */
	unsigned burst;         /* lines of one kind per window (0: no limit) */
	double window;
	struct kind kinds[KINDS];
	char ident[160];        /* "alice@CIC": whose lines these are ("" : none) */
} L = { "chatp2p", LOGL_INFO, NULL, false, NULL, NULL, LOGL_INFO, false, NULL, 0, 0, 0, 10, {{0}}, "" };

static const char *const level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR" };
/* sd-daemon priorities for the journal prefix */
static const char *const level_prio[] = { SD_DEBUG, SD_INFO, SD_WARNING, SD_ERR };

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to our
 * stderr; only if stderr is still that stream does the journal read it. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *progname)
{
	L.prog = progname;
	L.journal = stderr_is_journal();
}

void log_set_ident(const char *ident)
{
	snprintf(L.ident, sizeof L.ident, "%s", ident ? ident : "");
}

static void flush_dropped(void);

void log_close(void)
{
	flush_dropped();
	log_set_file(NULL);
	L.hook = NULL;
}

void log_set_limits(long long max_file_bytes, unsigned burst, double window)
{
	L.max_size = max_file_bytes > 0 ? max_file_bytes : 0;
	L.burst = burst;
	L.window = window > 0 ? window : 10;
}

void log_set_level(enum log_level l)
{
	L.level = l;
}

enum log_level log_get_level(void)
{
	return L.level;
}

const char *log_file_path(void)
{
	return L.file != NULL ? L.path : NULL;
}

int log_set_file(const char *path)
{
	FILE *f = NULL;

	struct stat st;
	char *copy = NULL;

	if (path != NULL) {
		f = fopen(path, "ae");
		if (f == NULL)
			return -1;
		setvbuf(f, NULL, _IOLBF, 0);
		copy = strdup(path);
		if (copy == NULL) {
			fclose(f);
			return -1;
		}
	}
	if (L.file != NULL)
		fclose(L.file);
	free(L.path);
	L.file = f;
	L.path = copy;
	L.size = f != NULL && fstat(fileno(f), &st) == 0 ? (long long)st.st_size : 0;
	return 0;
}

/* The file passed logging.max_size: it becomes FILE.1 (the previous .1 is
 * dropped) and a new FILE starts, so the log never holds more than about
 * twice max_size on disk. */
static void rotate(void)
{
	char old[4096];
	FILE *f;

	if (snprintf(old, sizeof old, "%s.1", L.path) >= (int)sizeof old)
		return;
	fclose(L.file);
	L.file = NULL;
	if (rename(L.path, old) != 0 || (f = fopen(L.path, "ae")) == NULL) {
		/* Cannot rotate: stop writing the file rather than fill the disk. */
		fprintf(stderr, "%s: cannot rotate log file %s: %s; file logging stopped\n", L.prog,
			L.path, strerror(errno));
		return;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	L.file = f;
	L.size = 0;
}

bool log_level_parse(const char *s, enum log_level *out)
{
	for (int i = LOGL_DEBUG; i <= LOGL_ERROR; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = LOGL_WARNING;
		return true;
	}
	return false;
}

const char *log_level_name(enum log_level l)
{
	return (unsigned)l <= LOGL_ERROR ? level_names[l] : "?";
}

bool log_to_journal(void)
{
	return L.journal;
}

void log_set_hook(log_hook_fn fn, void *ctx, enum log_level min_level)
{
	L.hook = fn;
	L.hook_ctx = ctx;
	L.hook_level = min_level;
}

/* Control characters from the network must not forge log lines, nor
 * invisible ones (bidi controls, zero-width characters: PROTOCOL.md §5.3)
 * make one peer's name read as another's: those are written \uXXXX.
 * out holds twice LOG_LINE_MAX (each 3-byte character becomes 6). */
static void sanitize(const char *in, char *out)
{
	const unsigned char *s = (const unsigned char *)in;

	for (; *s; s++) {
		unsigned cp = 0;
		if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80)
			cp = ((unsigned)(s[0] & 0x0f) << 12) | ((unsigned)(s[1] & 0x3f) << 6) |
			     (s[2] & 0x3fu);
		if ((cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
		    (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) ||
		    cp == 0xfeff || cp == 0x2028 || cp == 0x2029) {
			out += sprintf(out, "\\u%04x", cp);
			s += 2;
		} else if (*s < 0x20 || *s == 0x7f) {
			*out++ = '?';
		} else {
			*out++ = (char)*s;
		}
	}
	*out = '\0';
}

static void emit(enum log_level l, const char *module, const char *text)
{
	char ts[ISO8601_LEN];

	if (L.journal) {
		/* The journal stamps time and unit; the priority prefix sets the level. */
		fprintf(stderr, "%s%s [%s] %s\n", level_prio[l], level_names[l], module, text);
	} else {
		iso8601_now(ts, true);
		fprintf(stderr, "%s %s%s%s %s [%s] %s\n", ts, L.prog, L.ident[0] ? " " : "", L.ident,
			level_names[l], module, text);
	}
	if (L.file != NULL) {
		if (L.journal)
			iso8601_now(ts, true);
		/* The node's id on every line: files get copied, merged, shared. */
		int n = fprintf(L.file, "%s %s%s%s [%s] %s\n", ts, L.ident, L.ident[0] ? " " : "",
				level_names[l], module, text);
		L.size += n > 0 ? n : 0;
		if (L.max_size > 0 && L.size >= L.max_size && L.path != NULL)
			rotate();
	}
}

/* "… and 1,234 more like it in the last 10 s" */
static void say_dropped(struct kind *k, double now)
{
	char text[160], num[32];
	unsigned long v = k->dropped;
	int len = 0;

	/* Thousands separators: these counts get large. */
	char digits[24];
	int nd = snprintf(digits, sizeof digits, "%lu", v);
	for (int i = 0; i < nd; i++) {
		num[len++] = digits[i];
		if ((nd - i - 1) % 3 == 0 && i < nd - 1)
			num[len++] = ',';
	}
	num[len] = '\0';
	snprintf(text, sizeof text, "... and %s more like it in the last %.0f s", num,
		 now - k->window < L.window ? L.window : now - k->window);
	emit(k->level, k->module, text);
	k->dropped = 0;
}

static void flush_dropped(void)
{
	double now = mono_now();

	for (int i = 0; i < KINDS; i++)
		if (L.kinds[i].fmt != NULL && L.kinds[i].dropped > 0)
			say_dropped(&L.kinds[i], now);
}

/* May a line of this kind be written now?  Each call site gets `burst`
 * lines per window; past that they are counted and summed up in one line
 * when the next window starts, so a peer that makes us log (refused
 * connections, bad lines) cannot fill the disk or drown the rest. */
static bool allowed(enum log_level l, const char *module, const char *fmt)
{
	size_t h = ((size_t)fmt >> 3) % KINDS;
	struct kind *k = NULL;
	double now;

	if (L.burst == 0)
		return true;
	for (int i = 0; i < KINDS && k == NULL; i++) {
		struct kind *c = &L.kinds[(h + (size_t)i) % KINDS];
		if (c->fmt == fmt || c->fmt == NULL)
			k = c;
	}
	now = mono_now();
	if (k == NULL) /* every slot taken: reuse the home slot */
		k = &L.kinds[h];
	if (k->fmt != fmt) {
		if (k->fmt != NULL && k->dropped > 0)
			say_dropped(k, now);
		k->fmt = fmt;
		k->module = module;
		k->level = l;
		k->window = now;
		k->lines = 0;
		k->dropped = 0;
	}
	if (now - k->window >= L.window) {
		if (k->dropped > 0)
			say_dropped(k, now);
		k->window = now;
		k->lines = 0;
	}
	if (k->lines < L.burst) {
		k->lines++;
		return true;
	}
	k->dropped++;
	return false;
}

void log_vmsg(enum log_level l, const char *module, const char *fmt, va_list ap)
{
	char raw[LOG_LINE_MAX], text[2 * LOG_LINE_MAX];
	bool to_out = l >= L.level;
	bool to_hook = L.hook != NULL && l >= L.hook_level && !L.in_hook;
	int saved = errno;

	if (to_out && !allowed(l, module, fmt))
		to_out = false;
	if (!to_out && !to_hook)
		return;
	vsnprintf(raw, sizeof raw, fmt, ap);
	sanitize(raw, text);
	if (to_out)
		emit(l, module, text);
	if (to_hook) {
		L.in_hook = true;
		L.hook(L.hook_ctx, l, module, text);
		L.in_hook = false;
	}
	errno = saved;
}

void log_msg(enum log_level l, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(l, module, fmt, ap);
	va_end(ap);
}

void fatalx(int status, const char *module, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOGL_ERROR, module, fmt, ap);
	va_end(ap);
	exit(status);
}
