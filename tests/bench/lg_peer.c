/* Load generator: bench peers.  Each one is a peer of the chat network as
 * cheap as we can make it: it dials (or accepts), says HELLO, answers PING
 * and BYE, and does what the scenario asks (struct lgrun): keep a window of
 * SENDs in flight and time their ACKs, note when a PUB marker arrives, ACK
 * the SENDs a node writes to it. */
#include "lg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "net/tls.h"

#define READ_CHUNK   65536
#define READS_PER_EV 16          /* fairness between peers */
#define IN_MAX       (1u << 20)  /* a longer line is an error */
#define OUT_MAX      (64u << 20) /* a peer that stops reading is dropped */

struct lgpeer {
	ev_io io;
	struct lgrun *run;
	int fd;
	int tag;
	enum lgp_state st;
	bool inbound;
	bool pipeline, oneline;
	bool closed_by_us;
	const char *pub_seen;      /* the marker already counted */
	char name[64];
	struct lgbuf in, out;       /* plaintext lines, both ways */
	struct tls *tls;            /* once starttls was said */
	struct buf cout;            /* with TLS: what goes to the socket */
	struct buf plain;           /* with TLS: decrypted input, scratch */
	uint32_t id;               /* in our msg_ids */
	uint64_t seq;
	int inflight;
	size_t ring_mask;
	double *ring_t;
	uint64_t *ring_seq;
};

static uint32_t next_id = 1;

/* ---- timestamps: formatted once per second ---------------------------------- */

static const char *stamp(void)
{
	static char s[32];
	static time_t last;
	time_t t = time(NULL);

	if (t != last) {
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
		last = t;
	}
	return s;
}

/* ---- writing ------------------------------------------------------------- */

static void watch(struct lgpeer *p)
{
	bool pending = p->tls ? p->cout.len > 0 : lgbuf_pending(&p->out) > 0;
	int ev = EV_READ | (pending || p->st == LGP_CONNECTING ? EV_WRITE : 0);

	if (p->st == LGP_CLOSED)
		return;
	if (ev_is_active(&p->io) && p->io.events == ev)
		return;
	ev_io_stop(p->run->loop, &p->io);
	ev_io_set(&p->io, p->fd, ev);
	ev_io_start(p->run->loop, &p->io);
}

static void peer_lost(struct lgpeer *p)
{
	if (p->st == LGP_CLOSED)
		return;
	if (p->st != LGP_READY && !p->inbound)
		p->run->dialling--;
	if (p->tls && !tls_handshake_done(p->tls)) {
		p->run->tls_failed++;
		if (lg_verbose)
			lg_warn("%s: TLS: %s", p->name, tls_error(p->tls));
	}
	if (p->st == LGP_READY)
		p->run->ready--;
	if (!p->closed_by_us)
		p->run->closed++;
	p->run->inflight -= (uint64_t)p->inflight;
	p->inflight = 0;
	p->st = LGP_CLOSED;
	ev_io_stop(p->run->loop, &p->io);
	close(p->fd);
	p->fd = -1;
}

/* As much of data as the socket takes now: the bytes sent, or -1 when
 * the connection is gone. */
static ssize_t send_now(int fd, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return -1;
	}
	return (ssize_t)off;
}

/* With TLS, plaintext waits in out until the handshake is done, then is
 * encrypted into cout; the socket is written from cout. */
static void flush_tls(struct lgpeer *p)
{
	if (tls_handshake_done(p->tls) && lgbuf_pending(&p->out)) {
		if (tls_output(p->tls, p->out.data + p->out.off, lgbuf_pending(&p->out), &p->cout) != 0) {
			peer_lost(p);
			return;
		}
		lgbuf_consume(&p->out, lgbuf_pending(&p->out));
	}
	ssize_t sent = send_now(p->fd, p->cout.data, p->cout.len);
	if (sent < 0) {
		peer_lost(p);
		return;
	}
	buf_consume(&p->cout, (size_t)sent);
	if (p->cout.len + lgbuf_pending(&p->out) > OUT_MAX) {
		lg_warn("%s: the other side does not read; dropped", p->name);
		peer_lost(p);
		return;
	}
	watch(p);
}

static void flush(struct lgpeer *p)
{
	if (p->tls) {
		flush_tls(p);
		return;
	}
	ssize_t sent = send_now(p->fd, p->out.data + p->out.off, lgbuf_pending(&p->out));
	if (sent < 0) {
		peer_lost(p);
		return;
	}
	lgbuf_consume(&p->out, (size_t)sent);
	if (lgbuf_pending(&p->out) > OUT_MAX) {
		lg_warn("%s: the other side does not read; dropped", p->name);
		peer_lost(p);
		return;
	}
	watch(p);
}

