/* One TCP connection: non-blocking connect, framed input, a bounded output
 * queue, and the mechanics of the write discipline (PROTOCOL.md section 4):
 * batched writes (everything queued in one loop iteration leaves in one
 * write), or one line per write with a short gap after each that its
 * answer ends early, at most one line awaiting its answer (resent every
 * limits.resend_interval), urgent lines ahead of data.  What the lines
 * mean, who the other end is and when to batch are its owner's business:
 * the owner sets a struct of callbacks and a context when it creates the
 * connection (as libevent's bufferevent_setcb does) and hears through them
 * of lines, deadlines and the close.  This header knows nothing of peers. */
#ifndef CHATP2PD_CONN_H
#define CHATP2PD_CONN_H
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "config.h"
#include "framer.h"
#include "msgid.h"

struct conn;
struct tls;
struct tls_ctx;

enum conn_dir { CONN_IN, CONN_OUT };

enum conn_state {
	CONN_CONNECTING,  /* outbound: connect() in progress */
	CONN_OPEN,        /* connected; queued lines wait for conn_start() */
	CONN_STARTED,     /* the write discipline runs */
	CONN_CLOSED,      /* socket gone; freed when no callback is running */
};

/* How the owner hears of the connection.  Every callback may close it. */
struct conn_cbs {
	/* Outbound: connect() succeeded (the owner writes its greeting). */
	void (*connected)(void *ctx, struct conn *c);
	/* One line, without its '\n' (blank lines are skipped). */
	void (*line)(void *ctx, struct conn *c, const char *text, size_t len);
	/* A line longer than the framer's limit was dropped. */
	void (*overflow)(void *ctx, struct conn *c);
	/* A line is about to be queued or written (conn_write, a resend). */
	void (*wrote)(void *ctx, struct conn *c, const char *line, size_t len);
	/* The line conn_write_first() queued was written (now). */
	void (*first_written)(void *ctx, struct conn *c);
	/* conn_arm_deadline()'s time is up (not called while connecting:
	 * that closes it with "connect timeout"). */
	void (*deadline)(void *ctx, struct conn *c);
	/* The output queue fell to a quarter of its bound after conn_room()
	 * said no (flow control for bulk senders); may write to c. */
	void (*drained)(void *ctx, struct conn *c);
	/* TLS (conn_start_tls) finished its handshake: the other end holds
	 * the key of this fingerprint.  Lines read after it are decrypted. */
	void (*secured)(void *ctx, struct conn *c, const char *fingerprint);
	/* Closed, by either side: the last callback; c is freed after it. */
	void (*closed)(void *ctx, struct conn *c, const char *reason);
};

/* A line waiting for its own write (one line per write). */
struct conn_msg {
	struct conn_msg *next;
	bool awaits;                /* CW_DATA_AWAIT: waits for its answer before the next */
	bool answered;              /* an answer with msg_id ends the gap early */
	bool first;                 /* conn_write_first()'s */
	char msg_id[MSGID_LEN];
	size_t len;
	char line[];                /* JSON + '\n' */
};

struct conn {
	struct ev_loop *loop;
	const struct config *cfg;   /* the owner's, read when used (reload) */
	const struct conn_cbs *cbs;
	void *ctx;
	int fd;
	enum conn_dir dir;
	enum conn_state state;
	bool batch;                 /* write batched */
	char name[80];              /* for the log: the owner's name for the other end */
	char addr[80];              /* "ip:port" of the other end */
	double last_rx;             /* mono_now() of the last byte received */
	uint64_t tx_msgs;           /* lines queued for writing */

	ev_io rio, wio;
	ev_timer deadline;          /* connect, or the owner's (conn_arm_deadline) */
	ev_timer gap_timer;         /* one line per write: the gap after a line */
	ev_timer resend_timer;      /* resend the line awaiting its answer */
	ev_prepare flusher;         /* one write per loop iteration */

	struct framer fr;
	struct buf out;             /* bytes being written now */
	size_t out_max;             /* out + queued never exceeds this */
	struct conn_msg *ctl_head, *ctl_tail;   /* urgent: CW_URGENT, CW_URGENT_AWAIT */
	struct conn_msg *data_head, *data_tail; /* CW_DATA_AWAIT and CW_DATA, in order */
	size_t queued;
	struct conn_msg *inflight;  /* the line awaiting its answer */
	bool gap;                   /* one-per-write: the last line's gap runs */
	char await_id[MSGID_LEN];   /* its answer (msg_id) ends the gap */

