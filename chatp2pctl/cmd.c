/* What every command shares: the checks of user input, the request
 * parameters, one call to the daemon and its answer printed, options,
 * text from the line or standard input, peers by name.  The table itself
 * is cmd_table.c; the commands are in cmd_*.c, one file per group. */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctlproto.h"
#include "fmt.h"
#include "output.h"
#include "xmalloc.h"

/* Text read from standard input: a chat payload is at most 32 KiB on the
 * wire; a little more lets the daemon be the one to say "too long". */
#define MAX_STDIN_TEXT (128 * 1024)

const struct command *command_table;

void warnx_(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%schatp2pctl:%s ", err_color(C_ERR), err_color(C_OFF));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- checks ---------------------------------------------------------------- */

bool peer_id_ok(const char *s)
{
	const char *at = strchr(s, '@');

	return at && at != s && at[1] && !strchr(at + 1, '@') && !strpbrk(s, " \t\r\n");
}

/* The rule of every PEER operand; what it names is resolve_peer's part. */
bool peer_arg_ok(const char *s)
{
	return peer_id_ok(s) || (s[0] && !strpbrk(s, "@ \t\r\n"));
}

bool target_ok(const char *s)
{
	return strcmp(s, "*") == 0 || (s[0] == '#' && s[1] && !strpbrk(s, " \t\r\n"));
}

bool level_ok(const char *s)
{
	static const char *const levels[] = { "debug", "info", "warning", "warn", "error" };

	for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
		if (strcasecmp(s, levels[i]) == 0)
			return true;
	return false;
}

bool event_class_ok(const char *s)
{
	static const char *const classes[] = { "message", "ack", "peer", "registration", "log", "all" };

	for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
		if (strcmp(s, classes[i]) == 0)
			return true;
	return false;
}

bool when_arg(const char *cmd, const char *opt, const char *val, time_t *out)
{
	if (fmt_parse_when(val, time(NULL), out))
		return true;
	usage_error(cmd, "%s takes a time: 10m, 2h, 1d (ago), today, yesterday, or "
		    "2026-05-01[ 12:00[:00]][Z|+02:00] (no zone: local time), not '%s'", opt, val);
	return false;
}

/* ---- parameters ------------------------------------------------------------ */

/* Close the map, parse what was generated: ctl_request takes a tree.  NULL
 * if a string was not valid UTF-8 (jg_str refused it). */
jval params_end(yajl_gen g, bool ok)
{
	struct buf b = BUF_INIT;
	char err[64];
	jval v = NULL;

	jg_end_map(g);
	if (ok && jg_finish(g, &b) == 0)
		v = json_parse(b.data, b.len - 1, err, sizeof err);
	buf_free(&b);
	jg_free(g);
	return v;
}

bool kstr(yajl_gen g, const char *k, const char *v)
{
	jg_str(g, k);
	if (jg_str(g, v) == 0)
		return true;
	jg_null(g);
	return false;
}

/* A send, now (require_ack) or queued (a deadline when > 0): one map, the
 * members in the same order either way. */
static jval send_params(const char *to, const char *text, bool queue, bool require_ack,
			double deadline, const char *msg_id)
{
	yajl_gen g = jg_new();
	bool ok;

	jg_map(g);
	ok = kstr(g, "to", to);
	ok = kstr(g, "text", text) && ok;
	if (queue)
		JG_KBOOL(g, "queue", true);
	else
		JG_KBOOL(g, "require_ack", require_ack);
	if (msg_id)
		JG_KSTR(g, "msg_id", msg_id);
	if (deadline > 0) {
		jg_str(g, "deadline");
		jg_double(g, deadline, 3);
	}
	return params_end(g, ok);
}

jval params_send(const char *to, const char *text, bool require_ack, const char *msg_id)
{
	return send_params(to, text, false, require_ack, 0, msg_id);
}

jval params_send_queued(const char *to, const char *text, double deadline, const char *msg_id)
{
	return send_params(to, text, true, true, deadline, msg_id);
}

jval params_pub(const char *to, const char *text)
{
	yajl_gen g = jg_new();
	bool ok;

	jg_map(g);
	ok = kstr(g, "to", to);
	ok = kstr(g, "text", text) && ok;
	return params_end(g, ok);
}

jval params_kv(const char *key, const char *value)
{
	yajl_gen g = jg_new();
	bool ok = true;

	jg_map(g);
	if (value)
		ok = kstr(g, key, value);
	return params_end(g, ok);
}

/* ---- plumbing ------------------------------------------------------------------ */

int usage_error(const char *cmd, const char *fmt, ...)
{
	const struct command *c = command_find(cmd);
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%schatp2pctl:%s %s: ", err_color(C_ERR), err_color(C_OFF), cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c)
		fprintf(stderr, " (usage: chatp2pctl %s%s%s)", c->name, c->usage[0] ? " " : "",
			c->usage);
	fputc('\n', stderr);
	return EX_USAGE;
}

int open_or_report(struct ctl_client *c, const struct opts *o)
{
	int rc = ctl_open(c, o->socket, o->timeout);

	if (rc != EX_OK) {
		warnx_("%s", c->err);
		ctl_close(c);
	}
	return rc;
}

int client_call(struct ctl_client *c, const struct opts *o, const char *what, const char *method,
		jval params, jval *reply)
{
	char msg[600];
	int rc;

	*reply = NULL;
	if ((rc = ctl_call(c, method, params, o->timeout, reply)) != EX_OK) {
		warnx_("%s", c->err);
	} else if ((rc = ctl_reply_status(*reply, msg, sizeof msg)) != EX_OK) {
		warnx_("%s: %s", what, msg);
	}
	if (rc != EX_OK) {
		json_free(*reply);
		*reply = NULL;
	}
	return rc;
}

/* Connect, ask, wait: EX_OK with the answer in *reply (a result), or the
 * failure reported on stderr and its exit status. */
int one_call(const struct opts *o, const char *what, const char *method, jval params,
		    jval *reply)
{
	struct ctl_client c;
	int rc;

	*reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	rc = client_call(&c, o, what, method, params, reply);
	ctl_close(&c);
	return rc;
}

volatile sig_atomic_t follow_stop;

static void on_follow_stop(int sig)
{
	follow_stop = sig;
}

/* watch, recv, inbox -f, history -f: one loop, so they end alike. */
int follow_events(const struct opts *o, struct ctl_client *c, jval params, double deadline,
		  int hup_fd)
{
	struct sigaction sa = { .sa_handler = on_follow_stop };
	jval reply = NULL;
	int rc;

	follow_stop = 0; /* the shell may run them again */
	rc = client_call(c, o, "subscribe", "subscribe", params, &reply);
	json_free(params);
	if (rc != EX_OK)
		return rc;
	json_free(reply);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Events already queued behind the answer are dispatched first. */
	double left = deadline > 0 ? deadline - ctl_now() : 0;
	rc = deadline > 0 && left <= 0 ? EX_TIMEOUT : ctl_run(c, NULL, left, &follow_stop, hup_fd);
	if (follow_stop)
		return EX_OK;
	if (rc == EX_TIMEOUT)
		return rc;
	/* The daemon went away (stopped): nothing left to follow. */
	warnx_("%s", c->err);
	return c->eof ? EX_UNREACHABLE : rc;
}

/* The common shape: one request, the result printed one way or the other.
 * Takes params. */
int simple(const struct opts *o, const char *method, jval params,
		  void (*human)(FILE *f, jval result))
{
	jval reply;
	int rc = one_call(o, method, method, params, &reply);

	json_free(params);
	if (rc != EX_OK)
		return rc;
	if (o->json)
		print_json(stdout, ctl_result(reply), false);
	else
		human(stdout, ctl_result(reply));
	json_free(reply);
	return EX_OK;
}

/* getopt_long over a command's own argv: options anywhere, as the global
 * ones; "--" ends them, so text starting with '-' goes after it.  Returns
 * the option, -1 at the end, '?' after reporting a usage error. */
const char *option_suggest(const char *typed, const struct option *longopts)
{
	/* The global long options (cmdline.c's table), valid after any command. */
	static const char *const globals[] = { "socket", "json", "timeout", "output", "no-legend",
					       "sort", "time", "color", "version", "help" };
	static char out[64];
	const char *cands[64];
	size_t n = 0;
	const char *name = typed, *eq;
	char word[64];

	while (*name == '-')
		name++;
	eq = strchr(name, '=');
	snprintf(word, sizeof word, "%.*s", eq ? (int)(eq - name) : (int)strlen(name), name);
	for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
		cands[n++] = globals[i];
	for (const struct option *lo = longopts; lo && lo->name && n < 64; lo++)
		cands[n++] = lo->name;
	const char *near = word[0] ? fmt_closest(word, cands, n) : NULL;
	if (near == NULL)
		return NULL;
	snprintf(out, sizeof out, "--%s", near);
	return out;
}

int cmd_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	int ch;

	opterr = 0;
	ch = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (ch == '?' || ch == ':') {
		const char *bad = argv[optind - 1];
		const char *near = strncmp(bad, "--", 2) == 0 ? option_suggest(bad, longopts) : NULL;
		if (near)
			usage_error(argv[0], "bad option '%s'; did you mean '%s'?", bad, near);
		else
			usage_error(argv[0], "bad option '%s' (text that starts with '-' goes after --)",
				    bad);
	}
	return ch == ':' ? '?' : ch;
}

