/* Name resolution off the loop.
 *
 * A name goes to glibc's getaddrinfo_a() (in libc itself since 2.34; no
 * -lanl) with SIGEV_THREAD notification: glibc runs lookup_done() on a
 * short-lived thread of its own, which pushes the finished request onto a
 * list under a mutex and wakes the loop with ev_async_send().  The loop then
 * calls the user callbacks.  Nothing but that list, the in-flight count and
 * the "detached" flag is ever touched by two threads.
 *
 * Cancelling only marks a request: gai_cancel() cannot stop a lookup that
 * is already running, and when it does dequeue one glibc never frees the
 * notification record it allocated for it (glibc 2.36).  So every request
 * submitted to glibc is freed exactly once, after its notification.
 *
 * resolver_free() never waits: when lookups are still running it marks the
 * resolver detached, stops touching the loop, and the last lookup_done()
 * frees what is left (see resolver_free below). */
#include "net/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define HOST_MAX 255 /* a DNS name's limit; longer is an error, not a truncation */

struct resolver {
	ev_async wake; /* first member: the callback casts back */
	struct ev_loop *loop;
	pthread_mutex_t lock;
	/* Under lock: */
	struct resolve_req *done_head, *done_tail; /* finished, waiting for the loop */
	unsigned inflight;                         /* submitted to glibc, not yet notified */
	bool detached;                             /* resolver_free() ran */
	/* Loop thread only: */
	bool dispatching; /* inside wake_cb: resolver_free() must wait for it */
	bool free_pending;
};

struct resolve_req {
	struct resolver *r;
	struct gaicb gcb; /* glibc writes here until lookup_done() */
	struct addrinfo hints;
	struct sigevent sev;
	char host[HOST_MAX + 1];
	char service[8];
	resolve_cb cb;
	resolve_all_cb all_cb; /* instead of cb: every address */
	void *ctx;
	bool cancelled; /* loop thread only */
	struct resolve_req *next;
};

static void req_free(struct resolve_req *q)
{
	if (q->gcb.ar_result != NULL)
		freeaddrinfo(q->gcb.ar_result);
	free(q);
}

static void resolver_destroy(struct resolver *r)
{
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* On a glibc notification thread: hand the request to the loop, or, once
 * the resolver is detached, free it (and the resolver, if it was the last). */
static void lookup_done(union sigval sv)
{
	struct resolve_req *q = sv.sival_ptr;
	struct resolver *r = q->r;
	bool last = false;

	pthread_mutex_lock(&r->lock);
	r->inflight--;
	if (r->detached) {
		req_free(q);
		last = r->inflight == 0;
	} else {
		q->next = NULL;
		if (r->done_tail != NULL)
			r->done_tail->next = q;
		else
			r->done_head = q;
		r->done_tail = q;
		/* Under the lock: resolver_free() cannot stop the watcher (and
		 * the owner destroy the loop) between the check and the send. */
		ev_async_send(r->loop, &r->wake);
	}
	pthread_mutex_unlock(&r->lock);
	if (last)
		resolver_destroy(r);
}

/* Every usable address of a finished lookup, or an error. */
static void deliver_all(struct resolve_req *q, int rc)
{
	struct sockaddr_storage ss[RESOLVE_ALL_MAX];
	socklen_t lens[RESOLVE_ALL_MAX];
	const struct addrinfo *ai;
	size_t n = 0;

	if (rc != 0) {
		q->all_cb(q->ctx, gai_strerror(rc), NULL, NULL, 0);
		return;
	}
	for (ai = q->gcb.ar_result; ai != NULL && n < RESOLVE_ALL_MAX; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof ss[0])
			continue;
		memset(&ss[n], 0, sizeof ss[n]);
		memcpy(&ss[n], ai->ai_addr, ai->ai_addrlen);
		lens[n++] = ai->ai_addrlen;
	}
	if (n == 0)
		q->all_cb(q->ctx, "no IPv4 or IPv6 address", NULL, NULL, 0);
	else
		q->all_cb(q->ctx, NULL, ss, lens, n);
}

/* First usable address of a finished lookup, or an error. */
static void deliver(struct resolve_req *q, int rc)
{
	struct sockaddr_storage ss;
	const struct addrinfo *ai;

	if (q->all_cb != NULL) {
		deliver_all(q, rc);
		return;
	}
	if (rc != 0) {
		q->cb(q->ctx, gai_strerror(rc), NULL, 0);
		return;
	}
	for (ai = q->gcb.ar_result; ai != NULL; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof ss)
			continue;
		memset(&ss, 0, sizeof ss);
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		q->cb(q->ctx, NULL, &ss, ai->ai_addrlen);
		return;
	}
	q->cb(q->ctx, "no IPv4 or IPv6 address", NULL, 0);
}

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct resolver *r = (struct resolver *)w;
	struct resolve_req *list, *q;

	pthread_mutex_lock(&r->lock);
	list = r->done_head;
	r->done_head = r->done_tail = NULL;
	pthread_mutex_unlock(&r->lock);

	/* A callback may cancel a request further down this list (fine: the
	 * flag is checked when we get there) or free the resolver (deferred
	 * until the list is drained, without more callbacks). */
	r->dispatching = true;
	while ((q = list) != NULL) {
		list = q->next;
		if (!q->cancelled && !r->free_pending)
			deliver(q, gai_error(&q->gcb));
		req_free(q);
	}
	r->dispatching = false;
	if (r->free_pending)
		resolver_free(r);
}