/* ok: a HELLO_OK; starttls: it takes the other side's "tls" offer. */
static void hello(struct lgpeer *p, bool ok, bool starttls)
{
	const char *tls = ok ? (starttls ? ",\"starttls\"" : "") : (p->run->tls ? ",\"tls\"" : "");

	lgbuf_addf(&p->out,
		   "{\"type\":\"%s\",\"peer_id\":\"%s\",\"version\":\"1.0\",\"features\":[\"ack\",\"metrics\"%s%s],\"ttl\":1}\n",
		   ok ? "HELLO_OK" : "HELLO", p->name, p->pipeline ? ",\"pipeline\"" : "", tls);
	flush(p);
}

/* After the HELLO_OK that said starttls: what is still unsent of the
 * plaintext goes first, in clear; everything after it is TLS. */
static void start_tls(struct lgpeer *p, bool server)
{
	if (lgbuf_pending(&p->out)) {
		buf_append(&p->cout, p->out.data + p->out.off, lgbuf_pending(&p->out));
		lgbuf_consume(&p->out, lgbuf_pending(&p->out));
	}
	p->tls = tls_new(lg_tls_ctx, server, &p->cout);
	p->st = LGP_TLS;
	flush(p);
}

static void became_ready(struct lgpeer *p)
{
	p->st = LGP_READY;
	if (!p->inbound)
		p->run->dialling--;
	p->run->ready++;
}

static void add_send(struct lgpeer *p)
{
	struct lgrun *r = p->run;
	uint64_t seq = p->seq++;
	size_t slot = seq & p->ring_mask;
	static char pay[4096];

	if (pay[0] == '\0')
		memset(pay, 'x', sizeof pay - 1);
	p->ring_t[slot] = lg_now();
	p->ring_seq[slot] = seq;
	lgbuf_addf(&p->out,
		   "{\"type\":\"SEND\",\"msg_id\":\"%08x-0000-4000-8000-%012llx\",\"src\":\"%s\",\"dst\":\"%s\","
		   "\"payload\":\"%.*s\",\"require_ack\":true,\"ttl\":1}\n",
		   p->id, (unsigned long long)seq, p->name, r->dst,
		   (int)(r->payload < sizeof pay - 1 ? r->payload : sizeof pay - 1), pay);
	p->inflight++;
	r->inflight++;
	r->sends++;
}

void lgp_fill(struct lgpeer *p)
{
	if (p == NULL || p->st != LGP_READY || !p->run->sending)
		return;
	struct lgrun *r = p->run;

	/* Batched input means many SENDs per segment: refill by half windows,
	 * not one SEND per ACK that came back. */
	if (r->batch && r->window > 1 && p->inflight > r->window / 2)
		return;
	while (p->inflight < r->window && p->st == LGP_READY) {
		add_send(p);
		if (!r->batch)
			flush(p); /* one SEND per write, as every other peer writes */
	}
	if (p->st == LGP_READY)
		flush(p);
}

/* ---- reading ------------------------------------------------------------- */

static void on_ack(struct lgpeer *p, const char *line, size_t len)
{
	struct lgrun *r = p->run;
	const char *id;
	int n = lg_field(line, len, "msg_id", &id);
	unsigned long long seq;
	char tail[13];
	size_t slot;

	if (n != 36) {
		r->unmatched++;
		return;
	}
	memcpy(tail, id + 24, 12);
	tail[12] = '\0';
	seq = strtoull(tail, NULL, 16);
	slot = seq & p->ring_mask;
	if (p->ring_seq[slot] != seq || p->ring_t[slot] < 0 || seq >= p->seq) {
		r->unmatched++; /* a duplicate, or not ours */
		return;
	}
	lgs_add(&r->lat, lg_now() - p->ring_t[slot]);
	p->ring_t[slot] = -1;
	p->inflight--;
	r->inflight--;
	r->acks++;
}

static void reply_id(struct lgpeer *p, const char *type, const char *line, size_t len)
{
	const char *id;
	int n = lg_field(line, len, "msg_id", &id);

	if (n < 0 || n > 128)
		return;
	lgbuf_addf(&p->out, "{\"type\":\"%s\",\"msg_id\":\"%.*s\",\"timestamp\":\"%s\",\"ttl\":1}\n",
		   type, n, id, stamp());
}

