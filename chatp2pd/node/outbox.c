#include "node/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "log.h"
#include "node/identity.h"
#include "node/router.h"
#include "node/session.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Outbox"

/* Every entry is on the outbox's list (queueing order: outbox_foreach),
 * in the msg_id hash table, and, while not in flight, on its peer's list
 * of messages to send: queueing, an ACK and a connection coming up cost
 * O(1) per message, whatever the backlog (issue 18: an O(n) walk per
 * queued send and per ACK took 356 s of CPU for 100,000). */
struct entry {
	struct entry *next, *prev;  /* the outbox's list */
	struct entry *hnext;        /* msg_id hash chain */
	struct entry *pnext, *pprev; /* its peer's waiting or later list */
	struct outq *q;
	bool on_later;              /* on q->later (else q->waiting, if linked) */
	bool linked;                /* on one of its peer's lists */
	struct outbox *ob;
	char msg_id[MSGID_LEN];
	char to[PEER_ID_MAX + 1];
	char *text;
	int64_t row;                /* its database row (0: none) */
	double created, deadline;   /* wall clock */
	int attempts;               /* sends the socket took (not merely queued) */
	bool in_flight;             /* the router holds it (ctx = this entry) */
	bool written;               /* set by the router: this send left the queue */
	bool detached;              /* out of the list; freed when the router answers */
	bool due;                   /* deadline passed while in flight */
	ev_timer timer;             /* the deadline */
	node_send_cb cb;            /* the waiting controller, if any */
	void *ctx;
};

struct elist {
	struct entry *head, *tail;
};

/* One peer's messages not in flight: waiting (to go on the current or
 * next connection, as its output queue allows) and later (sent, no ACK in
 * time: again on the next connection, as documented). */
struct outq {
	struct outq *hnext;
	char to[PEER_ID_MAX + 1];
	struct elist waiting, later;
	long n;                     /* entries of this peer, in flight included */
};

struct outbox {
	struct node_core *core;
	struct router *router;      /* sends for it */
	struct entry *head, *tail;
	struct entry *zombies;      /* detached, in flight */
	struct entry **ids;         /* msg_id hash table */
	size_t nids;                /* its buckets, a power of two */
	struct outq **qs;           /* peer_id hash table */
	size_t nqs;
	long nq;
	int count;
	bool pumping;               /* a pump runs: the drain hook must not nest */
};

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents);

static uint64_t str_hash(const char *s)
{
	return fnv64(FNV64_BASIS, s);
}

/* The database was lost and opened afresh: the queue, which lives in
 * memory, is written to it again. */
static void on_storage_reopen(void *ctx, bool ok)
{
	struct outbox *ob = ctx;

	for (struct entry *e = ob->head; e; e = e->next) {
		struct stored_out so = { e->msg_id, e->to, e->text, e->created, e->deadline,
					 e->attempts, 0 };
		storage_outbox_add(ob->core->store, &so, &e->row);
	}
}

struct outbox *outbox_new(struct node_core *core, struct router *router)
{
	struct outbox *ob = xcalloc(1, sizeof *ob);

	ob->core = core;
	ob->router = router;
	ob->nids = 1024;
	ob->ids = xcalloc(ob->nids, sizeof *ob->ids);
	ob->nqs = 64;
	ob->qs = xcalloc(ob->nqs, sizeof *ob->qs);
	storage_on_reopen(core->store, on_storage_reopen, ob);
	return ob;
}

static void entry_free(struct entry *e)
{
	ev_timer_stop(e->ob->core->loop, &e->timer);
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
	for (size_t i = 0; i < ob->nqs; i++) {
		struct outq *q = ob->qs[i], *qn;
		for (; q; q = qn) {
			qn = q->hnext;
			free(q);
		}
	}
	free(ob->qs);
	free(ob->ids);
	free(ob);
}

/* ---- indexes ------------------------------------------------------------------- */

static struct entry *find(const struct outbox *ob, const char *msg_id)
{
	for (struct entry *e = ob->ids[str_hash(msg_id) & (ob->nids - 1)]; e; e = e->hnext)
		if (strcmp(e->msg_id, msg_id) == 0)
			return e;
	return NULL;
}

static void ids_grow(struct outbox *ob)
{
	size_t n = ob->nids * 2;
	struct entry **t = xcalloc(n, sizeof *t);

	for (size_t i = 0; i < ob->nids; i++) {
		struct entry *e = ob->ids[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			struct entry **b = &t[str_hash(e->msg_id) & (n - 1)];
			e->hnext = *b;
			*b = e;
		}
	}
	free(ob->ids);
	ob->ids = t;
	ob->nids = n;
}

static void ids_add(struct outbox *ob, struct entry *e)
{
	if ((size_t)ob->count >= ob->nids)
		ids_grow(ob);
	struct entry **b = &ob->ids[str_hash(e->msg_id) & (ob->nids - 1)];
	e->hnext = *b;
	*b = e;
}

