/* The rendezvous client.
 *
 * Each request is one transaction (struct txn): resolve off the loop,
 * non-blocking connect, write one line, read one line (framer, 32 KiB),
 * close.  One ev_timer bounds the whole of it by limits.rendezvous_timeout.
 * There is at most one transaction of each kind (REGISTER, DISCOVER,
 * UNREGISTER) at a time.
 *
 * Work that is due but may not start yet is marked in want[] and started by
 * pump() once the gates allow it:
 *   - a rate-limit block: the server said "…lifted in N seconds." (we wait
 *     N + 1 s), or closed/reset a connection without a byte of reply, which
 *     is how it answers the 51st connection in its window (we wait
 *     silent_pause, 60 s, as long as the block it just started);
 *   - our own budget: at most `budget` (10) transactions per `budget_window`
 *     (60 s), with `reserve` (2) of them never given to on-demand requests so
 *     that re-REGISTER and the periodic DISCOVER always get through.
 * UNREGISTER at shutdown ignores the budget (not the block); one a controller
 * asks for is refused while the budget is used up, like an on-demand one.
 *
 * Timing:
 *   - REGISTER retry after the k-th consecutive failure (k = 0, 1, …):
 *     min(register_backoff_base * 2^k, retry_max = 60 s), for ever; after
 *     register_retry_attempts failures we say so once, and the "retrying"
 *     lines drop to debug (each failure is still a warning).
 *   - re-REGISTER at expiry - lead, lead = min(ttl_warning_treshold, ttl/2)
 *     (ttl/10 if the threshold is 0): with the usual ttl the threshold rules,
 *     with a short one we still keep half the ttl for retries.
 *   - DISCOVER right after the first successful REGISTER, then
 *     discover_interval after each DISCOVER ends (an on-demand one included).
 *
 * Absolute times (status, blocks, budget) are mono_now(), the clock the
 * status promises; libev only ever gets relative delays.
 *
 * Re-entrancy: every entry from the loop or the API holds a depth count;
 * rdv_client_free() inside a callback cancels everything at once and leaves
 * the free() to the outermost frame.  Callbacks are made last, once the
 * state is consistent, and after each one we check we were not freed. */
#include "rendezvous/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "framer.h"
#include "log.h"
#include "net/eyeballs.h"
#include "net/resolver.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Rendezvous"
#define MAX_WAITERS 16     /* on-demand requests waiting on one kind */
#define BUDGET_MAX 64
#define EPS 0.001          /* timers and clocks may disagree by a hair */
#define READ_BURST 16      /* reads per readable event */
#define ERR_MAX 256
/* A lookup gets this long, whatever limits.rendezvous_timeout says: glibc
 * waits 5 s per silent nameserver before it tries the next, and a lookup
 * cut short is lost work that the next attempt would only repeat. */
#define RESOLVE_TIMEOUT 30.0
/* The server's address is looked up again after this, or after a failure
 * to reach it: not once per request. */
#define ADDR_CACHE_TTL 300.0
/* A "lifted in N seconds" beyond this is not believed (the real block is
 * 60 s): a garbled hint must not silence the node for days. */
#define BLOCK_MAX 600.0

enum kind { K_REGISTER, K_DISCOVER, K_UNREGISTER, K__COUNT };
static const char *const kind_name[K__COUNT] = { "REGISTER", "DISCOVER", "UNREGISTER" };

enum phase { PH_RESOLVE, PH_CONNECT, PH_WRITE, PH_READ };
static const char *const phase_what[] = { "resolving the host", "connecting",
					  "sending the request", "waiting for the reply" };

/* An on-demand caller waiting for a completion (or for a deferred refusal). */
struct waiter {
	rdv_done_fn done;
	void *ctx;
	struct waiter *next;
	char err[ERR_MAX];
};

struct txn {
	struct rdv_client *c;
	enum kind kind;
	bool active;
	enum phase phase;
	int fd;
	ev_io io;
	ev_timer deadline;
	struct resolve_req *rreq;
	struct eyeballs *eb;       /* connecting to the name's addresses in turn */
	char addr[INET6_ADDRSTRLEN + 8];
	struct buf out;
	size_t sent;
	struct framer fr;
	size_t got;                /* bytes received */
	bool silent;               /* closed or reset before a single byte came */
	char err[ERR_MAX];         /* failure to report from the deadline timer */
	bool have_reply;
	struct rdv_reply reply;
};

struct rdv_client {
	struct ev_loop *loop;
	struct resolver *res;
	struct rdv_client_hooks hooks;
	struct rdv_tuning tun;

	char host[CFG_STR_MAX];
	int port;
	char name[CFG_STR_MAX];
	char ns[CFG_STR_MAX];
	char disc_ns[CFG_STR_MAX]; /* "" = all namespaces */
	struct sockaddr_storage addr; /* the server's, from the last lookup */
	socklen_t addr_len;           /* 0: none cached */
	double addr_at;               /* mono_now() of that lookup */
	int my_port;
	long long ttl;
	double timeout;
	size_t reply_max;  /* limits.rendezvous_reply_max */
	double disc_interval;
	double backoff_base;
	double ttl_threshold;
	int quick_retries;

