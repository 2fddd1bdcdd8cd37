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
#include "node/node.h"
#include "node/ping.h"
#include "node/stats.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Peer"
/* Reads per readiness event: enough for throughput, bounded for fairness. */
#define READS_PER_EVENT 8
#define READ_CHUNK 65536

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents);
static void on_ping_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_pong_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_gap(struct ev_loop *loop, ev_timer *w, int revents);
static void on_resend(struct ev_loop *loop, ev_timer *w, int revents);
static void on_probe_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_flusher(struct ev_loop *loop, ev_prepare *w, int revents);
static void pump(struct conn *c);
static void flush(struct conn *c);

const char *conn_state_name(enum conn_state s)
{
	switch (s) {
	case CONN_CONNECTING: return "connecting";
	case CONN_HANDSHAKE: return "handshake";
	case CONN_ESTABLISHED: return "established";
	case CONN_CLOSED: return "closed";
	}
	return "?";
}

const char *conn_wmode_name(enum conn_wmode m)
{
	switch (m) {
	case WM_PIPELINE: return "pipeline";
	case WM_PROBING: return "probing";
	case WM_LEARNED: return "learned";
	case WM_ONE_PER_WRITE: return "one-per-write";
	}
	return "?";
}

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

static struct conn *conn_new(struct node *n, int fd, enum conn_dir dir)
{
	const struct config *cfg = node_config(n);
	struct conn *c = xcalloc(1, sizeof *c);
	int one = 1;

	c->node = n;
	c->fd = fd;
	c->dir = dir;
	c->out_max = (size_t)cfg->limits.out_queue_bytes;
	c->last_rx = mono_now();
	framer_init(&c->fr, (size_t)cfg->network.max_msg_size);
	buf_init(&c->out);
	/* Chat lines are small and latency matters more than packet count. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_init(&c->deadline, on_deadline);
	ev_init(&c->ping_timer, on_ping_timer);
	ev_init(&c->pong_timer, on_pong_timeout);
	ev_init(&c->gap_timer, on_gap);
	ev_init(&c->resend_timer, on_resend);
	ev_init(&c->probe_timer, on_probe_timeout);
	ev_prepare_init(&c->flusher, on_flusher);
	c->rio.data = c->wio.data = c->deadline.data = c->ping_timer.data = c->pong_timer.data =
		c->gap_timer.data = c->resend_timer.data = c->probe_timer.data = c->flusher.data = c;
	c->wmode = WM_ONE_PER_WRITE;
	return c;
}

void conn_arm_deadline(struct conn *c, double after)
{
	struct ev_loop *loop = node_loop(c->node);

	ev_timer_stop(loop, &c->deadline);
	ev_timer_set(&c->deadline, after, 0);
	ev_timer_start(loop, &c->deadline);
}

struct conn *conn_dial(struct node *n, const char *peer_id, const char *ip, int port, char *err,
		       size_t errlen)
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
	c = conn_new(n, fd, CONN_OUT);
	c->state = CONN_CONNECTING;
	snprintf(c->peer_id, sizeof c->peer_id, "%s", peer_id);
	format_addr(&sa, c->addr, sizeof c->addr);
	/* Writable means connected (or failed: SO_ERROR tells). */
	ev_io_start(node_loop(n), &c->wio);
	conn_arm_deadline(c, node_config(n)->limits.connect_timeout);
	return c;
}

struct conn *conn_accept(struct node *n, int fd, const struct sockaddr_storage *sa)
{
	struct conn *c = conn_new(n, fd, CONN_IN);

	c->state = CONN_HANDSHAKE;
	format_addr(sa, c->addr, sizeof c->addr);
	ev_io_start(node_loop(n), &c->rio);
	conn_arm_deadline(c, node_config(n)->limits.handshake_timeout);
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
	loop = node_loop(c->node);
	/* reason may be close_reason itself (close after flush): an
	 * overlapping snprintf made it "" (the BYE without a reason). */
	if (reason != c->close_reason)
		snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	c->state = CONN_CLOSED;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->deadline);
	ev_timer_stop(loop, &c->ping_timer);
	ev_timer_stop(loop, &c->pong_timer);
	ev_timer_stop(loop, &c->gap_timer);
	ev_timer_stop(loop, &c->resend_timer);
	ev_timer_stop(loop, &c->probe_timer);
	ev_prepare_stop(loop, &c->flusher);
	close(c->fd);
	c->fd = -1;
	c->busy++;
	node_conn_closed(c->node, c, reason);
	c->busy--;
	conn_reap(c);
}

