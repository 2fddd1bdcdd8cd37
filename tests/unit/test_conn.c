/* net/conn.c on its own: a transport that knows nothing of peers, used
 * through its callbacks and context with no node around it (issue 16).
 * The other end is a plain socket of a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "net/conn.h"

struct owner {
	struct ev_loop *loop;
	char lines[16][64];
	int nlines;
	int overflows, deadlines, closes;
	char reason[128];
	size_t wrote_bytes;
};

static void o_connected(void *ctx, struct conn *c) { (void)ctx; (void)c; }
static void o_line(void *ctx, struct conn *c, const char *text, size_t len)
{
	struct owner *o = ctx;

	(void)c;
	if (o->nlines < 16)
		snprintf(o->lines[o->nlines++], 64, "%.*s", (int)len, text);
	ev_break(o->loop, EVBREAK_ONE);
}
static void o_overflow(void *ctx, struct conn *c) { ((struct owner *)ctx)->overflows++; (void)c; }
static void o_wrote(void *ctx, struct conn *c, const char *line, size_t len)
{
	(void)c;
	(void)line;
	((struct owner *)ctx)->wrote_bytes += len;
}
static void o_first(void *ctx, struct conn *c) { (void)ctx; (void)c; }
static void o_deadline(void *ctx, struct conn *c)
{
	struct owner *o = ctx;

	o->deadlines++;
	conn_close(c, "owner's deadline");
	ev_break(o->loop, EVBREAK_ONE);
}
static void o_closed(void *ctx, struct conn *c, const char *reason)
{
	struct owner *o = ctx;

	(void)c;
	o->closes++;
	snprintf(o->reason, sizeof o->reason, "%s", reason);
	ev_break(o->loop, EVBREAK_ONE);
}

static const struct conn_cbs cbs = {
	.connected = o_connected, .line = o_line, .overflow = o_overflow, .wrote = o_wrote,
	.first_written = o_first, .deadline = o_deadline, .closed = o_closed,
};

/* Run the loop until cond or a second passes. */
#define RUN_UNTIL(loop, cond)                                                  \
	for (int i_ = 0; i_ < 100 && !(cond); i_++)                           \
		ev_run((loop), EVRUN_ONCE)

static struct conn *setup_pair(struct owner *o, struct config *cfg, int *peer)
{
	int sv[2];
	struct sockaddr_storage sa = { .ss_family = AF_UNIX };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	*peer = sv[1];
	memset(o, 0, sizeof *o);
	o->loop = ev_loop_new(EVFLAG_AUTO);
	return conn_accept(o->loop, cfg, sv[0], &sa, &cbs, o);
}

static void test_lines_up_and_batched_down(void **state)
{
	struct config cfg;
	struct owner o;
	int peer;
	char got[256];

	(void)state;
	config_defaults(&cfg);
	struct conn *c = setup_pair(&o, &cfg, &peer);
	/* Lines in, cut by the framer, blank ones skipped. */
	const char in[] = "{\"a\":1}\n\n{\"b\":2}\n";
	assert_int_equal(write(peer, in, sizeof in - 1), (ssize_t)(sizeof in - 1));
	RUN_UNTIL(o.loop, o.nlines >= 2);
	assert_int_equal(o.nlines, 2);
	assert_string_equal(o.lines[0], "{\"a\":1}");
	assert_string_equal(o.lines[1], "{\"b\":2}");
	/* Batched: two lines written in one loop iteration leave together. */
	conn_start(c, true);
	struct buf l1 = BUF_INIT, l2 = BUF_INIT;
	buf_puts(&l1, "one\n");
	buf_puts(&l2, "two\n");
	assert_int_equal(conn_write(c, &l1, CW_DATA, NULL), 0);
	assert_int_equal(conn_write(c, &l2, CW_URGENT, NULL), 0);
	assert_int_equal(o.wrote_bytes, 8);
	ev_run(o.loop, EVRUN_NOWAIT);
	ssize_t n = read(peer, got, sizeof got);
	assert_int_equal(n, 8);
	assert_memory_equal(got, "one\ntwo\n", 8);
	buf_free(&l1);
	buf_free(&l2);
	/* The other end goes: the owner hears it once, with why. */
	close(peer);
	RUN_UNTIL(o.loop, o.closes > 0);
	assert_int_equal(o.closes, 1);
	assert_string_equal(o.reason, "connection closed by peer");
	ev_loop_destroy(o.loop);
}

static void test_one_per_write_and_answers(void **state)
{
	struct config cfg;
	struct owner o;
	int peer;
	char got[256];

	(void)state;
	config_defaults(&cfg);
	cfg.limits.send_gap_ms = 10000; /* only an answer ends the gap here */
	struct conn *c = setup_pair(&o, &cfg, &peer);
	conn_start(c, false);
	struct buf a = BUF_INIT, b = BUF_INIT;
	buf_puts(&a, "first\n");
	buf_puts(&b, "second\n");
	assert_int_equal(conn_write(c, &a, CW_DATA_AWAIT, "id-1"), 0);
	assert_int_equal(conn_write(c, &b, CW_DATA_AWAIT, "id-2"), 0);
	ev_run(o.loop, EVRUN_NOWAIT);
	/* One line per write, the second waits for the first one's answer. */
	assert_int_equal(read(peer, got, sizeof got), 6);
	assert_true(conn_queued_bytes(c) == 7);
	conn_send_done(c, "id-1");
	ev_run(o.loop, EVRUN_NOWAIT);
	assert_int_equal(read(peer, got, sizeof got), 7);
	assert_memory_equal(got, "second\n", 7);
	/* Over the bound: closed, the caller told by -1. */
	struct buf big = BUF_INIT;
	char chunk[1024];
	memset(chunk, 'x', sizeof chunk);
	while (big.len <= (size_t)cfg.limits.out_queue_bytes)
		buf_append(&big, chunk, sizeof chunk);
	assert_int_equal(conn_write(c, &big, CW_DATA, NULL), -1);
	assert_int_equal(o.closes, 1);
	assert_string_equal(o.reason, "output queue full");
	buf_free(&a);
	buf_free(&b);
	buf_free(&big);
	close(peer);
	ev_loop_destroy(o.loop);
}

static void test_owner_deadline(void **state)
{
	struct config cfg;
	struct owner o;
	int peer;

	(void)state;
	config_defaults(&cfg);
	struct conn *c = setup_pair(&o, &cfg, &peer);
	conn_arm_deadline(c, 0.01);
	RUN_UNTIL(o.loop, o.closes > 0);
	assert_int_equal(o.deadlines, 1);
	assert_string_equal(o.reason, "owner's deadline");
	close(peer);
	ev_loop_destroy(o.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_up_and_batched_down),
		cmocka_unit_test(test_one_per_write_and_answers),
		cmocka_unit_test(test_owner_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
