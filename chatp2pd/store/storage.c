#include "store/storage.h"
#include "store/sql.h"
#include "store/walbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fnv.h"
#include "log.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Storage"
#define MAX_LISTENERS 4
/* Rows deleted per retention statement: a big backlog is trimmed over a
 * few iterations instead of one long stall. */
#define TRIM_BATCH 5000
/* Age-based retention runs this often (and at start). */
#define AGE_CHECK_INTERVAL 60.0
/* A database lost or unwritable: the next try to reopen it after this. */
#define REOPEN_INTERVAL 1.0

/* Migration i takes the schema from version i to i + 1 (user_version). */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE inbox("
	/* Ids only grow: storage_inbox_add gives the newest + 1, and retention
	 * never removes the newest row, so that never goes back after a
	 * restart either (AUTOINCREMENT would cost a write of sqlite_sequence
	 * per commit). */
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  src TEXT NOT NULL,"
	"  dst TEXT,"
	"  msg_id TEXT NOT NULL,"
	"  text TEXT NOT NULL,"
	"  at REAL NOT NULL,"
	"  read INTEGER NOT NULL DEFAULT 0,"
	"  src_mismatch INTEGER NOT NULL DEFAULT 0);"
	/* No index: every index costs each message a write, and one on the
	 * random msg_ids dirties a page per message (measured: 40 page writes
	 * per commit).  Duplicates are found in memory (loaded from here at
	 * start), unread counts are kept in memory, age follows id order. */
	"CREATE TABLE outbox("
	"  msg_id TEXT PRIMARY KEY,"
	"  dst TEXT NOT NULL,"
	"  text TEXT NOT NULL,"
	"  created REAL NOT NULL,"
	"  deadline REAL NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0);",
	/* 1 -> 2 (issue 18): outbox rows by rowid, in queueing order.  The
	 * msg_id primary key put each new row on a random index page: with a
	 * backlog of 50,000 every commit rewrote hundreds of pages, and the
	 * queue went at disk speed.  The outbox keeps each row's id in memory. */
	"CREATE TABLE outbox2("
	"  id INTEGER PRIMARY KEY,"
	"  msg_id TEXT NOT NULL,"
	"  dst TEXT NOT NULL,"
	"  text TEXT NOT NULL,"
	"  created REAL NOT NULL,"
	"  deadline REAL NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0);"
	"INSERT INTO outbox2(msg_id, dst, text, created, deadline, attempts) "
	"  SELECT msg_id, dst, text, created, deadline, attempts FROM outbox ORDER BY created;"
	"DROP TABLE outbox;"
	"ALTER TABLE outbox2 RENAME TO outbox;",
	/* 2 -> 3 (issue 17): how each sender's identity was known, and a
	 * SEND whose dst was not us.  Older rows have no identity (NULL). */
	"ALTER TABLE inbox ADD COLUMN identity TEXT;"
	"ALTER TABLE inbox ADD COLUMN dst_mismatch INTEGER NOT NULL DEFAULT 0;",
	/* 3 -> 4 (issue 17, §5.3): the key the sender's connection proved. */
	"ALTER TABLE inbox ADD COLUMN fingerprint TEXT;",
	/* 4 -> 5 (issue 18): kind, read and the two mismatches as bits of one
	 * integer (INBOX_*), and so are the known identities of new rows (the
	 * identity column then NULL), and a SEND to us has no dst (ours).
	 * Every column costs each message a bind, a copy and its place in the
	 * record: SQLite's insert of a row costs about 20 % less
	 * (chatp2p-sqlite-floor), the storage's whole path about 10 %.  Copied
	 * in id order: ids, and so age, are kept; old rows keep their text. */
	"CREATE TABLE inbox5("
	"  id INTEGER PRIMARY KEY,"
	"  src TEXT NOT NULL,"
	"  dst TEXT,"
	"  msg_id TEXT NOT NULL,"
	"  text TEXT NOT NULL,"
	"  at REAL NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  identity TEXT,"
	"  fingerprint TEXT);"
	"INSERT INTO inbox5(id, src, dst, msg_id, text, at, flags, identity, fingerprint) "
	"  SELECT id, src, dst, msg_id, text, at,"
	"    (read != 0) | ((kind = 'pub') << 1) | ((src_mismatch != 0) << 2) | ((dst_mismatch != 0) << 3),"
	"    identity, fingerprint FROM inbox ORDER BY id;"
	"DROP TABLE inbox;"
	"ALTER TABLE inbox5 RENAME TO inbox;",
};
/* inbox.flags: bits, and the identity's code (identity_names) above them. */
#define INBOX_READ 1
#define INBOX_PUB 2
#define INBOX_SRC_MISMATCH 4
#define INBOX_DST_MISMATCH 8
#define INBOX_ID_SHIFT 4
#define INBOX_ID_MASK (7 << INBOX_ID_SHIFT)
#define STR_(x) #x
#define STR(x) STR_(x)
#define UNREAD "(flags & " STR(INBOX_READ) ") = 0"
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof *migrations))

enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_MARK_ONE, S_MARK_ALL,
	S_OUT_ADD, S_OUT_ATTEMPT, S_OUT_REMOVE,
	S_EVICT, S_EVICT_RUN,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_MARK_ONE] = "UPDATE inbox SET flags = flags | " STR(INBOX_READ) " WHERE id = ? AND " UNREAD,
	[S_MARK_ALL] = "UPDATE inbox SET flags = flags | " STR(INBOX_READ) " WHERE " UNREAD,
	[S_OUT_ADD] = "INSERT INTO outbox(msg_id, dst, text, created, deadline, attempts) "
		      "VALUES(?, ?, ?, ?, ?, ?)",
	[S_OUT_ATTEMPT] = "UPDATE outbox SET attempts = ? WHERE id = ?",
	[S_OUT_REMOVE] = "DELETE FROM outbox WHERE id = ?",
	/* A sender's oldest rows: all of its rows in [first, last] of their ids. */
	[S_EVICT] = "DELETE FROM inbox WHERE id BETWEEN ?1 AND ?2 AND src = ?3",
	/* The same when the sender holds every id in [first, last]: no row's
	 * src to read. */
	[S_EVICT_RUN] = "DELETE FROM inbox WHERE id BETWEEN ?1 AND ?2",
};

/* The rows of a loop iteration are inserted at its end, INBOX_ROWS_MAX
 * to a statement: a statement per row cost more than its row. */
#define INBOX_ROWS_MAX 32
#define INBOX_COLS 9
#define INBOX_INSERT "INSERT INTO inbox(id, src, dst, msg_id, text, at, flags, identity, " \
	"fingerprint) VALUES"
#define NO_STR UINT32_MAX