void conn_reap(struct conn *c)
{
	if (c->state != CONN_CLOSED || c->busy > 0)
		return;
	framer_free(&c->fr);
	buf_free(&c->out);
	free_list(c->ctl_head);
	free_list(c->data_head);
	free(c->inflight);
	free(c);
}

/* ---- output ----------------------------------------------------------- */

/* Write what we can now; the rest waits for EV_WRITE.  The write watcher
 * runs only while bytes are stuck (no epoll_ctl per message). */
static void flush(struct conn *c)
{
	struct ev_loop *loop = node_loop(c->node);

	while (c->out.len > 0) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
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
	if (c->gap && !c->batch && c->state == CONN_ESTABLISHED && !ev_is_active(&c->gap_timer)) {
		/* Some peers read one message per recv(): this line gets a read of
		 * its own.  Its answer, if it has one, ends the wait early. */
		double gap = node_config(c->node)->limits.send_gap_ms / 1000.0;
		ev_timer_set(&c->gap_timer, gap, 0);
		ev_timer_start(loop, &c->gap_timer);
	}
}

/* Everything written to c in this loop iteration leaves in one write. */
static void schedule_flush(struct conn *c)
{
	if (!ev_is_active(&c->flusher))
		ev_prepare_start(node_loop(c->node), &c->flusher);
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
	ev_prepare_stop(node_loop(c->node), &c->flusher);
	if (c->state == CONN_CLOSED || c->out.len == 0 || ev_is_active(&c->wio) ||
	    c->state == CONN_CONNECTING)
		return;
	flush(c); /* may close and free c */
}

static struct conn_msg *msg_new(const struct buf *line, bool is_send, const char *msg_id)
{
	struct conn_msg *m = xmalloc(sizeof *m + line->len);

	m->next = NULL;
	m->is_send = is_send;
	m->answered = is_send;
	m->probe = false;
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
	if (c->out.len + c->queued + line->len > c->out_max) {
		log_warn(MOD, "%s (%s): output queue full (%zu bytes), disconnecting", c->peer_id,
			 c->addr, c->out.len + c->queued);
		conn_close(c, "output queue full");
		return -1;
	}
	c->tx_msgs++;
	if (c->batch) {
		/* Batched: everything written in this loop iteration leaves in one write. */
		buf_append(&c->out, line->data, line->len);
		schedule_flush(c);
		return 0;
	}
	struct conn_msg *m = msg_new(line, kind == CK_SEND, msg_id);
	m->answered = (kind == CK_SEND || kind == CK_PING) && msg_id != NULL;
	c->queued += m->len;
	if (kind == CK_CTL || kind == CK_PING)
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

	node_conn_traffic(c->node, c, stats_line_type(line->data, line->len), line->len, true);
	c->busy++;
	rc = write_line(c, line, kind, msg_id);
	c->busy--;
	if (c->state == CONN_CLOSED) {
		conn_reap(c);
		return -1;
	}
	return rc;
}

/* One message per write for peers without "pipeline" (PROTOCOL.md §4):
 * after each line, nothing more until its gap ends, or its answer comes. */
static void pump(struct conn *c)
{
	struct ev_loop *loop = node_loop(c->node);
	struct conn_msg *m;

	if (c->state != CONN_ESTABLISHED || c->batch || c->out.len > 0 || c->gap)
		return;
	m = dequeue(&c->ctl_head, &c->ctl_tail);
	if (m == NULL && c->inflight == NULL)
		m = dequeue(&c->data_head, &c->data_tail);
	if (m == NULL)
		return;
	c->queued -= m->len;
	buf_append(&c->out, m->line, m->len);
	c->gap = true;
	snprintf(c->await_id, sizeof c->await_id, "%s", m->answered ? m->msg_id : "");
	if (m->probe) {
		c->probe_sent = mono_now();
		ev_timer_set(&c->probe_timer, node_config(c->node)->keepalive.ping_timeout, 0);
		ev_timer_start(loop, &c->probe_timer);
	}
	if (m->is_send) {
		c->inflight = m;
		double every = node_config(c->node)->limits.resend_interval;
		ev_timer_set(&c->resend_timer, every, every);
		ev_timer_start(loop, &c->resend_timer);
	} else {
		free(m);
	}
	/* One line per write here: nothing to batch, and waiting for the end of
	 * the loop iteration would only add to a stop-and-wait round trip. */
	flush(c);
}

