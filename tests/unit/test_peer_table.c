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
	snprintf(listed->ip, sizeof listed->ip, "127.0.0.1");
	struct peer *connected = peer_get(&t, "connected@CIC", 2);
	connected->conn = fake_conn;
	peer_get(&t, "troll1@CIC", 30);
	peer_get(&t, "troll2@CIC", 20);
	assert_int_equal(t.count, 4);

	assert_non_null(peer_get(&t, "new@CIC", 40));
	assert_int_equal(t.count, 4);
	assert_null(peer_find(&t, "troll2@CIC"));   /* the older of the two */
	assert_non_null(peer_find(&t, "troll1@CIC"));
	assert_non_null(peer_find(&t, "new@CIC"));

	/* Only peers it must keep: full. */
	snprintf(peer_find(&t, "troll1@CIC")->ip, sizeof listed->ip, "127.0.0.2");
	snprintf(peer_find(&t, "new@CIC")->ip, sizeof listed->ip, "127.0.0.3");
	assert_null(peer_get(&t, "another@CIC", 50));
	assert_int_equal(t.count, 4);
	assert_ptr_equal(peer_find(&t, "listed@CIC"), listed);
	assert_ptr_equal(peer_find(&t, "connected@CIC"), connected);
	connected->conn = NULL;
	peer_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_and_grow),
		cmocka_unit_test(test_cap_forgets_only_met_peers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
