/* The rendezvous registrations database (see registrations.h). */
#include "store/registrations.h"
#include "store/sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Rendezvous"

/* Migration i takes the schema from version i to i + 1 (user_version). */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema.  The key is the store's key; no other
	 * index (expiry is purged by a scan every minute, cheaper than an
	 * index written by every REGISTER). */
	"CREATE TABLE registrations("
	"  ip TEXT NOT NULL,"
	"  namespace TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  ttl INTEGER NOT NULL,"
	"  expires_at REAL NOT NULL,"
	"  PRIMARY KEY(ip, namespace, name)) WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof *migrations))

enum stmt_id { S_BEGIN, S_COMMIT, S_ROLLBACK, S_PUT, S_DELETE, S_EXPIRE, S__COUNT };

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_PUT] = "INSERT OR REPLACE INTO registrations(ip, namespace, name, port, ttl, expires_at) "
		  "VALUES(?, ?, ?, ?, ?, ?)",
	[S_DELETE] = "DELETE FROM registrations WHERE ip = ? AND namespace = ? AND name = ?",
	[S_EXPIRE] = "DELETE FROM registrations WHERE expires_at <= ?",
};

struct regdb {
	struct ev_loop *loop;
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S__COUNT];
	bool in_txn;
	bool failed;         /* a write failed: roll back at commit */
	bool failing;        /* the last commit failed: say when one works again */
	ev_prepare commit_w;
	regdb_commit_fn fn;
	void *ctx;
};

static void close_db(struct regdb *r)
{
	for (int i = 0; i < S__COUNT; i++) {
		sqlite3_finalize(r->stmt[i]);
		r->stmt[i] = NULL;
	}
	if (r->db)
		sqlite3_close_v2(r->db);
	r->db = NULL;
}

/* 1 ok, 0 damaged (set it aside), -1 unusable for another reason. */
static int try_open(struct regdb *r, char *err, size_t errlen)
{
	long long ver = -1;
	int rc = sql_open_private(r->path, NULL, &r->db, err, errlen);

	if (rc != 1)
		return rc;
	if (sql_exec(r->db, "PRAGMA synchronous=NORMAL", err, errlen) != 0)
		return sqlite3_errcode(r->db) == SQLITE_BUSY ? -1 : 0;
	if (sql_int(r->db, "PRAGMA user_version", &ver) != 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
		return 0;
	}
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errlen, "schema version %lld is newer than this chatp2pd's (%d)", ver,
			 SCHEMA_VERSION);
		return -1;
	}
	rc = sql_check_and_migrate(r->db, ver, migrations, SCHEMA_VERSION, err, errlen);
	if (rc != 1)
		return rc;
	for (int i = 0; i < S__COUNT; i++)
		if (sqlite3_prepare_v3(r->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->stmt[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(r->db));
			return 0;
		}
	return 1;
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents);

struct regdb *regdb_open(struct ev_loop *loop, const char *path, char *err, size_t errlen)
{
	struct regdb *r = xcalloc(1, sizeof *r);
	int rc;

	r->loop = loop;
	r->path = xstrdup(path);
	rc = try_open(r, err, errlen);
	if (rc == 0) {
		log_error(MOD, "%s is damaged or unreadable (%s)", r->path, err);
		close_db(r);
		sql_set_aside(r->path, MOD); /* for whoever wants to look */
		rc = try_open(r, err, errlen);
	}
	if (rc != 1) {
		close_db(r);
		free(r->path);
		free(r);
		return NULL;
	}
	ev_prepare_init(&r->commit_w, on_prepare);
	r->commit_w.data = r;
	ev_prepare_start(loop, &r->commit_w);
	return r;
}

void regdb_close(struct regdb *r)
{
	if (r == NULL)
		return;
	regdb_flush(r);
	ev_prepare_stop(r->loop, &r->commit_w);
	close_db(r);
	free(r->path);
	free(r);
}

const char *regdb_path(const struct regdb *r)
{
	return r ? r->path : "";
}

void regdb_on_commit(struct regdb *r, regdb_commit_fn fn, void *ctx)
{
	r->fn = fn;
	r->ctx = ctx;
}

bool regdb_pending(const struct regdb *r)
{
	return r != NULL && r->in_txn;
}