	struct rdv_status st;
	bool running;      /* started, not unregistered: stay registered */
	bool ever_started;
	bool registered;   /* until expiry, as far as we know */
	bool discovering;  /* periodic DISCOVER on */
	unsigned reg_failures;
	double reg_at;     /* mono_now() of the last successful REGISTER */
	double disc_at;    /* mono_now() the current DISCOVER started */
	bool want[K__COUNT];
	struct txn txn[K__COUNT];
	struct waiter *waiters[K__COUNT];
	unsigned nwaiters[K__COUNT];
	struct waiter *later;      /* refusals, reported from later_timer */

	double ring[BUDGET_MAX];   /* start times, oldest at ring_head */
	unsigned ring_head;

	ev_timer reg_timer;        /* next REGISTER: retry or refresh */
	ev_timer disc_timer;       /* next periodic DISCOVER */
	ev_timer expire_timer;     /* the registration lapses */
	ev_timer gate_timer;       /* a block ends or a budget slot frees */
	ev_timer later_timer;      /* deliver refusals outside the API call */

	unsigned depth;
	bool dying;
};

static void txn_done(struct txn *t, const char *err, const struct rdv_reply *reply);

const char *rdv_reg_state_name(enum rdv_reg_state s)
{
	switch (s) {
	case RDV_UNREGISTERED:
		return "unregistered";
	case RDV_REGISTERING:
		return "registering";
	case RDV_REGISTERED:
		return "registered";
	case RDV_BLOCKED:
		return "blocked";
	}
	return "?";
}

/* ---- helpers ----------------------------------------------------------- */

/* Server text goes into logs and status lines: no control characters. */
static void clean_copy(char *dst, size_t size, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && i + 1 < size; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
	dst[i] = '\0';
}

