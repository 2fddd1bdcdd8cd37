/* The dial pacer's per-address hygiene (chatp2pd/net/dial_pacer.c, issue 18):
 * handshakes capped per ip:port and per ip, an address backed off after a
 * failed dial for every name at it, and names at other addresses never held
 * up behind a blocked one.  Driven by a real libev loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "net/dial_pacer.h"

#define MAXD 64

static char dialled[MAXD][64];
static int ndialled;

static bool go(void *ctx, const char *peer_id)
{
	(void)ctx;
	if (ndialled < MAXD)
		snprintf(dialled[ndialled++], sizeof dialled[0], "%s", peer_id);
	return true;
}

static bool was_dialled(const char *id)
{
	for (int i = 0; i < ndialled; i++)
		if (strcmp(dialled[i], id) == 0)
			return true;
	return false;
}

static void spin(struct ev_loop *loop)
{
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static struct dial_pacer *pacer(struct ev_loop *loop, const char *exempt)
{
	struct dial_pacer *dp = dial_pacer_new(loop, go, NULL);
	struct dial_limits l = { .in_flight = 32, .per_second = 1e6, .per_address = 2,
				 .per_ip = 3, .exempt = exempt, .backoff_base = 30,
				 .backoff_max = 60 };

	dial_pacer_configure(dp, &l);
	ndialled = 0;
	return dp;
}

/* Admit id at ip:port; true if it was dialled at once or by the loop. */
static bool admit(struct ev_loop *loop, struct dial_pacer *dp, const char *id, const char *ip,
		  int port)
{
	if (dial_pacer_admit(dp, id, ip, port))
		return go(NULL, id);
	spin(loop);
	return was_dialled(id);
}

static void test_caps_per_address_and_ip(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dial_pacer *dp = pacer(loop, "");
	char id[32];

	(void)state;
	/* Ten names at one ip:port: two handshakes at once. */
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof id, "junk%d@CIC", i);
		admit(loop, dp, id, "10.0.0.9", 4000);
	}
	assert_int_equal(ndialled, 2);
	assert_int_equal(dial_pacer_in_flight(dp), 2);
	/* Another port of that ip: the per-ip cap (3) leaves one more. */
	assert_true(admit(loop, dp, "other1@CIC", "10.0.0.9", 4001));
	assert_false(admit(loop, dp, "other2@CIC", "10.0.0.9", 4002));
	/* Another ip is not held up by any of them. */
	assert_true(admit(loop, dp, "real@CIC", "10.0.0.1", 5000));
	assert_int_equal(dial_pacer_waiting(dp), 9);
	/* A dial at the ip ends (answered: no verdict on the address): the
	 * next one there goes. */
	dial_pacer_done(dp, "other1@CIC", DIAL_ANSWERED);
	spin(loop);
	assert_true(was_dialled("other2@CIC"));
	dial_pacer_free(dp);
	ev_loop_destroy(loop);
}

static void test_exempt_ip_has_no_per_ip_cap(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dial_pacer *dp = pacer(loop, "127.0.0.0/8");
	char id[32];

	(void)state;
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof id, "p%d@CIC", i);
		assert_true(admit(loop, dp, id, "127.0.0.1", 6000 + i));
	}
	dial_pacer_free(dp);
	ev_loop_destroy(loop);
}

static void test_failed_address_backed_off_for_every_name(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dial_pacer *dp = pacer(loop, "");

	(void)state;
	assert_true(admit(loop, dp, "a@CIC", "10.0.0.9", 4000));
	dial_pacer_done(dp, "a@CIC", DIAL_FAILED);
	assert_true(dial_pacer_backoff(dp, "10.0.0.9", 4000) > 29);
	assert_true(dial_pacer_backoff(dp, "10.0.0.9", 4001) == 0);
	/* Another name at that address waits out the backoff... */
	assert_false(admit(loop, dp, "b@CIC", "10.0.0.9", 4000));
	assert_int_equal(dial_pacer_waiting(dp), 1);
	/* ...without holding up a name elsewhere, even listed after it. */
	assert_true(admit(loop, dp, "c@CIC", "10.0.0.1", 5000));
	spin(loop);
	assert_false(was_dialled("b@CIC"));
	/* A completed handshake clears the address. */
	dial_pacer_done(dp, "c@CIC", DIAL_OK);
	assert_true(admit(loop, dp, "d@CIC", "10.0.0.1", 5000));
	/* An operator's reconnect of b: no longer held by the backoff. */
	dial_pacer_forgive(dp, "b@CIC", "10.0.0.9", 4000);
	assert_int_equal(dial_pacer_waiting(dp), 0);
	assert_true(dial_pacer_admit(dp, "b@CIC", "10.0.0.9", 4000));
	dial_pacer_free(dp);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps_per_address_and_ip),
		cmocka_unit_test(test_exempt_ip_has_no_per_ip_cap),
		cmocka_unit_test(test_failed_address_backed_off_for_every_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
