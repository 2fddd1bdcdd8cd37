#include "node/router.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "log.h"
#include "node/identity.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Router"
#define PENDING_BUCKETS 1024
/* Received ids remembered to show a retransmitted SEND once. */
#define SEEN_MAX 4096
/* Timed-out SENDs remembered, so that an ACK arriving after ack_timeout
 * still tells the sender the message got through (a linear scan: small). */
#define LATE_MAX 64

struct pending {
	struct pending *next;       /* hash chain */
	struct router *r;
	char msg_id[MSGID_LEN];
	char to[PEER_ID_MAX + 1];
	struct buf line;            /* the SEND as written, for retransmission */
	double t0;                  /* mono_now() when accepted (RTT) */
	uint64_t serial, mark;      /* the session it was last written to, session_mark() then */
	bool *written;              /* told at the end: did the socket take it? */
	ev_timer timer;             /* ack_timeout */
	node_send_cb cb;
	void *ctx;
};

struct late_entry {
	char msg_id[MSGID_LEN];     /* "" when free */
	char to[PEER_ID_MAX + 1];
	double t0;
};

/* Fixed size, no allocation per message: the msg_id itself (its first 64
 * bytes, as ids go) and a 64-bit hash of the sender's peer_id. */
#define SEEN_ID_MAX 64
struct seen_entry {
	uint64_t peer_hash;
	uint32_t bucket;            /* hash of both % SEEN_MAX: its chain */
	int next;                   /* hash chain: index, -1 ends */
	bool used;
	char msg_id[SEEN_ID_MAX + 1];
};

/* An ACK for a stored message, written once the row is committed. */
struct held_ack {
	struct session *c;             /* kept from being freed: c->busy */
	char *msg_id;
};

struct router {
	struct node_core *core;
	struct held_ack *held;
	size_t nheld, held_cap;
	struct pending *pending[PENDING_BUCKETS];
	size_t npending;
	struct seen_entry seen[SEEN_MAX];
	int seen_head[SEEN_MAX];    /* bucket -> first index */
	int seen_next;              /* ring position to overwrite next */
	struct late_entry late[LATE_MAX];
	int late_next;              /* ring position to overwrite next */
};

static uint32_t hash(const char *s)
{
	return fnv32(FNV32_BASIS, s);
}

static void on_commit(void *ctx, bool ok);

struct router *router_new(struct node_core *core)
{
	struct router *r = xcalloc(1, sizeof *r);

	r->core = core;
	storage_on_commit(core->store, on_commit, r);
	for (int i = 0; i < SEEN_MAX; i++) {
		r->seen_head[i] = -1;
		r->seen[i].next = -1;
	}
	return r;
}

static void pending_free(struct pending *p)
{
	ev_timer_stop(p->r->core->loop, &p->timer);
	buf_free(&p->line);
	free(p);
}

void router_free(struct router *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < PENDING_BUCKETS; i++) {
		struct pending *p = r->pending[i], *next;
		for (; p; p = next) {
			next = p->next;
			pending_free(p);
		}
	}
	on_commit(r, false);
	free(r->held);
	free(r);
}

static struct pending **pending_slot(struct router *r, const char *msg_id)
{
	struct pending **pp = &r->pending[hash(msg_id) % PENDING_BUCKETS];

