/* The durable store (chatp2pd/store/storage.c) on a real SQLite file in a temporary
 * directory: group commit and its listeners, duplicates by (src, msg_id)
 * across a reopen, listing filters, read marks, retention by count and
 * bytes, the outbox rows, the migrations (from versions 0, 1 and 4, and one
 * without room to be written), a damaged file set aside, and the log read
 * back from walbuf's mirror (across restarts, after a crash, past its cap). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "config.h"
#include "store/storage.h"

struct fx {
	char dir[64];
	struct config cfg;
	struct ev_loop *loop;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	snprintf(f->dir, sizeof f->dir, "/tmp/chatp2p-storage-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	config_defaults(&f->cfg);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static int add(struct storage *st, const char *src, const char *msg_id, const char *text,
	       int64_t *id)
{
	struct stored_msg m = { .src = src, .dst = "bob@CIC", .msg_id = msg_id, .text = text,
				.at = (double)time(NULL) };

	return storage_inbox_add(st, &m, id);
}

/* Messages prefix<from> .. prefix<to - 1> from src; how many were new. */
static int add_run(struct storage *st, const char *src, const char *prefix, int from, int to,
		   const char *text)
{
	char id[32];
	int n = 0;

	for (int i = from; i < to; i++) {
		snprintf(id, sizeof id, "%s%d", prefix, i);
		n += add(st, src, id, text, NULL) == 1;
	}
	return n;
}

struct commits {
	int ok, failed;
};

static void on_commit(void *ctx, bool ok)
{
	struct commits *c = ctx;

	if (ok)
		c->ok++;
	else
		c->failed++;
}

struct collected {
	char texts[64][32];
	int64_t ids[64];
	int n;
};

static bool collect(void *ctx, const struct stored_msg *m)
{
	struct collected *c = ctx;

	if (c->n < 64) {
		snprintf(c->texts[c->n], sizeof c->texts[0], "%s", m->text);
		c->ids[c->n++] = m->id;
	}
	return true;
}

static void test_group_commit_and_dedupe_across_reopen(void **state)
{
	struct fx *f = *state;
	struct commits cm = { 0, 0 };
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	int64_t id1 = 0, id2 = 0;

	assert_non_null(st);
	storage_on_commit(st, on_commit, &cm);
	assert_int_equal(add(st, "alice@CIC", "m1", "one", &id1), 1);
	assert_int_equal(add(st, "alice@CIC", "m1", "one again", NULL), 0); /* same txn */
	assert_int_equal(add(st, "carol@CIC", "m1", "other sender", &id2), 1);
	assert_true(storage_pending(st));
	assert_int_equal(cm.ok, 0);
	/* One loop iteration: the prepare watcher commits, once. */
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_false(storage_pending(st));
	assert_int_equal(cm.ok, 1);
	assert_true(id2 > id1);
	assert_int_equal(storage_unread(st), 2);
	storage_close(st);

	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	assert_int_equal(add(st, "alice@CIC", "m1", "after restart", NULL), 0);
	assert_int_equal(storage_inbox_count(st), 2);
	assert_int_equal(storage_unread(st), 2);
	storage_close(st);
}

static bool keep_identity(void *ctx, const struct stored_msg *m)
{
	char *out = ctx;

	strcat(out, m->identity ? m->identity : "null");
	strcat(out, m->dst_mismatch ? "!" : "");
	strcat(out, ",");
	return true;
}

/* Issue 17 (PROTOCOL.md §5.1): an unbacked claim's msg_id does not hide
 * the backed sender's message with that id, also after a reopen; each row
 * keeps its identity and dst_mismatch (schema 3). */
static void test_dedupe_by_identity_strength(void **state)
{
	struct fx *f = *state;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	struct stored_msg evil = { .src = "bob@CIC", .dst = "zoe@CIC", .msg_id = "x1", .text = "EVIL", .at = (double)time(NULL),
				   .identity = "unbacked", .dst_mismatch = true };
	struct stored_msg real = { .src = "bob@CIC", .dst = "zoe@CIC", .msg_id = "x1", .text = "REAL", .at = (double)time(NULL),
				   .identity = "backed" };
	struct inbox_filter all = { .limit = 10 };
	char ids[128] = "";

	assert_int_equal(storage_inbox_add(st, &evil, NULL), 1);
	assert_int_equal(storage_inbox_add(st, &real, NULL), 1);
	assert_int_equal(storage_inbox_add(st, &real, NULL), 0);
	assert_int_equal(storage_inbox_add(st, &evil, NULL), 0);
	storage_flush(st);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_int_equal(storage_inbox_add(st, &real, NULL), 0);
	assert_int_equal(storage_inbox_add(st, &evil, NULL), 0);
	assert_int_equal(storage_inbox_list(st, &all, keep_identity, ids), 2);
	assert_string_equal(ids, "unbacked!,backed,");
	/* Known names are kept as a code, any other as text: both read back. */
	struct stored_msg odd = real, seen = real;
	odd.msg_id = "x2";
	odd.identity = "some-future-name";
	seen.msg_id = "x3";
	seen.identity = "verified";
	assert_int_equal(storage_inbox_add(st, &odd, NULL), 1);
	assert_int_equal(storage_inbox_add(st, &seen, NULL), 1);
	storage_flush(st);
	ids[0] = '\0';
	assert_int_equal(storage_inbox_list(st, &all, keep_identity, ids), 4);
	assert_string_equal(ids, "unbacked!,backed,some-future-name,verified,");
	storage_close(st);
}