struct resolver *resolver_new(struct ev_loop *loop)
{
	struct resolver *r = xcalloc(1, sizeof *r);

	r->loop = loop;
	pthread_mutex_init(&r->lock, NULL);
	ev_async_init(&r->wake, wake_cb);
	ev_async_start(loop, &r->wake);
	/* The wakeup watcher alone must not keep ev_run() from returning. */
	ev_unref(loop);
	return r;
}

/* A numeric address (IPv4, IPv6, or IPv6 in brackets), or false. */
static bool numeric(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char tmp[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(host);

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return true;
	}
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof tmp) {
		memcpy(tmp, host + 1, n - 2);
		tmp[n - 2] = '\0';
		host = tmp;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
		return true;
	}
	return false;
}

/* Answer at once (numeric or invalid), through cb or all_cb. */
static void answer(resolve_cb cb, resolve_all_cb all_cb, void *ctx, const char *err,
		   const struct sockaddr_storage *ss, socklen_t len)
{
	if (all_cb != NULL)
		all_cb(ctx, err, ss, err ? NULL : &len, err ? 0 : 1);
	else
		cb(ctx, err, ss, len);
}

static struct resolve_req *lookup(struct resolver *r, const char *host, int port, resolve_cb cb,
				  resolve_all_cb all_cb, void *ctx)
{
	struct sockaddr_storage ss;
	struct gaicb *list[1];
	struct resolve_req *q;
	sigset_t all, old;
	socklen_t len;
	int rc;

	if (port < 0 || port > 65535) {
		answer(cb, all_cb, ctx, "invalid port", NULL, 0);
		return NULL;
	}
	if (numeric(host, port, &ss, &len)) {
		answer(cb, all_cb, ctx, NULL, &ss, len);
		return NULL;
	}
	if (host[0] == '\0' || strlen(host) > HOST_MAX) {
		answer(cb, all_cb, ctx, "invalid host name", NULL, 0);
		return NULL;
	}

	q = xcalloc(1, sizeof *q);
	q->r = r;
	q->cb = cb;
	q->all_cb = all_cb;
	q->ctx = ctx;
	snprintf(q->host, sizeof q->host, "%s", host);
	snprintf(q->service, sizeof q->service, "%d", port);
	q->hints.ai_family = AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM;
	/* No AAAA answers on a host without IPv6 (loopback does not count;
	 * with no address at all glibc ignores the flag). */
	q->hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	q->gcb.ar_name = q->host;
	q->gcb.ar_service = q->service;
	q->gcb.ar_request = &q->hints;
	q->sev.sigev_notify = SIGEV_THREAD;
	q->sev.sigev_notify_function = lookup_done;
	q->sev.sigev_value.sival_ptr = q;
	list[0] = &q->gcb;

	pthread_mutex_lock(&r->lock);
	r->inflight++;
	pthread_mutex_unlock(&r->lock);
	/* glibc's worker threads inherit our signal mask: with everything
	 * blocked there, SIGTERM and friends keep going to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &q->sev);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		/* Could not even be queued (no memory or threads).  glibc may
		 * still notify for it, so it stays counted and owned by that
		 * notification; it will be dropped unseen. */
		q->cancelled = true;
		answer(cb, all_cb, ctx, gai_strerror(rc), NULL, 0);
		return NULL;
	}
	return q;
}

struct resolve_req *resolver_lookup(struct resolver *r, const char *host, int port, resolve_cb cb,
				    void *ctx)
{
	return lookup(r, host, port, cb, NULL, ctx);
}

struct resolve_req *resolver_lookup_all(struct resolver *r, const char *host, int port,
					resolve_all_cb cb, void *ctx)
{
	return lookup(r, host, port, NULL, cb, ctx);
}

void resolver_cancel(struct resolve_req *req)
{
	if (req != NULL)
		req->cancelled = true;
}

/* Inside wake_cb the list being drained still holds requests: finish there.
 * Otherwise drop what the loop has not seen yet and, if lookups are still
 * running, detach: from then on lookup_done() frees instead of waking the
 * loop, and the last one frees the resolver.  Never blocks. */
void resolver_free(struct resolver *r)
{
	struct resolve_req *list, *q;
	bool last;

	if (r == NULL)
		return;
	if (r->dispatching) {
		r->free_pending = true;
		return;
	}
	pthread_mutex_lock(&r->lock);
	r->detached = true;
	list = r->done_head;
	r->done_head = r->done_tail = NULL;
	last = r->inflight == 0;
	/* Still under the lock: once it is released a running lookup may be
	 * the last one and free r. */
	ev_ref(r->loop);
	ev_async_stop(r->loop, &r->wake);
	pthread_mutex_unlock(&r->lock);

	while ((q = list) != NULL) {
		list = q->next;
		req_free(q);
	}
	if (last)
		resolver_destroy(r);
}
