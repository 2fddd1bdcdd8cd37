/* The registration store: a slot array (stable indices, so a DISCOVER reply
 * can be produced in pieces with a plain index as cursor) plus a chained hash
 * index on (ip, namespace, name) for upserts, and a count of entries per ip
 * (another chained hash) for the per-address quota. */
#include "rendezvous/server/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"
#include "xmalloc.h"

#define NO_SLOT UINT32_MAX

struct entry {
	double expires;  /* monotonic time it is gone: last REGISTER + ttl */
	uint32_t hash;
	uint32_t next;   /* next slot in the hash chain, NO_SLOT at the end */
	int port;
	int ttl;
	const char *ns;  /* into key[] */
	const char *name;
	char key[];      /* ip '\0' ns '\0' name '\0' */
};

/* Entries held (live or not yet purged) from one ip. */
struct ipcount {
	struct ipcount *next;
	uint32_t hash;
	uint32_t n;
	char ip[];
};

struct rdv_store {
	struct entry **slots; /* [0, top) ever used; NULL = free */
	uint32_t *freel;      /* free slot indices below top */
	size_t nfree;
	size_t top;
	size_t alloc;         /* length of slots and freel */
	size_t count;
	size_t max;
	uint32_t *buckets;    /* head slot of each chain */
	size_t mask;
	double min_expires;   /* lower bound of every entry's expiry */
	size_t max_per_ip;    /* 0: no quota */
	bool exempt_loopback; /* loopback ips are not held to max_per_ip */
	struct ipcount **ipb; /* per-ip counts, mask + 1 buckets */
	unsigned long changes;
	rdv_store_change_fn listener;
	void *listener_ctx;
};

static uint32_t ip_hash(const char *ip)
{
	return fnv32(FNV32_BASIS, ip);
}

/* The count for ip, created at 0 if create; NULL if absent and !create. */
static struct ipcount *ipc_get(struct rdv_store *s, const char *ip, bool create)
{
	uint32_t h = ip_hash(ip);
	struct ipcount **head = &s->ipb[h & s->mask], *c;

	for (c = *head; c != NULL; c = c->next)
		if (c->hash == h && strcmp(c->ip, ip) == 0)
			return c;
	if (!create)
		return NULL;
	size_t l = strlen(ip) + 1;
	c = xmalloc(sizeof *c + l);
	memcpy(c->ip, ip, l);
	c->hash = h;
	c->n = 0;
	c->next = *head;
	*head = c;
	return c;
}

static void ipc_dec(struct rdv_store *s, const char *ip)
{
	uint32_t h = ip_hash(ip);
	struct ipcount **link = &s->ipb[h & s->mask], *c;

	while ((c = *link) != NULL && !(c->hash == h && strcmp(c->ip, ip) == 0))
		link = &c->next;
	if (c != NULL && --c->n == 0) {
		*link = c->next;
		free(c);
	}
}

/* FNV-1a over the three strings with their terminators, so ("ab","c") and
 * ("a","bc") differ.  Keys are attacker-chosen, but the per-ip rate limit
 * makes filling one chain impractically slow. */
static uint32_t key_hash(const char *ip, const char *ns, const char *name)
{
	const char *parts[3] = { ip, ns, name };
	uint32_t h = FNV32_BASIS;

	for (int i = 0; i < 3; i++)
		h = fnv32_byte(fnv32(h, parts[i]), '\0');
	return h;
}

struct rdv_store *rdv_store_new(size_t max)
{
	struct rdv_store *s = xcalloc(1, sizeof *s);
	size_t nb = 16;

	s->max = max ? max : RDV_STORE_MAX;
	if (s->max > UINT32_MAX - 1)
		s->max = UINT32_MAX - 1;
	/* One bucket per entry at most: chains stay short at any fill. */
	while (nb < s->max && nb < (1u << 20))
		nb <<= 1;
	s->buckets = xmalloc(nb * sizeof *s->buckets);
	for (size_t i = 0; i < nb; i++)
		s->buckets[i] = NO_SLOT;
	s->mask = nb - 1;
	s->ipb = xcalloc(nb, sizeof *s->ipb);
	s->min_expires = 0;
	return s;
}

void rdv_store_free(struct rdv_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->top; i++)
		free(s->slots[i]);
	free(s->slots);
	free(s->freel);
	free(s->buckets);
	for (size_t i = 0; i <= s->mask; i++) {
		struct ipcount *c = s->ipb[i], *next;
		for (; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	}
	free(s->ipb);
	free(s);
}