static void on_line(struct lgpeer *p, const char *line, size_t len)
{
	struct lgrun *r = p->run;
	const char *t;
	int tn = lg_field(line, len, "type", &t);

	if (tn <= 0)
		return;
#define IS(s) ((size_t)tn == sizeof(s) - 1 && memcmp(t, s, sizeof(s) - 1) == 0)
	if (IS("ACK")) {
		on_ack(p, line, len);
	} else if (IS("SEND")) {
		r->sink_sends++;
		reply_id(p, "ACK", line, len);
	} else if (IS("PUB")) {
		if (r->pub_marker && p->pub_seen != r->pub_marker && lg_memmem(line, len, r->pub_marker)) {
			p->pub_seen = r->pub_marker;
			r->pub_got++;
			r->pub_last = lg_now();
		}
	} else if (IS("PING")) {
		reply_id(p, "PONG", line, len);
	} else if (IS("HELLO_OK") && p->st == LGP_HELLO && !p->inbound) {
		if (r->tls && lg_memmem(line, len, "\"starttls\"")) {
			start_tls(p, false);
			return;
		}
		if (r->tls)
			r->tls_declined++;
		became_ready(p);
	} else if (IS("HELLO") && p->st == LGP_HELLO && p->inbound) {
		bool take = r->tls && lg_memmem(line, len, "\"tls\"") != NULL;
		hello(p, true, take);
		if (p->st == LGP_CLOSED)
			return;
		if (take) {
			start_tls(p, true);
			return;
		}
		if (r->tls)
			r->tls_declined++;
		became_ready(p);
	} else if (IS("BYE")) {
		const char *id;
		int n = lg_field(line, len, "msg_id", &id);
		lgbuf_addf(&p->out, "{\"type\":\"BYE_OK\",\"msg_id\":\"%.*s\",\"src\":\"%s\",\"dst\":\"*\",\"ttl\":1}\n",
			   n > 0 && n < 128 ? n : 0, n > 0 ? id : "", p->name);
		flush(p);
		peer_lost(p);
	}
#undef IS
}

/* Ciphertext from the socket: plaintext to in, handshake and alerts to
 * cout.  -1 when the peer was lost. */
static int tls_feed(struct lgpeer *p, const char *data, size_t n)
{
	bool was_done = tls_handshake_done(p->tls);

	if (tls_input(p->tls, data, n, &p->plain, &p->cout) != 0) {
		peer_lost(p);
		return -1;
	}
	if (p->plain.len) {
		lgbuf_add(&p->in, p->plain.data, p->plain.len);
		buf_reset(&p->plain);
	}
	if (!was_done && tls_handshake_done(p->tls) && p->st == LGP_TLS) {
		p->run->secured++;
		became_ready(p);
	}
	return 0;
}

/* TLS started in the middle of what was read: the rest is ciphertext. */
static int tls_switch(struct lgpeer *p, char *rest, size_t n)
{
	char *copy = n ? malloc(n) : NULL;
	int rc;

	if (n && copy == NULL)
		lg_die("out of memory");
	if (n)
		memcpy(copy, rest, n);
	lgbuf_consume(&p->in, lgbuf_pending(&p->in));
	rc = n ? tls_feed(p, copy, n) : 0;
	free(copy);
	return rc;
}

static void on_readable(struct lgpeer *p)
{
	struct lgrun *r = p->run;
	static char chunk[READ_CHUNK];

	for (int i = 0; i < READS_PER_EV && p->st != LGP_CLOSED; i++) {
		char *nl, *start;
		ssize_t n;

		lgbuf_reserve(&p->in, READ_CHUNK);
		n = recv(p->fd, p->tls ? chunk : p->in.data + p->in.len, READ_CHUNK, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			peer_lost(p);
			return;
		}
		if (n < 0)
			break;
		if (p->oneline) {
			/* Only the first line of this recv() is seen, as one
			 * implementation in the wild does. */
			start = p->in.data + p->in.len;
			nl = memchr(start, '\n', (size_t)n);
			if (nl)
				on_line(p, start, (size_t)(nl - start));
			r->sink_lost_bytes += (size_t)n - (nl ? (size_t)(nl - start) + 1 : 0);
			break;
		}
		if (p->tls) {
			if (tls_feed(p, chunk, (size_t)n) != 0)
				return;
		} else {
			p->in.len += (size_t)n;
		}
		start = p->in.data + p->in.off;
		while (p->st != LGP_CLOSED &&
		       (nl = memchr(start, '\n', (size_t)(p->in.data + p->in.len - start))) != NULL) {
			bool was_tls = p->tls != NULL;
			on_line(p, start, (size_t)(nl - start));
			start = nl + 1;
			if (!was_tls && p->tls) {
				if (tls_switch(p, start, (size_t)(p->in.data + p->in.len - start)) != 0)
					return;
				start = p->in.data + p->in.off;
			}
		}
		if (p->st == LGP_CLOSED)
			return;
		lgbuf_consume(&p->in, (size_t)(start - (p->in.data + p->in.off)));
		if (lgbuf_pending(&p->in) > IN_MAX) {
			lg_warn("%s: line over %u bytes; dropped", p->name, IN_MAX);
			peer_lost(p);
			return;
		}
		if ((size_t)n < READ_CHUNK)
			break;
	}
	if (p->st == LGP_READY && r->sending)
		lgp_fill(p);
	if (p->st != LGP_CLOSED)
		flush(p);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lgpeer *p = w->data;

	if (p->st == LGP_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err != 0) {
			if (lg_verbose)
				lg_warn("%s: connect: %s", p->name, strerror(err ? err : errno));
			peer_lost(p);
			return;
		}
		p->st = LGP_HELLO;
		hello(p, false, false); /* alone in its write, as the protocol asks */
		return;
	}
	if (revents & EV_READ)
		on_readable(p);
	if (p->st != LGP_CLOSED && (revents & EV_WRITE))
		flush(p);
}