/* snprintf for one-line messages, where cutting the tail is the intent. */
static void fmt_line(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fmt_line(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

static void arm(struct rdv_client *c, ev_timer *w, double after)
{
	ev_timer_stop(c->loop, w);
	ev_timer_set(w, after > 0 ? after : 0, 0.);
	ev_timer_start(c->loop, w);
}

static bool blocked(const struct rdv_client *c, double now)
{
	return now + EPS < c->st.blocked_until;
}

/* Seconds until a transaction may start with `reserve` slots left unused,
 * 0 if now.  The ring holds the last `budget` start times in order from
 * ring_head; the (reserve+1)-th oldest must have left the window. */
static double budget_wait(const struct rdv_client *c, unsigned reserve, double now)
{
	double t = c->ring[(c->ring_head + reserve) % c->tun.budget] + c->tun.budget_window;

	return t > now + EPS ? t - now : 0;
}

static void budget_record(struct rdv_client *c, double now)
{
	c->ring[c->ring_head] = now;
	c->ring_head = (c->ring_head + 1) % c->tun.budget;
}

static void budget_reset(struct rdv_client *c)
{
	for (unsigned i = 0; i < BUDGET_MAX; i++)
		c->ring[i] = -1e12;
	c->ring_head = 0;
}

static enum rdv_reg_state compute_state(const struct rdv_client *c, double now)
{
	if (blocked(c, now))
		return RDV_BLOCKED;
	if (c->registered)
		return RDV_REGISTERED;
	return c->running ? RDV_REGISTERING : RDV_UNREGISTERED;
}

/* Recompute the state; tell the owner when it changed or after a failure.
 * False if the owner freed us meanwhile. */
static bool notify_state(struct rdv_client *c, bool failure)
{
	enum rdv_reg_state s = compute_state(c, mono_now());
	bool changed = s != c->st.state;

	if (changed)
		log_debug(MOD, "state %s -> %s", rdv_reg_state_name(c->st.state),
			  rdv_reg_state_name(s));
	c->st.state = s;
	if ((changed || failure) && c->hooks.on_state != NULL && !c->dying)
		c->hooks.on_state(c->hooks.ctx, &c->st);
	return !c->dying;
}

static void enter(struct rdv_client *c)
{
	c->depth++;
}

static void destroy(struct rdv_client *c);

static void leave(struct rdv_client *c)
{
	if (--c->depth == 0 && c->dying)
		destroy(c);
}

static void free_waiters(struct waiter *w)
{
	struct waiter *next;

	for (; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
}

/* Answer done from the loop, not from inside the API call that passed it. */
static void refuse(struct rdv_client *c, rdv_done_fn done, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void refuse(struct rdv_client *c, rdv_done_fn done, void *ctx, const char *fmt, ...)
{
	struct waiter *w, **p;
	va_list ap;

	va_start(ap, fmt);
	if (done == NULL) {
		va_end(ap);
		return;
	}
	w = xcalloc(1, sizeof *w);
	w->done = done;
	w->ctx = ctx;
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
	for (p = &c->later; *p != NULL; p = &(*p)->next)
		;
	*p = w;
	if (!ev_is_active(&c->later_timer))
		arm(c, &c->later_timer, 0);
}

/* Queue done for the next completion of kind k; false if too many wait. */
static bool add_waiter(struct rdv_client *c, enum kind k, rdv_done_fn done, void *ctx)
{
	struct waiter *w, **p;

	if (done == NULL)
		return true;
	if (c->nwaiters[k] >= MAX_WAITERS)
		return false;
	w = xcalloc(1, sizeof *w);
	w->done = done;
	w->ctx = ctx;
	for (p = &c->waiters[k]; *p != NULL; p = &(*p)->next)
		;
	*p = w;
	c->nwaiters[k]++;
	return true;
}

/* Move the waiters of kind k to the refusal queue with err. */
static void refuse_waiters(struct rdv_client *c, enum kind k, const char *err)
{
	struct waiter *w = c->waiters[k], *next;

	c->waiters[k] = NULL;
	c->nwaiters[k] = 0;
	for (; w != NULL; w = next) {
		next = w->next;
		refuse(c, w->done, w->ctx, "%s", err);
		free(w);
	}
}

/* ---- one transaction --------------------------------------------------- */

static void txn_close(struct txn *t)
{
	struct rdv_client *c = t->c;

	ev_io_stop(c->loop, &t->io);
	ev_timer_stop(c->loop, &t->deadline);
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	resolver_cancel(t->rreq);
	t->rreq = NULL;
	eyeballs_cancel(t->eb);
	t->eb = NULL;
	buf_reset(&t->out);
	framer_free(&t->fr);
	if (t->have_reply)
		rdv_reply_free(&t->reply);
	t->have_reply = false;
	t->active = false;
	t->silent = false;
	t->sent = t->got = 0;
	t->err[0] = '\0';
	t->addr[0] = '\0';
}

/* Report a failure from the deadline timer on the next loop iteration, so
 * that no callback runs inside an API call or the resolver. */
static void fail_soon(struct txn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_soon(struct txn *t, const char *fmt, ...)
{
	struct rdv_client *c = t->c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->err, sizeof t->err, fmt, ap);
	va_end(ap);
	ev_io_stop(c->loop, &t->io);
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	arm(c, &t->deadline, 0);
}

static double resolve_timeout(const struct rdv_client *c)
{
	return c->timeout > RESOLVE_TIMEOUT ? c->timeout : RESOLVE_TIMEOUT;
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct txn *t = (struct txn *)((char *)w - offsetof(struct txn, deadline));
	struct rdv_client *c = t->c;
	char err[ERR_MAX];

	enter(c);
	if (t->err[0] != '\0')
		snprintf(err, sizeof err, "%s", t->err);
	else
		snprintf(err, sizeof err, "timed out after %g s %s%s%s%s",
			 t->phase == PH_RESOLVE ? resolve_timeout(c) : c->timeout, phase_what[t->phase],
			 t->addr[0] != '\0' ? " (" : "", t->addr,
			 t->addr[0] != '\0' ? ")" : "");
	txn_done(t, err, NULL);
	leave(c);
}

static void take_reply(struct txn *t, const char *line, size_t len)
{
	char snip[64];

	if (rdv_reply_parse(line, len, &t->reply) == 0) {
		t->have_reply = true;
		return;
	}
	clean_copy(snip, sizeof snip, line, len);
	snprintf(t->err, sizeof t->err, "unparsable reply \"%s%s\"", snip,
		 len >= sizeof snip ? "…" : "");
}

static int line_cb(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct txn *t = ctx;

	if (ev == FRAMER_OVERFLOW) {
		snprintf(t->err, sizeof t->err,
			 "reply longer than %zu bytes (limits.rendezvous_reply_max)", t->c->reply_max);
		return 1;
	}
	if (len == 0)
		return 0; /* a blank line is not the answer: keep reading */
	take_reply(t, line, len);
	return 1;
}

/* The reply is in (have_reply) or t->err says why not: end the transaction. */
static void finish_read(struct txn *t)
{
	struct rdv_reply reply;

	if (!t->have_reply) {
		char err[ERR_MAX];

		snprintf(err, sizeof err, "%s", t->err);
		txn_done(t, err, NULL);
		return;
	}
	/* Ours now: a callback may start the next transaction on t. */
	reply = t->reply;
	t->have_reply = false;
	memset(&t->reply, 0, sizeof t->reply);
	txn_done(t, NULL, &reply);
	rdv_reply_free(&reply);
}

static void closed_silently(struct txn *t)
{
	t->silent = true;
	fail_soon(t, "%s closed the connection without a reply (probably the rate limit)",
		  t->addr);
}

static void do_read(struct txn *t)
{
	static char buf[65536]; /* one loop: shared by every transaction */
	const char *rest;
	ssize_t n;
	size_t len;

	for (int i = 0; i < READ_BURST; i++) {
		n = recv(t->fd, buf, sizeof buf, 0);
		if (n > 0) {
			t->got += (size_t)n;
			if (framer_feed(&t->fr, buf, (size_t)n, line_cb, t) != 0) {
				finish_read(t); /* t may be a new transaction now */
				return;
			}
			continue;
		}
		if (n == 0) {
			/* Lenient: a last line without its '\n' is still the reply. */
			if ((len = framer_pending(&t->fr, &rest)) > 0) {
				take_reply(t, rest, len);
				finish_read(t);
			} else if (t->got == 0) {
				closed_silently(t);
			} else {
				fail_soon(t, "%s closed the connection without a reply", t->addr);
			}
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == ECONNRESET && t->got == 0)
			closed_silently(t);
		else
			fail_soon(t, "read from %s: %s", t->addr, strerror(errno));
		return;
	}
}

static void do_write(struct txn *t)
{
	struct rdv_client *c = t->c;
	ssize_t n;

	while (t->sent < t->out.len) {
		n = send(t->fd, t->out.data + t->sent, t->out.len - t->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EPIPE || errno == ECONNRESET)
				closed_silently(t);
			else
				fail_soon(t, "write to %s: %s", t->addr, strerror(errno));
			return;
		}
		t->sent += (size_t)n;
	}
	t->phase = PH_READ;
	ev_io_stop(c->loop, &t->io);
	ev_io_set(&t->io, t->fd, EV_READ);
	ev_io_start(c->loop, &t->io);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct txn *t = (struct txn *)((char *)w - offsetof(struct txn, io));
	struct rdv_client *c = t->c;
	socklen_t sl;
	int soerr;

	enter(c);
	if (t->phase == PH_CONNECT) {
		soerr = 0;
		sl = sizeof soerr;
		if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			fail_soon(t, "connect to %s: %s", t->addr, strerror(soerr));
			goto out;
		}
		t->phase = PH_WRITE;
	}
	if (t->phase == PH_WRITE)
		do_write(t);
	else if (t->phase == PH_READ)
		do_read(t);
out:
	leave(c);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
		snprintf(out, size, "%s:%u", ip, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
		snprintf(out, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	}
}

/* The first of the server's addresses that accepted: the request goes
 * there, and so do the next ones while the lookup is fresh. */
static void connected_cb(void *ctx, int fd, const struct sockaddr_storage *addr, socklen_t len,
			 const char *err)
{
	struct txn *t = ctx;
	struct rdv_client *c = t->c;

	t->eb = NULL;
	enter(c);
	if (fd < 0) {
		fail_soon(t, "connect to %s:%d: %s", c->host, c->port, err);
		goto out;
	}
	memcpy(&c->addr, addr, len);
	c->addr_len = len;
	format_addr(addr, t->addr, sizeof t->addr);
	t->fd = fd;
	t->phase = PH_CONNECT; /* io_cb finds it writable with no error */
	ev_io_set(&t->io, t->fd, EV_WRITE);
	ev_io_start(c->loop, &t->io);
out:
	leave(c);
}

/* May run inside resolver_lookup_all() (numeric host): no callbacks from
 * here.  Every address is tried in turn (RFC 8305), not only the first:
 * "localhost" may give ::1 first to a server listening on 127.0.0.1. */
static void resolved_cb(void *ctx, const char *err, const struct sockaddr_storage *addrs,
			const socklen_t *lens, size_t n)
{
	struct txn *t = ctx;
	struct rdv_client *c = t->c;

	t->rreq = NULL;
	if (err != NULL) {
		fail_soon(t, "cannot resolve %s: %s", c->host, err);
		return;
	}
	if (addrs != &c->addr)
		c->addr_at = mono_now();
	/* From here on the usual limit: the lookup had its own. */
	arm(c, &t->deadline, c->timeout);
	format_addr(&addrs[0], t->addr, sizeof t->addr);
	t->phase = PH_CONNECT;
	t->eb = eyeballs_start(c->loop, addrs, lens, n, EYEBALLS_DELAY, connected_cb, t);
}

static void txn_start(struct rdv_client *c, enum kind k)
{
	struct txn *t = &c->txn[k];
	int rc = -1;

	t->active = true;
	t->phase = PH_RESOLVE;
	/* Replies have no line limit of the protocol's: a DISCOVER lists every
	 * registration on one line.  Ours is limits.rendezvous_reply_max. */
	framer_init(&t->fr, c->reply_max);
	switch (k) {
	case K_REGISTER:
		rc = rdv_build_register(&t->out, c->ns, c->name, c->my_port, c->ttl);
		break;
	case K_DISCOVER:
		rc = rdv_build_discover(&t->out, c->disc_ns[0] != '\0' ? c->disc_ns : NULL);
		break;
	case K_UNREGISTER:
		rc = rdv_build_unregister(&t->out, c->ns, c->name, c->my_port);
		break;
	case K__COUNT:
		break;
	}
	double now = mono_now();
	budget_record(c, now);
	c->st.requests++;
	if (k == K_DISCOVER)
		c->disc_at = now;
	c->st.kind_requests[k]++;
	arm(c, &t->deadline, resolve_timeout(c));
	if (rc != 0) {
		fail_soon(t, "cannot encode the request (name or namespace not UTF-8)");
		return;
	}
	log_debug(MOD, "%s to %s:%d", kind_name[k], c->host, c->port);
	if (c->addr_len > 0 && now - c->addr_at < ADDR_CACHE_TTL) {
		resolved_cb(t, NULL, &c->addr, &c->addr_len, 1);
		return;
	}
	/* Assigned after the call: a numeric host is answered inside it. */
	t->rreq = resolver_lookup_all(c->res, c->host, c->port, resolved_cb, t);
}

/* ---- scheduling -------------------------------------------------------- */

/* Start what is wanted and allowed; arm gate_timer for what has to wait. */
static void pump(struct rdv_client *c)
{
	static const enum kind order[] = { K_REGISTER, K_DISCOVER };
	double now = mono_now(), gate = -1, wait;

	if (c->dying)
		return;
	if (blocked(c, now)) {
		arm(c, &c->gate_timer, c->st.blocked_until - now);
		return;
	}
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		enum kind k = order[i];

		if (!c->want[k] || c->txn[k].active)
			continue;
		if ((wait = budget_wait(c, 0, now)) > 0) {
			if (gate < 0 || wait < gate)
				gate = wait;
			continue;
		}
		c->want[k] = false;
		txn_start(c, k);
	}
	if (gate >= 0) {
		log_debug(MOD, "own request budget used up; waiting %.1f s", gate);
		arm(c, &c->gate_timer, gate);
	}
}

static void block(struct rdv_client *c, double now, double secs)
{
	if (secs > BLOCK_MAX) {
		log_warn(MOD, "the rendezvous server asks for a %.0f s pause; waiting %.0f s",
			 secs, BLOCK_MAX);
		secs = BLOCK_MAX;
	}
	if (now + secs > c->st.blocked_until)
		c->st.blocked_until = now + secs;
	log_warn(MOD, "rate-limited by the rendezvous server: no request for %.0f s", secs);
	arm(c, &c->gate_timer, c->st.blocked_until - now);
}

static void reg_retry(struct rdv_client *c)
{
	double d = c->backoff_base > 0.01 ? c->backoff_base : 0.01;

	for (unsigned i = 0; i < c->reg_failures && d < c->tun.retry_max; i++)
		d *= 2;
	if (d > c->tun.retry_max)
		d = c->tun.retry_max;
	c->reg_failures++;
	if (c->quick_retries > 0 && c->reg_failures == (unsigned)c->quick_retries)
		log_warn(MOD, "%u REGISTER attempts failed; retrying in the background, "
			 "at most every %g s", c->reg_failures, c->tun.retry_max);
	if (c->quick_retries <= 0 || c->reg_failures <= (unsigned)c->quick_retries)
		log_info(MOD, "retrying REGISTER in %.2f s", d);
	else
		log_debug(MOD, "retrying REGISTER in %.2f s", d);
	arm(c, &c->reg_timer, d);
}

static void reg_success(struct rdv_client *c, const struct rdv_reply *reply, double now)
{
	long long ttl = reply->ttl > 0 ? reply->ttl : c->ttl;
	double lead = c->ttl_threshold < ttl / 2.0 ? c->ttl_threshold : ttl / 2.0;
	char ip[sizeof c->st.public_ip] = "";
	bool news;

	if (lead <= 0)
		lead = ttl / 10.0;
	if (reply->ip != NULL)
		clean_copy(ip, sizeof ip, reply->ip, strlen(reply->ip));
	news = !c->registered || strcmp(ip, c->st.public_ip) != 0 || c->reg_failures > 0;
	c->registered = true;
	c->reg_failures = 0;
	c->reg_at = now;
	c->st.ttl = ttl;
	c->st.expires = now + (double)ttl;
	memcpy(c->st.public_ip, ip, sizeof ip);
	arm(c, &c->reg_timer, (double)ttl - lead);
	arm(c, &c->expire_timer, (double)ttl);
	if (news)
		log_info(MOD, "registered %s@%s port %d (ttl %lld s, public address %s)", c->name,
			 c->ns, c->my_port, ttl, ip[0] != '\0' ? ip : "unknown");
	else
		log_debug(MOD, "re-registered (ttl %lld s)", ttl);
	if (!c->discovering) {
		c->discovering = true;
		/* An on-demand DISCOVER in flight counts as the first. */
		if (!c->txn[K_DISCOVER].active)
			c->want[K_DISCOVER] = true;
	}
}

/* A DISCOVER of our own namespace, sent after our last REGISTER succeeded,
 * that does not list us: the server forgot us (it restarted, or lost its
 * state).  REGISTER at once (through pump, so within the budget) instead
 * of at ttl - threshold, hours away. */
static void check_listed(struct rdv_client *c, const struct rdv_reply *reply)
{
	if (!c->running || !c->registered || c->disc_at <= c->reg_at || c->txn[K_REGISTER].active ||
	    c->want[K_REGISTER] || (c->disc_ns[0] != '\0' && strcmp(c->disc_ns, c->ns) != 0))
		return;
	for (size_t i = 0; i < reply->npeers; i++) {
		const struct rdv_peer *e = &reply->peers[i];
		if (e->name && e->ns && strcmp(e->name, c->name) == 0 && strcmp(e->ns, c->ns) == 0 &&
		    e->port == c->my_port &&
		    (c->st.public_ip[0] == '\0' || (e->ip && strcmp(e->ip, c->st.public_ip) == 0)))
			return;
	}
	c->st.reregistered++;
	log_warn(MOD, "the rendezvous server does not list %s@%s (restarted?): REGISTER now",
		 c->name, c->ns);
	c->want[K_REGISTER] = true;
}

/* Everything about a finished transaction; callbacks last. */
static void txn_done(struct txn *t, const char *err, const struct rdv_reply *reply)
{
	struct rdv_client *c = t->c;
	enum kind k = t->kind;
	bool silent = t->silent;
	double now = mono_now();
	char why[ERR_MAX], msg[160], ebuf[ERR_MAX];
	const char *e = NULL;
	struct waiter *ws, *w;

	txn_close(t);
	/* Not reached (or no answer): look the name up afresh next time, in
	 * case the server moved. */
	if (err != NULL && reply == NULL)
		c->addr_len = 0;
	if (err == NULL && reply != NULL && !reply->ok) {
		const char *m = reply->message != NULL ? reply->message : "ERROR without a message";

		clean_copy(msg, sizeof msg, m, strlen(m));
		snprintf(why, sizeof why, "server error: %s", msg);
		err = why;
	}
	if (err != NULL) {
		fmt_line(ebuf, sizeof ebuf, "%s: %s", kind_name[k], err);
		fmt_line(c->st.last_error, sizeof c->st.last_error, "%s", ebuf);
		c->st.kind_errors[k]++;
		e = ebuf;
		log_warn(MOD, "%s", ebuf);
	}
	if (reply != NULL && !reply->ok && reply->blocked_for >= 0)
		block(c, now, (double)reply->blocked_for + 1);
	else if (err != NULL && silent)
		block(c, now, c->tun.silent_pause);

	switch (k) {
	case K_REGISTER:
		if (!c->running)
			break;
		if (err == NULL)
			reg_success(c, reply, now);
		else if (blocked(c, now))
			c->want[K_REGISTER] = true; /* again as soon as the block lifts */
		else
			reg_retry(c);
		break;
	case K_DISCOVER:
		if (err == NULL)
			c->st.last_discover = now;
		if (err == NULL && reply != NULL)
			check_listed(c, reply);
		if (c->discovering && c->disc_interval > 0)
			arm(c, &c->disc_timer, c->disc_interval);
		break;
	case K_UNREGISTER:
		if (err == NULL)
			log_info(MOD, "unregistered %s@%s", c->name, c->ns);
		break;
	case K__COUNT:
		break;
	}
	pump(c);

	ws = c->waiters[k];
	c->waiters[k] = NULL;
	c->nwaiters[k] = 0;
	if (!notify_state(c, err != NULL))
		goto drop;
	if (k == K_DISCOVER && err == NULL && c->hooks.on_discover != NULL) {
		c->hooks.on_discover(c->hooks.ctx, reply->peers, reply->npeers);
		if (c->dying)
			goto drop;
	}
	while ((w = ws) != NULL && !c->dying) {
		ws = w->next;
		w->done(w->ctx, e, reply);
		free(w);
	}
drop:
	free_waiters(ws);
}

/* ---- timers ------------------------------------------------------------ */

static void reg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *c = (struct rdv_client *)((char *)w - offsetof(struct rdv_client, reg_timer));

	enter(c);
	if (c->running) {
		c->want[K_REGISTER] = true;
		pump(c);
	}
	leave(c);
}

static void disc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *c =
	    (struct rdv_client *)((char *)w - offsetof(struct rdv_client, disc_timer));

	enter(c);
	if (c->discovering) {
		c->want[K_DISCOVER] = true;
		pump(c);
	}
	leave(c);
}

