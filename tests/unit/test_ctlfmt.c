/* chatp2pctl's pure formatting (chatp2pctl/fmt.c): durations, display
 * widths (wcwidth: CJK and emoji take two columns), times, did-you-mean. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fmt.h"

static const char *dur(double s)
{
	static char buf[32];

	return fmt_duration(s, buf, sizeof buf);
}

static void test_durations(void **state)
{
	assert_string_equal(dur(0), "0s");
	assert_string_equal(dur(1.5), "1.5s");
	assert_string_equal(dur(42), "42s");
	assert_string_equal(dur(60), "1m");
	assert_string_equal(dur(266.1), "4m26s");   /* never "266.1 s" */
	assert_string_equal(dur(7140), "1h59m");
	assert_string_equal(dur(7200), "2h");
	assert_string_equal(dur(7205), "2h");       /* two units at most */
	assert_string_equal(dur(86400 + 4 * 3600), "1d4h");
	assert_string_equal(dur(-1), "-");
}

static void test_widths(void **state)
{
	fmt_utf8_ctype();
	assert_int_equal(fmt_width(""), 0);
	assert_int_equal(fmt_width("bob@CIC"), 7);
	assert_int_equal(fmt_width("olá"), 3);          /* one column each */
	assert_int_equal(fmt_width("日本語"), 6);        /* CJK: two each */
	assert_int_equal(fmt_width("\xf0\x9f\x98\x80"), 2); /* an emoji: two */
	assert_int_equal(fmt_width("e\xcc\x81"), 1);    /* a combining accent: none */
	assert_int_equal(fmt_width("\xff"), 1);         /* not UTF-8: one */
}

static void test_times(void **state)
{
	char buf[64];

	assert_int_equal(fmt_parse_iso("2025-10-27T10:00:00Z"), 1761559200);
	assert_int_equal(fmt_parse_iso("2025-10-27T10:00:00.042Z"), 1761559200);
	assert_int_equal(fmt_parse_iso("x"), -1);
	setenv("TZ", "UTC", 1);
	tzset();
	assert_string_equal(fmt_local_iso(1761559200, buf, sizeof buf), "2025-10-27T10:00:00+0000");
	assert_string_equal(fmt_local_short(1761559200, buf, sizeof buf), "Oct 27 10:00:00");
	setenv("TZ", "BRT+3", 1);
	tzset();
	assert_string_equal(fmt_local_iso(1761559200, buf, sizeof buf), "2025-10-27T07:00:00-0300");
}

static void test_did_you_mean(void **state)
{
	static const char *const cmds[] = { "status", "peers", "send", "reconnect", "rtt" };

	assert_int_equal(fmt_distance("statsu", "status", 3), 1); /* a transposition */
	assert_int_equal(fmt_distance("BOB", "bob", 3), 0);
	assert_string_equal(fmt_closest("statsu", cmds, 5), "status");
	assert_string_equal(fmt_closest("reconect", cmds, 5), "reconnect");
	assert_string_equal(fmt_closest("sned", cmds, 5), "send");
	assert_null(fmt_closest("xyzzy", cmds, 5));
}

static void test_rtt(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(fmt_ms(0.414, b, sizeof b), "0.41 ms");
	assert_string_equal(fmt_ms(22675.05, b, sizeof b), "22.68 s");
	assert_string_equal(fmt_ms(125000, b, sizeof b), "2m5s");
}

/* --since and --until as people write them (issue 19). */
static void test_when(void **state)
{
	time_t now = 1777636800, t; /* 2026-05-01T12:00:00Z */

	(void)state;
	setenv("TZ", "JST-9", 1);
	tzset();
	assert_true(fmt_parse_when("10m", now, &t));
	assert_int_equal(t, now - 600);
	assert_true(fmt_parse_when("2h", now, &t));
	assert_int_equal(t, now - 7200);
	assert_true(fmt_parse_when("2026-05-01T12:00:00Z", now, &t));
	assert_int_equal(t, now);
	assert_true(fmt_parse_when("2026-05-01T14:00+02:00", now, &t));
	assert_int_equal(t, now);
	/* No zone: local time (JST, UTC+9). */
	assert_true(fmt_parse_when("2026-05-01 21:00", now, &t));
	assert_int_equal(t, now);
	assert_true(fmt_parse_when("today", now, &t));
	assert_int_equal(t, now - 21 * 3600); /* 21:00 JST: midnight was 21 h ago */
	assert_true(fmt_parse_when("yesterday", now, &t));
	assert_int_equal(t, now - 45 * 3600);
	assert_false(fmt_parse_when("10 parsecs", now, &t));
	assert_false(fmt_parse_when("5x", now, &t));
	assert_false(fmt_parse_when("2026-13-01", now, &t));
	assert_false(fmt_parse_when("", now, &t));
	unsetenv("TZ");
	tzset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_widths),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_did_you_mean),
		cmocka_unit_test(test_rtt),
		cmocka_unit_test(test_when),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
