#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net/tls.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Peer"
/* Reads per readiness event: enough for throughput, bounded for fairness. */
#define READS_PER_EVENT 8
#define READ_CHUNK 65536

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents);
static void on_gap(struct ev_loop *loop, ev_timer *w, int revents);
static void on_resend(struct ev_loop *loop, ev_timer *w, int revents);
static void on_flusher(struct ev_loop *loop, ev_prepare *w, int revents);
static void on_tls_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void pump(struct conn *c);
static void flush(struct conn *c);

static void format_addr(const struct sockaddr_storage *sa, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		port = ntohs(s4->sin_port);
		snprintf(out, len, "%s:%d", ip, port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
		snprintf(out, len, "[%s]:%d", ip, port);
	} else {
		snprintf(out, len, "?");
	}
}

static struct conn *conn_new(struct ev_loop *loop, const struct config *cfg, int fd,
			     enum conn_dir dir, const struct conn_cbs *cbs, void *ctx)
{
	struct conn *c = xcalloc(1, sizeof *c);
	int one = 1;
	static uint64_t serials;

	c->loop = loop;
	c->cfg = cfg;
	c->cbs = cbs;
	c->ctx = ctx;
	c->fd = fd;
	c->dir = dir;
	c->serial = ++serials;
	c->out_max = (size_t)cfg->limits.out_queue_bytes;
	c->last_rx = mono_now();
	framer_init(&c->fr, (size_t)cfg->network.max_msg_size);
	buf_init(&c->out);
	/* Chat lines are small and latency matters more than packet count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_init(&c->deadline, on_deadline);
	ev_init(&c->gap_timer, on_gap);
	ev_init(&c->resend_timer, on_resend);
	ev_prepare_init(&c->flusher, on_flusher);
	ev_init(&c->tls_timer, on_tls_timeout);
	buf_init(&c->tls_plain);
	c->rio.data = c->wio.data = c->deadline.data = c->gap_timer.data = c->resend_timer.data =
		c->flusher.data = c->tls_timer.data = c;
	return c;
}

void conn_arm_deadline(struct conn *c, double after)
{
	ev_timer_stop(c->loop, &c->deadline);
	ev_timer_set(&c->deadline, after, 0);
	ev_timer_start(c->loop, &c->deadline);
}

void conn_disarm_deadline(struct conn *c)
{
	ev_timer_stop(c->loop, &c->deadline);
}

/* Bytes on their way out: written or encrypted (out), plaintext held for
 * TLS (tls_plain), and lines queued. */
static size_t out_bytes(const struct conn *c)
{
	return c->out.len + c->tls_plain.len;
}

size_t conn_queued_bytes(const struct conn *c)
{
	return out_bytes(c) + c->queued;
}

struct conn *conn_dial(struct ev_loop *loop, const struct config *cfg, const char *ip, int port,
		       const struct conn_cbs *cbs, void *ctx, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	struct conn *c;
	int fd;

	memset(&sa, 0, sizeof sa);
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		salen = sizeof *s4;
	} else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		salen = sizeof *s6;
	} else {
		snprintf(err, errlen, "not an IP address: %s", ip);
		return NULL;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sa, salen) != 0 && errno != EINPROGRESS) {
		snprintf(err, errlen, "connect %s:%d: %s", ip, port, strerror(errno));
		close(fd);
		return NULL;
	}
	c = conn_new(loop, cfg, fd, CONN_OUT, cbs, ctx);
	c->state = CONN_CONNECTING;
	format_addr(&sa, c->addr, sizeof c->addr);
	snprintf(c->name, sizeof c->name, "%s", c->addr);
	/* Writable means connected (or failed: SO_ERROR tells). */
	ev_io_start(loop, &c->wio);
	conn_arm_deadline(c, cfg->limits.connect_timeout);
	return c;
}

