/* One TCP connection to a peer (PROTOCOL.md section 2): non-blocking connect,
 * the HELLO/HELLO_OK handshake with bounded waits, framed input, a bounded
 * output queue, keep-alive (PING/PONG, RTT, idle), BYE/BYE_OK, and the write
 * discipline of section 4: peers that advertise "pipeline", or prove they
 * read whole segments (two PINGs in one write, two PONGs back), get batched
 * writes; the others get one message per write, at most one SEND awaiting
 * its ACK, and after a line a short gap that its answer (ACK, PONG) ends
 * early.  Output is collected per loop iteration and written once. */
#ifndef CHATP2PD_CONN_H
#define CHATP2PD_CONN_H
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "framer.h"
#include "msg.h"
#include "msgid.h"
#include "peerid.h"

struct node;
struct peer;

enum conn_dir { CONN_IN, CONN_OUT };

enum conn_state {
	CONN_CONNECTING,  /* outbound: connect() in progress */
	CONN_HANDSHAKE,   /* HELLO sent (out) or awaited (in) */
	CONN_ESTABLISHED,
	CONN_CLOSED,      /* socket gone; freed when no callback is running */
};

/* How we write to a peer (the `conn` method's write_mode). */
enum conn_wmode {
	WM_PIPELINE,      /* it advertised "pipeline": batched writes */
	WM_PROBING,       /* two PINGs in one write sent, PONGs awaited */
	WM_LEARNED,       /* both PINGs answered: batched writes */
	WM_ONE_PER_WRITE, /* one line per write, stop-and-wait SENDs */
};

/* A message waiting for its own write to a peer without "pipeline". */
struct conn_msg {
	struct conn_msg *next;
	bool is_send;               /* a SEND: wait for its ACK before the next */
	bool answered;              /* an answer with msg_id ends the gap early */
	bool probe;                 /* the two PINGs of the pipeline probe */
	char msg_id[MSGID_LEN];
	size_t len;
	char line[];                /* JSON + '\n' */
};

struct conn {
	struct node *node;
	struct conn *prev, *next;   /* the node's list of connections */
	struct peer *peer;          /* set while this is the peer's connection */
	int fd;
	enum conn_dir dir;
	enum conn_state state;
	bool primary;               /* the peer table's connection for peer_id */
	bool pipeline;              /* the peer advertised "pipeline" */
	bool batch;                 /* write batched: advertised or learned */
	enum conn_wmode wmode;
	unsigned features;
	char peer_id[PEER_ID_MAX + 1]; /* dialled, or proved by HELLO */
	char addr[80];              /* "ip:port" of the other end */
	double since;               /* wall clock, established */
	double last_rx;             /* ev_now of the last byte received */
	uint64_t rx_msgs, tx_msgs;

	ev_io rio, wio;
	ev_timer deadline;          /* connect / handshake / BYE_OK / extra-idle */
	ev_timer ping_timer;        /* every ping_interval: PING and idle check */
	ev_timer pong_timer;        /* ping_timeout for the outstanding PING */
	ev_timer gap_timer;         /* pacing for peers without "pipeline" */
	ev_timer resend_timer;      /* resend the SEND awaiting its ACK */
	ev_timer probe_timer;       /* how long the probe's second PONG may take */
	ev_prepare flusher;         /* one write per loop iteration */

	struct framer fr;
	struct buf out;             /* bytes being written now */
	size_t out_max;             /* out + queued never exceeds this */
	struct conn_msg *ctl_head, *ctl_tail;   /* PING PONG ACK BYE BYE_OK */
	struct conn_msg *data_head, *data_tail; /* SEND and PUB, in order */
	size_t queued;
	struct conn_msg *inflight;  /* the SEND awaiting its ACK */
	bool gap;                   /* one-per-write: the last line's gap runs */
	char await_id[MSGID_LEN];   /* its answer (ACK/PONG msg_id) ends the gap */
	char probe_id[2][MSGID_LEN];
	bool probe_pong[2];
	double probe_sent;          /* mono_now() when the probe went out */

	char ping_id[MSGID_LEN];
	double ping_sent;           /* ev_now when ping_id went out */
	bool ping_out;
	int ping_failures;
	bool probing;               /* a PING sent to check it, another conn claims its peer */
	bool challenger;            /* claims the peer of a live connection: on probation */
	int bad_lines;
	bool bye_sent;
	bool close_after_flush;
	bool peer_closed;           /* ended by the peer's EOF or reset, not by us */
	int busy;                   /* callbacks running: defer the free */
	char close_reason[128];
	/* Flow control (issue 18): lets a backlog drain at the queue's pace. */
	uint64_t serial;            /* unique per connection */
	uint64_t bytes_sent;        /* total bytes the socket took */
	bool drain_armed;           /* conn_room() said no: tell on_drained at low water */
	void (*on_drained)(struct conn *c); /* set by the node; may write to c */
};

/* Dial ip:port for peer_id.  NULL with err on immediate failure. */
struct conn *conn_dial(struct node *n, const char *peer_id, const char *ip, int port, char *err,
		       size_t errlen);
/* Adopt an accepted socket (non-blocking already). */
struct conn *conn_accept(struct node *n, int fd, const struct sockaddr_storage *sa);

/* What a line is, for the write discipline of peers without "pipeline". */
enum conn_kind {
	CK_CTL,   /* PING PONG ACK BYE BYE_OK: jump ahead of chat data */
	CK_SEND,  /* waits for its ACK before the next SEND or PUB goes */
	CK_PUB,   /* in order with SENDs, no answer */
	CK_PING,  /* control, answered by a PONG with msg_id */
};

/* Queue one built line (JSON + '\n'); msg_id is the SEND's.  Returns -1
 * (and closes the connection) if the output queue is full. */
int conn_write(struct conn *c, const struct buf *line, enum conn_kind kind, const char *msg_id);
/* Flow control for bulk senders (the outbox): true if len more bytes keep
 * the output queue under half of limits.out_queue_bytes; false arms a
 * one-shot c->on_drained call for when it falls to a quarter. */
bool conn_room(struct conn *c, size_t len);
/* After a conn_write: a mark that conn_written() tells apart once the
 * socket has taken everything queued so far (the line just written). */
uint64_t conn_mark(const struct conn *c);
bool conn_written(const struct conn *c, uint64_t mark);
/* Write what this loop iteration queued now, not at the next prepare
 * (for callers that run inside a prepare watcher).  May close c. */
void conn_flush_now(struct conn *c);
/* Close unless something happens first (duplicate connections' grace). */
void conn_arm_deadline(struct conn *c, double after);
/* The ACK for msg_id arrived or the SEND timed out: stop resending it. */
void conn_send_done(struct conn *c, const char *msg_id);
/* Say BYE and close once BYE_OK comes back or limits.bye_timeout passes. */
void conn_bye(struct conn *c, const char *reason);
/* Check the connection is alive now: a PING at once (unless one is out);
 * a PONG calls node_conn_alive(), no PONG within ping_timeout closes it. */
void conn_probe(struct conn *c);
/* Close now; the node hears of it through node_conn_closed(). */
void conn_close(struct conn *c, const char *reason);
/* Free a closed connection once no callback of it is running. */
void conn_reap(struct conn *c);
const char *conn_state_name(enum conn_state s);
/* "pipeline", "probing", "learned" or "one-per-write". */
const char *conn_wmode_name(enum conn_wmode m);

#endif