static void test_list_filters_and_read(void **state)
{
	struct fx *f = *state;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	char id[16], text[16];
	int64_t first = 0;

	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof id, "m%d", i);
		snprintf(text, sizeof text, "t%d", i);
		add(st, i % 2 ? "alice@CIC" : "carol@CIC", id, text, i == 0 ? &first : NULL);
	}
	struct inbox_filter all = { .limit = 0 };
	struct collected c = { .n = 0 };
	assert_int_equal(storage_inbox_list(st, &all, collect, &c), 10);
	assert_string_equal(c.texts[0], "t0");
	assert_string_equal(c.texts[9], "t9");

	struct inbox_filter newest = { .limit = 3 };
	c.n = 0;
	storage_inbox_list(st, &newest, collect, &c);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.texts[0], "t7"); /* the newest 3, oldest first */

	struct inbox_filter from = { .from = "alice@CIC", .since_id = first, .limit = 2 };
	c.n = 0;
	storage_inbox_list(st, &from, collect, &c);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.texts[0], "t1");
	assert_string_equal(c.texts[1], "t3");

	assert_int_equal(storage_inbox_mark_read(st, first), 1);
	assert_int_equal(storage_inbox_mark_read(st, first), 0);
	assert_int_equal(storage_unread(st), 9);
	struct inbox_filter unread = { .unread_only = true };
	c.n = 0;
	assert_int_equal(storage_inbox_list(st, &unread, collect, &c), 9);
	assert_int_equal(storage_inbox_mark_read(st, 0), 9);
	assert_int_equal(storage_unread(st), 0);
	storage_close(st);
}

/* A big bound, once passed, is trimmed to 1/64 under it: a run of rows
 * per trim, not one per commit.  Never over the bound after a commit,
 * never under bound - bound/64 once full, the oldest first. */
static void test_retention_trims_big_bounds_in_runs(void **state)
{
	struct fx *f = *state;
	enum { BOUND = 6400, LOW = BOUND - BOUND / 64 };
	char id[16];
	int next = 0;

	f->cfg.storage.inbox_max_messages = BOUND;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	for (; next < BOUND + 1; next++) {
		snprintf(id, sizeof id, "m%d", next);
		add(st, "alice@CIC", id, "0123456789", NULL);
	}
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), LOW);
	/* Under the bound again: nothing more goes until it is passed. */
	for (int round = 0; round < 400; round++) {
		for (int i = 0; i < 50; i++, next++) {
			snprintf(id, sizeof id, "m%d", next);
			add(st, "alice@CIC", id, "0123456789", NULL);
		}
		storage_flush(st);
		long n = storage_inbox_count(st);
		assert_true(n <= BOUND);
		assert_true(n >= LOW);
	}
	struct inbox_filter oldest = { .since_given = true, .limit = 1 };
	struct collected c = { .n = 0 };
	storage_inbox_list(st, &oldest, collect, &c);
	assert_int_equal(c.n, 1);
	/* What is left is the newest: ids are given in order from 1. */
	assert_int_equal(c.ids[0], next - storage_inbox_count(st) + 1);
	storage_close(st);
}

/* The bytes bound the same way: 4 MiB of 4 KiB texts is 1,024; one more,
 * and it is trimmed to 4 MiB - 64 KiB, 1,008 texts. */
static void test_retention_trims_big_byte_bounds_in_runs(void **state)
{
	struct fx *f = *state;
	static char big[4097];
	char id[16];

	memset(big, 'b', 4096);
	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 4194304;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	for (int next = 0; next < 1025; next++) {
		snprintf(id, sizeof id, "m%d", next);
		add(st, "alice@CIC", id, big, NULL);
	}
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 1008);
	storage_close(st);
}

