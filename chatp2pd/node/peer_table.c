#include "node/peer_table.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "xmalloc.h"

/* FNV-1a: ids are short and attacker-chosen only up to the table cap. */
static size_t hash(const char *s)
{
	return (size_t)fnv64(1469598103934665603ULL, s);
}

void peer_table_init(struct peer_table *t, size_t max)
{
	t->nbuckets = 256;
	t->buckets = xcalloc(t->nbuckets, sizeof *t->buckets);
	t->count = 0;
	t->max = max;
	t->met_only = 0;
	t->mo_head = t->mo_tail = NULL;
}

void peer_table_free(struct peer_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct peer *p = t->buckets[i], *next;
		for (; p; p = next) {
			next = p->next;
			free(p);
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->count = 0;
	t->met_only = 0;
	t->mo_head = t->mo_tail = NULL;
}

struct peer *peer_find(const struct peer_table *t, const char *id)
{
	struct peer *p = t->buckets[hash(id) % t->nbuckets];

	for (; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static void grow(struct peer_table *t)
{
	size_t n = t->nbuckets * 2;
	struct peer **b = xcalloc(n, sizeof *b);

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct peer *p = t->buckets[i], *next;
		for (; p; p = next) {
			next = p->next;
			size_t h = hash(p->id) % n;
			p->next = b[h];
			b[h] = p;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

/* Only met, never listed: no address to dial back, nothing under way. */
static bool forgettable(const struct peer *p)
{
	return p->ip[0] == '\0' && p->conn == NULL && p->dialing == NULL &&
	       !ev_is_active(&p->retry_timer);
}

static void mo_unlink(struct peer_table *t, struct peer *p)
{
	if (p->mo_prev)
		p->mo_prev->mo_next = p->mo_next;
	else
		t->mo_head = p->mo_next;
	if (p->mo_next)
		p->mo_next->mo_prev = p->mo_prev;
	else
		t->mo_tail = p->mo_prev;
	p->mo_prev = p->mo_next = NULL;
}

/* In last_seen order: from the tail, as times come in increasing (a clock
 * stepped back costs a walk once). */
static void mo_insert(struct peer_table *t, struct peer *p)
{
	struct peer *after = t->mo_tail;

	while (after && after->last_seen > p->last_seen)
		after = after->mo_prev;
	p->mo_prev = after;
	p->mo_next = after ? after->mo_next : t->mo_head;
	if (p->mo_next)
		p->mo_next->mo_prev = p;
	else
		t->mo_tail = p;
	if (after)
		after->mo_next = p;
	else
		t->mo_head = p;
}

/* Unlink p from its hash chain and the met-only list, and free it. */
static void forget(struct peer_table *t, struct peer *p)
{
	struct peer **pp = &t->buckets[hash(p->id) % t->nbuckets];

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	if (p->ip[0] == '\0') {
		mo_unlink(t, p);
		t->met_only--;
	}
	free(p);
	t->count--;
}

/* The table is full: forget the forgettable peer seen longest ago, so that
 * made-up ids in inbound HELLOs cannot lock real peers out.  Only met-only
 * peers are forgettable, and their list is in the order they were seen:
 * the first one not connected is the one. */
static bool evict_one(struct peer_table *t)
{
	for (struct peer *p = t->mo_head; p; p = p->mo_next)
		if (forgettable(p)) {
			forget(t, p);
			return true;
		}
	return false;
}

struct peer *peer_get(struct peer_table *t, const char *id, double wall_now)
{
	struct peer *p = peer_find(t, id);
	const char *ns;

	if (p != NULL)
		return p;
	if ((ns = peer_id_ns(id)) == NULL)
		return NULL;
	if (t->count >= t->max && !evict_one(t))
		return NULL;
	if (t->count >= t->nbuckets)
		grow(t);
	p = xcalloc(1, sizeof *p);
	strcpy(p->id, id);
	strcpy(p->ns, ns);
	p->state = PEER_UNKNOWN;
	p->first_seen = p->last_seen = wall_now;
	size_t h = hash(id) % t->nbuckets;
	p->next = t->buckets[h];
	t->buckets[h] = p;
	t->count++;
	mo_insert(t, p); /* no address yet */
	t->met_only++;
	return p;
}

void peer_set_addr(struct peer_table *t, struct peer *p, const char *ip, int port)
{
	if (ip[0] == '\0')
		return;
	if (p->ip[0] == '\0') {
		mo_unlink(t, p);
		t->met_only--;
	}
	snprintf(p->ip, sizeof p->ip, "%s", ip);
	p->port = port;
}

void peer_seen(struct peer_table *t, struct peer *p, double wall_now)
{
	p->last_seen = wall_now;
	if (p->ip[0] == '\0') {
		mo_unlink(t, p);
		mo_insert(t, p);
	}
}

void peer_foreach(const struct peer_table *t, void (*fn)(struct peer *p, void *ctx), void *ctx)
{
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct peer *p = t->buckets[i]; p; p = p->next)
			fn(p, ctx);
}

const char *peer_state_name(enum peer_state s)
{
	switch (s) {
	case PEER_UNKNOWN: return "UNKNOWN";
	case PEER_ACTIVE: return "ACTIVE";
	case PEER_STALE: return "STALE";
	}
	return "?";
}

void rtt_add(struct rtt_stats *r, double ms)
{
	if (r->samples == 0 || ms < r->min)
		r->min = ms;
	if (r->samples == 0 || ms > r->max)
		r->max = ms;
	r->last = ms;
	r->sum += ms;
	r->samples++;
}

double rtt_avg(const struct rtt_stats *r)
{
	return r->samples ? r->sum / (double)r->samples : 0;
}

double peer_success_rate(const struct peer *p)
{
	return p->attempts ? 100.0 * p->dial_ok / p->attempts : 100.0;
}

bool peer_evict_one(struct peer_table *t)
{
	return evict_one(t);
}

size_t peer_count_met_only(const struct peer_table *t)
{
	return t->met_only;
}

size_t peer_forget_idle(struct peer_table *t, double seen_before)
{
	size_t gone = 0;

	for (struct peer *p = t->mo_head, *next; p; p = next) {
		next = p->mo_next;
		if (forgettable(p) && p->last_seen < seen_before) {
			forget(t, p);
			gone++;
		}
	}
	return gone;
}
