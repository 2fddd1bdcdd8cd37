/* The chat node: identity, listener, peer table, connections, message
 * routing, rendezvous client, shutdown.  This header is the interface the
 * control socket uses; node_conn_* are the callbacks of conn.c. */
#ifndef CHATP2PD_NODE_H
#define CHATP2PD_NODE_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "net/conn.h"
#include "msgid.h"
#include "node/peer_table.h"
#include "rendezvous/client.h"

struct node;
struct router;
struct storage;
struct outbox;

/* ---- events: what controllers can subscribe to ------------------------- */

enum node_event_type {
	EV_MESSAGE,          /* a SEND delivered to us */
	EV_PUB,              /* a PUB delivered to us */
	EV_ACK,              /* a SEND of ours was ACKed */
	EV_ACK_TIMEOUT,      /* a SEND of ours got no ACK within ack_timeout */
	EV_PEER_CONNECTED,   /* a connection became the peer's (ACTIVE) */
	EV_PEER_DISCONNECTED,/* the peer's connection closed (peer left: BYE) */
	EV_PEER_STALE,       /* the peer's connection was lost */
	EV_PEER_DISCOVERED,  /* a new peer appeared in a DISCOVER */
	EV_REGISTRATION,     /* the rendezvous registration changed state */
	EV_EXPIRED,          /* a queued SEND of ours was given up (deadline, attempts) */
	EV__COUNT
};

struct node_event {
	enum node_event_type type;
	const char *peer_id;   /* the other side (from, to, or the peer) */
	const char *to;        /* MESSAGE/PUB: dst as written */
	const char *text;      /* MESSAGE/PUB payload; DISCONNECTED/STALE reason */
	const char *msg_id;
	double rtt_ms;         /* ACK */
	bool src_mismatch;     /* MESSAGE/PUB: src differs from the handshake */
	bool reconnected;      /* PEER_CONNECTED: it had been connected before */
	bool late;             /* ACK: after its ack_timeout had been reported */
	const struct rdv_status *reg; /* REGISTRATION */
	long long inbox_id;    /* MESSAGE/PUB: its inbox row (0: not stored) */
};

typedef void (*node_event_fn)(void *ctx, const struct node_event *ev);
const char *node_event_name(enum node_event_type t);

/* ---- life cycle ----------------------------------------------------------- */

/* Validates identity (name, namespace) and binds the listener.  NULL with a
 * one-line err (the caller exits 2 for identity errors, 1 otherwise). */
struct node *node_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen);
/* The same, adopting listen_fd (a listening TCP socket passed by the service
 * manager) instead of binding node.listen:node.port.  The node owns the fd
 * once this succeeds; on failure it is left to the caller. */
struct node *node_new_with_fd(struct ev_loop *loop, const struct config *cfg, int listen_fd,
			      char *err, size_t errlen);
/* Start registering, discovering and dialling. */
void node_start(struct node *n);
/* Graceful stop: BYE to every peer, wait for BYE_OK (bye_timeout),
 * UNREGISTER (rendezvous_timeout), then done(ctx).  Idempotent. */
void node_shutdown(struct node *n, void (*done)(void *ctx), void *ctx);
void node_free(struct node *n);
/* Apply a reloaded configuration without dropping connections: levels,
 * intervals, timeouts and limits.  Identity and sockets (node.name,
 * namespace, listen, port, control.socket, rendezvous address) are fixed for
 * the life of the process: changes to them are refused and named in note
 * (empty if none).  Returns the number of refused keys. */
int node_reload(struct node *n, const struct config *cfg, char *note, size_t notelen);
void node_set_event_hook(struct node *n, node_event_fn fn, void *ctx);

/* ---- what controllers can ask --------------------------------------------- */

