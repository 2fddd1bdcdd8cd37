/* The peer table: lookup, growth, the cap, and who is forgotten at the cap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "node/peer_table.h"

static void test_find_and_grow(void **state)
{
	struct peer_table t;
	char id[32];

	(void)state;
	peer_table_init(&t, 100000);
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "p%d@CIC", i);
		struct peer *p = peer_get(&t, id, i);
		assert_non_null(p);
		assert_string_equal(p->ns, "CIC");
		assert_int_equal(p->state, PEER_UNKNOWN);
	}
	assert_int_equal(t.count, 5000);
	assert_ptr_equal(peer_get(&t, "p42@CIC", 0), peer_find(&t, "p42@CIC"));
	assert_int_equal(t.count, 5000);
	assert_null(peer_find(&t, "nobody@CIC"));
	assert_null(peer_get(&t, "no-namespace", 0));
	peer_table_free(&t);
}

/* Made-up ids from inbound HELLOs must not lock out real peers: at the cap
 * the peer only met, never listed, seen longest ago makes room; a listed or
 * connected one never does. */
static void test_cap_forgets_only_met_peers(void **state)
{
	struct peer_table t;
	struct session *fake_conn = (struct session *)&t; /* any non-NULL pointer */

	(void)state;
	peer_table_init(&t, 4);
	struct peer *listed = peer_get(&t, "listed@CIC", 1);
	peer_set_addr(&t, listed, "127.0.0.1", 5000);
	struct peer *connected = peer_get(&t, "connected@CIC", 2);
	connected->conn = fake_conn;
	peer_get(&t, "troll1@CIC", 30);
	peer_get(&t, "troll2@CIC", 20);
	assert_int_equal(t.count, 4);
	assert_int_equal(peer_count_met_only(&t), 3); /* connected, troll1, troll2 */

	assert_non_null(peer_get(&t, "new@CIC", 40));
	assert_int_equal(peer_count_met_only(&t), 3);
	assert_int_equal(t.count, 4);
	assert_null(peer_find(&t, "troll2@CIC"));   /* the older of the two */
	assert_non_null(peer_find(&t, "troll1@CIC"));
	assert_non_null(peer_find(&t, "new@CIC"));

	/* Only peers it must keep: full. */
	peer_set_addr(&t, peer_find(&t, "troll1@CIC"), "127.0.0.2", 5000);
	peer_set_addr(&t, peer_find(&t, "new@CIC"), "127.0.0.3", 5000);
	assert_int_equal(peer_count_met_only(&t), 1);
	assert_null(peer_get(&t, "another@CIC", 50));
	assert_int_equal(t.count, 4);
	assert_ptr_equal(peer_find(&t, "listed@CIC"), listed);
	assert_ptr_equal(peer_find(&t, "connected@CIC"), connected);
	connected->conn = NULL;
	peer_table_free(&t);
}

/* Met-only accounting is O(1) (issue 18): the count follows additions,
 * addresses and forgetting; eviction and idle forgetting go by last_seen,
 * which peer_seen() moves. */
static void test_met_only_count_and_order(void **state)
{
	struct peer_table t;
	char id[64];

	(void)state;
	peer_table_init(&t, 100000);
	for (int i = 0; i < 30000; i++) {
		snprintf(id, sizeof id, "listed%d@CIC", i);
		peer_set_addr(&t, peer_get(&t, id, 1), "127.0.0.1", 1 + i % 60000);
	}
	assert_int_equal(peer_count_met_only(&t), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "met%d@CIC", i);
		peer_get(&t, id, 10 + i);
	}
	assert_int_equal(peer_count_met_only(&t), 5);
	/* met0 seen again, after the others: met1 is now the oldest. */
	peer_seen(&t, peer_find(&t, "met0@CIC"), 20);
	assert_true(peer_evict_one(&t));
	assert_null(peer_find(&t, "met1@CIC"));
	assert_int_equal(peer_count_met_only(&t), 4);
	assert_int_equal(t.count, 30004);
	/* Last seen before 14: met2 and met3 (met4 at 14, met0 at 20 stay). */
	assert_int_equal(peer_forget_idle(&t, 14), 2);
	assert_int_equal(peer_count_met_only(&t), 2);
	assert_non_null(peer_find(&t, "met4@CIC"));
	assert_non_null(peer_find(&t, "met0@CIC"));
	/* Listed later: no longer met-only, never evicted. */
	peer_set_addr(&t, peer_find(&t, "met4@CIC"), "127.0.0.9", 1);
	assert_int_equal(peer_count_met_only(&t), 1);
	assert_true(peer_evict_one(&t));
	assert_false(peer_evict_one(&t));
	assert_int_equal(peer_count_met_only(&t), 0);
	assert_int_equal(t.count, 30001);
	peer_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_and_grow),
		cmocka_unit_test(test_cap_forgets_only_met_peers),
		cmocka_unit_test(test_met_only_count_and_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
