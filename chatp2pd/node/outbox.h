/* The outbox: SENDs queued for a peer that may not be connected now
 * (control "send" with "queue").  Each waits, persisted through store/storage.c,
 * until a connection to its peer comes up, is sent with its one msg_id
 * (again on each new connection after an ACK timeout, up to
 * storage.max_attempts; receivers dedupe), and ends ACKed or expired (its
 * deadline passed, or attempts used up), which the waiting controller and
 * the event stream hear of.  Queued messages survive a restart. */
#ifndef CHATP2PD_OUTBOX_H
#define CHATP2PD_OUTBOX_H
#include <stdbool.h>

#include "msgid.h"
#include "node/core.h"

struct router;
struct session;

struct outbox;

struct outbox *outbox_new(struct node_core *core, struct router *router);
/* Callbacks are not called: the controllers are gone by now (control.h). */
void outbox_free(struct outbox *ob);
/* Pick up what the database holds (at start). */
void outbox_load(struct outbox *ob);

void outbox_queue(struct outbox *ob, const char *to, const char *text, double deadline_s,
		  node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN]);
/* A connection to peer_id came up: send what waits for it. */
void outbox_conn_up(struct outbox *ob, const char *peer_id);
/* c's output queue drained to low water (session_room): send more. */
void outbox_conn_drained(struct outbox *ob, struct session *c);
/* storage.outbox_max messages are queued: outbox_queue() refuses more. */
bool outbox_full(const struct outbox *ob);
/* An ACK (possibly late) for msg_id from peer_id. */
void outbox_acked(struct outbox *ob, const char *peer_id, const char *msg_id);
/* The same, as a node event subscriber (ctx: the outbox; EV_ACK only). */
void outbox_on_event(void *ctx, const struct node_event *ev);
/* Remove one; its controller is told "cancelled".  false if not queued. */
bool outbox_cancel(struct outbox *ob, const char *msg_id);

struct outbox_item {
	const char *msg_id;
	const char *to;
	double created, deadline;  /* wall clock */
	int attempts;
	bool in_flight;            /* sent, ACK awaited */
};
typedef void (*outbox_item_fn)(void *ctx, const struct outbox_item *it);
void outbox_foreach(const struct outbox *ob, outbox_item_fn fn, void *ctx);
int outbox_count(const struct outbox *ob);

#endif
