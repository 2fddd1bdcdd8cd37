/* The rendezvous client against a fake server on 127.0.0.1, both on one
 * real libev loop.  The fake records every request line with its arrival
 * time and answers from a per-test script: canned replies, silence, a close
 * after the line, a close before reading anything.  Tests run the loop until
 * a counter reaches a target or a deadline passes; never sleep. */
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
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "rendezvous/client.h"
#include "timeutil.h"

/* ---- the fake server ---------------------------------------------------- */

enum act {
	A_DEFAULT = 0, /* OK reply by request type */
	A_REPLY,       /* text + "\n", then close */
	A_RAW,         /* text exactly (no "\n"), then close */
	A_HANG,        /* read the line, never answer */
	A_CLOSE,       /* read the line, close without a reply */
	A_DROP,        /* close at accept, before reading */
};

struct action {
	enum act act;
	const char *text;
};

#define MAX_REQ 64
#define MAX_SCRIPT 16

struct fake;

struct fconn {
	ev_io io;
	int fd;
	struct fake *f;
	struct action a;
	char buf[2048];
	size_t len;
	struct fconn *next;
};

struct fake {
	struct ev_loop *loop;
	int lfd, port;
	ev_io acc;
	struct action script[MAX_SCRIPT]; /* one per connection, then fallback */
	int nscript, next;
	struct action fallback;
	long long grant_ttl; /* REGISTER reply ttl; 0 = echo the request's */
	int nconn;           /* connections accepted */
	int nreq;            /* request lines received */
	int nregister;       /* of which REGISTER */
	char req[MAX_REQ][512];
	double at[MAX_REQ];
	double reg_at[MAX_REQ];
	struct fconn *conns;
};

static void fconn_close(struct fconn *fc)
{
	struct fake *f = fc->f;
	struct fconn **p;

	for (p = &f->conns; *p != fc; p = &(*p)->next)
		;
	*p = fc->next;
	ev_io_stop(f->loop, &fc->io);
	close(fc->fd);
	free(fc);
}