static void expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *c =
	    (struct rdv_client *)((char *)w - offsetof(struct rdv_client, expire_timer));

	enter(c);
	if (c->registered) {
		c->registered = false;
		snprintf(c->st.last_error, sizeof c->st.last_error,
			 "registration expired before a re-REGISTER succeeded");
		log_warn(MOD, "%s", c->st.last_error);
		notify_state(c, true);
	}
	leave(c);
}

static void gate_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *c =
	    (struct rdv_client *)((char *)w - offsetof(struct rdv_client, gate_timer));

	enter(c);
	pump(c);
	notify_state(c, false); /* BLOCKED may be over */
	leave(c);
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_client *c =
	    (struct rdv_client *)((char *)w - offsetof(struct rdv_client, later_timer));
	struct waiter *list = c->later, *x;

	enter(c);
	c->later = NULL;
	while ((x = list) != NULL && !c->dying) {
		list = x->next;
		x->done(x->ctx, x->err, NULL);
		free(x);
	}
	free_waiters(list);
	leave(c);
}

/* ---- API --------------------------------------------------------------- */

static void take_config(struct rdv_client *c, const struct config *cfg)
{
	if (strcmp(c->host, cfg->rendezvous.host) != 0 || c->port != cfg->rendezvous.port)
		c->addr_len = 0;
	snprintf(c->host, sizeof c->host, "%s", cfg->rendezvous.host);
	c->port = cfg->rendezvous.port;
	snprintf(c->disc_ns, sizeof c->disc_ns, "%s", cfg->node.discover_namespace);
	c->timeout = cfg->limits.rendezvous_timeout > 0 ? cfg->limits.rendezvous_timeout : 5.;
	c->reply_max = cfg->limits.rendezvous_reply_max >= FRAMER_MAX_LINE
			       ? (size_t)cfg->limits.rendezvous_reply_max : FRAMER_MAX_LINE;
	c->disc_interval = cfg->rendezvous.discover_interval;
	/* Allowed (tests want it), but it is throttled: say so once per load. */
	if (c->disc_interval > 0 && c->tun.budget > c->tun.reserve &&
	    c->disc_interval < c->tun.budget_window / (c->tun.budget - c->tun.reserve))
		log_warn(MOD, "rendezvous.discover_interval %g s is shorter than the request "
			 "budget allows (%u per %g s): DISCOVERs will wait for it, and on-demand "
			 "ones may be refused", c->disc_interval, c->tun.budget, c->tun.budget_window);
	c->backoff_base = cfg->rendezvous.register_backoff_base;
	c->ttl_threshold = cfg->rendezvous.ttl_warning_treshold;
	c->quick_retries = cfg->rendezvous.register_retry_attempts;
}