/* A row waiting for the end of the iteration: its strings in st->arena. */
struct pend_row {
	int64_t id;
	double at;
	int flags;                  /* inbox.flags; identity is NO_STR when they code it */
	uint32_t src, dst, msg_id, text, identity, fingerprint; /* offsets, NO_STR: NULL */
};

/* (src, msg_id) of the newest DEDUPE_CAP stored messages, as 64-bit hashes
 * (a false match is ~1e-14 likely): a ring in arrival order, chained by
 * bucket, so the oldest is forgotten first. */
#define DEDUPE_CAP 131072u
#define DEDUPE_END UINT32_MAX

struct dedupe {
	uint64_t hash[DEDUPE_CAP];
	uint32_t next[DEDUPE_CAP];
	uint32_t head[DEDUPE_CAP];
	uint32_t n, pos;
};

struct listener {
	storage_commit_fn fn;
	void *ctx;
};

/* Each sender's stored messages, oldest first, in memory: retention takes
 * the oldest of whoever holds most over its share (storage.sender_share)
 * with a DELETE by rowid, no index and no scan (issue 18: one stranger's
 * flood evicted every other sender's messages). */
struct held {
	int64_t id;
	uint32_t len;
	bool read;                  /* kept here so evicting needs no RETURNING */
};

struct sender {
	struct sender *next;        /* hash chain */
	char *src;
	long count;
	double bytes;
	uint64_t evicted;           /* removed to keep the bounds */
	struct held *q;             /* a ring: q[(head + i) % cap] */
	size_t head, len, cap;
};

#define SENDER_BUCKETS 1024

struct storage {
	struct ev_loop *loop;
	sqlite3 *db;                /* NULL while broken (error set, reopen_w runs) */
	char dir[CFG_STR_MAX + 1];
	char path[CFG_STR_MAX + 32];
	char error[256];            /* why it is broken now, "" when it is not */
	char last_error[256];
	unsigned long reopened;
	ev_timer reopen_w;
	struct listener reopen_listeners[MAX_LISTENERS];
	int nreopen;
	sqlite3_stmt *stmt[S__COUNT];
	bool in_txn;
	bool failed;                /* a write failed: roll back at commit */
	bool failed_io;             /* ... because of the file: reopen it */
	char last_write_err[200];
	ev_prepare commit_w;
	ev_timer age_w;
	struct listener listeners[MAX_LISTENERS];
	int nlisteners;
	/* Kept in memory so status and retention need no query per message. */
	long count, unread;
	double bytes;
	long max_messages;
	double max_bytes, max_days;
	bool full;
	int applied_full;           /* the mode the PRAGMAs were set for, -1 none */
	struct dedupe *seen;
	double share;               /* storage.sender_share */
	int64_t max_id;             /* the newest row: retention keeps it */
	struct sender *senders[SENDER_BUCKETS];
	long nsenders;
	uint64_t evicted;           /* all senders, gone ones included */
	sqlite3_stmt *ins[INBOX_ROWS_MAX + 1]; /* INSERT of n rows, prepared when first used */
	/* Rows added in this transaction, not yet written (pend_write). */
	struct pend_row *pend;
	size_t npend, pend_cap;
	char *arena;
	size_t arena_len, arena_cap;
	/* Statements of the other files of store/ (history.c), by their SQL. */
	struct { const char *sql; sqlite3_stmt *s; } ext[STORAGE_EXT_MAX];
};

/* An unbacked claim's messages are keyed apart from the same name's
 * stronger ones: the claim cannot burn the real sender's msg_ids. */
static bool weak(const char *identity)
{
	return identity != NULL && strcmp(identity, "unbacked") == 0;
}

/* PROTOCOL.md §5.3's names, kept as a code in flags (0: none, or the text
 * in the identity column for a name not listed here). */
static const char *const identity_names[] = { NULL, "unbacked", "backed", "pinned", "verified" };
#define IDENTITY_CODES ((int)(sizeof identity_names / sizeof *identity_names))

static int identity_code(const char *identity)
{
	for (int i = 1; identity && i < IDENTITY_CODES; i++)
		if (strcmp(identity, identity_names[i]) == 0)
			return i;
	return 0;
}

/* A row's identity: its text, else the name its flags code. */
static const char *row_identity(const char *text, int flags)
{
	int code = (flags & INBOX_ID_MASK) >> INBOX_ID_SHIFT;

	return text ? text : code < IDENTITY_CODES ? identity_names[code] : NULL;
}

static uint64_t key_hash(const char *src, const char *msg_id, bool unbacked)
{
	uint64_t h = fnv64(unbacked ? 1469598103934665603ull : FNV64_BASIS, src);

	h = fnv64_byte(h, 0xff); /* a separator no UTF-8 text has */
	return fnv64(h, msg_id);
}

static void dedupe_clear(struct dedupe *d)
{
	d->n = d->pos = 0;
	memset(d->head, 0xff, sizeof d->head);
}

static bool dedupe_has(const struct dedupe *d, uint64_t h)
{
	for (uint32_t i = d->head[h & (DEDUPE_CAP - 1)]; i != DEDUPE_END; i = d->next[i])
		if (d->hash[i] == h)
			return true;
	return false;
}

static void dedupe_add(struct dedupe *d, uint64_t h)
{
	uint32_t slot = d->pos;

	if (d->n == DEDUPE_CAP) {
		/* Forget the oldest: unlink it from its chain. */
		uint32_t *pi = &d->head[d->hash[slot] & (DEDUPE_CAP - 1)];
		while (*pi != slot)
			pi = &d->next[*pi];
		*pi = d->next[slot];
	} else {
		d->n++;
	}
	d->hash[slot] = h;
	d->next[slot] = d->head[h & (DEDUPE_CAP - 1)];
	d->head[h & (DEDUPE_CAP - 1)] = slot;
	d->pos = (d->pos + 1) % DEDUPE_CAP;
}

/* From the database: the newest DEDUPE_CAP messages, oldest first. */
static void dedupe_load(struct storage *st)
{
	sqlite3_stmt *s;
	char sql[200];

	dedupe_clear(st->seen);
	snprintf(sql, sizeof sql, "SELECT src, msg_id, identity, flags FROM (SELECT id, src, msg_id, identity, flags FROM inbox "
		 "ORDER BY id DESC LIMIT %u) ORDER BY id", DEDUPE_CAP);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *src = (const char *)sqlite3_column_text(s, 0);
		const char *id = (const char *)sqlite3_column_text(s, 1);
		if (src && id)
			dedupe_add(st->seen, key_hash(src, id, weak(row_identity(
				(const char *)sqlite3_column_text(s, 2), sqlite3_column_int(s, 3)))));
	}
	sqlite3_finalize(s);
}

/* ---- senders ------------------------------------------------------------------ */

static uint32_t src_bucket(const char *src)
{
	return fnv32(FNV32_BASIS, src) % SENDER_BUCKETS;
}

