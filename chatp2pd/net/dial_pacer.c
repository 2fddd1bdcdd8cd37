/* Dial pacing and per-address hygiene (see dial_pacer.h).
 *
 * Four hash tables: the waiting peers by peer_id (queued once), the dials
 * in flight by peer_id (their address, for dial_pacer_done), and per ip:port
 * (in flight, failures, backoff) and per ip (in flight, parked peers)
 * records.  Address records live while they hold something and are swept
 * once idle past any backoff. */
#include "net/dial_pacer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/guard.h"
#include "fnv.h"
#include "peerid.h"
#include "timeutil.h"
#include "xmalloc.h"

#define BUCKETS     1024
#define IP_MAX      64
#define TICK        1.0  /* s: parked peers whose backoff ended get another look */
#define SWEEP_TICKS 10   /* ticks between sweeps of idle address records */

struct waiting {
	struct waiting *next;       /* FIFO, or its host's parked list */
	struct waiting *hnext;      /* by peer_id: queued once */
	int port;
	char ip[IP_MAX];
	char peer_id[PEER_ID_MAX + 1];
};

struct started {
	struct started *hnext;
	int port;
	char ip[IP_MAX];
	char peer_id[PEER_ID_MAX + 1];
};

struct endpoint {                   /* one ip:port */
	struct endpoint *hnext;
	unsigned in_flight;
	unsigned fails;             /* failed or stalled dials in a row */
	double until;               /* mono: backed off until then */
	int port;
	char ip[IP_MAX];
};

struct host {                       /* one ip */
	struct host *hnext;
	unsigned in_flight;
	bool exempt;                /* limits.exempt_addresses: no per-ip cap */
	double wake;                /* mono: a parked peer's backoff ends (0: none) */
	struct waiting *parked, *parked_tail;
	char ip[IP_MAX];
};

struct dial_pacer {
	struct ev_loop *loop;
	dial_pacer_fn go;
	void *ctx;
	unsigned max;               /* in flight at most */
	double rate;                /* starts per second */
	unsigned per_address, per_ip;
	double backoff_base, backoff_max;
	char *exempt;
	unsigned in_flight;
	double tokens;              /* token bucket: up to max, refilled at rate */
	double refilled;            /* mono_now() of the last refill */
	struct waiting *head, *tail;
	struct waiting **wait_h;    /* nwait_b buckets, grown with nwaiting */
	size_t nwait_b;
	size_t nwaiting;            /* queued or parked */
	size_t nparked;
	struct started *started_h[BUCKETS];
	struct endpoint *ep_h[BUCKETS];
	size_t nendpoints;
	struct host *host_h[BUCKETS];
	size_t nhosts;
	ev_timer timer;             /* next turn */
	ev_timer tick;              /* parked peers, idle records */
	unsigned ticks;
	bool pumping;
};

static uint32_t hash(const char *s)
{
	return fnv32(FNV32_BASIS, s) % BUCKETS;
}

static size_t wait_bucket(const struct dial_pacer *dp, const char *peer_id)
{
	return fnv32(FNV32_BASIS, peer_id) % dp->nwait_b;
}

/* A DISCOVER may queue tens of thousands: chains stay short at any size
 * (the node looks each one up again at every reconcile). */
static void wait_grow(struct dial_pacer *dp)
{
	size_t nb = dp->nwait_b * 2;
	struct waiting **b = xcalloc(nb, sizeof *b);

	for (size_t i = 0; i < dp->nwait_b; i++)
		for (struct waiting *w = dp->wait_h[i], *next; w; w = next) {
			size_t j = fnv32(FNV32_BASIS, w->peer_id) % nb;
			next = w->hnext;
			w->hnext = b[j];
			b[j] = w;
		}
	free(dp->wait_h);
	dp->wait_h = b;
	dp->nwait_b = nb;
}

static uint32_t ep_hash(const char *ip, int port)
{
	return (fnv32(FNV32_BASIS, ip) ^ (uint32_t)port * 2654435761u) % BUCKETS;
}

/* ---- address records --------------------------------------------------------- */

static struct endpoint *ep_get(struct dial_pacer *dp, const char *ip, int port, bool create)
{
	struct endpoint **head = &dp->ep_h[ep_hash(ip, port)], *e;

	for (e = *head; e; e = e->hnext)
		if (e->port == port && strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	e = xcalloc(1, sizeof *e);
	snprintf(e->ip, sizeof e->ip, "%s", ip);
	e->port = port;
	e->hnext = *head;
	*head = e;
	dp->nendpoints++;
	return e;
}

static struct host *host_get(struct dial_pacer *dp, const char *ip, bool create)
{
	struct host **head = &dp->host_h[hash(ip)], *h;

