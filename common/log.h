/* Logging: levels DEBUG/INFO/WARNING/ERROR, a module tag on every line
 * ("… INFO [Rendezvous] registered"), to stderr and optionally to a file.
 * When stderr is the journal (JOURNAL_STREAM matches it), lines carry the
 * sd-daemon priority prefix ("<6>") instead of our own timestamp.  The level
 * can change at any time.  A hook lets the control socket stream log lines. */
#ifndef CHATP2P_LOG_H
#define CHATP2P_LOG_H
#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARNING, LOGL_ERROR };

void log_init(const char *progname);
/* Whose lines these are ("alice@CIC"), written on each line of the file
 * and of stderr (not the journal's: it has the unit); NULL or "": none. */
void log_set_ident(const char *ident);
void log_close(void);
void log_set_level(enum log_level l);
enum log_level log_get_level(void);
/* Append to path too (NULL: stop).  0 or -1 with errno. */
int log_set_file(const char *path);
/* The file being appended to, as given to log_set_file, or NULL. */
const char *log_file_path(void);
/* Rotate the file past max_file_bytes (0: never) to FILE.1; at most burst
 * lines of one kind (call site) per window seconds to stderr and the file
 * (0: no limit), the rest summed up in one line.  The hook gets them all. */
void log_set_limits(long long max_file_bytes, unsigned burst, double window);
/* Case-insensitive "debug"/"info"/"warning"/"warn"/"error"; false if none. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
bool log_to_journal(void);

void log_msg(enum log_level l, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level l, const char *module, const char *fmt, va_list ap);

/* Called for every line that passes min_level (set with the hook); the text
 * excludes timestamp and level.  The hook must not log. */
typedef void (*log_hook_fn)(void *ctx, enum log_level l, const char *module, const char *text);
void log_set_hook(log_hook_fn fn, void *ctx, enum log_level min_level);

/* Setup failures and broken invariants only: log and exit(status). */
void fatalx(int status, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define log_debug(mod, ...) log_msg(LOGL_DEBUG, (mod), __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOGL_INFO, (mod), __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOGL_WARNING, (mod), __VA_ARGS__)
#define log_error(mod, ...) log_msg(LOGL_ERROR, (mod), __VA_ARGS__)

#endif
