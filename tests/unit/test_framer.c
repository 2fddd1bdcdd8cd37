/* The line framer: every way bytes can arrive must give the same lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "framer.h"

/* Record events as text: "L:<line>" or "O" per event, '\n'-separated. */
struct rec {
	struct buf out;
	int lines, overflows;
	int stop_after; /* stop the feed after this many events (0: never) */
};

static int record(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct rec *r = ctx;

	if (ev == FRAMER_LINE) {
		buf_puts(&r->out, "L:");
		buf_append(&r->out, line, len);
		r->lines++;
	} else {
		buf_puts(&r->out, "O");
		r->overflows++;
	}
	buf_puts(&r->out, "\n");
	if (r->stop_after && r->lines + r->overflows >= r->stop_after)
		return 7;
	return 0;
}

static void feed_split(struct framer *f, const char *data, size_t len, size_t cut, struct rec *r)
{
	assert_int_equal(framer_feed(f, data, cut, record, r), 0);
	assert_int_equal(framer_feed(f, data + cut, len - cut, record, r), 0);
}

static void test_lines_at_every_split(void **state)
{
	const char *in = "{\"a\":1}\r\n\nhello\nwor ld\r\n\r\nlast";
	size_t len = strlen(in);
	const char *want = "L:{\"a\":1}\nL:\nL:hello\nL:wor ld\nL:\n";

	for (size_t cut = 0; cut <= len; cut++) {
		struct framer f;
		struct rec r = { BUF_INIT, 0, 0, 0 };
		const char *pend;

		framer_init(&f, FRAMER_MAX_LINE);
		feed_split(&f, in, len, cut, &r);
		assert_string_equal(buf_cstr(&r.out), want);
		assert_int_equal(framer_pending(&f, &pend), 4);
		assert_memory_equal(pend, "last", 4);
		framer_free(&f);
		buf_free(&r.out);
	}
}

static void test_byte_by_byte(void **state)
{
	const char *in = "one\ntwo\r\nthree\n";
	struct framer f;
	struct rec r = { BUF_INIT, 0, 0, 0 };

	framer_init(&f, 8);
	for (size_t i = 0; in[i]; i++)
		assert_int_equal(framer_feed(&f, in + i, 1, record, &r), 0);
	assert_string_equal(buf_cstr(&r.out), "L:one\nL:two\nL:three\n");
	framer_free(&f);
	buf_free(&r.out);
}

static void test_overflow_reported_once_and_skipped(void **state)
{
	size_t big = FRAMER_MAX_LINE + 5000;
	char *data = malloc(big + 16);

	memset(data, 'x', big);
	memcpy(data + big, "\nok\n", 4);
	for (size_t chunk = 1000; chunk <= big + 4; chunk += 7919) {
		struct framer f;
		struct rec r = { BUF_INIT, 0, 0, 0 };

		framer_init(&f, FRAMER_MAX_LINE);
		for (size_t off = 0; off < big + 4; off += chunk) {
			size_t n = big + 4 - off < chunk ? big + 4 - off : chunk;
			assert_int_equal(framer_feed(&f, data + off, n, record, &r), 0);
			/* never more than the limit held, whatever arrived */
			assert_true(framer_pending(&f, NULL) <= FRAMER_MAX_LINE + 1);
		}
		assert_int_equal(r.overflows, 1);
		assert_string_equal(buf_cstr(&r.out), "O\nL:ok\n");
		framer_free(&f);
		buf_free(&r.out);
	}
	free(data);
}

static void test_exact_limit(void **state)
{
	struct framer f;
	struct rec r = { BUF_INIT, 0, 0, 0 };
	char line[12];

	/* max 10: 10 bytes is a line, 11 is an overflow; a '\r' does not count */
	framer_init(&f, 10);
	memset(line, 'a', 10);
	memcpy(line + 10, "\r\n", 2);
	framer_feed(&f, line, 12, record, &r);
	framer_feed(&f, "aaaaaaaaaaa\n", 12, record, &r);
	framer_feed(&f, "aaaaa", 5, record, &r);
	framer_feed(&f, "aaaaa\r\n", 7, record, &r);
	framer_feed(&f, "aaaaa", 5, record, &r);
	framer_feed(&f, "aaaaaa\r\n", 8, record, &r);
	assert_string_equal(buf_cstr(&r.out),
			    "L:aaaaaaaaaa\nO\nL:aaaaaaaaaa\nO\n");
	framer_free(&f);
	buf_free(&r.out);
}

static void test_overflow_without_newline_then_more(void **state)
{
	struct framer f;
	struct rec r = { BUF_INIT, 0, 0, 0 };

	framer_init(&f, 4);
	framer_feed(&f, "abcdefgh", 8, record, &r);
	framer_feed(&f, "ijklmn", 6, record, &r);
	assert_int_equal(r.overflows, 1);
	assert_int_equal(framer_pending(&f, NULL), 0);
	framer_feed(&f, "op\nqr\n", 6, record, &r);
	assert_string_equal(buf_cstr(&r.out), "O\nL:qr\n");
	framer_free(&f);
	buf_free(&r.out);
}

static void test_stop_from_callback(void **state)
{
	struct framer f;
	struct rec r = { BUF_INIT, 0, 0, 1 };

	framer_init(&f, 100);
	assert_int_equal(framer_feed(&f, "a\nb\nc\n", 6, record, &r), 7);
	assert_string_equal(buf_cstr(&r.out), "L:a\n");
	framer_free(&f);
	buf_free(&r.out);
}

static void test_binary_and_nul(void **state)
{
	struct framer f;
	struct rec r = { BUF_INIT, 0, 0, 0 };
	const char in[] = { 'a', '\0', 'b', '\n' };

	framer_init(&f, 100);
	framer_feed(&f, in, sizeof in, record, &r);
	assert_int_equal(r.lines, 1);
	assert_int_equal(r.out.len, 6); /* "L:a\0b\n" */
	framer_free(&f);
	buf_free(&r.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_at_every_split),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_overflow_reported_once_and_skipped),
		cmocka_unit_test(test_exact_limit),
		cmocka_unit_test(test_overflow_without_newline_then_more),
		cmocka_unit_test(test_stop_from_callback),
		cmocka_unit_test(test_binary_and_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
