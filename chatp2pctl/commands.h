/* chatp2pctl's commands: one table entry each { name, synopsis, summary,
 * run }, so adding a command touches this table and one function.  Shared
 * with the shell: input checks and request parameters. */
#ifndef CHATP2PCTL_COMMANDS_H
#define CHATP2PCTL_COMMANDS_H
#include <stdbool.h>
#include <stdio.h>

#include "client.h"
#include "json.h"

#define DEFAULT_TIMEOUT 30.0 /* seconds; a send waits for its ACK within it */

struct opts {
	char socket[108];   /* sun_path */
	bool json;          /* -o json (--json) */
	double timeout;     /* seconds, 0: no limit */
	bool time_set;      /* --time given (watch: else local time) */
};

struct command {
	const char *name;
	const char *synopsis;
	const char *summary;
	/* argv[0] is the command's name; returns the exit status. */
	int (*run)(const struct opts *o, int argc, char **argv);
	/* The command's own short options (getopt letters): these win over
	 * the global ones of the same letter after the command's name. */
	const char *shortopts;
};

extern const struct command commands[];  /* NULL name ends it */
const struct command *command_find(const char *name);
/* The command name closest to a mistyped one, or NULL. */
const char *command_suggest(const char *name);
void usage(FILE *f);
/* "usage: chatp2pctl [options] NAME SYNOPSIS" and the summary. */
void command_usage(const struct command *c, FILE *f);

/* "chatp2pctl: …" on stderr. */
void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- checks of user input (exit 3 when they fail) ---------------------------- */
bool peer_id_ok(const char *s);        /* name@namespace */
bool target_ok(const char *s);         /* "*" or "#ns" */
bool level_ok(const char *s);          /* debug, info, warning, warn, error */
bool event_class_ok(const char *s);    /* message, ack, peer, registration, log, all */

/* ---- request parameters ----------------------------------------------------- */
/* Each returns a parsed object for ctl_request (json_free it), or NULL
 * when text is not valid UTF-8. */
jval params_send_queued(const char *to, const char *text, double deadline);
jval params_send(const char *to, const char *text, bool require_ack);
/* The same with our own msg_id (the daemon uses it): a client that stops
 * waiting can still name the message. */
jval params_send_id(const char *to, const char *text, bool require_ack, const char *msg_id);
jval params_pub(const char *to, const char *text);
jval params_kv(const char *key, const char *value);   /* {key: value}, {} if value NULL */

/* PEER as typed → a peer id: "bob" resolves to the one peer named bob in
 * any namespace (any case); a full id passes.  Asks the daemon (peers,
 * version) on c.  EX_OK with out set, or the failure reported (EX_USAGE:
 * ourselves, ambiguous; EX_TIMEOUT: unknown, with the closest ids). */
int resolve_peer(struct ctl_client *c, double timeout, const char *cmd, const char *typed,
		 char *out, size_t outlen);
/* "did you mean …" for an unknown peer id among the known ones, into buf
 * ("" when nothing is close). */
void suggest_peers(jval peers_result, const char *typed, char *buf, size_t len);

/* The shell: interactive on a terminal, line by line otherwise. */
int shell_run(const struct opts *o);

#endif