static struct sender *sender_get(struct storage *st, const char *src, bool create)
{
	struct sender **b = &st->senders[src_bucket(src)], *s;

	for (s = *b; s; s = s->next)
		if (strcmp(s->src, src) == 0)
			return s;
	if (!create)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->src = xstrdup(src);
	s->next = *b;
	*b = s;
	st->nsenders++;
	return s;
}

static void sender_push(struct sender *s, int64_t id, size_t len, bool read)
{
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct held *q = xmalloc(cap * sizeof *q);
		for (size_t i = 0; i < s->len; i++)
			q[i] = s->q[(s->head + i) % s->cap];
		free(s->q);
		s->q = q;
		s->cap = cap;
		s->head = 0;
	}
	s->q[(s->head + s->len) % s->cap] = (struct held){ id, (uint32_t)len, read };
	s->len++;
	s->count++;
	s->bytes += (double)len;
}

static struct held sender_pop(struct sender *s)
{
	struct held h = s->q[s->head];

	s->head = (s->head + 1) % s->cap;
	s->len--;
	s->count--;
	s->bytes -= (double)h.len;
	return h;
}

static void senders_clear(struct storage *st)
{
	for (int i = 0; i < SENDER_BUCKETS; i++) {
		struct sender *s = st->senders[i], *next;
		for (; s; s = next) {
			next = s->next;
			free(s->q);
			free(s->src);
			free(s);
		}
		st->senders[i] = NULL;
	}
	st->nsenders = 0;
}

/* From the database, oldest first (at open, after age retention or a
 * rollback).  The eviction counts survive. */
static void senders_load(struct storage *st)
{
	struct sender *keep = NULL;
	sqlite3_stmt *s;

	/* Keep the counts of evictions: move the senders aside, empty. */
	for (int i = 0; i < SENDER_BUCKETS; i++) {
		struct sender *x = st->senders[i], *next;
		for (; x; x = next) {
			next = x->next;
			if (x->evicted > 0) {
				x->next = keep;
				keep = x;
			} else {
				free(x->q);
				free(x->src);
				free(x);
			}
		}
		st->senders[i] = NULL;
	}
	st->nsenders = 0;
	for (struct sender *x = keep, *next; x; x = next) {
		next = x->next;
		struct sender *n = sender_get(st, x->src, true);
		n->evicted = x->evicted;
		free(x->q);
		free(x->src);
		free(x);
	}
	st->max_id = 0;
	if (sqlite3_prepare_v2(st->db, "SELECT id, src, length(CAST(text AS BLOB)), flags & " STR(INBOX_READ) " FROM inbox "
				       "ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *src = (const char *)sqlite3_column_text(s, 1);
		int64_t id = sqlite3_column_int64(s, 0);
		sender_push(sender_get(st, src ? src : "", true), id,
			    (size_t)sqlite3_column_int64(s, 2), sqlite3_column_int(s, 3) != 0);
		st->max_id = id;
	}
	sqlite3_finalize(s);
}

/* Row id read (id 0: all rows): a binary search of each sender's ring,
 * ids growing along it.  A user's action, not a message's: O(senders). */
static void senders_mark_read(struct storage *st, int64_t id)
{
	for (int i = 0; i < SENDER_BUCKETS; i++)
		for (struct sender *s = st->senders[i]; s; s = s->next) {
			size_t lo = 0, hi = s->len;
			if (id <= 0) {
				for (size_t k = 0; k < s->len; k++)
					s->q[(s->head + k) % s->cap].read = true;
				continue;
			}
			if (s->len == 0 || id < s->q[s->head].id ||
			    id > s->q[(s->head + s->len - 1) % s->cap].id)
				continue;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (s->q[(s->head + mid) % s->cap].id < id)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < s->len && s->q[(s->head + lo) % s->cap].id == id) {
				s->q[(s->head + lo) % s->cap].read = true;
				return;
			}
		}
}

/* ---- the state directory --------------------------------------------------- */

static int mkdirs(const char *path, char *err, size_t errlen)
{
	char tmp[CFG_STR_MAX + 64];

	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %.200s: %s", tmp, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %.200s: %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

int storage_dir_resolve(const char *configured, const char *peer_id, char *out, size_t outlen,
			char *err, size_t errlen)
{
	const char *sd = getenv("STATE_DIRECTORY");
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;

	/* systemd may pass several, colon-separated: ours is the first. */
	if (sd && sd[0] == '/') {
		const char *colon = strchr(sd, ':');
		n = snprintf(out, outlen, "%.*s", colon ? (int)(colon - sd) : (int)strlen(sd), sd);
	} else if (configured && configured[0]) {
		n = snprintf(out, outlen, "%s", configured);
	} else if (xdg && xdg[0] == '/') {
		n = snprintf(out, outlen, "%s/chatp2p/%s", xdg, peer_id);
	} else if (home && home[0] == '/') {
		n = snprintf(out, outlen, "%s/.local/state/chatp2p/%s", home, peer_id);
	} else {
		snprintf(err, errlen, "no state directory: set node.state_dir (or --state-dir)");
		return -1;
	}
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "state directory path too long");
		return -1;
	}
	return 0;
}

/* ---- opening ----------------------------------------------------------------- */

static double double_query(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	double v = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_double(s, 0);
	sqlite3_finalize(s);
	return v;
}

static void finalize_all(struct storage *st)
{
	for (int i = 0; i <= INBOX_ROWS_MAX; i++) {
		sqlite3_finalize(st->ins[i]);
		st->ins[i] = NULL;
	}
	for (int i = 0; i < S__COUNT; i++) {
		sqlite3_finalize(st->stmt[i]);
		st->stmt[i] = NULL;
	}
	for (int i = 0; i < STORAGE_EXT_MAX; i++) {
		sqlite3_finalize(st->ext[i].s);
		st->ext[i].s = NULL;
		st->ext[i].sql = NULL;
	}
}

/* PRAGMAs cannot change inside a transaction: set between iterations. */
static void apply_sync(struct storage *st)
{
	char err[128];

	if (st->db == NULL || st->in_txn || st->applied_full == st->full)
		return;
	if (walbuf_apply(st->db, st->full, err, sizeof err) != 0)
		log_error(MOD, "storage.sync=%s: %s", st->full ? "full" : "normal", err);
	else
		st->applied_full = st->full;
}

/* Open path and bring it to SCHEMA_VERSION.  1 ok, 0 damaged (set it
 * aside), -1 unusable for another reason (err). */