static void ids_remove(struct outbox *ob, struct entry *e)
{
	struct entry **pp = &ob->ids[str_hash(e->msg_id) & (ob->nids - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = NULL;
}

static struct outq *q_find(const struct outbox *ob, const char *to)
{
	for (struct outq *q = ob->qs[str_hash(to) & (ob->nqs - 1)]; q; q = q->hnext)
		if (strcmp(q->to, to) == 0)
			return q;
	return NULL;
}

static struct outq *q_get(struct outbox *ob, const char *to)
{
	struct outq *q = q_find(ob, to);

	if (q)
		return q;
	if ((size_t)ob->nq >= ob->nqs) {
		size_t n = ob->nqs * 2;
		struct outq **t = xcalloc(n, sizeof *t);
		for (size_t i = 0; i < ob->nqs; i++) {
			struct outq *x = ob->qs[i], *next;
			for (; x; x = next) {
				next = x->hnext;
				x->hnext = t[str_hash(x->to) & (n - 1)];
				t[str_hash(x->to) & (n - 1)] = x;
			}
		}
		free(ob->qs);
		ob->qs = t;
		ob->nqs = n;
	}
	q = xcalloc(1, sizeof *q);
	snprintf(q->to, sizeof q->to, "%s", to);
	struct outq **b = &ob->qs[str_hash(to) & (ob->nqs - 1)];
	q->hnext = *b;
	*b = q;
	ob->nq++;
	return q;
}

static void q_release(struct outbox *ob, struct outq *q)
{
	if (--q->n > 0)
		return;
	struct outq **pp = &ob->qs[str_hash(q->to) & (ob->nqs - 1)];
	while (*pp && *pp != q)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = q->hnext;
	ob->nq--;
	free(q);
}

static void pl_unlink(struct entry *e)
{
	struct elist *l;

	if (!e->linked)
		return;
	l = e->on_later ? &e->q->later : &e->q->waiting;
	if (e->pprev)
		e->pprev->pnext = e->pnext;
	else
		l->head = e->pnext;
	if (e->pnext)
		e->pnext->pprev = e->pprev;
	else
		l->tail = e->pprev;
	e->pnext = e->pprev = NULL;
	e->linked = false;
}

static void pl_append(struct entry *e, bool later)
{
	struct elist *l = later ? &e->q->later : &e->q->waiting;

	pl_unlink(e);
	e->on_later = later;
	e->linked = true;
	e->pprev = l->tail;
	e->pnext = NULL;
	if (l->tail)
		l->tail->pnext = e;
	else
		l->head = e;
	l->tail = e;
}

/* The later list goes ahead of waiting: a new connection came up. */
static void q_later_to_front(struct outq *q)
{
	struct elist *lt = &q->later, *w = &q->waiting;

	if (lt->head == NULL)
		return;
	for (struct entry *e = lt->head; e; e = e->pnext)
		e->on_later = false;
	if (w->head) {
		lt->tail->pnext = w->head;
		w->head->pprev = lt->tail;
	} else {
		w->tail = lt->tail;
	}
	w->head = lt->head;
	lt->head = lt->tail = NULL;
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
	else
		ob->tail = e->prev;
	e->next = e->prev = NULL;
	ids_remove(ob, e);
	pl_unlink(e);
	q_release(ob, e->q);
	e->q = NULL;
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
	ev_timer_start(ob->core->loop, &e->timer);
	/* Appended: the lists are in queueing order, so delivery is too. */
	e->prev = ob->tail;
	if (ob->tail)
		ob->tail->next = e;
	else
		ob->head = e;
	ob->tail = e;
	ids_add(ob, e);
	ob->count++;
	e->q = q_get(ob, to);
	e->q->n++;
	pl_append(e, false);
	return e;
}

/* The end of a queued message: out of the database, the outcome told. */
static void finish(struct entry *e, enum send_result res, double rtt_ms, const char *detail)
{
	struct outbox *ob = e->ob;

	storage_outbox_remove(ob->core->store, e->row);
	if (!e->detached)
		unlink_entry(e);
	if (res == SEND_EXPIRED) {
		struct node_event ev = { .type = EV_EXPIRED, .peer_id = e->to, .msg_id = e->msg_id,
					 .text = detail };
		log_warn(MOD, "%s to %s expired: %s", e->msg_id, e->to, detail);
		core_emit(ob->core, &ev);
	}
	if (e->cb)
		e->cb(e->ctx, res, e->msg_id, rtt_ms, detail);
	if (e->in_flight) {
		/* The router still holds it: answered there, freed then. */
		e->detached = true;
		e->cb = NULL;
		ev_timer_stop(ob->core->loop, &e->timer);
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

static void pump(struct outbox *ob, struct outq *q);

static void pl_push_front(struct entry *e)
{
	struct elist *l = &e->q->waiting;

	pl_unlink(e);
	e->on_later = false;
	e->linked = true;
	e->pprev = NULL;
	e->pnext = l->head;
	if (l->head)
		l->head->pprev = e;
	else
		l->tail = e;
	l->head = e;
}

static void on_sent(void *ctx, enum send_result r, const char *msg_id, double rtt_ms,
		    const char *detail)
{
	struct entry *e = ctx;
	int max = e->ob->core->cfg->storage.max_attempts;

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
	case SEND_ACK_TIMEOUT:
		if (e->written) {
			/* An attempt is a send the socket took: the next goes on the
			 * next connection. */
			e->attempts++;
			storage_outbox_attempt(e->ob->core->store, e->row, e->attempts);
			pl_append(e, true);
		} else {
			/* Still in the output queue when its time ran out: not an
			 * attempt, and it may go on this connection. */
			pl_push_front(e);
		}
		break;
	default:
		/* It never left: not an attempt; first in line again. */
		pl_push_front(e);
		break;
	}
	if (e->due) {
		finish(e, SEND_EXPIRED, 0, "deadline passed");
		return;
	}
	if (e->attempts >= max) {
		finish(e, SEND_EXPIRED, 0, "no ACK after storage.max_attempts sends");
		return;
	}
	if (r == SEND_ACK_TIMEOUT && e->written)
		log_info(MOD, "%s to %s: no ACK (attempt %d of %d); again on the next connection",
			 e->msg_id, e->to, e->attempts, max);
	else if (r == SEND_ACK_TIMEOUT)
		pump(e->ob, e->q);
}

static void attempt(struct entry *e)
{
	e->in_flight = true;
	e->written = false;
	log_debug(MOD, "sending %s to %s (attempt %d)", e->msg_id, e->to, e->attempts + 1);
	router_send_id(e->ob->router, e->to, e->text, e->msg_id, on_sent, e, &e->written);
}

/* Send what waits for q's peer while its connection's output queue has
 * room; session_room() arms the drained hook that calls this again.  A
 * backlog of any size thus goes at the pace the peer reads, instead of
 * overflowing the queue (which closed the connection, every time). */
static void pump(struct outbox *ob, struct outq *q)
{
	struct entry *e;

	if (ob->pumping)
		return;
	ob->pumping = true;
	q->n++; /* kept while we loop: finishing its last entry would free it */
	while ((e = q->waiting.head) != NULL) {
		struct peer *p = peer_find(ob->core->peers, q->to);
		struct session *c = p ? p->conn : NULL;
		/* A pinned peer's connection that did not prove its key gets
		 * nothing: the messages wait for one that does. */
		if (c == NULL || c->state != SESSION_ESTABLISHED || !identity_may_send(ob->core, c))
			break;
		/* The line is the text plus its JSON envelope (under 512 bytes). */
		if (!session_room(c, strlen(e->text) + 512))
			break;
		pl_unlink(e);
		attempt(e); /* may finish e (bad text) or put it back (no connection) */
	}
	q_release(ob, q);
	ob->pumping = false;
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
		entry_new(ob, o->msg_id, o->to, o->text, o->created, o->deadline, o->attempts)->row =
			o->row;
}

void outbox_load(struct outbox *ob)
{
	int n = storage_outbox_load(ob->core->store, load_one, ob);

	if (n > 0)
		log_info(MOD, "%d queued message(s) picked up again", n);
}

bool outbox_full(const struct outbox *ob)
{
	int max = ob->core->cfg->storage.outbox_max;

	return max > 0 && ob->count >= max;
}

void outbox_queue(struct outbox *ob, const char *to, const char *text, double deadline_s,
		  node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN])
{
	const struct config *cfg = ob->core->cfg;
	struct peer *p = peer_id_valid(to) ? peer_find(ob->core->peers, to) : NULL;
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
	if (outbox_full(ob)) {
		snprintf(detail, sizeof detail, "the outbox is full (storage.outbox_max %d)",
			 cfg->storage.outbox_max);
		cb(ctx, SEND_FAILED, id, 0, detail);
		return;
	}
	/* Refuse now what could never be sent, not at every attempt. */
	if (pmsg_build_send(&line, id, ob->core->id, to, text, true) != 0) {
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
	struct stored_out so = { e->msg_id, e->to, e->text, e->created, e->deadline, 0, 0 };
	storage_outbox_add(ob->core->store, &so, &e->row);
	if (p->conn) {
		pump(ob, e->q);
	} else {
		log_info(MOD, "%s queued for %s (not connected): dialling", id, to);
		ob->core->reconnect(ob->core->owner, to);
	}
}

void outbox_conn_up(struct outbox *ob, const char *peer_id)
{
	struct outq *q = q_find(ob, peer_id);

	if (q == NULL)
		return;
	q_later_to_front(q);
	pump(ob, q);
}

void outbox_conn_drained(struct outbox *ob, struct session *c)
{
	struct outq *q = c->primary ? q_find(ob, c->peer_id) : NULL;

	if (q)
		pump(ob, q);
}

void outbox_acked(struct outbox *ob, const char *peer_id, const char *msg_id)
{
	struct entry *e = find(ob, msg_id);

	/* In flight, the router's callback settles it. */
	if (e && !e->in_flight && strcmp(e->to, peer_id) == 0)
		finish(e, SEND_ACKED, 0, NULL);
}

void outbox_on_event(void *ctx, const struct node_event *ev)
{
	/* An ACK, late or not, settles a queued message with that msg_id. */
	if (ev->type == EV_ACK)
		outbox_acked(ctx, ev->peer_id, ev->msg_id);
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
