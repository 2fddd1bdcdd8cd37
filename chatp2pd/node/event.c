#include "node/event.h"

#include <stddef.h>

const char *node_event_name(enum node_event_type t)
{
	static const char *const names[EV__COUNT] = {
		[EV_MESSAGE] = "message",
		[EV_PUB] = "pub",
		[EV_ACK] = "ack",
		[EV_ACK_TIMEOUT] = "ack_timeout",
		[EV_PEER_CONNECTED] = "peer_connected",
		[EV_PEER_DISCONNECTED] = "peer_disconnected",
		[EV_PEER_STALE] = "peer_stale",
		[EV_PEER_DISCOVERED] = "peer_discovered",
		[EV_REGISTRATION] = "registration",
		[EV_EXPIRED] = "expired",
		[EV_IDENTITY_NEW] = "identity_new",
		[EV_IDENTITY_CHANGED] = "identity_changed",
		[EV_IMPOSTOR] = "impostor",
	};
	return (unsigned)t < EV__COUNT ? names[t] : "?";
}

const char *send_result_name(enum send_result r)
{
	switch (r) {
	case SEND_ACKED: return "acked";
	case SEND_SENT: return "sent";
	case SEND_ACK_TIMEOUT: return "ack_timeout";
	case SEND_NOT_CONNECTED: return "not_connected";
	case SEND_UNKNOWN_PEER: return "unknown_peer";
	case SEND_FAILED: return "failed";
	case SEND_EXPIRED: return "expired";
	case SEND_CANCELLED: return "cancelled";
	case SEND_IDENTITY_UNPROVEN: return "identity_unproven";
	}
	return "?";
}

int node_events_subscribe(struct node_events *e, node_event_fn fn, void *ctx)
{
	if (e->count >= NODE_EVENT_SUBS)
		return -1;
	e->sub[e->count].fn = fn;
	e->sub[e->count].ctx = ctx;
	e->count++;
	return 0;
}

void node_events_unsubscribe(struct node_events *e, node_event_fn fn, void *ctx)
{
	for (int i = 0; i < e->count; i++) {
		if (e->sub[i].fn != fn || e->sub[i].ctx != ctx)
			continue;
		for (int j = i + 1; j < e->count; j++)
			e->sub[j - 1] = e->sub[j];
		e->count--;
		return;
	}
}

void node_events_emit(const struct node_events *e, const struct node_event *ev)
{
	for (int i = 0; i < e->count; i++)
		e->sub[i].fn(e->sub[i].ctx, ev);
}