static int try_open(struct storage *st, char *err, size_t errlen)
{
	long long ver = -1, v;
	int rc;

	/* Only this process opens the database; the lock is held while it runs. */
	rc = sql_open_private(st->path, walbuf_vfs(), &st->db, err, errlen);
	if (rc == 1 && sql_int(st->db, "PRAGMA user_version", &ver) != 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
		rc = sqlite3_errcode(st->db) == SQLITE_BUSY ? -1 : 0;
	}
	if (rc != 1) {
		int ec = st->db ? sqlite3_errcode(st->db) : SQLITE_OK;
		/* Another chatp2pd holds it (EXCLUSIVE): not damaged, not ours. */
		if (ec == SQLITE_BUSY || ec == SQLITE_LOCKED)
			snprintf(err, errlen, "locked by another process (another chatp2pd with the "
				 "same state directory?)");
		return rc;
	}
	sqlite3_extended_result_codes(st->db, 0);
	/* Before the first write (the migrations): every commit goes through
	 * walbuf as storage.sync says. */
	st->applied_full = -1;
	apply_sync(st);
	if (st->applied_full < 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
		return 0;
	}
	if (sqlite3_db_readonly(st->db, "main") == 1) {
		snprintf(err, errlen, "the database can only be opened read-only");
		return -1;
	}
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errlen, "schema version %lld is newer than this chatp2pd's (%d)", ver,
			 SCHEMA_VERSION);
		return -1;
	}
	/* A cheap structural check (a truncated or overwritten file fails it),
	 * then the migrations. */
	rc = sql_check_and_migrate(st->db, ver, migrations, SCHEMA_VERSION, err, errlen);
	if (rc != 1)
		return rc;
	if (ver < SCHEMA_VERSION)
		log_info(MOD, "%s: schema version %lld -> %d", st->path, ver, SCHEMA_VERSION);
	for (int i = 0; i < S__COUNT; i++)
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
			return 0;
		}
	if (sql_int(st->db, "SELECT count(*) FROM inbox", &v) != 0) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(st->db));
		return 0;
	}
	st->count = (long)v;
	if (sql_int(st->db, "SELECT count(*) FROM inbox WHERE " UNREAD, &v) == 0)
		st->unread = (long)v;
	st->bytes = double_query(st->db, "SELECT total(length(CAST(text AS BLOB))) FROM inbox");
	dedupe_load(st);
	senders_load(st);
	return 1;
}

static void close_db(struct storage *st)
{
	finalize_all(st);
	if (st->db)
		sqlite3_close_v2(st->db);
	st->db = NULL;
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents);
static void on_age(struct ev_loop *loop, ev_timer *w, int revents);
static void on_reopen(struct ev_loop *loop, ev_timer *w, int revents);
static void trim_age(struct storage *st);

/* The database was lost (deleted, replaced) or cannot be written: nothing
 * more is stored (nor ACKed) until it is open again at its path. */
static void broken(struct storage *st, const char *why)
{
	snprintf(st->error, sizeof st->error, "%s", why);
	snprintf(st->last_error, sizeof st->last_error, "%s", why);
	log_warn(MOD, "%s: %s: nothing is stored (nor ACKed) until it is reopened", st->path, why);
	close_db(st);
	st->in_txn = false;
	if (!ev_is_active(&st->reopen_w)) {
		ev_timer_set(&st->reopen_w, 0, REOPEN_INTERVAL);
		ev_timer_start(st->loop, &st->reopen_w);
	}
}

/* Open the database at its path again (creating directory and file as
 * needed); the listeners put back what lives only in memory now. */
static void on_reopen(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct storage *st = w->data;
	char err[256] = "";
	int rc;

	if (mkdirs(st->dir, err, sizeof err) != 0) {
		snprintf(st->error, sizeof st->error, "%s", err);
		return;
	}
	/* Not set aside here: a file we cannot open now (immutable, a full
	 * disk) is not damaged. */
	rc = try_open(st, err, sizeof err);
	if (rc != 1) {
		close_db(st);
		snprintf(st->error, sizeof st->error, "cannot reopen: %.200s", err);
		return;
	}
	ev_timer_stop(loop, w);
	apply_sync(st);
	st->error[0] = '\0';
	st->reopened++;
	log_warn(MOD, "%s reopened: %ld message(s) in it", st->path, st->count);
	for (int i = 0; i < st->nreopen; i++)
		st->reopen_listeners[i].fn(st->reopen_listeners[i].ctx, true);
}

struct storage *storage_open(struct ev_loop *loop, const struct config *cfg, const char *dir)
{
	struct storage *st;
	char err[256];
	int rc;

	if (strcmp(cfg->storage.sync, "off") == 0) {
		log_info(MOD, "storage.sync is off: no inbox or outbox on disk");
		return NULL;
	}
	if (mkdirs(dir, err, sizeof err) != 0) {
		log_error(MOD, "%s: running without durable storage", err);
		return NULL;
	}
	st = xcalloc(1, sizeof *st);
	st->loop = loop;
	st->seen = xmalloc(sizeof *st->seen);
	dedupe_clear(st->seen);
	snprintf(st->dir, sizeof st->dir, "%s", dir);
	snprintf(st->path, sizeof st->path, "%s/%s", dir, STORAGE_DB_NAME);
	st->full = strcmp(cfg->storage.sync, "full") == 0;
	ev_init(&st->reopen_w, on_reopen);
	st->reopen_w.data = st;
	rc = try_open(st, err, sizeof err);
	if (rc == 0) {
		/* Damaged: keep it for whoever wants to look, start afresh. */
		log_error(MOD, "%s is damaged or unreadable (%s)", st->path, err);
		close_db(st);
		sql_set_aside(st->path, MOD);
		rc = try_open(st, err, sizeof err);
	}
	if (rc != 1) {
		log_error(MOD, "cannot open %s (%s): running without durable storage", st->path, err);
		close_db(st);
		free(st->seen);
		free(st);
		return NULL;
	}
	storage_reconfigure(st, cfg);
	ev_prepare_init(&st->commit_w, on_prepare);
	st->commit_w.data = st;
	ev_prepare_start(loop, &st->commit_w);
	ev_timer_init(&st->age_w, on_age, AGE_CHECK_INTERVAL, AGE_CHECK_INTERVAL);
	st->age_w.data = st;
	ev_timer_start(loop, &st->age_w);
	trim_age(st);
	log_info(MOD, "%s: %ld message(s), %ld unread (synchronous=%s)", st->path, st->count,
		 st->unread, st->full ? "FULL" : "NORMAL");
	return st;
}

void storage_reconfigure(struct storage *st, const struct config *cfg)
{
	if (st == NULL)
		return;
	st->max_messages = cfg->storage.inbox_max_messages;
	st->max_bytes = cfg->storage.inbox_max_bytes;
	st->max_days = cfg->storage.inbox_max_days;
	st->share = cfg->storage.sender_share > 0 ? cfg->storage.sender_share : 1;
	st->full = strcmp(cfg->storage.sync, "full") == 0;
	apply_sync(st);
}

