/* Sent messages and their outcome: one table, "sent", on storage's
 * connection.  Created with IF NOT EXISTS when a statement finds it
 * missing, so it needs no migration of its own and appears in databases of
 * older versions at their first send. */
#include "store/history.h"

#include <string.h>

#include <sqlite3.h>

#include "log.h"

#define MOD "History"

static const char SCHEMA[] =
	"CREATE TABLE IF NOT EXISTS sent("
	" id INTEGER PRIMARY KEY,"
	" at REAL NOT NULL,"
	" msg_id TEXT NOT NULL,"
	" dst TEXT NOT NULL,"
	" pub INTEGER NOT NULL,"
	" text TEXT NOT NULL,"
	" outcome TEXT NOT NULL,"
	" reached INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS sent_msg_id ON sent(msg_id);"
	"CREATE INDEX IF NOT EXISTS sent_dst ON sent(dst, id);";

static const char INSERT[] =
	"INSERT INTO sent(at, msg_id, dst, pub, text, outcome, reached) VALUES(?,?,?,?,?,?,?)";
static const char OUTCOME[] = "UPDATE sent SET outcome = ? WHERE msg_id = ?";
static const char TRIM[] = "DELETE FROM sent WHERE id <= ?";
static const char LIST[] =
	"SELECT id, at, msg_id, dst, pub, text, outcome, reached FROM "
	"(SELECT * FROM sent WHERE dst = ? ORDER BY id DESC LIMIT ?) ORDER BY id";

/* sql's statement, the table created first when it is missing. */
static sqlite3_stmt *stmt(struct storage *st, const char *sql)
{
	sqlite3_stmt *s = storage_stmt(st, sql);

	if (s == NULL && st && storage_exec(st, SCHEMA) == 0)
		s = storage_stmt(st, sql);
	return s;
}

int history_sent_add(struct storage *st, const struct sent_msg *m, long max)
{
	sqlite3_stmt *s;

	if (st == NULL)
		return 0;
	if (storage_write_begin(st) != 0 || (s = stmt(st, INSERT)) == NULL)
		return -1;
	sqlite3_bind_double(s, 1, m->at);
	sqlite3_bind_text(s, 2, m->msg_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, m->dst, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, m->pub);
	sqlite3_bind_text(s, 5, m->text, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, m->outcome ? m->outcome : "pending", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, m->reached);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		log_warn(MOD, "not recorded: %s", sqlite3_errstr(rc));
		return -1;
	}
	int64_t id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
	/* Bounded: now and then, the rows beyond max go, oldest first. */
	if (max > 0 && id % 64 == 0 && id > max && (s = stmt(st, TRIM)) != NULL) {
		sqlite3_bind_int64(s, 1, id - max);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	return 0;
}

int history_sent_outcome(struct storage *st, const char *msg_id, const char *outcome)
{
	sqlite3_stmt *s;

	if (st == NULL || msg_id == NULL || msg_id[0] == '\0')
		return 0;
	if (storage_write_begin(st) != 0 || (s = stmt(st, OUTCOME)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, msg_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

long history_sent_list(struct storage *st, const char *dst, int limit, history_sent_fn fn,
		       void *ctx)
{
	sqlite3_stmt *s;
	long n = 0;
	int rc;

	if (st == NULL)
		return 0;
	if ((s = stmt(st, LIST)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, dst, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, limit > 0 ? limit : 100);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct sent_msg m = {
			.id = sqlite3_column_int64(s, 0),
			.at = sqlite3_column_double(s, 1),
			.msg_id = (const char *)sqlite3_column_text(s, 2),
			.dst = (const char *)sqlite3_column_text(s, 3),
			.pub = sqlite3_column_int(s, 4) != 0,
			.text = (const char *)sqlite3_column_text(s, 5),
			.outcome = (const char *)sqlite3_column_text(s, 6),
			.reached = (long)sqlite3_column_int64(s, 7),
		};
		n++;
		if (!fn(ctx, &m))
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : -1;
}
