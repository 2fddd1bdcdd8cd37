/* The JSON layer: parsing (escapes, UTF-8, limits), accessors, generation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

static jval parse(const char *s)
{
	char err[128];

	return json_parse(s, strlen(s), err, sizeof err);
}

/* Parse ["<body>"] and return a copy of the one string, or "" on error. */
static const char *str_of(const char *doc, char *out, size_t outlen)
{
	jval v = parse(doc);
	const char *s = json_str(json_arr_at(v, 0));

	snprintf(out, outlen, "%s", s != NULL ? s : "<none>");
	json_free(v);
	return out;
}

static void test_parse_object(void **state)
{
	jval v = parse("{\"a\":\"x\",\"n\":5,\"t\":true,\"f\":false,\"z\":null,\"l\":[1,\"2\"],\"o\":{}}");
	long long n;
	double d;

	assert_non_null(v);
	assert_int_equal(json_obj_len(v), 7);
	assert_string_equal(json_obj_key(v, 0), "a");
	assert_string_equal(json_str(json_obj_val(v, 0)), "x");
	assert_null(json_obj_key(v, 7));
	assert_null(json_obj_val(v, 7));
	assert_string_equal(json_get_str(v, "a"), "x");
	assert_null(json_get_str(v, "n"));          /* wrong type */
	assert_null(json_get(v, "missing"));
	assert_true(json_int(json_get(v, "n"), &n));
	assert_int_equal(n, 5);
	assert_true(json_num(json_get(v, "n"), &d));
	assert_true(d == 5.0);
	assert_false(json_int(json_get(v, "a"), &n)); /* "x" is no number */
	assert_false(json_num(json_get(v, "a"), &d));
	assert_int_equal(json_bool(json_get(v, "t")), 1);
	assert_int_equal(json_bool(json_get(v, "f")), 0);
	assert_int_equal(json_bool(json_get(v, "z")), -1);
	assert_int_equal(json_bool(json_get(v, "n")), -1);
	assert_true(json_is_null(json_get(v, "z")));
	assert_false(json_is_null(json_get(v, "f")));
	assert_int_equal(json_arr_len(json_get(v, "l")), 2);
	assert_true(json_is_int(json_arr_at(json_get(v, "l"), 0)));
	assert_string_equal(json_str(json_arr_at(json_get(v, "l"), 1)), "2");
	assert_null(json_arr_at(json_get(v, "l"), 2));
	assert_int_equal(json_arr_len(json_get(v, "o")), 0); /* not an array */
	assert_int_equal(json_obj_len(json_get(v, "o")), 0);
	json_free(v);
}

static void test_accessors_null(void **state)
{
	long long n;
	double d;
	jval arr = parse("[1,2]");

	assert_null(json_get(NULL, "a"));
	assert_null(json_get(arr, "a"));              /* not an object */
	assert_null(json_str(NULL));
	assert_false(json_is_int(NULL));
	assert_false(json_int(NULL, &n));
	assert_false(json_num(NULL, &d));
	assert_int_equal(json_bool(NULL), -1);
	assert_false(json_is_null(NULL));
	assert_int_equal(json_arr_len(NULL), 0);
	assert_null(json_arr_at(NULL, 0));
	assert_int_equal(json_obj_len(arr), 0);
	assert_null(json_obj_key(arr, 0));
	assert_null(json_obj_val(NULL, 0));
	assert_null(json_get_str(NULL, "a"));
	json_free(arr);
	json_free(NULL);
}

static void test_parse_errors(void **state)
{
	const char *bad[] = {
		"", "   ", "{", "}", "{\"a\":}", "{'a':1}", "{\"a\":1,}", "nul",
		"{\"a\":1} {\"b\":2}",  /* two documents on one line */
		"{\"a\":1}x",           /* trailing garbage */
		"[\"\\uZZZZ\"]",        /* bad escape */
		"[\"\\q\"]",
		"[\"a\nb\"]",           /* raw control character in a string */
	};
	char err[128];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		jval v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
		if (v != NULL)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
		assert_null(strchr(err, '\n'));
	}
	/* A document need not be an object at this layer. */
	jval v = parse("42");
	assert_true(json_is_int(v));
	json_free(v);
	/* Trailing whitespace is fine. */
	v = parse("{\"a\":1}  \r\n");
	assert_non_null(v);
	json_free(v);
	/* Length is honoured: no NUL terminator needed. */
	v = json_parse("{\"a\":1}GARBAGE", 7, err, sizeof err);
	assert_non_null(v);
	json_free(v);
}

