/* The node's typed events and who hears them.  The node's parts (router,
 * outbox, node.c) emit one struct node_event per event; whoever wants to
 * know subscribes (the outbox for ACKs, stats, the control layer for its
 * history and watchers).  Upward news from the node travels only this way:
 * the node never includes a header of a layer above it. */
#ifndef CHATP2PD_NODE_EVENT_H
#define CHATP2PD_NODE_EVENT_H
#include <stdbool.h>

struct rdv_status;

enum node_event_type {
	EV_MESSAGE,          /* a SEND delivered to us */
	EV_PUB,              /* a PUB delivered to us */
	EV_ACK,              /* a SEND of ours was ACKed */
	EV_ACK_TIMEOUT,      /* a SEND of ours got no ACK within ack_timeout */
	EV_PEER_CONNECTED,   /* a connection became the peer's (ACTIVE) */
	EV_PEER_DISCONNECTED,/* the peer's connection closed (peer left: BYE) */
	EV_PEER_STALE,       /* the peer's connection was lost */
	EV_PEER_DISCOVERED,  /* a new peer appeared in a DISCOVER */
	EV_REGISTRATION,     /* the rendezvous registration changed state */
	EV_EXPIRED,          /* a queued SEND of ours was given up (deadline, attempts) */
	EV_IDENTITY_NEW,     /* a peer's key pinned on first use */
	EV_IDENTITY_CHANGED, /* a peer presented another key than its pin: refused */
	EV_IMPOSTOR,         /* a claim refused: a pinned peer without TLS, a failed
			      * handshake, no TLS under security.tls=require */
	EV__COUNT
};

/* Valid only during the call: subscribers copy what they keep. */
struct node_event {
	enum node_event_type type;
	const char *peer_id;   /* the other side (from, to, or the peer) */
	const char *to;        /* MESSAGE/PUB: dst as written */
	const char *text;      /* MESSAGE/PUB payload; DISCONNECTED/STALE/IMPOSTOR reason */
	const char *msg_id;
	double rtt_ms;         /* ACK */
	bool src_mismatch;     /* MESSAGE/PUB: src differs from the handshake */
	bool reconnected;      /* PEER_CONNECTED: it had been connected before */
	bool late;             /* ACK: after its ack_timeout had been reported */
	const struct rdv_status *reg; /* REGISTRATION */
	long long inbox_id;    /* MESSAGE/PUB: its inbox row (0: not stored) */
	bool dst_mismatch;     /* MESSAGE: dst is not our peer_id */
	const char *identity;  /* MESSAGE/PUB/PEER_CONNECTED: session_identity_name() */
	const char *address;   /* IDENTITY_*, IMPOSTOR: "ip:port" of the other end */
	const char *fingerprint; /* IDENTITY_*: the key presented; MESSAGE/PUB: the key the
				* sender's connection proved (NULL: not TLS) */
	const char *pinned;    /* IDENTITY_CHANGED, IMPOSTOR: the pinned key */
};

typedef void (*node_event_fn)(void *ctx, const struct node_event *ev);
const char *node_event_name(enum node_event_type t);

/* Subscribers, called in the order they subscribed. */
#define NODE_EVENT_SUBS 8
struct node_events {
	struct {
		node_event_fn fn;
		void *ctx;
	} sub[NODE_EVENT_SUBS];
	int count;
};
/* Returns -1 when all NODE_EVENT_SUBS slots are taken. */
int node_events_subscribe(struct node_events *e, node_event_fn fn, void *ctx);
void node_events_unsubscribe(struct node_events *e, node_event_fn fn, void *ctx);
void node_events_emit(const struct node_events *e, const struct node_event *ev);

/* How a SEND ended (the controller's "status"). */
enum send_result {
	SEND_ACKED,          /* the ACK came back */
	SEND_SENT,           /* written; no ACK was asked for */
	SEND_ACK_TIMEOUT,    /* no ACK within ack_timeout */
	SEND_NOT_CONNECTED,  /* known peer, no connection */
	SEND_UNKNOWN_PEER,   /* never heard of it */
	SEND_FAILED,         /* bad input or queue full */
	SEND_EXPIRED,        /* queued: deadline passed or attempts used up */
	SEND_CANCELLED,      /* queued: removed by outbox cancel */
	SEND_IDENTITY_UNPROVEN, /* the peer's key is pinned, its connection did not prove it */
};
const char *send_result_name(enum send_result r);
typedef void (*node_send_cb)(void *ctx, enum send_result r, const char *msg_id, double rtt_ms,
			     const char *detail);

#endif
