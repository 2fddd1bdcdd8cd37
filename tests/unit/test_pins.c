/* Pinned identity keys (chatp2pd/store/pins.c) on a real SQLite file:
 * first use, operator pins, verify refusing another key, forget, the table
 * surviving a reopen, and malformed rows skipped at load rather than
 * trusted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/pins.h"

#define FP_A "SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU"
#define FP_B "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

static char dbpath[64];

static sqlite3 *open_db(void)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	return db;
}

static int setup(void **state)
{
	snprintf(dbpath, sizeof dbpath, "/tmp/chatp2p-pins-%ld.db", (long)getpid());
	unlink(dbpath);
	return 0;
}

static int teardown(void **state)
{
	unlink(dbpath);
	return 0;
}

static struct pins *open_pins(sqlite3 *db, long *skipped)
{
	char err[200];
	struct pins *p = pins_open(db, skipped, err, sizeof err);
	assert_non_null(p);
	return p;
}

static void test_pin_verify_forget_and_reopen(void **state)
{
	long skipped;
	sqlite3 *db = open_db();
	struct pins *p = open_pins(db, &skipped);
	assert_int_equal(skipped, 0);
	assert_null(pins_find(p, "bob@CIC"));

	assert_int_equal(pins_add(p, "bob@CIC", FP_A, false, 1000), PINS_OK);
	assert_int_equal(pins_add(p, "alice@CIC", FP_B, true, 1001), PINS_OK);
	assert_int_equal(pins_add(p, "no-namespace", FP_A, false, 1), PINS_BAD_PEER);
	assert_int_equal(pins_add(p, "carol@CIC", "SHA256:nope", false, 1), PINS_BAD_FINGERPRINT);
	const struct pin *b = pins_find(p, "bob@CIC");
	assert_non_null(b);
	assert_string_equal(b->fingerprint, FP_A);
	assert_false(b->verified);

	/* Verifying with another key is refused and changes nothing. */
	assert_int_equal(pins_verify(p, "bob@CIC", FP_B), PINS_MISMATCH);
	assert_false(pins_find(p, "bob@CIC")->verified);
	assert_int_equal(pins_verify(p, "bob@CIC", FP_A), PINS_OK);
	assert_true(pins_find(p, "bob@CIC")->verified);
	assert_int_equal(pins_verify(p, "dave@CIC", FP_A), PINS_NOT_PINNED);

	pins_seen(p, "bob@CIC", 5000);
	pins_close(p);
	sqlite3_close(db);

	db = open_db();
	p = open_pins(db, &skipped);
	assert_int_equal(pins_count(p), 2);
	b = pins_find(p, "bob@CIC");
	assert_non_null(b);
	assert_true(b->verified);
	assert_true(b->last_seen == 5000);
	assert_true(b->first_seen == 1000);

	assert_int_equal(pins_forget(p, "bob@CIC"), PINS_OK);
	assert_int_equal(pins_forget(p, "bob@CIC"), PINS_NOT_PINNED);
	assert_null(pins_find(p, "bob@CIC"));
	pins_close(p);
	sqlite3_close(db);

	db = open_db();
	p = open_pins(db, &skipped);
	assert_int_equal(pins_count(p), 1);
	assert_null(pins_find(p, "bob@CIC"));
	assert_non_null(pins_find(p, "alice@CIC"));
	pins_close(p);
	sqlite3_close(db);
}

/* Someone edits the table by hand, or the file is damaged: a row that is
 * not a valid pin is skipped, counted, never trusted. */
static void test_malformed_rows_skipped(void **state)
{
	long skipped;
	sqlite3 *db = open_db();
	struct pins *p = open_pins(db, &skipped);
	pins_close(p);
	const char *rows =
		"DELETE FROM pins;"
		"INSERT INTO pins VALUES ('ok@CIC', '" FP_A "', 1, 2, 0);"
		"INSERT INTO pins VALUES ('short@CIC', 'SHA256:abc', 1, 2, 0);"
		"INSERT INTO pins VALUES ('no-at', '" FP_A "', 1, 2, 0);"
		"INSERT INTO pins VALUES (X'626f624043494300', '" FP_A "', 1, 2, 0);"
		"INSERT INTO pins VALUES ('nan@CIC', '" FP_A "', 1, 'x', 0);"
		"INSERT INTO pins VALUES ('three@CIC', '" FP_A "', 1, 2, 3);"
		"INSERT INTO pins VALUES ('blob@CIC', X'00', 1, 2, 0);"
		"INSERT INTO pins VALUES ('ver@CIC', '" FP_B "', 1, 2, 1);";
	assert_int_equal(sqlite3_exec(db, rows, NULL, NULL, NULL), SQLITE_OK);
	p = open_pins(db, &skipped);
	assert_int_equal(pins_count(p), 2);
	assert_int_equal(skipped, 6);
	assert_non_null(pins_find(p, "ok@CIC"));
	assert_true(pins_find(p, "ver@CIC")->verified);
	pins_close(p);
	sqlite3_close(db);
}

/* Without a database the pins still work, for the life of the process. */
static void test_memory_only(void **state)
{
	long skipped;
	struct pins *p = open_pins(NULL, &skipped);
	assert_int_equal(pins_add(p, "b@X", FP_A, false, 1), PINS_OK);
	assert_int_equal(pins_add(p, "a@X", FP_B, false, 1), PINS_OK);
	assert_int_equal(pins_add(p, "c@X", FP_B, false, 1), PINS_OK);
	assert_int_equal(pins_add(p, "b@X", FP_B, true, 2), PINS_OK); /* operator replaces */
	assert_int_equal(pins_count(p), 3);
	assert_string_equal(pins_find(p, "b@X")->fingerprint, FP_B);
	assert_int_equal(pins_forget(p, "a@X"), PINS_OK);
	assert_null(pins_find(p, "a@X"));
	assert_non_null(pins_find(p, "c@X"));
	pins_close(p);
}

/* A file of their own: created private, kept across a reopen, no shared
 * -shm file beside it (the WAL index stays in the process). */
static void test_own_file(void **state)
{
	long skipped;
	char err[200], shm[80];
	struct pins *p = pins_open_file(dbpath, &skipped, err, sizeof err);
	assert_non_null(p);
	assert_int_equal(pins_add(p, "bob@CIC", FP_A, false, 7), PINS_OK);
	struct stat st;
	assert_int_equal(stat(dbpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(shm, sizeof shm, "%s-shm", dbpath);
	assert_int_not_equal(access(shm, F_OK), 0);
	pins_close(p);
	p = pins_open_file(dbpath, &skipped, err, sizeof err);
	assert_non_null(p);
	assert_string_equal(pins_find(p, "bob@CIC")->fingerprint, FP_A);
	pins_close(p);
	snprintf(shm, sizeof shm, "%s-wal", dbpath);
	unlink(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pin_verify_forget_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rows_skipped, setup, teardown),
		cmocka_unit_test(test_memory_only),
		cmocka_unit_test_setup_teardown(test_own_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
