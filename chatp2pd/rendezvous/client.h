/* The rendezvous client (PROTOCOL.md section 1): REGISTER with retry and
 * backoff, re-REGISTER before expiry, DISCOVER every discover_interval,
 * UNREGISTER at shutdown.  Each request is its own non-blocking TCP
 * transaction (resolve off the loop, connect, one line out, one line in)
 * bounded by limits.rendezvous_timeout.  Rate-limit blocks are honoured. */
#ifndef CHATP2PD_RDV_CLIENT_H
#define CHATP2PD_RDV_CLIENT_H
#include <ev.h>
#include <stdbool.h>

#include "config.h"
#include "msg.h"

struct rdv_client;

enum rdv_reg_state {
	RDV_UNREGISTERED = 0, /* not yet, or after UNREGISTER */
	RDV_REGISTERING,      /* a REGISTER is in flight or waiting to retry */
	RDV_REGISTERED,       /* registered; expires at reg_expires */
	RDV_BLOCKED,          /* the server is rate-limiting us until blocked_until */
};

struct rdv_status {
	enum rdv_reg_state state;
	double expires;       /* monotonic time the registration lapses (REGISTERED) */
	long long ttl;        /* granted ttl */
	char public_ip[64];   /* the address the server saw */
	double blocked_until; /* monotonic (BLOCKED) */
	char last_error[256]; /* last failure, "" if none */
	unsigned requests;    /* transactions started (the budget is 50/min/ip) */
	/* The same by kind, and the failed ones (metrics): index 0 REGISTER,
	 * 1 DISCOVER, 2 UNREGISTER. */
	unsigned kind_requests[3], kind_errors[3];
	double last_discover; /* monotonic, 0 if never */
	unsigned long reregistered; /* REGISTERs because a DISCOVER did not list us */
};

/* Completion of one request started through the API below.  err is NULL on
 * success (reply then holds the server's answer), else a one-line reason
 * (reply may be NULL, or hold an ERROR reply).
 *
 * Callbacks, all on the loop: done is never called from inside the call
 * that passed it (a refusal comes on the next loop iteration); on_state may
 * be (start/register/unregister change the state).  Any callback may call
 * any rdv_client_* function, rdv_client_free() included; after
 * rdv_client_free() no callback runs.  reply, peers and st are only valid
 * during the callback. */
typedef void (*rdv_done_fn)(void *ctx, const char *err, const struct rdv_reply *reply);

struct rdv_client_hooks {
	/* Registration state changed (registered, lapsed, blocked, error). */
	void (*on_state)(void *ctx, const struct rdv_status *st);
	/* Every successful DISCOVER, periodic or on request.  The list is the
	 * server's, self included; the node filters and merges. */
	void (*on_discover)(void *ctx, const struct rdv_peer *peers, size_t n);
	void *ctx;
};

/* name/ns/port/ttl: our identity as registered.  The settings used are
 * copied from cfg (rendezvous.*, limits.rendezvous_timeout,
 * node.discover_namespace).  Nothing is sent before rdv_client_start(). */
struct rdv_client *rdv_client_new(struct ev_loop *loop, const struct config *cfg, const char *name,
				  const char *ns, int port, int ttl,
				  const struct rdv_client_hooks *hooks);
/* REGISTER now (retrying with backoff, for ever, in the background), then
 * DISCOVER at once and every discover_interval. */
void rdv_client_start(struct rdv_client *c);
/* On-demand requests for the control socket; done may be NULL.  They go
 * through the same rate-limit accounting and block handling: while the
 * server blocks us, or when our own budget has no slot left outside the
 * reserve, done gets an error right away, on the next loop iteration
 * ("rate budget exhausted, retry in N s").  A request of the same kind already in flight or due answers the
 * new caller too (coalescing).  rdv_client_register() starts the client if
 * it is not running; otherwise it re-REGISTERs now. */
void rdv_client_discover(struct rdv_client *c, rdv_done_fn done, void *ctx);
void rdv_client_register(struct rdv_client *c, rdv_done_fn done, void *ctx);
/* UNREGISTER (ours: namespace + name + port) and stop periodic work: done
 * is called within rendezvous_timeout whatever happens (on the next loop
 * iteration with an error if never started or blocked).  A REGISTER in
 * flight is abandoned.  final (shutdown): outside the budget, the one
 * request that must go out; otherwise (a controller asked) refused, with
 * nothing changed, while the budget is used up, like an on-demand
 * DISCOVER.  rdv_client_start() may follow. */
void rdv_client_unregister(struct rdv_client *c, bool final, rdv_done_fn done, void *ctx);
/* Reload: take the settings again from cfg, as rdv_client_new() did, for
 * the next transaction and the next timer (a shorter discover_interval
 * also shortens the wait under way).  Nothing in flight is disturbed; the
 * identity (name, namespace, port, ttl) stays. */
void rdv_client_reconfigure(struct rdv_client *c, const struct config *cfg);
const struct rdv_status *rdv_client_status(const struct rdv_client *c);

/* Our own limits, well below the server's (50 connections per 60 s per ip,
 * shared by every node behind that ip).  rdv_client_new() sets the
 * defaults shown; tests shorten them.  Setting them resets the budget. */
struct rdv_tuning {
	unsigned budget;      /* requests started per window, at most 64: 10 */
	double budget_window; /* seconds: 60 */
	unsigned reserve;     /* of budget, never used by on-demand requests: 2 */
	double retry_max;     /* cap of the REGISTER retry interval: 60 s */
	double silent_pause;  /* pause after a close without any reply: 60 s */
};
void rdv_client_get_tuning(const struct rdv_client *c, struct rdv_tuning *t);
void rdv_client_set_tuning(struct rdv_client *c, const struct rdv_tuning *t);
const char *rdv_reg_state_name(enum rdv_reg_state s);
/* Cancel everything in flight (no callbacks after this) and free. */
void rdv_client_free(struct rdv_client *c);

#endif
