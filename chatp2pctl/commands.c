/* One function per command, gathered in the table at the end.  A command
 * checks its arguments (exit 3), asks the daemon, prints the answer for a
 * person or, with --json, exactly the result object for a script. */
#include "commands.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
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
#include "msgid.h"
#include "output.h"
#include "version.h"
#include "xmalloc.h"

/* Text read from standard input: a chat payload is at most 32 KiB on the
 * wire; a little more lets the daemon be the one to say "too long". */
#define MAX_STDIN_TEXT (128 * 1024)

void warnx_(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("chatp2pctl: ", stderr);
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

/* ---- parameters ------------------------------------------------------------ */

/* Close the map, parse what was generated: ctl_request takes a tree.  NULL
 * if a string was not valid UTF-8 (jg_str refused it). */
static jval params_end(yajl_gen g, bool ok)
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

static bool kstr(yajl_gen g, const char *k, const char *v)
{
	jg_str(g, k);
	if (jg_str(g, v) == 0)
		return true;
	jg_null(g);
	return false;
}

jval params_send_id(const char *to, const char *text, bool require_ack, const char *msg_id)
{
	yajl_gen g = jg_new();
	bool ok;

	jg_map(g);
	ok = kstr(g, "to", to);
	ok = kstr(g, "text", text) && ok;
	JG_KBOOL(g, "require_ack", require_ack);
	if (msg_id)
		JG_KSTR(g, "msg_id", msg_id);
	return params_end(g, ok);
}

jval params_send_queued(const char *to, const char *text, double deadline)
{
	yajl_gen g = jg_new();
	bool ok;

	jg_map(g);
	ok = kstr(g, "to", to);
	ok = kstr(g, "text", text) && ok;
	JG_KBOOL(g, "queue", true);
	if (deadline > 0) {
		jg_str(g, "deadline");
		jg_double(g, deadline, 3);
	}
	return params_end(g, ok);
}

jval params_send(const char *to, const char *text, bool require_ack)
{
	return params_send_id(to, text, require_ack, NULL);
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

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
	const struct command *c = command_find(cmd);
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "chatp2pctl: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c)
		fprintf(stderr, " (usage: chatp2pctl %s%s%s)", c->name, c->synopsis[0] ? " " : "",
			c->synopsis);
	fputc('\n', stderr);
	return EX_USAGE;
}

static int open_or_report(struct ctl_client *c, const struct opts *o)
{
	int rc = ctl_open(c, o->socket, o->timeout);

	if (rc != EX_OK) {
		warnx_("%s", c->err);
		ctl_close(c);
	}
	return rc;
}

/* Connect, ask, wait: EX_OK with the answer in *reply (a result), or the
 * failure reported on stderr and its exit status. */
static int one_call(const struct opts *o, const char *what, const char *method, jval params,
		    jval *reply)
{
	struct ctl_client c;
	char msg[600];
	int rc;

	*reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	rc = ctl_call(&c, method, params, o->timeout, reply);
	if (rc != EX_OK)
		warnx_("%s", c.err);
	ctl_close(&c);
	if (rc != EX_OK)
		return rc;
	if ((rc = ctl_reply_status(*reply, msg, sizeof msg)) != EX_OK) {
		warnx_("%s: %s", what, msg);
		json_free(*reply);
		*reply = NULL;
	}
	return rc;
}

/* The common shape: one request, the result printed one way or the other.
 * Takes params. */
static int simple(const struct opts *o, const char *method, jval params,
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
static int cmd_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	int ch;

	opterr = 0;
	ch = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (ch == '?' || ch == ':')
		usage_error(argv[0], "bad option '%s' (text that starts with '-' goes after --)",
			    argv[optind - 1]);
	return ch == ':' ? '?' : ch;
}

static void reset_getopt(void)
{
	optind = 0; /* glibc: full re-initialisation for a new argv */
}

/* TEXT… joined by spaces, or standard input when there is none or it is
 * "-" (one trailing newline dropped).  NULL after reporting. */
static char *text_arg(const char *cmd, int argc, char **argv)
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
static int strip_dashdash(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof *argv);
			return argc - 1;
		}
	return argc;
}

static int no_args(int argc, char **argv)
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
static bool unknown_peer_hint(struct ctl_client *c, double timeout, const char *id, char *buf,
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

/* ---- the commands -------------------------------------------------------------- */

static int c_status(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "status", NULL, out_status);
}

static int c_version(const struct opts *o, int argc, char **argv)
{
	jval reply;
	int rc = no_args(argc, argv);

	if (rc == EX_OK)
		rc = one_call(o, "version", "version", NULL, &reply);
	if (rc != EX_OK)
		return rc;
	jval r = ctl_result(reply);
	long long proto = 0;
	json_int(json_get(r, "protocol"), &proto);
	if (o->json) {
		print_json(stdout, r, false);
	} else {
		printf("chatp2pd %s (control protocol %lld), node %s\n",
		       json_get_str(r, "version") ? json_get_str(r, "version") : "?", proto,
		       json_get_str(r, "node") ? json_get_str(r, "node") : "?");
		printf("chatp2pctl %s (control protocol %d)\n", CHATP2P_VERSION, CTL_PROTO_VERSION);
	}
	if (proto < CTL_PROTO_VERSION)
		warnx_("the daemon speaks control protocol %lld, older than ours (%d): "
		       "some commands may be unknown to it", proto, CTL_PROTO_VERSION);
	json_free(reply);
	return EX_OK;
}

