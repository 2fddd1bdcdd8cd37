/* Sliding-window limiter: per ip, a ring of the times of its connections
 * inside the window, in a hash table with an LRU list for eviction. */
#include "rendezvous/server/limit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "fnv.h"
#include "xmalloc.h"

#define IP_MAX 64

struct iprec {
	struct iprec *hnext;    /* hash chain */
	TAILQ_ENTRY(iprec) lru; /* least recently seen first */
	uint32_t hash;
	double blocked_until;   /* blocked while now is before it (0: never was) */
	double last_seen;
	double *ts;             /* ring of connection times, oldest at head */
	size_t head, n, cap;
	char ip[IP_MAX];
};

TAILQ_HEAD(iplist, iprec);

struct rdv_limit {
	int limit;
	double window;
	double block;
	size_t max_ips;
	size_t count;
	size_t evictions;
	struct iprec **buckets;
	size_t mask;
	struct iplist lru;
};

static uint32_t ip_hash(const char *ip)
{
	return fnv32(FNV32_BASIS, ip);
}

struct rdv_limit *rdv_limit_new(int limit, double window, double block, size_t max_ips)
{
	struct rdv_limit *l = xcalloc(1, sizeof *l);
	size_t nb = 16;

	l->limit = limit;
	l->window = window;
	l->block = block;
	l->max_ips = max_ips ? max_ips : RDV_LIMIT_MAX_IPS;
	while (nb < l->max_ips && nb < (1u << 20))
		nb <<= 1;
	l->buckets = xcalloc(nb, sizeof *l->buckets);
	l->mask = nb - 1;
	TAILQ_INIT(&l->lru);
	return l;
}

static void rec_remove(struct rdv_limit *l, struct iprec *r)
{
	struct iprec **link = &l->buckets[r->hash & l->mask];

	while (*link != r)
		link = &(*link)->hnext;
	*link = r->hnext;
	TAILQ_REMOVE(&l->lru, r, lru);
	free(r->ts);
	free(r);
	l->count--;
}

void rdv_limit_free(struct rdv_limit *l)
{
	struct iprec *r;

	if (l == NULL)
		return;
	while ((r = TAILQ_FIRST(&l->lru)) != NULL)
		rec_remove(l, r);
	free(l->buckets);
	free(l);
}

static struct iprec *rec_get(struct rdv_limit *l, const char *ip)
{
	uint32_t h = ip_hash(ip);
	struct iprec *r;

	for (r = l->buckets[h & l->mask]; r != NULL; r = r->hnext)
		if (r->hash == h && strcmp(r->ip, ip) == 0)
			return r;
	if (l->count >= l->max_ips) {
		/* Full of ips seen within the window: forget the stalest. */
		rec_remove(l, TAILQ_FIRST(&l->lru));
		l->evictions++;
	}
	r = xcalloc(1, sizeof *r);
	snprintf(r->ip, sizeof r->ip, "%s", ip);
	r->hash = h;
	r->hnext = l->buckets[h & l->mask];
	l->buckets[h & l->mask] = r;
	TAILQ_INSERT_TAIL(&l->lru, r, lru);
	l->count++;
	return r;
}

static void ring_push(struct iprec *r, double t)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		double *ts = xmalloc(cap * sizeof *ts);
		for (size_t i = 0; i < r->n; i++)
			ts[i] = r->ts[(r->head + i) % r->cap];
		free(r->ts);
		r->ts = ts;
		r->cap = cap;
		r->head = 0;
	}
	r->ts[(r->head + r->n) % r->cap] = t;
	r->n++;
}

enum rdv_verdict rdv_limit_check(struct rdv_limit *l, const char *ip, double now, double *left)
{
	struct iprec *r;

	*left = 0;
	if (l->limit < 1)
		return RDV_LIMIT_OK;
	r = rec_get(l, ip);
	r->last_seen = now;
	TAILQ_REMOVE(&l->lru, r, lru);
	TAILQ_INSERT_TAIL(&l->lru, r, lru);

	if (now < r->blocked_until) {
		*left = r->blocked_until - now;
		return RDV_LIMIT_BLOCKED;
	}
	while (r->n > 0 && r->ts[r->head] <= now - l->window) {
		r->head = (r->head + 1) % r->cap;
		r->n--;
	}
	if (r->n >= (size_t)l->limit) {
		r->blocked_until = now + l->block;
		r->n = r->head = 0; /* a fresh window once the block ends */
		*left = l->block;
		return RDV_LIMIT_EXCEEDED;
	}
	ring_push(r, now);
	return RDV_LIMIT_OK;
}

size_t rdv_limit_sweep(struct rdv_limit *l, double now)
{
	struct iprec *r, *next;
	size_t n = 0;

	for (r = TAILQ_FIRST(&l->lru); r != NULL; r = next) {
		next = TAILQ_NEXT(r, lru);
		if (now < r->blocked_until)
			continue;
		if (now - r->last_seen <= l->window)
			break; /* the rest were seen later still */
		rec_remove(l, r);
		n++;
	}
	return n;
}

size_t rdv_limit_count(const struct rdv_limit *l)
{
	return l->count;
}

size_t rdv_limit_evictions(const struct rdv_limit *l)
{
	return l->evictions;
}
