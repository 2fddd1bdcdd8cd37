#include "node/stats.h"

#include <string.h>

#include "net/conn.h"
#include "node/node.h"
#include "node/peer_table.h"

const double ack_rtt_bounds[ACK_RTT_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
};

enum pmsg_type stats_line_type(const char *line, size_t len)
{
	static const char pre[] = "{\"type\":\"";
	const char *p, *q;

	if (len < sizeof pre || memcmp(line, pre, sizeof pre - 1) != 0)
		return PM_UNKNOWN;
	p = line + sizeof pre - 1;
	q = memchr(p, '"', len - (size_t)(p - line));
	if (q == NULL)
		return PM_UNKNOWN;
	for (int t = 1; t < PM__COUNT; t++) {
		const char *name = pmsg_type_name((enum pmsg_type)t);
		if (strlen(name) == (size_t)(q - p) && memcmp(name, p, (size_t)(q - p)) == 0)
			return (enum pmsg_type)t;
	}
	return PM_UNKNOWN;
}

void node_conn_traffic(struct node *n, struct conn *c, enum pmsg_type t, size_t bytes, bool out)
{
	struct node_stats *s = node_stats(n);
	struct peer *p = c->peer;
	int d = out ? 1 : 0;

	if ((unsigned)t >= PM__COUNT)
		t = PM_UNKNOWN;
	s->msgs[d][t]++;
	s->bytes[d][t] += bytes;
	if (p == NULL && c->peer_id[0])
		p = peer_find(node_peer_table(n), c->peer_id);
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

void stats_on_event(struct node *n, const struct node_event *ev)
{
	struct node_stats *s = node_stats(n);
	struct peer *p;

	if (ev->type != EV_ACK && ev->type != EV_ACK_TIMEOUT)
		return;
	p = ev->peer_id ? peer_find(node_peer_table(n), ev->peer_id) : NULL;
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
