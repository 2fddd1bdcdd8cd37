/* The rendezvous server's registrations file (chatp2pd/rendezvous/server/persist.c): a save
 * and a load give back the same entries with the time spent down counted,
 * expired and malformed entries are dropped, a torn or foreign file is an
 * error and never a crash, and the file is replaced whole (via .tmp). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rendezvous/server/persist.h"

static char dir[] = "/tmp/rdvpersistXXXXXX";
static char path[256];

static int setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/%s", dir, RDV_PERSIST_FILE);
	return 0;
}

static int teardown(void **state)
{
	char tmp[300];

	unlink(path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
	return 0;
}

static void write_text(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static size_t count_live(struct rdv_store *s, double now)
{
	size_t cursor = 0, n = 0;
	struct rdv_view v;

	while (rdv_store_next(s, &cursor, NULL, now, &v))
		n++;
	return n;
}

static void test_roundtrip_counts_time_down(void **state)
{
	struct rdv_store *a = rdv_store_new(0), *b = rdv_store_new(0);
	struct rdv_persist_stats st;
	struct rdv_view v;
	size_t cursor = 0;
	char err[256];

	/* Names that need escaping survive: quote, backslash, non-ASCII, astral. */
	rdv_store_register(a, "127.0.0.1", "CIC", "alice", 5000, 7200, 100.0);
	rdv_store_register(a, "127.0.0.2", "L\"A\\B", "caf\xc3\xa9\xf0\x9f\x98\x80", 1, 600, 100.0);
	rdv_store_register(a, "127.0.0.3", "CIC", "short", 7, 70, 100.0);
	/* Saved at mono 150 = wall 1e9. */
	assert_int_equal(rdv_persist_save(a, path, 150.0, 1e9, err, sizeof err), 0);
	assert_int_equal(access(path, R_OK), 0);

	/* Loaded 30 s later by the wall clock, in a process whose monotonic
	 * clock reads 5: "short" (gone at wall 1e9 + 20) is dropped, the others
	 * have lost the 30 s. */
	assert_int_equal(rdv_persist_load(b, path, 5.0, 1e9 + 30, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 2);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.invalid, 0);
	while (rdv_store_next(b, &cursor, NULL, 5.0, &v)) {
		if (strcmp(v.name, "alice") == 0) {
			assert_string_equal(v.ip, "127.0.0.1");
			assert_int_equal(v.port, 5000);
			assert_int_equal(v.ttl, 7200);
			assert_true(v.expires_in >= 7200 - 50 - 30 - 1 && v.expires_in <= 7200 - 50 - 30);
		} else {
			assert_string_equal(v.ns, "L\"A\\B");
			assert_string_equal(v.name, "caf\xc3\xa9\xf0\x9f\x98\x80");
			assert_true(v.expires_in >= 600 - 50 - 30 - 1 && v.expires_in <= 600 - 50 - 30);
		}
	}
	rdv_store_free(a);
	rdv_store_free(b);
}

static void test_missing_file_is_empty(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct rdv_persist_stats st;
	char err[256];

	unlink(path);
	assert_int_equal(rdv_persist_load(s, path, 0, 1e9, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 0);
	assert_int_equal(rdv_store_count(s), 0);
	rdv_store_free(s);
}

static void test_torn_or_foreign_file_is_an_error(void **state)
{
	const char *bad[] = { "[\n  {\"ip\": \"1.2.3.4\", \"namespace\": \"N\"", "{}", "42", "",
			      "\xff\xfe", "[" };
	char err[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rdv_store *s = rdv_store_new(0);
		struct rdv_persist_stats st;
		write_text(bad[i]);
		err[0] = '\0';
		assert_int_equal(rdv_persist_load(s, path, 0, 1e9, &st, err, sizeof err), -1);
		assert_non_null(strstr(err, path));
		assert_int_equal(rdv_store_count(s), 0);
		rdv_store_free(s);
	}
}

static void test_malformed_entries_dropped_others_kept(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct rdv_persist_stats st;
	char err[256];

	write_text("[{\"ip\": \"1.1.1.1\", \"namespace\": \"N\", \"name\": \"ok\", \"port\": 1,"
		   " \"ttl\": 100, \"expires_at\": 1000000050},"
		   " {\"ip\": \"1.1.1.1\", \"namespace\": \"N\", \"name\": \"p0\", \"port\": 0,"
		   " \"ttl\": 100, \"expires_at\": 1000000050},"
		   " {\"ip\": \"1.1.1.1\", \"namespace\": \"\", \"name\": \"x\", \"port\": 1,"
		   " \"ttl\": 100, \"expires_at\": 1000000050},"
		   " {\"ip\": \"1.1.1.1\", \"namespace\": \"N\", \"name\": \"x\", \"port\": 1,"
		   " \"ttl\": \"100\", \"expires_at\": 1000000050},"
		   " {\"ip\": \"1.1.1.1\", \"namespace\": \"N\", \"name\": \"x\", \"port\": 1,"
		   " \"ttl\": 100}, 7, [], null]\n");
	assert_int_equal(rdv_persist_load(s, path, 0, 1e9, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 1);
	assert_int_equal(st.invalid, 7);
	assert_int_equal(count_live(s, 0), 1);
	rdv_store_free(s);
}

static void test_save_replaces_whole_file_and_leaves_no_tmp(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	char err[256], tmp[300];
	struct rdv_persist_stats st;

	write_text("old junk that is not JSON");
	rdv_store_register(s, "ip", "N", "a", 1, 100, 0);
	assert_int_equal(rdv_persist_save(s, path, 0, 1e9, err, sizeof err), 0);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	rdv_store_free(s);
	s = rdv_store_new(0);
	assert_int_equal(rdv_persist_load(s, path, 0, 1e9, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 1);
	/* An empty store saves an empty list. */
	rdv_store_unregister(s, "ip", "N", NULL, false, 0, 0);
	assert_int_equal(rdv_persist_save(s, path, 0, 1e9, err, sizeof err), 0);
	assert_int_equal(rdv_persist_load(s, path, 0, 1e9, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 0);
	/* A directory that is not there: an error, not a crash. */
	assert_int_equal(rdv_persist_save(s, "/nonexistent/dir/peers.json", 0, 1e9, err,
					  sizeof err), -1);
	assert_non_null(strstr(err, "/nonexistent/dir/peers.json.tmp"));
	rdv_store_free(s);
}

static void test_load_respects_the_quota(void **state)
{
	struct rdv_store *a = rdv_store_new(0), *b = rdv_store_new(0);
	struct rdv_persist_stats st;
	char err[256], name[16];

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "n%d", i);
		rdv_store_register(a, "ip", "N", name, 1, 100, 0);
	}
	assert_int_equal(rdv_persist_save(a, path, 0, 1e9, err, sizeof err), 0);
	rdv_store_set_max_per_ip(b, 4, false);
	assert_int_equal(rdv_persist_load(b, path, 0, 1e9, &st, err, sizeof err), 0);
	assert_int_equal(st.loaded, 4);
	assert_int_equal(st.invalid, 6);
	rdv_store_free(a);
	rdv_store_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_counts_time_down),
		cmocka_unit_test(test_missing_file_is_empty),
		cmocka_unit_test(test_torn_or_foreign_file_is_an_error),
		cmocka_unit_test(test_malformed_entries_dropped_others_kept),
		cmocka_unit_test(test_save_replaces_whole_file_and_leaves_no_tmp),
		cmocka_unit_test(test_load_respects_the_quota),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
