/* The chat shell: the original client's commands (/msg, /pub, /peers, …)
 * over the control socket, with incoming messages and peer events printed
 * live.  One ppoll() loop serves the terminal and the socket: libedit
 * reads a character at a time (EL_UNBUFFERED) only when the terminal is
 * readable, and every request is answered through a callback, so a send
 * waiting for its ACK never holds up typing.  Output that arrives while a
 * line is being typed is printed above it: erase prompt and line, print,
 * let libedit redraw both.  When standard input is not a terminal the same
 * commands are read line by line, without libedit (scripts, tests).
 *
 * The commands are those of the table (cmd_table.c, through
 * command_table): each runs here as /command with the same options and
 * output as on the command line.  A few have an asynchronous variant here
 * (the scmds below: /pub, /peers, … answered through callbacks, so they
 * never hold up typing) and a few are the shell's own (/msg, /query,
 * /quit). */
#include <errno.h>
#include <histedit.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "shell.h"

#include "cmd_help.h"
#include "cmdline.h"
#include "ctlproto.h"
#include "fmt.h"
#include "framer.h"
#include "output.h"
#include "xmalloc.h"

#define MAX_WORD 256
/* While the daemon is away, how often to try it again. */
#define RETRY_EVERY 1.0

struct shell {
	const struct opts *o;
	struct ctl_client c;
	EditLine *el;           /* NULL when standard input is not a terminal */
	History *hist;
	bool editing;           /* a prompt is on screen (output goes above it) */
	bool quit;              /* /quit or end of input */
	bool stopping;          /* /shutdown answered: the daemon will close */
	bool in_eof;
	struct framer in;       /* lines of a non-terminal standard input */
	char **peers;           /* known peer ids, for completion */
	size_t npeers;
	char self[MAX_WORD];    /* our own peer id (the prompt), "" until known */
	char query[MAX_WORD];   /* /query: plain lines go to this peer */
	char prompt[2 * MAX_WORD + 8];
	int fail_rc;            /* piped: the first failure's exit status */
	bool away;              /* the daemon went away: trying to reconnect */
	bool interactive;       /* on a terminal (el may already be gone at the end) */
	double next_try;        /* ctl_now() of the next attempt while away */
	sigset_t orig_mask;     /* the signal mask outside ppoll */
	int warming;            /* answers still due (peers, version) before a
				 * line is read: "/msg bob" needs the peer list */
};

/* "alice@CIC> ", or "alice@CIC [bob@CIC]> " during a /query. */
static void set_prompt(struct shell *sh)
{
	const char *me = sh->self[0] ? sh->self : "chatp2p";

	if (sh->query[0])
		snprintf(sh->prompt, sizeof sh->prompt, "%s [%s]> ", me, sh->query);
	else
		snprintf(sh->prompt, sizeof sh->prompt, "%s> ", me);
}

static volatile sig_atomic_t got_int, got_term, got_winch, got_cont;

static void on_signal(int sig)
{
	switch (sig) {
	case SIGINT: got_int = 1; break;
	case SIGWINCH: got_winch = 1; break;
	case SIGCONT: got_cont = 1; break;
	default: got_term = 1; break;
	}
}

/* ---- printing above the line being typed ------------------------------------- */

static void print_raw(const char *s, size_t len, bool crlf)
{
	for (size_t i = 0; i < len; i++) {
		/* The terminal is in raw mode while editing: no '\n' -> "\r\n". */
		if (s[i] == '\n' && crlf)
			fputc('\r', stdout);
		fputc(s[i], stdout);
	}
}

static void shell_write(struct shell *sh, const char *s, size_t len)
{
	if (len == 0)
		return;
	if (sh->el == NULL || !sh->editing) {
		fwrite(s, 1, len, stdout);
		fflush(stdout);
		return;
	}
	const LineInfoW *li = el_wline(sh->el);
	int cols = 0, w = wcswidth(li->buffer, (size_t)(li->cursor - li->buffer));

	if (w < 0)
		w = (int)(li->cursor - li->buffer);
	el_get(sh->el, EL_GETTC, "co", &cols);
	int up = cols > 0 ? ((int)fmt_width(sh->prompt) + w) / cols : 0;
	if (up > 0)
		printf("\033[%dA", up);
	/* Column 0 of the prompt's first row, everything below erased. */
	fputs("\r\033[J", stdout);
	print_raw(s, len, true);
	if (s[len - 1] != '\n')
		fputs("\r\n", stdout);
	fflush(stdout);
	/* Redraws prompt and line from where the cursor is now. */
	el_set(sh->el, EL_REFRESH);
}

static void say(struct shell *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct shell *sh, const char *fmt, ...)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	va_list ap;

	if (f == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
	shell_write(sh, s, len);
	free(s);
}

/* A failure: above the prompt on a terminal; fed by a pipe, on standard
 * error, and the exit status says that something failed. */
static void fail(struct shell *sh, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(struct shell *sh, int rc, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (sh->interactive) {
		say(sh, "%s✗%s %s", color(C_ERR), color(C_OFF), line);
		return;
	}
	if (sh->fail_rc == EX_OK)
		sh->fail_rc = rc;
	fflush(stdout);
	fprintf(stderr, "chatp2pctl: %s\n", line);
}

/* One of output.c's printers, above the prompt. */
static void say_with(struct shell *sh, void (*fn)(FILE *f, jval v), jval v)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (f == NULL)
		return;
	fn(f, v);
	fclose(f);
	shell_write(sh, s, len);
	free(s);
}

/* ---- peer ids for completion ----------------------------------------------------- */