static void test_retention_count_and_bytes(void **state)
{
	struct fx *f = *state;

	f->cfg.storage.inbox_max_messages = 5;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	add_run(st, "alice@CIC", "m", 0, 12, "0123456789");
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 5);
	struct inbox_filter all = { 0 };
	struct collected c = { .n = 0 };
	storage_inbox_list(st, &all, collect, &c);
	assert_int_equal(c.n, 5);

	/* Bytes: 10 per message, 25 allowed: the oldest go until 2 are left. */
	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 25;
	storage_reconfigure(st, &f->cfg);
	add(st, "alice@CIC", "last", "0123456789", NULL);
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 2);
	storage_close(st);
}

struct outs {
	int n;
	char ids[8][16];
	int attempts[8];
};

static void collect_out(void *ctx, const struct stored_out *o)
{
	struct outs *os = ctx;

	snprintf(os->ids[os->n], sizeof os->ids[0], "%s", o->msg_id);
	os->attempts[os->n++] = o->attempts;
}

struct evicted_seen {
	char src[32];
	long stored;
	uint64_t evicted;
	int n;
};

static void on_evicted(void *ctx, const char *src, long stored, uint64_t evicted)
{
	struct evicted_seen *e = ctx;

	snprintf(e->src, sizeof e->src, "%s", src);
	e->stored = stored;
	e->evicted = evicted;
	e->n++;
}

/* One sender's flood takes its own oldest messages, not the others'. */
/* A flooder whose messages are interleaved with another sender's: its
 * oldest go, one by one among the other's ids, and none of the other's
 * (a DELETE of the id range alone would take them too). */
static void test_retention_interleaved_senders(void **state)
{
	struct fx *f = *state;
	char id[16];

	f->cfg.storage.inbox_max_messages = 20;
	f->cfg.storage.sender_share = 0.5;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof id, "a%d", i);
		add(st, "alice@CIC", id, "keep", NULL);
		snprintf(id, sizeof id, "f%d", i);
		add(st, "mallory@CIC", id, "flood", NULL);
	}
	add_run(st, "mallory@CIC", "f", 10, 15, "flood");
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 20);
	struct inbox_filter from = { .from = "alice@CIC", .since_given = true };
	struct collected c = { .n = 0 };
	storage_inbox_list(st, &from, collect, &c);
	assert_int_equal(c.n, 10);
	assert_int_equal(storage_evicted(st), 5);
	storage_close(st);
}

static void test_retention_fair_share(void **state)
{
	struct fx *f = *state;
	char id[16];

	f->cfg.storage.inbox_max_messages = 10;
	f->cfg.storage.sender_share = 0.25;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	add_run(st, "alice@CIC", "a", 0, 3, "keep");
	storage_flush(st);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof id, "f%d", i);
		add(st, "mallory@CIC", id, "flood", NULL);
		if (i % 7 == 0)
			storage_flush(st);
	}
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 10);
	struct inbox_filter from = { .from = "alice@CIC" };
	struct collected c = { .n = 0 };
	storage_inbox_list(st, &from, collect, &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(storage_unread(st), 10);
	assert_int_equal(storage_evicted(st), 33);
	struct evicted_seen e = { .n = 0 };
	storage_top_evicted(st, 10, on_evicted, &e);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.src, "mallory@CIC");
	assert_int_equal(e.stored, 7);
	assert_int_equal(e.evicted, 33);
	/* The per-sender state is rebuilt from the database at open. */
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	add(st, "mallory@CIC", "f-last", "flood", NULL);
	storage_flush(st);
	c.n = 0;
	storage_inbox_list(st, &from, collect, &c);
	assert_int_equal(c.n, 3);
	assert_int_equal(storage_inbox_count(st), 10);
	/* Nobody over its share: the oldest of all go (alice holds 3 of 4 here). */
	f->cfg.storage.inbox_max_messages = 4;
	f->cfg.storage.sender_share = 1;
	storage_reconfigure(st, &f->cfg);
	add(st, "carol@CIC", "c1", "x", NULL);
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 4);
	storage_close(st);
}

/* Retention keeps the unread count right when it evicts read messages
 * (their read state is kept in memory, not asked of the rows it deletes). */
static void test_retention_counts_read(void **state)
{
	struct fx *f = *state;
	char id[16];
	int64_t ids[8];

	f->cfg.storage.inbox_max_messages = 5;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "m%d", i);
		add(st, "alice@CIC", id, "0123456789", &ids[i]);
	}
	storage_flush(st);
	assert_int_equal(storage_inbox_mark_read(st, ids[0]), 1);
	assert_int_equal(storage_inbox_mark_read(st, ids[1]), 1);
	storage_flush(st);
	assert_int_equal(storage_unread(st), 3);
	/* Three more: the three oldest go, two of them read. */
	for (int i = 5; i < 8; i++) {
		snprintf(id, sizeof id, "m%d", i);
		add(st, "alice@CIC", id, "0123456789", &ids[i]);
	}
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 5);
	assert_int_equal(storage_unread(st), 5);
	/* All read, then one more: the one evicted was read. */
	assert_int_equal(storage_inbox_mark_read(st, 0), 5);
	add(st, "alice@CIC", "m8", "0123456789", NULL);
	storage_flush(st);
	assert_int_equal(storage_inbox_count(st), 5);
	assert_int_equal(storage_unread(st), 1);
	/* The same after a reopen (read states loaded from the rows). */
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	add(st, "alice@CIC", "m9", "0123456789", NULL);
	storage_flush(st);
	assert_int_equal(storage_unread(st), 2);
	storage_close(st);
}

