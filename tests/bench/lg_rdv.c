/* Load generator: rendezvous requests (PROTOCOL.md section 1): one line out
 * per TCP connection, the reply read until the server closes.  Many at once,
 * each timed; a DISCOVER reply's entries are counted by string search. */
#include "lg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY_MAX (64u << 20)

struct rq {
	ev_io io;
	struct rq *prev, *next; /* the batch's requests in flight */
	struct batch *b;
	int fd;
	bool connected;
	char line[512];
	size_t len, off;
	struct lgbuf in;
	double t0;
};

struct batch {
	struct ev_loop *loop;
	const char *host;
	int port, n, started, finished, conc;
	void (*req)(int, char *, size_t, void *);
	void *arg;
	struct lgrdv_stats *st;
	struct rq *head;
};

static void rq_start(struct batch *b);

static void rq_end(struct rq *q, bool ok)
{
	struct batch *b = q->b;

	if (ok && q->in.len > 0 && lg_memmem(q->in.data, q->in.len, "\"OK\"")) {
		b->st->ok++;
		lgs_add(&b->st->lat, lg_now() - q->t0);
		b->st->bytes += q->in.len;
		if (lg_memmem(q->in.data, q->in.len, "\"peers\""))
			b->st->entries = (long)lg_count(q->in.data, q->in.len, "\"name\"");
	} else {
		b->st->failed++;
		if (lg_verbose)
			lg_warn("rendezvous: %.*s", (int)(q->in.len > 200 ? 200 : q->in.len),
				q->in.data ? q->in.data : "(no reply)");
	}
	ev_io_stop(b->loop, &q->io);
	close(q->fd);
	lgbuf_free(&q->in);
	if (q->prev)
		q->prev->next = q->next;
	else
		b->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q);
	b->finished++;
	while (b->started < b->n && b->started - b->finished < b->conc)
		rq_start(b);
}

static void rq_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rq *q = w->data;

	if (!q->connected) {
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err != 0) {
			rq_end(q, false);
			return;
		}
		q->connected = true;
	}
	if (q->off < q->len) {
		ssize_t n = send(q->fd, q->line + q->off, q->len - q->off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rq_end(q, false);
			return;
		}
		if (n > 0)
			q->off += (size_t)n;
		if (q->off == q->len) {
			ev_io_stop(loop, &q->io);
			ev_io_set(&q->io, q->fd, EV_READ);
			ev_io_start(loop, &q->io);
		}
		return;
	}
	for (;;) {
		ssize_t n;
		lgbuf_reserve(&q->in, 65536);
		n = recv(q->fd, q->in.data + q->in.len, 65536, 0);
		if (n == 0) {
			rq_end(q, true);
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				rq_end(q, q->in.len > 0); /* a reset after the reply */
			return;
		}
		q->in.len += (size_t)n;
		if (q->in.len > REPLY_MAX) {
			rq_end(q, false);
			return;
		}
	}
}

static void rq_start(struct batch *b)
{
	struct rq *q = calloc(1, sizeof *q);
	int i = b->started++;

	if (q == NULL)
		lg_die("out of memory");
	q->b = b;
	b->req(i, q->line, sizeof q->line - 1, b->arg);
	q->len = strlen(q->line);
	q->line[q->len++] = '\n';
	q->t0 = lg_now();
	q->fd = lg_dial(b->host, b->port);
	if (q->fd < 0) {
		q->fd = -1;
		b->st->failed++;
		b->finished++;
		free(q);
		return;
	}
	ev_io_init(&q->io, rq_cb, q->fd, EV_WRITE);
	q->io.data = q;
	q->next = b->head;
	if (b->head)
		b->head->prev = q;
	b->head = q;
	ev_io_start(b->loop, &q->io);
}

static bool batch_done(void *arg)
{
	struct batch *b = arg;

	return b->finished >= b->n;
}

void lg_rdv_batch(struct ev_loop *loop, const char *host, int port, int n, int conc,
		  void (*req)(int i, char *line, size_t len, void *arg), void *arg,
		  struct lgrdv_stats *st, double timeout)
{
	struct batch b = { loop, host, port, n, 0, 0, conc, req, arg, st, NULL };
	double t0 = lg_now();

	st->ok = st->failed = 0;
	st->bytes = 0;
	st->entries = -1;
	lgs_reset(&st->lat);
	while (b.started < n && b.started - b.finished < conc)
		rq_start(&b);
	/* A failed dial finishes at once: keep the pipe full. */
	lg_wait(loop, batch_done, &b, timeout);
	st->seconds = lg_now() - t0;
	if (b.finished < n)
		lg_warn("rendezvous: %d of %d requests unfinished after %.0f s", n - b.finished, n, timeout);
	b.n = b.started; /* start nothing more */
	while (b.head)
		rq_end(b.head, false);
}