/* The answer to msg_id came: the line was read, the next may go at once. */
static void answered(struct conn *c, const char *msg_id)
{
	if (!c->gap || c->await_id[0] == '\0' || c->out.len > 0 || msg_id == NULL ||
	    strcmp(c->await_id, msg_id) != 0)
		return;
	c->gap = false;
	c->await_id[0] = '\0';
	ev_timer_stop(node_loop(c->node), &c->gap_timer);
	pump(c);
}

/* The peer proved it reads whole segments: whatever waits goes now, batched. */
static void go_batched(struct conn *c, enum conn_wmode mode)
{
	struct conn_msg *m;

	c->wmode = mode;
	c->batch = true;
	c->gap = false;
	c->await_id[0] = '\0';
	ev_timer_stop(node_loop(c->node), &c->gap_timer);
	while ((m = dequeue(&c->ctl_head, &c->ctl_tail)) != NULL ||
	       (m = dequeue(&c->data_head, &c->data_tail)) != NULL) {
		buf_append(&c->out, m->line, m->len);
		free(m);
	}
	c->queued = 0;
	if (c->out.len > 0)
		schedule_flush(c);
}

/* Two PINGs in one write, ahead of everything queued (PROTOCOL.md §4). */
static void start_probe(struct conn *c)
{
	struct buf two = BUF_INIT;
	struct conn_msg *m;

	c->wmode = WM_PROBING;
	for (int i = 0; i < 2; i++) {
		msgid_new(c->probe_id[i]);
		c->probe_pong[i] = false;
		pmsg_build_ping(&two, c->probe_id[i]);
	}
	m = msg_new(&two, false, c->probe_id[0]);
	buf_free(&two);
	m->answered = true; /* the first PONG ends the gap */
	m->probe = true;
	m->next = c->ctl_head;
	c->ctl_head = m;
	if (c->ctl_tail == NULL)
		c->ctl_tail = m;
	c->queued += m->len;
	c->tx_msgs += 2;
	pump(c);
}

static void on_probe_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;

	if (c->wmode != WM_PROBING)
		return;
	/* One PONG (or none): this peer loses what shares a segment.  The lost
	 * PING is no keep-alive failure: keep-alive has PINGs of its own. */
	c->wmode = WM_ONE_PER_WRITE;
	log_info(MOD, "%s: %d of 2 PINGs sent together answered: one message per write",
		 c->peer_id, (int)c->probe_pong[0] + (int)c->probe_pong[1]);
}

/* A PONG for one of the probe's PINGs?  Both answered: learned. */
static bool probe_pong(struct conn *c, const char *msg_id)
{
	int i;

	if (c->wmode != WM_PROBING || msg_id == NULL)
		return false;
	for (i = 0; i < 2 && strcmp(c->probe_id[i], msg_id) != 0; i++)
		;
	if (i == 2)
		return false;
	if (!c->probe_pong[0] && !c->probe_pong[1])
		node_conn_rtt(c->node, c, (mono_now() - c->probe_sent) * 1000.0);
	c->probe_pong[i] = true;
	if (c->probe_pong[0] && c->probe_pong[1]) {
		ev_timer_stop(node_loop(c->node), &c->probe_timer);
		log_debug(MOD, "%s: both PINGs of one write answered: batched writes", c->peer_id);
		go_batched(c, WM_LEARNED);
	} else {
		answered(c, c->await_id);
	}
	return true;
}

