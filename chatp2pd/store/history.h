/* The messages we sent, with their outcome, beside the inbox: what
 * "chatp2pctl history PEER" shows with the messages received.  The rows
 * live in storage's database and transaction (a table of their own,
 * created when first needed: no schema version of its own), bounded as
 * the inbox is (storage.inbox_max_messages, the oldest go first).  A NULL
 * storage stores nothing. */
#ifndef CHATP2PD_HISTORY_H
#define CHATP2PD_HISTORY_H
#include <stdbool.h>
#include <stdint.h>

#include "store/storage.h"

struct sent_msg {
	int64_t id;            /* increasing */
	double at;             /* wall clock, when it was asked for */
	const char *msg_id;
	const char *dst;       /* a peer id, "*" or "#ns" */
	bool pub;
	const char *text;
	const char *outcome;   /* pending, acked, sent, ack_timeout, expired, ... */
	long reached;          /* a PUB: the peers it was written to */
};

/* A message we are sending (outcome "pending"), or a PUB sent (outcome
 * "sent", reached).  max: rows kept (0: no bound).  0, or -1 (logged). */
int history_sent_add(struct storage *st, const struct sent_msg *m, long max);
/* Its outcome, by msg_id: "acked", "ack_timeout", "expired", ...  A late
 * ACK after ack_timeout comes here too. */
int history_sent_outcome(struct storage *st, const char *msg_id, const char *outcome);

/* The newest limit messages to dst (a peer id, "*" or "#ns"), oldest first;
 * fn returns false to stop.  Returns how many there were, -1 on error. */
typedef bool (*history_sent_fn)(void *ctx, const struct sent_msg *m);
long history_sent_list(struct storage *st, const char *dst, int limit, history_sent_fn fn,
		       void *ctx);

#endif
