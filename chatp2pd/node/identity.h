/* Who the other end is, for chatp2p peers (PROTOCOL.md §5.2): the node's
 * own identity (the TLS context of its key, its fingerprint), the pins
 * (trust on first use, as SSH's known_hosts), and the decisions made from
 * them: a key proved by TLS is pinned on first use or compared with the
 * pin; a pinned peer_id without TLS, or whose handshake fails, is refused
 * (no downgrade); security.tls=require refuses whoever does not do TLS;
 * nothing addressed to a pinned peer goes over a session that did not
 * prove the key.  The session asks (session_cbs.identity), node.c passes
 * the question here; the router and the outbox ask identity_may_send(). */
#ifndef CHATP2PD_NODE_IDENTITY_H
#define CHATP2PD_NODE_IDENTITY_H
#include <stdbool.h>
#include <stddef.h>

#include "fingerprint.h"
#include "net/keys.h"

struct node_core;
struct session;
struct pins;
struct tls_ctx;

#define IDENTITY_PINS_FILE "pins.db"

struct node_identity {
	struct tls_ctx *tls;               /* NULL: no key, no TLS */
	struct pins *pins;                 /* NULL: none kept */
	char fingerprint[FINGERPRINT_LEN]; /* ours; "" without a key */
	unsigned long refused;             /* connections refused for their identity */
};

/* The TLS context for keys and the pins kept in dir/pins.db (created mode
 * 0600).  Start-up work, before the loop.  -1 with a one-line err. */
int identity_open(struct node_identity *id, const struct keys_identity *keys, const char *dir,
		  char *err, size_t errlen);
void identity_close(struct node_identity *id);

/* TLS is on: a key, and security.tls is not off. */
bool identity_tls_on(const struct node_core *core);
/* The session's question (session_cbs.identity): see session.h.  Sets
 * s->identity, emits identity_new / identity_changed / impostor. */
bool identity_decide(struct node_core *core, struct session *s, const char *fingerprint,
		     const char *tls_error);
/* May what is addressed to s's peer go over s?  Not if the peer's key is
 * pinned and s did not prove it. */
bool identity_may_send(const struct node_core *core, const struct session *s);

#endif
