#include "node/stats.h"

#include <string.h>

#include "node/event.h"
#include "node/peer_table.h"

const double ack_rtt_bounds[ACK_RTT_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

void stats_traffic(struct node_stats *s, struct peer *p, enum pmsg_type t, size_t bytes, bool out)
{
	int d = out ? 1 : 0;

	if ((unsigned)t >= PM__COUNT)
		t = PM_UNKNOWN;
	s->msgs[d][t]++;
	s->bytes[d][t] += bytes;
	if (p == NULL)
		return;
	if (out) {
		p->traffic.msgs_out++;
		p->traffic.bytes_out += bytes;
		p->traffic.pubs_out += t == PM_PUB;
	} else {
		p->traffic.msgs_in++;
		p->traffic.bytes_in += bytes;
		p->traffic.pubs_in += t == PM_PUB;
	}
}

void stats_on_event(void *ctx, const struct node_event *ev)
{
	struct node_stats *s = ctx;
	struct peer *p;

	if (ev->type != EV_ACK && ev->type != EV_ACK_TIMEOUT)
		return;
	p = ev->peer_id ? peer_find(s->peers, ev->peer_id) : NULL;
	if (ev->type == EV_ACK_TIMEOUT) {
		s->ack_timeouts++;
		if (p)
			p->traffic.sends_timed_out++;
		return;
	}
	if (ev->late) {
		s->acks_late++;
		if (p)
			p->traffic.sends_late++;
		return;
	}
	if (p)
		p->traffic.sends_acked++;
	double secs = ev->rtt_ms / 1000.0;
	size_t b = 0;
	while (b < ACK_RTT_NBUCKETS && secs > ack_rtt_bounds[b])
		b++;
	s->ack_rtt_buckets[b]++;
	s->ack_rtt_sum += secs;
	s->ack_rtt_count++;
}
