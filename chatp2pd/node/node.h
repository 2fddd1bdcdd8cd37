/* The chat node: identity, listener, peer table, sessions (connection
 * choice), message routing, rendezvous client, shutdown.  This header is
 * the interface the layer above (control/, main.c) uses; what the node has
 * to say goes up as node events (node/event.h) to whoever subscribed. */
#ifndef CHATP2PD_NODE_H
#define CHATP2PD_NODE_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "msgid.h"
#include "node/event.h"
#include "node/peer_table.h"
#include "node/session.h"
#include "rendezvous/client.h"

struct node;
struct router;
struct storage;
struct outbox;
struct pinger;
struct node_stats;

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
/* The node's identity key (main.c loads it from the state directory dir
 * before the loop): TLS with it, and the pins kept in dir/pins.db.  Without
 * this call the node never offers nor takes TLS.  -1 with a one-line err. */
struct keys_identity;
struct node_identity;
int node_set_identity(struct node *n, const struct keys_identity *keys, const char *dir,
		      char *err, size_t errlen);
/* Its fingerprint, pins, refusals (node/identity.h). */
const struct node_identity *node_identity(const struct node *n);
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
/* Hear every node event, after the node's own parts (outbox, stats).
 * Returns -1 when there is no room (NODE_EVENT_SUBS). */
int node_subscribe(struct node *n, node_event_fn fn, void *ctx);
void node_unsubscribe(struct node *n, node_event_fn fn, void *ctx);

/* ---- what controllers can ask --------------------------------------------- */

const char *node_id(const struct node *n);      /* name@namespace */
const char *node_ns(const struct node *n);
int node_listen_port(const struct node *n);
const char *node_listen_addr(const struct node *n);  /* as bound (or passed) */
double node_started(const struct node *n);      /* wall clock */
const struct config *node_config(const struct node *n);
struct ev_loop *node_loop(const struct node *n);
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
/* Sessions (connections), established or not, primary or not. */
struct session *node_conns(const struct node *n);
/* Counters (node/stats.h) and on-demand pings (node/ping.h). */
struct node_stats *node_stats(struct node *n);
struct pinger *node_pinger(struct node *n);

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

#endif