/* The duplicate set holds the newest 131,072 stored keys (chained by
 * bucket, the oldest removed as new ones come): every recent key is still found
 * after many removals, and the oldest are forgotten, in arrival order. */
static void test_dedupe_window(void **state)
{
	struct fx *f = *state;
	enum { CAP = 131072, EXTRA = 3000 };
	char id[24];

	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 0;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	for (int i = 0; i < CAP + EXTRA; i++) {
		snprintf(id, sizeof id, "k%d", i);
		assert_int_equal(add(st, "alice@CIC", id, "x", NULL), 1);
		if (i % 4096 == 4095)
			storage_flush(st);
	}
	storage_flush(st);
	/* Every key of the window, the newest first (adding none). */
	for (int i = CAP + EXTRA - 1; i >= EXTRA; i--) {
		snprintf(id, sizeof id, "k%d", i);
		if (add(st, "alice@CIC", id, "x", NULL) != 0)
			fail_msg("%s not found", id);
	}
	/* The same msg_id from another sender is another message. */
	assert_int_equal(add(st, "bob@CIC", "k5000", "x", NULL), 1);
	/* The oldest were forgotten: stored again (each pushes one more out). */
	assert_int_equal(add_run(st, "alice@CIC", "k", 0, 100, "x"), 100);
	storage_flush(st);
	snprintf(id, sizeof id, "k%d", CAP + EXTRA - 1);
	assert_int_equal(add(st, "alice@CIC", id, "x", NULL), 0);
	storage_close(st);
}

/* A database as an older chatp2pd left it: sql run on a new file. */
static void old_db(struct fx *f, const char *sql)
{
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof path, "%s/%s", f->dir, STORAGE_DB_NAME);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Schema version 4, as chatp2pd up to issue 18 created it. */
#define SCHEMA_V4 \
	"CREATE TABLE inbox(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, src TEXT NOT NULL," \
	" dst TEXT, msg_id TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL," \
	" read INTEGER NOT NULL DEFAULT 0, src_mismatch INTEGER NOT NULL DEFAULT 0," \
	" identity TEXT, dst_mismatch INTEGER NOT NULL DEFAULT 0, fingerprint TEXT);" \
	"CREATE TABLE outbox(id INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, dst TEXT NOT NULL," \
	" text TEXT NOT NULL, created REAL NOT NULL, deadline REAL NOT NULL," \
	" attempts INTEGER NOT NULL DEFAULT 0);"

/* A version 4 database (kind, read and the mismatches as columns of their
 * own) keeps every message, its id and every flag through migration 5. */
struct rows {
	struct stored_msg m[4];
	char text[4][16], identity[4][16], fingerprint[4][16];
	int n;
};

static bool collect_rows(void *ctx, const struct stored_msg *m)
{
	struct rows *r = ctx;
	if (r->n < 4) {
		int i = r->n++;
		r->m[i] = *m;
		snprintf(r->text[i], sizeof r->text[i], "%s", m->text);
		snprintf(r->identity[i], sizeof r->identity[i], "%s", m->identity ? m->identity : "-");
		snprintf(r->fingerprint[i], sizeof r->fingerprint[i], "%s",
			 m->fingerprint ? m->fingerprint : "-");
	}
	return true;
}