struct rdv_client *rdv_client_new(struct ev_loop *loop, const struct config *cfg, const char *name,
				  const char *ns, int port, int ttl,
				  const struct rdv_client_hooks *hooks)
{
	struct rdv_client *c = xcalloc(1, sizeof *c);

	c->loop = loop;
	c->res = resolver_new(loop);
	if (hooks != NULL)
		c->hooks = *hooks;
	c->tun = (struct rdv_tuning){ 10, 60., 2, 60., 60. };
	budget_reset(c);

	snprintf(c->name, sizeof c->name, "%s", name);
	snprintf(c->ns, sizeof c->ns, "%s", ns);
	c->my_port = port;
	c->ttl = ttl;
	take_config(c, cfg);

	for (int k = 0; k < K__COUNT; k++) {
		struct txn *t = &c->txn[k];

		t->c = c;
		t->kind = (enum kind)k;
		t->fd = -1;
		framer_init(&t->fr, FRAMER_MAX_LINE);
		ev_init(&t->io, io_cb);
		ev_init(&t->deadline, deadline_cb);
	}
	ev_init(&c->reg_timer, reg_timer_cb);
	ev_init(&c->disc_timer, disc_timer_cb);
	ev_init(&c->expire_timer, expire_cb);
	ev_init(&c->gate_timer, gate_cb);
	ev_init(&c->later_timer, later_cb);
	c->st.state = RDV_UNREGISTERED;
	return c;
}