void conn_send_done(struct conn *c, const char *msg_id)
{
	struct conn_msg **pp;

	if (c->inflight && strcmp(c->inflight->msg_id, msg_id) == 0) {
		free(c->inflight);
		c->inflight = NULL;
		ev_timer_stop(node_loop(c->node), &c->resend_timer);
		if (c->gap)
			answered(c, msg_id);
		else
			pump(c);
		return;
	}
	/* Timed out before its turn came: drop it from the queue. */
	for (pp = &c->data_head; *pp; pp = &(*pp)->next) {
		struct conn_msg *m = *pp;
		if (m->is_send && strcmp(m->msg_id, msg_id) == 0) {
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
	log_debug(MOD, "%s: no ACK yet for %s, resending", c->peer_id, c->inflight->msg_id);
	buf_append(&line, c->inflight->line, c->inflight->len);
	conn_write(c, &line, CK_CTL, NULL);
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
		c->state = CONN_HANDSHAKE;
		/* HELLO alone, and nothing else until HELLO_OK (PROTOCOL.md §4). */
		if (pmsg_build_hello(&c->out, false, node_id(c->node), FEAT_OURS) != 0) {
			conn_close(c, "cannot build HELLO");
			return;
		}
		ev_io_start(loop, &c->rio);
		conn_arm_deadline(c, node_config(c->node)->limits.handshake_timeout);
		flush(c);
		return;
	}
	flush(c);
}

/* ---- keep-alive --------------------------------------------------------- */

static void start_keepalive(struct conn *c)
{
	const struct config *cfg = node_config(c->node);
	struct ev_loop *loop = node_loop(c->node);

	ev_timer_set(&c->ping_timer, cfg->keepalive.ping_interval, cfg->keepalive.ping_interval);
	ev_timer_start(loop, &c->ping_timer);
}

static void on_ping_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	const struct config *cfg = node_config(c->node);
	struct buf line = BUF_INIT;

	if (mono_now() - c->last_rx > cfg->network.connection_timeout) {
		conn_close(c, "idle: nothing received within connection_timeout");
		return;
	}
	if (c->ping_out)
		return; /* the pong timer is still judging the last one */
	msgid_new(c->ping_id);
	c->ping_sent = mono_now();
	c->ping_out = true;
	pmsg_build_ping(&line, c->ping_id);
	if (conn_write(c, &line, CK_PING, c->ping_id) == 0) {
		ev_timer_set(&c->pong_timer, cfg->keepalive.ping_timeout, 0);
		ev_timer_start(loop, &c->pong_timer);
	}
	buf_free(&line);
}

void conn_probe(struct conn *c)
{
	if (c->state != CONN_ESTABLISHED || c->probing)
		return;
	c->probing = true;
	if (c->ping_out)
		return; /* the pong timer already running judges it */
	c->busy++;
	on_ping_timer(node_loop(c->node), &c->ping_timer, 0);
	c->busy--;
	conn_reap(c);
}

static void on_pong_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	int max = node_config(c->node)->keepalive.max_ping_failures;

	c->ping_out = false;
	c->ping_failures++;
	log_debug(MOD, "%s: PING %d/%d unanswered", c->peer_id, c->ping_failures, max);
	if (c->probing) {
		/* Another connection claims this peer and this one is silent:
		 * proven dead, the other one takes over (node_conn_closed). */
		conn_close(c, "keepalive: PING unanswered while another connection claims the peer");
		return;
	}
	if (c->ping_failures >= max) {
		char why[96];
		snprintf(why, sizeof why, "keepalive: %d PINGs unanswered", c->ping_failures);
		conn_close(c, why);
	}
}

static void on_pong(struct conn *c, const struct pmsg *m)
{
	struct ev_loop *loop = node_loop(c->node);

	/* Any PONG proves the peer alive; only ours by msg_id gives an RTT. */
	c->ping_failures = 0;
	if (c->probing) {
		c->probing = false;
		c->busy++;
		node_conn_alive(c->node, c);
		c->busy--;
	}
	if (probe_pong(c, m->msg_id))
		return;
	answered(c, m->msg_id);
	if (c->ping_out && m->msg_id && strcmp(m->msg_id, c->ping_id) == 0) {
		double ms = (mono_now() - c->ping_sent) * 1000.0;
		c->ping_out = false;
		ev_timer_stop(loop, &c->pong_timer);
		node_conn_rtt(c->node, c, ms);
	} else {
		node_conn_pong(c->node, c, m->msg_id); /* an on-demand ping's (ping.c) */
	}
}