struct conn *conn_accept(struct ev_loop *loop, const struct config *cfg, int fd,
			 const struct sockaddr_storage *sa, const struct conn_cbs *cbs, void *ctx)
{
	struct conn *c = conn_new(loop, cfg, fd, CONN_IN, cbs, ctx);

	c->state = CONN_OPEN;
	format_addr(sa, c->addr, sizeof c->addr);
	snprintf(c->name, sizeof c->name, "%s", c->addr);
	ev_io_start(loop, &c->rio);
	return c;
}

/* ---- closing ---------------------------------------------------------- */

static void free_list(struct conn_msg *m)
{
	while (m) {
		struct conn_msg *next = m->next;
		free(m);
		m = next;
	}
}

void conn_close(struct conn *c, const char *reason)
{
	struct ev_loop *loop;

	if (c->state == CONN_CLOSED)
		return;
	loop = c->loop;
	/* reason may be close_reason itself (close after flush): an
	 * overlapping snprintf made it "" (the BYE without a reason). */
	if (reason != c->close_reason)
		snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	c->state = CONN_CLOSED;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->deadline);
	ev_timer_stop(loop, &c->gap_timer);
	ev_timer_stop(loop, &c->resend_timer);
	ev_prepare_stop(loop, &c->flusher);
	ev_timer_stop(loop, &c->tls_timer);
	if (c->secured && !c->peer_closed && !c->tls_failed && c->out.len == 0) {
		/* A clean end the other side can tell from a cut: one try, no wait. */
		struct buf bye = BUF_INIT;
		tls_close_notify(c->tls, &bye);
		if (bye.len > 0 && send(c->fd, bye.data, bye.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			log_debug(MOD, "%s: close_notify not sent: %s", c->name, strerror(errno));
		buf_free(&bye);
	}
	close(c->fd);
	c->fd = -1;
	c->busy++;
	c->cbs->closed(c->ctx, c, reason);
	c->busy--;
	conn_reap(c);
}

void conn_reap(struct conn *c)
{
	if (c->state != CONN_CLOSED || c->busy > 0)
		return;
	framer_free(&c->fr);
	buf_free(&c->out);
	buf_free(&c->tls_plain);
	tls_free(c->tls);
	free_list(c->ctl_head);
	free_list(c->data_head);
	free(c->inflight);
	free(c);
}

/* ---- output ----------------------------------------------------------- */

/* Plaintext lines into the output: as they are, or encrypted once TLS runs
 * (held until its handshake ends: nothing goes in clear after STARTTLS).
 * A batched connection holds its lines until the flush and seals them in
 * one go: one TLS record per write instead of one per line (an ACK of 100
 * bytes in a record of its own cost more in record overhead than in
 * encryption, on both ends). */
static void out_put(struct conn *c, const void *data, size_t len)
{
	if (c->tls == NULL) {
		buf_append(&c->out, data, len);
	} else if (!c->secured || c->batch) {
		buf_append(&c->tls_plain, data, len);
		if (c->secured && !ev_is_active(&c->flusher))
			ev_prepare_start(c->loop, &c->flusher);
	} else if (tls_output(c->tls, data, len, &c->out) != 0) {
		/* Closed at the next flush: callers here cannot be closed under. */
		c->tls_failed = true;
		if (!ev_is_active(&c->flusher))
			ev_prepare_start(c->loop, &c->flusher);
	}
}

/* Encrypt the plaintext held for a batched TLS connection into out. */
static void seal(struct conn *c)
{
	if (c->tls == NULL || !c->secured || c->tls_plain.len == 0 || c->tls_failed)
		return;
	if (tls_output(c->tls, c->tls_plain.data, c->tls_plain.len, &c->out) != 0)
		c->tls_failed = true;
	buf_reset(&c->tls_plain);
	/* An idle connection keeps no large buffer. */
	if (c->tls_plain.cap > 65536) {
		buf_free(&c->tls_plain);
		buf_init(&c->tls_plain);
	}
}

static void tls_broken(struct conn *c)
{
	char why[200];

	snprintf(why, sizeof why, "TLS: %s", tls_error(c->tls));
	conn_close(c, why);
}

/* Write what we can now; the rest waits for EV_WRITE.  The write watcher
 * runs only while bytes are stuck (no epoll_ctl per message). */
static void flush(struct conn *c)
{
	struct ev_loop *loop = c->loop;

	seal(c);
	if (c->tls_failed) {
		tls_broken(c);
		return;
	}
	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			c->bytes_sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ev_is_active(&c->wio))
				ev_io_start(loop, &c->wio);
			return;
		}
		char why[128];
		snprintf(why, sizeof why, "write: %s", strerror(errno));
		conn_close(c, why);
		return;
	}
	if (ev_is_active(&c->wio))
		ev_io_stop(loop, &c->wio);
	if (c->close_after_flush) {
		conn_close(c, c->close_reason[0] ? c->close_reason : "closed after reply");
		return;
	}
	if (c->gap && !c->batch && c->state == CONN_STARTED && !ev_is_active(&c->gap_timer)) {
		/* Some peers read one message per recv(): this line gets a read of
		 * its own.  Its answer, if it has one, ends the wait early. */
		double gap = c->cfg->limits.send_gap_ms / 1000.0;
		ev_timer_set(&c->gap_timer, gap, 0);
		ev_timer_start(loop, &c->gap_timer);
	}
	/* Flow control: the queue went down to low water; the hook may write
	 * (and even close c), so it is the last thing done here. */
	if (c->drain_armed && c->state == CONN_STARTED && c->cbs->drained &&
	    out_bytes(c) + c->queued <= c->out_max / 4) {
		c->drain_armed = false;
		c->busy++;
		c->cbs->drained(c->ctx, c);
		c->busy--;
		conn_reap(c);
	}
}

