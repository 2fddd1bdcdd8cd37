/* Pinned identity keys (see pins.h): a sorted array in memory, mirrored
 * row by row into the pins table. */
#include "store/pins.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peerid.h"
#include "store/sql.h"
#include "xmalloc.h"

/* last_seen is for people ("seen 3 days ago"): a write per connection
 * would buy nothing. */
#define SEEN_WRITE_EVERY 60.0

struct pins {
	sqlite3 *db;         /* NULL: memory only */
	bool own_db;         /* opened by pins_open_file(): closed with the pins */
	struct pin *v;       /* sorted by peer_id */
	size_t n, cap;
};

const char *pins_result_str(enum pins_result r)
{
	switch (r) {
	case PINS_OK: return "ok";
	case PINS_BAD_FINGERPRINT: return "bad_fingerprint";
	case PINS_BAD_PEER: return "bad_peer";
	case PINS_NOT_PINNED: return "not_pinned";
	case PINS_MISMATCH: return "fingerprint_mismatch";
	case PINS_FULL: return "pins_full";
	case PINS_DB_ERROR: return "storage_error";
	}
	return "unknown";
}

/* Index of peer_id, or of where it would go (*found false). */
static size_t locate(const struct pins *p, const char *peer_id, bool *found)
{
	size_t lo = 0, hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->v[mid].peer_id, peer_id);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct pin *insert_at(struct pins *p, size_t i, const char *peer_id)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 16;
		p->v = xrealloc(p->v, p->cap * sizeof *p->v);
	}
	memmove(&p->v[i + 1], &p->v[i], (p->n - i) * sizeof *p->v);
	p->n++;
	memset(&p->v[i], 0, sizeof p->v[i]);
	p->v[i].peer_id = xstrdup(peer_id);
	return &p->v[i];
}

static void remove_at(struct pins *p, size_t i)
{
	free(p->v[i].peer_id);
	memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof *p->v);
	p->n--;
}

static int run(sqlite3 *db, const char *sql, const char *peer_id, const char *fp, double a,
	       double b, int verified)
{
	if (!db)
		return 0;
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	/* Parameters by name, so each statement binds what it uses. */
	int i;
	if ((i = sqlite3_bind_parameter_index(s, ":peer")))
		sqlite3_bind_text(s, i, peer_id, -1, SQLITE_STATIC);
	if ((i = sqlite3_bind_parameter_index(s, ":fp")))
		sqlite3_bind_text(s, i, fp, -1, SQLITE_STATIC);
	if ((i = sqlite3_bind_parameter_index(s, ":a")))
		sqlite3_bind_double(s, i, a);
	if ((i = sqlite3_bind_parameter_index(s, ":b")))
		sqlite3_bind_double(s, i, b);
	if ((i = sqlite3_bind_parameter_index(s, ":v")))
		sqlite3_bind_int(s, i, verified);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static bool is_number(sqlite3_stmt *s, int col)
{
	int t = sqlite3_column_type(s, col);
	return t == SQLITE_INTEGER || t == SQLITE_FLOAT;
}

static bool time_ok(double t)
{
	return isfinite(t) && t >= 0 && t < 1e11;
}

struct pins *pins_open(sqlite3 *db, long *skipped, char *err, size_t errlen)
{
	struct pins *p = xcalloc(1, sizeof *p);
	p->db = db;
	*skipped = 0;
	if (!db)
		return p;
	char *msg = NULL;
	if (sqlite3_exec(db,
			 "CREATE TABLE IF NOT EXISTS pins ("
			 " peer_id TEXT PRIMARY KEY,"
			 " fingerprint TEXT NOT NULL,"
			 " first_seen REAL NOT NULL,"
			 " last_seen REAL NOT NULL,"
			 " verified INTEGER NOT NULL DEFAULT 0)",
			 NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "pins: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		free(p);
		return NULL;
	}
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db,
			       "SELECT peer_id, fingerprint, first_seen, last_seen, verified"
			       " FROM pins",
			       -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "pins: %s", sqlite3_errmsg(db));
		free(p);
		return NULL;
	}
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		/* The file is input like any other: check every column's type
		 * and form before it can decide whom we trust. */
		const char *peer = (const char *)sqlite3_column_text(s, 0);
		const char *fp = (const char *)sqlite3_column_text(s, 1);
		double first = sqlite3_column_double(s, 2), last = sqlite3_column_double(s, 3);
		int vtype = sqlite3_column_type(s, 4);
		long long v = sqlite3_column_int64(s, 4);
		bool found = false;
		size_t at = 0;
		bool ok = sqlite3_column_type(s, 0) == SQLITE_TEXT &&
			  sqlite3_column_type(s, 1) == SQLITE_TEXT && peer && fp &&
			  (size_t)sqlite3_column_bytes(s, 0) == strlen(peer) &&
			  peer_id_valid(peer) && fingerprint_valid(fp) &&
			  is_number(s, 2) && is_number(s, 3) && time_ok(first) &&
			  time_ok(last) && vtype == SQLITE_INTEGER && (v == 0 || v == 1) &&
			  p->n < PINS_MAX;
		if (ok)
			at = locate(p, peer, &found);
		if (!ok || found) {
			(*skipped)++;
			continue;
		}
		struct pin *pin = insert_at(p, at, peer);
		snprintf(pin->fingerprint, sizeof pin->fingerprint, "%s", fp);
		pin->first_seen = first;
		pin->last_seen = last;
		pin->seen_written = last;
		pin->verified = v == 1;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "pins: %s", sqlite3_errmsg(db));
		pins_close(p);
		return NULL;
	}
	return p;
}