static void peer_add(struct shell *sh, const char *id)
{
	if (id == NULL || !peer_id_ok(id))
		return;
	for (size_t i = 0; i < sh->npeers; i++)
		if (strcmp(sh->peers[i], id) == 0)
			return;
	sh->peers = xrealloc(sh->peers, (sh->npeers + 1) * sizeof *sh->peers);
	sh->peers[sh->npeers++] = xstrdup(id);
}

static void peers_learn(struct shell *sh, jval result)
{
	jval list = json_get(result, "peers");

	for (size_t i = 0; i < json_arr_len(list); i++)
		peer_add(sh, json_get_str(json_arr_at(list, i), "peer_id"));
}

/* ---- answers ---------------------------------------------------------------------- */

enum reply_kind { R_QUIET_PEERS, R_PRINT, R_SEND, R_PUB, R_SHUTDOWN, R_SUBSCRIBE, R_UNREAD, R_SELF };

struct req {
	struct shell *sh;
	enum reply_kind kind;
	void (*print)(FILE *f, jval result);
	char what[MAX_WORD];       /* the peer of a send, or the command */
};

/* The unread messages waiting when the shell starts. */
static void out_unread(FILE *f, jval r)
{
	jval list = json_get(r, "messages");
	long long unread = 0;

	json_int(json_get(r, "unread"), &unread);
	if (unread == 0) {
		fprintf(f, "no unread messages\n");
		return;
	}
	fprintf(f, "%lld unread message%s%s:\n", unread, unread == 1 ? "" : "s",
		(long long)json_arr_len(list) < unread ? " (the newest)" : "");
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		const char *from = json_get_str(m, "from");
		long long id = 0;
		char when[40] = "?";
		time_t t = fmt_parse_iso(json_get_str(m, "at"));
		if (t != (time_t)-1)
			fmt_local_short(t, when, sizeof when);
		/* The id, for /read ID. */
		json_int(json_get(m, "id"), &id);
		fprintf(f, "  %4lld  %s [", id, when);
		print_name(f, from ? from : "?");
		fputs("] ", f);
		print_text(f, json_get_str(m, "text") ? json_get_str(m, "text") : "");
		fputc('\n', f);
	}
}

static void on_reply(void *ctx, jval reply)
{
	struct req *rq = ctx;
	struct shell *sh = rq->sh;
	char msg[600];

	if ((rq->kind == R_QUIET_PEERS || rq->kind == R_SELF) && sh->warming > 0)
		sh->warming--;
	if (reply == NULL) {
		if (rq->kind == R_SEND)
			fail(sh, EX_UNREACHABLE, "%s: connection to the daemon lost, outcome unknown",
			     rq->what);
		free(rq);
		return;
	}
	int st = ctl_reply_status(reply, msg, sizeof msg);
	jval r = ctl_result(reply);

	if (st != EX_OK) {
		/* No inbox (storage off): nothing to say at start. */
		if (rq->kind != R_QUIET_PEERS && rq->kind != R_UNREAD && rq->kind != R_SELF)
			fail(sh, st, "%s: %s", rq->what, msg);
	} else {
		switch (rq->kind) {
		case R_QUIET_PEERS:
			peers_learn(sh, r);
			break;
		case R_PRINT:
			if (rq->print == out_peers)
				peers_learn(sh, r);
			say_with(sh, rq->print, r);
			break;
		case R_SEND: {
			const char *status = json_get_str(r, "status");
			char ms[32];
			if (status && strcmp(status, "acked") == 0)
			{
				double v = -1;
				json_num(json_get(r, "rtt_ms"), &v);
				say(sh, "%s✓%s delivered to %s (%s)", color(C_OK), color(C_OFF), rq->what,
				    fmt_ms(v, ms, sizeof ms));
			}
			else
				say(sh, "%s✓%s sent to %s (no ACK asked for)", color(C_OK), color(C_OFF), rq->what);
			break;
		}
		case R_PUB: {
			long long n = 0;
			json_int(json_get(r, "reached"), &n);
			if (n == 0 && strcmp(rq->what, "*") == 0)
				fail(sh, EX_TIMEOUT, "nobody received it: no peer is connected");
			else if (n == 0)
				fail(sh, EX_TIMEOUT, "nobody received it: no connected peer in %s", rq->what);
			else
				say(sh, "%s✓%s published to %lld peer%s", color(C_OK), color(C_OFF), n,
				    n == 1 ? "" : "s");
			break;
		}
		case R_SHUTDOWN:
			say(sh, "node stopping");
			sh->stopping = true;
			break;
		case R_SUBSCRIBE:
			break;
		case R_UNREAD:
			if (json_arr_len(json_get(r, "messages")) > 0)
				say_with(sh, out_unread, r);
			break;
		case R_SELF: {
			const char *me = json_get_str(r, "node");
			if (me) {
				snprintf(sh->self, sizeof sh->self, "%s", me);
				set_prompt(sh);
			}
			break;
		}
		}
	}
	json_free(reply);
	free(rq);
}

static void request(struct shell *sh, enum reply_kind kind, const char *what, const char *method,
		    jval params, void (*print)(FILE *f, jval result))
{
	struct req *rq = xcalloc(1, sizeof *rq);

	rq->sh = sh;
	rq->kind = kind;
	rq->print = print;
	snprintf(rq->what, sizeof rq->what, "%s", what);
	if (ctl_request(&sh->c, method, params, on_reply, rq) < 0) {
		if ((kind == R_QUIET_PEERS || kind == R_SELF) && sh->warming > 0)
			sh->warming--;
		fail(sh, EX_UNREACHABLE, "%s: not connected to the daemon%s", what,
		     sh->away ? " (waiting for it to come back)" : "");
		free(rq);
	}
	json_free(params);
}