	while (*pp && strcmp((*pp)->msg_id, msg_id) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Unlink and return the pending SEND msg_id, or NULL. */
static struct pending *pending_take(struct router *r, const char *msg_id)
{
	struct pending **pp = pending_slot(r, msg_id), *p = *pp;

	if (p) {
		*pp = p->next;
		r->npending--;
	}
	return p;
}

static void finish(struct pending *p, enum send_result res, double rtt_ms, const char *detail)
{
	if (p->written && res == SEND_ACKED)
		*p->written = true;
	if (p->cb)
		p->cb(p->ctx, res, p->msg_id, rtt_ms, detail);
	pending_free(p);
}

static void on_ack_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = w->data;
	struct router *r = p->r;
	struct peer *peer = peer_find(r->core->peers, p->to);
	struct node_event ev = { .type = EV_ACK_TIMEOUT, .peer_id = p->to, .msg_id = p->msg_id };

	pending_take(r, p->msg_id);
	/* Written if the socket took it; a connection gone since: assume so. */
	if (p->written)
		*p->written = peer == NULL || peer->conn == NULL || session_serial(peer->conn) != p->serial ||
			      session_written(peer->conn, p->mark);
	log_warn(MOD, "SEND %s to %s: no ACK within %.0f s", p->msg_id, p->to,
		 r->core->cfg->network.ack_timeout);
	struct late_entry *l = &r->late[r->late_next];
	r->late_next = (r->late_next + 1) % LATE_MAX;
	memcpy(l->msg_id, p->msg_id, MSGID_LEN);
	snprintf(l->to, sizeof l->to, "%s", p->to);
	l->t0 = p->t0;
	if (peer && peer->conn)
		session_send_done(peer->conn, p->msg_id);
	core_emit(r->core, &ev);
	finish(p, SEND_ACK_TIMEOUT, 0, "no ACK within ack_timeout");
}

/* Receivers drop a line over the limit (PROTOCOL.md: 32768 bytes, ours
 * network.max_msg_size): a message that would make one is refused here
 * rather than lost there. */
static bool too_long(const struct router *r, const struct buf *line, char *err, size_t errlen)
{
	size_t bytes = line->len - 1; /* without the '\n' */
	int max = r->core->cfg->network.max_msg_size;

	if (bytes <= (size_t)max)
		return false;
	snprintf(err, errlen, "message too long: %zu bytes on the wire, the limit is %d", bytes, max);
	return true;
}

/* id_in: the msg_id to use (an outbox retry), or NULL for a new one. */
static void send_impl(struct router *r, const char *to, const char *text, bool require_ack,
		      const char *id_in, node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN],
		      bool *written)
{
	const struct peer_table *t = r->core->peers;
	struct peer *peer = peer_id_valid(to) ? peer_find(t, to) : NULL;
	char id[MSGID_LEN], detail[128];
	struct buf line = BUF_INIT;

	if (id_in)
		snprintf(id, sizeof id, "%s", id_in);
	else if (msg_id_out && msg_id_out[0])
		memcpy(id, msg_id_out, MSGID_LEN);
	else
		msgid_new(id);
	if (msg_id_out)
		memcpy(msg_id_out, id, MSGID_LEN);
	if (peer == NULL) {
		if (cb)
			cb(ctx, SEND_UNKNOWN_PEER, id, 0, "unknown peer");
		return;
	}
	if (peer->conn == NULL) {
		if (cb)
			cb(ctx, SEND_NOT_CONNECTED, id, 0, "peer not connected");
		return;
	}
	/* No downgrade (PROTOCOL.md §5.2): a pinned peer's messages go only
	 * where its key was proved. */
	if (!identity_may_send(r->core, peer->conn)) {
		if (cb)
			cb(ctx, SEND_IDENTITY_UNPROVEN, id, 0,
			   "the peer's key is pinned and its connection has not proved it");
		return;
	}
	if (pmsg_build_send(&line, id, r->core->id, to, text, require_ack) != 0) {
		if (cb)
			cb(ctx, SEND_FAILED, id, 0, "text is not valid UTF-8");
		return;
	}
	if (too_long(r, &line, detail, sizeof detail)) {
		buf_free(&line);
		if (cb)
			cb(ctx, SEND_FAILED, id, 0, detail);
		return;
	}
	/* Without require_ack nothing will come back: it goes like a PUB (in
	 * order, no wait, no resend).  As CK_SEND followed by session_send_done()
	 * it was dropped from the queue of a non-pipeline peer unless it could
	 * be written at once (found by tests/e2e/test_interop.py). */
	if (session_write(peer->conn, &line, require_ack ? CK_SEND : CK_PUB, id) != 0) {
		buf_free(&line);
		if (cb)
			cb(ctx, SEND_NOT_CONNECTED, id, 0, "connection lost (output queue full)");
		return;
	}
	if (!require_ack) {
		buf_free(&line);
		if (cb)
			cb(ctx, SEND_SENT, id, 0, NULL);
		return;
	}
	struct pending *p = xcalloc(1, sizeof *p);
	struct ev_loop *loop = r->core->loop;
	p->r = r;
	memcpy(p->msg_id, id, MSGID_LEN);
	snprintf(p->to, sizeof p->to, "%s", to);
	p->line = line;
	p->t0 = mono_now();
	p->serial = session_serial(peer->conn);
	p->mark = session_mark(peer->conn);
	p->written = written;
	p->cb = cb;
	p->ctx = ctx;
	ev_timer_init(&p->timer, on_ack_timeout, r->core->cfg->network.ack_timeout, 0);
	p->timer.data = p;
	ev_timer_start(loop, &p->timer);
	struct pending **slot = &r->pending[hash(id) % PENDING_BUCKETS];
	p->next = *slot;
	*slot = p;
	r->npending++;
}