const char *node_id(const struct node *n);      /* name@namespace */
const char *node_ns(const struct node *n);
int node_listen_port(const struct node *n);
const char *node_listen_addr(const struct node *n);  /* as bound (or passed) */
double node_started(const struct node *n);      /* wall clock */
const struct config *node_config(const struct node *n);
const struct peer_table *node_peer_table(const struct node *n);
const struct rdv_status *node_registration(const struct node *n);
/* What the node refused or dropped to defend itself (status). */
struct node_guard {
	unsigned long impostors;      /* claimed the id of a peer answering elsewhere */
	unsigned long per_ip_refused; /* over limits.max_connections_per_ip */
	unsigned long pressure_drops; /* idle unauthenticated, dropped for room */
	unsigned long forgotten;      /* met-only peers forgotten after they left */
};
const struct node_guard *node_guard(const struct node *n);
/* Connections, established or not, primary or not. */
struct conn *node_conns(const struct node *n);

enum send_result {
	SEND_ACKED,          /* the ACK came back */
	SEND_SENT,           /* written; no ACK was asked for */
	SEND_ACK_TIMEOUT,    /* no ACK within ack_timeout */
	SEND_NOT_CONNECTED,  /* known peer, no connection */
	SEND_UNKNOWN_PEER,   /* never heard of it */
	SEND_FAILED,         /* bad input or queue full */
	SEND_EXPIRED,        /* queued: deadline passed or attempts used up */
	SEND_CANCELLED,      /* queued: removed by outbox cancel */
};
const char *send_result_name(enum send_result r);
typedef void (*node_send_cb)(void *ctx, enum send_result r, const char *msg_id, double rtt_ms,
			     const char *detail);

/* SEND text to peer_id.  The callback runs exactly once, possibly before
 * node_send returns (errors, require_ack false).  msg_id_out may be NULL;
 * when it holds an id (non-empty), the SEND uses that one. */
void node_send(struct node *n, const char *to, const char *text, bool require_ack,
	       node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN]);
/* Queue text for peer_id in the outbox: sent now if connected, else when
 * a connection comes up (a dial is started), again on each new connection
 * after an ACK timeout, up to storage.max_attempts, until deadline_s
 * seconds from now (<= 0: storage.queue_deadline).  The callback runs once:
 * SEND_ACKED, SEND_EXPIRED, SEND_CANCELLED or an error.  msg_id_out as
 * node_send's: an id it holds is the one used. */
void node_queue(struct node *n, const char *to, const char *text, double deadline_s,
		node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN]);
struct storage *node_storage(const struct node *n);  /* NULL: none */
struct outbox *node_outbox(const struct node *n);
struct router *node_router(const struct node *n);
/* PUB to "*" or "#ns" (or "ns").  Returns the number of peers it was
 * written to, or -1 with err. */
int node_pub(struct node *n, const char *dst, const char *text, char msg_id_out[MSGID_LEN],
	     char *err, size_t errlen);
/* Dial now, resetting backoff: one peer (NULL: every peer not ACTIVE).
 * Returns the number of dials started, -1 if peer_id is unknown. */
int node_reconnect(struct node *n, const char *peer_id);
void node_discover(struct node *n, rdv_done_fn done, void *ctx);
void node_register(struct node *n, rdv_done_fn done, void *ctx);
void node_unregister(struct node *n, rdv_done_fn done, void *ctx);

/* ---- callbacks from conn.c ------------------------------------------------ */

struct ev_loop *node_loop(const struct node *n);
/* Report an event to the hook (router.c and node.c). */
void node_emit(struct node *n, const struct node_event *ev);
/* An inbound HELLO: false refuses the connection. */
bool node_conn_hello(struct node *n, struct conn *c, const struct pmsg *m);
/* Handshake complete (either direction). */
void node_conn_established(struct node *n, struct conn *c);
/* Any message after the handshake (not PING/PONG/BYE*, handled by conn). */
void node_conn_message(struct node *n, struct conn *c, const struct pmsg *m);
void node_conn_rtt(struct node *n, struct conn *c, double ms);
/* The peer said BYE. */
void node_conn_bye(struct node *n, struct conn *c);
/* A probed connection answered (conn_probe). */
void node_conn_alive(struct node *n, struct conn *c);
/* Closed: the node unlinks it; conn.c frees it afterwards. */
void node_conn_closed(struct node *n, struct conn *c, const char *reason);

#endif