static void on_note(void *ctx, jval note)
{
	struct shell *sh = ctx;
	jval p = json_get(note, "params");
	const char *type = json_get_str(p, "type");

	if (type && strncmp(type, "peer_", 5) == 0)
		peer_add(sh, json_get_str(p, "peer_id"));
	/* A send's outcome is printed with its answer; only an ACK that comes
	 * after that answer said "no ACK" is news. */
	if (type && (strcmp(type, "ack") == 0 || strcmp(type, "ack_timeout") == 0) &&
	    json_bool(json_get(p, "late")) != 1)
		return;
	say_with(sh, out_event, note);
}

/* ---- commands ------------------------------------------------------------------------ */

/* The next space-separated word of *p into out ("" at the end). */
static const char *word(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t n = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	while (*s && *s != ' ' && *s != '\t') {
		if (n + 1 < len)
			out[n++] = *s;
		s++;
	}
	out[n] = '\0';
	*p = s;
	return out;
}

/* What follows the words already taken, without its leading blanks. */
static const char *rest(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

struct scmd {
	const char *name;
	const char *args;
	const char *help;
	void (*fn)(struct shell *sh, const char *args);
};

/* PEER as typed → a known peer id: a full id as it is, a name when exactly
 * one known peer has it (any namespace, any case).  false after saying why. */
static bool resolve(struct shell *sh, const char *typed, char *out, size_t len)
{
	size_t tlen = strlen(typed), n = 0;
	struct buf cands = BUF_INIT;

	if (strchr(typed, '@')) {
		if (!peer_id_ok(typed)) {
			fail(sh, EX_USAGE, "'%s' is not a peer id (name@namespace)", typed);
			return false;
		}
		if (strcmp(typed, sh->self) == 0) {
			fail(sh, EX_USAGE, "%s is this node: a message to ourselves goes nowhere", typed);
			return false;
		}
		snprintf(out, len, "%s", typed);
		return true;
	}
	if (sh->self[0] && strncasecmp(sh->self, typed, tlen) == 0 && sh->self[tlen] == '@') {
		fail(sh, EX_USAGE, "%s is this node: a message to ourselves goes nowhere", sh->self);
		return false;
	}
	for (size_t i = 0; i < sh->npeers; i++) {
		const char *id = sh->peers[i], *at = strchr(id, '@');
		if (at && (size_t)(at - id) == tlen && strncasecmp(id, typed, tlen) == 0) {
			buf_printf(&cands, "%s%s", n ? ", " : "", id);
			if (n++ == 0)
				snprintf(out, len, "%s", id);
		}
	}
	buf_cstr(&cands);
	if (n > 1)
		fail(sh, EX_USAGE, "'%s' is ambiguous: %s", typed, cands.data);
	else if (n == 0) {
		/* The closest known ones, by name or whole id. */
		struct buf near = BUF_INIT;
		size_t found = 0, lim = tlen / 3 < 1 ? 1 : tlen / 3 > 3 ? 3 : tlen / 3;
		for (size_t i = 0; i < sh->npeers && found < 3; i++) {
			const char *id = sh->peers[i], *at = strchr(id, '@');
			char pname[MAX_WORD];
			snprintf(pname, sizeof pname, "%.*s", at ? (int)(at - id) : (int)strlen(id), id);
			if (fmt_distance(typed, pname, lim) <= lim || fmt_distance(typed, id, lim) <= lim)
				buf_printf(&near, "%s%s", found++ ? ", " : "; did you mean ", id);
		}
		buf_cstr(&near);
		fail(sh, EX_TIMEOUT, "unknown peer '%s'%s%s", typed, near.data,
		     found ? "?" : " (a name needs its @namespace until the peer is known)");
		buf_free(&near);
	}
	buf_free(&cands);
	return n == 1;
}

static void send_to(struct shell *sh, const char *peer, const char *text)
{
	jval params = params_send(peer, text, true, NULL);

	if (params == NULL) {
		fail(sh, EX_USAGE, "the text is not valid UTF-8");
		return;
	}
	request(sh, R_SEND, peer, "send", params, NULL);
}

static void s_msg(struct shell *sh, const char *a)
{
	char typed[MAX_WORD], peer[MAX_WORD];
	const char *text;

	word(&a, typed, sizeof typed);
	text = rest(a);
	if (!typed[0] || !*text) {
		fail(sh, EX_USAGE, "usage: /msg PEER TEXT");
		return;
	}
	if (resolve(sh, typed, peer, sizeof peer))
		send_to(sh, peer, text);
}

static void s_query(struct shell *sh, const char *a)
{
	char typed[MAX_WORD], peer[MAX_WORD];

	word(&a, typed, sizeof typed);
	if (!typed[0]) {
		if (sh->query[0])
			say(sh, "query with %s ended: plain lines are commands again", sh->query);
		sh->query[0] = '\0';
		set_prompt(sh);
		return;
	}
	if (!resolve(sh, typed, peer, sizeof peer))
		return;
	snprintf(sh->query, sizeof sh->query, "%s", peer);
	set_prompt(sh);
	say(sh, "plain lines now go to %s; commands need their /; /query alone ends it", peer);
}

static void s_pub(struct shell *sh, const char *a)
{
	char target[MAX_WORD];
	const char *text;

	word(&a, target, sizeof target);
	text = rest(a);
	if (!target[0] || !*text || !target_ok(target)) {
		fail(sh, EX_USAGE, "usage: /pub * TEXT  or  /pub #namespace TEXT");
		return;
	}
	jval params = params_pub(target, text);
	if (params == NULL) {
		fail(sh, EX_USAGE, "the text is not valid UTF-8");
		return;
	}
	request(sh, R_PUB, target, "pub", params, NULL);
}

static void s_peers(struct shell *sh, const char *a)
{
	char filter[MAX_WORD];

	word(&a, filter, sizeof filter);
	if (filter[0] && !target_ok(filter)) {
		fail(sh, EX_USAGE, "usage: /peers [*|#namespace]");
		return;
	}
	request(sh, R_PRINT, "peers", "peers", params_kv("filter", filter[0] ? filter : NULL), out_peers);
}

static void s_conn(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "conn", "conn", NULL, out_conn);
}

