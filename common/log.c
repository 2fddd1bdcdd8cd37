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

static struct {
	const char *prog;
	enum log_level level;
	FILE *file;
	bool journal;
	log_hook_fn hook;
	void *hook_ctx;
	enum log_level hook_level;
	bool in_hook;
} L = { "chatp2p", LOGL_INFO, NULL, false, NULL, NULL, LOGL_INFO, false };

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

void log_close(void)
{
	log_set_file(NULL);
	L.hook = NULL;
}

void log_set_level(enum log_level l)
{
	L.level = l;
}

enum log_level log_get_level(void)
{
	return L.level;
}

int log_set_file(const char *path)
{
	FILE *f = NULL;

	if (path != NULL) {
		f = fopen(path, "ae");
		if (f == NULL)
			return -1;
		setvbuf(f, NULL, _IOLBF, 0);
	}
	if (L.file != NULL)
		fclose(L.file);
	L.file = f;
	return 0;
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

/* Control characters from the network must not forge log lines. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void log_vmsg(enum log_level l, const char *module, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX], ts[ISO8601_LEN];
	bool to_out = l >= L.level;
	bool to_hook = L.hook != NULL && l >= L.hook_level && !L.in_hook;
	int saved = errno;

	if (!to_out && !to_hook)
		return;
	vsnprintf(text, sizeof text, fmt, ap);
	sanitize(text);
	if (to_out) {
		if (L.journal) {
			/* The journal stamps time and unit; the priority prefix sets the level. */
			fprintf(stderr, "%s%s [%s] %s\n", level_prio[l], level_names[l], module, text);
		} else {
			iso8601_now(ts, true);
			fprintf(stderr, "%s %s %s [%s] %s\n", ts, L.prog, level_names[l], module, text);
		}
		if (L.file != NULL) {
			if (L.journal)
				iso8601_now(ts, true);
			fprintf(L.file, "%s %s [%s] %s\n", ts, level_names[l], module, text);
		}
	}
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
