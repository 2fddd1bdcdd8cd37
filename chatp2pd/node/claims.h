/* How much a peer_id claim is worth (PROTOCOL.md §5.1): a connection we
 * dialled to an address the rendezvous lists for the name, or one coming
 * from a listed ip, is backed; any other claim is unbacked.  A name listed
 * at several ips is ambiguous: until a pinned key decides, only the ip a
 * backed connection was seen from before backs it.  Pure bookkeeping on
 * struct peer; node.c decides which connection keeps the name. */
#ifndef CHATP2PD_CLAIMS_H
#define CHATP2PD_CLAIMS_H
#include <stdbool.h>
#include <stddef.h>

#include "node/peer_table.h"
#include "node/session.h"

/* A DISCOVER listed p at ip:port until `until` (monotonic). */
void claims_listed(struct peer *p, const char *ip, int port, double until);
/* Listed at more than one ip now. */
bool claims_ambiguous(const struct peer *p, double now);
/* The ip of "ip:port" or "[ip]:port" into out. */
void claims_addr_ip(const char *addr, char *out, size_t outlen);
bool claims_same_ip(const struct session *a, const struct session *b);
/* p is ambiguous and c is not at the ip p was reached at before (still
 * listed): until a pinned key decides, such a claim is refused. */
bool claims_elsewhere(const struct peer *p, const struct session *c, double now);
/* The strength of c's claim to be p (ID_BACKED or ID_UNBACKED). */
enum session_identity claims_weigh(const struct peer *p, const struct session *c, double now);
/* c (backed) became p's connection: remember its ip, unless the name is
 * ambiguous and another ip is remembered already. */
void claims_remember(struct peer *p, const struct session *c, double now);
/* Before a dial: the address to try (p->ip/port): an ambiguous name is
 * dialled at its remembered ip only, while listed; without one, at each
 * listing in turn.  Returns true if the choice is not a remembered ip of
 * an ambiguous name (the caller says so). */
bool claims_pick(struct peer_table *t, struct peer *p, double now);

#endif