static void s_rtt(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "rtt", "rtt", NULL, out_rtt);
}

static void s_status(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "status", "status", NULL, out_status);
}

static void s_reconnect(struct shell *sh, const char *a)
{
	char typed[MAX_WORD], peer[MAX_WORD] = "";

	word(&a, typed, sizeof typed);
	if (typed[0] && !resolve(sh, typed, peer, sizeof peer))
		return;
	request(sh, R_PRINT, "reconnect", "reconnect", params_kv("peer", peer[0] ? peer : NULL),
		out_reconnect);
}

static void print_log(FILE *f, jval r)
{
	const char *prev = json_get_str(r, "previous"), *level = json_get_str(r, "level");

	if (prev)
		fprintf(f, "log level %s (was %s)\n", level ? level : "?", prev);
	else
		fprintf(f, "log level %s\n", level ? level : "?");
}

static void s_log(struct shell *sh, const char *a)
{
	char level[MAX_WORD];

	word(&a, level, sizeof level);
	if (!level[0]) {
		request(sh, R_PRINT, "log", "log.get", NULL, print_log);
	} else if (!level_ok(level)) {
		fail(sh, EX_USAGE, "usage: /log [DEBUG|INFO|WARNING|ERROR]");
	} else {
		request(sh, R_PRINT, "log", "log.set", params_kv("level", level), print_log);
	}
}

static void s_discover(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "discover", "discover", NULL, out_discover);
}

static void s_register(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "register", "register", NULL, out_register);
}

static void s_unregister(struct shell *sh, const char *a)
{
	request(sh, R_PRINT, "unregister", "unregister", NULL, out_unregister);
}

static void s_quit(struct shell *sh, const char *a)
{
	sh->quit = true;
}

static void s_shutdown(struct shell *sh, const char *a)
{
	request(sh, R_SHUTDOWN, "shutdown", "shutdown", NULL, NULL);
}

/* The unread messages, as at start (chatp2pctl read marks them read). */
static void s_inbox(struct shell *sh, const char *a)
{
	static const char unread[] = "{\"unread\":true,\"limit\":50}";
	char err[64];

	request(sh, R_PRINT, "inbox", "inbox", json_parse(unread, strlen(unread), err, sizeof err),
		out_unread);
}

static void s_help(struct shell *sh, const char *a);

static const struct scmd scmds[] = {
	{ "msg", "PEER TEXT", "send TEXT to PEER (an id, or a known name); the ACK is reported "
	  "when it comes", s_msg },
	{ "pub", "*|#ns TEXT", "publish TEXT to every connected peer, or to a namespace", s_pub },
	{ "peers", "[*|#ns]", "the peer table", s_peers },
	{ "conn", "", "connections", s_conn },
	{ "rtt", "", "round-trip times", s_rtt },
	{ "status", "", "the node's status", s_status },
	{ "reconnect", "[PEER]", "dial PEER (or every peer not connected) now", s_reconnect },
	{ "log", "[LEVEL]", "show or set the node's log level", s_log },
	{ "discover", "", "ask the rendezvous server who is there", s_discover },
	{ "register", "", "register at the rendezvous server", s_register },
	{ "unregister", "", "unregister from the rendezvous server", s_unregister },
	{ "help", "", "this list", s_help },
	{ "quit", "", "leave the shell (the node keeps running)", s_quit },
	{ "shutdown", "", "stop the node", s_shutdown },
	{ "inbox", "", "unread messages stored by the node", s_inbox },
	{ "query", "[PEER]", "plain lines go to PEER until /query alone", s_query },
	{ NULL, NULL, NULL, NULL },
};

static void run_table_command(struct shell *sh, const char *line);

/* A table command's help line, "/name usage" and what it does. */
static void help_line(FILE *f, const char *name, const char *args, const char *help)
{
	char head[128];

	snprintf(head, sizeof head, "/%s%s%s", name, args[0] ? " " : "", args);
	if (strlen(head) > 22)
		fprintf(f, "  %s\n  %-22s %s\n", head, "", help);
	else
		fprintf(f, "  %-22s %s\n", head, help);
}

/* The shell's own commands, then every command of the table: one list. */
static void s_help(struct shell *sh, const char *a)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (rest(a)[0]) {
		/* /help CMD: that command's own help, as chatp2pctl help CMD. */
		char line[MAX_WORD + 8];
		snprintf(line, sizeof line, "help %s", rest(a));
		if (f)
			fclose(f);
		free(s);
		run_table_command(sh, line);
		return;
	}
	if (f == NULL)
		return;
	fputs("commands (the leading / is optional):\n", f);
	for (const struct scmd *c = scmds; c->name; c++)
		if (command_find(c->name) == NULL)
			help_line(f, c->name, c->args, c->help);
	for (const struct command *c = command_table; c && c->name; c++)
		if (!(c->flags & CMD_NO_SHELL))
			help_line(f, c->name, c->usage, c->help);
	fputs("Options work as on the command line (/peers -o json, /inbox --help).\n"
	      "Tab completes commands and peer ids; Ctrl-D leaves.\n", f);
	fclose(f);
	shell_write(sh, s, len);
	free(s);
}