static void test_nul_rejected(void **state)
{
	static const char doc[] = "{\"a\":\"x\0y\"}";
	char err[128] = "";

	assert_null(json_parse(doc, sizeof doc - 1, err, sizeof err));
	assert_non_null(strstr(err, "NUL"));
	assert_null(json_parse("{}\0", 3, err, sizeof err));
}

static void test_depth(void **state)
{
	char doc[300], err[128] = "";
	size_t n = 0;
	jval v;

	for (int i = 0; i < 64; i++)
		doc[n++] = '[';
	for (int i = 0; i < 64; i++)
		doc[n++] = ']';
	v = json_parse(doc, n, err, sizeof err);
	assert_non_null(v);
	json_free(v);

	/* One more level, mixing objects in, is refused before yajl runs. */
	n = 0;
	for (int i = 0; i < 64; i++)
		doc[n++] = '[';
	n += (size_t)snprintf(doc + n, sizeof doc - n, "{\"a\":");
	for (int i = 0; i < 64; i++)
		doc[n++] = ']';
	assert_null(json_parse(doc, n, err, sizeof err));
	assert_non_null(strstr(err, "deeper"));

	/* Brackets inside strings are not nesting. */
	n = (size_t)snprintf(doc, sizeof doc, "{\"a\":\"");
	for (int i = 0; i < 100; i++)
		doc[n++] = '{';
	n += (size_t)snprintf(doc + n, sizeof doc - n, "\\\"[[[\"}");
	v = json_parse(doc, n, err, sizeof err);
	assert_non_null(v);
	assert_int_equal(strlen(json_get_str(v, "a")), 104);
	json_free(v);
}

static void test_unicode_escapes(void **state)
{
	char s[64];

	/* Python's json.dumps escapes non-ASCII; it must decode to UTF-8. */
	assert_string_equal(str_of("[\"\\u00e9\"]", s, sizeof s), "\xc3\xa9");
	assert_string_equal(str_of("[\"\\u00E9t\\u00e9\"]", s, sizeof s), "\xc3\xa9t\xc3\xa9");
	assert_string_equal(str_of("[\"\\u20ac\"]", s, sizeof s), "\xe2\x82\xac");
	assert_string_equal(str_of("[\"\\ud83d\\ude00\"]", s, sizeof s), "\xf0\x9f\x98\x80");
	assert_string_equal(str_of("[\"\\uD83D\\uDE00!\"]", s, sizeof s), "\xf0\x9f\x98\x80!");
	/* Raw UTF-8 passes through. */
	assert_string_equal(str_of("[\"\xc3\xa9\xf0\x9f\x98\x80\"]", s, sizeof s),
			    "\xc3\xa9\xf0\x9f\x98\x80");
	/* Ordinary escapes. */
	assert_string_equal(str_of("[\"a\\n\\t\\\"\\\\\\/b\"]", s, sizeof s), "a\n\t\"\\/b");
}

/* yajl alone turns a lone high surrogate into '?', pairs it with any escape
 * that follows (\ud83d\u0041 became U+1F441), emits a lone low surrogate as
 * the invalid UTF-8 ED B8 80, and cuts a string at \u0000.  json.c rewrites
 * all of those to U+FFFD (EF BF BD) before yajl sees them. */
static void test_lone_surrogates(void **state)
{
	char s[64];

	assert_string_equal(str_of("[\"\\ud83d\"]", s, sizeof s), "\xef\xbf\xbd");
	assert_string_equal(str_of("[\"\\ud83dabc\"]", s, sizeof s), "\xef\xbf\xbd" "abc");
	assert_string_equal(str_of("[\"\\ude00x\"]", s, sizeof s), "\xef\xbf\xbdx");
	assert_string_equal(str_of("[\"\\ud83d\\u0041z\"]", s, sizeof s), "\xef\xbf\xbd" "Az");
	assert_string_equal(str_of("[\"\\ud83d\\ud83d\\ude00\"]", s, sizeof s),
			    "\xef\xbf\xbd\xf0\x9f\x98\x80");
	assert_string_equal(str_of("[\"\\ude00\\ud83d\"]", s, sizeof s), "\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(str_of("[\"a\\u0000b\"]", s, sizeof s), "a\xef\xbf\xbd" "b");
	/* An escaped backslash followed by "ud83d" is plain text. */
	assert_string_equal(str_of("[\"\\\\ud83d\"]", s, sizeof s), "\\ud83d");
	/* The same rules apply to keys. */
	jval v = parse("{\"k\\udc00\":1}");
	assert_string_equal(json_obj_key(v, 0), "k\xef\xbf\xbd");
	json_free(v);
}