static int c_peers(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "discover", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	bool discover = false;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "d", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		discover = true;
	}
	if (argc - optind > 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *filter = optind < argc ? argv[optind] : NULL;
	if (filter && !target_ok(filter))
		return usage_error(argv[0], "filter must be '*' or '#namespace', not '%s'", filter);

	yajl_gen g = jg_new();
	jg_map(g);
	bool ok = filter ? kstr(g, "filter", filter) : true;
	if (discover)
		JG_KBOOL(g, "discover", true);
	jval params = params_end(g, ok);
	if (params == NULL)
		return usage_error(argv[0], "filter is not valid UTF-8");
	return simple(o, "peers", params, out_peers);
}

static int c_conn(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "conn", NULL, out_conn);
}

static int c_rtt(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "rtt", NULL, out_rtt);
}

/* "90", "90s", "10m", "2h", "1d": seconds, or -1. */
static double parse_duration(const char *s)
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
static void print_error_json(jval error)
{
	print_json(stdout, error, false);
}

static int c_send(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "no-ack", no_argument, NULL, 'n' },
		{ "queue", no_argument, NULL, 'q' },
		{ "deadline", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	bool ack = true, queue = false;
	double deadline = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "nqd:", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'q') {
			queue = true;
		} else if (ch == 'd') {
			if ((deadline = parse_duration(optarg)) < 0 || deadline > 30 * 86400.0)
				return usage_error(argv[0], "--deadline needs a duration up to 30d "
						   "(90, 90s, 10m, 2h, 1d), not '%s'", optarg);
			queue = true;
		} else {
			ack = false;
		}
	}
	if (queue && !ack)
		return usage_error(argv[0], "--queue waits for an ACK: it cannot go with --no-ack");
	if (optind >= argc)
		return usage_error(argv[0], "missing PEER");
	const char *typed = argv[optind];
	if (!peer_id_ok(typed) && (typed[0] == '\0' || strpbrk(typed, "@ \t\r\n")))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);
	char *text = text_arg(argv[0], argc - optind - 1, argv + optind + 1);
	if (text == NULL)
		return EX_USAGE;

	struct ctl_client c;
	char to[300], msg_id[MSGID_LEN], msg[600];
	jval reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		free(text);
		return rc;
	}
	if ((rc = resolve_peer(&c, o->timeout, argv[0], typed, to, sizeof to)) != EX_OK) {
		free(text);
		ctl_close(&c);
		return rc;
	}
	/* Our own msg_id: if we stop waiting first, we can still name it. */
	msgid_new(msg_id);
	jval params = queue ? params_send_queued(to, text, deadline) : params_send_id(to, text, ack, msg_id);
	free(text);
	if (params == NULL) {
		ctl_close(&c);
		return usage_error(argv[0], "the text is not valid UTF-8");
	}
	/* A queued send answers when it is delivered or expires: wait for
	 * that (the deadline, default storage.queue_deadline) unless told. */
	rc = ctl_call(&c, "send", params, queue && o->timeout == DEFAULT_TIMEOUT ? 0 : o->timeout, &reply);
	json_free(params);
	if (rc == EX_TIMEOUT) {
		warnx_("no ACK from %s for msg_id %s within %g s (-t); the daemon keeps waiting: "
		       "an 'ack' event with late: true would mean it arrived", to, msg_id, o->timeout);
		if (o->json)
			printf("{\"code\":%d,\"message\":\"client timeout\",\"data\":{\"reason\":"
			       "\"client_timeout\",\"peer_id\":\"%s\",\"msg_id\":\"%s\"}}\n",
			       CTL_E_DELIVERY, to, msg_id);
		ctl_close(&c);
		return EX_TIMEOUT;
	}
	if (rc != EX_OK) {
		warnx_("%s", c.err);
		ctl_close(&c);
		return rc;
	}
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
		char hint[512] = "";
		if (reason && strcmp(reason, "unknown_peer") == 0 &&
		    unknown_peer_hint(&c, o->timeout, to, hint, sizeof hint)) {
			warnx_("%s: %s", argv[0], hint);
			rc = EX_USAGE;
		} else {
			warnx_("%s: %s%s%s", to, msg, hint[0] ? "; " : "", hint);
		}
		if (o->json)
			print_error_json(json_get(reply, "error"));
		json_free(reply);
		ctl_close(&c);
		return rc;
	}
	ctl_close(&c);
	jval r = ctl_result(reply);
	const char *status = json_get_str(r, "status");
	/* Exit 0 promises delivery: only an answer that says so keeps it. */
	if (status == NULL || strcmp(status, ack ? "acked" : "sent") != 0) {
		fprintf(stderr, "chatp2pctl: protocol error: send answered without status \"%s\"\n",
			ack ? "acked" : "sent");
		json_free(reply);
		return EX_PROTO;
	}
	if (o->json) {
		print_json(stdout, r, false);
	} else {
		char ms[32];
		if (ack)
			printf("delivered to %s (%s ms)\n", to, fmt_num(r, "rtt_ms", 2, ms, sizeof ms));
		else
			printf("sent to %s (no ACK asked for)\n", to);
	}
	json_free(reply);
	return EX_OK;
}