/* The words of a line as a command line's argv: blanks separate them; a
 * word that starts with ' or " runs to the matching quote (so '#ns' and
 * "two words" work as in a shell, and "it's" stays one word).  argv[0] is
 * "chatp2pctl"; the strings live in *store (free it and the array). */
static char **split_line(const char *line, int *argc, char **store)
{
	size_t n = strlen(line);
	char *out = xmalloc(n + 1), *w = out;
	char **argv = xcalloc(n / 2 + 3, sizeof *argv);
	int c = 0;

	argv[c++] = (char *)"chatp2pctl";
	for (const char *p = line; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		argv[c++] = w;
		if ((*p == '\'' || *p == '"') && strchr(p + 1, *p)) {
			const char *q = strchr(p + 1, *p);
			memcpy(w, p + 1, (size_t)(q - p - 1));
			w += q - p - 1;
			p = q + 1;
		}
		while (*p && *p != ' ' && *p != '\t')
			*w++ = *p++;
		*w++ = '\0';
	}
	argv[c] = NULL;
	*argc = c;
	*store = out;
	return argv;
}

/* A command of the table, run as on the command line: its own options,
 * output and exit status, over a connection of its own (the shell's stays
 * free for events).  It has the terminal meanwhile: the line is finished,
 * and Ctrl-C reaches it (watch ends on it). */
static void run_table_command(struct shell *sh, const char *line)
{
	struct opts o = *sh->o;
	struct out_style saved = out_style;
	struct cmdline cl;
	struct sigaction sa_int, sa_term, sa_hup;
	char *store;
	int argc, rc;
	char **argv = split_line(line, &argc, &store);

	o.in_shell = true;
	rc = cmdline_parse(&o, argc, argv, &cl);
	if (rc == EX_OK && cl.socket) {
		if (strlen(cl.socket) >= sizeof o.socket)
			rc = usage_error(cl.cmd_name ? cl.cmd_name : "shell", "socket path too long");
		else
			snprintf(o.socket, sizeof o.socket, "%s", cl.socket);
	}
	if (rc != EX_OK || cl.cmd == NULL) {
		/* handle_line only sends names of the table here */
	} else if (cl.help) {
		char *s = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&s, &len);
		if (f) {
			command_usage(cl.cmd, f);
			fclose(f);
			shell_write(sh, s, len);
			free(s);
		}
	} else {
		sigaction(SIGINT, NULL, &sa_int);
		sigaction(SIGTERM, NULL, &sa_term);
		sigaction(SIGHUP, NULL, &sa_hup);
		sigprocmask(SIG_SETMASK, &sh->orig_mask, NULL);
		rc = cl.cmd->run(&o, cl.nrest, cl.rest);
		fflush(stdout);
		sigset_t block = sh->orig_mask;
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGHUP);
		sigaddset(&block, SIGWINCH);
		sigaddset(&block, SIGCONT);
		sigprocmask(SIG_SETMASK, &block, NULL);
		/* watch set its own; a Ctrl-C that ended it is spent. */
		sigaction(SIGINT, &sa_int, NULL);
		sigaction(SIGTERM, &sa_term, NULL);
		sigaction(SIGHUP, &sa_hup, NULL);
		got_int = 0;
	}
	if (out_style.failed && rc == EX_OK)
		rc = EX_USAGE;
	out_style = saved;
	if (rc != EX_OK && !sh->interactive && sh->fail_rc == EX_OK)
		sh->fail_rc = rc;
	free(cl.rest);
	free(argv);
	free(store);
}

/* An option word after the command's name: the line wants the table's
 * command (its options), not the shell's variant. */
static bool has_option(const char *args)
{
	for (const char *p = args; *p; p++)
		if (*p == '-' && (p == args || p[-1] == ' ' || p[-1] == '\t') && p[1] && p[1] != ' ' &&
		    p[1] != '\t')
			return true;
	return false;
}

static void handle_line(struct shell *sh, const char *line)
{
	char name[MAX_WORD];
	const char *p = line;

	word(&p, name, sizeof name);
	if (!name[0])
		return;
	/* In a /query, a line without its / is text for that peer. */
	if (sh->query[0] && name[0] != '/') {
		send_to(sh, sh->query, rest(line));
		return;
	}
	const char *n = name[0] == '/' ? name + 1 : name;
	const struct command *tc = command_find(n);
	if (tc && (tc->flags & CMD_NO_SHELL))
		tc = NULL;
	for (const struct scmd *c = scmds; c->name; c++) {
		if (strcmp(c->name, n) == 0 && !(tc && has_option(p))) {
			c->fn(sh, p);
			return;
		}
	}
	if (tc) {
		run_table_command(sh, line[strspn(line, " \t")] == '/' ? line + strspn(line, " \t") + 1 : line);
		return;
	}
	const char *names[96];
	size_t nn = 0;
	for (const struct scmd *c = scmds; c->name && nn < 96; c++)
		names[nn++] = c->name;
	for (const struct command *c = command_table; c && c->name && nn < 96; c++)
		if (!(c->flags & CMD_NO_SHELL))
			names[nn++] = c->name;
	const char *near = fmt_closest(n, names, nn);
	if (near)
		fail(sh, EX_USAGE, "unknown command '%s'; did you mean /%s? (/help lists them)", name, near);
	else
		fail(sh, EX_USAGE, "unknown command '%s' (/help lists them)", name);
}

