/* hooks.on_message: a program run for each stored message, without a
 * shell (posix_spawn), never waited for by the loop: its exit is an
 * ev_child event, its time bounded (hooks.timeout: killed), and at most
 * hooks.max_running at once (the rest wait in a bounded queue). */
#ifndef CHATP2PD_HOOKS_H
#define CHATP2PD_HOOKS_H
#include "node/node.h"

/* A node event: a message or PUB the node stored starts the hook. */
void hooks_on_event(struct node *n, const struct node_event *ev);
/* The same as a node_subscribe() subscriber (ctx: the node). */
void hooks_subscriber(void *ctx, const struct node_event *ev);
/* Hooks still running are killed, those waiting dropped (shutdown). */
void hooks_stop(void);
/* Hooks started, ended, killed and dropped so far (for tests, status). */
struct hooks_stats { unsigned long started, exited, killed, dropped, running, waiting; };
struct hooks_stats hooks_stats(void);

#endif
