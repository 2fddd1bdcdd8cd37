/* A peer session over one connection (PROTOCOL.md sections 2 and 4): the
 * HELLO/HELLO_OK handshake with bounded waits, keep-alive (PING/PONG, RTT,
 * idle), the pipeline probe that decides how the connection writes (two
 * PINGs in one write, two PONGs back: batched), BYE/BYE_OK, and the
 * meaning of every line.  The bytes go through a net/conn.h connection it
 * owns; the node hears of the session through a struct of callbacks and a
 * context it sets (struct session_env), never by this file calling it. */
#ifndef CHATP2PD_SESSION_H
#define CHATP2PD_SESSION_H
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "fingerprint.h"
#include "msg.h"
#include "msgid.h"
#include "net/conn.h"
#include "peerid.h"

struct session;
struct peer;
struct tls_ctx;

/* How the other end's identity is known (PROTOCOL.md §5.3). */
enum session_identity { ID_UNBACKED, ID_BACKED, ID_PINNED, ID_VERIFIED };

/* What a line is, for the write discipline (net/conn.h's write classes). */
#define CK_CTL CW_URGENT         /* PING PONG ACK BYE BYE_OK: ahead of chat data */
#define CK_SEND CW_DATA_AWAIT    /* waits for its ACK before the next SEND or PUB goes */
#define CK_PUB CW_DATA           /* in order with SENDs, no answer */
#define CK_PING CW_URGENT_AWAIT  /* answered by a PONG with its msg_id */

enum session_state {
	SESSION_CONNECTING,  /* outbound: connect() in progress */
	SESSION_HANDSHAKE,   /* HELLO sent (out) or awaited (in) */
	SESSION_ESTABLISHED,
	SESSION_CLOSED,      /* connection gone; freed when no callback is running */
};

/* How we write to a peer (the `conn` method's write_mode). */
enum session_wmode {
	WM_PIPELINE,      /* it advertised "pipeline": batched writes */
	WM_PROBING,       /* two PINGs in one write sent, PONGs awaited */
	WM_LEARNED,       /* both PINGs answered: batched writes */
	WM_ONE_PER_WRITE, /* one line per write, stop-and-wait SENDs */
};

/* What the owner (node.c) hears.  Every callback may close the session. */
struct session_cbs {
	/* An inbound HELLO: false refuses the connection. */
	bool (*hello)(void *ctx, struct session *s, const struct pmsg *m);
	/* Who the other end is, decided before the session is established:
	 * fingerprint is the key a TLS handshake proved, NULL for plaintext;
	 * tls_error says the TLS handshake failed (the session is closing,
	 * the answer is not used).  false refuses the connection. */
	bool (*identity)(void *ctx, struct session *s, const char *fingerprint,
			 const char *tls_error);
	/* Handshake complete (either direction; after TLS, if it runs). */
	void (*established)(void *ctx, struct session *s);
	/* Any message after the handshake but PING, PONG, BYE, BYE_OK. */
	void (*message)(void *ctx, struct session *s, const struct pmsg *m);
	/* A round-trip time measured by a keep-alive or probe PING. */
	void (*rtt)(void *ctx, struct session *s, double ms);
	/* A PONG that is not the keep-alive's (an on-demand ping's?). */
	void (*pong)(void *ctx, struct session *s, const char *msg_id);
	/* The peer said BYE. */
	void (*bye)(void *ctx, struct session *s);
	/* A probed session answered (session_probe). */
	void (*alive)(void *ctx, struct session *s);
	/* A line received (out false) or queued (out true): type and bytes. */
	void (*traffic)(void *ctx, struct session *s, enum pmsg_type t, size_t bytes, bool out);
	/* The output queue drained to low water after session_room() said no. */
	void (*drained)(void *ctx, struct session *s);
	/* Closed: the last callback; the session is freed after it. */
	void (*closed)(void *ctx, struct session *s, const char *reason);
};

/* Set once by the owner, shared by its sessions. */
struct session_env {
	struct ev_loop *loop;
	const struct config *cfg;   /* read when used: reload replaces it in place */
	const char *self_id;        /* our peer_id, for HELLO and BYE */
	const struct session_cbs *cbs;
	void *ctx;
	struct tls_ctx *tls;        /* our identity's; NULL: TLS never offered nor taken */
};