void router_send(struct router *r, const char *to, const char *text, bool require_ack,
		 node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN])
{
	send_impl(r, to, text, require_ack, NULL, cb, ctx, msg_id_out, NULL);
}

void router_send_id(struct router *r, const char *to, const char *text, const char *msg_id,
		    node_send_cb cb, void *ctx, bool *written)
{
	send_impl(r, to, text, true, msg_id, cb, ctx, NULL, written);
}

void router_on_ack(struct router *r, struct session *c, const char *msg_id)
{
	struct pending **pp = pending_slot(r, msg_id), *p = *pp;

	if (p == NULL) {
		for (int i = 0; i < LATE_MAX; i++) {
			struct late_entry *l = &r->late[i];
			if (l->msg_id[0] && strcmp(l->msg_id, msg_id) == 0 &&
			    strcmp(l->to, c->peer_id) == 0) {
				double ms = (mono_now() - l->t0) * 1000.0;
				struct node_event ev = { .type = EV_ACK, .peer_id = l->to,
							 .msg_id = l->msg_id, .rtt_ms = ms, .late = true };
				log_info(MOD, "%s: late ACK for %s after %.0f ms: delivered after all",
					 c->peer_id, msg_id, ms);
				core_emit(r->core, &ev);
				l->msg_id[0] = '\0';
				break;
			}
		}
		log_debug(MOD, "%s: ACK for %s, not awaited (late or duplicate)", c->peer_id, msg_id);
		session_send_done(c, msg_id);
		return;
	}
	if (strcmp(p->to, c->peer_id) != 0) {
		log_warn(MOD, "%s: ACK for %s, which was sent to %s: ignored", c->peer_id, msg_id, p->to);
		return;
	}
	pending_take(r, msg_id);
	session_send_done(c, msg_id);
	double ms = (mono_now() - p->t0) * 1000.0;
	struct node_event ev = { .type = EV_ACK, .peer_id = p->to, .msg_id = p->msg_id, .rtt_ms = ms };
	core_emit(r->core, &ev);
	finish(p, SEND_ACKED, ms, NULL);
}

/* SENDs to c's peer not yet written to c go, as far as its output queue
 * has room (session_room arms the drained hook for the rest). */
static void resend_pending(struct router *r, struct session *c)
{
	for (int i = 0; i < PENDING_BUCKETS; i++)
		for (struct pending *p = r->pending[i]; p; p = p->next)
			if (p->serial != session_serial(c) && strcmp(p->to, c->peer_id) == 0) {
				if (!session_room(c, p->line.len))
					return;
				/* Same msg_id: the receiver dedupes if the first copy got through. */
				log_debug(MOD, "%s: resending %s on the new connection", c->peer_id,
					  p->msg_id);
				if (session_write(c, &p->line, CK_SEND, p->msg_id) != 0)
					return;
				p->serial = session_serial(c);
				p->mark = session_mark(c);
			}
}

void router_conn_up(struct router *r, struct session *c)
{
	if (r->npending > 0)
		resend_pending(r, c);
}

void router_conn_drained(struct router *r, struct session *c)
{
	if (r->npending > 0)
		resend_pending(r, c);
}

int router_pub(struct router *r, const char *dst, const char *text, char msg_id_out[MSGID_LEN],
	       char *err, size_t errlen)
{
	const char *ns = NULL;
	enum pub_target target = pub_target_parse(dst, &ns);
	char id[MSGID_LEN], wire_dst[NAME_MAX_BYTES + 2];
	struct buf line = BUF_INIT;
	int reached = 0;

	if (target != PUB_ALL && target != PUB_NS) {
		snprintf(err, errlen, "PUB goes to \"*\" or \"#namespace\", not \"%s\"", dst);
		return -1;
	}
	msgid_new(id);
	if (msg_id_out)
		memcpy(msg_id_out, id, MSGID_LEN);
	if (target == PUB_NS)
		snprintf(wire_dst, sizeof wire_dst, "#%s", ns);
	else
		snprintf(wire_dst, sizeof wire_dst, "*");
	if (pmsg_build_pub(&line, id, r->core->id, wire_dst, text) != 0) {
		snprintf(err, errlen, "text is not valid UTF-8");
		return -1;
	}
	if (too_long(r, &line, err, errlen)) {
		buf_free(&line);
		return -1;
	}
	/* One PUB per connected peer, one shared msg_id (PROTOCOL.md §2).  The
	 * list is walked from a saved next: a full queue closes its conn. */
	struct session *c = *r->core->sessions, *next;
	for (; c; c = next) {
		next = c->next;
		if (!c->primary || c->state != SESSION_ESTABLISHED)
			continue;
		if (target == PUB_NS && strcmp(c->peer->ns, ns) != 0)
			continue;
		if (!identity_may_send(r->core, c))
			continue;
		if (session_write(c, &line, CK_PUB, NULL) == 0)
			reached++;
	}
	buf_free(&line);
	return reached;
}

