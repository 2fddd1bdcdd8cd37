/* Small SQLite helpers shared by the files of store/ (the node's inbox and
 * outbox, the rendezvous role's registrations): run a statement, read one
 * integer, and check a database then bring it to its schema version. */
#ifndef CHATP2PD_STORE_SQL_H
#define CHATP2PD_STORE_SQL_H
#include <sqlite3.h>
#include <stddef.h>

/* Run sql (no rows); 0, or -1 with SQLite's message in err. */
int sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The first column of the first row of sql; 0, or -1. */
int sql_int(sqlite3 *db, const char *sql, long long *out);
/* PRAGMA quick_check (a truncated or overwritten file fails it), then
 * migrations[from .. to-1], each in a transaction of its own that also sets
 * PRAGMA user_version.  1 ok, 0 damaged or a migration failed (err). */
int sql_check_and_migrate(sqlite3 *db, long long from, const char *const *migrations, int to,
			  char *err, size_t errlen);

#endif