void reset_getopt(void)
{
	optind = 0; /* glibc: full re-initialisation for a new argv */
}

/* TEXT… joined by spaces, or standard input when there is none or it is
 * "-" (one trailing newline dropped).  NULL after reporting. */
char *text_arg(const char *cmd, int argc, char **argv)
{
	struct buf b = BUF_INIT;

	if (argc > 0 && !(argc == 1 && strcmp(argv[0], "-") == 0)) {
		for (int i = 0; i < argc; i++) {
			if (i)
				buf_append(&b, " ", 1);
			buf_puts(&b, argv[i]);
		}
		/* The same rule as an empty standard input: nothing to send. */
		if (b.len == 0) {
			usage_error(cmd, "nothing to send (empty text)");
			buf_free(&b);
			return NULL;
		}
		return buf_cstr(&b);
	}
	if (isatty(STDIN_FILENO)) {
		fflush(stdout);
		fputs("chatp2pctl: reading the message from standard input (Ctrl-D to send)\n", stderr);
	}
	for (;;) {
		buf_reserve(&b, 4096);
		ssize_t n = read(STDIN_FILENO, b.data + b.len, b.cap - b.len);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			usage_error(cmd, "cannot read the text from standard input: %s", strerror(errno));
			buf_free(&b);
			return NULL;
		}
		b.len += (size_t)n;
		if (b.len > MAX_STDIN_TEXT) {
			usage_error(cmd, "the text on standard input is longer than %d bytes", MAX_STDIN_TEXT);
			buf_free(&b);
			return NULL;
		}
	}
	if (b.len > 0 && b.data[b.len - 1] == '\n')
		b.len--;
	if (b.len > 0 && b.data[b.len - 1] == '\r')
		b.len--;
	if (b.len == 0) {
		usage_error(cmd, "nothing to send (empty text on standard input)");
		buf_free(&b);
		return NULL;
	}
	if (memchr(b.data, '\0', b.len)) {
		usage_error(cmd, "the text on standard input contains a NUL byte");
		buf_free(&b);
		return NULL;
	}
	return buf_cstr(&b);
}

