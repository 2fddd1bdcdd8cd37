/* chatp2p-sqlite-floor: what SQLite alone costs per inbox row on this
 * machine, with nothing of chatp2p around it.  The inbox's columns
 * (chatp2pd/store/storage.c, schema version 5), the bench's row (16-byte
 * text, 36-character msg_id), the inserts storage.c does (32 rows to a
 * statement), and no durability at all: synchronous=OFF, and either no
 * journal in one transaction, or WAL with a commit every 63 rows (the
 * commits a window of 64 gives).  Issue 18 asks `normal` for 0.8 of `off`'s
 * throughput; this says what any inbox in SQLite costs before chatp2p adds
 * anything.  Prints one JSON object: CPU µs per row for each variant.
 *   chatp2p-sqlite-floor DIR [ROWS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define PER_STMT 32
#define COLS 9

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rc, sqlite3 *db, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		fprintf(stderr, "chatp2p-sqlite-floor: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

/* CPU µs per row over the second half of rows (the first half fills the
 * table and the caches). */
static double run(const char *dir, const char *journal, long rows, long commit_every)
{
	char path[512], sql[1024];
	sqlite3 *db;
	sqlite3_stmt *ins;
	static char ids[PER_STMT][48];
	double t0 = 0;

	snprintf(path, sizeof path, "%s/floor-%s.db", dir, journal);
	remove(path);
	check(sqlite3_open(path, &db), db, "open");
	snprintf(sql, sizeof sql, "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=%s; "
		 "PRAGMA synchronous=OFF;"
		 "CREATE TABLE inbox(id INTEGER PRIMARY KEY, src TEXT NOT NULL, dst TEXT,"
		 " msg_id TEXT NOT NULL, text TEXT NOT NULL, at REAL NOT NULL,"
		 " flags INTEGER NOT NULL DEFAULT 0, identity TEXT, fingerprint TEXT);",
		 journal);
	check(sqlite3_exec(db, sql, NULL, NULL, NULL), db, "schema");
	size_t len = (size_t)snprintf(sql, sizeof sql, "INSERT INTO inbox(id, src, dst, msg_id, text, "
				      "at, flags, identity, fingerprint) VALUES");
	for (int r = 0; r < PER_STMT; r++)
		len += (size_t)snprintf(sql + len, sizeof sql - len, "%s(?,?,?,?,?,?,?,?,?)",
					r ? "," : "");
	check(sqlite3_prepare_v2(db, sql, -1, &ins, NULL), db, "prepare");
	check(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), db, "BEGIN");
	for (long i = 0; i < rows; i += PER_STMT) {
		if (i >= rows / 2 && t0 == 0)
			t0 = cpu_now();
		for (int r = 0; r < PER_STMT; r++) {
			int b = r * COLS;
			snprintf(ids[r], sizeof ids[r], "%08x-0000-4000-8000-%012lx", 7u, (unsigned long)(i + r));
			sqlite3_bind_int64(ins, b + 1, i + r + 1);
			sqlite3_bind_text(ins, b + 2, "loadgen-0@BENCH", -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, b + 3, "bench@BENCH", -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, b + 4, ids[r], -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, b + 5, "xxxxxxxxxxxxxxxx", -1, SQLITE_STATIC);
			sqlite3_bind_double(ins, b + 6, 1.7e9 + (double)i);
			sqlite3_bind_int(ins, b + 7, 0);
			sqlite3_bind_text(ins, b + 8, "unbacked", -1, SQLITE_STATIC);
			sqlite3_bind_null(ins, b + 9);
		}
		check(sqlite3_step(ins), db, "INSERT");
		sqlite3_reset(ins);
		/* A commit every commit_every rows, at the statement that reaches it. */
		if ((i + PER_STMT) / commit_every != i / commit_every) {
			check(sqlite3_exec(db, "COMMIT; BEGIN", NULL, NULL, NULL), db, "COMMIT");
		}
	}
	check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "COMMIT");
	double us = (cpu_now() - t0) * 1e6 / (double)(rows - rows / 2);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	remove(path);
	snprintf(path, sizeof path, "%s/floor-%s.db-wal", dir, journal);
	remove(path);
	return us;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: chatp2p-sqlite-floor DIR [ROWS]\n");
		return 2;
	}
	long rows = argc > 2 ? atol(argv[2]) : 300000;
	if (rows < 2 * PER_STMT)
		rows = 2 * PER_STMT;
	double none = run(argv[1], "OFF", rows, rows + PER_STMT);
	double wal = run(argv[1], "WAL", rows, 63);
	printf("{\"rows\":%ld,\"no_journal_one_txn_us_per_row\":%.3f,\"wal_commit_63_us_per_row\":%.3f,"
	       "\"sqlite\":\"%s\"}\n", rows, none, wal, sqlite3_libversion());
	return 0;
}