static int step_reset(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static bool begin(struct regdb *r)
{
	if (r->in_txn)
		return true;
	/* Opened even if BEGIN fails, so the commit that follows reports the
	 * failure to the listener (replies held for it are released). */
	r->in_txn = true;
	r->failed = false;
	if (step_reset(r->stmt[S_BEGIN]) != SQLITE_DONE) {
		log_error(MOD, "%s: BEGIN: %s", r->path, sqlite3_errmsg(r->db));
		r->failed = true;
		return false;
	}
	return true;
}

static void write_step(struct regdb *r, sqlite3_stmt *s, const char *what)
{
	if (step_reset(s) != SQLITE_DONE) {
		log_error(MOD, "%s: %s: %s", r->path, what, sqlite3_errmsg(r->db));
		r->failed = true;
	}
}

void regdb_flush(struct regdb *r)
{
	bool ok;

	if (r == NULL || !r->in_txn)
		return;
	if (r->failed) {
		if (sqlite3_get_autocommit(r->db) == 0)
			step_reset(r->stmt[S_ROLLBACK]);
		ok = false;
	} else {
		double t0 = mono_now();
		ok = step_reset(r->stmt[S_COMMIT]) == SQLITE_DONE;
		double ms = (mono_now() - t0) * 1000.0;
		if (ms > 100)
			log_warn(MOD, "%s: commit took %.0f ms", r->path, ms);
		if (!ok) {
			log_error(MOD, "%s: COMMIT: %s", r->path, sqlite3_errmsg(r->db));
			if (sqlite3_get_autocommit(r->db) == 0)
				step_reset(r->stmt[S_ROLLBACK]);
		}
	}
	r->in_txn = false;
	r->failed = false;
	if (ok && r->failing)
		log_info(MOD, "%s: registrations saved again", r->path);
	r->failing = !ok;
	if (r->fn)
		r->fn(r->ctx, ok);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	regdb_flush(w->data);
}

void regdb_put(struct regdb *r, const char *ip, const char *ns, const char *name, int port,
	       int ttl, double expires_at)
{
	sqlite3_stmt *s = r->stmt[S_PUT];

	if (!begin(r))
		return;
	sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, port);
	sqlite3_bind_int(s, 5, ttl);
	sqlite3_bind_double(s, 6, expires_at);
	write_step(r, s, "INSERT");
}

void regdb_delete(struct regdb *r, const char *ip, const char *ns, const char *name)
{
	sqlite3_stmt *s = r->stmt[S_DELETE];

	if (!begin(r))
		return;
	sqlite3_bind_text(s, 1, ip, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
	write_step(r, s, "DELETE");
}

long regdb_expire(struct regdb *r, double now)
{
	sqlite3_stmt *s = r->stmt[S_EXPIRE];

	if (!begin(r))
		return -1;
	sqlite3_bind_double(s, 1, now);
	if (step_reset(s) != SQLITE_DONE) {
		log_error(MOD, "%s: DELETE expired: %s", r->path, sqlite3_errmsg(r->db));
		r->failed = true;
		return -1;
	}
	return (long)sqlite3_changes(r->db);
}

long regdb_load(struct regdb *r, double now, regdb_row_fn fn, void *ctx)
{
	sqlite3_stmt *s;
	long n = 0;
	int rc;

	if (sqlite3_prepare_v2(r->db, "SELECT ip, namespace, name, port, ttl, expires_at "
			       "FROM registrations WHERE expires_at > ?", -1, &s, NULL) != SQLITE_OK) {
		log_error(MOD, "%s: %s", r->path, sqlite3_errmsg(r->db));
		return -1;
	}
	sqlite3_bind_double(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *ip = (const char *)sqlite3_column_text(s, 0);
		const char *ns = (const char *)sqlite3_column_text(s, 1);
		const char *name = (const char *)sqlite3_column_text(s, 2);
		if (ip == NULL || ns == NULL || name == NULL)
			continue;
		fn(ctx, ip, ns, name, sqlite3_column_int(s, 3), sqlite3_column_int(s, 4),
		   sqlite3_column_double(s, 5));
		n++;
	}
	if (rc != SQLITE_DONE) {
		log_error(MOD, "%s: %s", r->path, sqlite3_errmsg(r->db));
		n = -1;
	}
	sqlite3_finalize(s);
	return n;
}
