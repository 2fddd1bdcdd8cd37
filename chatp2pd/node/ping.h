/* On-demand PING/PONG over a peer's live connection (control "ping",
 * chatp2pctl ping), beside the keep-alive's own PINGs: each has its own
 * msg_id and timer, and its PONG is matched by peer and msg_id. */
#ifndef CHATP2PD_PING_H
#define CHATP2PD_PING_H
#include <stdbool.h>

struct node;
struct conn;
struct pinger;

enum ping_result { PING_PONG, PING_TIMEOUT, PING_NOT_CONNECTED, PING_UNKNOWN_PEER };
/* Runs exactly once (possibly before node_ping returns); rtt_ms for PING_PONG. */
typedef void (*ping_cb)(void *ctx, enum ping_result r, double rtt_ms);

struct pinger *pinger_new(struct node *n);
struct pinger *node_pinger(struct node *n);     /* the node's (node.c) */
/* Pings still out are dropped without their callbacks (see node_free). */
void pinger_free(struct pinger *pg);

/* PING peer_id now; PING_TIMEOUT after timeout_s without its PONG. */
void node_ping(struct node *n, const char *peer_id, double timeout_s, ping_cb cb, void *ctx);
/* A PONG whose msg_id is not the keep-alive's (conn.c): one of ours? */
void node_conn_pong(struct node *n, struct conn *c, const char *msg_id);

#endif