static void send_all(int fd, const char *s, size_t n)
{
	/* Replies are small: a loopback socket takes them whole. */
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void default_reply(struct fake *f, int fd, const char *line)
{
	char err[128], out[512];
	jval root = json_parse(line, strlen(line), err, sizeof err);
	const char *type = json_get_str(root, "type");
	long long ttl = 0;

	assert_non_null(type);
	if (strcmp(type, "REGISTER") == 0) {
		json_int(json_get(root, "ttl"), &ttl);
		snprintf(out, sizeof out,
			 "{\"status\":\"OK\",\"ttl\":%lld,\"ip\":\"127.0.0.1\",\"port\":5000}\n",
			 f->grant_ttl > 0 ? f->grant_ttl : ttl);
	} else if (strcmp(type, "DISCOVER") == 0) {
		snprintf(out, sizeof out,
			 "{\"status\":\"OK\",\"peers\":["
			 "{\"ip\":\"127.0.0.1\",\"port\":5000,\"name\":\"alice\",\"namespace\":\"CIC\","
			 "\"ttl\":60,\"expires_in\":59},"
			 "{\"ip\":\"127.0.0.1\",\"port\":5001,\"name\":\"bob\",\"namespace\":\"CIC\","
			 "\"ttl\":60,\"expires_in\":30}]}\n");
	} else {
		snprintf(out, sizeof out, "{\"status\":\"OK\"}\n");
	}
	json_free(root);
	send_all(fd, out, strlen(out));
}

static void fconn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fconn *fc = (struct fconn *)w;
	struct fake *f = fc->f;
	ssize_t n;
	char *nl;

	n = read(fc->fd, fc->buf + fc->len, sizeof fc->buf - 1 - fc->len);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		fconn_close(fc); /* the client gave up */
		return;
	}
	fc->len += (size_t)n;
	fc->buf[fc->len] = '\0';
	if ((nl = strchr(fc->buf, '\n')) == NULL) {
		assert_true(fc->len < sizeof fc->buf - 1);
		return;
	}
	*nl = '\0';
	assert_true(f->nreq < MAX_REQ);
	assert_true(strlen(fc->buf) < sizeof f->req[0]);
	memcpy(f->req[f->nreq], fc->buf, strlen(fc->buf) + 1);
	f->at[f->nreq] = mono_now();
	if (strstr(fc->buf, "\"REGISTER\"") != NULL)
		f->reg_at[f->nregister++] = f->at[f->nreq];
	f->nreq++;
	switch (fc->a.act) {
	case A_DEFAULT:
		default_reply(f, fc->fd, fc->buf);
		break;
	case A_REPLY:
		send_all(fc->fd, fc->a.text, strlen(fc->a.text));
		send_all(fc->fd, "\n", 1);
		break;
	case A_RAW:
		send_all(fc->fd, fc->a.text, strlen(fc->a.text));
		break;
	case A_HANG:
		ev_io_stop(loop, &fc->io); /* hold the socket open, read no more */
		return;
	case A_CLOSE:
	case A_DROP:
		break;
	}
	fconn_close(fc);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;
	struct fconn *fc;
	struct action a;
	int fd;

	if ((fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
		return;
	f->nconn++;
	a = f->next < f->nscript ? f->script[f->next++] : f->fallback;
	if (a.act == A_DROP) {
		close(fd);
		return;
	}
	fc = calloc(1, sizeof *fc);
	assert_non_null(fc);
	fc->fd = fd;
	fc->f = f;
	fc->a = a;
	fc->next = f->conns;
	f->conns = fc;
	ev_io_init(&fc->io, fconn_cb, fd, EV_READ);
	ev_io_start(loop, &fc->io);
}

/* Bound to a free port; listening only once fake_listen() is called (until
 * then connections are refused). */
static struct fake *fake_new(struct ev_loop *loop, bool listening)
{
	struct fake *f = calloc(1, sizeof *f);
	struct sockaddr_in sin = { 0 };
	socklen_t sl = sizeof sin;
	int one = 1;

	assert_non_null(f);
	f->loop = loop;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &sl), 0);
	f->port = ntohs(sin.sin_port);
	ev_io_init(&f->acc, accept_cb, f->lfd, EV_READ);
	f->acc.data = f;
	if (listening) {
		assert_int_equal(listen(f->lfd, 64), 0);
		ev_io_start(loop, &f->acc);
	}
	return f;
}

static void fake_listen(struct fake *f)
{
	assert_int_equal(listen(f->lfd, 64), 0);
	ev_io_start(f->loop, &f->acc);
}

static void fake_script(struct fake *f, enum act act, const char *text)
{
	assert_true(f->nscript < MAX_SCRIPT);
	f->script[f->nscript++] = (struct action){ act, text };
}

static void fake_free(struct fake *f)
{
	while (f->conns != NULL)
		fconn_close(f->conns);
	ev_io_stop(f->loop, &f->acc);
	close(f->lfd);
	free(f);
}

/* ---- the test harness ---------------------------------------------------- */

struct tc {
	struct ev_loop *loop;
	struct fake *f;
	struct config cfg;
	struct rdv_client *c;
	/* on_state */
	int nstate, nregistered, nblocked, nfail, nlost;
	enum rdv_reg_state last_state;
	char last_error[256];
	bool seen_registered;
	/* on_discover */
	int ndiscover;
	double disc_at[MAX_REQ];
	size_t npeers;
	char peer1[64];
	/* done */
	int ndone;
	char done_err[256];
	bool done_ok;        /* err == NULL */
	bool done_reply;     /* reply != NULL */
	bool done_reply_ok;
	double done_at;
	bool free_in_done;
};

static void on_state(void *ctx, const struct rdv_status *st)
{
	struct tc *t = ctx;

	t->nstate++;
	if (st->state == RDV_REGISTERED && t->last_state != RDV_REGISTERED)
		t->nregistered++;
	if (st->state == RDV_BLOCKED && t->last_state != RDV_BLOCKED)
		t->nblocked++;
	if (st->state == RDV_REGISTERING && t->seen_registered)
		t->nlost++;
	if (st->state == RDV_REGISTERED)
		t->seen_registered = true;
	if (strcmp(st->last_error, t->last_error) != 0 || st->state == t->last_state)
		t->nfail += st->last_error[0] != '\0';
	t->last_state = st->state;
	snprintf(t->last_error, sizeof t->last_error, "%s", st->last_error);
}