static void start_running(struct rdv_client *c)
{
	c->running = true;
	c->ever_started = true;
	c->reg_failures = 0;
	c->want[K_REGISTER] = true;
	ev_timer_stop(c->loop, &c->reg_timer);
}

void rdv_client_start(struct rdv_client *c)
{
	if (c->dying || c->running)
		return;
	enter(c);
	start_running(c);
	pump(c);
	notify_state(c, false);
	leave(c);
}

void rdv_client_discover(struct rdv_client *c, rdv_done_fn done, void *ctx)
{
	double now = mono_now(), wait;

	if (c->dying)
		return;
	enter(c);
	if (blocked(c, now)) {
		refuse(c, done, ctx, "DISCOVER: the rendezvous server is blocking us for %.0f s more",
		       c->st.blocked_until - now + 0.5);
		goto out;
	}
	/* One in flight answers this one too; one merely due may itself be
	 * waiting for the budget, and then so would this: refuse at once. */
	if (!c->txn[K_DISCOVER].active) {
		if ((wait = budget_wait(c, c->tun.reserve, now)) > 0) {
			refuse(c, done, ctx, "DISCOVER: rate budget exhausted, retry in %.0f s",
			       wait + 0.5);
			goto out;
		}
		c->want[K_DISCOVER] = true;
		ev_timer_stop(c->loop, &c->disc_timer); /* re-armed when this one ends */
	}
	if (!add_waiter(c, K_DISCOVER, done, ctx))
		refuse(c, done, ctx, "DISCOVER: too many requests waiting");
	pump(c);
out:
	leave(c);
}

