/* peer_id = name@namespace validation, split and build. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "peerid.h"

static void test_names(void **state)
{
	char n64[65], n65[66], u64[64 * 2 + 1];

	memset(n64, 'a', 64);
	n64[64] = '\0';
	memset(n65, 'a', 65);
	n65[65] = '\0';
	for (int i = 0; i < 64; i++)
		memcpy(u64 + 2 * i, "\xc3\xa9", 2); /* 64 × é: 128 bytes, 64 characters */
	u64[128] = '\0';

	assert_true(name_valid("alice"));
	assert_true(name_valid("CIC"));
	assert_true(name_valid("a"));
	assert_true(name_valid("jo\xc3\xa3o"));      /* joão */
	assert_true(name_valid("bob smith"));
	assert_true(name_valid(n64));
	assert_true(name_valid(u64));
	assert_false(name_valid(n65));
	assert_false(name_valid(""));
	assert_false(name_valid(NULL));
	assert_false(name_valid("a@b"));
	assert_false(name_valid(" alice"));
	assert_false(name_valid("alice "));
	assert_false(name_valid("al\nice"));
	assert_false(name_valid("al\tice"));
	assert_false(name_valid("\xc3"));            /* truncated UTF-8 */
	assert_false(name_valid("\xc0\xaf"));        /* overlong */
	assert_false(name_valid("\xed\xa0\x80"));    /* surrogate */
	assert_false(name_valid("\xff"));
}

static void test_peer_ids(void **state)
{
	char name[NAME_MAX_BYTES + 1], ns[NAME_MAX_BYTES + 1], id[PEER_ID_MAX + 1];

	assert_true(peer_id_valid("alice@CIC"));
	assert_true(peer_id_valid("jo\xc3\xa3o@UnB"));
	assert_false(peer_id_valid("alice"));
	assert_false(peer_id_valid("@CIC"));
	assert_false(peer_id_valid("alice@"));
	assert_false(peer_id_valid("a@b@c"));
	assert_false(peer_id_valid(""));
	assert_false(peer_id_valid(NULL));

	assert_true(peer_id_split("alice@CIC", name, ns));
	assert_string_equal(name, "alice");
	assert_string_equal(ns, "CIC");
	assert_false(peer_id_split("nope", name, ns));

	assert_string_equal(peer_id_ns("bob@UnB"), "UnB");
	assert_null(peer_id_ns("bob"));

	peer_id_make(id, "carol", "CIC");
	assert_string_equal(id, "carol@CIC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_peer_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
