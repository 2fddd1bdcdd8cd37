/* Load generator, --responder: a peer that answers HELLO, SEND and PING as
 * cheaply as the machine allows: read until EAGAIN, find "type" and
 * "msg_id" by string search (no JSON parser), all answers to one read batch
 * in one write.  What it reaches is the transport's own limit on this
 * machine, the yardstick for the node's figures. */
#include "lg.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK      65536
#define READS      16
#define IN_MAX     (1u << 20)
#define OUT_MAX    (64u << 20)

struct rconn {
	ev_io io;
	int fd;
	bool hello_done;
	struct lgbuf in, out;
};

static const char *me;
static char ts[32];
static time_t ts_sec;

static void rc_free(struct ev_loop *loop, struct rconn *c)
{
	ev_io_stop(loop, &c->io);
	close(c->fd);
	lgbuf_free(&c->in);
	lgbuf_free(&c->out);
	free(c);
}

static bool rc_flush(struct ev_loop *loop, struct rconn *c)
{
	while (lgbuf_pending(&c->out)) {
		ssize_t n = send(c->fd, c->out.data + c->out.off, lgbuf_pending(&c->out), MSG_NOSIGNAL);
		if (n > 0)
			lgbuf_consume(&c->out, (size_t)n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else
			return false;
	}
	if (lgbuf_pending(&c->out) > OUT_MAX)
		return false;
	int ev = EV_READ | (lgbuf_pending(&c->out) ? EV_WRITE : 0);
	if (c->io.events != ev) {
		ev_io_stop(loop, &c->io);
		ev_io_set(&c->io, c->fd, ev);
		ev_io_start(loop, &c->io);
	}
	return true;
}

/* Answer one line; false: close the connection. */
static bool rc_line(struct ev_loop *loop, struct rconn *c, const char *line, size_t len)
{
	const char *t, *id;
	int tn = lg_field(line, len, "type", &t), n;

	if (tn <= 0)
		return true;
	n = lg_field(line, len, "msg_id", &id);
	if (n < 0 || n > 128)
		n = 0, id = "";
	if (tn == 4 && memcmp(t, "SEND", 4) == 0) {
		lgbuf_addf(&c->out, "{\"type\":\"ACK\",\"msg_id\":\"%.*s\",\"timestamp\":\"%s\",\"ttl\":1}\n",
			   n, id, ts);
	} else if (tn == 4 && memcmp(t, "PING", 4) == 0) {
		lgbuf_addf(&c->out, "{\"type\":\"PONG\",\"msg_id\":\"%.*s\",\"timestamp\":\"%s\",\"ttl\":1}\n",
			   n, id, ts);
	} else if (tn == 5 && memcmp(t, "HELLO", 5) == 0 && !c->hello_done) {
		c->hello_done = true;
		lgbuf_addf(&c->out,
			   "{\"type\":\"HELLO_OK\",\"peer_id\":\"%s\",\"version\":\"1.0\","
			   "\"features\":[\"ack\",\"metrics\",\"pipeline\"],\"ttl\":1}\n", me);
		return rc_flush(loop, c); /* alone in its write */
	} else if (tn == 3 && memcmp(t, "BYE", 3) == 0) {
		lgbuf_addf(&c->out, "{\"type\":\"BYE_OK\",\"msg_id\":\"%.*s\",\"src\":\"%s\",\"dst\":\"*\",\"ttl\":1}\n",
			   n, id, me);
		rc_flush(loop, c);
		return false;
	}
	return true;
}

static void rc_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rconn *c = w->data;

	if (revents & EV_READ) {
		time_t now = time(NULL);
		if (now != ts_sec) {
			struct tm tm;
			gmtime_r(&now, &tm);
			strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
			ts_sec = now;
		}
		for (int i = 0; i < READS; i++) {
			ssize_t n;
			lgbuf_reserve(&c->in, CHUNK);
			n = recv(c->fd, c->in.data + c->in.len, CHUNK, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
				rc_free(loop, c);
				return;
			}
			if (n < 0)
				break;
			c->in.len += (size_t)n;
			char *start = c->in.data + c->in.off, *nl;
			while ((nl = memchr(start, '\n', (size_t)(c->in.data + c->in.len - start))) != NULL) {
				if (!rc_line(loop, c, start, (size_t)(nl - start))) {
					rc_free(loop, c);
					return;
				}
				start = nl + 1;
			}
			lgbuf_consume(&c->in, (size_t)(start - (c->in.data + c->in.off)));
			if (lgbuf_pending(&c->in) > IN_MAX) {
				rc_free(loop, c);
				return;
			}
			if ((size_t)n < CHUNK)
				break;
		}
	}
	if (!rc_flush(loop, c))
		rc_free(loop, c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int one = 1;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct rconn *c;
		if (fd < 0)
			return; /* EAGAIN, or EMFILE: try again at the next wake-up */
		c = calloc(1, sizeof *c);
		if (c == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		ev_io_init(&c->io, rc_cb, fd, EV_READ);
		c->io.data = c;
		ev_io_start(loop, &c->io);
	}
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

int lg_responder_run(int listen_fd, const char *name)
{
	struct ev_loop *loop = ev_default_loop(0);
	ev_io acc;
	ev_signal s1, s2;

	me = name;
	signal(SIGPIPE, SIG_IGN);
	ev_io_init(&acc, accept_cb, listen_fd, EV_READ);
	ev_io_start(loop, &acc);
	ev_signal_init(&s1, stop_cb, SIGTERM);
	ev_signal_init(&s2, stop_cb, SIGINT);
	ev_signal_start(loop, &s1);
	ev_signal_start(loop, &s2);
	ev_unref(loop);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_io_stop(loop, &acc);
	close(listen_fd);
	return 0;
}