void pins_close(struct pins *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].peer_id);
	free(p->v);
	if (p->own_db)
		sqlite3_close(p->db);
	free(p);
}

struct pins *pins_open_file(const char *path, long *skipped, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	/* Trust decisions: readable by the node only, like the key. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd);
	char why[256];
	if (sql_open_private(path, NULL, &db, why, sizeof why) != 1) {
		snprintf(err, errlen, "pins: cannot open %s: %s", path, why);
		sqlite3_close(db);
		return NULL;
	}
	if (sql_exec(db, "PRAGMA synchronous=NORMAL", err, errlen) != 0) {
		sqlite3_close(db);
		return NULL;
	}
	struct pins *p = pins_open(db, skipped, err, errlen);
	if (p == NULL) {
		sqlite3_close(db);
		return NULL;
	}
	p->own_db = true;
	return p;
}

const struct pin *pins_find(const struct pins *p, const char *peer_id)
{
	bool found;
	size_t i = locate(p, peer_id, &found);
	return found ? &p->v[i] : NULL;
}

size_t pins_count(const struct pins *p)
{
	return p->n;
}

void pins_each(const struct pins *p, pins_fn fn, void *ctx)
{
	for (size_t i = 0; i < p->n; i++)
		if (!fn(ctx, &p->v[i]))
			break;
}

enum pins_result pins_add(struct pins *p, const char *peer_id, const char *fingerprint,
			  bool verified, double now)
{
	if (!peer_id_valid(peer_id))
		return PINS_BAD_PEER;
	if (!fingerprint_valid(fingerprint))
		return PINS_BAD_FINGERPRINT;
	bool found;
	size_t i = locate(p, peer_id, &found);
	if (!found && p->n >= PINS_MAX)
		return PINS_FULL;
	/* The row first: a pin that is not on disk must not be believed. */
	if (run(p->db,
		"INSERT OR REPLACE INTO pins (peer_id, fingerprint, first_seen, last_seen, verified)"
		" VALUES (:peer, :fp, :a, :b, :v)",
		peer_id, fingerprint, now, now, verified) != 0)
		return PINS_DB_ERROR;
	struct pin *pin = found ? &p->v[i] : insert_at(p, i, peer_id);
	snprintf(pin->fingerprint, sizeof pin->fingerprint, "%s", fingerprint);
	pin->first_seen = now;
	pin->last_seen = now;
	pin->seen_written = now;
	pin->verified = verified;
	return PINS_OK;
}

enum pins_result pins_verify(struct pins *p, const char *peer_id, const char *fingerprint)
{
	if (!fingerprint_valid(fingerprint))
		return PINS_BAD_FINGERPRINT;
	bool found;
	size_t i = locate(p, peer_id, &found);
	if (!found)
		return PINS_NOT_PINNED;
	if (strcmp(p->v[i].fingerprint, fingerprint) != 0)
		return PINS_MISMATCH;
	if (run(p->db, "UPDATE pins SET verified = 1 WHERE peer_id = :peer", peer_id, NULL, 0, 0,
		0) != 0)
		return PINS_DB_ERROR;
	p->v[i].verified = true;
	return PINS_OK;
}

enum pins_result pins_forget(struct pins *p, const char *peer_id)
{
	bool found;
	size_t i = locate(p, peer_id, &found);
	if (!found)
		return PINS_NOT_PINNED;
	if (run(p->db, "DELETE FROM pins WHERE peer_id = :peer", peer_id, NULL, 0, 0, 0) != 0)
		return PINS_DB_ERROR;
	remove_at(p, i);
	return PINS_OK;
}

void pins_seen(struct pins *p, const char *peer_id, double now)
{
	bool found;
	size_t i = locate(p, peer_id, &found);
	if (!found)
		return;
	struct pin *pin = &p->v[i];
	pin->last_seen = now;
	if (now - pin->seen_written >= SEEN_WRITE_EVERY &&
	    run(p->db, "UPDATE pins SET last_seen = :a WHERE peer_id = :peer", peer_id, NULL, now,
		0, 0) == 0)
		pin->seen_written = now;
}