	for (h = *head; h; h = h->hnext)
		if (strcmp(h->ip, ip) == 0)
			return h;
	if (!create)
		return NULL;
	h = xcalloc(1, sizeof *h);
	snprintf(h->ip, sizeof h->ip, "%s", ip);
	h->exempt = dp->exempt != NULL && guard_addr_in(dp->exempt, ip);
	h->hnext = *head;
	*head = h;
	dp->nhosts++;
	return h;
}

/* Capped or backed off: this address cannot take a dial now.  *until is
 * when its backoff ends, or 0 if only a cap holds it (a dial ending lifts
 * that). */
static bool blocked(struct dial_pacer *dp, const char *ip, int port, double *until)
{
	struct endpoint *e = ep_get(dp, ip, port, false);
	struct host *h = host_get(dp, ip, false);

	*until = 0;
	if (e && mono_now() < e->until) {
		*until = e->until;
		return true;
	}
	if (e && e->in_flight >= dp->per_address)
		return true;
	return h && !h->exempt && h->in_flight >= dp->per_ip;
}

/* Forget records that hold nothing and whose backoff is long over. */
static void sweep(struct dial_pacer *dp)
{
	double now = mono_now();

	for (size_t i = 0; i < BUCKETS; i++) {
		for (struct endpoint **pp = &dp->ep_h[i], *e; (e = *pp) != NULL;) {
			if (e->in_flight == 0 && now > e->until + dp->backoff_max) {
				*pp = e->hnext;
				free(e);
				dp->nendpoints--;
			} else {
				pp = &e->hnext;
			}
		}
		for (struct host **pp = &dp->host_h[i], *h; (h = *pp) != NULL;) {
			if (h->in_flight == 0 && h->parked == NULL) {
				*pp = h->hnext;
				free(h);
				dp->nhosts--;
			} else {
				pp = &h->hnext;
			}
		}
	}
}

/* ---- the queue ------------------------------------------------------------------ */

static void refill(struct dial_pacer *dp)
{
	double now = mono_now();

	dp->tokens += (now - dp->refilled) * dp->rate;
	if (dp->tokens > dp->max)
		dp->tokens = dp->max;
	dp->refilled = now;
}

static bool may_start(struct dial_pacer *dp)
{
	refill(dp);
	return dp->in_flight < dp->max && dp->tokens >= 1.0;
}

static void arm(struct dial_pacer *dp)
{
	double after = 0;

	if (dp->head == NULL || dp->in_flight >= dp->max)
		return; /* dial_pacer_done() arms it again */
	if (dp->tokens < 1.0)
		after = (1.0 - dp->tokens) / dp->rate;
	ev_timer_stop(dp->loop, &dp->timer);
	ev_timer_set(&dp->timer, after, 0);
	ev_timer_start(dp->loop, &dp->timer);
}

static void tick_on(struct dial_pacer *dp)
{
	if (!ev_is_active(&dp->tick))
		ev_timer_start(dp->loop, &dp->tick);
}

static struct waiting *fifo_pop(struct dial_pacer *dp)
{
	struct waiting *w = dp->head;

	dp->head = w->next;
	if (dp->head == NULL)
		dp->tail = NULL;
	w->next = NULL;
	return w;
}

static void fifo_push(struct dial_pacer *dp, struct waiting *w)
{
	w->next = NULL;
	if (dp->tail)
		dp->tail->next = w;
	else
		dp->head = w;
	dp->tail = w;
}

static void unhash_waiting(struct dial_pacer *dp, struct waiting *w)
{
	struct waiting **pp;

	for (pp = &dp->wait_h[wait_bucket(dp, w->peer_id)]; *pp != w; pp = &(*pp)->hnext)
		;
	*pp = w->hnext;
	dp->nwaiting--;
}

static void park(struct dial_pacer *dp, struct waiting *w, double until)
{
	struct host *h = host_get(dp, w->ip, true);

	if (until > 0 && (h->wake == 0 || until < h->wake))
		h->wake = until;
	w->next = NULL;
	if (h->parked_tail)
		h->parked_tail->next = w;
	else
		h->parked = w;
	h->parked_tail = w;
	dp->nparked++;
	tick_on(dp);
}

/* Parked peers of h back to the front of the queue, in their order: the
 * next turn dials those whose address allows it and parks the others. */
static void unpark(struct dial_pacer *dp, struct host *h)
{
	struct waiting *w = h->parked;
	size_t n = 0;

	if (w == NULL)
		return;
	for (; w; w = w->next)
		n++;
	h->parked_tail->next = dp->head;
	if (dp->head == NULL)
		dp->tail = h->parked_tail;
	dp->head = h->parked;
	h->parked = h->parked_tail = NULL;
	h->wake = 0;
	dp->nparked -= n;
}

static struct started **started_find(struct dial_pacer *dp, const char *peer_id)
{
	struct started **pp = &dp->started_h[hash(peer_id)];

