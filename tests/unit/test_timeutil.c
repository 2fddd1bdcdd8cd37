/* Timestamps on the wire and the monotonic clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "msgid.h"
#include "timeutil.h"

static void test_format(void **state)
{
	char out[ISO8601_LEN];

	iso8601_format(out, 1761559200, 0, false);
	assert_string_equal(out, "2025-10-27T10:00:00Z");
	iso8601_format(out, 1761559200, 42, true);
	assert_string_equal(out, "2025-10-27T10:00:00.042Z");
	iso8601_now(out, false);
	assert_int_equal(strlen(out), 20);
	assert_int_equal(out[19], 'Z');
}

static void test_parse_lenient(void **state)
{
	const double t = 1761559200;
	double e;

	assert_true(iso8601_parse("2025-10-27T10:00:00Z", &e));
	assert_true(e == t);
	assert_true(iso8601_parse("2025-10-27T10:00:00.250Z", &e));
	assert_true(fabs(e - (t + 0.25)) < 1e-6);
	assert_true(iso8601_parse("2025-10-27T10:00:00.123456", &e)); /* naive: UTC */
	assert_true(fabs(e - (t + 0.123456)) < 1e-6);
	assert_true(iso8601_parse("2025-10-27T07:00:00-03:00", &e));
	assert_true(e == t);
	assert_true(iso8601_parse("2025-10-27T12:00:00+0200", &e));
	assert_true(e == t);
	assert_true(iso8601_parse("2025-10-27T10:00:00+00:00", &e));
	assert_true(e == t);
	assert_true(iso8601_parse("2025-10-27 10:00:00", &e));
	assert_true(e == t);

	assert_false(iso8601_parse("", &e));
	assert_false(iso8601_parse(NULL, &e));
	assert_false(iso8601_parse("yesterday", &e));
	assert_false(iso8601_parse("2025-13-27T10:00:00Z", &e));
	assert_false(iso8601_parse("2025-10-27T10:00:00Zjunk", &e));
	assert_false(iso8601_parse("2025-10-27T10:00Z", &e));
	assert_false(iso8601_parse("2025-10-27T10:00:00.Z", &e));
}

static void test_round_trip(void **state)
{
	char out[ISO8601_LEN];
	double e;

	iso8601_format(out, 2000000000, 999, true);
	assert_true(iso8601_parse(out, &e));
	assert_true(fabs(e - 2000000000.999) < 1e-6);
}

static void test_mono(void **state)
{
	double a = mono_now(), b = mono_now();

	assert_true(a > 0);
	assert_true(b >= a);
}

static void test_msgid(void **state)
{
	char a[MSGID_LEN], b[MSGID_LEN];

	msgid_new(a);
	msgid_new(b);
	assert_int_equal(strlen(a), 36);
	assert_int_equal(a[14], '4'); /* version 4: random */
	assert_int_equal(a[8], '-');
	assert_string_not_equal(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse_lenient),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_mono),
		cmocka_unit_test(test_msgid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
