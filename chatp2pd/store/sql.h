/* Small SQLite helpers shared by the files of store/ (the node's inbox and
 * outbox, the rendezvous role's registrations, the pins): open a private
 * database, run a statement, read one integer, check a database then bring
 * it to its schema version, and set a damaged one aside. */
#ifndef CHATP2PD_STORE_SQL_H
#define CHATP2PD_STORE_SQL_H
#include <sqlite3.h>
#include <stddef.h>

/* Open (creating) path for this process alone: locking_mode=EXCLUSIVE
 * before journal_mode=WAL, so the WAL index lives in our heap and no -shm
 * file is mapped from the state directory (one made immutable or truncated
 * under us was a SIGBUS).  vfs NULL: the default.  *db is set even on
 * failure (close it).  1 ok; -1 cannot be opened or is locked by another
 * process (not damaged); 0 anything else (treat as damaged); err says why. */
int sql_open_private(const char *path, const char *vfs, sqlite3 **db, char *err, size_t errlen);
/* Rename path and its -wal and -shm aside as path.damaged-STAMP-PID*,
 * logged under module mod. */
void sql_set_aside(const char *path, const char *mod);
/* Run sql (no rows); 0, or -1 with SQLite's message in err. */
int sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The first column of the first row of sql; 0, or -1. */
int sql_int(sqlite3 *db, const char *sql, long long *out);
/* PRAGMA quick_check (a truncated or overwritten file fails it), then
 * migrations[from .. to-1], each in a transaction of its own that also sets
 * PRAGMA user_version.  1 ok, 0 damaged, -1 a migration could not be
 * written (a full disk: the file is left as it was) (err). */
int sql_check_and_migrate(sqlite3 *db, long long from, const char *const *migrations, int to,
			  char *err, size_t errlen);

#endif