static void on_discover(void *ctx, const struct rdv_peer *peers, size_t n)
{
	struct tc *t = ctx;

	assert_true(t->ndiscover < MAX_REQ);
	t->disc_at[t->ndiscover++] = mono_now();
	t->npeers = n;
	if (n > 1)
		snprintf(t->peer1, sizeof t->peer1, "%s@%s:%d", peers[1].name, peers[1].ns,
			 peers[1].port);
}

static void on_done(void *ctx, const char *err, const struct rdv_reply *reply)
{
	struct tc *t = ctx;

	t->ndone++;
	t->done_at = mono_now();
	t->done_ok = err == NULL;
	snprintf(t->done_err, sizeof t->done_err, "%s", err != NULL ? err : "");
	t->done_reply = reply != NULL;
	t->done_reply_ok = reply != NULL && reply->ok;
	if (t->free_in_done) {
		rdv_client_free(t->c);
		t->c = NULL;
	}
}

static void tc_init(struct tc *t, bool listening)
{
	memset(t, 0, sizeof *t);
	t->loop = ev_loop_new(EVFLAG_AUTO);
	t->f = fake_new(t->loop, listening);
	snprintf(t->cfg.rendezvous.host, sizeof t->cfg.rendezvous.host, "127.0.0.1");
	t->cfg.rendezvous.port = t->f->port;
	t->cfg.rendezvous.discover_interval = 100;
	t->cfg.rendezvous.register_retry_attempts = 3;
	t->cfg.rendezvous.register_backoff_base = 0.05;
	t->cfg.rendezvous.ttl_warning_treshold = 60;
	t->cfg.limits.rendezvous_timeout = 1.0;
}

static void tc_client(struct tc *t)
{
	struct rdv_client_hooks h = { on_state, on_discover, t };

	t->c = rdv_client_new(t->loop, &t->cfg, "alice", "CIC", 5000, 60, &h);
}

static void tc_fini(struct tc *t)
{
	rdv_client_free(t->c);
	fake_free(t->f);
	ev_loop_destroy(t->loop);
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
static bool run_until(struct tc *t, const int *ctr, int target, double timeout)
{
	struct until u = { ctr, target };
	ev_prepare p;
	ev_timer d;

	if (ctr != NULL && *ctr >= target)
		return true;
	ev_now_update(t->loop);
	ev_prepare_init(&p, prep_cb);
	p.data = &u;
	ev_prepare_start(t->loop, &p);
	ev_timer_init(&d, deadline_cb, timeout, 0.);
	ev_timer_start(t->loop, &d);
	ev_run(t->loop, 0);
	ev_prepare_stop(t->loop, &p);
	ev_timer_stop(t->loop, &d);
	return ctr == NULL || *ctr >= target;
}

static void run_for(struct tc *t, double secs)
{
	run_until(t, NULL, 0, secs);
}

/* Parse a captured request line (caller frees). */
static jval req_json(struct tc *t, int i)
{
	char err[128];
	jval v;

	assert_true(i < t->f->nreq);
	v = json_parse(t->f->req[i], strlen(t->f->req[i]), err, sizeof err);
	assert_non_null(v);
	return v;
}

static long long get_int(jval v, const char *key)
{
	long long n = -12345;

	assert_true(json_int(json_get(v, key), &n));
	return n;
}

#define BLOCK_MSG                                                                         \
	"{\"status\":\"ERROR\",\"message\":\"Connection from 127.0.0.1:1 has been blocked " \
	"due to excessive login attempts (limit: 50). The block will be lifted in 1 "      \
	"seconds.\"}"

/* ---- tests ----------------------------------------------------------------- */

static void test_register_then_discover(void **state)
{
	struct tc t;
	const struct rdv_status *st;
	jval v;

	tc_init(&t, true);
	t.f->grant_ttl = 50;
	tc_client(&t);
	assert_int_equal(rdv_client_status(t.c)->state, RDV_UNREGISTERED);
	assert_int_equal(t.f->nconn, 0); /* nothing before start */
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));

	assert_int_equal(t.f->nreq, 2);
	v = req_json(&t, 0);
	assert_string_equal(json_get_str(v, "type"), "REGISTER");
	assert_string_equal(json_get_str(v, "namespace"), "CIC");
	assert_string_equal(json_get_str(v, "name"), "alice");
	assert_int_equal(get_int(v, "port"), 5000);
	assert_int_equal(get_int(v, "ttl"), 60);
	json_free(v);
	v = req_json(&t, 1);
	assert_string_equal(json_get_str(v, "type"), "DISCOVER");
	assert_null(json_get(v, "namespace")); /* all namespaces */
	json_free(v);

	st = rdv_client_status(t.c);
	assert_int_equal(st->state, RDV_REGISTERED);
	assert_int_equal(st->ttl, 50); /* the granted one */
	assert_true(st->expires > mono_now() + 48 && st->expires <= mono_now() + 50);
	assert_string_equal(st->public_ip, "127.0.0.1");
	assert_int_equal(st->requests, 2);
	assert_true(st->last_discover > 0);
	assert_string_equal(st->last_error, "");
	assert_int_equal(t.nregistered, 1);
	assert_int_equal(t.nfail, 0);
	assert_int_equal(t.npeers, 2);
	assert_string_equal(t.peer1, "bob@CIC:5001");
	tc_fini(&t);
}

