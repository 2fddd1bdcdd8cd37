/* The peer table (PROTOCOL.md section 3): every peer ever discovered or
 * met, with its state, address, counters, RTT samples and reconnection
 * backoff.  Pure bookkeeping: no I/O; the node drives it. */
#ifndef CHATP2PD_PEER_TABLE_H
#define CHATP2PD_PEER_TABLE_H
#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#include "peerid.h"

enum peer_state {
	PEER_UNKNOWN = 0, /* discovered, never connected */
	PEER_ACTIVE,      /* connected now */
	PEER_STALE,       /* was connected, connection lost */
};

struct rtt_stats {
	double last, sum, min, max; /* milliseconds */
	unsigned long samples;
};

struct session;

/* Per-peer traffic (control "peers"/"conn", metrics): counted where a
 * message is parsed or queued and where a SEND's fate is known. */
struct peer_traffic {
	unsigned long long msgs_in, msgs_out, bytes_in, bytes_out;
	unsigned long long pubs_in, pubs_out;
	unsigned long long sends_acked, sends_timed_out, sends_late;
};

/* One registration of the peer's name at the rendezvous (§5.1): a name
 * listed at several ips is ambiguous. */
#define PEER_LISTED_MAX 4
struct peer_listing {
	char ip[64];
	int port;
	double until;           /* monotonic: its registration's expiry */
};

struct peer {
	char id[PEER_ID_MAX + 1];
	char ns[NAME_MAX_BYTES + 1];
	char ip[64];            /* where to dial it (from DISCOVER), "" if unknown */
	int port;
	enum peer_state state;
	double first_seen;      /* wall clock, for display */
	double last_seen;       /* wall clock: last DISCOVER listing or traffic */
	double connected_at;    /* monotonic, while ACTIVE */
	unsigned connects;      /* connections established (either direction) */
	unsigned disconnects;
	unsigned attempts;      /* dials started, ever */
	unsigned dial_ok;       /* dials that reached HELLO_OK */
	unsigned retry;         /* failed dials in the current backoff cycle */
	bool gave_up;           /* retries exhausted: wait for the next DISCOVER */
	bool left;              /* said BYE: do not hurry back */
	double left_at;         /* monotonic, when it said BYE */
	double listed_until;    /* monotonic expiry of the registration we dial */
	long long listed_expires; /* its expires_in when listed, -1 unknown */
	struct rtt_stats rtt;
	struct session *conn;   /* the established connection, when ACTIVE */
	struct session *dialing; /* our outbound attempt in progress */
	ev_timer retry_timer;   /* next dial attempt */
	void *owner;            /* the node (for retry_timer) */
	struct peer *next;      /* hash chain */
	/* Met-only list (no address): least recently seen first. */
	struct peer *mo_prev, *mo_next;
	struct peer_traffic traffic;
	/* Claims (node/claims.c): where the name is listed, and the ip a
	 * backed connection was last seen from (kept while ambiguous). */
	struct peer_listing listed[PEER_LISTED_MAX];
	int nlisted;
	char known_ip[64];
	char warned_ip[64];     /* the other address we were last told of */
	bool contested;         /* unbacked, and claimed from another ip too */
};

struct peer_table {
	struct peer **buckets;
	size_t nbuckets;
	size_t count;
	size_t max;             /* never more peers than this (hostile DISCOVER) */
	/* Peers only met inbound, counted and listed so that accounting and
	 * eviction cost O(1) per inbound HELLO at any table size. */
	size_t met_only;
	struct peer *mo_head, *mo_tail;
};

void peer_table_init(struct peer_table *t, size_t max);
/* Free every peer; the caller has stopped their timers. */
void peer_table_free(struct peer_table *t);
struct peer *peer_find(const struct peer_table *t, const char *id);
/* Find or add (UNKNOWN); NULL if id is invalid or the table is full of
 * peers it must keep.  At the cap a peer only met inbound (no address, no
 * connection, no retry pending), seen longest ago, is forgotten to make room. */
struct peer *peer_get(struct peer_table *t, const char *id, double wall_now);
/* Give p the address it is dialled at (ip non-empty): it is no longer
 * met-only.  The only way to set p->ip, so the met-only count holds. */
void peer_set_addr(struct peer_table *t, struct peer *p, const char *ip, int port);
/* p was seen now (wall clock): last_seen, and a met-only peer moves to the
 * back of the eviction order. */
void peer_seen(struct peer_table *t, struct peer *p, double wall_now);
/* Call fn for every peer; fn must not add or remove peers. */
void peer_foreach(const struct peer_table *t, void (*fn)(struct peer *p, void *ctx), void *ctx);
/* Peers only met inbound (no address from a DISCOVER): how many (O(1));
 * forget the one seen longest ago that is not connected (false if none;
 * O(1) but for connected met-only peers passed on the way); forget every
 * such one last seen before seen_before (wall clock), returning how many
 * (O(met-only peers)). */
size_t peer_count_met_only(const struct peer_table *t);
bool peer_evict_one(struct peer_table *t);
size_t peer_forget_idle(struct peer_table *t, double seen_before);

const char *peer_state_name(enum peer_state s);
void rtt_add(struct rtt_stats *r, double ms);
double rtt_avg(const struct rtt_stats *r);
/* Dial success rate in percent (100 when never tried). */
double peer_success_rate(const struct peer *p);

#endif
