/* TLS 1.3 between chatp2p nodes (PROTOCOL.md §5.2) as a filter between a
 * connection's socket and its framer, the way bufferevent_openssl sits
 * under libevent's bufferevents: OpenSSL is driven through memory BIOs, so
 * the connection keeps owning the socket, its non-blocking reads, its
 * bounded output queue and its timers, and the layers above see the same
 * plaintext lines with or without TLS.
 *
 * Both sides present the self-signed certificate of their identity key
 * (net/keys.h) and both ask for the other's; no CA is involved.  The
 * handshake proves that the other end holds the private key of the
 * certificate it sent; whether that key is the right one for the peer_id
 * is the node's decision (pins), made from tls_peer_fingerprint(). */
#ifndef CHATP2PD_NET_TLS_H
#define CHATP2PD_NET_TLS_H
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "net/keys.h"

struct tls_ctx;  /* one per node: key, certificate, settings */
struct tls;      /* one per connection */

/* A context for this identity; NULL with a reason in err. */
struct tls_ctx *tls_ctx_new(const struct keys_identity *id, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* A session for one connection: the acceptor of the `tls` offer is the TLS
 * server, the dialler the client.  A client's ClientHello is appended to
 * cipher_out at once. */
struct tls *tls_new(struct tls_ctx *ctx, bool server, struct buf *cipher_out);
void tls_free(struct tls *t);

/* Bytes read from the socket: decrypted application data is appended to
 * plain_out, and what must go back to the socket (handshake messages,
 * alerts, session tickets) to cipher_out.  -1 on a fatal error (bad record,
 * failed handshake, the peer's alert): see tls_error(); the connection must
 * be closed.  Plaintext that arrives in the same segment as the end of the
 * handshake is delivered here too. */
int tls_input(struct tls *t, const void *cipher, size_t len, struct buf *plain_out,
	      struct buf *cipher_out);
/* Encrypt len bytes of application data into cipher_out (the handshake must
 * be done: lines are not written before that).  -1 on a fatal error. */
int tls_output(struct tls *t, const void *plain, size_t len, struct buf *cipher_out);
/* Append a close_notify alert to cipher_out (a clean end, before close). */
void tls_close_notify(struct tls *t, struct buf *cipher_out);

bool tls_handshake_done(const struct tls *t);
/* The other end's key fingerprint once the handshake is done, else NULL. */
const char *tls_peer_fingerprint(const struct tls *t);
/* Why the session failed, or "" (a static or session-owned string). */
const char *tls_error(const struct tls *t);

#endif