bool conn_room(struct conn *c, size_t len)
{
	size_t used = out_bytes(c) + c->queued;

	/* An empty queue takes any line (one may be over half the limit). */
	if (c->state == CONN_STARTED && (used == 0 || used + len <= c->out_max / 2))
		return true;
	c->drain_armed = true;
	return false;
}

uint64_t conn_mark(const struct conn *c)
{
	return c->bytes_sent + out_bytes(c) + c->queued;
}

bool conn_written(const struct conn *c, uint64_t mark)
{
	return c->bytes_sent >= mark;
}

/* Everything written to c in this loop iteration leaves in one write. */
static void schedule_flush(struct conn *c)
{
	if (!ev_is_active(&c->flusher))
		ev_prepare_start(c->loop, &c->flusher);
}

static void on_flusher(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct conn *c = w->data;

	ev_prepare_stop(loop, w);
	conn_flush_now(c);
}

/* A prepare watcher started from another prepare callback (the storage's
 * group commit releasing held ACKs) only runs after the loop has slept:
 * such callers flush here instead. */
void conn_flush_now(struct conn *c)
{
	ev_prepare_stop(c->loop, &c->flusher);
	bool sealable = c->secured && c->tls_plain.len > 0;
	if (c->state == CONN_CLOSED || (c->out.len == 0 && !sealable && !c->tls_failed) ||
	    ev_is_active(&c->wio) || c->state == CONN_CONNECTING)
		return;
	flush(c); /* may close and free c */
}

static struct conn_msg *msg_new(const struct buf *line, bool awaits, const char *msg_id)
{
	struct conn_msg *m = xmalloc(sizeof *m + line->len);

	m->next = NULL;
	m->awaits = awaits;
	m->answered = awaits;
	m->first = false;
	snprintf(m->msg_id, sizeof m->msg_id, "%s", msg_id ? msg_id : "");
	m->len = line->len;
	memcpy(m->line, line->data, line->len);
	return m;
}

static void enqueue(struct conn_msg **head, struct conn_msg **tail, struct conn_msg *m)
{
	if (*tail)
		(*tail)->next = m;
	else
		*head = m;
	*tail = m;
}

static struct conn_msg *dequeue(struct conn_msg **head, struct conn_msg **tail)
{
	struct conn_msg *m = *head;

	if (m) {
		*head = m->next;
		if (*head == NULL)
			*tail = NULL;
		m->next = NULL;
	}
	return m;
}