struct session {
	struct session *prev, *next; /* the node's list */
	const struct session_env *env;
	struct conn *conn;          /* NULL once closed */
	struct peer *peer;          /* set while this is the peer's session */
	enum conn_dir dir;
	enum session_state state;
	bool primary;               /* the peer table's session for peer_id */
	bool pipeline;              /* the peer advertised "pipeline" */
	enum session_wmode wmode;
	unsigned features;
	char peer_id[PEER_ID_MAX + 1]; /* dialled, or proved by HELLO */
	char addr[80];              /* "ip:port" of the other end */
	double since;               /* wall clock, established */
	uint64_t rx_msgs;
	bool peer_closed;           /* ended by the peer's EOF or reset, not by us */
	/* How the other end's identity is known (PROTOCOL.md §5.3), weakest
	 * first: node.c sets backed/unbacked, a proved key pinned/verified. */
	/* PROTOCOL.md §5.2 */
	bool tls_offered;           /* our HELLO said "tls" */
	bool tls_started;           /* STARTTLS: the bytes after the handshake lines are TLS */
	bool secure;                /* TLS with a key the node accepted (identity cb) */
	char fingerprint[FINGERPRINT_LEN]; /* the key TLS proved, "" if none */
	enum session_identity identity;

	ev_timer ping_timer;        /* every ping_interval: PING and idle check */
	ev_timer pong_timer;        /* ping_timeout for the outstanding PING */
	ev_timer probe_timer;       /* how long the probe's second PONG may take */
	char probe_id[2][MSGID_LEN];
	bool probe_pong[2];
	double probe_sent;          /* mono_now() when the probe went out */

	char ping_id[MSGID_LEN];
	double ping_sent;           /* mono_now() when ping_id went out */
	bool ping_out;
	int ping_failures;
	bool probing;               /* a PING sent to check it, another session claims its peer */
	bool challenger;            /* claims the peer of a live session: on probation */
	int bad_lines;
	bool bye_sent;
	int busy;                   /* callbacks running: defer the free */
};

/* Dial ip:port for peer_id.  NULL with err on immediate failure. */
struct session *session_dial(const struct session_env *env, const char *peer_id, const char *ip,
			     int port, char *err, size_t errlen);
/* Adopt an accepted socket (non-blocking already). */
struct session *session_accept(const struct session_env *env, int fd,
			       const struct sockaddr_storage *sa);

/* Queue one built line (see conn_write); -1 if closed by it or before:
 * the caller must not touch s again. */
int session_write(struct session *s, const struct buf *line, enum conn_kind kind,
		  const char *msg_id);
/* The ACK for msg_id arrived or the SEND timed out: stop resending it. */
void session_send_done(struct session *s, const char *msg_id);
/* Write what this loop iteration queued now (callers inside a prepare
 * watcher).  May close s. */
void session_flush_now(struct session *s);
/* Close unless something happens first (duplicate sessions' grace). */
void session_arm_deadline(struct session *s, double after);
void session_disarm_deadline(struct session *s);
/* Say BYE and close once BYE_OK comes back or limits.bye_timeout passes. */
void session_bye(struct session *s, const char *reason);
/* Check the session is alive now: a PING at once (unless one is out); a
 * PONG calls cbs->alive, no PONG within ping_timeout closes it. */
void session_probe(struct session *s);
/* keepalive.ping_interval changed: the next PING counts from now. */
void session_reconfigure(struct session *s);
/* Close now; the owner hears of it through cbs->closed. */
void session_close(struct session *s, const char *reason);
/* Free a closed session once no callback of it is running. */
void session_reap(struct session *s);
/* Bytes queued or being written. */
size_t session_queued_bytes(const struct session *s);
/* Flow control for bulk senders (net/conn.h conn_room, conn_mark): room for
 * len more bytes (false arms cbs->drained for low water); a number unique
 * to the connection; a mark after a write, and whether the socket has
 * taken everything up to it (true once the connection is gone). */
bool session_room(struct session *s, size_t len);
uint64_t session_serial(const struct session *s);
uint64_t session_mark(const struct session *s);
bool session_written(const struct session *s, uint64_t mark);
/* Lines queued for writing. */
uint64_t session_tx_msgs(const struct session *s);
/* mono_now() of the last byte received. */
double session_last_rx(const struct session *s);
/* Closing (BYE_OK written, closed after it). */
bool session_closing(const struct session *s);
int session_fd(const struct session *s);
const char *session_state_name(enum session_state st);
/* "unbacked", "backed", "pinned" or "verified". */
const char *session_identity_name(enum session_identity id);
/* "pipeline", "probing", "learned" or "one-per-write". */
const char *session_wmode_name(enum session_wmode m);

#endif