	while (*pp && strcmp((*pp)->peer_id, peer_id) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void start(struct dial_pacer *dp, const char *peer_id, const char *ip, int port)
{
	struct started *s = xcalloc(1, sizeof *s), **pp = &dp->started_h[hash(peer_id)];

	dp->tokens -= 1.0;
	dp->in_flight++;
	ep_get(dp, ip, port, true)->in_flight++;
	host_get(dp, ip, true)->in_flight++;
	snprintf(s->peer_id, sizeof s->peer_id, "%s", peer_id);
	snprintf(s->ip, sizeof s->ip, "%s", ip);
	s->port = port;
	s->hnext = *pp;
	*pp = s;
	tick_on(dp);
}

/* The dial of peer_id ended (how), or never started (how < 0). */
static void finish(struct dial_pacer *dp, const char *peer_id, int how)
{
	struct started **pp = started_find(dp, peer_id), *s = *pp;
	struct endpoint *e;
	struct host *h;

	if (dp->in_flight > 0)
		dp->in_flight--;
	if (s == NULL)
		return;
	*pp = s->hnext;
	if ((e = ep_get(dp, s->ip, s->port, false)) != NULL) {
		if (e->in_flight > 0)
			e->in_flight--;
		if (how == DIAL_OK) {
			e->fails = 0;
			e->until = 0;
		} else if (how == DIAL_FAILED) {
			double d = dp->backoff_base * pow(2, e->fails < 30 ? e->fails : 30);
			e->fails++;
			e->until = mono_now() + (d < dp->backoff_max ? d : dp->backoff_max);
		}
	}
	if ((h = host_get(dp, s->ip, false)) != NULL) {
		if (h->in_flight > 0)
			h->in_flight--;
		unpark(dp, h);
	}
	free(s);
}

static void on_turn(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dial_pacer *dp = w->data;

	dp->pumping = true;
	while (dp->head != NULL && may_start(dp)) {
		struct waiting *x = fifo_pop(dp);
		double until;
		if (blocked(dp, x->ip, x->port, &until)) {
			park(dp, x, until);
			continue;
		}
		unhash_waiting(dp, x);
		start(dp, x->peer_id, x->ip, x->port);
		if (!dp->go(dp->ctx, x->peer_id))
			finish(dp, x->peer_id, -1); /* connected meanwhile, or gone */
		free(x);
	}
	dp->pumping = false;
	arm(dp);
}

/* Parked peers whose backoff is over get another look (those held by a
 * cap get it when a dial to their ip ends); idle records go. */
static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dial_pacer *dp = w->data;
	double now = mono_now();

	if (dp->nparked > 0)
		for (size_t i = 0; i < BUCKETS; i++)
			for (struct host *h = dp->host_h[i]; h; h = h->hnext)
				if (h->parked && h->wake > 0 && h->wake <= now)
					unpark(dp, h);
	if (++dp->ticks % SWEEP_TICKS == 0)
		sweep(dp);
	if (dp->nparked == 0 && dp->nendpoints == 0 && dp->nhosts == 0)
		ev_timer_stop(loop, w);
	if (dp->head != NULL && !ev_is_active(&dp->timer))
		arm(dp);
}

struct dial_pacer *dial_pacer_new(struct ev_loop *loop, dial_pacer_fn go, void *ctx)
{
	struct dial_pacer *dp = xcalloc(1, sizeof *dp);