static void out_pub(FILE *f, jval r)
{
	long long n = 0;

	json_int(json_get(r, "reached"), &n);
	fprintf(f, "published to %lld peer%s\n", n, n == 1 ? "" : "s");
}

static int c_pub(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc < 2)
		return usage_error(argv[0], "missing '*' or '#namespace'");
	if (!target_ok(argv[1]))
		return usage_error(argv[0], "target must be '*' or '#namespace', not '%s'", argv[1]);
	const char *target = argv[1];
	char *text = text_arg(argv[0], argc - 2, argv + 2);
	if (text == NULL)
		return EX_USAGE;
	jval params = params_pub(target, text), reply;
	free(text);
	if (params == NULL)
		return usage_error(argv[0], "the text is not valid UTF-8");
	int rc = one_call(o, "pub", "pub", params, &reply);
	json_free(params);
	if (rc != EX_OK)
		return rc;
	jval r = ctl_result(reply);
	long long n = 0;
	json_int(json_get(r, "reached"), &n);
	if (o->json)
		print_json(stdout, r, false);
	else if (n > 0)
		out_pub(stdout, r);
	json_free(reply);
	/* Reaching nobody is no success (the shell says so too). */
	if (n == 0) {
		if (strcmp(target, "*") == 0)
			warnx_("pub: nobody received it: no peer is connected");
		else
			warnx_("pub: nobody received it: no connected peer in %s", target);
		return EX_TIMEOUT;
	}
	return EX_OK;
}

static int c_reconnect(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	int i = 1;
	char peer[300];
	struct ctl_client c;
	jval reply = NULL;
	char msg[600];
	int rc;

	if (argc > i + 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[i + 1]);
	const char *typed = argc > i ? argv[i] : NULL;
	if (typed && !peer_id_ok(typed) && (typed[0] == '\0' || strpbrk(typed, "@ \t\r\n")))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if (typed && (rc = resolve_peer(&c, o->timeout, argv[0], typed, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	jval params = params_kv("peer", typed ? peer : NULL);
	if (params == NULL) {
		ctl_close(&c);
		return usage_error(argv[0], "the peer id is not valid UTF-8");
	}
	rc = ctl_call(&c, "reconnect", params, o->timeout, &reply);
	json_free(params);
	if (rc != EX_OK) {
		warnx_("%s", c.err);
	} else if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		char hint[512] = "";
		const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
		if (typed && reason && strcmp(reason, "unknown_peer") == 0 &&
		    unknown_peer_hint(&c, o->timeout, peer, hint, sizeof hint)) {
			warnx_("reconnect: %s", hint);
			rc = EX_USAGE;
		} else {
			warnx_("reconnect: %s%s%s", msg, hint[0] ? "; " : "", hint);
		}
	} else if (o->json) {
		print_json(stdout, ctl_result(reply), false);
	} else {
		out_reconnect(stdout, ctl_result(reply));
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

static void out_log(FILE *f, jval r)
{
	const char *prev = json_get_str(r, "previous");

	if (prev)
		fprintf(f, "log level %s (was %s)\n", json_get_str(r, "level"), prev);
	else
		fprintf(f, "%s\n", json_get_str(r, "level") ? json_get_str(r, "level") : "?");
}

static int c_log(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc > 2)
		return usage_error(argv[0], "unexpected argument '%s'", argv[2]);
	if (argc == 1)
		return simple(o, "log.get", NULL, out_log);
	if (!level_ok(argv[1]))
		return usage_error(argv[0], "level must be DEBUG, INFO, WARNING or ERROR, not '%s'", argv[1]);
	return simple(o, "log.set", params_kv("level", argv[1]), out_log);
}

static void out_discover(FILE *f, jval r)
{
	out_rendezvous(f, "discover", r);
}

static void out_register(FILE *f, jval r)
{
	out_rendezvous(f, "registered", r);
}

static void out_unregister(FILE *f, jval r)
{
	out_rendezvous(f, "unregistered", r);
}

static int c_discover(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "discover", NULL, out_discover);
}

static int c_register(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "register", NULL, out_register);
}

static int c_unregister(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "unregister", NULL, out_unregister);
}

static void out_reload(FILE *f, jval r)
{
	jval refused = json_get(r, "refused");

	fputs("configuration reloaded\n", f);
	if (json_arr_len(refused) > 0) {
		fputs("unchanged until a restart:", f);
		for (size_t i = 0; i < json_arr_len(refused); i++) {
			const char *key = json_str(json_arr_at(refused, i));
			fprintf(f, "%s %s", i ? "," : "", key ? key : "?");
		}
		fputc('\n', f);
	}
}

