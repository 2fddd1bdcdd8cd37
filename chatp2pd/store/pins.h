/* Pinned identity keys (PROTOCOL.md §5.2, trust on first use as SSH's
 * known_hosts): one pin per peer_id, its key's fingerprint, when it was
 * first and last seen, and whether the operator marked it verified after
 * comparing fingerprints out of band.
 *
 * The pins live in an SQLite database the caller opened (the node's own),
 * in a table of their own, and in memory: every TLS handshake asks
 * pins_find(), so the lookup never touches the disk.  What the table holds
 * is checked when it is loaded, as input: a row with a malformed peer_id or
 * fingerprint is skipped and counted, never trusted.  With db NULL the pins
 * are kept in memory only (for tests and for a node without storage). */
#ifndef CHATP2PD_STORE_PINS_H
#define CHATP2PD_STORE_PINS_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "fingerprint.h"

/* Pins loaded or kept at most; past it, new peers are not pinned (and so
 * not trusted on first use) until some are forgotten. */
#define PINS_MAX 65536

struct pin {
	char *peer_id;
	char fingerprint[FINGERPRINT_LEN];
	double first_seen;  /* wall clock */
	double last_seen;
	bool verified;
	double seen_written;  /* last_seen as last written (internal) */
};

enum pins_result {
	PINS_OK = 0,
	PINS_BAD_FINGERPRINT,  /* not "SHA256:" + 43 base64 characters */
	PINS_BAD_PEER,         /* not a valid peer_id */
	PINS_NOT_PINNED,       /* verify/forget of a peer with no pin */
	PINS_MISMATCH,         /* verify with another fingerprint than the pin's */
	PINS_FULL,             /* PINS_MAX reached */
	PINS_DB_ERROR,         /* the row could not be written (memory unchanged) */
};
const char *pins_result_str(enum pins_result r);

struct pins;

/* Create the table if needed and load it.  *skipped counts rows refused
 * as malformed (or past PINS_MAX).  NULL with err on a database error. */
struct pins *pins_open(sqlite3 *db, long *skipped, char *err, size_t errlen);
/* The same on a database file of their own at path (created mode 0600),
 * which pins_close() closes.  Pins are written on the loop (first use,
 * last_seen once a minute): WAL with synchronous=NORMAL commits without an
 * fsync, and locking_mode=EXCLUSIVE keeps the WAL index in our memory, not
 * in a shared -shm file (see store/storage.c).  A pin lost to a power cut
 * is pinned on first use again. */
struct pins *pins_open_file(const char *path, long *skipped, char *err, size_t errlen);
void pins_close(struct pins *p);

const struct pin *pins_find(const struct pins *p, const char *peer_id);
size_t pins_count(const struct pins *p);
/* In peer_id order; fn returns false to stop. */
typedef bool (*pins_fn)(void *ctx, const struct pin *pin);
void pins_each(const struct pins *p, pins_fn fn, void *ctx);

/* Pin fingerprint for peer_id: on first use (verified false), or by the
 * operator before first contact (replacing an older pin, if any). */
enum pins_result pins_add(struct pins *p, const char *peer_id, const char *fingerprint,
			  bool verified, double now);
/* Mark the pin verified; refused (PINS_MISMATCH) if fingerprint is not the
 * pinned one. */
enum pins_result pins_verify(struct pins *p, const char *peer_id, const char *fingerprint);
/* Drop the pin: the next key seen for peer_id is pinned on first use. */
enum pins_result pins_forget(struct pins *p, const char *peer_id);
/* The key was proved again now; written at most once a minute per pin. */
void pins_seen(struct pins *p, const char *peer_id, double now);

#endif