	dp->loop = loop;
	dp->go = go;
	dp->ctx = ctx;
	dp->max = 32;
	dp->rate = 100;
	dp->per_address = 2;
	dp->per_ip = 8;
	dp->backoff_base = 2;
	dp->backoff_max = 32;
	dp->tokens = dp->max;
	dp->refilled = mono_now();
	dp->nwait_b = 256;
	dp->wait_h = xcalloc(dp->nwait_b, sizeof *dp->wait_h);
	ev_init(&dp->timer, on_turn);
	dp->timer.data = dp;
	ev_timer_init(&dp->tick, on_tick, TICK, TICK);
	dp->tick.data = dp;
	return dp;
}

void dial_pacer_free(struct dial_pacer *dp)
{
	if (dp == NULL)
		return;
	ev_timer_stop(dp->loop, &dp->timer);
	ev_timer_stop(dp->loop, &dp->tick);
	for (size_t i = 0; i < dp->nwait_b; i++)
		for (struct waiting *w = dp->wait_h[i], *n; w; w = n) {
			n = w->hnext;
			free(w);
		}
	free(dp->wait_h);
	for (size_t i = 0; i < BUCKETS; i++) {
		for (struct started *s = dp->started_h[i], *n; s; s = n) {
			n = s->hnext;
			free(s);
		}
		for (struct endpoint *e = dp->ep_h[i], *n; e; e = n) {
			n = e->hnext;
			free(e);
		}
		for (struct host *h = dp->host_h[i], *n; h; h = n) {
			n = h->hnext;
			free(h);
		}
	}
	free(dp->exempt);
	free(dp);
}

void dial_pacer_configure(struct dial_pacer *dp, const struct dial_limits *l)
{
	dp->max = l->in_flight > 0 ? (unsigned)l->in_flight : 1;
	dp->rate = l->per_second > 0 ? l->per_second : 1;
	dp->per_address = l->per_address > 0 ? (unsigned)l->per_address : 1;
	dp->per_ip = l->per_ip > 0 ? (unsigned)l->per_ip : 1;
	dp->backoff_base = l->backoff_base > 0 ? l->backoff_base : 1;
	dp->backoff_max = l->backoff_max > 0 ? l->backoff_max : dp->backoff_base;
	free(dp->exempt);
	dp->exempt = l->exempt ? xstrdup(l->exempt) : NULL;
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct host *h = dp->host_h[i]; h; h = h->hnext)
			h->exempt = dp->exempt != NULL && guard_addr_in(dp->exempt, h->ip);
	refill(dp);
	arm(dp);
}

bool dial_pacer_admit(struct dial_pacer *dp, const char *peer_id, const char *ip, int port)
{
	size_t b = wait_bucket(dp, peer_id);
	struct waiting *w;

	double until;

	/* Those already waiting go first: no overtaking. */
	if (dp->head == NULL && may_start(dp) && !blocked(dp, ip, port, &until)) {
		for (w = dp->wait_h[b]; w != NULL; w = w->hnext)
			if (strcmp(w->peer_id, peer_id) == 0)
				return false; /* parked */
		start(dp, peer_id, ip, port);
		return true;
	}
	for (w = dp->wait_h[b]; w != NULL; w = w->hnext)
		if (strcmp(w->peer_id, peer_id) == 0)
			return false;
	if (dp->nwaiting >= dp->nwait_b) {
		wait_grow(dp);
		b = wait_bucket(dp, peer_id);
	}
	w = xcalloc(1, sizeof *w);
	snprintf(w->peer_id, sizeof w->peer_id, "%s", peer_id);
	snprintf(w->ip, sizeof w->ip, "%s", ip);
	w->port = port;
	w->hnext = dp->wait_h[b];
	dp->wait_h[b] = w;
	dp->nwaiting++;
	fifo_push(dp, w);
	if (!ev_is_active(&dp->timer) && !dp->pumping)
		arm(dp);
	return false;
}

void dial_pacer_done(struct dial_pacer *dp, const char *peer_id, enum dial_outcome how)
{
	finish(dp, peer_id, (int)how);
	/* From the next loop iteration, not inside the caller's callback. */
	if (dp->head != NULL && !ev_is_active(&dp->timer) && !dp->pumping)
		arm(dp);
}

size_t dial_pacer_waiting(const struct dial_pacer *dp)
{
	return dp->nwaiting;
}

unsigned dial_pacer_in_flight(const struct dial_pacer *dp)
{
	return dp->in_flight;
}

void dial_pacer_forgive(struct dial_pacer *dp, const char *peer_id, const char *ip, int port)
{
	struct endpoint *e = ep_get(dp, ip, port, false);
	struct host *h = host_get(dp, ip, false);
	struct waiting *w = NULL, **pp;

	if (e) {
		e->fails = 0;
		e->until = 0;
	}
	if (h)
		unpark(dp, h); /* to the queue, where a peer_id is found */
	if (peer_id == NULL)
		goto out;
	for (w = dp->wait_h[wait_bucket(dp, peer_id)]; w; w = w->hnext)
		if (strcmp(w->peer_id, peer_id) == 0)
			break;
	if (w == NULL)
		goto out;
	/* Queued at another address (it moved): bring those back too. */
	if ((h = host_get(dp, w->ip, false)) != NULL)
		unpark(dp, h);
	struct waiting *prev = NULL;
	for (pp = &dp->head; *pp != NULL && *pp != w; pp = &(*pp)->next)
		prev = *pp;
	if (*pp == NULL)
		goto out; /* cannot happen: every waiting peer is queued or parked */
	*pp = w->next;
	if (dp->tail == w)
		dp->tail = prev;
	unhash_waiting(dp, w);
	free(w);
out:
	if (dp->head != NULL && !ev_is_active(&dp->timer) && !dp->pumping)
		arm(dp);
}

double dial_pacer_backoff(const struct dial_pacer *dp, const char *ip, int port)
{
	struct endpoint *e = ep_get((struct dial_pacer *)dp, ip, port, false);
	double left = e ? e->until - mono_now() : 0;

	return left > 0 ? left : 0;
}