/* For commands without options: "--" (kept by main for getopt) is
 * dropped, once; the rest are operands. */
int strip_dashdash(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof *argv);
			return argc - 1;
		}
	return argc;
}

int no_args(int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	return argc > 1 ? usage_error(argv[0], "unexpected argument '%s'", argv[1]) : EX_OK;
}

/* ---- peers by name ------------------------------------------------------------- */

void suggest_peers(jval peers_result, const char *typed, char *buf, size_t len)
{
	jval list = json_get(peers_result, "peers");
	const char *at = strchr(typed, '@');
	char name[256];
	size_t used = 0, found = 0;

	snprintf(name, sizeof name, "%.*s", at ? (int)(at - typed) : (int)strlen(typed), typed);
	buf[0] = '\0';
	for (size_t i = 0; i < json_arr_len(list) && found < 3; i++) {
		const char *id = json_get_str(json_arr_at(list, i), "peer_id");
		if (id == NULL)
			continue;
		const char *pat = strchr(id, '@');
		char pname[256];
		snprintf(pname, sizeof pname, "%.*s", pat ? (int)(pat - id) : (int)strlen(id), id);
		size_t lim = strlen(name) / 3 < 1 ? 1 : strlen(name) / 3 > 3 ? 3 : strlen(name) / 3;
		/* Close in name, or the same name elsewhere, or close as a whole. */
		if (fmt_distance(name, pname, lim) <= lim || fmt_distance(typed, id, lim) <= lim) {
			if (used < len)
				used += (size_t)snprintf(buf + used, len - used, "%s%s",
							 found ? ", " : "did you mean ", id);
			found++;
		}
	}
	if (found && used < len)
		snprintf(buf + used, len - used, "?");
}