static void test_discover_namespace(void **state)
{
	struct tc t;
	jval v;

	tc_init(&t, true);
	snprintf(t.cfg.node.discover_namespace, sizeof t.cfg.node.discover_namespace, "CIC");
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	v = req_json(&t, 1);
	assert_string_equal(json_get_str(v, "type"), "DISCOVER");
	assert_string_equal(json_get_str(v, "namespace"), "CIC");
	json_free(v);
	tc_fini(&t);
}

static void test_register_retry_backoff(void **state)
{
	struct tc t;

	tc_init(&t, true);
	fake_script(t.f, A_REPLY, "{\"status\":\"ERROR\",\"message\":\"bad_name\"}");
	fake_script(t.f, A_REPLY, "{\"status\":\"ERROR\",\"message\":\"bad_name\"}");
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nregistered, 1, 5.));
	assert_int_equal(t.f->nregister, 3);
	assert_int_equal(t.nfail, 2);
	assert_string_equal(rdv_client_status(t.c)->last_error, "REGISTER: server error: bad_name");
	/* base 0.05 s, then doubled */
	assert_true(t.f->reg_at[1] - t.f->reg_at[0] >= 0.05 - 0.005);
	assert_true(t.f->reg_at[1] - t.f->reg_at[0] < 0.05 + 0.25);
	assert_true(t.f->reg_at[2] - t.f->reg_at[1] >= 0.10 - 0.005);
	assert_true(t.f->reg_at[2] - t.f->reg_at[1] < 0.10 + 0.25);
	tc_fini(&t);
}

static void test_server_down_then_up(void **state)
{
	struct tc t;

	tc_init(&t, false);
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nfail, 2, 5.));
	assert_non_null(strstr(t.last_error, "REGISTER: connect to 127.0.0.1:"));
	assert_non_null(strstr(t.last_error, "refused"));
	assert_int_equal(rdv_client_status(t.c)->state, RDV_REGISTERING);
	fake_listen(t.f);
	assert_true(run_until(&t, &t.nregistered, 1, 5.));
	assert_int_equal(t.f->nregister, 1);
	assert_true(rdv_client_status(t.c)->requests >= 3);
	tc_fini(&t);
}

