/* Claims weighed by address (PROTOCOL.md §5.1, node/claims.c): backed or
 * unbacked, ambiguous names, the ip reached before, the address dialled. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "node/claims.h"

static struct session conn(const char *addr, enum conn_dir dir)
{
	struct session s;

	memset(&s, 0, sizeof s);
	snprintf(s.addr, sizeof s.addr, "%s", addr);
	s.dir = dir;
	return s;
}

static void test_addr_ip(void **state)
{
	char ip[80];

	(void)state;
	claims_addr_ip("127.0.0.9:4000", ip, sizeof ip);
	assert_string_equal(ip, "127.0.0.9");
	claims_addr_ip("[::1]:4000", ip, sizeof ip);
	assert_string_equal(ip, "::1");
	struct session a = conn("127.0.0.1:1", CONN_IN), b = conn("127.0.0.1:2", CONN_OUT),
		       c = conn("127.0.0.12:1", CONN_IN);
	assert_true(claims_same_ip(&a, &b));
	assert_false(claims_same_ip(&a, &c));
}

static void test_backed_only_from_a_listed_ip(void **state)
{
	struct peer_table t;

	(void)state;
	peer_table_init(&t, 100);
	struct peer *p = peer_get(&t, "alice@CIC", 0);
	struct session in = conn("127.0.0.1:5555", CONN_IN), far = conn("127.0.0.9:5555", CONN_IN);
	assert_int_equal(claims_weigh(p, &in, 0), ID_UNBACKED); /* not listed yet */
	claims_listed(p, "127.0.0.1", 4000, 100);
	peer_set_addr(&t, p, "127.0.0.1", 4000);
	assert_int_equal(claims_weigh(p, &in, 0), ID_BACKED);
	assert_int_equal(claims_weigh(p, &far, 0), ID_UNBACKED);
	assert_false(claims_ambiguous(p, 0));
	/* Two registrations from one ip (a restart on a new port): one host. */
	claims_listed(p, "127.0.0.1", 4001, 100);
	assert_false(claims_ambiguous(p, 0));
	peer_table_free(&t);
}

static void test_ambiguous_keeps_the_ip_reached_before(void **state)
{
	struct peer_table t;

	(void)state;
	peer_table_init(&t, 100);
	struct peer *p = peer_get(&t, "alice@CIC", 0);
	claims_listed(p, "127.0.0.1", 4000, 100);
	peer_set_addr(&t, p, "127.0.0.1", 4000);
	struct session own = conn("127.0.0.1:4000", CONN_OUT);
	own.identity = claims_weigh(p, &own, 0);
	claims_remember(p, &own, 0);
	assert_string_equal(p->known_ip, "127.0.0.1");
	/* A stranger registers the name from elsewhere, for a day. */
	claims_listed(p, "127.0.0.9", 5000, 86400);
	assert_true(claims_ambiguous(p, 0));
	struct session far = conn("127.0.0.9:5000", CONN_OUT);
	assert_true(claims_elsewhere(p, &far, 0));
	assert_int_equal(claims_weigh(p, &far, 0), ID_UNBACKED);
	assert_int_equal(claims_weigh(p, &own, 0), ID_BACKED);
	/* Dialled at the ip reached before, however often it fails. */
	for (unsigned i = 0; i < 6; i++) {
		p->attempts = i;
		p->retry = i;
		assert_false(claims_pick(&t, p, 0));
		assert_string_equal(p->ip, "127.0.0.1");
	}
	/* Its own registration expired: no longer ambiguous, nothing kept. */
	assert_false(claims_ambiguous(p, 200));
	assert_false(claims_elsewhere(p, &far, 200));
	peer_table_free(&t);
}

static void test_never_reached_tries_each_listing(void **state)
{
	struct peer_table t;
	int seen1 = 0, seen9 = 0;

	(void)state;
	peer_table_init(&t, 100);
	struct peer *p = peer_get(&t, "bob@CIC", 0);
	claims_listed(p, "127.0.0.1", 4000, 100);
	claims_listed(p, "127.0.0.9", 5000, 100);
	peer_set_addr(&t, p, "127.0.0.1", 4000);
	for (unsigned i = 0; i < 4; i++) {
		p->attempts = i;
		assert_true(claims_pick(&t, p, 0));
		seen1 += strcmp(p->ip, "127.0.0.1") == 0;
		seen9 += strcmp(p->ip, "127.0.0.9") == 0;
	}
	assert_int_equal(seen1, 2);
	assert_int_equal(seen9, 2);
	/* Bounded whatever a rendezvous lists. */
	for (int i = 0; i < 100; i++) {
		char ip[32];
		snprintf(ip, sizeof ip, "10.0.0.%d", i);
		claims_listed(p, ip, 1, 50 + i);
	}
	assert_int_equal(p->nlisted, PEER_LISTED_MAX);
	peer_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_ip),
		cmocka_unit_test(test_backed_only_from_a_listed_ip),
		cmocka_unit_test(test_ambiguous_keeps_the_ip_reached_before),
		cmocka_unit_test(test_never_reached_tries_each_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
