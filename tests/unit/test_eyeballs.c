/* Connecting to every address of a name in turn (RFC 8305). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/eyeballs.h"
#include "timeutil.h"

struct result {
	int calls;
	int fd;
	int port;
	char err[128];
	double at;
};

static void on_done(void *ctx, int fd, const struct sockaddr_storage *addr, socklen_t len,
		    const char *err)
{
	struct result *r = ctx;

	r->calls++;
	r->fd = fd;
	r->at = mono_now();
	if (fd >= 0)
		r->port = ntohs(addr->ss_family == AF_INET ? ((const struct sockaddr_in *)addr)->sin_port
							    : ((const struct sockaddr_in6 *)addr)->sin6_port);
	else
		snprintf(r->err, sizeof r->err, "%s", err);
}

static void stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void run(struct ev_loop *loop, struct result *r, double secs)
{
	ev_timer t;

	ev_timer_init(&t, stop_loop, secs, 0);
	ev_timer_start(loop, &t);
	while (r->calls == 0 && ev_is_active(&t))
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
}

/* A listener on 127.0.0.1 (port out), backlog as given. */
static int listener(int backlog, int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, backlog), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	*port = ntohs(sin.sin_port);
	return fd;
}

static socklen_t v4(struct sockaddr_storage *ss, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof *ss);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons((uint16_t)port);
	return sizeof *sin;
}

static socklen_t v6(struct sockaddr_storage *ss, int port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = in6addr_loopback;
	sin6->sin6_port = htons((uint16_t)port);
	return sizeof *sin6;
}

/* "localhost" in a root without /etc/hosts: ::1 first, the server on
 * 127.0.0.1 only.  The second address connects. */
static void test_v6_first_server_on_v4(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_storage a[2];
	socklen_t l[2];
	struct result r = { 0 };
	int port, lfd = listener(8, &port);

	l[0] = v6(&a[0], port);
	l[1] = v4(&a[1], port);
	struct eyeballs *e = eyeballs_start(loop, a, l, 2, EYEBALLS_DELAY, on_done, &r);
	assert_non_null(e);
	assert_int_equal(r.calls, 0); /* never inside the call */
	run(loop, &r, 5);
	assert_int_equal(r.calls, 1);
	assert_true(r.fd >= 0);
	assert_int_equal(r.port, port);
	close(r.fd);
	close(lfd);
	ev_loop_destroy(loop);
}

/* The first address does not complete (a full accept queue drops the SYN,
 * like a black hole; some kernels reset it instead): the next one is
 * connected after the delay (or the failure), well before connect_timeout. */
static void test_black_hole_first(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_storage a[2];
	socklen_t l[2];
	struct result r = { 0 };
	int hport, port, hfd = listener(0, &hport), lfd = listener(8, &port), fill[4];

	/* Fill the first listener's queue: its next SYNs are dropped. */
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		l[0] = v4(&a[0], hport);
		connect(fill[i], (struct sockaddr *)&a[0], l[0]);
	}
	usleep(50000);
	l[1] = v4(&a[1], port);
	double t0 = mono_now();
	eyeballs_start(loop, a, l, 2, EYEBALLS_DELAY, on_done, &r);
	run(loop, &r, 5);
	assert_int_equal(r.calls, 1);
	assert_true(r.fd >= 0);
	if (r.port == hport) {
		/* This kernel accepted it after all: nothing to measure. */
		close(r.fd);
	} else {
		assert_int_equal(r.port, port);
		assert_true(r.at - t0 < 3.0);
		close(r.fd);
	}
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(hfd);
	close(lfd);
	ev_loop_destroy(loop);
}

static void test_all_fail(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_storage a[2];
	socklen_t l[2];
	struct result r = { 0 };
	int p1, p2, f1 = listener(1, &p1), f2 = listener(1, &p2);

	close(f1); /* two ports nobody listens on */
	close(f2);
	l[0] = v4(&a[0], p1);
	l[1] = v4(&a[1], p2);
	eyeballs_start(loop, a, l, 2, EYEBALLS_DELAY, on_done, &r);
	assert_int_equal(r.calls, 0);
	run(loop, &r, 5);
	assert_int_equal(r.calls, 1);
	assert_true(r.fd < 0);
	assert_string_equal(r.err, strerror(ECONNREFUSED));
	ev_loop_destroy(loop);
}

static void test_cancel(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_storage a[1];
	socklen_t l[1];
	struct result r = { 0 };
	int port, lfd = listener(8, &port);

	l[0] = v4(&a[0], port);
	eyeballs_cancel(eyeballs_start(loop, a, l, 1, EYEBALLS_DELAY, on_done, &r));
	run(loop, &r, 0.3);
	assert_int_equal(r.calls, 0);
	eyeballs_cancel(NULL);
	close(lfd);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v6_first_server_on_v4),
		cmocka_unit_test(test_black_hole_first),
		cmocka_unit_test(test_all_fail),
		cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