/* ---- completion ------------------------------------------------------------------- */

static void add_match(const char ***m, size_t *n, const char *s, const char *word_, size_t wlen)
{
	if (strncmp(s, word_, wlen) != 0)
		return;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*m)[i], s) == 0)
			return;
	*m = xrealloc(*m, (*n + 1) * sizeof **m);
	(*m)[(*n)++] = s;
}

/* Bound to Tab: the first word completes to a command, the second to a
 * peer id (/msg, /reconnect), a target (/pub, /peers) or a level (/log). */
static unsigned char complete(EditLine *el, int ch)
{
	struct shell *sh = NULL;
	const LineInfo *li = el_line(el);
	const char *start = li->cursor, **m = NULL;
	char cmd[MAX_WORD], nsbuf[64][MAX_WORD];
	size_t n = 0, wlen, nns = 0;
	int idx = 0;

	el_get(el, EL_CLIENTDATA, &sh);
	while (start > li->buffer && start[-1] != ' ' && start[-1] != '\t')
		start--;
	wlen = (size_t)(li->cursor - start);
	/* Which word is it, and which command does the line start with. */
	const char *p = li->buffer;
	word(&p, cmd, sizeof cmd);
	for (const char *q = li->buffer; q < start; q++)
		if ((q == li->buffer || q[-1] == ' ' || q[-1] == '\t') && *q != ' ' && *q != '\t')
			idx++;
	char wordbuf[MAX_WORD];
	snprintf(wordbuf, sizeof wordbuf, "%.*s", (int)(wlen < MAX_WORD ? wlen : MAX_WORD - 1), start);

	if (idx == 0) {
		static char names[64][24];
		int i = 0;
		for (const struct scmd *c = scmds; c->name && i < 64; c++, i++) {
			snprintf(names[i], sizeof names[i], "%s%s", wordbuf[0] == '/' ? "/" : "", c->name);
			add_match(&m, &n, names[i], wordbuf, wlen);
		}
		for (const struct command *c = command_table; c && c->name && i < 64; c++) {
			if (c->flags & CMD_NO_SHELL)
				continue;
			snprintf(names[i], sizeof names[i], "%s%s", wordbuf[0] == '/' ? "/" : "", c->name);
			add_match(&m, &n, names[i++], wordbuf, wlen);
		}
	} else if (idx == 1 && sh) {
		const char *c = cmd[0] == '/' ? cmd + 1 : cmd;
		if (strcmp(c, "msg") == 0 || strcmp(c, "reconnect") == 0 || strcmp(c, "query") == 0) {
			for (size_t i = 0; i < sh->npeers; i++)
				add_match(&m, &n, sh->peers[i], wordbuf, wlen);
		} else if (strcmp(c, "pub") == 0 || strcmp(c, "peers") == 0) {
			add_match(&m, &n, "*", wordbuf, wlen);
			for (size_t i = 0; i < sh->npeers && nns < 64; i++) {
				const char *at = strchr(sh->peers[i], '@');
				snprintf(nsbuf[nns], sizeof nsbuf[nns], "#%s", at ? at + 1 : "");
				size_t before = n;
				add_match(&m, &n, nsbuf[nns], wordbuf, wlen);
				nns += n > before;
			}
		} else if (strcmp(c, "log") == 0) {
			static const char *const levels[] = { "DEBUG", "INFO", "WARNING", "ERROR" };
			for (size_t i = 0; i < 4; i++)
				add_match(&m, &n, levels[i], wordbuf, wlen);
		}
	}
	unsigned char rc = CC_REFRESH;
	if (n == 0) {
		rc = CC_REFRESH_BEEP;
	} else if (n == 1) {
		el_insertstr(el, m[0] + wlen);
		el_insertstr(el, " ");
	} else {
		/* The longest common prefix, or the list when there is none. */
		size_t common = strlen(m[0]);
		for (size_t i = 1; i < n; i++) {
			size_t j = 0;
			while (j < common && m[i][j] == m[0][j])
				j++;
			common = j;
		}
		if (common > wlen) {
			char ext[MAX_WORD];
			snprintf(ext, sizeof ext, "%.*s", (int)(common - wlen), m[0] + wlen);
			el_insertstr(el, ext);
		} else if (sh) {
			struct buf b = BUF_INIT;
			for (size_t i = 0; i < n; i++)
				buf_printf(&b, "%s%s", i ? "  " : "", m[i]);
			buf_append(&b, "\n", 1);
			shell_write(sh, b.data, b.len);
			buf_free(&b);
			rc = CC_NORM;
		}
	}
	free(m);
	return rc;
}

/* ---- the terminal --------------------------------------------------------------------- */

static char *prompt(EditLine *el)
{
	struct shell *sh = NULL;

	el_get(el, EL_CLIENTDATA, &sh);
	return sh ? sh->prompt : (char *)"chatp2p> ";
}

/* ~/.chatp2p_history ($CHATP2P_HISTFILE overrides; empty: none), like
 * other shells' history files.  Chat lines are private: mode 0600. */
static const char *history_path(void)
{
	static char path[4096];
	const char *env = getenv("CHATP2P_HISTFILE"), *home = getenv("HOME");

	if (env)
		return *env ? env : NULL;
	if (home == NULL || *home == '\0' ||
	    (size_t)snprintf(path, sizeof path, "%s/.chatp2p_history", home) >= sizeof path)
		return NULL;
	return path;
}

