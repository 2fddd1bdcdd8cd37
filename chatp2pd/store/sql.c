/* SQLite helpers of store/ (see sql.h). */
#include "store/sql.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int sql_open_private(const char *path, const char *vfs, sqlite3 **db, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(path, db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		return rc == SQLITE_CANTOPEN || rc == SQLITE_PERM || rc == SQLITE_READONLY ? -1 : 0;
	}
	/* Another process holding a lock briefly (the sqlite3 shell): wait a
	 * moment rather than fail.  Nothing else writes our databases. */
	sqlite3_busy_timeout(*db, 100);
	if (sql_exec(*db, "PRAGMA locking_mode=EXCLUSIVE", err, errlen) != 0 ||
	    sql_exec(*db, "PRAGMA journal_mode=WAL", err, errlen) != 0) {
		int ec = sqlite3_errcode(*db);
		return ec == SQLITE_BUSY || ec == SQLITE_LOCKED ? -1 : 0;
	}
	return 1;
}

void sql_set_aside(const char *path, const char *mod)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char stamp[32], from[4200], to[4300];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
		snprintf(from, sizeof from, "%s%s", path, sfx[i]);
		snprintf(to, sizeof to, "%s.damaged-%s-%ld%s", path, stamp, (long)getpid(), sfx[i]);
		if (rename(from, to) == 0 && i == 0)
			log_error(mod, "database set aside as %s", to);
		else if (i == 0 && errno != ENOENT)
			log_error(mod, "cannot rename %s aside: %s", from, strerror(errno));
	}
}

int sql_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		if (errlen > 0)
			snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int sql_int(sqlite3 *db, const char *sql, long long *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

int sql_check_and_migrate(sqlite3 *db, long long from, const char *const *migrations, int to,
			  char *err, size_t errlen)
{
	sqlite3_stmt *qc;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &qc, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return 0;
	}
	rc = sqlite3_step(qc);
	const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(qc, 0) : NULL;
	if (res == NULL || strcmp(res, "ok") != 0) {
		snprintf(err, errlen, "integrity check failed: %s", res ? res : sqlite3_errmsg(db));
		sqlite3_finalize(qc);
		return 0;
	}
	sqlite3_finalize(qc);
	for (int i = (int)from; i < to; i++) {
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", i + 1);
		if (sql_exec(db, "BEGIN", err, errlen) != 0 ||
		    sql_exec(db, migrations[i], err, errlen) != 0 ||
		    sql_exec(db, sql, err, errlen) != 0 || sql_exec(db, "COMMIT", err, errlen) != 0) {
			int ec = sqlite3_errcode(db);
			sql_exec(db, "ROLLBACK", NULL, 0);
			/* A migration that copies a table needs room: a full disk
			 * (or any other failure of the disk) leaves the file as it
			 * was, not damaged. */
			return ec == SQLITE_CORRUPT || ec == SQLITE_NOTADB ? 0 : -1;
		}
	}
	return 1;
}