/* ---- life ---------------------------------------------------------------- */

static struct lgpeer *peer_new(struct lgrun *run, int fd, const struct lgpeer_opts *o)
{
	struct lgpeer *p = calloc(1, sizeof *p);
	size_t ring = 64;

	if (p == NULL)
		lg_die("out of memory");
	while (ring < (size_t)(run->window > 0 ? run->window : 1) * 2)
		ring *= 2;
	p->run = run;
	p->fd = fd;
	p->id = next_id++;
	p->pipeline = o->pipeline;
	p->oneline = o->oneline;
	snprintf(p->name, sizeof p->name, "%s", o->name);
	p->ring_mask = ring - 1;
	p->ring_t = malloc(ring * sizeof *p->ring_t);
	p->ring_seq = malloc(ring * sizeof *p->ring_seq);
	if (p->ring_t == NULL || p->ring_seq == NULL)
		lg_die("out of memory");
	for (size_t i = 0; i < ring; i++) {
		p->ring_t[i] = -1;
		p->ring_seq[i] = UINT64_MAX;
	}
	ev_io_init(&p->io, io_cb, fd, EV_READ);
	p->io.data = p;
	return p;
}

struct lgpeer *lgp_dial(struct lgrun *run, const char *host, int port, const struct lgpeer_opts *o)
{
	int fd = lg_dial(host, port);
	struct lgpeer *p;

	if (fd < 0) {
		lg_warn("%s: cannot dial %s:%d: %s", o->name, host, port, strerror(errno));
		return NULL;
	}
	p = peer_new(run, fd, o);
	p->st = LGP_CONNECTING;
	run->dialling++;
	watch(p);
	return p;
}

struct lgpeer *lgp_accept(struct lgrun *run, int fd, const struct lgpeer_opts *o, int tag)
{
	struct lgpeer *p = peer_new(run, fd, o);
	int one = 1;

	lg_nonblock(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	p->inbound = true;
	p->tag = tag;
	p->st = LGP_HELLO;
	watch(p);
	return p;
}

void lgp_close(struct lgpeer *p)
{
	if (p == NULL)
		return;
	p->closed_by_us = true;
	peer_lost(p);
	lgbuf_free(&p->in);
	lgbuf_free(&p->out);
	tls_free(p->tls);
	buf_free(&p->cout);
	buf_free(&p->plain);
	free(p->ring_t);
	free(p->ring_seq);
	free(p);
}

enum lgp_state lgp_state(const struct lgpeer *p)
{
	return p ? p->st : LGP_CLOSED;
}

int lgp_tag(const struct lgpeer *p)
{
	return p->tag;
}

struct dialwait {
	struct lgrun *run;
	int parallel;
};

static bool dial_slot(void *arg)
{
	struct dialwait *d = arg;

	return d->run->dialling < d->parallel;
}

static bool dial_done(void *arg)
{
	return ((struct dialwait *)arg)->run->dialling == 0;
}

struct lgpeer **lgp_dial_many(struct lgrun *run, const char *host, int port, int n,
			      const char *prefix, bool pipeline, int parallel, double timeout)
{
	struct lgpeer **ps = calloc((size_t)(n > 0 ? n : 1), sizeof *ps);
	struct dialwait d = { run, parallel };
	double deadline = lg_now() + timeout;
	char name[64];

	if (ps == NULL)
		lg_die("out of memory");
	for (int i = 0; i < n && lg_now() < deadline; i++) {
		struct lgpeer_opts o = { .name = name, .pipeline = pipeline };
		snprintf(name, sizeof name, "%s-%d@BENCH", prefix, i);
		ps[i] = lgp_dial(run, host, port, &o);
		if (run->dialling >= parallel)
			lg_wait(run->loop, dial_slot, &d, deadline - lg_now());
	}
	lg_wait(run->loop, dial_done, &d, deadline - lg_now());
	return ps;
}

void lgp_close_all(struct lgpeer **ps, int n)
{
	if (ps == NULL)
		return;
	for (int i = 0; i < n; i++)
		lgp_close(ps[i]);
	free(ps);
}