static void term_start(struct shell *sh)
{
	HistEvent ev;
	const char *hpath = history_path();

	fmt_utf8_ctype(); /* libedit reads UTF-8 only under a UTF-8 LC_CTYPE */
	sh->hist = history_init();
	history(sh->hist, &ev, H_SETSIZE, 1000);
	history(sh->hist, &ev, H_SETUNIQUE, 1);
	if (hpath)
		history(sh->hist, &ev, H_LOAD, hpath); /* absent the first time */
	sh->interactive = true;
	sh->el = el_init("chatp2pctl", stdin, stdout, stderr);
	el_set(sh->el, EL_CLIENTDATA, sh);
	el_set(sh->el, EL_EDITOR, "emacs");
	el_set(sh->el, EL_SIGNAL, 0);
	el_set(sh->el, EL_PROMPT, prompt);
	el_set(sh->el, EL_HIST, history, sh->hist);
	/* Wide strings: the narrow el_set copies them and never frees them. */
	el_wset(sh->el, EL_ADDFN, L"chatp2p-complete", L"complete a command or a peer id", complete);
	el_set(sh->el, EL_BIND, "^I", "chatp2p-complete", NULL);
	el_source(sh->el, NULL); /* ~/.editrc, as every libedit program */
	/* Unbuffered: el_gets takes one key and returns; prompt shown now. */
	el_set(sh->el, EL_UNBUFFERED, 1);
	sh->editing = true;
}

static void term_new_line(struct shell *sh)
{
	el_set(sh->el, EL_UNBUFFERED, 0); /* finish the line, cooked mode */
	sh->editing = false;
}

static void term_prompt(struct shell *sh)
{
	el_set(sh->el, EL_UNBUFFERED, 1); /* raw mode, empty line, prompt */
	sh->editing = true;
}

static void term_end(struct shell *sh)
{
	if (sh->el) {
		if (sh->editing)
			fputs("\r\n", stdout);
		el_set(sh->el, EL_UNBUFFERED, 0);
		el_end(sh->el);
		const char *hpath = history_path();
		if (hpath) {
			HistEvent ev;
			mode_t old = umask(077);
			history(sh->hist, &ev, H_SAVE, hpath);
			umask(old);
		}
		history_end(sh->hist);
		fflush(stdout);
		sh->el = NULL;
	}
}

static void on_key(struct shell *sh)
{
	int n = 0;
	const char *line = el_gets(sh->el, &n);

	if (line == NULL) {
		if (n == 0) {
			/* End of input: libedit's own ^D on an empty line (it says so
			 * this way after a redraw), as the '\004' below. */
			fputs("\r\n", stdout);
			term_new_line(sh);
			sh->quit = true;
		} else if (errno != EINTR && errno != EAGAIN) {
			sh->quit = true; /* the terminal went away */
		}
		return;
	}
	if (n == 1 && line[0] == '\004') {
		/* Ctrl-D on an empty line: leave on a line of our own, as shells do. */
		fputs("\r\n", stdout);
		term_new_line(sh);
		sh->quit = true;
		return;
	}
	if (n == 0 || (line[n - 1] != '\n' && line[n - 1] != '\r'))
		return; /* still typing */
	char *copy = xstrndup(line, (size_t)n - 1);
	term_new_line(sh);
	if (copy[strspn(copy, " \t")] != '\0') {
		HistEvent ev;
		history(sh->hist, &ev, H_ENTER, copy);
	}
	handle_line(sh, copy);
	free(copy);
	if (!sh->quit)
		term_prompt(sh);
}

/* ---- standard input that is not a terminal ------------------------------------------ */

static int on_in_line(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct shell *sh = ctx;

	if (ev == FRAMER_OVERFLOW) {
		say(sh, "line too long, ignored");
		return 0;
	}
	char *copy = xstrndup(line, len);
	handle_line(sh, copy);
	free(copy);
	return sh->quit;
}

static void on_input(struct shell *sh)
{
	char data[4096];
	ssize_t n = read(STDIN_FILENO, data, sizeof data);

	if (n > 0) {
		framer_feed(&sh->in, data, (size_t)n, on_in_line, sh);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		const char *part;
		size_t len = framer_pending(&sh->in, &part);
		if (len > 0 && !sh->quit) {
			char *copy = xstrndup(part, len);
			handle_line(sh, copy);
			free(copy);
		}
		sh->in_eof = true;
	}
}

/* ---- the loop ------------------------------------------------------------------------- */

/* Events, and the peer ids for completion: at the start and after a
 * reconnect. */
static void subscribe_all(struct shell *sh)
{
	/* "ack" for the late ones only (on_note): a send's outcome is printed
	 * when its answer comes. */
	static const char subs[] = "{\"events\":[\"message\",\"ack\",\"peer\",\"registration\"]}";
	char err[64];

	request(sh, R_SUBSCRIBE, "subscribe", "subscribe", json_parse(subs, strlen(subs), err, sizeof err),
		NULL);
	sh->warming = 2;
	request(sh, R_QUIET_PEERS, "peers", "peers", NULL, NULL);
	request(sh, R_SELF, "version", "version", NULL, NULL);
}