const char *storage_path(const struct storage *st)
{
	return st ? st->path : "";
}

void storage_close(struct storage *st)
{
	if (st == NULL)
		return;
	storage_flush(st);
	ev_prepare_stop(st->loop, &st->commit_w);
	ev_timer_stop(st->loop, &st->age_w);
	ev_timer_stop(st->loop, &st->reopen_w);
	close_db(st);
	senders_clear(st);
	free(st->seen);
	free(st->pend);
	free(st->arena);
	free(st);
}

void storage_on_commit(struct storage *st, storage_commit_fn fn, void *ctx)
{
	if (st == NULL || st->nlisteners == MAX_LISTENERS)
		return;
	st->listeners[st->nlisteners++] = (struct listener){ fn, ctx };
}

void storage_on_reopen(struct storage *st, storage_commit_fn fn, void *ctx)
{
	if (st == NULL || st->nreopen == MAX_LISTENERS)
		return;
	st->reopen_listeners[st->nreopen++] = (struct listener){ fn, ctx };
}

const char *storage_error(const struct storage *st)
{
	return st ? st->error : "";
}

const char *storage_last_error(const struct storage *st)
{
	return st ? st->last_error : "";
}

unsigned long storage_reopened(const struct storage *st)
{
	return st ? st->reopened : 0;
}

bool storage_pending(const struct storage *st)
{
	return st && st->in_txn;
}

/* ---- transactions ------------------------------------------------------------- */

