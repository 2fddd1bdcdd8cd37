/* The rendezvous server role's registrations on disk: one SQLite database
 * (registrations.db in rendezvous_server.state_dir), the only SQL of that
 * role.  Its caller (rendezvous/server/server.c) keeps the registrations in
 * memory and mirrors every change here.
 *
 * Writes are grouped as in storage.h: the first write of a loop iteration
 * opens a transaction, an ev_prepare watcher commits it before the loop
 * waits again and then calls the commit listener.  A REGISTER reply is
 * held until that call, so a registration answered OK is in the database
 * log: WAL with synchronous=NORMAL survives a SIGKILL of the daemon (FULL,
 * not used here, would survive power loss; clients re-register anyway).
 * locking_mode=EXCLUSIVE: the WAL index lives in our memory, not in a
 * shared-memory file (nothing else opens this database while we run).
 *
 * Expiry is stored as wall-clock time, so time spent down counts. */
#ifndef CHATP2PD_REGISTRATIONS_H
#define CHATP2PD_REGISTRATIONS_H
#include <ev.h>
#include <stdbool.h>

#define REGDB_NAME "registrations.db"

struct regdb;

/* Open or create path.  A damaged file is renamed aside (path.damaged-*)
 * and a new one started.  NULL (err set) if nothing usable opens. */
struct regdb *regdb_open(struct ev_loop *loop, const char *path, char *err, size_t errlen);
/* Commit what is pending (the listener is called), close. */
void regdb_close(struct regdb *db);
const char *regdb_path(const struct regdb *db);

/* Every row not expired at wall time now, in no particular order.
 * Returns the number of rows passed, -1 on error. */
typedef void (*regdb_row_fn)(void *ctx, const char *ip, const char *ns, const char *name,
			     int port, int ttl, double expires_at);
long regdb_load(struct regdb *db, double now, regdb_row_fn fn, void *ctx);

/* Insert or replace (ip, ns, name); remove it; remove every row expired at
 * wall time now (returns how many, -1 on error).  Part of the current
 * transaction: durable once the listener hears ok. */
void regdb_put(struct regdb *db, const char *ip, const char *ns, const char *name, int port,
	       int ttl, double expires_at);
void regdb_delete(struct regdb *db, const char *ip, const char *ns, const char *name);
long regdb_expire(struct regdb *db, double now);

/* Called after every commit attempt (ok false: a write or the commit
 * failed, and the transaction was rolled back). */
typedef void (*regdb_commit_fn)(void *ctx, bool ok);
void regdb_on_commit(struct regdb *db, regdb_commit_fn fn, void *ctx);
/* A transaction is open: a commit will follow in this loop iteration. */
bool regdb_pending(const struct regdb *db);
/* Commit now (the ev_prepare watcher does it every iteration). */
void regdb_flush(struct regdb *db);

#endif