static void test_inbox_migration_from_v4(void **state)
{
	struct fx *f = *state;
	old_db(f, SCHEMA_V4
		"INSERT INTO inbox VALUES(7, 'message', 'alice@CIC', 'bob@CIC', 'a1', 'plain',"
		" strftime('%s', 'now') + 10,"
		" 0, 0, 'backed', 0, NULL);"
		"INSERT INTO inbox VALUES(9, 'pub', 'carol@CIC', '#cic', 'c1', 'read pub',"
		" strftime('%s', 'now') + 11,"
		" 1, 0, 'pinned', 0, 'ab12');"
		"INSERT INTO inbox VALUES(12, 'message', 'mallory@CIC', 'eve@CIC', 'm1', 'odd',"
		" strftime('%s', 'now') + 12,"
		" 0, 1, 'unbacked', 1, NULL);"
		"INSERT INTO inbox VALUES(13, 'message', 'old@CIC', 'bob@CIC', 'o1', 'old',"
		" strftime('%s', 'now') + 13,"
		" 1, 0, NULL, 0, NULL);"
		"PRAGMA user_version=4;");
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	assert_int_equal(storage_inbox_count(st), 4);
	assert_int_equal(storage_unread(st), 2);
	struct inbox_filter all = { .since_given = true };
	struct rows r = { .n = 0 };
	assert_int_equal(storage_inbox_list(st, &all, collect_rows, &r), 4);
	int64_t ids[4] = { 7, 9, 12, 13 };
	bool pub[4] = { false, true, false, false }, read[4] = { false, true, false, true };
	bool srcm[4] = { false, false, true, false }, dstm[4] = { false, false, true, false };
	const char *ident[4] = { "backed", "pinned", "unbacked", "-" };
	const char *fp[4] = { "-", "ab12", "-", "-" };
	const char *text[4] = { "plain", "read pub", "odd", "old" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r.m[i].id, ids[i]);
		assert_int_equal(r.m[i].pub, pub[i]);
		assert_int_equal(r.m[i].read, read[i]);
		assert_int_equal(r.m[i].src_mismatch, srcm[i]);
		assert_int_equal(r.m[i].dst_mismatch, dstm[i]);
		assert_string_equal(r.identity[i], ident[i]);
		assert_string_equal(r.fingerprint[i], fp[i]);
		assert_string_equal(r.text[i], text[i]);
	}
	/* Unread only, and a read mark, on the new column. */
	struct inbox_filter unread = { .since_given = true, .unread_only = true };
	r.n = 0;
	assert_int_equal(storage_inbox_list(st, &unread, collect_rows, &r), 2);
	assert_int_equal(storage_inbox_mark_read(st, 12), 1);
	assert_int_equal(storage_inbox_mark_read(st, 12), 0);
	storage_flush(st);
	assert_int_equal(storage_unread(st), 1);
	/* The same message again is still a duplicate; a new one gets the next id. */
	int64_t id = 0;
	assert_int_equal(add(st, "alice@CIC", "a1", "again", NULL), 0);
	assert_int_equal(add(st, "alice@CIC", "a2", "new", &id), 1);
	assert_int_equal(id, 14);
	storage_close(st);
}

static int count_aside(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".damaged-") != NULL && strstr(e->d_name, "-wal") == NULL &&
		     strstr(e->d_name, "-shm") == NULL;
	closedir(d);
	return n;
}

/* A migration that cannot be written (here: a file size limit, as a full
 * disk would) leaves the database as it was: not set aside as damaged, and
 * migrated at the next start that has room. */