static int c_reload(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "reload", NULL, out_reload);
}

/* ---- watch ---------------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	stop_flag = sig;
}

struct watch {
	bool json;
	bool time_set;       /* --time: relative or ISO; else journalctl's local time */
	bool out_failed;
};

/* Every human line starts with the event's time, in the local zone (like
 * journalctl): a replay (--since) shows when things happened. */
static void watch_stamp(const struct watch *w, jval note)
{
	const char *at = json_get_str(json_get(note, "params"), "at");
	time_t t = fmt_parse_iso(at);
	char buf[64];

	if (t == (time_t)-1)
		t = time(NULL);
	if (w->time_set && out_style.time == TIME_RELATIVE) {
		double age = difftime(time(NULL), t);
		char d[32];
		snprintf(buf, sizeof buf, "%s ago", fmt_duration(age < 0 ? 0 : age, d, sizeof d));
	} else if (w->time_set) {
		fmt_local_iso(t, buf, sizeof buf);
	} else {
		fmt_local_short(t, buf, sizeof buf);
	}
	fprintf(stdout, "%s ", buf);
}

static void on_watch_note(void *ctx, jval note)
{
	struct watch *w = ctx;
	const char *m = json_get_str(note, "method");

	if (m == NULL || (strcmp(m, "event") != 0 && strcmp(m, "lagged") != 0))
		return;
	if (w->json) {
		out_event_json(stdout, note);
	} else {
		watch_stamp(w, note);
		out_event(stdout, note);
	}
	/* Each event is a line someone is waiting for (| jq, | grep). */
	if (fflush(stdout) != 0) {
		w->out_failed = true; /* the reader is gone: so is our purpose */
		stop_flag = 1;
	}
}

/* ctl_run for watch, which also ends when its reader goes away: standard
 * output is polled for POLLHUP/POLLERR (a pipe whose reader closed), so
 * "watch | head -1" ends at once, not at the next event. */
static int watch_run(struct ctl_client *c, volatile sig_atomic_t *stop)
{
	sigset_t block, orig;
	int rc = EX_OK;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	while (c->status == EX_OK && !*stop) {
		struct pollfd pfd[2] = {
			{ c->fd, ctl_poll_events(c), 0 },
			{ STDOUT_FILENO, 0, 0 }, /* no events asked: HUP and ERR come anyway */
		};
		int n = ppoll(pfd, 2, NULL, &orig);
		if (n < 0 && errno != EINTR) {
			rc = EX_UNREACHABLE;
			break;
		}
		if (n <= 0)
			continue;
		if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			*stop = 1;
			break;
		}
		if (pfd[0].revents)
			ctl_handle(c, pfd[0].revents);
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return c->status != EX_OK ? c->status : rc;
}

static int c_watch(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "since", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "replay", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *level = NULL;
	long long since = -1, replay = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "s:l:r:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'r') {
			errno = 0;
			replay = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || replay < 0 || replay > 10000)
				return usage_error(argv[0], "--replay needs a count (0..10000), not '%s'",
						   optarg);
		} else if (ch == 'l') {
			if (!level_ok(optarg))
				return usage_error(argv[0], "bad log level '%s'", optarg);
			level = optarg;
		} else {
			errno = 0;
			since = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || since < 0)
				return usage_error(argv[0], "--since needs a sequence number, not '%s'", optarg);
		}
	}
	yajl_gen g = jg_new();
	jg_map(g);
	if (optind < argc) {
		jg_str(g, "events");
		jg_arr(g);
		for (int i = optind; i < argc; i++) {
			if (!event_class_ok(argv[i])) {
				jg_free(g);
				return usage_error(argv[0], "unknown event class '%s' (message, ack, "
						   "peer, registration, log, all)", argv[i]);
			}
			jg_str(g, argv[i]);
		}
		jg_end_arr(g);
	}
	if (since >= 0)
		JG_KINT(g, "since", since);
	if (replay > 0)
		JG_KINT(g, "replay", replay);
	if (level)
		JG_KSTR(g, "log_level", level);
	jval params = params_end(g, true), reply;

	struct ctl_client c;
	struct watch w = { o->json, o->time_set, false };
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		json_free(params);
		return rc;
	}
	c.on_note = on_watch_note;
	c.note_ctx = &w;
	rc = ctl_call(&c, "subscribe", params, o->timeout, &reply);
	json_free(params);
	if (rc != EX_OK) {
		warnx_("%s", c.err);
		ctl_close(&c);
		return rc;
	}
	char msg[600];
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		warnx_("subscribe: %s", msg);
		json_free(reply);
		ctl_close(&c);
		return rc;
	}
	json_free(reply);

	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Events already queued behind the answer are dispatched first. */
	rc = watch_run(&c, &stop_flag);
	if (w.out_failed || stop_flag) {
		rc = EX_OK;
	} else if (rc != EX_OK) {
		/* The daemon went away (stopped): nothing left to watch. */
		warnx_("%s", c.err);
		rc = c.eof ? EX_UNREACHABLE : rc;
	}
	ctl_close(&c);
	return rc;
}

