/* A conversation in both directions: the "history" control method (what
 * we received, from the inbox, and what we sent, from store/history.c, in
 * time order), the recording of what controllers send, and "delete" of
 * stored messages. */
#ifndef CHATP2PD_CONVERSATION_H
#define CHATP2PD_CONVERSATION_H
#include <stdbool.h>

#include "control/control.h"
#include "node/node.h"

/* The "history" method: params {"peer": PEER_ID|"*"|"#ns", "limit": N}. */
void m_history(struct ctl_req *req, jval params);
/* The "delete" method: params {"ids": [inbox ids]}; result {"deleted": N,
 * "missing": [ids not there], "unread": U}. */
void m_delete(struct ctl_req *req, jval params);

/* A SEND we are about to make (outcome pending), and its outcome.  For a
 * PUB, at once with the number of peers reached. */
void conversation_sent(struct node *n, const char *msg_id, const char *to, const char *text);
void conversation_outcome(struct node *n, const char *msg_id, const char *outcome);
void conversation_pub(struct node *n, const char *msg_id, const char *to, const char *text,
		      long reached);
/* A node event: a late ACK changes a recorded ack_timeout to acked. */
void conversation_on_event(struct node *n, const struct node_event *ev);
/* The same as a node_subscribe() subscriber (ctx: the node). */
void conversation_subscriber(void *ctx, const struct node_event *ev);

#endif
