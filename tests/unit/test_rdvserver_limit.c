/* The rendezvous server's per-ip rate limit (chatp2pd/rendezvous/server/limit.c): a sliding window
 * of `limit` connections per `window` seconds, then a block; the table of ips
 * stays within max_ips however many distinct sources come.  Time is driven
 * by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rendezvous/server/limit.h"

static enum rdv_verdict check(struct rdv_limit *l, const char *ip, double now)
{
	double left = -1;
	enum rdv_verdict v = rdv_limit_check(l, ip, now, &left);

	if (v == RDV_LIMIT_OK)
		assert_true(left == 0);
	else
		assert_true(left > 0);
	return v;
}

static double left_of(struct rdv_limit *l, const char *ip, double now, enum rdv_verdict want)
{
	double left = -1;

	assert_int_equal(rdv_limit_check(l, ip, now, &left), want);
	return left;
}

#define near(a, b) assert_true(fabs((a) - (b)) < 1e-6)

static void ip_of(char *out, size_t len, unsigned i)
{
	snprintf(out, len, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

/* ---- the window and the block ---------------------------------------------- */

static void test_limit_then_block_then_fresh_window(void **state)
{
	struct rdv_limit *l = rdv_limit_new(3, 10, 20, 0);

	assert_int_equal(check(l, "1.1.1.1", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "1.1.1.1", 1), RDV_LIMIT_OK);
	assert_int_equal(check(l, "1.1.1.1", 2), RDV_LIMIT_OK);
	/* The one over the limit: blocked from now for block seconds. */
	near(left_of(l, "1.1.1.1", 3, RDV_LIMIT_EXCEEDED), 20);
	/* While blocked the time left counts down; refused attempts neither
	 * count nor extend the block. */
	near(left_of(l, "1.1.1.1", 4, RDV_LIMIT_BLOCKED), 19);
	near(left_of(l, "1.1.1.1", 13, RDV_LIMIT_BLOCKED), 10);
	for (int i = 0; i < 50; i++)
		assert_int_equal(check(l, "1.1.1.1", 14 + i * 0.1), RDV_LIMIT_BLOCKED);
	near(left_of(l, "1.1.1.1", 22.5, RDV_LIMIT_BLOCKED), 0.5);
	/* Lifted at 3 + 20, with a fresh window: limit more, then over again. */
	assert_int_equal(check(l, "1.1.1.1", 23), RDV_LIMIT_OK);
	assert_int_equal(check(l, "1.1.1.1", 23.1), RDV_LIMIT_OK);
	assert_int_equal(check(l, "1.1.1.1", 23.2), RDV_LIMIT_OK);
	near(left_of(l, "1.1.1.1", 23.3, RDV_LIMIT_EXCEEDED), 20);
	rdv_limit_free(l);
}

static void test_window_slides(void **state)
{
	struct rdv_limit *l = rdv_limit_new(3, 10, 60, 0);

	assert_int_equal(check(l, "ip", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "ip", 5), RDV_LIMIT_OK);
	assert_int_equal(check(l, "ip", 9), RDV_LIMIT_OK);
	/* The one at 0 has left the window (10.5 - 10); 5 and 9 have not. */
	assert_int_equal(check(l, "ip", 10.5), RDV_LIMIT_OK);
	/* A fixed window restarted at 10 would let this one in; in any 10 s
	 * window there are now 5, 9, 10.5 and this one: over. */
	assert_int_equal(check(l, "ip", 11), RDV_LIMIT_EXCEEDED);
	rdv_limit_free(l);
}