static void test_timeout_no_answer(void **state)
{
	struct tc t;
	double t0;

	tc_init(&t, true);
	t.f->fallback.act = A_HANG;
	t.cfg.limits.rendezvous_timeout = 0.3;
	tc_client(&t);
	t0 = mono_now();
	rdv_client_register(t.c, on_done, &t); /* starts the client too */
	assert_int_equal(t.ndone, 0);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_true(t.done_at - t0 >= 0.3 - 0.01);
	assert_true(t.done_at - t0 < 0.3 + 0.3);
	assert_false(t.done_ok);
	assert_false(t.done_reply);
	assert_string_equal(t.f->req[0] + strlen(t.f->req[0]) - 1, "}");
	assert_non_null(strstr(t.done_err, "REGISTER: timed out after 0.3 s waiting for the reply"));
	assert_int_equal(rdv_client_status(t.c)->state, RDV_REGISTERING);
	assert_true(t.nfail >= 1);
	tc_fini(&t);
}

static void silent_close(enum act act)
{
	struct tc t;
	const struct rdv_status *st;
	int nconn;

	tc_init(&t, true);
	t.f->fallback.act = act;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nblocked, 1, 5.));
	st = rdv_client_status(t.c);
	assert_int_equal(st->state, RDV_BLOCKED);
	assert_non_null(strstr(st->last_error, "without a reply"));
	assert_true(st->blocked_until > mono_now() + 55); /* the default 60 s pause */
	nconn = t.f->nconn;
	assert_int_equal(nconn, 1);
	/* On-demand requests are refused at once, and not from inside the call. */
	rdv_client_discover(t.c, on_done, &t);
	assert_int_equal(t.ndone, 0);
	assert_true(run_until(&t, &t.ndone, 1, 1.));
	assert_non_null(strstr(t.done_err, "blocking us"));
	run_for(&t, 0.3);
	assert_int_equal(t.f->nconn, nconn); /* nothing more was sent */
	tc_fini(&t);
}

static void test_close_without_reply(void **state)
{
	silent_close(A_CLOSE);
}

static void test_drop_before_reading(void **state)
{
	silent_close(A_DROP);
}

static void test_block_message(void **state)
{
	struct tc t;
	const struct rdv_status *st;
	double now;

	tc_init(&t, true);
	fake_script(t.f, A_REPLY, BLOCK_MSG);
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nblocked, 1, 5.));
	st = rdv_client_status(t.c);
	now = mono_now();
	assert_int_equal(st->state, RDV_BLOCKED);
	assert_true(st->blocked_until > now + 1.5 && st->blocked_until <= now + 2.0);
	assert_non_null(strstr(st->last_error, "lifted in 1 seconds"));
	rdv_client_discover(t.c, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 1.));
	assert_non_null(strstr(t.done_err, "blocking us"));
	assert_true(run_until(&t, &t.nregistered, 1, 5.));
	/* blocked_for + 1 s between the two REGISTERs */
	assert_true(t.f->reg_at[1] - t.f->reg_at[0] >= 2.0 - 0.01);
	assert_true(t.f->reg_at[1] - t.f->reg_at[0] < 2.0 + 0.3);
	assert_int_equal(t.f->nreq, 2); /* the refused DISCOVER never went out */
	assert_true(run_until(&t, &t.ndiscover, 1, 2.));
	tc_fini(&t);
}

/* A "lifted in N seconds" beyond belief is capped: the node must not
 * fall silent for years on one garbled (or hostile) reply. */
static void test_absurd_block_capped(void **state)
{
	struct tc t;
	const struct rdv_status *st;

	tc_init(&t, true);
	fake_script(t.f, A_REPLY,
		    "{\"status\":\"ERROR\",\"message\":\"Blocked. The block will be lifted in "
		    "999999999 seconds.\"}");
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nblocked, 1, 5.));
	st = rdv_client_status(t.c);
	assert_int_equal(st->state, RDV_BLOCKED);
	assert_true(st->blocked_until <= mono_now() + 600.0 + 0.1);
	assert_true(st->blocked_until > mono_now() + 590.0);
	tc_fini(&t);
}

