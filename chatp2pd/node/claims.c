/* Claims weighed by where they come from (PROTOCOL.md §5.1). */
#include "node/claims.h"
#include <stdio.h>
#include <string.h>

static bool live(const struct peer_listing *l, double now) { return l->until >= now; }

void claims_listed(struct peer *p, const char *ip, int port, double until)
{
	int i, oldest = 0;

	for (i = 0; i < p->nlisted; i++) {
		struct peer_listing *l = &p->listed[i];
		if (strcmp(l->ip, ip) == 0 && l->port == port) {
			if (until > l->until)
				l->until = until;
			return;
		}
		if (l->until < p->listed[oldest].until)
			oldest = i;
	}
	/* Full: the registration that expires first makes room (bounded
	 * whatever a hostile rendezvous lists). */
	i = p->nlisted < PEER_LISTED_MAX ? p->nlisted++ : oldest;
	snprintf(p->listed[i].ip, sizeof p->listed[i].ip, "%s", ip);
	p->listed[i].port = port;
	p->listed[i].until = until;
}

bool claims_ambiguous(const struct peer *p, double now)
{
	const char *first = NULL;

	for (int i = 0; i < p->nlisted; i++) {
		if (!live(&p->listed[i], now))
			continue;
		if (first == NULL)
			first = p->listed[i].ip;
		else if (strcmp(first, p->listed[i].ip) != 0)
			return true;
	}
	return false;
}

void claims_addr_ip(const char *addr, char *out, size_t outlen)
{
	const char *end;

	if (addr[0] == '[') {
		addr++;
		end = strchr(addr, ']');
	} else {
		end = strrchr(addr, ':');
	}
	size_t len = end ? (size_t)(end - addr) : strlen(addr);
	snprintf(out, outlen, "%.*s", (int)len, addr);
}

bool claims_same_ip(const struct session *a, const struct session *b)
{
	char x[80], y[80];

	claims_addr_ip(a->addr, x, sizeof x);
	claims_addr_ip(b->addr, y, sizeof y);
	return strcmp(x, y) == 0;
}

static bool listed_ip(const struct peer *p, const char *ip, double now)
{
	for (int i = 0; i < p->nlisted; i++)
		if (live(&p->listed[i], now) && strcmp(p->listed[i].ip, ip) == 0)
			return true;
	/* The address it is dialled at came from a DISCOVER too. */
	return p->ip[0] != '\0' && strcmp(p->ip, ip) == 0;
}

/* The ip a backed connection came from before, while still listed. */
static bool known_listed(const struct peer *p, double now)
{
	for (int i = 0; p->known_ip[0] && i < p->nlisted; i++)
		if (live(&p->listed[i], now) && strcmp(p->listed[i].ip, p->known_ip) == 0)
			return true;
	return false;
}

bool claims_elsewhere(const struct peer *p, const struct session *c, double now)
{
	char ip[80];

	if (!claims_ambiguous(p, now) || !known_listed(p, now))
		return false;
	claims_addr_ip(c->addr, ip, sizeof ip);
	return strcmp(p->known_ip, ip) != 0;
}

enum session_identity claims_weigh(const struct peer *p, const struct session *c, double now)
{
	char ip[80];

	claims_addr_ip(c->addr, ip, sizeof ip);
	if (!listed_ip(p, ip, now))
		return ID_UNBACKED;
	/* Listed at several ips: a listing of its own is all a stranger needs,
	 * so only the ip the name was reached at before counts. */
	if (claims_elsewhere(p, c, now))
		return ID_UNBACKED;
	return ID_BACKED;
}

void claims_remember(struct peer *p, const struct session *c, double now)
{
	if (c->identity < ID_BACKED)
		return;
	if (known_listed(p, now) && claims_ambiguous(p, now))
		return;
	claims_addr_ip(c->addr, p->known_ip, sizeof p->known_ip);
}

bool claims_pick(struct peer_table *t, struct peer *p, double now)
{
	int live_idx[PEER_LISTED_MAX], nlive = 0, known = -1;

	if (!claims_ambiguous(p, now))
		return false;
	for (int i = 0; i < p->nlisted; i++) {
		if (!live(&p->listed[i], now))
			continue;
		if (known < 0 && p->known_ip[0] && strcmp(p->listed[i].ip, p->known_ip) == 0)
			known = nlive;
		live_idx[nlive++] = i;
	}
	/* Reached at a listed ip before: there only (its other listings are
	 * refused, claims_elsewhere); never reached: each in turn. */
	int pick = known >= 0 ? known : (int)(p->attempts % (unsigned)nlive);
	const struct peer_listing *l = &p->listed[live_idx[pick]];
	peer_set_addr(t, p, l->ip, l->port);
	return pick != known;
}
