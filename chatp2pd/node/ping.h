/* On-demand PING/PONG over a peer's live connection (control "ping",
 * chatp2pctl ping), beside the keep-alive's own PINGs: each has its own
 * msg_id and timer, and its PONG is matched by peer and msg_id. */
#ifndef CHATP2PD_PING_H
#define CHATP2PD_PING_H
#include <stdbool.h>

struct node_core;
struct pinger;

enum ping_result { PING_PONG, PING_TIMEOUT, PING_NOT_CONNECTED, PING_UNKNOWN_PEER };
/* Runs exactly once (possibly before node_ping returns); rtt_ms for PING_PONG. */
typedef void (*ping_cb)(void *ctx, enum ping_result r, double rtt_ms);

struct pinger *pinger_new(struct node_core *core);
/* Pings still out are dropped without their callbacks (see node_free). */
void pinger_free(struct pinger *pg);

/* PING peer_id now; PING_TIMEOUT after timeout_s without its PONG. */
void pinger_ping(struct pinger *pg, const char *peer_id, double timeout_s, ping_cb cb, void *ctx);
/* A PONG from peer_id whose msg_id is not the keep-alive's: one of ours? */
void pinger_pong(struct pinger *pg, const char *peer_id, const char *msg_id);

#endif