/* ---- the rest --------------------------------------------------------------------- */

static int c_shutdown(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	bool wait = false;
	struct ctl_client c;
	jval reply;
	char msg[600];
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "w", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		wait = true;
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if ((rc = ctl_call(&c, "shutdown", NULL, o->timeout, &reply)) != EX_OK) {
		warnx_("%s", c.err);
	} else if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		warnx_("shutdown: %s", msg);
	} else {
		if (o->json)
			print_json(stdout, ctl_result(reply), false);
		else
			puts("node stopping");
		/* The daemon closes every controller as its very last act. */
		if (wait && ctl_run(&c, NULL, o->timeout, NULL) == EX_TIMEOUT) {
			warnx_("the daemon did not stop within %g s", o->timeout);
			rc = EX_TIMEOUT;
		}
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

static int c_call(const struct opts *o, int argc, char **argv)
{
	jval params = NULL, reply;
	char err[128];
	int rc;

	argc = strip_dashdash(argc, argv);
	if (argc < 2 || argc > 3)
		return usage_error(argv[0], argc < 2 ? "missing METHOD" : "unexpected argument '%s'",
				   argv[argc - 1]);
	if (argc == 3) {
		params = json_parse(argv[2], strlen(argv[2]), err, sizeof err);
		if (params == NULL)
			return usage_error(argv[0], "JSON-PARAMS is not JSON: %s", err);
		/* Every method takes named params (docs/control-protocol.md). */
		if (!YAJL_IS_OBJECT(params)) {
			json_free(params);
			return usage_error(argv[0], "JSON-PARAMS must be an object ({\"key\": value})");
		}
	}
	rc = one_call(o, argv[1], argv[1], params, &reply);
	json_free(params);
	if (rc != EX_OK)
		return rc;
	print_json(stdout, ctl_result(reply), !o->json);
	json_free(reply);
	return EX_OK;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - floor(s)) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Until the daemon answers and is registered at the rendezvous server:
 * for scripts and service ordering.  Polls; the daemon may not exist yet. */
static int c_wait_ready(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	double timeout = o->timeout, deadline;
	char last[600] = "the daemon did not answer";
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		timeout = strtod(optarg, &end);
		if (*end || end == optarg || !(timeout >= 0) || !isfinite(timeout))
			return usage_error(argv[0], "--timeout needs seconds, not '%s'", optarg);
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	deadline = timeout > 0 ? ctl_now() + timeout : 0;
	for (;;) {
		struct ctl_client c;
		double left = deadline > 0 ? deadline - ctl_now() : 0;
		int rc;

		if (deadline > 0 && left <= 0)
			break;
		rc = ctl_open(&c, o->socket, left);
		if (rc == EX_PERM || rc == EX_USAGE) {
			warnx_("%s", c.err);
			ctl_close(&c);
			return rc;
		}
		while (rc == EX_OK) {
			jval reply;
			left = deadline > 0 ? deadline - ctl_now() : 0;
			if (deadline > 0 && left <= 0)
				break;
			if ((rc = ctl_call(&c, "status", NULL, left > 0 ? left : 0, &reply)) != EX_OK) {
				snprintf(last, sizeof last, "%s", c.err);
				break;
			}
			jval r = ctl_result(reply);
			const char *state = json_get_str(json_get(r, "rendezvous"), "state");
			if (state && strcmp(state, "registered") == 0) {
				const char *id = json_get_str(r, "peer_id");
				if (o->json)
					print_json(stdout, r, false);
				else
					printf("ready: %s registered\n", id ? id : "?");
				json_free(reply);
				ctl_close(&c);
				return EX_OK;
			}
			snprintf(last, sizeof last, "rendezvous registration is %s", state ? state : "?");
			json_free(reply);
			sleep_s(0.1);
		}
		if (rc != EX_OK && rc != EX_TIMEOUT)
			snprintf(last, sizeof last, "%s", c.err);
		ctl_close(&c);
		if (deadline == 0 || ctl_now() + 0.1 < deadline)
			sleep_s(0.1);
	}
	warnx_("not ready within %g s: %s", timeout, last);
	return EX_TIMEOUT;
}

static int c_shell(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : shell_run(o);
}


/* PING over the live connection, as often as asked: each RTT, then the
 * summary.  0 when at least one PONG came back, 4 when none did. */
static int c_ping(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	long count = 3;
	double interval = 1.0, sum = 0, mn = 0, mx = 0;
	int ch, rc, answered = 0, sent = 0;
	char peer[300], last_err[600] = "";

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "c:i:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'c') {
			count = strtol(optarg, &end, 10);
			if (*end || end == optarg || count < 1 || count > 100000)
				return usage_error(argv[0], "-c needs a count of at least 1, not '%s'", optarg);
		} else {
			interval = strtod(optarg, &end);
			if (*end || end == optarg || !(interval >= 0) || !isfinite(interval))
				return usage_error(argv[0], "-i needs seconds, not '%s'", optarg);
		}
	}
	if (optind >= argc)
		return usage_error(argv[0], "missing PEER");
	if (argc - optind > 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *typed = argv[optind];
	if (!peer_id_ok(typed) && (typed[0] == '\0' || strpbrk(typed, "@ \t\r\n")))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);

	struct ctl_client c;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if ((rc = resolve_peer(&c, o->timeout, argv[0], typed, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	struct buf rtts = BUF_INIT;
	int fail_rc = EX_TIMEOUT;
	for (long i = 0; i < count; i++) {
		jval reply = NULL, params = params_kv("peer", peer);
		double ms;
		if (i > 0 && interval > 0)
			sleep_s(interval);
		sent++;
		rc = ctl_call(&c, "ping", params, o->timeout, &reply);
		json_free(params);
		if (rc != EX_OK) {
			snprintf(last_err, sizeof last_err, "%s", c.err);
			fail_rc = rc;
			json_free(reply);
			break;
		}
		if ((rc = ctl_reply_status(reply, last_err, sizeof last_err)) != EX_OK ||
		    !json_num(json_get(ctl_result(reply), "rtt_ms"), &ms)) {
			const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
			/* Not connected or unknown: asking again will not help. */
			bool again = reason != NULL && strcmp(reason, "ping_timeout") == 0;
			fail_rc = rc != EX_OK ? rc : EX_PROTO;
			if (!o->json) {
				printf("no pong from %s: %s\n", peer, last_err);
				fflush(stdout);
			}
			json_free(reply);
			if (!again)
				break;
			continue;
		}
		json_free(reply);
		answered++;
		sum += ms;
		mn = answered == 1 || ms < mn ? ms : mn;
		mx = answered == 1 || ms > mx ? ms : mx;
		buf_printf(&rtts, "%s%.3f", answered > 1 ? "," : "", ms);
		if (!o->json) {
			printf("pong from %s: %.2f ms\n", peer, ms);
			fflush(stdout);
		}
	}
	ctl_close(&c);
	buf_cstr(&rtts);
	if (o->json) {
		printf("{\"peer_id\":\"%s\",\"sent\":%d,\"answered\":%d,\"rtt_ms\":[%s]", peer, sent,
		       answered, rtts.data);
		if (answered)
			printf(",\"min\":%.3f,\"avg\":%.3f,\"max\":%.3f", mn, sum / answered, mx);
		printf("}\n");
	} else if (answered) {
		printf("%s: %d sent, %d answered; rtt min/avg/max %.2f/%.2f/%.2f ms\n", peer, sent,
		       answered, mn, sum / answered, mx);
	}
	buf_free(&rtts);
	if (answered)
		return EX_OK;
	warnx_("ping %s: %s", peer, last_err[0] ? last_err : "no answer");
	return fail_rc == EX_DAEMON ? EX_TIMEOUT : fail_rc;
}

static int c_methods(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "methods", NULL, out_methods);
}

static void out_metrics(FILE *f, jval r)
{
	const char *text = json_get_str(r, "text");

	fputs(text ? text : "", f);
}

static int c_metrics(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "metrics", NULL, out_metrics);
}