	bool close_after_flush;
	bool peer_closed;           /* ended by the other end's EOF or reset, not by us */
	int busy;                   /* callbacks running: defer the free */
	char close_reason[128];
	/* Flow control (issue 18): lets a backlog drain at the queue's pace. */
	uint64_t serial;            /* unique per connection */
	uint64_t bytes_sent;        /* total bytes the socket took */
	bool drain_armed;           /* conn_room() said no: cbs->drained at low water */
	/* TLS (PROTOCOL.md §5.2), a filter between the socket and the framer:
	 * out holds ciphertext, what is read is decrypted before framing. */
	struct tls *tls;            /* NULL: plaintext */
	bool tls_now;               /* started by the line being read: the rest of its segment is TLS */
	bool secured;               /* handshake done (cbs->secured told) */
	bool tls_failed;            /* closed by a TLS error (handshake, record, timeout) */
	struct buf tls_plain;       /* written before the handshake ended: never goes in clear */
	ev_timer tls_timer;         /* limits.handshake_timeout for the TLS handshake */
};

/* Dial ip:port (closed with "connect timeout" after limits.connect_timeout).
 * NULL with err on immediate failure. */
struct conn *conn_dial(struct ev_loop *loop, const struct config *cfg, const char *ip, int port,
		       const struct conn_cbs *cbs, void *ctx, char *err, size_t errlen);
/* Adopt an accepted socket (non-blocking already); reading starts now. */
struct conn *conn_accept(struct ev_loop *loop, const struct config *cfg, int fd,
			 const struct sockaddr_storage *sa, const struct conn_cbs *cbs, void *ctx);

/* Write classes, for one line per write (what a line is, in the peer
 * protocol's terms, is node/session.h's business: CK_*). */
enum conn_kind {
	CW_URGENT,       /* no answer: jumps ahead of data */
	CW_DATA_AWAIT,   /* data awaiting its answer (msg_id) before the next data
			  * goes; written again every limits.resend_interval */
	CW_DATA,         /* data, in order, no answer */
	CW_URGENT_AWAIT, /* urgent, its answer (msg_id) ends the gap */
};

/* Queue one built line (JSON + '\n').  Returns -1 (and closes the
 * connection: the caller must not touch c again) if the queue is full. */
int conn_write(struct conn *c, const struct buf *line, enum conn_kind kind, const char *msg_id);
/* Ahead of everything queued, answered by msg_id (cbs->first_written when
 * it goes out).  lines: how many lines it holds. */
void conn_write_first(struct conn *c, const struct buf *text, int lines, const char *msg_id);
/* Bytes straight into the output, outside the discipline (a greeting before
 * conn_start(), a last word); gap_after: the gap follows them. */
void conn_put(struct conn *c, const struct buf *text, bool gap_after);
/* Start the discipline: batched, or one line per write. */
void conn_start(struct conn *c, bool batch);
/* From one line per write to batched: whatever waits goes now. */
void conn_go_batched(struct conn *c);
/* The answer to msg_id came: the gap ends, the next line may go. */
void conn_answered(struct conn *c, const char *msg_id);
/* The answer to an awaiting line came, or it is given up: stop resending
 * it (or drop it from the queue if it was not written yet). */
void conn_send_done(struct conn *c, const char *msg_id);
/* Drop what is queued: data (and the line awaiting its answer), or all. */
void conn_drop_queued(struct conn *c, bool urgent_too);
/* Flow control for bulk senders (the outbox): true if len more bytes keep
 * the output queue under half of limits.out_queue_bytes; false arms a
 * one-shot cbs->drained call for when it falls to a quarter. */
bool conn_room(struct conn *c, size_t len);
/* After a conn_write: a mark that conn_written() tells apart once the
 * socket has taken everything queued so far (the line just written). */
uint64_t conn_mark(const struct conn *c);
bool conn_written(const struct conn *c, uint64_t mark);
/* Write what this loop iteration queued now, not at the next prepare
 * (for callers that run inside a prepare watcher).  May close c. */
void conn_flush_now(struct conn *c);
/* From now on the bytes are TLS: what is in the output already (HELLO_OK)
 * still goes in clear, everything written after is encrypted, everything
 * read after the current line is decrypted (server: we took the offer;
 * client: we read the taker's HELLO_OK).  cbs->secured when the handshake
 * is done; closed with a "TLS: ..." reason if it fails or takes longer
 * than limits.handshake_timeout. */
void conn_start_tls(struct conn *c, struct tls_ctx *ctx, bool server);
/* Close once the output is written (reason: the close's). */
void conn_close_after_flush(struct conn *c, const char *reason);
/* cbs->deadline after `after` seconds, unless disarmed or re-armed. */
void conn_arm_deadline(struct conn *c, double after);
void conn_disarm_deadline(struct conn *c);
/* Bytes queued or being written. */
size_t conn_queued_bytes(const struct conn *c);
/* Close now; cbs->closed tells the owner. */
void conn_close(struct conn *c, const char *reason);
/* Free a closed connection once no callback of it is running. */
void conn_reap(struct conn *c);

#endif