/* true the first time (peer, msg_id) is seen among the last SEEN_MAX: the
 * duplicate filter, a hash table over a ring (the one place it is decided). */
static bool first_sighting(struct router *r, const struct session *c, const char *msg_id)
{
	/* Keyed by the claim's strength too, as storage_inbox_add does. */
	uint64_t ph = fnv64n(c->identity < ID_BACKED ? 1469598103934665603u : FNV64_BASIS,
			     c->peer_id, (size_t)-1);
	uint32_t b = (uint32_t)(fnv64n(ph, msg_id, SEEN_ID_MAX) % SEEN_MAX);
	size_t idlen = strnlen(msg_id, SEEN_ID_MAX);

	for (int i = r->seen_head[b]; i >= 0; i = r->seen[i].next) {
		const struct seen_entry *e = &r->seen[i];
		if (e->peer_hash == ph && strncmp(e->msg_id, msg_id, SEEN_ID_MAX) == 0 &&
		    e->msg_id[idlen] == '\0')
			return false;
	}
	/* Evict the oldest entry from its chain, then reuse its slot. */
	int slot = r->seen_next;
	r->seen_next = (r->seen_next + 1) % SEEN_MAX;
	struct seen_entry *e = &r->seen[slot];
	if (e->used) {
		int *pi = &r->seen_head[e->bucket];
		while (*pi != slot)
			pi = &r->seen[*pi].next;
		*pi = e->next;
	}
	e->used = true;
	e->peer_hash = ph;
	e->bucket = b;
	memcpy(e->msg_id, msg_id, idlen);
	e->msg_id[idlen] = '\0';
	e->next = r->seen_head[b];
	r->seen_head[b] = slot;
	return true;
}

/* What the connection says of a message: worked out once, for its row and
 * for its event alike. */
struct about {
	bool pub, src_mismatch, dst_mismatch;
	const char *identity, *fingerprint;
};

static struct about about(const struct router *r, const struct session *c, const struct pmsg *m,
			  bool is_pub)
{
	return (struct about){
		.pub = is_pub,
		.src_mismatch = m->src != NULL && strcmp(m->src, c->peer_id) != 0,
		.dst_mismatch = !is_pub && m->dst != NULL && strcmp(m->dst, r->core->id) != 0,
		.identity = session_identity_name(c->identity),
		.fingerprint = c->secure && c->fingerprint[0] ? c->fingerprint : NULL,
	};
}

/* The one place a message reaches the user (id: its inbox row, or 0). */
static void deliver(struct router *r, struct session *c, const struct pmsg *m,
		    const struct about *a, int64_t id)
{
	struct node_event ev = {
		.type = a->pub ? EV_PUB : EV_MESSAGE,
		.peer_id = c->peer_id,
		.to = m->dst,
		.text = m->payload,
		.msg_id = m->msg_id,
		.src_mismatch = a->src_mismatch,
		.inbox_id = id,
		.dst_mismatch = a->dst_mismatch,
		.identity = a->identity,
		.fingerprint = a->fingerprint,
	};

	if (a->src_mismatch)
		log_warn(MOD, "%s: message claims src %s; the handshake says %s", c->peer_id, m->src,
			 c->peer_id);
	if (a->dst_mismatch)
		log_warn(MOD, "%s: SEND addressed to %s, not to us; kept, flagged", c->peer_id, m->dst);
	/* Private text only at DEBUG; INFO says who sent how much. */
	log_info(MOD, "%s from %s: %zu bytes (%s)", a->pub ? "PUB" : "SEND", c->peer_id,
		 strlen(m->payload), a->identity);
	log_debug(MOD, "%s[%s] %s", a->pub ? "PUB " : "", c->peer_id, m->payload);
	core_emit(r->core, &ev);
}