static void tell(struct rdv_store *s, const struct entry *e, double now, bool removed);

static bool expired(const struct entry *e, double now)
{
	return now >= e->expires;
}

static void remove_slot(struct rdv_store *s, uint32_t i)
{
	struct entry *e = s->slots[i];
	uint32_t *link = &s->buckets[e->hash & s->mask];

	while (*link != i)
		link = &s->slots[*link]->next;
	*link = e->next;
	ipc_dec(s, e->key);
	free(e);
	s->slots[i] = NULL;
	s->freel[s->nfree++] = i;
	s->count--;
	s->changes++;
}

/* The entry in slot i, or NULL if the slot is free or its entry has expired
 * (purged on the way). */
static struct entry *live(struct rdv_store *s, size_t i, double now)
{
	struct entry *e = s->slots[i];

	if (e != NULL && expired(e, now)) {
		remove_slot(s, (uint32_t)i);
		return NULL;
	}
	return e;
}

static uint32_t find(const struct rdv_store *s, uint32_t h, const char *ip, const char *ns,
		     const char *name)
{
	for (uint32_t i = s->buckets[h & s->mask]; i != NO_SLOT; i = s->slots[i]->next) {
		const struct entry *e = s->slots[i];
		if (e->hash == h && strcmp(e->key, ip) == 0 && strcmp(e->ns, ns) == 0 &&
		    strcmp(e->name, name) == 0)
			return i;
	}
	return NO_SLOT;
}

static uint32_t alloc_slot(struct rdv_store *s)
{
	if (s->nfree > 0)
		return s->freel[--s->nfree];
	if (s->top == s->alloc) {
		size_t n = s->alloc ? s->alloc * 2 : 64;
		if (n > s->max)
			n = s->max;
		s->slots = xrealloc(s->slots, n * sizeof *s->slots);
		s->freel = xrealloc(s->freel, n * sizeof *s->freel);
		s->alloc = n;
	}
	s->slots[s->top] = NULL;
	return (uint32_t)s->top++;
}

static int clamp_ttl(int ttl)
{
	return ttl < RDV_TTL_MIN ? RDV_TTL_MIN : ttl > RDV_TTL_MAX ? RDV_TTL_MAX : ttl;
}

void rdv_store_set_max_per_ip(struct rdv_store *s, size_t max_per_ip, bool exempt_loopback)
{
	s->max_per_ip = max_per_ip;
	s->exempt_loopback = exempt_loopback;
}

static bool loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

/* Over the per-ip quota, after purging what has expired? */
static bool over_quota(struct rdv_store *s, const char *ip, double now)
{
	struct ipcount *c;

	if (s->max_per_ip == 0 || (s->exempt_loopback && loopback(ip)))
		return false;
	c = ipc_get(s, ip, false);
	if (c == NULL || c->n < s->max_per_ip)
		return false;
	rdv_store_expire(s, now);
	c = ipc_get(s, ip, false);
	return c != NULL && c->n >= s->max_per_ip;
}

static enum rdv_store_result upsert(struct rdv_store *s, const char *ip, const char *ns,
				    const char *name, int port, int ttl, double now,
				    double expires)
{
	uint32_t h = key_hash(ip, ns, name);
	uint32_t i = find(s, h, ip, ns, name);
	enum rdv_store_result r = RDV_STORE_UPDATED;
	struct entry *e;

	if (i != NO_SLOT) {
		e = s->slots[i];
		if (expired(e, now))
			r = RDV_STORE_NEW;
	} else {
		if (s->count >= s->max)
			rdv_store_expire(s, now);
		if (s->count >= s->max)
			return RDV_STORE_FULL;
		if (over_quota(s, ip, now))
			return RDV_STORE_IP_FULL;
		size_t lip = strlen(ip) + 1, lns = strlen(ns) + 1, lname = strlen(name) + 1;
		e = xmalloc(sizeof *e + lip + lns + lname);
		memcpy(e->key, ip, lip);
		memcpy(e->key + lip, ns, lns);
		memcpy(e->key + lip + lns, name, lname);
		e->ns = e->key + lip;
		e->name = e->key + lip + lns;
		e->hash = h;
		i = alloc_slot(s);
		s->slots[i] = e;
		e->next = s->buckets[h & s->mask];
		s->buckets[h & s->mask] = i;
		s->count++;
		ipc_get(s, ip, true)->n++;
		r = RDV_STORE_NEW;
	}
	e->port = port;
	e->ttl = ttl;
	e->expires = expires;
	s->changes++;
	if (s->count == 1 || e->expires < s->min_expires)
		s->min_expires = e->expires;
	tell(s, e, now, false);
	return r;
}

