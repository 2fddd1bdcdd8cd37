/* The durable inbox and outbox: one SQLite database in the state directory,
 * and the only file of the daemon that speaks SQL.
 *
 * Writes are grouped: the first write of a loop iteration opens a
 * transaction, an ev_prepare watcher commits it just before the loop waits
 * again, then tells the listeners (storage_on_commit) whether it held.  So
 * a caller that must not answer before its row is on disk (an ACK means
 * "stored") holds the answer until that callback.
 *
 * WAL mode, written through store/walbuf.c (one write per commit);
 * storage.sync=normal survives a crash or SIGKILL of the daemon, full
 * survives power loss.  The schema version is PRAGMA user_version;
 * migrations run from version 1 on (2: the outbox by rowid).  A database that cannot be opened or
 * fails its check is renamed aside (logged) and a new one started: storage
 * never stops the node.  A NULL struct storage (storage.sync "off", or no
 * usable directory) is valid everywhere and stores nothing. */
#ifndef CHATP2PD_STORAGE_H
#define CHATP2PD_STORAGE_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct storage;

#define STORAGE_DB_NAME "chatp2p.db"

/* The state directory: $STATE_DIRECTORY (systemd), else configured (may be
 * "" or NULL), else $XDG_STATE_HOME/chatp2p/PEER_ID, else
 * ~/.local/state/chatp2p/PEER_ID.  0, or -1 with err. */
int storage_dir_resolve(const char *configured, const char *peer_id, char *out, size_t outlen,
			char *err, size_t errlen);

/* Open (creating dir and database as needed) per cfg->storage.  NULL when
 * sync is "off" or nothing usable could be opened (logged). */
struct storage *storage_open(struct ev_loop *loop, const struct config *cfg, const char *dir);
/* Commit what is pending, close. */
void storage_close(struct storage *st);
/* Reloadable settings (retention, sync level). */
void storage_reconfigure(struct storage *st, const struct config *cfg);
const char *storage_path(const struct storage *st);

/* Called after every commit attempt (ok false: rolled back). */
typedef void (*storage_commit_fn)(void *ctx, bool ok);
void storage_on_commit(struct storage *st, storage_commit_fn fn, void *ctx);
/* The database was lost (deleted, replaced) or could not be written: it
 * was closed, and is reopened (or created again) at its path as soon as
 * possible; fn(ctx, true) then runs, to write again what lives in memory.
 * Meanwhile storage_error() says why, and nothing is stored or ACKed. */
void storage_on_reopen(struct storage *st, storage_commit_fn fn, void *ctx);
const char *storage_error(const struct storage *st);      /* "" when working */
const char *storage_last_error(const struct storage *st); /* "" if never */
unsigned long storage_reopened(const struct storage *st);
/* Commit now (the ev_prepare watcher does this every iteration). */
void storage_flush(struct storage *st);
/* A transaction is open: rows written since the last commit. */
bool storage_pending(const struct storage *st);

/* ---- inbox ---------------------------------------------------------------- */

struct stored_msg {
	int64_t id;            /* increasing, never reused */
	bool pub;              /* a PUB (else a SEND) */
	const char *src;       /* the sender (handshake peer_id) */
	const char *dst;       /* dst as written; NULL for a SEND to us (our own id) */
	const char *msg_id;
	const char *text;
	double at;             /* wall clock, received */
	bool read;
	bool src_mismatch;
	bool dst_mismatch;     /* a SEND whose dst is not our peer_id */
	/* How the sender's identity was known (PROTOCOL.md §5.3): "verified",
	 * "pinned", "backed", "unbacked"; NULL for rows older than schema 3. */
	const char *identity;
	/* The key the sender's connection proved (TLS), or NULL. */
	const char *fingerprint;
};

/* Store a received message unless (src, msg_id) is already there, from a
 * sender as strong: an unbacked claim's msg_id never hides a backed
 * sender's message with that id (PROTOCOL.md §5.1).
 * 1: stored (*id_out set), 0: a duplicate, -1: error (not stored). */
int storage_inbox_add(struct storage *st, const struct stored_msg *m, int64_t *id_out);

struct inbox_filter {
	bool unread_only;
	const char *from;      /* NULL: anyone */
	double since_time;     /* > 0: received after this wall-clock time */
	int64_t since_id;      /* with since_given: id greater than this */
	bool since_given;      /* since_id holds a bound (0: from the first message) */
	int limit;             /* most messages returned (the newest, unless since) */
};
/* Messages in id order; fn returns false to stop.  Returns the number of
 * messages matched (may be more than were passed to fn), -1 on error. */
typedef bool (*storage_msg_fn)(void *ctx, const struct stored_msg *m);
long storage_inbox_list(struct storage *st, const struct inbox_filter *f, storage_msg_fn fn,
			void *ctx);
/* Mark one message (id > 0) or all (id 0) read.  Returns how many changed, -1 on error. */
long storage_inbox_mark_read(struct storage *st, int64_t id);
/* Delete one message (its id).  1, 0 if there is none, -1 on error. */
long storage_inbox_delete(struct storage *st, int64_t id);
long storage_unread(const struct storage *st);
long storage_inbox_count(const struct storage *st);
/* Messages retention removed to keep the count and bytes bounds. */
uint64_t storage_evicted(const struct storage *st);
/* The (at most max) senders that lost the most messages to retention,
 * most first: fn(src, messages stored now, evicted). */
typedef void (*storage_sender_fn)(void *ctx, const char *src, long stored, uint64_t evicted);
void storage_top_evicted(const struct storage *st, int max, storage_sender_fn fn, void *ctx);

/* ---- outbox ----------------------------------------------------------------- */

struct stored_out {
	const char *msg_id;
	const char *to;
	const char *text;
	double created;        /* wall clock */
	double deadline;       /* wall clock */
	int attempts;
	int64_t row;           /* its row (storage_outbox_load) */
};
/* Rows are named by the id *row gets (in queueing order, no index). */
int storage_outbox_add(struct storage *st, const struct stored_out *o, int64_t *row);
int storage_outbox_attempt(struct storage *st, int64_t row, int attempts);
int storage_outbox_remove(struct storage *st, int64_t row);
typedef void (*storage_out_fn)(void *ctx, const struct stored_out *o);
int storage_outbox_load(struct storage *st, storage_out_fn fn, void *ctx);

/* ---- for the other files of store/ (history.c) ----------------------------------
 * Their statements live on this connection, in its batched transaction, and
 * are finalized with it (a database set aside and started again forgets
 * them: prepare again, creating the table first if it is missing). */

#define STORAGE_EXT_MAX 16
struct sqlite3_stmt;
/* sql's statement (the string's address is its key: pass a constant),
 * prepared at the first call, reset before it is returned.  NULL if it
 * does not prepare (a missing table: create it and ask again). */
struct sqlite3_stmt *storage_stmt(struct storage *st, const char *sql);
/* Join the batched transaction (opening one): 0, or -1. */
int storage_write_begin(struct storage *st);
/* Run sql (schema: CREATE TABLE IF NOT EXISTS ...): 0, or -1 (logged). */
int storage_exec(struct storage *st, const char *sql);

#endif
