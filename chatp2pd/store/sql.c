/* SQLite helpers of store/ (see sql.h). */
#include "store/sql.h"

#include <stdio.h>
#include <string.h>

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
		if (sql_exec(db, "BEGIN", err, errlen) != 0 ||
		    sql_exec(db, migrations[i], err, errlen) != 0) {
			sql_exec(db, "ROLLBACK", NULL, 0);
			return 0;
		}
		snprintf(sql, sizeof sql, "PRAGMA user_version=%d", i + 1);
		if (sql_exec(db, sql, err, errlen) != 0 || sql_exec(db, "COMMIT", err, errlen) != 0)
			return 0;
	}
	return 1;
}