static int step_reset(struct storage *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int begin(struct storage *st)
{
	if (st->db == NULL)
		return -1;
	if (st->in_txn)
		return 0;
	if (step_reset(st, st->stmt[S_BEGIN]) != SQLITE_DONE) {
		log_error(MOD, "BEGIN: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	st->in_txn = true;
	st->failed = false;
	return 0;
}

static void trim(struct storage *st);
static void recount(struct storage *st);
static void pend_write(struct storage *st);

void storage_flush(struct storage *st)
{
	/* Listeners may write again (an outbox row after an ACK): a few rounds. */
	for (int round = 0; st && st->in_txn && round < 4; round++) {
		bool ok;
		int moved = 0;
		const char *lost = NULL;
		char ioerr[200] = "";
		pend_write(st);
		trim(st);
		/* Deleted (state directory removed) or replaced under us: a commit
		 * would go to a file nobody will ever open again. */
		if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
		    moved)
			lost = "the database file was deleted or replaced";
		if (st->failed || lost) {
			step_reset(st, st->stmt[S_ROLLBACK]);
			ok = false;
		} else {
			double t0 = mono_now();
			ok = step_reset(st, st->stmt[S_COMMIT]) == SQLITE_DONE;
			double ms = (mono_now() - t0) * 1000.0;
			if (ms > 100)
				log_warn(MOD, "commit took %.0f ms", ms);
			/* walbuf writes a commit out at its sync: bytes still held
			 * mean the PRAGMAs were lost, and nothing may be ACKed. */
			if (ok && walbuf_held(st->db) > 0) {
				snprintf(ioerr, sizeof ioerr, "a commit returned with its log unwritten");
				log_error(MOD, "COMMIT: %s", ioerr);
				ok = false;
				st->failed_io = true;
			} else if (!ok) {
				snprintf(ioerr, sizeof ioerr, "%s", sqlite3_errmsg(st->db));
				log_error(MOD, "COMMIT: %s", ioerr);
				st->failed_io = true;
				if (sqlite3_get_autocommit(st->db) == 0)
					step_reset(st, st->stmt[S_ROLLBACK]);
			}
		}
		if (!ok && (lost || st->failed_io)) {
			char why[200];
			snprintf(why, sizeof why, "%s", lost ? lost : ioerr[0] ? ioerr : st->last_write_err);
			st->failed_io = false;
			broken(st, why);
		} else if (!ok) {
			/* The in-memory counters and keys counted rolled-back rows. */
			recount(st);
			dedupe_load(st);
		}
		st->in_txn = false;
		st->failed = false;
		for (int i = 0; i < st->nlisteners; i++)
			st->listeners[i].fn(st->listeners[i].ctx, ok);
	}
	if (st)
		apply_sync(st); /* a reload during a transaction */
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	storage_flush(w->data);
}

static bool write_step(struct storage *st, sqlite3_stmt *s, const char *what)
{
	int rc = step_reset(st, s);

	if (rc != SQLITE_DONE) {
		snprintf(st->last_write_err, sizeof st->last_write_err, "%s", sqlite3_errmsg(st->db));
		log_error(MOD, "%s: %s", what, st->last_write_err);
		st->failed = true;
		/* The disk, not the row: reopen rather than fail every write. */
		if (rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_READONLY ||
		    rc == SQLITE_CANTOPEN || rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
			st->failed_io = true;
		return false;
	}
	return true;
}

/* ---- retention ------------------------------------------------------------------ */

static void recount(struct storage *st)
{
	long long v;

	if (sql_int(st->db, "SELECT count(*) FROM inbox", &v) == 0)
		st->count = (long)v;
	if (sql_int(st->db, "SELECT count(*) FROM inbox WHERE " UNREAD, &v) == 0)
		st->unread = (long)v;
	st->bytes = double_query(st->db, "SELECT total(length(CAST(text AS BLOB))) FROM inbox");
	senders_load(st);
}

static bool over_bounds(const struct storage *st)
{
	return (st->max_messages > 0 && st->count > st->max_messages) ||
	       (st->max_bytes > 0 && st->bytes > st->max_bytes);
}

/* Once over a bound, retention trims to 1/64 under it: a full inbox then
 * loses its oldest rows in runs of pages, not a row or two per commit,
 * which rewrote the leftmost leaf, its parent and the freelist page at
 * every commit (measured: 10.5 -> 6.3 log pages per commit of 63 rows).
 * Small bounds (under 4,096 messages, 4 MiB) are kept exactly. */
#define SLACK_DIV 64

static bool above_target(const struct storage *st, long count, double bytes)
{
	long m = st->max_messages;
	double b = st->max_bytes;

	if (m >= 64 * SLACK_DIV)
		m -= m / SLACK_DIV;
	if (b >= 64.0 * SLACK_DIV * 1024)
		b -= b / SLACK_DIV;
	return (st->max_messages > 0 && count > m) || (st->max_bytes > 0 && bytes > b);
}

/* How far a sender with count messages of bytes is over its share of
 * the bounds (> 1: over). */
static double share_of(const struct storage *st, long count, double bytes)
{
	double u = 0;

	if (st->max_messages > 0)
		u = (double)count / (st->share * (double)st->max_messages);
	if (st->max_bytes > 0 && bytes / (st->share * st->max_bytes) > u)
		u = bytes / (st->share * st->max_bytes);
	return u;
}

/* The sender most over its share, NULL when none is. */
static struct sender *victim(const struct storage *st)
{
	struct sender *best = NULL;
	double most = 1;

	for (int i = 0; i < SENDER_BUCKETS; i++)
		for (struct sender *s = st->senders[i]; s; s = s->next) {
			double u = share_of(st, s->count, s->bytes);
			if (u > most && s->len > 0) {
				most = u;
				best = s;
			}
		}
	return best;
}

/* Remove s's oldest messages, as many as keep it over its share and the
 * inbox over a bound (at most budget), in one statement.  Returns how
 * many went.  Its newest row stays if it is the newest of all: ids must
 * never go back (see the schema). */
static long evict(struct storage *st, struct sender *s, long budget)
{
	long k = 0, n = 0, unread = 0;
	double bytes = 0;
	int rc;

	while (k < budget && k < (long)s->len) {
		const struct held *h = &s->q[(s->head + (size_t)k) % s->cap];
		long count = st->count - k;
		double total = st->bytes - bytes;
		if (h->id == st->max_id ||
		    !above_target(st, count, total) ||
		    share_of(st, s->count - k, s->bytes - bytes) <= 1)
			break;
		bytes += h->len;
		unread += !h->read;
		k++;
	}
	if (k == 0)
		return 0;
	int64_t first = s->q[s->head].id, last = s->q[(s->head + (size_t)k - 1) % s->cap].id;
	/* k distinct ids of s in [first, last]: all of them when it is k long. */
	bool run = last - first + 1 == k;
	sqlite3_stmt *q = st->stmt[run ? S_EVICT_RUN : S_EVICT];
	sqlite3_bind_int64(q, 1, first);
	sqlite3_bind_int64(q, 2, last);
	if (!run)
		sqlite3_bind_text(q, 3, s->src, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_DONE)
		n = sqlite3_changes(st->db);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE || n != k) {
		log_error(MOD, "retention: %s", rc != SQLITE_DONE ? sqlite3_errmsg(st->db) :
			  "rows and memory disagree");
		st->failed = true;
		return 0;
	}
	for (long i = 0; i < k; i++)
		sender_pop(s);
	st->count -= k;
	st->bytes -= bytes;
	st->unread -= unread;
	s->evicted += (uint64_t)k;
	st->evicted += (uint64_t)k;
	return k;
}

/* No sender over its share: the oldest messages of all, in one walk from
 * the oldest row (rowid order, no index) and one DELETE. */
static void trim_oldest(struct storage *st, long budget)
{
	sqlite3_stmt *s;
	long n = 0, unread = 0;
	double bytes = 0;
	sqlite3_int64 last = 0;

	if (sqlite3_prepare_v2(st->db, "SELECT id, length(CAST(text AS BLOB)), flags & " STR(INBOX_READ) ", src FROM inbox "
				       "ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		return;
	while (n < budget && n < st->count - 1 &&
	       above_target(st, st->count - n, st->bytes - bytes) &&
	       sqlite3_step(s) == SQLITE_ROW) {
		struct sender *x = sender_get(st, (const char *)sqlite3_column_text(s, 3), false);
		last = sqlite3_column_int64(s, 0);
		bytes += sqlite3_column_double(s, 1);
		unread += sqlite3_column_int(s, 2) == 0;
		n++;
		/* The oldest row of all is its sender's oldest. */
		if (x && x->len > 0 && x->q[x->head].id == last) {
			sender_pop(x);
			x->evicted++;
			st->evicted++;
		}
	}
	sqlite3_finalize(s);
	if (n == 0 || sqlite3_prepare_v2(st->db, "DELETE FROM inbox WHERE id <= ?", -1, &s,
					 NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s, 1, last);
	if (sqlite3_step(s) != SQLITE_DONE) {
		log_error(MOD, "retention: %s", sqlite3_errmsg(st->db));
		st->failed = true;
	} else {
		st->count -= n;
		st->bytes -= bytes;
		st->unread -= unread;
	}
	sqlite3_finalize(s);
}

/* Count and bytes bounds, inside the open transaction, with the counters
 * kept in memory (a count(*) per commit would be a full scan at the
 * bound).  Whoever holds most over its share loses its oldest first, so a
 * flood only ever evicts the flooder's own messages; when no sender is
 * over its share, the oldest of all go. */
static void trim(struct storage *st)
{
	long budget = TRIM_BATCH;

	while (!st->failed && budget > 0 && over_bounds(st)) {
		struct sender *v = victim(st);
		if (v == NULL) {
			trim_oldest(st, budget);
			return;
		}
		long n = evict(st, v, budget);
		if (n == 0)
			return; /* nothing could go (only the newest row left), or an error */
		budget -= n;
	}
}

static void trim_age(struct storage *st)
{
	sqlite3_stmt *s;

	if (st->max_days <= 0)
		return;
	if (begin(st) != 0)
		return;
	pend_write(st);
	/* Messages are stored in arrival order: the old ones are those before
	 * the first recent one (a walk from the oldest, no index needed). */
	if (sqlite3_prepare_v2(st->db, "DELETE FROM inbox WHERE id < coalesce((SELECT id FROM inbox "
			       "WHERE at >= ?1 ORDER BY id LIMIT 1), (SELECT max(id) FROM inbox))",
			       -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_double(s, 1, wall_now() - st->max_days * 86400.0);
	if (sqlite3_step(s) != SQLITE_DONE)
		log_error(MOD, "retention: %s", sqlite3_errmsg(st->db));
	else if (sqlite3_changes(st->db) > 0) {
		log_info(MOD, "retention: %d message(s) older than %g days removed",
			 sqlite3_changes(st->db), st->max_days);
		recount(st);
	}
	sqlite3_finalize(s);
}

static void on_age(struct ev_loop *loop, ev_timer *w, int revents)
{
	trim_age(w->data);
}

/* ---- inbox -------------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static uint32_t arena_put(struct storage *st, const char *v)
{
	if (v == NULL)
		return NO_STR;
	size_t n = strlen(v) + 1;
	if (st->arena_len + n > st->arena_cap) {
		size_t cap = st->arena_cap ? st->arena_cap : 16384;
		while (cap < st->arena_len + n)
			cap *= 2;
		st->arena = xrealloc(st->arena, cap);
		st->arena_cap = cap;
	}
	memcpy(st->arena + st->arena_len, v, n);
	st->arena_len += n;
	return (uint32_t)(st->arena_len - n);
}

static void bind_arena(struct storage *st, sqlite3_stmt *s, int i, uint32_t off)
{
	bind_text(s, i, off == NO_STR ? NULL : st->arena + off);
}

/* INSERT of n rows (1..INBOX_ROWS_MAX), prepared once. */
static sqlite3_stmt *insert_stmt(struct storage *st, int n)
{
	char sql[sizeof INBOX_INSERT + INBOX_ROWS_MAX * 32];
	size_t len;

	if (st->ins[n])
		return st->ins[n];
	len = (size_t)snprintf(sql, sizeof sql, "%s", INBOX_INSERT);
	for (int r = 0; r < n; r++)
		for (int c = 0; c < INBOX_COLS; c++)
			len += (size_t)snprintf(sql + len, sizeof sql - len, "%s?%s",
						c ? "," : r ? ",(" : "(", c == INBOX_COLS - 1 ? ")" : "");
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->ins[n], NULL) !=
	    SQLITE_OK) {
		snprintf(st->last_write_err, sizeof st->last_write_err, "%s", sqlite3_errmsg(st->db));
		log_error(MOD, "inbox: %s", st->last_write_err);
		sqlite3_finalize(st->ins[n]);
		st->ins[n] = NULL;
	}
	return st->ins[n];
}

/* Write the rows waiting in memory, INBOX_ROWS_MAX to a statement.  Anything
 * that reads or changes the inbox inside the transaction calls this first;
 * a failure fails the transaction (rolled back at the commit). */
static void pend_write(struct storage *st)
{
	size_t i = 0;

	while (i < st->npend && !st->failed) {
		int rows = st->npend - i >= INBOX_ROWS_MAX ? INBOX_ROWS_MAX : (int)(st->npend - i);
		sqlite3_stmt *s = insert_stmt(st, rows);
		if (s == NULL) {
			st->failed = true;
			break;
		}
		for (int r = 0; r < rows; r++, i++) {
			const struct pend_row *p = &st->pend[i];
			int b = r * INBOX_COLS;
			sqlite3_bind_int64(s, b + 1, p->id);
			bind_arena(st, s, b + 2, p->src);
			bind_arena(st, s, b + 3, p->dst);
			bind_arena(st, s, b + 4, p->msg_id);
			bind_arena(st, s, b + 5, p->text);
			sqlite3_bind_double(s, b + 6, p->at);
			sqlite3_bind_int(s, b + 7, p->flags);
			bind_arena(st, s, b + 8, p->identity);
			bind_arena(st, s, b + 9, p->fingerprint);
		}
		write_step(st, s, "inbox");
	}
	st->npend = 0;
	st->arena_len = 0;
}

int storage_inbox_add(struct storage *st, const struct stored_msg *m, int64_t *id_out)
{
	if (st == NULL || st->db == NULL)
		return -1;
	uint64_t h = key_hash(m->src, m->msg_id, weak(m->identity));
	if (dedupe_has(st->seen, h))
		return 0;
	if (begin(st) != 0)
		return -1;
	if (st->npend == st->pend_cap) {
		st->pend_cap = st->pend_cap ? st->pend_cap * 2 : 256;
		st->pend = xrealloc(st->pend, st->pend_cap * sizeof *st->pend);
	}
	/* The id is ours to give: the newest row's + 1 (see the schema). */
	int code = identity_code(m->identity);
	st->pend[st->npend++] = (struct pend_row){
		.id = ++st->max_id, .at = m->at,
		.flags = (m->pub ? INBOX_PUB : 0) | (m->src_mismatch ? INBOX_SRC_MISMATCH : 0) |
			 (m->dst_mismatch ? INBOX_DST_MISMATCH : 0) | code << INBOX_ID_SHIFT,
		.src = arena_put(st, m->src), .dst = arena_put(st, m->dst),
		.msg_id = arena_put(st, m->msg_id), .text = arena_put(st, m->text),
		.identity = code ? NO_STR : arena_put(st, m->identity),
		.fingerprint = arena_put(st, m->fingerprint),
	};
	dedupe_add(st->seen, h);
	if (id_out)
		*id_out = st->max_id;
	size_t len = strlen(m->text);
	sender_push(sender_get(st, m->src, true), st->max_id, len, false);
	st->count++;
	st->unread++;
	st->bytes += (double)len;
	/* Bounded: a long iteration writes as it goes. */
	if (st->npend >= 4096 || st->arena_len >= (4u << 20))
		pend_write(st);
	return 1;
}

long storage_inbox_list(struct storage *st, const struct inbox_filter *f, storage_msg_fn fn,
			void *ctx)
{
	char sql[512];
	size_t len = 0;
	sqlite3_stmt *s;
	long n = 0;
	/* An explicit since (an id, 0 included, or a time) pages from there;
	 * without one, the newest `limit`. */
	bool newest = !f->since_given && f->since_id <= 0 && f->since_time <= 0;
	int limit = f->limit > 0 ? f->limit : -1;

	if (st == NULL || st->db == NULL)
		return -1;
	pend_write(st);
	len += (size_t)snprintf(sql + len, sizeof sql - len,
				"SELECT id, src, dst, msg_id, text, at, flags, identity, fingerprint "
				"FROM inbox WHERE id > ?1");
	if (f->unread_only)
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND " UNREAD);
	if (f->from)
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND src = ?2");
	if (f->since_time > 0)
		len += (size_t)snprintf(sql + len, sizeof sql - len, " AND at > ?3");
	/* Without since: the newest `limit`, shown oldest first. */
	if (newest)
		snprintf(sql + len, sizeof sql - len, " ORDER BY id DESC LIMIT ?4");
	else
		snprintf(sql + len, sizeof sql - len, " ORDER BY id LIMIT ?4");
	char outer[640];
	snprintf(outer, sizeof outer, newest ? "SELECT * FROM (%s) ORDER BY id" : "%s", sql);
	if (sqlite3_prepare_v2(st->db, outer, -1, &s, NULL) != SQLITE_OK) {
		log_error(MOD, "inbox query: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	sqlite3_bind_int64(s, 1, f->since_id > 0 ? f->since_id : 0);
	if (f->from)
		sqlite3_bind_text(s, 2, f->from, -1, SQLITE_STATIC);
	if (f->since_time > 0)
		sqlite3_bind_double(s, 3, f->since_time);
	sqlite3_bind_int(s, 4, limit);
	bool go = true;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int flags = sqlite3_column_int(s, 6);
		struct stored_msg m = {
			.id = sqlite3_column_int64(s, 0),
			.src = (const char *)sqlite3_column_text(s, 1),
			.dst = (const char *)sqlite3_column_text(s, 2),
			.msg_id = (const char *)sqlite3_column_text(s, 3),
			.text = (const char *)sqlite3_column_text(s, 4),
			.at = sqlite3_column_double(s, 5),
			.pub = (flags & INBOX_PUB) != 0,
			.read = (flags & INBOX_READ) != 0,
			.src_mismatch = (flags & INBOX_SRC_MISMATCH) != 0,
			.dst_mismatch = (flags & INBOX_DST_MISMATCH) != 0,
			.identity = row_identity((const char *)sqlite3_column_text(s, 7), flags),
			.fingerprint = (const char *)sqlite3_column_text(s, 8),
		};
		n++;
		if (go)
			go = fn(ctx, &m);
	}
	if (rc != SQLITE_DONE) {
		log_error(MOD, "inbox query: %s", sqlite3_errmsg(st->db));
		n = -1;
	}
	sqlite3_finalize(s);
	return n;
}

long storage_inbox_mark_read(struct storage *st, int64_t id)
{
	sqlite3_stmt *s;
	long n;

	if (st == NULL || begin(st) != 0)
		return -1;
	pend_write(st);
	s = st->stmt[id > 0 ? S_MARK_ONE : S_MARK_ALL];
	if (id > 0)
		sqlite3_bind_int64(s, 1, id);
	if (!write_step(st, s, "read"))
		return -1;
	n = sqlite3_changes(st->db);
	st->unread -= n;
	if (st->unread < 0)
		st->unread = 0;
	if (n > 0)
		senders_mark_read(st, id);
	return n;
}

long storage_inbox_delete(struct storage *st, int64_t id)
{
	static const char sql[] = "DELETE FROM inbox WHERE id = ?";
	sqlite3_stmt *s;
	long n;

	/* storage_stmt writes the waiting rows first. */
	if (st == NULL || begin(st) != 0 || (s = storage_stmt(st, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (!write_step(st, s, "delete"))
		return -1;
	n = sqlite3_changes(st->db);
	if (n > 0)
		recount(st); /* the counters: one row, read or not, of some size */
	return n;
}

long storage_unread(const struct storage *st)
{
	return st ? st->unread : 0;
}

long storage_inbox_count(const struct storage *st)
{
	return st ? st->count : 0;
}

uint64_t storage_evicted(const struct storage *st)
{
	return st ? st->evicted : 0;
}

#define TOP_MAX 32

void storage_top_evicted(const struct storage *st, int max, storage_sender_fn fn, void *ctx)
{
	const struct sender *top[TOP_MAX];
	int n = 0;

	if (st == NULL)
		return;
	if (max > TOP_MAX)
		max = TOP_MAX;
	/* Insertion into a short sorted array: O(senders * max). */
	for (int i = 0; i < SENDER_BUCKETS; i++)
		for (const struct sender *s = st->senders[i]; s; s = s->next) {
			if (s->evicted == 0 || (n == max && top[n - 1]->evicted >= s->evicted))
				continue;
			int j = n < max ? n++ : n - 1;
			while (j > 0 && top[j - 1]->evicted < s->evicted) {
				top[j] = top[j - 1];
				j--;
			}
			top[j] = s;
		}
	for (int i = 0; i < n; i++)
		fn(ctx, top[i]->src, top[i]->count, top[i]->evicted);
}

/* ---- outbox ------------------------------------------------------------------- */

int storage_outbox_add(struct storage *st, const struct stored_out *o, int64_t *row)
{
	sqlite3_stmt *s;

	if (st == NULL || begin(st) != 0)
		return -1;
	s = st->stmt[S_OUT_ADD];
	bind_text(s, 1, o->msg_id);
	bind_text(s, 2, o->to);
	bind_text(s, 3, o->text);
	sqlite3_bind_double(s, 4, o->created);
	sqlite3_bind_double(s, 5, o->deadline);
	sqlite3_bind_int(s, 6, o->attempts);
	if (!write_step(st, s, "outbox"))
		return -1;
	if (row)
		*row = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int storage_outbox_attempt(struct storage *st, int64_t row, int attempts)
{
	sqlite3_stmt *s;

	if (st == NULL || row <= 0 || begin(st) != 0)
		return -1;
	s = st->stmt[S_OUT_ATTEMPT];
	sqlite3_bind_int(s, 1, attempts);
	sqlite3_bind_int64(s, 2, row);
	return write_step(st, s, "outbox") ? 0 : -1;
}

int storage_outbox_remove(struct storage *st, int64_t row)
{
	sqlite3_stmt *s;

	if (st == NULL || row <= 0 || begin(st) != 0)
		return -1;
	s = st->stmt[S_OUT_REMOVE];
	sqlite3_bind_int64(s, 1, row);
	return write_step(st, s, "outbox") ? 0 : -1;
}

int storage_outbox_load(struct storage *st, storage_out_fn fn, void *ctx)
{
	sqlite3_stmt *s;
	int n = 0;

	if (st == NULL || st->db == NULL)
		return 0;
	if (sqlite3_prepare_v2(st->db, "SELECT msg_id, dst, text, created, deadline, attempts, id "
				       "FROM outbox ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		return -1;
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct stored_out o = {
			.msg_id = (const char *)sqlite3_column_text(s, 0),
			.to = (const char *)sqlite3_column_text(s, 1),
			.text = (const char *)sqlite3_column_text(s, 2),
			.created = sqlite3_column_double(s, 3),
			.deadline = sqlite3_column_double(s, 4),
			.attempts = sqlite3_column_int(s, 5),
			.row = sqlite3_column_int64(s, 6),
		};
		fn(ctx, &o);
		n++;
	}
	sqlite3_finalize(s);
	return n;
}

/* ---- for the other files of store/ ---------------------------------------------- */

sqlite3_stmt *storage_stmt(struct storage *st, const char *sql)
{
	int i;

	if (st == NULL || st->db == NULL)
		return NULL;
	pend_write(st); /* whatever it reads or changes sees every row */
	for (i = 0; i < STORAGE_EXT_MAX && st->ext[i].sql; i++)
		if (st->ext[i].sql == sql) {
			sqlite3_reset(st->ext[i].s);
			sqlite3_clear_bindings(st->ext[i].s);
			return st->ext[i].s;
		}
	if (i == STORAGE_EXT_MAX) {
		log_error(MOD, "too many statements (STORAGE_EXT_MAX)");
		return NULL;
	}
	if (sqlite3_prepare_v2(st->db, sql, -1, &st->ext[i].s, NULL) != SQLITE_OK) {
		log_debug(MOD, "prepare: %s", sqlite3_errmsg(st->db));
		sqlite3_finalize(st->ext[i].s);
		st->ext[i].s = NULL;
		return NULL;
	}
	st->ext[i].sql = sql;
	return st->ext[i].s;
}

int storage_write_begin(struct storage *st)
{
	return st && st->db ? begin(st) : -1;
}

int storage_exec(struct storage *st, const char *sql)
{
	char err[256];

	if (st == NULL || st->db == NULL)
		return -1;
	pend_write(st);
	if (sql_exec(st->db, sql, err, sizeof err) != 0) {
		log_error(MOD, "%s", err);
		return -1;
	}
	return 0;
}