static void test_error_key(void **state)
{
	struct tc t;

	tc_init(&t, true);
	fake_script(t.f, A_REPLY, "{\"status\":\"ERROR\",\"error\":\"bad_port (abc)\"}");
	tc_client(&t);
	rdv_client_register(t.c, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_string_equal(t.done_err, "REGISTER: server error: bad_port (abc)");
	assert_true(t.done_reply);
	assert_false(t.done_reply_ok);
	/* and the background retry goes on */
	assert_true(run_until(&t, &t.nregistered, 1, 3.));
	tc_fini(&t);
}

static void test_lenient_reply(void **state)
{
	struct tc t;

	tc_init(&t, true);
	/* no '\n' before the close, observed_ip instead of ip */
	fake_script(t.f, A_RAW, "{\"status\":\"ok\",\"ttl\":30,\"observed_ip\":\"192.0.2.1\"}");
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nregistered, 1, 3.));
	assert_string_equal(rdv_client_status(t.c)->public_ip, "192.0.2.1");
	assert_int_equal(rdv_client_status(t.c)->ttl, 30);
	tc_fini(&t);
}

static void test_garbage_reply(void **state)
{
	struct tc t;

	tc_init(&t, true);
	fake_script(t.f, A_REPLY, "HTTP/1.0 400 Bad Request\r");
	tc_client(&t);
	rdv_client_register(t.c, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_string_equal(t.done_err, "REGISTER: unparsable reply \"HTTP/1.0 400 Bad Request\"");
	assert_true(run_until(&t, &t.nregistered, 1, 3.));
	tc_fini(&t);
}

static void test_reregister_before_expiry(void **state)
{
	struct tc t;

	tc_init(&t, true);
	t.f->grant_ttl = 2;
	t.cfg.rendezvous.ttl_warning_treshold = 1;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.f->nregister, 3, 5.));
	/* lead = min(threshold 1, ttl/2 = 1): every second, before expiry */
	for (int i = 1; i < 3; i++) {
		double gap = t.f->reg_at[i] - t.f->reg_at[i - 1];

		assert_true(gap >= 1.0 - 0.01);
		assert_true(gap < 1.0 + 0.3);
	}
	run_for(&t, 0.1);
	assert_int_equal(rdv_client_status(t.c)->state, RDV_REGISTERED);
	assert_int_equal(t.nregistered, 1);
	assert_int_equal(t.nlost, 0);
	assert_int_equal(t.nfail, 0);
	tc_fini(&t);
}

static void test_registration_lapses(void **state)
{
	struct tc t;

	tc_init(&t, true);
	t.f->grant_ttl = 1;
	t.cfg.rendezvous.ttl_warning_treshold = 0.5;
	t.cfg.limits.rendezvous_timeout = 0.8;
	/* first REGISTER and DISCOVER answered, then silence */
	fake_script(t.f, A_DEFAULT, NULL);
	fake_script(t.f, A_DEFAULT, NULL);
	t.f->fallback.act = A_HANG;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.nlost, 1, 3.));
	assert_int_equal(rdv_client_status(t.c)->state, RDV_REGISTERING);
	assert_non_null(strstr(rdv_client_status(t.c)->last_error, "expired"));
	tc_fini(&t);
}

static void test_periodic_discover(void **state)
{
	struct tc t;

	tc_init(&t, true);
	t.cfg.rendezvous.discover_interval = 0.2;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 4, 5.));
	for (int i = 1; i < 4; i++) {
		double gap = t.disc_at[i] - t.disc_at[i - 1];

		assert_true(gap >= 0.2 - 0.01);
		assert_true(gap < 0.2 + 0.2);
	}
	assert_int_equal(t.f->nregister, 1);
	tc_fini(&t);
}

static void test_reconfigure(void **state)
{
	struct tc t;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	/* the next periodic DISCOVER was 100 s away */
	t.cfg.rendezvous.discover_interval = 0.1;
	snprintf(t.cfg.node.discover_namespace, sizeof t.cfg.node.discover_namespace, "CIC");
	rdv_client_reconfigure(t.c, &t.cfg);
	assert_true(run_until(&t, &t.ndiscover, 3, 2.));
	assert_non_null(strstr(t.f->req[t.f->nreq - 1], "\"namespace\":\"CIC\""));
	tc_fini(&t);
}

