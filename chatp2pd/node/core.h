/* What the node's parts share, handed to each when node.c creates it: the
 * loop, the configuration, the node's identity, the peer table, the list of
 * peer sessions, the storage, and the event subscribers.  The router, the
 * outbox, the pinger and stats see the node through this and nothing else,
 * so none of them includes node.h: node.c is above them and calls down;
 * what they have to say goes up as node events (node/event.h) or through
 * the one callback here. */
#ifndef CHATP2PD_NODE_CORE_H
#define CHATP2PD_NODE_CORE_H
#include <ev.h>

#include "config.h"
#include "node/event.h"
#include "node/peer_table.h"

struct node_identity;
struct session;
struct storage;

struct node_core {
	struct ev_loop *loop;
	const struct config *cfg;   /* the node's, replaced in place by reload */
	const char *id;             /* name@namespace */
	const char *ns;
	struct peer_table *peers;
	struct session **sessions;  /* the node's list of sessions (its head) */
	struct storage *store;      /* NULL: storage.sync off */
	struct node_identity *ident; /* key, TLS context, pins (node/identity.h) */
	struct node_events events;
	/* Dial peer_id now, resetting its backoff (node_reconnect). */
	int (*reconnect)(void *owner, const char *peer_id);
	void *owner;
};

static inline void core_emit(struct node_core *core, const struct node_event *ev)
{
	node_events_emit(&core->events, ev);
}

#endif
