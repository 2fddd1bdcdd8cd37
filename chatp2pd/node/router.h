/* Messages in and out: SENDs awaiting their ACK (timers, retransmission on
 * a new connection, completion callbacks), PUB fan-out, duplicate
 * suppression, and delivery.  router_deliver() is the one place a message
 * reaches the user, so a durable store can slot in ahead of the ACK. */
#ifndef CHATP2PD_ROUTER_H
#define CHATP2PD_ROUTER_H
#include <stdbool.h>

#include "msg.h"
#include "msgid.h"
#include "node/core.h"
#include "node/session.h"

struct router;

struct router *router_new(struct node_core *core);
void router_free(struct router *r);

void router_send(struct router *r, const char *to, const char *text, bool require_ack,
		 node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN]);
/* A SEND with a given msg_id (the outbox sending a stored message again).
 * *written (may be NULL) is set before cb runs: whether the socket took it
 * (an ACK timeout may come while it still waits in the output queue). */
void router_send_id(struct router *r, const char *to, const char *text, const char *msg_id,
		    node_send_cb cb, void *ctx, bool *written);
int router_pub(struct router *r, const char *dst, const char *text, char msg_id_out[MSGID_LEN],
	       char *err, size_t errlen);

/* From the connections. */
void router_on_ack(struct router *r, struct session *c, const char *msg_id);
/* A SEND or PUB arrived on c (the handshake's peer_id is the sender). */
void router_on_message(struct router *r, struct session *c, const struct pmsg *m);
/* c became the peer's connection: SENDs still awaiting an ACK go again. */
void router_conn_up(struct router *r, struct session *c);
/* c's output queue drained to low water: SENDs not yet resent on it go. */
void router_conn_drained(struct router *r, struct session *c);

#endif