static void test_migration_without_room_keeps_the_file(void **state)
{
	struct fx *f = *state;
	struct rlimit old, small;
	enum { ROWS = 2000 };

	old_db(f, SCHEMA_V4
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
		" INSERT INTO inbox(id, kind, src, dst, msg_id, text, at)"
		" SELECT i, 'message', 'alice@CIC', 'bob@CIC', 'k' || i, printf('%.1000c', 'x'),"
		" strftime('%s', 'now') FROM n;"
		"PRAGMA user_version=4;");

	/* Room for the file as it is, not for a copy of its table. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 512 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_null(st);
	assert_int_equal(count_aside(f->dir), 0);

	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	assert_int_equal(storage_inbox_count(st), ROWS);
	storage_close(st);
}

/* A version 1 database (outbox keyed by msg_id) keeps its queue. */
static void test_outbox_migration_from_v1(void **state)
{
	struct fx *f = *state;
	old_db(f,
		"CREATE TABLE inbox(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, src TEXT NOT NULL,"
		" dst TEXT, msg_id TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL,"
		" read INTEGER NOT NULL DEFAULT 0, src_mismatch INTEGER NOT NULL DEFAULT 0);"
		"CREATE TABLE outbox(msg_id TEXT PRIMARY KEY, dst TEXT NOT NULL, text TEXT NOT NULL,"
		" created REAL NOT NULL, deadline REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);"
		"INSERT INTO outbox VALUES('zz', 'bob@CIC', 'second', 2.0, 99.0, 1);"
		"INSERT INTO outbox VALUES('aa', 'bob@CIC', 'first', 1.0, 99.0, 0);"
		"PRAGMA user_version=1;");
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	struct outs os = { 0 };
	assert_int_equal(storage_outbox_load(st, collect_out, &os), 2);
	assert_string_equal(os.ids[0], "aa");
	assert_string_equal(os.ids[1], "zz");
	assert_int_equal(os.attempts[1], 1);
	storage_close(st);
}

static void test_outbox_rows(void **state)
{
	struct fx *f = *state;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	struct stored_out a = { "q1", "bob@CIC", "hi", 1.0, 100.0, 0, 0 };
	struct stored_out b = { "q2", "bob@CIC", "ho", 2.0, 100.0, 0, 0 };
	struct outs os = { 0 };
	int64_t ra = 0, rb = 0;

	assert_int_equal(storage_outbox_add(st, &a, &ra), 0);
	assert_int_equal(storage_outbox_add(st, &b, &rb), 0);
	assert_true(ra > 0 && rb > ra);
	assert_int_equal(storage_outbox_attempt(st, ra, 3), 0);
	assert_int_equal(storage_outbox_remove(st, rb), 0);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_int_equal(storage_outbox_load(st, collect_out, &os), 1);
	assert_string_equal(os.ids[0], "q1");
	assert_int_equal(os.attempts[0], 3);
	storage_close(st);
}

static void test_garbage_set_aside(void **state)
{
	struct fx *f = *state;
	char path[128];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", f->dir, STORAGE_DB_NAME);
	fp = fopen(path, "wb");
	for (int i = 0; i < 4096; i++)
		fputc((i * 7919) & 0xff, fp);
	fclose(fp);
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	assert_int_equal(count_aside(f->dir), 1);
	assert_int_equal(add(st, "alice@CIC", "m1", "works", NULL), 1);
	storage_close(st);
}

static void test_sync_off_is_null(void **state)
{
	struct fx *f = *state;

	snprintf(f->cfg.storage.sync, sizeof f->cfg.storage.sync, "off");
	assert_null(storage_open(f->loop, &f->cfg, f->dir));
	/* Every call takes NULL. */
	assert_int_equal(add(NULL, "a@B", "m", "t", NULL), -1);
	assert_int_equal(storage_unread(NULL), 0);
	storage_flush(NULL);
	storage_close(NULL);
}

static void test_dir_resolution(void **state)
{
	char out[256], err[128];

	unsetenv("STATE_DIRECTORY");
	setenv("XDG_STATE_HOME", "/x/state", 1);
	assert_int_equal(storage_dir_resolve("", "bob@CIC", out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/x/state/chatp2p/bob@CIC");
	assert_int_equal(storage_dir_resolve("/conf", "bob@CIC", out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/conf");
	setenv("STATE_DIRECTORY", "/var/lib/chatp2p/bob:/other", 1);
	assert_int_equal(storage_dir_resolve("/conf", "bob@CIC", out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/var/lib/chatp2p/bob");
	unsetenv("STATE_DIRECTORY");
	unsetenv("XDG_STATE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(storage_dir_resolve(NULL, "bob@CIC", out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/home/u/.local/state/chatp2p/bob@CIC");
}

/* A copy of dir's database and its WAL as the files are now: what another
 * process would find if this one died this instant.  The rows it holds. */
static long rows_in_files(const char *dir, const char *copy)
{
	static const char *const sfx[] = { "", "-wal" };
	char from[160], to[160], buf[65536];
	sqlite3 *db;
	sqlite3_stmt *s;
	long n = -1;

	for (int i = 0; i < 2; i++) {
		snprintf(from, sizeof from, "%s/%s%s", dir, STORAGE_DB_NAME, sfx[i]);
		snprintf(to, sizeof to, "%s/copy.db%s", copy, sfx[i]);
		FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
		size_t k;
		assert_non_null(out);
		while (in && (k = fread(buf, 1, sizeof buf, in)) > 0)
			assert_int_equal(fwrite(buf, 1, k, out), k);
		if (in)
			fclose(in);
		fclose(out);
	}
	snprintf(to, sizeof to, "%s/copy.db", copy);
	assert_int_equal(sqlite3_open(to, &db), SQLITE_OK);
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM inbox", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

/* The log is written once per commit (store/walbuf.c), and by the time the
 * commit returns (when ACKs go out) it is in the file, not in our memory:
 * a crash right after the ACK loses nothing.  storage.sync=normal. */
static void test_commit_is_in_the_file(void **state)
{
	struct fx *f = *state;
	struct commits cm = { 0, 0 };
	char copy[96], id[16];

	snprintf(copy, sizeof copy, "%s/copy", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	storage_on_commit(st, on_commit, &cm);
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < 50; i++) {
			snprintf(id, sizeof id, "m%d-%d", round, i);
			assert_int_equal(add(st, "alice@CIC", id, "a message of some length", NULL), 1);
		}
		storage_flush(st);
		assert_int_equal(cm.ok, round);
		assert_int_equal(rows_in_files(f->dir, copy), 50 * round);
	}
	storage_close(st);
}

/* The checkpoints' writes to the database file are gathered too: each
 * must be in the file by the checkpoint's end, when the log is restarted
 * and its frames no longer count.  A byte copy of the files after several
 * checkpoints (log restarts) holds every row. */
static void test_checkpoint_is_in_the_file(void **state)
{
	struct fx *f = *state;
	static char text[1025];
	char copy[96], id[16];
	int n = 0;

	memset(text, 'c', 1024);
	snprintf(copy, sizeof copy, "%s/copy", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	/* About 1,300 pages of rows, in commits of 50: a checkpoint every
	 * 1,000 log pages, so several, the log restarted after each. */
	for (int round = 0; round < 100; round++) {
		for (int i = 0; i < 50; i++, n++) {
			snprintf(id, sizeof id, "k%d", n);
			assert_int_equal(add(st, "alice@CIC", id, text, NULL), 1);
		}
		storage_flush(st);
		if (round % 25 == 24)
			assert_int_equal(rows_in_files(f->dir, copy), n);
	}
	storage_close(st);
}

/* walbuf counts on SQLite syncing the log at every commit (it writes what
 * it holds there).  Were that ever lost (synchronous=NORMAL), a commit
 * would return with its rows in our memory: it must count as failed, so
 * nothing is ACKed, and the database is reopened. */
static void test_commit_left_in_memory_is_a_failure(void **state)
{
	struct fx *f = *state;
	struct commits cm = { 0, 0 };

	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	storage_on_commit(st, on_commit, &cm);
	storage_flush(st); /* the PRAGMA must come between transactions */
	cm.ok = 0;
	assert_int_equal(storage_exec(st, "PRAGMA synchronous=NORMAL"), 0);
	assert_int_equal(add(st, "alice@CIC", "m1", "one", NULL), 1);
	storage_flush(st);
	assert_int_equal(cm.ok, 0);
	assert_int_equal(cm.failed, 1);
	assert_string_not_equal(storage_error(st), "");
	storage_close(st);
}

/* Row i's text, n bytes: its number, then letters that depend on it. */
static void row_text(char *out, int i, int n)
{
	int k = snprintf(out, (size_t)n + 1, "row %d:", i);

	for (; k < n; k++)
		out[k] = (char)('a' + (i + k) % 26);
	out[n] = '\0';
}

struct rows_seen {
	int n, bad, len;
	int64_t last_id;
};

/* Each row as row_text() wrote it (msg_id "r<i>"), ids in order. */
static bool check_row(void *ctx, const struct stored_msg *m)
{
	struct rows_seen *r = ctx;
	static char want[4097];
	int i;

	if (sscanf(m->msg_id, "r%d", &i) != 1 || m->id <= r->last_id)
		r->bad++;
	else {
		row_text(want, i, r->len);
		r->bad += strcmp(m->text, want) != 0;
	}
	r->last_id = m->id;
	r->n++;
	return true;
}

/* Rows [from, to) of len bytes, a commit every per rows (0: none). */
static void add_rows(struct storage *st, int from, int to, int len, int per)
{
	static char text[4097];
	char id[16];

	for (int i = from; i < to; i++) {
		snprintf(id, sizeof id, "r%d", i);
		row_text(text, i, len);
		assert_int_equal(add(st, "alice@CIC", id, text, NULL), 1);
		if (per > 0 && (i + 1 - from) % per == 0)
			storage_flush(st);
	}
	if (per > 0)
		storage_flush(st);
}

/* The inbox holds n rows, each as row_text() wrote it. */
static void check_rows(struct storage *st, int n, int len)
{
	struct inbox_filter all = { .limit = 0 };
	struct rows_seen r = { .len = len };

	assert_int_equal(storage_inbox_list(st, &all, check_row, &r), n);
	assert_int_equal(r.n, n);
	assert_int_equal(r.bad, 0);
	assert_int_equal(storage_inbox_count(st), n);
}

/* The log's checkpoint sequence (its header, bytes 12-15): how many times
 * it was restarted. */
static long wal_restarts(const char *dir)
{
	char path[160];
	unsigned char h[16];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s-wal", dir, STORAGE_DB_NAME);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(h, 1, sizeof h, fp), sizeof h);
	fclose(fp);
	return (long)h[12] << 24 | h[13] << 16 | h[14] << 8 | h[15];
}

/* dir's database and log as they are now, to copy/STORAGE_DB_NAME: what a
 * process that died this instant would leave. */
static void copy_as_left(const char *dir, const char *copy)
{
	static const char *const sfx[] = { "", "-wal" };
	char from[160], to[160], buf[65536];

	for (int i = 0; i < 2; i++) {
		snprintf(from, sizeof from, "%s/%s%s", dir, STORAGE_DB_NAME, sfx[i]);
		snprintf(to, sizeof to, "%s/%s%s", copy, STORAGE_DB_NAME, sfx[i]);
		FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
		size_t k;
		assert_non_null(in);
		assert_non_null(out);
		while ((k = fread(buf, 1, sizeof buf, in)) > 0)
			assert_int_equal(fwrite(buf, 1, k, out), k);
		fclose(in);
		fclose(out);
	}
}

/* walbuf serves reads of the log (a checkpoint's) from its copy of what it
 * wrote since the log restarted.  Many commits, past several checkpoints
 * and restarts: every row reads back as written, and again from the
 * database file after a reopen. */
static void test_wal_mirror_across_restarts(void **state)
{
	struct fx *f = *state;
	enum { ROWS = 6000, LEN = 600 };

	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 0;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	add_rows(st, 0, ROWS, LEN, 5);
	assert_true(wal_restarts(f->dir) >= 3);
	check_rows(st, ROWS, LEN);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	check_rows(st, ROWS, LEN);
	/* More after the reopen (a new log), and past a checkpoint again. */
	add_rows(st, ROWS, ROWS + 2000, LEN, 20);
	check_rows(st, ROWS + 2000, LEN);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	check_rows(st, ROWS + 2000, LEN);
	storage_close(st);
}

/* A log left by a process that did not checkpoint (restarted once, so old
 * frames lie past its end) is recovered from the file, and the commits
 * that continue it are read back right: the mirror holds only what this
 * process wrote. */
static void test_wal_mirror_not_trusted_at_open(void **state)
{
	struct fx *f = *state;
	enum { LEN = 600 };
	char copy[96];
	struct stat sb;

	snprintf(copy, sizeof copy, "%s/copy", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 0;
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	add_rows(st, 0, 3000, LEN, 5);
	assert_true(wal_restarts(f->dir) >= 1);
	copy_as_left(f->dir, copy);
	storage_close(st);
	snprintf(copy + strlen(copy), sizeof copy - strlen(copy), "/%s-wal", STORAGE_DB_NAME);
	assert_int_equal(stat(copy, &sb), 0);
	assert_true(sb.st_size > 100 * 4096);
	*strrchr(copy, '/') = '\0';

	st = storage_open(f->loop, &f->cfg, copy);
	assert_non_null(st);
	check_rows(st, 3000, LEN);
	/* The recovered log goes on (not from offset 0), then restarts. */
	add_rows(st, 3000, 6000, LEN, 20);
	check_rows(st, 6000, LEN);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, copy);
	assert_non_null(st);
	check_rows(st, 6000, LEN);
	storage_close(st);
}

/* Big transactions: one that spills (SQLite writes frames before its
 * commit, then rewrites some of them in place and their checksums), within
 * the mirror, left as a crash would leave it; then one past the mirror's
 * cap (its log is read from the file), then small ones in a restarted log. */
static void test_wal_mirror_big_transactions(void **state)
{
	struct fx *f = *state;
	enum { LEN = 4000 };
	char copy[96];

	snprintf(copy, sizeof copy, "%s/copy", f->dir);
	assert_int_equal(mkdir(copy, 0700), 0);
	f->cfg.storage.inbox_max_messages = 0;
	f->cfg.storage.inbox_max_bytes = 0;
	long long base = sqlite3_memory_used();
	struct storage *st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	/* ~700 log pages, not checkpointed: the rows, then all of them again. */
	add_rows(st, 0, 700, LEN, 0);
	assert_int_equal(storage_inbox_mark_read(st, 0), 700);
	storage_flush(st);
	copy_as_left(f->dir, copy);
	struct storage *left = storage_open(f->loop, &f->cfg, copy);
	assert_non_null(left);
	check_rows(left, 700, LEN);
	storage_close(left);

	add_rows(st, 700, 3300, LEN, 2600); /* ~10.8 MB */
	/* The mirror stopped at its cap (8 MiB) and stays there. */
	assert_true(sqlite3_memory_used() - base < 14 * 1024 * 1024);
	add_rows(st, 3300, 3500, LEN, 10);
	check_rows(st, 3500, LEN);
	storage_close(st);
	st = storage_open(f->loop, &f->cfg, f->dir);
	assert_non_null(st);
	check_rows(st, 3500, LEN);
	storage_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_commit_and_dedupe_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_is_in_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_is_in_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_left_in_memory_is_a_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_mirror_across_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_mirror_not_trusted_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_mirror_big_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_filters_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_by_identity_strength, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_count_and_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_trims_big_bounds_in_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_trims_big_byte_bounds_in_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_fair_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_interleaved_senders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_counts_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_migration_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox_migration_from_v4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_without_room_keeps_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_set_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_off_is_null, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_resolution, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
