/* The client side of the control socket: one connection to chatp2pd, JSON-RPC
 * 2.0 lines both ways.  Requests are queued with a callback and matched to
 * their answers by id, so several can be in flight (the shell never waits
 * for a send).  The caller owns the poll() loop (ctl_poll_events +
 * ctl_handle) or lets ctl_run drive one for one-shot commands. */
#ifndef CHATP2PCTL_CLIENT_H
#define CHATP2PCTL_CLIENT_H
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "framer.h"
#include "json.h"

/* Exit statuses, the contract with scripts (--help, chatp2pctl(1)). */
enum ctl_exit {
	EX_OK = 0,
	EX_DAEMON = 1,       /* the daemon answered with an error */
	EX_UNREACHABLE = 2,  /* no socket, connection refused, daemon gone */
	EX_USAGE = 3,        /* bad command line or input, caught here */
	EX_TIMEOUT = 4,      /* no answer in time, or delivery not confirmed */
	EX_PERM = 5,         /* not allowed to connect to the socket */
	EX_PROTO = 6,        /* garbage or an unexpected EOF from the socket */
};

/* reply: the whole response object ("result" or "error"), owned by the
 * callback (json_free it); NULL when the connection failed first. */
typedef void (*ctl_reply_fn)(void *ctx, jval reply);
/* note: a notification ("event", "lagged"), borrowed for the call. */
typedef void (*ctl_note_fn)(void *ctx, jval note);

struct ctl_pending;

struct ctl_client {
	int fd;
	struct framer fr;
	struct buf out;              /* requests not yet written */
	long long next_id;
	struct ctl_pending *pending; /* requests waiting for their answer */
	ctl_note_fn on_note;
	void *note_ctx;
	bool write_failed;           /* keep reading: the daemon may say why */
	bool eof;                    /* the daemon closed between lines */
	int status;                  /* EX_OK while usable, else why not */
	char err[512];               /* one line, set with status */
};

/* Connect to path within timeout_s (<= 0: no limit).  EX_OK, or
 * EX_UNREACHABLE / EX_PERM / EX_USAGE / EX_TIMEOUT with c->err set. */
int ctl_open(struct ctl_client *c, const char *path, double timeout_s);
/* Close; callbacks still pending are called with NULL. */
void ctl_close(struct ctl_client *c);

/* Queue a request (params: an object, array or NULL) and try to write it.
 * Returns its id, or -1 if the connection is already broken (fn is then
 * not called). */
long long ctl_request(struct ctl_client *c, const char *method, jval params, ctl_reply_fn fn,
		      void *ctx);
/* Requests still waiting for an answer. */
size_t ctl_pending_count(const struct ctl_client *c);

/* For the caller's poll(): the events to wait for on c->fd. */
short ctl_poll_events(const struct ctl_client *c);
/* Act on poll's revents: write what is queued, read and dispatch what
 * arrived.  Returns c->status (EX_OK while the connection is usable). */
int ctl_handle(struct ctl_client *c, short revents);

/* Drive the connection alone until *done (NULL: until it fails or stop
 * is set), timeout_s passes (<= 0: no limit), or *stop becomes non-zero
 * (a signal).  hup_fd (-1: none; needs stop) hanging up sets *stop: a pipe
 * whose reader closed ends "watch | head -1" at once, not at the next
 * event.  Returns EX_OK (done or stopped), EX_TIMEOUT, or c->status. */
int ctl_run(struct ctl_client *c, const bool *done, double timeout_s,
	    volatile sig_atomic_t *stop, int hup_fd);

/* One request, its answer waited for: EX_OK with *reply (json_free it), or
 * EX_TIMEOUT / the connection's failure with c->err set. */
int ctl_call(struct ctl_client *c, const char *method, jval params, double timeout_s,
	     jval *reply);

/* The exit status an answer stands for (EX_OK, EX_DAEMON, EX_TIMEOUT for
 * delivery errors, EX_PROTO for a malformed answer) and, for errors, a
 * one-line description ("message (reason)"). */
int ctl_reply_status(jval reply, char *msg, size_t len);
/* The result of an answer (NULL if it is an error). */
jval ctl_result(jval reply);

/* Seconds on the monotonic clock. */
double ctl_now(void);

#endif