static void test_unregister(void **state)
{
	struct tc t;
	int n;
	jval v;

	tc_init(&t, true);
	t.cfg.rendezvous.discover_interval = 0.1;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_int_equal(rdv_client_status(t.c)->state, RDV_UNREGISTERED);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_true(t.done_ok);
	assert_true(t.done_reply_ok);
	n = t.f->nreq;
	v = req_json(&t, n - 1);
	assert_string_equal(json_get_str(v, "type"), "UNREGISTER");
	assert_string_equal(json_get_str(v, "namespace"), "CIC");
	assert_string_equal(json_get_str(v, "name"), "alice");
	assert_int_equal(get_int(v, "port"), 5000);
	json_free(v);
	run_for(&t, 0.3); /* periodic work has stopped */
	assert_int_equal(t.f->nreq, n);
	tc_fini(&t);
}

static void test_unregister_server_hangs(void **state)
{
	struct tc t;
	double t0;

	tc_init(&t, true);
	t.cfg.limits.rendezvous_timeout = 0.3;
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	t.f->fallback.act = A_HANG;
	t0 = mono_now();
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_true(t.done_at - t0 < 0.3 + 0.2);
	assert_non_null(strstr(t.done_err, "UNREGISTER: timed out"));
	assert_int_equal(rdv_client_status(t.c)->state, RDV_UNREGISTERED);
	tc_fini(&t);
}

static void test_unregister_server_down(void **state)
{
	struct tc t;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	ev_io_stop(t.loop, &t.f->acc);
	close(t.f->lfd);
	t.f->lfd = socket(AF_INET, SOCK_STREAM, 0); /* for fake_free */
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_non_null(strstr(t.done_err, "refused"));
	tc_fini(&t);
}

static void test_unregister_never_started(void **state)
{
	struct tc t;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_int_equal(t.ndone, 0);
	assert_true(run_until(&t, &t.ndone, 1, 1.));
	assert_false(t.done_ok);
	assert_int_equal(t.f->nconn, 0);
	tc_fini(&t);
}

/* Free with a REGISTER and a DISCOVER both waiting on a silent server. */
static void test_free_in_flight(void **state)
{
	struct tc t;

	tc_init(&t, true);
	t.f->fallback.act = A_HANG;
	tc_client(&t);
	rdv_client_start(t.c);
	rdv_client_discover(t.c, on_done, &t);
	assert_true(run_until(&t, &t.f->nreq, 2, 3.));
	rdv_client_free(t.c);
	t.c = NULL;
	run_for(&t, 0.2);
	assert_int_equal(t.ndone, 0);
	tc_fini(&t);
}

/* Free while the host name is still being resolved off the loop. */
static void test_free_while_resolving(void **state)
{
	struct tc t;

	tc_init(&t, true);
	snprintf(t.cfg.rendezvous.host, sizeof t.cfg.rendezvous.host, "localhost");
	tc_client(&t);
	rdv_client_start(t.c);
	rdv_client_discover(t.c, on_done, &t);
	rdv_client_free(t.c);
	t.c = NULL;
	run_for(&t, 0.2);
	assert_int_equal(t.ndone, 0);
	tc_fini(&t);
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

static void test_host_name(void **state)
{
	if (!system_resolves_localhost()) {
		skip();
		return;
	}
	struct tc t;

	tc_init(&t, true);
	snprintf(t.cfg.rendezvous.host, sizeof t.cfg.rendezvous.host, "localhost");
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 10.));
	tc_fini(&t);
}

static void test_free_from_done(void **state)
{
	struct tc t;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	t.free_in_done = true;
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_null(t.c);
	run_for(&t, 0.1);
	assert_int_equal(t.ndone, 1);
	tc_fini(&t);
}

