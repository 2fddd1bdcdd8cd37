/* Which source addresses the per-address connection cap spares. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "net/guard.h"

static void test_addr_in(void **state)
{
	const char *def = "127.0.0.0/8, ::1";
	char bad[64];

	assert_true(guard_addr_in(def, "127.0.0.1"));
	assert_true(guard_addr_in(def, "127.1.2.3"));
	assert_true(guard_addr_in(def, "::1"));
	assert_true(guard_addr_in(def, "::ffff:127.0.0.1"));
	assert_false(guard_addr_in(def, "128.0.0.1"));
	assert_false(guard_addr_in(def, "10.0.0.1"));
	assert_false(guard_addr_in(def, "::2"));
	assert_false(guard_addr_in("", "127.0.0.1"));
	assert_true(guard_addr_in("10.1.2.3 192.168.0.0/16", "192.168.44.5"));
	assert_true(guard_addr_in("10.1.2.3,192.168.0.0/16", "10.1.2.3"));
	assert_false(guard_addr_in("10.1.2.3", "10.1.2.4"));
	assert_true(guard_addr_in("10.0.0.0/9", "10.127.255.255"));
	assert_false(guard_addr_in("10.0.0.0/9", "10.128.0.0"));
	assert_true(guard_addr_in("fd00::/8", "fd12::7"));
	assert_true(guard_addr_in("0.0.0.0/0", "8.8.8.8"));
	assert_false(guard_addr_in("nonsense, 1.2.3.4/33", "1.2.3.4"));
	assert_false(guard_addr_in(def, "not an ip"));
	assert_false(guard_addr_list_bad(def, bad, sizeof bad));
	assert_true(guard_addr_list_bad("::1, 1.2.3.4/33", bad, sizeof bad));
	assert_string_equal(bad, "1.2.3.4/33");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_in),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