/* ---- input ------------------------------------------------------------ */

static void established(struct conn *c, const struct pmsg *m)
{
	c->features = m ? m->features : 0;
	c->pipeline = (c->features & FEAT_PIPELINE) != 0;
	/* A HELLO is the dialler's own word; a HELLO_OK may be our HELLO's
	 * features echoed back by a peer that reads one line per recv()
	 * (PROTOCOL.md §4).  On connections we dialled the write discipline
	 * is learned by the probe, never taken from the HELLO_OK. */
	bool believed = c->pipeline && c->dir == CONN_IN;
	c->batch = believed;
	c->wmode = believed ? WM_PIPELINE : WM_ONE_PER_WRITE;
	c->state = CONN_ESTABLISHED;
	c->since = wall_now();
	ev_timer_stop(node_loop(c->node), &c->deadline);
	start_keepalive(c);
	/* Learn whether this peer reads whole segments before anything else
	 * is written (it waits behind the probe). */
	if (!believed)
		start_probe(c);
	if (c->state == CONN_CLOSED)
		return; /* the probe's write failed */
	c->busy++;
	node_conn_established(c->node, c);
	c->busy--;
}

static void bad_line(struct conn *c, const char *why)
{
	int max = node_config(c->node)->limits.max_bad_lines;

	c->bad_lines++;
	log_debug(MOD, "%s (%s): %s (%d/%d)", c->peer_id[0] ? c->peer_id : "?", c->addr, why,
		  c->bad_lines, max);
	if (c->state != CONN_ESTABLISHED) {
		conn_close(c, why);
		return;
	}
	if (c->bad_lines >= max) {
		char reason[128];
		snprintf(reason, sizeof reason, "too many invalid lines (%d)", c->bad_lines);
		conn_close(c, reason);
	}
}

static void handle(struct conn *c, const struct pmsg *m)
{
	struct buf line = BUF_INIT;

	/* Only bad lines in a row close a connection: a long-lived peer with
	 * the odd malformed message is not a stream of garbage. */
	c->bad_lines = 0;
	if (c->state == CONN_HANDSHAKE) {
		if (c->dir == CONN_IN) {
			if (m->type != PM_HELLO) {
				conn_close(c, "first message was not HELLO");
				return;
			}
			c->busy++;
			bool ok = node_conn_hello(c->node, c, m);
			c->busy--;
			if (!ok || c->state == CONN_CLOSED) {
				conn_close(c, "HELLO refused");
				return;
			}
			/* HELLO_OK in a write of its own, and a gap after it:
			 * it gets no answer. */
			pmsg_build_hello(&c->out, true, node_id(c->node), FEAT_OURS);
			c->gap = (m->features & FEAT_PIPELINE) == 0;
			established(c, m);
			if (c->state != CONN_CLOSED)
				flush(c);
			return;
		}
		if (m->type == PM_HELLO_OK) {
			if (m->peer_id && strcmp(m->peer_id, c->peer_id) != 0)
				log_info(MOD, "%s: HELLO_OK says it is %s; keeping the dialled id",
					 c->peer_id, m->peer_id);
			established(c, m);
			return;
		}
		if (m->type == PM_UNKNOWN || m->type == PM_HELLO)
			return;
		/* Some peers talk before their HELLO_OK is read: take it as given. */
		established(c, NULL);
		if (c->state == CONN_CLOSED)
			return;
	}
	switch (m->type) {
	case PM_PING:
		pmsg_build_pong(&line, m->msg_id);
		conn_write(c, &line, CK_CTL, NULL);
		break;
	case PM_PONG:
		on_pong(c, m);
		break;
	case PM_BYE:
		pmsg_build_bye_ok(&line, m->msg_id ? m->msg_id : "", node_id(c->node), c->peer_id);
		c->busy++;
		node_conn_bye(c->node, c);
		c->busy--;
		if (c->state == CONN_CLOSED)
			break;
		snprintf(c->close_reason, sizeof c->close_reason, "peer said BYE%s%.80s",
			 m->reason && m->reason[0] ? ": " : "", m->reason ? m->reason : "");
		/* Nothing else will be said: BYE_OK goes now, then we close
		 * ourselves (PROTOCOL.md §4). */
		free_list(c->ctl_head);
		free_list(c->data_head);
		c->ctl_head = c->ctl_tail = c->data_head = c->data_tail = NULL;
		c->queued = 0;
		buf_append(&c->out, line.data, line.len);
		c->close_after_flush = true;
		flush(c);
		break;
	case PM_BYE_OK:
		if (c->bye_sent)
			conn_close(c, "BYE_OK received");
		break;
	case PM_HELLO:
	case PM_HELLO_OK:
		log_debug(MOD, "%s: %s after the handshake, ignored", c->peer_id, pmsg_type_name(m->type));
		break;
	case PM_UNKNOWN:
		log_debug(MOD, "%s: unknown type \"%s\", ignored", c->peer_id, m->type_str);
		break;
	default:
		c->busy++;
		node_conn_message(c->node, c, m);
		c->busy--;
		break;
	}
	buf_free(&line);
}