/* After the daemon said unknown_peer for id: why, into buf.  true when id
 * is this node itself (a message to ourselves goes nowhere). */
bool unknown_peer_hint(struct ctl_client *c, double timeout, const char *id, char *buf,
			      size_t len)
{
	jval pr = NULL, vr = NULL;
	bool self = false;

	buf[0] = '\0';
	if (ctl_call(c, "version", NULL, timeout, &vr) == EX_OK) {
		const char *me = json_get_str(ctl_result(vr), "node");
		if (me && strcmp(me, id) == 0) {
			snprintf(buf, len, "%s is this node: a message to ourselves goes nowhere", id);
			self = true;
		}
	}
	if (!self && ctl_call(c, "peers", NULL, timeout, &pr) == EX_OK)
		suggest_peers(ctl_result(pr), id, buf, len);
	json_free(pr);
	json_free(vr);
	return self;
}

int resolve_peer(struct ctl_client *c, double timeout, const char *cmd, const char *typed,
		 char *out, size_t outlen)
{
	jval pr = NULL, vr = NULL;
	const char *self = NULL;
	int rc;

	/* A full id goes as it is: one request, as before (scripts). */
	if (strchr(typed, '@')) {
		snprintf(out, outlen, "%s", typed);
		return EX_OK;
	}
	if ((rc = ctl_call(c, "version", NULL, timeout, &vr)) != EX_OK ||
	    (rc = ctl_call(c, "peers", NULL, timeout, &pr)) != EX_OK) {
		warnx_("%s", c->err);
		json_free(vr);
		return rc;
	}
	self = json_get_str(ctl_result(vr), "node");
	size_t tlen = strlen(typed);
	if (self && strncasecmp(self, typed, tlen) == 0 && self[tlen] == '@') {
		rc = usage_error(cmd, "%s is this node: a message to ourselves goes nowhere", self);
		goto done;
	}
	jval list = json_get(ctl_result(pr), "peers");
	struct buf cands = BUF_INIT;
	size_t n = 0;
	for (size_t i = 0; i < json_arr_len(list); i++) {
		const char *id = json_get_str(json_arr_at(list, i), "peer_id");
		const char *pat = id ? strchr(id, '@') : NULL;
		if (pat && (size_t)(pat - id) == tlen && strncasecmp(id, typed, tlen) == 0) {
			buf_printf(&cands, "%s%s", n ? ", " : "", id);
			if (n++ == 0)
				snprintf(out, outlen, "%s", id);
		}
	}
	if (n == 1) {
		rc = EX_OK;
	} else if (n > 1) {
		buf_cstr(&cands);
		rc = usage_error(cmd, "'%s' is ambiguous: %s", typed, cands.data);
	} else {
		char hint[512];
		suggest_peers(ctl_result(pr), typed, hint, sizeof hint);
		warnx_("%s: unknown peer '%s'%s%s", cmd, typed, hint[0] ? "; " : "", hint);
		rc = EX_TIMEOUT; /* as the daemon's unknown_peer (exit status table) */
	}
	buf_free(&cands);
done:
	json_free(pr);
	json_free(vr);
	return rc;
}

/* "90", "90s", "10m", "2h", "1d": seconds, or -1. */
double parse_duration(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0) || !isfinite(v))
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		return v;
	if (strcmp(end, "m") == 0)
		return v * 60;
	if (strcmp(end, "h") == 0)
		return v * 3600;
	if (strcmp(end, "d") == 0)
		return v * 86400;
	return -1;
}

/* With --json, a failed send prints its error object on standard output
 * too: a script keeps the msg_id to match a later late ACK event. */
void print_error_json(jval error)
{
	print_json(stdout, error, false);
}

void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *jstr_or(jval obj, const char *key, const char *dflt)
{
	const char *v = json_get_str(obj, key);

	return v ? v : dflt;
}

long long jint_or(jval obj, const char *key, long long dflt)
{
	long long v;

	return json_int(json_get(obj, key), &v) ? v : dflt;
}

/* ---- the table ------------------------------------------------------------------ */

const struct command *command_find(const char *name)
{
	for (const struct command *c = command_table; c && c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const char *command_suggest(const char *name)
{
	const char *names[64];
	size_t n = 0;

	for (const struct command *c = command_table; c && c->name && n < 64; c++)
		names[n++] = c->name;
	return fmt_closest(name, names, n);
}