void command_usage(const struct command *c, FILE *f)
{
	fprintf(f, "usage: chatp2pctl [options] %s%s%s\n  %s\n", c->name, c->synopsis[0] ? " " : "",
		c->synopsis, c->summary);
	fprintf(f, "options anywhere on the line: -s PATH, -j/-o json|tsv|table, -t SEC, "
		   "--no-legend, --sort COL, --time relative|iso, -h; -- ends them\n");
}

static int c_help(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc > 1) {
		const struct command *c = command_find(argv[1]);
		if (c == NULL) {
			const char *near = command_suggest(argv[1]);
			if (near)
				return usage_error(argv[0], "unknown command '%s'; did you mean '%s'?", argv[1],
						   near);
			return usage_error(argv[0], "unknown command '%s'", argv[1]);
		}
		command_usage(c, stdout);
		return EX_OK;
	}
	usage(stdout);
	return EX_OK;
}

/* ---- inbox and outbox ------------------------------------------------------------- */

static const char *jstr_or(jval obj, const char *key, const char *dflt)
{
	const char *v = json_get_str(obj, key);

	return v ? v : dflt;
}

static long long jint_or(jval obj, const char *key, long long dflt)
{
	long long v;

	return json_int(json_get(obj, key), &v) ? v : dflt;
}

static void out_inbox(FILE *f, jval r)
{
	jval list = json_get(r, "messages");

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		int rd = json_bool(json_get(m, "read"));
		const char *type = jstr_or(m, "type", "message");
		fprintf(f, "%6lld%c %s ", jint_or(m, "id", 0), rd == 1 ? ' ' : '*',
			jstr_or(m, "at", "?"));
		if (strcmp(type, "pub") == 0)
			fprintf(f, "[%s -> %s] ", jstr_or(m, "from", "?"), jstr_or(m, "to", "?"));
		else
			fprintf(f, "[%s] ", jstr_or(m, "from", "?"));
		print_text(f, jstr_or(m, "text", ""));
		fputc('\n', f);
	}
	if (json_bool(json_get(r, "more")) == 1)
		fprintf(f, "(more: --since %lld for the next ones)\n",
			json_arr_len(list) ? jint_or(json_arr_at(list, json_arr_len(list) - 1), "id", 0) : 0);
	fprintf(f, "%lld unread\n", jint_or(r, "unread", 0));
}