void rdv_client_register(struct rdv_client *c, rdv_done_fn done, void *ctx)
{
	double now = mono_now(), wait;

	if (c->dying)
		return;
	enter(c);
	if (!c->running) {
		start_running(c);
	} else if (!c->txn[K_REGISTER].active && !blocked(c, now)) {
		/* As for DISCOVER: never join a retry that waits on the budget. */
		if ((wait = budget_wait(c, c->tun.reserve, now)) > 0) {
			refuse(c, done, ctx, "REGISTER: rate budget exhausted, retry in %.0f s",
			       wait + 0.5);
			goto out;
		}
		c->want[K_REGISTER] = true;
		ev_timer_stop(c->loop, &c->reg_timer);
	}
	if (blocked(c, now))
		refuse(c, done, ctx, "REGISTER: the rendezvous server is blocking us for %.0f s "
		       "more; will retry then", c->st.blocked_until - now + 0.5);
	else if (!add_waiter(c, K_REGISTER, done, ctx))
		refuse(c, done, ctx, "REGISTER: too many requests waiting");
	pump(c);
out:
	notify_state(c, false);
	leave(c);
}

void rdv_client_unregister(struct rdv_client *c, bool final, rdv_done_fn done, void *ctx)
{
	double now = mono_now(), wait;

	if (c->dying)
		return;
	enter(c);
	/* Asked again and again from a controller, it would spend the budget
	 * every node behind our address shares. */
	if (!final && !c->txn[K_UNREGISTER].active && !blocked(c, now) &&
	    (wait = budget_wait(c, c->tun.reserve, now)) > 0) {
		refuse(c, done, ctx, "UNREGISTER: rate budget exhausted, retry in %.0f s", wait + 0.5);
		leave(c);
		return;
	}
	c->running = false;
	c->registered = false;
	c->discovering = false;
	ev_timer_stop(c->loop, &c->reg_timer);
	ev_timer_stop(c->loop, &c->disc_timer);
	ev_timer_stop(c->loop, &c->expire_timer);
	c->want[K_REGISTER] = false;
	if (c->nwaiters[K_DISCOVER] == 0)
		c->want[K_DISCOVER] = false;
	/* A REGISTER answered after this would undo it.  (One already read by
	 * the server may still land first; it then lapses after its ttl.) */
	if (c->txn[K_REGISTER].active)
		txn_close(&c->txn[K_REGISTER]);
	refuse_waiters(c, K_REGISTER, "REGISTER: cancelled by UNREGISTER");

	if (!c->ever_started)
		refuse(c, done, ctx, "UNREGISTER: never registered, nothing to undo");
	else if (blocked(c, now))
		refuse(c, done, ctx, "UNREGISTER: the rendezvous server is blocking us for %.0f s more",
		       c->st.blocked_until - now + 0.5);
	else if (!add_waiter(c, K_UNREGISTER, done, ctx))
		refuse(c, done, ctx, "UNREGISTER: too many requests waiting");
	else if (!c->txn[K_UNREGISTER].active)
		txn_start(c, K_UNREGISTER); /* checked above, or final */
	notify_state(c, false);
	leave(c);
}

