#include "control/metrics.h"

#include "control/control.h"
#include "msg.h"
#include "node/node.h"
#include "node/stats.h"
#include "store/storage.h"

struct peer_counts {
	unsigned long state[3];
};

static void count_state(struct peer *p, void *ctx)
{
	struct peer_counts *pc = ctx;

	if ((unsigned)p->state < 3)
		pc->state[p->state]++;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_evicted(void *ctx, const char *src, long stored, uint64_t evicted)
{
	/* peer_ids are name@namespace: no quote or backslash to escape. */
	buf_printf(ctx, "chatp2p_inbox_evicted_by_sender_total{sender=\"%s\"} %llu\n", src,
		   (unsigned long long)evicted);
}

void metrics_text(struct node *n, const struct control *ctl, struct buf *b)
{
	static const char *const dirs[2] = { "in", "out" };
	static const char *const kinds[3] = { "register", "discover", "unregister" };
	struct node_stats *s = node_stats(n);
	const struct rdv_status *reg = node_registration(n);
	struct peer_counts pc = { { 0, 0, 0 } };
	unsigned long conns[2] = { 0, 0 };
	unsigned clients;
	uint64_t dropped;

	peer_foreach(node_peer_table(n), count_state, &pc);
	for (struct session *c = node_conns(n); c; c = c->next)
		if (c->state == SESSION_ESTABLISHED)
			conns[c->dir == CONN_OUT]++;
	control_stats(ctl, &clients, &dropped);

	family(b, "chatp2p_peers", "gauge", "Peers in the peer table, by state.");
	for (int st = 0; st < 3; st++)
		buf_printf(b, "chatp2p_peers{state=\"%s\"} %lu\n", peer_state_name((enum peer_state)st),
			   pc.state[st]);
	family(b, "chatp2p_connections", "gauge", "Established peer connections, by direction.");
	for (int d = 0; d < 2; d++)
		buf_printf(b, "chatp2p_connections{direction=\"%s\"} %lu\n", d ? "outbound" : "inbound",
			   conns[d]);
	family(b, "chatp2p_connections_established_total", "counter",
	       "Connections that completed the handshake, by direction.");
	for (int d = 0; d < 2; d++)
		buf_printf(b, "chatp2p_connections_established_total{direction=\"%s\"} %llu\n",
			   d ? "outbound" : "inbound", (unsigned long long)s->established[d]);

	family(b, "chatp2p_messages_total", "counter", "Peer messages received and queued, by type.");
	for (int d = 0; d < 2; d++)
		for (int t = 0; t < PM__COUNT; t++)
			buf_printf(b, "chatp2p_messages_total{direction=\"%s\",type=\"%s\"} %llu\n", dirs[d],
				   t == PM_UNKNOWN ? "other" : pmsg_type_name((enum pmsg_type)t),
				   (unsigned long long)s->msgs[d][t]);
	family(b, "chatp2p_message_bytes_total", "counter",
	       "Bytes of peer messages received and queued, by type.");
	for (int d = 0; d < 2; d++)
		for (int t = 0; t < PM__COUNT; t++)
			buf_printf(b, "chatp2p_message_bytes_total{direction=\"%s\",type=\"%s\"} %llu\n",
				   dirs[d], t == PM_UNKNOWN ? "other" : pmsg_type_name((enum pmsg_type)t),
				   (unsigned long long)s->bytes[d][t]);

	family(b, "chatp2p_ack_rtt_seconds", "histogram", "Time from a SEND to its ACK.");
	uint64_t cum = 0;
	for (int i = 0; i < ACK_RTT_NBUCKETS; i++) {
		cum += s->ack_rtt_buckets[i];
		buf_printf(b, "chatp2p_ack_rtt_seconds_bucket{le=\"%g\"} %llu\n", ack_rtt_bounds[i],
			   (unsigned long long)cum);
	}
	cum += s->ack_rtt_buckets[ACK_RTT_NBUCKETS];
	buf_printf(b, "chatp2p_ack_rtt_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	buf_printf(b, "chatp2p_ack_rtt_seconds_sum %.6f\n", s->ack_rtt_sum);
	buf_printf(b, "chatp2p_ack_rtt_seconds_count %llu\n", (unsigned long long)s->ack_rtt_count);
	family(b, "chatp2p_ack_timeouts_total", "counter", "SENDs with no ACK within ack_timeout.");
	buf_printf(b, "chatp2p_ack_timeouts_total %llu\n", (unsigned long long)s->ack_timeouts);
	family(b, "chatp2p_acks_late_total", "counter", "ACKs that came after ack_timeout.");
	buf_printf(b, "chatp2p_acks_late_total %llu\n", (unsigned long long)s->acks_late);

	family(b, "chatp2p_inbox_evicted_total", "counter",
	       "Stored messages removed to keep the inbox bounds (storage.inbox_max_*).");
	buf_printf(b, "chatp2p_inbox_evicted_total %llu\n",
		   (unsigned long long)storage_evicted(node_storage(n)));
	family(b, "chatp2p_inbox_evicted_by_sender_total", "counter",
	       "The same, for the 10 senders that lost the most.");
	storage_top_evicted(node_storage(n), 10, metric_evicted, b);

	family(b, "chatp2p_rendezvous_requests_total", "counter",
	       "Rendezvous transactions started, by kind.");
	for (int k = 0; k < 3; k++)
		buf_printf(b, "chatp2p_rendezvous_requests_total{kind=\"%s\"} %u\n", kinds[k],
			   reg->kind_requests[k]);
	family(b, "chatp2p_rendezvous_errors_total", "counter",
	       "Rendezvous transactions that failed, by kind.");
	for (int k = 0; k < 3; k++)
		buf_printf(b, "chatp2p_rendezvous_errors_total{kind=\"%s\"} %u\n", kinds[k],
			   reg->kind_errors[k]);
	family(b, "chatp2p_registered", "gauge", "1 while registered at the rendezvous server.");
	buf_printf(b, "chatp2p_registered %d\n", reg->state == RDV_REGISTERED);

	family(b, "chatp2p_controllers", "gauge", "Controllers connected to the control socket.");
	buf_printf(b, "chatp2p_controllers %u\n", clients);
	family(b, "chatp2p_events_dropped_total", "counter",
	       "Events not delivered to controllers that read too slowly.");
	buf_printf(b, "chatp2p_events_dropped_total %llu\n", (unsigned long long)dropped);
}