static void test_invalid_utf8_rejected(void **state)
{
	const char *bad[] = {
		"[\"\xff\"]",
		"[\"\xc0\x80\"]",           /* overlong NUL */
		"[\"\xe0\x80\xaf\"]",       /* overlong '/' */
		"[\"\xed\xa0\xbd\"]",       /* encoded surrogate */
		"[\"\xf4\x90\x80\x80\"]",   /* past U+10FFFF */
		"[\"\xc3\"]",               /* truncated */
		"[\"\x80\"]",               /* stray continuation */
	};
	char err[128];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		jval v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
		if (v != NULL)
			fail_msg("accepted bad UTF-8 #%zu", i);
	}
	/* Truncated at the very end of the text. */
	assert_null(json_parse("[\"\xe2\x82", 5, err, sizeof err));
}

static void test_numbers(void **state)
{
	jval v = parse("[5000,1.5,1e3,-7,0,99999999999999999999,-0.5,9223372036854775807]");
	long long n;
	double d;

	assert_true(json_is_int(json_arr_at(v, 0)));
	assert_true(json_int(json_arr_at(v, 0), &n));
	assert_int_equal(n, 5000);
	assert_false(json_is_int(json_arr_at(v, 1)));
	assert_false(json_int(json_arr_at(v, 1), &n));
	assert_true(json_num(json_arr_at(v, 1), &d));
	assert_true(d == 1.5);
	assert_false(json_is_int(json_arr_at(v, 2)));
	assert_true(json_num(json_arr_at(v, 2), &d));
	assert_true(d == 1000.0);
	assert_true(json_int(json_arr_at(v, 3), &n));
	assert_int_equal(n, -7);
	assert_true(json_int(json_arr_at(v, 4), &n));
	assert_int_equal(n, 0);
	assert_false(json_is_int(json_arr_at(v, 5)));  /* overflows long long */
	assert_true(json_num(json_arr_at(v, 5), &d));
	assert_true(json_num(json_arr_at(v, 6), &d));
	assert_true(d == -0.5);
	assert_true(json_int(json_arr_at(v, 7), &n));
	assert_true(n == 9223372036854775807LL);
	json_free(v);
}

static void test_duplicates(void **state)
{
	jval v = parse("{\"a\":1,\"b\":2,\"a\":\"last\"}");

	/* The last duplicate wins, as in Python. */
	assert_string_equal(json_get_str(v, "a"), "last");
	assert_int_equal(json_obj_len(v), 3);
	json_free(v);
}

/* jg_double(d, decimals) inside an array must generate exactly want. */
static void expect_double(double d, int decimals, const char *want)
{
	struct buf b = BUF_INIT;
	yajl_gen g = jg_new();

	jg_arr(g);
	jg_double(g, d, decimals);
	jg_end_arr(g);
	assert_int_equal(jg_finish(g, &b), 0);
	if (strlen(want) != b.len || memcmp(b.data, want, b.len) != 0)
		fail_msg("jg_double(%g, %d): got %.*s want %s", d, decimals, (int)b.len, b.data, want);
	jg_free(g);
	buf_free(&b);
}

static void test_jg_double(void **state)
{
	expect_double(1.5, 3, "[1.500]\n");
	expect_double(0.41, 2, "[0.41]\n");
	expect_double(2.0 / 3.0, 3, "[0.667]\n");
	expect_double(-1.25, 1, "[-1.2]\n");    /* exact binary half: round-half-even */
	expect_double(3.7, 0, "[4]\n");
	expect_double(3.7, -2, "[4]\n");        /* negative decimals read as 0 */
	expect_double(0, 2, "[0.00]\n");
	expect_double(NAN, 2, "[null]\n");      /* JSON has no NaN */
	expect_double(INFINITY, 2, "[null]\n");
	expect_double(-INFINITY, 2, "[null]\n");
	expect_double(1e20, 1, "[100000000000000000000.0]\n");

	/* Huge values stay numbers; the decimals are capped at 17. */
	struct buf b = BUF_INIT;
	yajl_gen g = jg_new();
	jg_arr(g);
	jg_double(g, 1e300, 2);
	jg_double(g, 0.1, 40);
	jg_end_arr(g);
	assert_int_equal(jg_finish(g, &b), 0);
	jg_free(g);
	assert_int_equal(b.data[0], '[');
	assert_int_equal(b.data[1], '1');
	assert_null(memchr(b.data, 'n', b.len)); /* no null */
	assert_non_null(strstr(buf_cstr(&b), ",0.10000000000000001]"));
	buf_free(&b);
}

