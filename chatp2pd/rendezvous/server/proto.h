/* The rendezvous protocol, server side (PROTOCOL.md section 1): one request
 * line in, one reply line out, against a registration store.
 *
 * Pure: no I/O, no loop, no clock; callable from a fuzzer.  The rules follow
 * the public server, which is written in Python: wherever it calls int() on a
 * field we accept what int() accepts (integers, floats truncated toward zero,
 * strings like " 5000 " or "+5_000"), except booleans, which are never a
 * port or a ttl here although Python's int(True) is 1.
 *
 * A DISCOVER reply can list the whole store (megabytes); it is produced in
 * pieces by a stream so that a connection never holds more than about one
 * piece of it. */
#ifndef CHATP2PD_RDV_PROTO_H
#define CHATP2PD_RDV_PROTO_H
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "rendezvous/server/store.h"

#define RDV_LINE_MAX      32768 /* the "limit" of line_too_long */
#define RDV_MSG_TIMEOUT   "Timeout: no data received, closing connection"
#define RDV_MSG_EMPTY     "Empty request line"
#define RDV_MSG_UNKNOWN   "Unknown command" /* also for invalid JSON, non-objects, no type */
#define RDV_NAME_MAX      64    /* characters (code points) of name and namespace */
#define RDV_TTL_DEFAULT   7200

struct rdv_stream;

/* Handle one request line (without its '\n') from a client at ip.  Appends
 * the reply line to out and returns NULL, or, for a DISCOVER, appends nothing
 * and returns a stream for rdv_stream_fill().  note (may be NULL) receives a
 * one-line printable summary for the log. */
struct rdv_stream *rdv_handle(struct rdv_store *st, const char *ip, const char *line, size_t len,
			      double now, struct buf *out, char *note, size_t notelen);

/* Append the next part of the reply to out: entries (at least one) until
 * out holds want bytes or more, returning false; or the rest of the reply,
 * up to its final '\n', returning true.  Entries are read from the store as
 * they are at each call (rdv_store_next's guarantees). */
bool rdv_stream_fill(struct rdv_stream *s, struct rdv_store *st, double now, struct buf *out,
		     size_t want);
void rdv_stream_free(struct rdv_stream *s);

/* {"status": "ERROR", "message": msg}\n */
void rdv_reply_error(struct buf *out, const char *msg);
/* {"status": "ERROR", "message": "line_too_long", "limit": 32768}\n */
void rdv_reply_too_long(struct buf *out);
/* The public server's message for a blocked ip; left is rounded up to a
 * whole number of seconds, at least 1, so waiting that long is enough. */
void rdv_reply_blocked(struct buf *out, const char *ip, int port, int limit, double left);

#endif