static void test_budget_and_coalescing(void **state)
{
	struct tc t;
	struct rdv_tuning tun;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_get_tuning(t.c, &tun);
	assert_int_equal(tun.budget, 10);
	assert_int_equal(tun.reserve, 2);
	tun.budget = 5; /* 2 reserved: on demand may use 3 */
	rdv_client_set_tuning(t.c, &tun);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	assert_int_equal(t.f->nreq, 2);
	/* two at once: one request answers both */
	rdv_client_discover(t.c, on_done, &t);
	rdv_client_discover(t.c, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 2, 3.));
	assert_true(t.done_ok);
	assert_int_equal(t.f->nreq, 3);
	assert_int_equal(t.ndiscover, 2);
	/* 3 used, budget 5 - reserve 2: refused */
	rdv_client_discover(t.c, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 3, 3.));
	assert_false(t.done_ok);
	assert_non_null(strstr(t.done_err, "rate budget exhausted, retry in 60 s"));
	assert_int_equal(t.f->nreq, 3);
	tc_fini(&t);
}

/* UNREGISTER asked for by a controller is on-demand work: refused, with
 * nothing changed, once the budget is used up; the final one at shutdown
 * still goes out. */
static void test_unregister_on_demand_budget(void **state)
{
	struct tc t;
	struct rdv_tuning tun;
	int n;

	tc_init(&t, true);
	tc_client(&t);
	rdv_client_get_tuning(t.c, &tun);
	tun.budget = 4; /* 2 reserved: on demand may use 2 */
	rdv_client_set_tuning(t.c, &tun);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 1, 5.));
	assert_int_equal(t.f->nreq, 2); /* REGISTER, DISCOVER: the budget's on-demand share */
	rdv_client_unregister(t.c, false, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 1, 3.));
	assert_false(t.done_ok);
	assert_non_null(strstr(t.done_err, "UNREGISTER: rate budget exhausted"));
	assert_int_equal(t.f->nreq, 2);
	assert_int_equal(rdv_client_status(t.c)->state, RDV_REGISTERED); /* nothing changed */
	n = t.f->nreq;
	rdv_client_unregister(t.c, true, on_done, &t);
	assert_true(run_until(&t, &t.ndone, 2, 3.));
	assert_true(t.done_ok);
	assert_int_equal(t.f->nreq, n + 1);
	tc_fini(&t);
}

/* Automatic work past the budget waits for a slot instead of going out. */
static void test_budget_defers_periodic(void **state)
{
	struct tc t;
	struct rdv_tuning tun;

	tc_init(&t, true);
	t.cfg.rendezvous.discover_interval = 0.05;
	tc_client(&t);
	rdv_client_get_tuning(t.c, &tun);
	tun.budget = 4;
	tun.budget_window = 1.0;
	rdv_client_set_tuning(t.c, &tun);
	rdv_client_start(t.c);
	assert_true(run_until(&t, &t.ndiscover, 5, 5.));
	/* REGISTER + 3 DISCOVERs fill the first second; the 4th waits. */
	assert_true(t.f->at[4] - t.f->at[0] >= 1.0 - 0.01);
	tc_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_then_discover),
		cmocka_unit_test(test_discover_namespace),
		cmocka_unit_test(test_register_retry_backoff),
		cmocka_unit_test(test_server_down_then_up),
		cmocka_unit_test(test_timeout_no_answer),
		cmocka_unit_test(test_close_without_reply),
		cmocka_unit_test(test_drop_before_reading),
		cmocka_unit_test(test_block_message),
		cmocka_unit_test(test_absurd_block_capped),
		cmocka_unit_test(test_error_key),
		cmocka_unit_test(test_lenient_reply),
		cmocka_unit_test(test_garbage_reply),
		cmocka_unit_test(test_reregister_before_expiry),
		cmocka_unit_test(test_registration_lapses),
		cmocka_unit_test(test_periodic_discover),
		cmocka_unit_test(test_reconfigure),
		cmocka_unit_test(test_unregister),
		cmocka_unit_test(test_unregister_server_hangs),
		cmocka_unit_test(test_unregister_server_down),
		cmocka_unit_test(test_unregister_never_started),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_free_while_resolving),
		cmocka_unit_test(test_host_name),
		cmocka_unit_test(test_free_from_done),
		cmocka_unit_test(test_budget_and_coalescing),
		cmocka_unit_test(test_unregister_on_demand_budget),
		cmocka_unit_test(test_budget_defers_periodic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
