/* The control layer's compact event history (control/history.c): a
 * bounded ring whose slots keep copies of the strings, and a hand-written
 * renderer that must give exactly what the yajl generator (common/json.c)
 * gave for the same event. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/history.h"
#include "json.h"

/* What control.c built with yajl before (41af934), for a MESSAGE event. */
static void yajl_message(const struct hist_event *e, struct buf *out)
{
	yajl_gen g = jg_new();

	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	JG_KSTR(g, "method", "event");
	jg_str(g, "params");
	jg_map(g);
	JG_KINT(g, "seq", (long long)e->seq);
	JG_KSTR(g, "type", "message");
	JG_KSTR(g, "at", e->at);
	const char *keys[4] = { "from", "to", "text", "msg_id" };
	for (int i = 0; i < 4; i++) {
		if (e->s[i] == NULL)
			continue;
		jg_str(g, keys[i]);
		if (jg_str(g, e->s[i]) != 0)
			jg_null(g);
	}
	if (e->flag)
		JG_KBOOL(g, "src_mismatch", true);
	JG_KBOOL(g, "secure", e->s[4] != NULL);
	if (e->s[4])
		JG_KSTR(g, "fingerprint", e->s[4]);
	if (e->num > 0)
		JG_KINT(g, "id", e->num);
	jg_end_map(g);
	jg_end_map(g);
	jg_finish(g, out);
	jg_free(g);
}

static void yajl_ack(const struct hist_event *e, struct buf *out)
{
	yajl_gen g = jg_new();

	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	JG_KSTR(g, "method", "event");
	jg_str(g, "params");
	jg_map(g);
	JG_KINT(g, "seq", (long long)e->seq);
	JG_KSTR(g, "type", "ack");
	JG_KSTR(g, "at", e->at);
	JG_KSTR(g, "peer_id", e->s[0]);
	JG_KSTR(g, "msg_id", e->s[1]);
	jg_str(g, "rtt_ms");
	jg_double(g, e->rtt_ms, 3);
	if (e->flag)
		JG_KBOOL(g, "late", true);
	jg_end_map(g);
	jg_end_map(g);
	jg_finish(g, out);
	jg_free(g);
}

static void test_render_like_yajl(void **state)
{
	static const char *const texts[] = {
		"oi", "", "quote \" backslash \\ slash /", "tab\tnl\ncr\rff\fbs\b",
		"ctl \x01\x1f del \x7f", "olá ☃ 😀", "bad \xc3\x28 utf8", "overlong \xc0\xaf",
		"surrogate \xed\xa0\x80", "long ........................................................",
	};
	struct history h;
	struct buf a = BUF_INIT, b = BUF_INIT;

	(void)state;
	history_init(&h, 4);
	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		/* Every other one from a TLS connection, with the key it proved. */
		const char *strs[5] = { "alice@CIC", i % 3 ? "bob@CIC" : NULL, texts[i], "id-1",
					i % 2 ? "SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU" : NULL };
		struct hist_event *e = history_add(&h, 100 + i, strs, 5);
		e->kind = EV_MESSAGE;
		snprintf(e->at, sizeof e->at, "2026-12-07T00:00:00.123Z");
		e->flag = i % 2;
		e->num = (long long)i * 1000;
		buf_reset(&a);
		buf_reset(&b);
		history_render(e, &a);
		yajl_message(e, &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
	}
	for (int i = 0; i < 3; i++) {
		const char *strs[2] = { "bob@CIC", "m-2" };
		struct hist_event *e = history_add(&h, 200 + (uint64_t)i, strs, 2);
		e->kind = EV_ACK;
		snprintf(e->at, sizeof e->at, "2026-12-07T00:00:01.000Z");
		e->rtt_ms = i == 0 ? 0.0004 : i == 1 ? 12.3456 : 123456.789;
		e->flag = i == 2;
		buf_reset(&a);
		buf_reset(&b);
		history_render(e, &a);
		yajl_ack(e, &b);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.data, b.data, a.len);
	}
	buf_free(&a);
	buf_free(&b);
	history_free(&h);
}

/* Bounded: the oldest goes, each slot holds its own copies. */
static void test_ring_bounds(void **state)
{
	struct history h;
	char text[64];

	(void)state;
	history_init(&h, 3);
	for (int i = 1; i <= 10; i++) {
		snprintf(text, sizeof text, "message %d", i);
		const char *strs[2] = { "p@N", text };
		struct hist_event *e = history_add(&h, (uint64_t)i, strs, 2);
		e->kind = EV_PEER_STALE;
		memset(text, 'x', sizeof text - 1); /* the slot kept a copy */
	}
	assert_int_equal(h.len, 3);
	for (size_t i = 0; i < h.len; i++) {
		char want[64];
		snprintf(want, sizeof want, "message %d", 8 + (int)i);
		assert_int_equal(history_at(&h, i)->seq, 8 + i);
		assert_string_equal(history_at(&h, i)->s[1], want);
		assert_null(history_at(&h, i)->s[2]);
	}
	/* A big one, then small ones: the slot's room is given back. */
	char *big = malloc(100000);
	memset(big, 'b', 99999);
	big[99999] = '\0';
	const char *bs[1] = { big };
	history_add(&h, 11, bs, 1);
	free(big);
	for (int i = 12; i <= 20; i++) {
		const char *ss[1] = { "small" };
		history_add(&h, (uint64_t)i, ss, 1);
	}
	for (size_t i = 0; i < h.cap; i++)
		assert_true(h.ring[i].cap <= 8192);
	history_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_like_yajl),
		cmocka_unit_test(test_ring_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