static void test_steady_rate_under_the_limit_never_blocks(void **state)
{
	/* 10 per 10 s, one every 1.1 s for a long time: the ring of times wraps
	 * many times and is never over. */
	struct rdv_limit *l = rdv_limit_new(10, 10, 60, 0);
	double t = 0;

	for (int i = 0; i < 500; i++) {
		t = i * 1.1;
		assert_int_equal(check(l, "ip", t), RDV_LIMIT_OK);
	}
	/* The window ending at t holds t, t - 1.1, ..., t - 9.9: full.  At
	 * t + 0.05 still full; at t + 0.15 the one at t - 9.9 has left: one
	 * more is OK, and the next is over.  So the ring held exactly the
	 * right times. */
	assert_int_equal(check(l, "ip", t + 0.05), RDV_LIMIT_EXCEEDED);
	assert_int_equal(check(l, "ip", t + 60.1), RDV_LIMIT_OK); /* block over */
	rdv_limit_free(l);

	l = rdv_limit_new(10, 10, 60, 0);
	for (int i = 0; i < 500; i++) {
		t = i * 1.1;
		assert_int_equal(check(l, "ip", t), RDV_LIMIT_OK);
	}
	assert_int_equal(check(l, "ip", t + 0.15), RDV_LIMIT_OK);
	assert_int_equal(check(l, "ip", t + 0.16), RDV_LIMIT_EXCEEDED);
	rdv_limit_free(l);
}

static void test_large_limit_burst(void **state)
{
	/* The public server's numbers scaled up: the ring grows past its first
	 * sizes without losing a time. */
	struct rdv_limit *l = rdv_limit_new(1000, 60, 60, 0);

	for (int i = 0; i < 1000; i++)
		assert_int_equal(check(l, "ip", i * 0.001), RDV_LIMIT_OK);
	assert_int_equal(check(l, "ip", 1.5), RDV_LIMIT_EXCEEDED);
	rdv_limit_free(l);
}

static void test_public_defaults_50_per_60_block_60(void **state)
{
	struct rdv_limit *l = rdv_limit_new(50, 60, 60, 0);

	for (int i = 0; i < 50; i++)
		assert_int_equal(check(l, "203.0.113.7", i), RDV_LIMIT_OK);
	near(left_of(l, "203.0.113.7", 50, RDV_LIMIT_EXCEEDED), 60);
	near(left_of(l, "203.0.113.7", 80, RDV_LIMIT_BLOCKED), 30);
	assert_int_equal(check(l, "203.0.113.7", 110), RDV_LIMIT_OK);
	rdv_limit_free(l);
}

static void test_ips_are_independent(void **state)
{
	struct rdv_limit *l = rdv_limit_new(2, 10, 10, 0);
	const char *v6 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"; /* longest form */

	assert_int_equal(check(l, "127.0.0.1", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "127.0.0.1", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "127.0.0.1", 0), RDV_LIMIT_EXCEEDED);
	assert_int_equal(check(l, "127.0.0.10", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "127.0.0.10", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, v6, 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, v6, 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, v6, 0), RDV_LIMIT_EXCEEDED);
	assert_int_equal(check(l, "127.0.0.1", 1), RDV_LIMIT_BLOCKED);
	assert_int_equal(rdv_limit_count(l), 3);
	rdv_limit_free(l);
}

static void test_disabled(void **state)
{
	struct rdv_limit *l = rdv_limit_new(0, 10, 10, 0);

	for (int i = 0; i < 1000; i++)
		assert_int_equal(check(l, "ip", 0), RDV_LIMIT_OK);
	assert_int_equal(rdv_limit_count(l), 0); /* nothing recorded */
	rdv_limit_free(l);
}

/* ---- memory: the ip table ---------------------------------------------------- */

static void test_full_table_evicts_least_recently_seen(void **state)
{
	struct rdv_limit *l = rdv_limit_new(2, 100, 100, 3);

	assert_int_equal(check(l, "A", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "A", 0), RDV_LIMIT_OK); /* A's window is full */
	assert_int_equal(check(l, "B", 1), RDV_LIMIT_OK);
	assert_int_equal(check(l, "B", 1), RDV_LIMIT_OK);
	assert_int_equal(check(l, "C", 2), RDV_LIMIT_OK);
	assert_int_equal(rdv_limit_count(l), 3);
	assert_int_equal(rdv_limit_evictions(l), 0);
	/* B seen again (and blocked): the stalest is now A. */
	assert_int_equal(check(l, "B", 3), RDV_LIMIT_EXCEEDED);
	assert_int_equal(check(l, "D", 4), RDV_LIMIT_OK);
	assert_int_equal(rdv_limit_count(l), 3);
	assert_int_equal(rdv_limit_evictions(l), 1);
	/* A was forgotten: it starts afresh (C, now the stalest, goes). */
	assert_int_equal(check(l, "A", 5), RDV_LIMIT_OK);
	assert_int_equal(rdv_limit_evictions(l), 2);
	/* B is remembered, still blocked. */
	assert_int_equal(check(l, "B", 6), RDV_LIMIT_BLOCKED);
	assert_int_equal(check(l, "A", 7), RDV_LIMIT_OK);
	assert_int_equal(check(l, "A", 7), RDV_LIMIT_EXCEEDED);
	assert_int_equal(rdv_limit_count(l), 3);
	rdv_limit_free(l);
}

