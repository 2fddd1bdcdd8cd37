#include "node/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node/router.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Outbox"

struct entry {
	struct entry *next, *prev;
	struct outbox *ob;
	char msg_id[MSGID_LEN];
	char to[PEER_ID_MAX + 1];
	char *text;
	double created, deadline;   /* wall clock */
	int attempts;
	bool in_flight;             /* the router holds it (ctx = this entry) */
	bool detached;              /* out of the list; freed when the router answers */
	bool due;                   /* deadline passed while in flight */
	ev_timer timer;             /* the deadline */
	node_send_cb cb;            /* the waiting controller, if any */
	void *ctx;
};

struct outbox {
	struct node *node;
	struct entry *head;
	struct entry *zombies;      /* detached, in flight */
	int count;
};

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents);

struct outbox *outbox_new(struct node *n)
{
	struct outbox *ob = xcalloc(1, sizeof *ob);

	ob->node = n;
	return ob;
}

static void entry_free(struct entry *e)
{
	ev_timer_stop(node_loop(e->ob->node), &e->timer);
	free(e->text);
	free(e);
}

void outbox_free(struct outbox *ob)
{
	struct entry *e, *next;

	if (ob == NULL)
		return;
	for (e = ob->head; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	for (e = ob->zombies; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	free(ob);
}

static struct entry *find(const struct outbox *ob, const char *msg_id)
{
	for (struct entry *e = ob->head; e; e = e->next)
		if (strcmp(e->msg_id, msg_id) == 0)
			return e;
	return NULL;
}

static void unlink_entry(struct entry *e)
{
	struct outbox *ob = e->ob;

	if (e->prev)
		e->prev->next = e->next;
	else
		ob->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->next = e->prev = NULL;
	ob->count--;
}

static struct entry *entry_new(struct outbox *ob, const char *msg_id, const char *to,
			       const char *text, double created, double deadline, int attempts)
{
	struct entry *e = xcalloc(1, sizeof *e);
	double left = deadline - wall_now();

	e->ob = ob;
	snprintf(e->msg_id, sizeof e->msg_id, "%s", msg_id);
	snprintf(e->to, sizeof e->to, "%s", to);
	e->text = xstrdup(text);
	e->created = created;
	e->deadline = deadline;
	e->attempts = attempts;
	ev_timer_init(&e->timer, on_deadline, left > 0 ? left : 0, 0);
	e->timer.data = e;
	ev_timer_start(node_loop(ob->node), &e->timer);
	/* Appended: the list is in queueing order, so delivery is too. */
	struct entry **pp = &ob->head, *prev = NULL;
	while (*pp) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	e->prev = prev;
	*pp = e;
	ob->count++;
	return e;
}

/* The end of a queued message: out of the database, the outcome told. */
static void finish(struct entry *e, enum send_result res, double rtt_ms, const char *detail)
{
	struct outbox *ob = e->ob;

	storage_outbox_remove(node_storage(ob->node), e->msg_id);
	if (!e->detached)
		unlink_entry(e);
	if (res == SEND_EXPIRED) {
		struct node_event ev = { .type = EV_EXPIRED, .peer_id = e->to, .msg_id = e->msg_id,
					 .text = detail };
		log_warn(MOD, "%s to %s expired: %s", e->msg_id, e->to, detail);
		node_emit(ob->node, &ev);
	}
	if (e->cb)
		e->cb(e->ctx, res, e->msg_id, rtt_ms, detail);
	if (e->in_flight) {
		/* The router still holds it: answered there, freed then. */
		e->detached = true;
		e->cb = NULL;
		ev_timer_stop(node_loop(ob->node), &e->timer);
		e->next = ob->zombies;
		if (ob->zombies)
			ob->zombies->prev = e;
		e->prev = NULL;
		ob->zombies = e;
		return;
	}
	entry_free(e);
}

static void zombie_free(struct entry *e)
{
	struct outbox *ob = e->ob;

	if (e->prev)
		e->prev->next = e->next;
	else
		ob->zombies = e->next;
	if (e->next)
		e->next->prev = e->prev;
	entry_free(e);
}

static void on_sent(void *ctx, enum send_result r, const char *msg_id, double rtt_ms,
		    const char *detail)
{
	struct entry *e = ctx;
	int max = node_config(e->ob->node)->storage.max_attempts;

	e->in_flight = false;
	if (e->detached) {
		zombie_free(e);
		return;
	}
	switch (r) {
	case SEND_ACKED:
	case SEND_SENT:
		finish(e, SEND_ACKED, rtt_ms, NULL);
		return;
	case SEND_FAILED:
		finish(e, SEND_FAILED, 0, detail);
		return;
	case SEND_NOT_CONNECTED:
	case SEND_UNKNOWN_PEER:
		/* It never left: not an attempt. */
		e->attempts--;
		storage_outbox_attempt(node_storage(e->ob->node), e->msg_id, e->attempts);
		break;
	default:
		break;
	}
	if (e->due)
		finish(e, SEND_EXPIRED, 0, "deadline passed");
	else if (e->attempts >= max)
		finish(e, SEND_EXPIRED, 0, "no ACK after storage.max_attempts sends");
	else if (r == SEND_ACK_TIMEOUT)
		log_info(MOD, "%s to %s: no ACK (attempt %d of %d); again on the next connection",
			 e->msg_id, e->to, e->attempts, max);
}

static void attempt(struct entry *e)
{
	e->attempts++;
	e->in_flight = true;
	storage_outbox_attempt(node_storage(e->ob->node), e->msg_id, e->attempts);
	log_debug(MOD, "sending %s to %s (attempt %d)", e->msg_id, e->to, e->attempts);
	router_send_id(node_router(e->ob->node), e->to, e->text, e->msg_id, on_sent, e);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct entry *e = w->data;

	if (e->in_flight) {
		e->due = true;  /* the ACK may still come: on_sent decides */
		return;
	}
	finish(e, SEND_EXPIRED, 0, "deadline passed");
}

static void load_one(void *ctx, const struct stored_out *o)
{
	struct outbox *ob = ctx;

	if (o->msg_id && o->to && o->text && find(ob, o->msg_id) == NULL)
		entry_new(ob, o->msg_id, o->to, o->text, o->created, o->deadline, o->attempts);
}

void outbox_load(struct outbox *ob)
{
	int n = storage_outbox_load(node_storage(ob->node), load_one, ob);

	if (n > 0)
		log_info(MOD, "%d queued message(s) picked up again", n);
}

void outbox_queue(struct outbox *ob, const char *to, const char *text, double deadline_s,
		  node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN])
{
	const struct config *cfg = node_config(ob->node);
	struct peer *p = peer_id_valid(to) ? peer_find(node_peer_table(ob->node), to) : NULL;
	char id[MSGID_LEN], detail[160];
	struct buf line = BUF_INIT;
	double now = wall_now();

	/* The caller's id when it brings one (as node_send): a client that
	 * stops waiting can still name the message (outbox --cancel). */
	if (msg_id_out && msg_id_out[0])
		memcpy(id, msg_id_out, MSGID_LEN);
	else
		msgid_new(id);
	if (msg_id_out)
		memcpy(msg_id_out, id, MSGID_LEN);
	if (p == NULL) {
		cb(ctx, SEND_UNKNOWN_PEER, id, 0, "unknown peer");
		return;
	}
	/* Refuse now what could never be sent, not at every attempt. */
	if (pmsg_build_send(&line, id, node_id(ob->node), to, text, true) != 0) {
		cb(ctx, SEND_FAILED, id, 0, "text is not valid UTF-8");
		return;
	}
	if (line.len - 1 > (size_t)cfg->network.max_msg_size) {
		snprintf(detail, sizeof detail, "message too long: %zu bytes on the wire, the limit is %d",
			 line.len - 1, cfg->network.max_msg_size);
		buf_free(&line);
		cb(ctx, SEND_FAILED, id, 0, detail);
		return;
	}
	buf_free(&line);
	if (deadline_s <= 0)
		deadline_s = cfg->storage.queue_deadline;
	struct entry *e = entry_new(ob, id, to, text, now, now + deadline_s, 0);
	e->cb = cb;
	e->ctx = ctx;
	struct stored_out so = { e->msg_id, e->to, e->text, e->created, e->deadline, 0 };
	storage_outbox_add(node_storage(ob->node), &so);
	if (p->conn) {
		attempt(e);
	} else {
		log_info(MOD, "%s queued for %s (not connected): dialling", id, to);
		node_reconnect(ob->node, to);
	}
}

void outbox_conn_up(struct outbox *ob, const char *peer_id)
{
	struct entry *e, *next;

	for (e = ob->head; e; e = next) {
		next = e->next;
		if (!e->in_flight && strcmp(e->to, peer_id) == 0)
			attempt(e);
	}
}

void outbox_acked(struct outbox *ob, const char *peer_id, const char *msg_id)
{
	struct entry *e = find(ob, msg_id);

	/* In flight, the router's callback settles it. */
	if (e && !e->in_flight && strcmp(e->to, peer_id) == 0)
		finish(e, SEND_ACKED, 0, NULL);
}

bool outbox_cancel(struct outbox *ob, const char *msg_id)
{
	struct entry *e = find(ob, msg_id);

	if (e == NULL)
		return false;
	log_info(MOD, "%s to %s cancelled", e->msg_id, e->to);
	finish(e, SEND_CANCELLED, 0, "cancelled");
	return true;
}

void outbox_foreach(const struct outbox *ob, outbox_item_fn fn, void *ctx)
{
	for (const struct entry *e = ob->head; e; e = e->next) {
		struct outbox_item it = { e->msg_id, e->to, e->created, e->deadline, e->attempts,
					  e->in_flight };
		fn(ctx, &it);
	}
}

int outbox_count(const struct outbox *ob)
{
	return ob ? ob->count : 0;
}
