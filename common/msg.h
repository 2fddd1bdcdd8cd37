/* The message catalogue of PROTOCOL.md: the peer protocol (section 2) and
 * the rendezvous protocol (section 1).  Required-field checks live here, once;
 * parsers are pure functions of bytes (fuzzable), builders append one line
 * (JSON + '\n') to a buf.  Parsed strings live until the matching *_free()
 * (and, for a pmsg, as long as the struct itself: do not copy it). */
#ifndef CHATP2P_MSG_H
#define CHATP2P_MSG_H
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "json.h"

/* ---- peer protocol ---------------------------------------------------- */

enum pmsg_type {
	PM_UNKNOWN = 0, /* a type we do not know: ignore the line, keep the conn */
	PM_HELLO,
	PM_HELLO_OK,
	PM_PING,
	PM_PONG,
	PM_SEND,
	PM_ACK,
	PM_PUB,
	PM_BYE,
	PM_BYE_OK,
	PM__COUNT
};

/* features advertised in HELLO / HELLO_OK */
#define FEAT_ACK      0x1u
#define FEAT_METRICS  0x2u
#define FEAT_PIPELINE 0x4u /* "I read every line of a stream" (PROTOCOL.md §4) */
#define FEAT_TLS      0x8u  /* HELLO: "I offer TLS" (PROTOCOL.md §5.2) */
#define FEAT_STARTTLS 0x10u /* HELLO_OK only: "offer taken, TLS starts now" */
#define FEAT_OURS     (FEAT_ACK | FEAT_METRICS | FEAT_PIPELINE)

#define PROTO_VERSION "1.0"

struct pmsg {
	enum pmsg_type type;
	const char *type_str;  /* as received (for logging unknown types) */
	const char *peer_id;   /* HELLO, HELLO_OK */
	const char *version;   /* HELLO*: string, or NULL when absent/a number */
	unsigned features;     /* HELLO*: FEAT_* bits understood */
	const char *msg_id;    /* PING PONG SEND ACK PUB BYE BYE_OK (may be NULL where optional) */
	const char *src;
	const char *dst;       /* "dst", or "dest" as some peers write it */
	const char *payload;   /* SEND, PUB */
	const char *reason;    /* BYE */
	const char *timestamp; /* as received, unchecked */
	int require_ack;       /* 1, 0, or -1 when missing/null */
	long long ttl;         /* -1 when missing */
	/* Every string above lives here: in inl for a line that fits, else in
	 * one allocation (no tree, no malloc per value: issue 10). */
	char *arena;
	bool arena_heap;
	char inl[1024];
};

enum pmsg_status {
	PMSG_OK = 0,
	PMSG_BAD_JSON = -1,     /* not JSON, not an object, or no string "type" */
	PMSG_BAD_FIELDS = -2,   /* a known type missing a field it cannot do without */
};

/* Parse one line.  On PMSG_BAD_FIELDS, out->type is set and err names the
 * field.  Always call pmsg_free() afterwards (safe on every outcome).
 * Required: HELLO* peer_id; PING, PONG, ACK msg_id (an ACK without one can
 * match nothing); SEND msg_id, payload; PUB msg_id, payload, dst.  A field of
 * the wrong type, or an empty peer_id/msg_id, counts as missing. */
enum pmsg_status pmsg_parse(const char *line, size_t len, struct pmsg *out, char *err, size_t errlen);
void pmsg_free(struct pmsg *m);
const char *pmsg_type_name(enum pmsg_type t);

/* Builders: append one line to out.  Every field of the PROTOCOL.md table is
 * always written (ttl 1, version "1.0", timestamps …Z).  Return 0, or -1 if
 * a string is not valid UTF-8 or NULL (nothing appended then); only BYE's
 * reason may be NULL (written as ""). */
int pmsg_build_hello(struct buf *out, bool ok, const char *peer_id, unsigned features);
int pmsg_build_ping(struct buf *out, const char *msg_id);
int pmsg_build_pong(struct buf *out, const char *msg_id);
int pmsg_build_send(struct buf *out, const char *msg_id, const char *src, const char *dst,
		    const char *payload, bool require_ack);
int pmsg_build_ack(struct buf *out, const char *msg_id);
int pmsg_build_pub(struct buf *out, const char *msg_id, const char *src, const char *dst,
		   const char *payload);
int pmsg_build_bye(struct buf *out, const char *msg_id, const char *src, const char *dst,
		   const char *reason);
int pmsg_build_bye_ok(struct buf *out, const char *msg_id, const char *src, const char *dst);

/* Where a PUB's dst points, normalised: "*" -> PUB_ALL; "#ns" or a bare
 * "ns" -> PUB_NS with ns; "name@ns" -> PUB_PEER with the peer_id. */
enum pub_target { PUB_INVALID, PUB_ALL, PUB_NS, PUB_PEER };
enum pub_target pub_target_parse(const char *dst, const char **rest);

/* ---- rendezvous protocol ---------------------------------------------- */

int rdv_build_register(struct buf *out, const char *ns, const char *name, int port, long long ttl);
int rdv_build_discover(struct buf *out, const char *ns /* NULL: all */);
int rdv_build_unregister(struct buf *out, const char *ns, const char *name /* NULL */, int port /* 0: none */);

struct rdv_peer {
	const char *ip, *name, *ns;
	int port;
	long long ttl, expires_in; /* -1 when absent */
};

struct rdv_reply {
	bool ok;                 /* status == "OK" */
	const char *message;     /* "message", or "error" as older servers wrote it */
	long long ttl;           /* REGISTER: granted ttl, -1 if absent */
	const char *ip;          /* REGISTER: address the server saw ("ip" or "observed_ip") */
	int port;                /* REGISTER: echoed port, 0 if absent */
	long blocked_for;        /* seconds from "…lifted in N seconds.", -1 if not a block */
	struct rdv_peer *peers;  /* DISCOVER; malformed entries are skipped */
	size_t npeers;
	char *arena;             /* owns every string above */
};

/* 0 on success (a well-formed reply, ok or not), -1 if not a reply at all.
 * An event parser: no tree, one allocation for every string, so a DISCOVER
 * of 10,000 peers (1 MB) costs a few ms.  As in Python's json module, the
 * last of duplicate keys wins; a field of the wrong type reads as absent. */
int rdv_reply_parse(const char *line, size_t len, struct rdv_reply *out);
void rdv_reply_free(struct rdv_reply *r);

#endif