static int write_line(struct conn *c, const struct buf *line, enum conn_kind kind, const char *msg_id)
{
	if (c->state == CONN_CLOSED)
		return -1;
	if (out_bytes(c) + c->queued + line->len > c->out_max) {
		log_warn(MOD, "%s (%s): output queue full (%zu bytes), disconnecting", c->name,
			 c->addr, out_bytes(c) + c->queued);
		conn_close(c, "output queue full");
		return -1;
	}
	c->tx_msgs++;
	if (c->batch) {
		/* Batched: everything written in this loop iteration leaves in one write. */
		out_put(c, line->data, line->len);
		schedule_flush(c);
		return 0;
	}
	struct conn_msg *m = msg_new(line, kind == CW_DATA_AWAIT, msg_id);
	m->answered = (kind == CW_DATA_AWAIT || kind == CW_URGENT_AWAIT) && msg_id != NULL;
	c->queued += m->len;
	if (kind == CW_URGENT || kind == CW_URGENT_AWAIT)
		enqueue(&c->ctl_head, &c->ctl_tail, m);
	else
		enqueue(&c->data_head, &c->data_tail, m);
	pump(c);
	return 0;
}

/* The write may close the connection (queue full, write error): then the
 * caller gets -1 and must not touch c again. */
int conn_write(struct conn *c, const struct buf *line, enum conn_kind kind, const char *msg_id)
{
	int rc;

	c->cbs->wrote(c->ctx, c, line->data, line->len);
	c->busy++;
	rc = write_line(c, line, kind, msg_id);
	c->busy--;
	if (c->state == CONN_CLOSED) {
		conn_reap(c);
		return -1;
	}
	return rc;
}

/* One line per write for an unbatched connection (PROTOCOL.md §4):
 * after each line, nothing more until its gap ends, or its answer comes. */
static void pump(struct conn *c)
{
	struct ev_loop *loop = c->loop;
	struct conn_msg *m;

	if (c->state != CONN_STARTED || c->batch || c->out.len > 0 || c->gap)
		return;
	m = dequeue(&c->ctl_head, &c->ctl_tail);
	if (m == NULL && c->inflight == NULL)
		m = dequeue(&c->data_head, &c->data_tail);
	if (m == NULL)
		return;
	c->queued -= m->len;
	out_put(c, m->line, m->len);
	c->gap = true;
	snprintf(c->await_id, sizeof c->await_id, "%s", m->answered ? m->msg_id : "");
	bool first = m->first;
	if (m->awaits) {
		c->inflight = m;
		double every = c->cfg->limits.resend_interval;
		ev_timer_set(&c->resend_timer, every, every);
		ev_timer_start(loop, &c->resend_timer);
	} else {
		free(m);
	}
	/* One line per write here: nothing to batch, and waiting for the end of
	 * the loop iteration would only add to a stop-and-wait round trip. */
	if (first) {
		c->busy++;
		c->cbs->first_written(c->ctx, c);
		c->busy--;
		if (c->state == CONN_CLOSED)
			return;
	}
	flush(c);
}

/* The answer to msg_id came: the line was read, the next may go at once. */
void conn_answered(struct conn *c, const char *msg_id)
{
	if (!c->gap || c->await_id[0] == '\0' || c->out.len > 0 || msg_id == NULL ||
	    strcmp(c->await_id, msg_id) != 0)
		return;
	c->gap = false;
	c->await_id[0] = '\0';
	ev_timer_stop(c->loop, &c->gap_timer);
	pump(c);
}

/* The owner learned the other end reads whole segments: whatever waits goes now, batched. */
void conn_go_batched(struct conn *c)
{
	struct conn_msg *m;

	c->batch = true;
	c->gap = false;
	c->await_id[0] = '\0';
	ev_timer_stop(c->loop, &c->gap_timer);
	while ((m = dequeue(&c->ctl_head, &c->ctl_tail)) != NULL ||
	       (m = dequeue(&c->data_head, &c->data_tail)) != NULL) {
		out_put(c, m->line, m->len);
		free(m);
	}
	c->queued = 0;
	if (c->out.len > 0)
		schedule_flush(c);
}

