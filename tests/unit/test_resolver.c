/* The resolver on a real loop: numeric hosts at once, names through
 * getaddrinfo_a() and back through ev_async, cancel and free in flight.
 * Only /etc/hosts names and names that fail before any query is sent are
 * looked up: no traffic leaves the machine. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <netdb.h>
#include <string.h>

#include "net/resolver.h"

struct res {
	int calls;
	char err[128];
	struct sockaddr_storage ss;
	socklen_t len;
	struct resolver *free_me; /* resolver_free() from inside the callback */
};

static void on_resolved(void *ctx, const char *err, const struct sockaddr_storage *addr,
			socklen_t len)
{
	struct res *r = ctx;

	r->calls++;
	snprintf(r->err, sizeof r->err, "%s", err != NULL ? err : "");
	if (err == NULL) {
		r->ss = *addr;
		r->len = len;
	}
	if (r->free_me != NULL) {
		resolver_free(r->free_me);
		r->free_me = NULL;
	}
}

struct until {
	const int *ctr;
	int target;
};

static void prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct until *u = w->data;

	if (u->ctr != NULL && *u->ctr >= u->target)
		ev_break(loop, EVBREAK_ONE);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until *ctr >= target or timeout seconds pass. */
static bool run_until(struct ev_loop *loop, const int *ctr, int target, double timeout)
{
	struct until u = { ctr, target };
	ev_prepare p;
	ev_timer d;

	if (ctr != NULL && *ctr >= target)
		return true;
	ev_now_update(loop);
	ev_prepare_init(&p, prep_cb);
	p.data = &u;
	ev_prepare_start(loop, &p);
	ev_timer_init(&d, deadline_cb, timeout, 0.);
	ev_timer_start(loop, &d);
	ev_run(loop, 0);
	ev_prepare_stop(loop, &p);
	ev_timer_stop(loop, &d);
	return ctr == NULL || *ctr >= target;
}

static void test_numeric_v4(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&r.ss;

	assert_null(resolver_lookup(rs, "127.0.0.1", 8080, on_resolved, &r));
	assert_int_equal(r.calls, 1); /* before the return */
	assert_string_equal(r.err, "");
	assert_int_equal(r.len, sizeof(struct sockaddr_in));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 8080);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	resolver_free(rs);
	ev_loop_destroy(loop);
}

static void test_numeric_v6(void **state)
{
	static const char *const hosts[] = { "::1", "[::1]" };
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);

	for (size_t i = 0; i < 2; i++) {
		struct res r = { 0 };
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.ss;

		assert_null(resolver_lookup(rs, hosts[i], 443, on_resolved, &r));
		assert_int_equal(r.calls, 1);
		assert_string_equal(r.err, "");
		assert_int_equal(r.len, sizeof(struct sockaddr_in6));
		assert_int_equal(sin6->sin6_family, AF_INET6);
		assert_int_equal(ntohs(sin6->sin6_port), 443);
		assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	}
	resolver_free(rs);
	ev_loop_destroy(loop);
}

static void test_bad_arguments_immediate(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };
	char longname[300];

	assert_null(resolver_lookup(rs, "", 80, on_resolved, &r));
	assert_int_equal(r.calls, 1);
	assert_string_not_equal(r.err, "");
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_null(resolver_lookup(rs, longname, 80, on_resolved, &r));
	assert_int_equal(r.calls, 2);
	assert_string_not_equal(r.err, "");
	assert_null(resolver_lookup(rs, "127.0.0.1", 70000, on_resolved, &r));
	assert_int_equal(r.calls, 3);
	assert_string_not_equal(r.err, "");
	resolver_free(rs);
	ev_loop_destroy(loop);
}

/* A chroot or a stripped container may have no /etc/hosts: then "localhost"
 * resolves nowhere, and that is the machine's doing, not ours.  (A blocking
 * lookup is fine here: this is the test, not the loop.) */
static bool system_resolves_localhost(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo("localhost", "5000", &hints, &res);

	if (res)
		freeaddrinfo(res);
	return rc == 0;
}

static void test_localhost_async(void **state)
{
	if (!system_resolves_localhost()) {
		skip();
		return;
	}
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&r.ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r.ss;

	assert_non_null(resolver_lookup(rs, "localhost", 5000, on_resolved, &r));
	assert_int_equal(r.calls, 0); /* comes back through the loop */
	assert_true(run_until(loop, &r.calls, 1, 10.));
	assert_int_equal(r.calls, 1);
	assert_string_equal(r.err, "");
	if (r.ss.ss_family == AF_INET) {
		assert_int_equal(ntohs(sin->sin_port), 5000);
		assert_int_equal(ntohl(sin->sin_addr.s_addr) >> 24, 127);
	} else {
		assert_int_equal(r.ss.ss_family, AF_INET6);
		assert_int_equal(ntohs(sin6->sin6_port), 5000);
		assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	}
	resolver_free(rs);
	ev_loop_destroy(loop);
}

/* A 70-byte label cannot be encoded as a DNS query: the lookup fails in
 * glibc before anything is sent. */
static void test_invalid_name(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };
	char name[96];

	memset(name, 'x', 70);
	snprintf(name + 70, sizeof name - 70, ".invalid");
	assert_non_null(resolver_lookup(rs, name, 80, on_resolved, &r));
	assert_true(run_until(loop, &r.calls, 1, 10.));
	assert_int_equal(r.calls, 1);
	assert_string_not_equal(r.err, "");
	resolver_free(rs);
	ev_loop_destroy(loop);
}

static void test_cancel_no_callback(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res cancelled = { 0 }, other = { 0 };
	struct resolve_req *q;

	q = resolver_lookup(rs, "localhost", 1, on_resolved, &cancelled);
	assert_non_null(q);
	resolver_cancel(q);
	resolver_cancel(NULL);
	assert_non_null(resolver_lookup(rs, "localhost", 2, on_resolved, &other));
	assert_true(run_until(loop, &other.calls, 1, 10.));
	/* Give the cancelled one as long again to (not) show up. */
	run_until(loop, NULL, 0, 0.3);
	assert_int_equal(cancelled.calls, 0);
	assert_int_equal(other.calls, 1);
	resolver_free(rs);
	ev_loop_destroy(loop);
}

/* Free with lookups running: no callback, no leak, no touch of the loop
 * after it is gone (the last lookup frees what is left). */
static void test_free_in_flight(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };

	for (int i = 0; i < 4; i++)
		assert_non_null(resolver_lookup(rs, "localhost", 100 + i, on_resolved, &r));
	resolver_free(rs);
	ev_loop_destroy(loop);
	assert_int_equal(r.calls, 0);
}

/* resolver_free() from inside a callback: the rest of the batch is dropped. */
static void test_free_from_callback(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct resolver *rs = resolver_new(loop);
	struct res r = { 0 };

	r.free_me = rs;
	for (int i = 0; i < 3; i++)
		assert_non_null(resolver_lookup(rs, "localhost", 200 + i, on_resolved, &r));
	assert_true(run_until(loop, &r.calls, 1, 10.));
	run_until(loop, NULL, 0, 0.2);
	assert_int_equal(r.calls, 1);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numeric_v4),
		cmocka_unit_test(test_numeric_v6),
		cmocka_unit_test(test_bad_arguments_immediate),
		cmocka_unit_test(test_localhost_async),
		cmocka_unit_test(test_invalid_name),
		cmocka_unit_test(test_cancel_no_callback),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_free_from_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