static void test_flood_of_distinct_ips_stays_bounded(void **state)
{
	/* The server's own cap: three times as many sources as it keeps, each
	 * going over its limit (so every record is a blocked one with a full
	 * ring).  The table never holds more than the cap. */
	struct rdv_limit *l = rdv_limit_new(2, 60, 60, 0);
	const unsigned n = 3 * RDV_LIMIT_MAX_IPS;
	char ip[32];

	for (unsigned i = 0; i < n; i++) {
		ip_of(ip, sizeof ip, i);
		double now = i * 1e-4;
		assert_int_equal(check(l, ip, now), RDV_LIMIT_OK);
		assert_int_equal(check(l, ip, now), RDV_LIMIT_OK);
		assert_int_equal(check(l, ip, now), RDV_LIMIT_EXCEEDED);
		assert_true(rdv_limit_count(l) <= RDV_LIMIT_MAX_IPS);
	}
	assert_int_equal(rdv_limit_count(l), RDV_LIMIT_MAX_IPS);
	assert_int_equal(rdv_limit_evictions(l), n - RDV_LIMIT_MAX_IPS);
	/* The most recent ones are remembered, the oldest are not. */
	ip_of(ip, sizeof ip, n - 1);
	assert_int_equal(check(l, ip, 10), RDV_LIMIT_BLOCKED);
	ip_of(ip, sizeof ip, 0);
	assert_int_equal(check(l, ip, 10), RDV_LIMIT_OK);
	rdv_limit_free(l);
}

static void test_sweep_forgets_idle_keeps_blocked_and_recent(void **state)
{
	struct rdv_limit *l = rdv_limit_new(1, 10, 30, 0);

	assert_int_equal(check(l, "A", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "B", 0), RDV_LIMIT_OK);
	assert_int_equal(check(l, "B", 0), RDV_LIMIT_EXCEEDED); /* blocked until 30 */
	assert_int_equal(check(l, "C", 8), RDV_LIMIT_OK);
	assert_int_equal(rdv_limit_sweep(l, 5), 0);
	assert_int_equal(rdv_limit_count(l), 3);
	/* A idle for more than the window: gone; B blocked: kept; C recent. */
	assert_int_equal(rdv_limit_sweep(l, 10.5), 1);
	assert_int_equal(rdv_limit_count(l), 2);
	assert_int_equal(rdv_limit_sweep(l, 18.5), 1); /* C */
	assert_int_equal(rdv_limit_count(l), 1);
	assert_int_equal(check(l, "B", 20), RDV_LIMIT_BLOCKED);
	/* Once B's block is over and it has been idle a window: gone too. */
	assert_int_equal(rdv_limit_sweep(l, 29), 0);
	assert_int_equal(rdv_limit_sweep(l, 31), 1);
	assert_int_equal(rdv_limit_count(l), 0);
	/* Whatever was swept starts afresh. */
	assert_int_equal(check(l, "A", 32), RDV_LIMIT_OK);
	assert_int_equal(check(l, "A", 32), RDV_LIMIT_EXCEEDED);
	rdv_limit_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_then_block_then_fresh_window),
		cmocka_unit_test(test_window_slides),
		cmocka_unit_test(test_steady_rate_under_the_limit_never_blocks),
		cmocka_unit_test(test_large_limit_burst),
		cmocka_unit_test(test_public_defaults_50_per_60_block_60),
		cmocka_unit_test(test_ips_are_independent),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_full_table_evicts_least_recently_seen),
		cmocka_unit_test(test_flood_of_distinct_ips_stays_bounded),
		cmocka_unit_test(test_sweep_forgets_idle_keeps_blocked_and_recent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
