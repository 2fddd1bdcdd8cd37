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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_widths),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_did_you_mean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