static int on_line(void *ctx, enum framer_event ev, const char *text, size_t len)
{
	struct conn *c = ctx;
	struct pmsg m;
	char err[128];

	if (ev == FRAMER_OVERFLOW) {
		char why[64];
		snprintf(why, sizeof why, "line longer than %d bytes",
			 node_config(c->node)->network.max_msg_size);
		bad_line(c, why);
		return c->state == CONN_CLOSED;
	}
	if (len == 0)
		return 0; /* blank lines between messages are tolerated */
	enum pmsg_status st = pmsg_parse(text, len, &m, err, sizeof err);
	if (st == PMSG_OK) {
		c->rx_msgs++;
		node_conn_traffic(c->node, c, m.type, len, false);
		handle(c, &m);
	} else {
		char why[192];
		snprintf(why, sizeof why, "%s: %s",
			 st == PMSG_BAD_JSON ? "invalid message" : "missing field", err);
		bad_line(c, why);
	}
	pmsg_free(&m);
	return c->state == CONN_CLOSED;
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
			if (framer_feed(&c->fr, data, (size_t)n, on_line, c) != 0)
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
			conn_close(c, c->state == CONN_HANDSHAKE ? "closed during handshake"
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

	switch (c->state) {
	case CONN_CONNECTING:
		conn_close(c, "connect timeout");
		break;
	case CONN_HANDSHAKE:
		conn_close(c, c->dir == CONN_OUT ? "no HELLO_OK in time" : "no HELLO in time");
		break;
	case CONN_ESTABLISHED:
		/* BYE_OK wait, or the grace of a duplicate connection. */
		conn_close(c, c->bye_sent ? "no BYE_OK in time" : "duplicate connection closed");
		break;
	case CONN_CLOSED:
		break;
	}
}

void conn_bye(struct conn *c, const char *reason)
{
	struct buf line = BUF_INIT;
	char id[MSGID_LEN];

	if (c->state != CONN_ESTABLISHED) {
		conn_close(c, reason);
		return;
	}
	if (c->bye_sent)
		return;
	c->bye_sent = true;
	msgid_new(id);
	pmsg_build_bye(&line, id, node_id(c->node), c->peer_id, reason);
	/* BYE jumps the data queue: nothing more will follow it. */
	free_list(c->data_head);
	c->data_head = c->data_tail = NULL;
	c->queued = 0;
	for (struct conn_msg *m = c->ctl_head; m; m = m->next)
		c->queued += m->len;
	/* Nor is a SEND awaiting its ACK written again after the BYE. */
	ev_timer_stop(node_loop(c->node), &c->resend_timer);
	free(c->inflight);
	c->inflight = NULL;
	/* The write may close and free c (queue full, write error). */
	if (conn_write(c, &line, CK_CTL, NULL) == 0)
		conn_arm_deadline(c, node_config(c->node)->limits.bye_timeout);
	buf_free(&line);
}