static int c_inbox(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "unread", no_argument, NULL, 'u' },
		{ "from", required_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	bool unread = false;
	const char *from = NULL, *since = NULL;
	long long limit = 0;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "uf:s:n:", lo)) != -1) {
		char *end;
		switch (ch) {
		case '?':
			return EX_USAGE;
		case 'u':
			unread = true;
			break;
		case 'f':
			if (!peer_id_ok(optarg))
				return usage_error(argv[0], "'%s' is not a peer id (name@namespace)", optarg);
			from = optarg;
			break;
		case 's':
			since = optarg;
			break;
		case 'n':
			errno = 0;
			limit = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || limit < 1 || limit > 10000)
				return usage_error(argv[0], "--limit needs a count (1..10000), not '%s'", optarg);
			break;
		}
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	yajl_gen g = jg_new();
	bool ok = true;
	jg_map(g);
	if (unread)
		JG_KBOOL(g, "unread", true);
	if (from)
		ok = kstr(g, "from", from);
	if (since) {
		/* An id is all digits; anything else is a time for the daemon to parse. */
		if (since[strspn(since, "0123456789")] == '\0' && since[0])
			JG_KINT(g, "since", strtoll(since, NULL, 10));
		else
			ok = kstr(g, "since", since) && ok;
	}
	if (limit)
		JG_KINT(g, "limit", limit);
	jval params = params_end(g, ok);
	if (params == NULL)
		return usage_error(argv[0], "an argument is not valid UTF-8");
	return simple(o, "inbox", params, out_inbox);
}

static void out_read(FILE *f, jval r)
{
	fprintf(f, "marked %lld read, %lld unread\n", jint_or(r, "marked", 0), jint_or(r, "unread", 0));
}

static int c_read(const struct opts *o, int argc, char **argv)
{
	yajl_gen g;
	char *end;
	long long id;

	if (argc != 2)
		return usage_error(argv[0], argc < 2 ? "missing ID or --all" : "one ID or --all");
	g = jg_new();
	jg_map(g);
	if (strcmp(argv[1], "--all") == 0 || strcmp(argv[1], "-a") == 0) {
		JG_KBOOL(g, "all", true);
	} else {
		errno = 0;
		id = strtoll(argv[1], &end, 10);
		if (errno || *end || end == argv[1] || id < 1) {
			jg_free(g);
			return usage_error(argv[0], "'%s' is not an inbox id", argv[1]);
		}
		JG_KINT(g, "id", id);
	}
	return simple(o, "read", params_end(g, true), out_read);
}

static void out_outbox(FILE *f, jval r)
{
	static const char *const hdr[] = { "MSG_ID", "TO", ">AGE(s)", "DEADLINE", ">ATTEMPTS", "STATE" };
	jval list = json_get(r, "queued");
	struct table *t = table_new(6, hdr);

	if (json_get_str(r, "cancelled"))
		fprintf(f, "cancelled %s\n", json_get_str(r, "cancelled"));
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval q = json_arr_at(list, i);
		char age[32], att[32];
		fmt_num(q, "age_s", 0, age, sizeof age);
		snprintf(att, sizeof att, "%lld", jint_or(q, "attempts", 0));
		const char *cells[] = { jstr_or(q, "msg_id", "?"), jstr_or(q, "to", "?"), age,
					jstr_or(q, "deadline", "?"), att,
					json_bool(json_get(q, "in_flight")) == 1 ? "in flight" : "waiting" };
		table_row(t, cells);
	}
	if (table_rows(t))
		table_print(t, f);
	else
		fprintf(f, "outbox empty\n");
	table_free(t);
}

static int c_outbox(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cancel", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cancel = NULL;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "c:", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		cancel = optarg;
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	jval params = params_kv("cancel", cancel);
	if (params == NULL)
		return usage_error(argv[0], "the msg_id is not valid UTF-8");
	return simple(o, "outbox", params, out_outbox);
}