int shell_run(const struct opts *o)
{
	struct shell sh = { .o = o };
	sigset_t block, orig;
	double quit_deadline = 0;
	int rc;

	if ((rc = ctl_open(&sh.c, o->socket, o->timeout)) != EX_OK) {
		warnx_("%s", sh.c.err);
		ctl_close(&sh.c);
		return rc;
	}
	/* Who we are, for the prompt, before the first one is drawn. */
	jval vr = NULL;
	if (ctl_call(&sh.c, "version", NULL, o->timeout, &vr) == EX_OK &&
	    json_get_str(ctl_result(vr), "node"))
		snprintf(sh.self, sizeof sh.self, "%s", json_get_str(ctl_result(vr), "node"));
	json_free(vr);
	set_prompt(&sh);
	if (sh.c.status != EX_OK) {
		warnx_("%s", sh.c.err);
		ctl_close(&sh.c);
		return sh.c.status;
	}
	sh.c.on_note = on_note;
	sh.c.note_ctx = &sh;
	framer_init(&sh.in, CTL_MAX_LINE);

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	sigaction(SIGCONT, &sa, NULL);
	/* Blocked except inside ppoll: a signal cannot slip in between the
	 * flag checks and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGWINCH);
	sigaddset(&block, SIGCONT);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sh.orig_mask = orig;

	subscribe_all(&sh);
	{
		static const char unread[] = "{\"unread\":true,\"limit\":50}";
		char err[64];
		request(&sh, R_UNREAD, "inbox", "inbox", json_parse(unread, strlen(unread), err, sizeof err),
			NULL);
	}
	if (isatty(STDIN_FILENO)) {
		term_start(&sh);
		say(&sh, "connected to %s; /help lists the commands", o->socket);
	}

	rc = EX_OK;
	for (;;) {
		struct pollfd pfd[2] = {
			{ sh.c.fd, ctl_poll_events(&sh.c), 0 },
			{ STDIN_FILENO, POLLIN, 0 },
		};
		struct timespec ts, *tsp = NULL;

		if (got_term)
			break;
		if (got_int) {
			got_int = 0;
			if (sh.el) {
				/* Like a shell: drop the line being typed. */
				fputs("^C\r\n", stdout);
				term_new_line(&sh);
				term_prompt(&sh);
			} else {
				break;
			}
		}
		if (got_winch) {
			got_winch = 0;
			if (sh.el)
				el_resize(sh.el);
		}
		if (got_cont) {
			got_cont = 0;
			if (sh.el && sh.editing) {
				/* Back from Ctrl-Z: the terminal is ours again. */
				el_set(sh.el, EL_PREP_TERM, 1);
				el_set(sh.el, EL_REFRESH);
			}
		}
		if (sh.c.status != EX_OK && !sh.away) {
			if (sh.stopping) {
				say(&sh, "the node has stopped");
			} else if (sh.el && !sh.quit) {
				/* A person at the terminal: wait for the daemon (a restart,
				 * an upgrade) instead of leaving them at a dead prompt. */
				say(&sh, "the daemon went away (%s); waiting for it to come back "
				    "(Ctrl-D leaves)", sh.c.err);
				ctl_close(&sh.c);
				sh.away = true;
				sh.next_try = ctl_now() + RETRY_EVERY;
				continue;
			} else {
				term_end(&sh);
				warnx_("%s", sh.c.err);
				rc = sh.c.eof ? EX_UNREACHABLE : sh.c.status;
			}
			break;
		}
		if (sh.away && ctl_now() >= sh.next_try) {
			if (ctl_open(&sh.c, o->socket, 1.0) == EX_OK) {
				sh.away = false;
				sh.c.on_note = on_note;
				sh.c.note_ctx = &sh;
				subscribe_all(&sh);
				say(&sh, "reconnected to the daemon at %s", o->socket);
				continue; /* pfd was set up for no connection */
			} else {
				ctl_close(&sh.c);
				sh.next_try = ctl_now() + RETRY_EVERY;
			}
		}
		if (sh.away && !(sh.quit || sh.in_eof)) {
			double left = sh.next_try - ctl_now();
			if (left < 0)
				left = 0;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tsp = &ts;
		}
		/* Leaving: at once on a terminal; otherwise after the answers
		 * still due (a script's last /msg wants its outcome). */
		if (sh.quit || sh.in_eof) {
			if (sh.el || sh.away || ctl_pending_count(&sh.c) == 0)
				break;
			if (quit_deadline == 0)
				quit_deadline = o->timeout > 0 ? ctl_now() + o->timeout : -1;
			if (quit_deadline > 0) {
				double left = quit_deadline - ctl_now();
				if (left <= 0) {
					warnx_("answers still due after %g s; leaving", o->timeout);
					rc = EX_TIMEOUT;
					break;
				}
				ts.tv_sec = (time_t)left;
				ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
				tsp = &ts;
			}
		}
		/* Lines wait for the peer list (short names resolve against it). */
		int nfds = sh.quit || sh.in_eof || (sh.warming > 0 && !sh.away) ? 1 : 2;
		if (sh.away)
			pfd[0].fd = -1; /* nothing to watch there: poll ignores it */
		if (ppoll(pfd, (nfds_t)nfds, tsp, &orig) < 0) {
			if (errno == EINTR)
				continue;
			warnx_("poll: %s", strerror(errno));
			rc = EX_UNREACHABLE;
			break;
		}
		if (!sh.away && pfd[0].revents)
			ctl_handle(&sh.c, pfd[0].revents);
		if (nfds > 1 && pfd[1].revents) {
			if (sh.el)
				on_key(&sh);
			else
				on_input(&sh);
		}
	}
	term_end(&sh);
	sigprocmask(SIG_SETMASK, &orig, NULL);
	ctl_close(&sh.c);
	framer_free(&sh.in);
	for (size_t i = 0; i < sh.npeers; i++)
		free(sh.peers[i]);
	free(sh.peers);
	/* Fed by a pipe: a failed command makes the whole run fail. */
	return rc == EX_OK ? sh.fail_rc : rc;
}

int shell_cmd(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : shell_run(o);
}