/* Written after the commit of the current transaction (or at once if none). */
static void ack(struct router *r, struct session *c, const char *msg_id)
{
	struct buf line = BUF_INIT;

	if (storage_pending(r->core->store)) {
		if (r->nheld == r->held_cap) {
			r->held_cap = r->held_cap ? r->held_cap * 2 : 64;
			r->held = xrealloc(r->held, r->held_cap * sizeof *r->held);
		}
		c->busy++;
		r->held[r->nheld++] = (struct held_ack){ c, xstrdup(msg_id) };
		return;
	}
	pmsg_build_ack(&line, msg_id);
	session_write(c, &line, CK_CTL, NULL);
	buf_free(&line);
}

/* The rows are on disk (ok) or rolled back: ACK them, or let the sender
 * send again (rows gone, so the copy will be stored). */
static void on_commit(void *ctx, bool ok)
{
	struct router *r = ctx;
	struct buf line = BUF_INIT;
	size_t n = r->nheld;

	r->nheld = 0;
	for (size_t i = 0; i < n; i++) {
		struct held_ack *h = &r->held[i];
		if (ok && h->c->state == SESSION_ESTABLISHED) {
			buf_reset(&line);
			pmsg_build_ack(&line, h->msg_id);
			session_write(h->c, &line, CK_CTL, NULL);
		}
		free(h->msg_id);
	}
	buf_free(&line);
	/* We run inside the storage's prepare watcher: the connections'
	 * own flushers would wait for the next wake-up, so flush now. */
	for (size_t i = 0; i < n; i++) {
		struct session *c = r->held[i].c;
		if (ok && c->state != SESSION_CLOSED)
			session_flush_now(c);
		c->busy--;
		session_reap(c);
	}
}

/* true if m is new from c: stored (id set) when there is a database,
 * else by the in-memory filter.  *stored false: no row (no ACK either). */
static bool fresh_message(struct router *r, struct session *c, const struct pmsg *m,
			  const struct about *a, int64_t *id, bool *stored)
{
	struct storage *st = r->core->store;
	struct stored_msg sm = {
		/* A SEND to us is stored without its dst: it is our own id. */
		.pub = a->pub, .src = c->peer_id, .dst = a->pub || a->dst_mismatch ? m->dst : NULL,
		.msg_id = m->msg_id,
		/* The loop's clock, read once per iteration, not per message. */
		.text = m->payload, .at = ev_now(r->core->loop),
		.src_mismatch = a->src_mismatch, .dst_mismatch = a->dst_mismatch,
		.identity = a->identity, .fingerprint = a->fingerprint,
	};
	int rc;

	*id = 0;
	*stored = st == NULL;
	if (st == NULL || m->msg_id == NULL || m->payload == NULL)
		return first_sighting(r, c, m->msg_id ? m->msg_id : "");
	rc = storage_inbox_add(st, &sm, id);
	if (rc >= 0) {
		*stored = true;
		return rc == 1;
	}
	/* Not stored: shown (once) all the same, not ACKed, so the sender retries. */
	return first_sighting(r, c, m->msg_id);
}

void router_on_message(struct router *r, struct session *c, const struct pmsg *m)
{
	int64_t id;
	bool stored;

	if (m->type == PM_SEND) {
		struct about a = about(r, c, m, false);
		bool fresh = fresh_message(r, c, m, &a, &id, &stored);
		if (fresh)
			deliver(r, c, m, &a, id);
		else
			log_debug(MOD, "%s: SEND %s again: ACK again, shown once", c->peer_id, m->msg_id);
		/* A missing or null require_ack counts as true: never leave a sender waiting. */
		if (m->require_ack != 0 && stored)
			ack(r, c, m->msg_id);
	} else if (m->type == PM_PUB) {
		const char *rest = NULL;
		enum pub_target t = pub_target_parse(m->dst, &rest);
		bool for_us = t == PUB_ALL || (t == PUB_NS && strcmp(rest, r->core->ns) == 0) ||
			      (t == PUB_PEER && strcmp(rest, r->core->id) == 0);
		if (!for_us)
			log_debug(MOD, "%s: PUB for %s, not for us", c->peer_id, m->dst ? m->dst : "?");
		else {
			struct about a = about(r, c, m, true);
			if (fresh_message(r, c, m, &a, &id, &stored))
				deliver(r, c, m, &a, id);
		}
	}
}
