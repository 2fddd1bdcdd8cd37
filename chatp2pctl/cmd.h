/* chatp2pctl's commands: what a command is (one entry of the table in
 * cmd_table.c: name, usage, help, options, run), and what the commands
 * share: checks of user input, request parameters, one call to the daemon.
 * The commands themselves are in cmd_*.c, one file per group (as tmux's
 * cmd-*.c).  The one-shot command line (main.c) and the shell (shell.c)
 * both run them from the same table; nothing here knows either of them. */
#ifndef CHATP2PCTL_CMD_H
#define CHATP2PCTL_CMD_H
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "client.h"
#include "json.h"

#define DEFAULT_TIMEOUT 30.0 /* seconds; a send waits for its ACK within it */

struct opts {
	char socket[108];   /* sun_path */
	bool json;          /* -o json (--json) */
	double timeout;     /* seconds, 0: no limit */
	bool timeout_set;   /* -t given (recv: else no limit) */
	bool time_set;      /* --time given (watch: else local time) */
	bool in_shell;      /* run from the shell's line, not the command line */
};

/* Entry flags. */
#define CMD_NO_SHELL 0x1    /* not offered as /command inside the shell */

struct command {
	const char *name;
	const char *usage;      /* the synopsis after the name */
	const char *help;       /* one line: what it does */
	/* Every option and operand, one "  -x, --long ARG  what" line each
	 * (help CMD, CMD --help); NULL when there is none. */
	const char *options;
	/* argv[0] is the command's name; returns the exit status. */
	int (*run)(const struct opts *o, int argc, char **argv);
	/* The command's own short options (getopt letters): these win over
	 * the global ones of the same letter after the command's name. */
	const char *shortopts;
	const char *example;    /* one command line, or NULL */
	unsigned flags;
};

/* The table, set once by main (cmd_table.c holds it) before any command
 * runs: the commands and the shell find each other's entries through it,
 * never by including each other.  A NULL name ends it. */
extern const struct command *command_table;
const struct command *command_find(const char *name);
/* The command name closest to a mistyped one, or NULL. */
const char *command_suggest(const char *name);

/* "chatp2pctl: …" on stderr. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "chatp2pctl: CMD: …  (usage: …)" on stderr; returns EX_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checks of user input (exit 3 when they fail) ---------------------------- */
bool peer_id_ok(const char *s);        /* name@namespace */
bool peer_arg_ok(const char *s);       /* a peer id, or a name (no '@', no spaces) */
bool target_ok(const char *s);         /* "*" or "#ns" */
bool level_ok(const char *s);          /* debug, info, warning, warn, error */
bool event_class_ok(const char *s);    /* message, ack, peer, registration, log, all */
/* "90", "90s", "10m", "2h", "1d": seconds, or -1. */
double parse_duration(const char *s);
/* A time option (--since, --until): as fmt_parse_when reads it, or a usage
 * error that shows the forms. */
bool when_arg(const char *cmd, const char *opt, const char *val, time_t *out);

/* ---- request parameters ----------------------------------------------------- */
/* Each returns a parsed object for ctl_request (json_free it), or NULL
 * when text is not valid UTF-8. */
/* msg_id: ours (the daemon uses it: a client that stops waiting can still
 * name the message), or NULL. */
jval params_send(const char *to, const char *text, bool require_ack, const char *msg_id);
jval params_send_queued(const char *to, const char *text, double deadline, const char *msg_id);
jval params_pub(const char *to, const char *text);
jval params_kv(const char *key, const char *value);   /* {key: value}, {} if value NULL */
/* Building parameters by hand: a string member (false: not UTF-8, null
 * written), and the map closed and parsed (NULL unless ok). */
bool kstr(yajl_gen g, const char *k, const char *v);
jval params_end(yajl_gen g, bool ok);

/* ---- talking to the daemon ---------------------------------------------------- */
int open_or_report(struct ctl_client *c, const struct opts *o);
/* One request on an open client: its error, or the daemon's ("what: …"),
 * is reported; *reply is the answer only when EX_OK (else NULL).  params
 * stay the caller's. */
int client_call(struct ctl_client *c, const struct opts *o, const char *what, const char *method,
		jval params, jval *reply);
/* Connect, ask, wait: EX_OK with the answer in *reply (a result), or the
 * failure reported on stderr ("WHAT: …") and its exit status. */
int one_call(const struct opts *o, const char *what, const char *method, jval params,
	     jval *reply);
/* Subscribe with params (taken; c->on_note set), then dispatch events
 * until stopped: SIGINT, SIGTERM, SIGHUP, or follow_stop set by on_note
 * (or by hup_fd hanging up, -1: none, as ctl_run).  deadline: ctl_now()
 * to give up at (0: never).  EX_OK when stopped, EX_TIMEOUT at the
 * deadline, else the failure, reported. */
extern volatile sig_atomic_t follow_stop;
int follow_events(const struct opts *o, struct ctl_client *c, jval params, double deadline,
		  int hup_fd);
/* One request (params taken), its result printed by human or as JSON. */
int simple(const struct opts *o, const char *method, jval params,
	   void (*human)(FILE *f, jval result));
/* With --json, a failed send prints its error object on standard output. */
void print_error_json(jval error);

/* ---- arguments ------------------------------------------------------------------ */
/* getopt_long over a command's own argv; '?' after reporting a usage error. */
int cmd_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
void reset_getopt(void);
/* "--json" for a mistyped "--jsno": the closest global or longopts name
 * (static storage), or NULL. */
const char *option_suggest(const char *typed, const struct option *longopts);
/* TEXT… joined by spaces, or standard input; NULL after reporting. */
char *text_arg(const char *cmd, int argc, char **argv);
/* "--" dropped once, for commands without options; the new argc. */
int strip_dashdash(int argc, char **argv);
/* EX_OK, or a usage error for an argument after the name. */
int no_args(int argc, char **argv);
void sleep_s(double s);

/* ---- answers -------------------------------------------------------------------- */
const char *jstr_or(jval obj, const char *key, const char *dflt);
long long jint_or(jval obj, const char *key, long long dflt);

/* ---- peers by name ------------------------------------------------------------- */
/* PEER as typed → a peer id: "bob" resolves to the one peer named bob in
 * any namespace (any case); a full id passes.  Asks the daemon (peers,
 * version) on c.  EX_OK with out set, or the failure reported (EX_USAGE:
 * ourselves, ambiguous; EX_TIMEOUT: unknown, with the closest ids). */
int resolve_peer(struct ctl_client *c, double timeout, const char *cmd, const char *typed,
		 char *out, size_t outlen);
/* "did you mean …" for an unknown peer id among the known ones, into buf
 * ("" when nothing is close). */
void suggest_peers(jval peers_result, const char *typed, char *buf, size_t len);
/* After the daemon said unknown_peer for id: why, into buf.  true when id
 * is this node itself. */
bool unknown_peer_hint(struct ctl_client *c, double timeout, const char *id, char *buf,
		       size_t len);

#endif
