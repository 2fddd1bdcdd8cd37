/* The node's counters for metrics, per-peer traffic and the reachability
 * hint of "status": messages and bytes by type and direction, the ACK RTT
 * histogram, connections established by direction.  Counted at a few
 * points: a line parsed or queued (a session's traffic callback, in
 * node.c), an event (stats subscribes to the node's events), a connection
 * established (node.c). */
#ifndef CHATP2PD_STATS_H
#define CHATP2PD_STATS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

struct node_event;
struct peer;
struct peer_table;

/* Upper bounds of the ACK RTT histogram, in seconds (+Inf implied). */
#define ACK_RTT_NBUCKETS 12
extern const double ack_rtt_bounds[ACK_RTT_NBUCKETS];

struct node_stats {
	uint64_t msgs[2][PM__COUNT];     /* [0] in, [1] out */
	uint64_t bytes[2][PM__COUNT];
	uint64_t ack_rtt_buckets[ACK_RTT_NBUCKETS + 1]; /* not cumulative; last: +Inf */
	double ack_rtt_sum;              /* seconds */
	uint64_t ack_rtt_count;
	uint64_t ack_timeouts, acks_late;
	uint64_t established[2];         /* connections established: [0] in, [1] out */
	double last_established[2];      /* wall clock, 0 never */
	double registered_since;         /* monotonic, 0 while not registered */
	char rdv_error[256];             /* the last rendezvous error seen ... */
	double rdv_error_at;             /* ... and when (wall clock), 0 none */
	struct peer_table *peers;        /* whose per-peer counters events update */
};

/* A line received (out false) or queued for sending (out true) with peer p
 * (NULL: not in the table): its type (PM_UNKNOWN when not one of ours) and
 * size in bytes. */
void stats_traffic(struct node_stats *s, struct peer *p, enum pmsg_type t, size_t bytes, bool out);
/* ACKs, late ACKs and ACK timeouts: a node event subscriber (ctx: the stats). */
void stats_on_event(void *ctx, const struct node_event *ev);

#endif