void conn_send_done(struct conn *c, const char *msg_id)
{
	struct conn_msg **pp;

	if (c->inflight && strcmp(c->inflight->msg_id, msg_id) == 0) {
		free(c->inflight);
		c->inflight = NULL;
		ev_timer_stop(c->loop, &c->resend_timer);
		if (c->gap)
			conn_answered(c, msg_id);
		else
			pump(c);
		return;
	}
	/* Timed out before its turn came: drop it from the queue. */
	for (pp = &c->data_head; *pp; pp = &(*pp)->next) {
		struct conn_msg *m = *pp;
		if (m->awaits && strcmp(m->msg_id, msg_id) == 0) {
			*pp = m->next;
			if (c->data_tail == m) {
				c->data_tail = NULL;
				for (struct conn_msg *t = c->data_head; t; t = t->next)
					c->data_tail = t;
			}
			c->queued -= m->len;
			free(m);
			return;
		}
	}
}

static void on_resend(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	struct buf line = BUF_INIT;

	if (c->inflight == NULL) {
		ev_timer_stop(loop, w);
		return;
	}
	/* Same msg_id: the receiver ACKs again and shows it once. */
	log_debug(MOD, "%s: no answer yet for %s, resending", c->name, c->inflight->msg_id);
	buf_append(&line, c->inflight->line, c->inflight->len);
	conn_write(c, &line, CW_URGENT, NULL);
	buf_free(&line);
}

static void on_gap(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;

	c->gap = false;
	c->await_id[0] = '\0';
	pump(c);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;

	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			char why[128];
			snprintf(why, sizeof why, "connect: %s", strerror(err));
			conn_close(c, why);
			return;
		}
		ev_io_stop(loop, &c->wio);
		c->state = CONN_OPEN;
		ev_io_start(loop, &c->rio);
		c->busy++;
		c->cbs->connected(c->ctx, c);
		c->busy--;
		conn_reap(c);
		return;
	}
	flush(c);
}

/* ---- input ------------------------------------------------------------ */

/* framer_feed stopped: closed, or TLS starts after this line. */
#define FEED_CLOSED 1
#define FEED_TLS 2

static int on_line(void *ctx, enum framer_event ev, const char *text, size_t len)
{
	struct conn *c = ctx;

	if (ev == FRAMER_OVERFLOW)
		c->cbs->overflow(c->ctx, c);
	else if (len > 0) /* blank lines between messages are tolerated */
		c->cbs->line(c->ctx, c, text, len);
	if (c->state == CONN_CLOSED)
		return FEED_CLOSED;
	if (c->tls_now) {
		c->tls_now = false;
		return FEED_TLS;
	}
	return 0;
}

/* Bytes from the socket through TLS: handshake, then lines.  -1 if c closed. */
static int tls_feed(struct conn *c, const char *data, size_t len)
{
	/* One loop, one reader at a time: a shared scratch buffer keeps idle
	 * connections from holding decrypted bytes. */
	static struct buf plain;
	size_t before = c->out.len;
	int rc;

	buf_reset(&plain);
	rc = tls_input(c->tls, data, len, &plain, &c->out);
	if (c->out.len > before && !ev_is_active(&c->flusher))
		ev_prepare_start(c->loop, &c->flusher);
	if (rc < 0) {
		c->tls_failed = true;
		tls_broken(c);
		return -1;
	}
	if (!c->secured && tls_handshake_done(c->tls)) {
		c->secured = true;
		ev_timer_stop(c->loop, &c->tls_timer);
		/* What waited for the handshake is sealed by the next flush. */
		if (c->tls_plain.len > 0 && !ev_is_active(&c->flusher))
			ev_prepare_start(c->loop, &c->flusher);
		c->cbs->secured(c->ctx, c, tls_peer_fingerprint(c->tls));
		if (c->state == CONN_CLOSED)
			return -1;
	}
	if (plain.len > 0 && framer_feed(&c->fr, plain.data, plain.len, on_line, c) != 0)
		return -1;
	if (rc == 1) {
		c->peer_closed = true;
		conn_close(c, "connection closed by peer (TLS close_notify)");
		return -1;
	}
	return 0;
}