const struct command commands[] = {
	{ "status", "", "identity, version, uptime, registration, reachability, counts", c_status, NULL },
	{ "peers", "[--discover] ['*'|#ns]",
	  "the peer table (--discover: ask the rendezvous server first)", c_peers, "d" },
	{ "conn", "", "connections: direction, address, since, RTT, traffic", c_conn, NULL },
	{ "send", "[--no-ack | --queue [--deadline DUR]] PEER [TEXT...|-]",
	  "send TEXT (or standard input) to PEER (an id, or a unique name), wait for its ACK",
	  c_send, "nqd:" },
	{ "pub", "'*'|#ns [TEXT...|-]", "publish to every connected peer or a namespace", c_pub, NULL },
	{ "rtt", "", "round-trip times per peer: last, avg, min, max", c_rtt, NULL },
	{ "reconnect", "[PEER]", "dial now: PEER, or every peer not connected", c_reconnect, NULL },
	{ "log", "[LEVEL]", "show or set the log level (DEBUG, INFO, WARNING, ERROR)", c_log, NULL },
	{ "discover", "", "ask the rendezvous server who is registered", c_discover, NULL },
	{ "register", "", "register at the rendezvous server now", c_register, NULL },
	{ "unregister", "", "unregister from the rendezvous server", c_unregister, NULL },
	{ "watch", "[--since SEQ] [--replay N] [--log-level LEVEL] [CLASS...]",
	  "stream events until interrupted; CLASS: message ack peer registration log all", c_watch,
	  "s:l:r:" },
	{ "reload", "", "re-read the configuration file (as SIGHUP does)", c_reload, NULL },
	{ "shutdown", "[--wait]", "stop the node gracefully (--wait: until it has stopped)", c_shutdown,
	  "w" },
	{ "shell", "", "interactive chat shell", c_shell, NULL },
	{ "call", "METHOD [JSON-PARAMS]", "call any control method, print its result", c_call, NULL },
	{ "wait-ready", "[--timeout SEC]", "wait until the daemon answers and is registered", c_wait_ready,
	  NULL },
	{ "version", "", "the daemon's version and control protocol", c_version, NULL },
	{ "help", "[COMMAND]", "this help, or one command's", c_help, NULL },
	{ "ping", "PEER [-c N] [-i SECS]",
	  "PING PEER over its connection N times (default 3), print each RTT", c_ping, "c:i:" },
	{ "methods", "", "the daemon's control methods, one line each", c_methods, NULL },
	{ "metrics", "", "counters and gauges in the OpenMetrics text format", c_metrics, NULL },
		{ "inbox", "[--unread] [--from PEER] [--since TIME|ID] [--limit N]",
	  "stored messages (the newest N, default 100; * marks unread)", c_inbox, "uf:s:n:" },
	{ "read", "ID|--all", "mark a stored message, or all, read", c_read, NULL },
	{ "outbox", "[--cancel MSG_ID]", "queued messages waiting for their peer; cancel one", c_outbox, "c:" },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct command *command_find(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const char *command_suggest(const char *name)
{
	const char *names[64];
	size_t n = 0;

	for (const struct command *c = commands; c->name && n < 64; c++)
		names[n++] = c->name;
	return fmt_closest(name, names, n);
}

void usage(FILE *f)
{
	fprintf(f, "usage: chatp2pctl [OPTIONS] COMMAND [ARGS] [OPTIONS] [-- TEXT...]\n"
		   "       chatp2pctl [--socket PATH]            (the shell, on a terminal)\n"
		   "\n"
		   "Options go anywhere on the line; -- ends them.\n"
		   "  -s, --socket PATH   control socket (default $CHATP2P_SOCKET, else where\n"
		   "                      chatp2pd puts it: $RUNTIME_DIRECTORY, /run/chatp2p or\n"
		   "                      $XDG_RUNTIME_DIR/chatp2p, then chatp2pd.sock)\n"
		   "  -j, --json          the same as -o json\n"
		   "  -o, --output FMT    table (default), tsv, or json: the result as one JSON\n"
		   "                      document (watch: NDJSON)\n"
		   "      --no-legend     tables without their header line\n"
		   "      --sort COLUMN   sort table rows by COLUMN (default: the first, PEER)\n"
		   "      --time STYLE    times in tables and watch: relative or iso (local)\n"
		   "  -t, --timeout SEC   give up waiting for the daemon after SEC seconds\n"
		   "                      (default %g; 0: wait forever)\n"
		   "  -V, --version       print chatp2pctl's version\n"
		   "  -h, --help          this help; after a command, that command's\n"
		   "\ncommands:\n",
		DEFAULT_TIMEOUT);
	for (const struct command *c = commands; c->name; c++) {
		char head[80];
		snprintf(head, sizeof head, "%s %s", c->name, c->synopsis);
		if (strlen(head) > 30)
			fprintf(f, "  %s\n  %-30s %s\n", head, "", c->summary);
		else
			fprintf(f, "  %-30s %s\n", head, c->summary);
	}
	fprintf(f, "\nexit status:\n"
		   "  0  success (send: the peer ACKed, or it was sent without asking for one)\n"
		   "  1  the daemon answered with an error\n"
		   "  2  the daemon is unreachable (no socket, connection refused, or it closed\n"
		   "     the connection before answering)\n"
		   "  3  usage error (bad command, option or argument)\n"
		   "  4  timeout, or the peer could not be reached: ack_timeout, not_connected,\n"
		   "     unknown_peer (send, reconnect, ping alike), no PONG, a pub that\n"
		   "     reached nobody\n"
		   "  5  permission denied on the control socket\n"
		   "  6  protocol error (garbage, a line cut off, an answer that makes no sense)\n");
}