enum rdv_store_result rdv_store_register(struct rdv_store *s, const char *ip, const char *ns,
					  const char *name, int port, int ttl, double now)
{
	ttl = clamp_ttl(ttl);
	return upsert(s, ip, ns, name, port, ttl, now, now + ttl);
}

enum rdv_store_result rdv_store_restore(struct rdv_store *s, const char *ip, const char *ns,
					 const char *name, int port, int ttl, double now,
					 double expires)
{
	ttl = clamp_ttl(ttl);
	if (expires <= now)
		return RDV_STORE_EXPIRED;
	if (expires > now + ttl)
		expires = now + ttl; /* never longer than it was granted */
	return upsert(s, ip, ns, name, port, ttl, now, expires);
}

static void view(const struct entry *e, double now, struct rdv_view *out)
{
	double left = e->expires - now;

	out->ip = e->key;
	out->ns = e->ns;
	out->name = e->name;
	out->port = e->port;
	out->ttl = e->ttl;
	out->expires_in = left > 0 ? (long)left : 0;
	out->expires = e->expires;
}

static void tell(struct rdv_store *s, const struct entry *e, double now, bool removed)
{
	struct rdv_view v;

	if (s->listener == NULL)
		return;
	view(e, now, &v);
	s->listener(s->listener_ctx, &v, removed);
}

bool rdv_store_next(struct rdv_store *s, size_t *cursor, const char *ns, double now,
		    struct rdv_view *out)
{
	for (size_t i = *cursor; i < s->top; i++) {
		struct entry *e = live(s, i, now);
		if (e == NULL)
			continue;
		if (ns != NULL && strcmp(e->ns, ns) != 0)
			continue;
		view(e, now, out);
		*cursor = i + 1;
		return true;
	}
	*cursor = s->top;
	return false;
}

size_t rdv_store_unregister(struct rdv_store *s, const char *ip, const char *ns, const char *name,
			    bool has_port, long long port, double now)
{
	size_t n = 0;

	for (size_t i = 0; i < s->top; i++) {
		struct entry *e = live(s, i, now);
		if (e == NULL)
			continue;
		if (strcmp(e->key, ip) != 0 || strcmp(e->ns, ns) != 0)
			continue;
		if (name != NULL && strcmp(e->name, name) != 0)
			continue;
		if (has_port && e->port != port)
			continue;
		tell(s, e, now, true);
		remove_slot(s, (uint32_t)i);
		n++;
	}
	return n;
}

size_t rdv_store_expire(struct rdv_store *s, double now)
{
	size_t n = 0;
	double min = 0;
	bool any = false;

	/* Nothing can have expired yet: skip the scan (it runs on every insert
	 * into a full store). */
	if (s->count == 0 || now < s->min_expires)
		return 0;
	for (size_t i = 0; i < s->top; i++) {
		struct entry *e = s->slots[i];
		if (e == NULL)
			continue;
		if (expired(e, now)) {
			remove_slot(s, (uint32_t)i);
			n++;
		} else if (!any || e->expires < min) {
			min = e->expires;
			any = true;
		}
	}
	s->min_expires = min;
	return n;
}

size_t rdv_store_count(const struct rdv_store *s)
{
	return s->count;
}

size_t rdv_store_max(const struct rdv_store *s)
{
	return s->max;
}

size_t rdv_store_ip_count(struct rdv_store *s, const char *ip)
{
	struct ipcount *c = ipc_get(s, ip, false);

	return c ? c->n : 0;
}

size_t rdv_store_max_per_ip(const struct rdv_store *s)
{
	return s->max_per_ip;
}

unsigned long rdv_store_changes(const struct rdv_store *s)
{
	return s->changes;
}

void rdv_store_set_listener(struct rdv_store *s, rdv_store_change_fn fn, void *ctx)
{
	s->listener = fn;
	s->listener_ctx = ctx;
}