void conn_start_tls(struct conn *c, struct tls_ctx *ctx, bool server)
{
	if (c->tls || c->state == CONN_CLOSED)
		return;
	c->tls = tls_new(ctx, server, &c->out);
	c->tls_now = true;
	ev_timer_set(&c->tls_timer, c->cfg->limits.handshake_timeout, 0);
	ev_timer_start(c->loop, &c->tls_timer);
	if (c->out.len > 0 && !ev_is_active(&c->flusher))
		ev_prepare_start(c->loop, &c->flusher);
}

static void on_tls_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;

	c->tls_failed = true;
	conn_close(c, "TLS: handshake timeout");
}

/* One segment: lines, or after STARTTLS (even within it) TLS records. */
static int feed(struct conn *c, const char *data, size_t n)
{
	int rc;

	if (c->tls)
		return tls_feed(c, data, n);
	c->tls_now = false;
	rc = framer_feed(&c->fr, data, n, on_line, c);
	if (rc == FEED_TLS) {
		size_t used = c->fr.used;
		return used < n ? tls_feed(c, data + used, n - used) : 0;
	}
	return rc != 0 ? -1 : 0;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	static char data[READ_CHUNK];

	c->busy++;
	for (int i = 0; i < READS_PER_EVENT && c->state != CONN_CLOSED; i++) {
		ssize_t n = recv(c->fd, data, sizeof data, 0);
		if (n > 0) {
			c->last_rx = mono_now();
			if (feed(c, data, (size_t)n) != 0)
				break;
			if ((size_t)n < sizeof data)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->peer_closed = true; /* EOF or reset: the other side's doing */
		if (n == 0) {
			conn_close(c, c->state == CONN_OPEN ? "closed during handshake"
							    : "connection closed by peer");
		} else {
			char why[128];
			snprintf(why, sizeof why, "read: %s", strerror(errno));
			conn_close(c, why);
		}
		break;
	}
	c->busy--;
	conn_reap(c);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;

	if (c->state == CONN_CONNECTING) {
		conn_close(c, "connect timeout");
		return;
	}
	c->busy++;
	c->cbs->deadline(c->ctx, c);
	c->busy--;
	conn_reap(c);
}

void conn_start(struct conn *c, bool batch)
{
	c->state = CONN_STARTED;
	c->batch = batch;
	pump(c);
}

void conn_put(struct conn *c, const struct buf *text, bool gap_after)
{
	out_put(c, text->data, text->len);
	c->gap = gap_after;
}

void conn_close_after_flush(struct conn *c, const char *reason)
{
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	c->close_after_flush = true;
	/* The last words still held for a batched TLS connection are sealed
	 * first: nothing can be written after close_notify. */
	seal(c);
	if (c->secured && !c->tls_failed)
		tls_close_notify(c->tls, &c->out); /* after the last words */
	flush(c);
}

void conn_drop_queued(struct conn *c, bool urgent_too)
{
	free_list(c->data_head);
	c->data_head = c->data_tail = NULL;
	c->queued = 0;
	if (urgent_too) {
		free_list(c->ctl_head);
		c->ctl_head = c->ctl_tail = NULL;
	} else {
		for (struct conn_msg *m = c->ctl_head; m; m = m->next)
			c->queued += m->len;
	}
	/* Nor is a line awaiting its answer written again. */
	ev_timer_stop(c->loop, &c->resend_timer);
	free(c->inflight);
	c->inflight = NULL;
}

/* Ahead of everything queued (the pipeline probe's two PINGs, PROTOCOL.md §4). */
void conn_write_first(struct conn *c, const struct buf *text, int lines, const char *msg_id)
{
	struct conn_msg *m = msg_new(text, false, msg_id);

	m->answered = true; /* its first answer ends the gap */
	m->first = true;
	m->next = c->ctl_head;
	c->ctl_head = m;
	if (c->ctl_tail == NULL)
		c->ctl_tail = m;
	c->queued += m->len;
	c->tx_msgs += (uint64_t)lines;
	pump(c);
}