static void test_jg_double_locale(void **state)
{
	const char *locs[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "pt_BR.UTF-8" };
	const char *got = NULL;

	for (size_t i = 0; got == NULL && i < sizeof locs / sizeof locs[0]; i++)
		got = setlocale(LC_NUMERIC, locs[i]);
	if (got == NULL) {
		skip(); /* no comma locale installed here */
		return;
	}
	expect_double(1.5, 2, "[1.50]\n");
	setlocale(LC_NUMERIC, "C");
}

static void test_jg_strings(void **state)
{
	struct buf b = BUF_INIT;
	yajl_gen g = jg_new();

	jg_arr(g);
	assert_int_equal(jg_str(g, "a\nb\x01\"\\/\xc3\xa9"), 0);
	assert_int_equal(jg_str(g, "\xff"), -1);
	assert_int_equal(jg_str(g, "\xed\xa0\x80"), -1);  /* surrogate: yajl alone allows it */
	assert_int_equal(jg_str(g, "\xc0\x80"), -1);      /* overlong */
	assert_int_equal(jg_str(g, "\xf0\x9f\x98"), -1);  /* truncated */
	assert_int_equal(jg_strn(g, "ab\0c", 4), 0);      /* an explicit-length NUL is escaped */
	assert_int_equal(jg_strn(g, "xyz", 2), 0);
	jg_int(g, -42);
	jg_bool(g, true);
	jg_bool(g, false);
	jg_null(g);
	jg_map(g);
	JG_KSTR(g, "k", "v");
	JG_KINT(g, "i", 7);
	JG_KBOOL(g, "b", false);
	jg_end_map(g);
	jg_end_arr(g);
	buf_puts(&b, "prefix:");
	assert_int_equal(jg_finish(g, &b), 0);
	assert_string_equal(buf_cstr(&b),
			    "prefix:[\"a\\nb\\u0001\\\"\\\\/\xc3\xa9\",\"ab\\u0000c\",\"xy\",-42,true,"
			    "false,null,{\"k\":\"v\",\"i\":7,\"b\":false}]\n");

	/* The generator is reusable after jg_finish. */
	jg_map(g);
	JG_KINT(g, "n", 1);
	jg_end_map(g);
	assert_int_equal(jg_finish(g, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "]\n{\"n\":1}\n"));
	jg_free(g);
	jg_free(NULL);
	buf_free(&b);
}

static void test_jg_value_roundtrip(void **state)
{
	static const char doc[] =
		"{\"a\":[1,2.50,-3e2,\"x\\u00e9\\ud83d\\ude00\",true,false,null,{\"b\":{},\"c\":[]}],"
		"\"d\":\"q\\\"\\n\",\"e\":12345678901234}";
	static const char want[] =
		"{\"a\":[1,2.50,-3e2,\"x\xc3\xa9\xf0\x9f\x98\x80\",true,false,null,{\"b\":{},\"c\":[]}],"
		"\"d\":\"q\\\"\\n\",\"e\":12345678901234}\n";
	struct buf b = BUF_INIT;
	yajl_gen g = jg_new();
	jval v = parse(doc);

	assert_non_null(v);
	jg_value(g, v);
	assert_int_equal(jg_finish(g, &b), 0);
	assert_string_equal(buf_cstr(&b), want);

	/* And the copy parses back to the same tree. */
	jval w = json_parse(b.data, b.len, NULL, 0);
	assert_non_null(w);
	assert_string_equal(json_str(json_arr_at(json_get(w, "a"), 3)), "x\xc3\xa9\xf0\x9f\x98\x80");
	json_free(w);

	/* NULL copies as null. */
	buf_reset(&b);
	jg_value(g, NULL);
	assert_int_equal(jg_finish(g, &b), 0);
	assert_string_equal(buf_cstr(&b), "null\n");

	json_free(v);
	jg_free(g);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_object),
		cmocka_unit_test(test_accessors_null),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_nul_rejected),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_unicode_escapes),
		cmocka_unit_test(test_lone_surrogates),
		cmocka_unit_test(test_invalid_utf8_rejected),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_jg_double),
		cmocka_unit_test(test_jg_double_locale),
		cmocka_unit_test(test_jg_strings),
		cmocka_unit_test(test_jg_value_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