void rdv_client_reconfigure(struct rdv_client *c, const struct config *cfg)
{
	double left;

	if (c->dying)
		return;
	take_config(c, cfg);
	/* A shorter interval should not wait out the old, longer one. */
	if (ev_is_active(&c->disc_timer) && c->disc_interval > 0 &&
	    (left = ev_timer_remaining(c->loop, &c->disc_timer)) > c->disc_interval)
		arm(c, &c->disc_timer, c->disc_interval);
}

const struct rdv_status *rdv_client_status(const struct rdv_client *c)
{
	return &c->st;
}

void rdv_client_get_tuning(const struct rdv_client *c, struct rdv_tuning *t)
{
	*t = c->tun;
}

void rdv_client_set_tuning(struct rdv_client *c, const struct rdv_tuning *t)
{
	c->tun = *t;
	if (c->tun.budget < 1)
		c->tun.budget = 1;
	if (c->tun.budget > BUDGET_MAX)
		c->tun.budget = BUDGET_MAX;
	if (c->tun.reserve >= c->tun.budget)
		c->tun.reserve = c->tun.budget - 1;
	if (!(c->tun.budget_window > 0))
		c->tun.budget_window = 60.;
	if (!(c->tun.retry_max > 0))
		c->tun.retry_max = 60.;
	if (!(c->tun.silent_pause >= 0))
		c->tun.silent_pause = 60.;
	budget_reset(c);
}

/* Stop every watcher and drop every waiter unseen: no callback after this. */
static void cancel_all(struct rdv_client *c)
{
	for (int k = 0; k < K__COUNT; k++) {
		txn_close(&c->txn[k]);
		free_waiters(c->waiters[k]);
		c->waiters[k] = NULL;
		c->nwaiters[k] = 0;
		c->want[k] = false;
	}
	free_waiters(c->later);
	c->later = NULL;
	ev_timer_stop(c->loop, &c->reg_timer);
	ev_timer_stop(c->loop, &c->disc_timer);
	ev_timer_stop(c->loop, &c->expire_timer);
	ev_timer_stop(c->loop, &c->gate_timer);
	ev_timer_stop(c->loop, &c->later_timer);
	c->running = c->discovering = false;
}

static void destroy(struct rdv_client *c)
{
	resolver_free(c->res);
	for (int k = 0; k < K__COUNT; k++)
		buf_free(&c->txn[k].out);
	free(c);
}

void rdv_client_free(struct rdv_client *c)
{
	if (c == NULL || c->dying)
		return;
	cancel_all(c);
	c->dying = true;
	if (c->depth == 0)
		destroy(c);
}
