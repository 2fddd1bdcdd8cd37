/* Load generator: clients of a node's control socket (JSON-RPC 2.0, one
 * object per line, docs/control-protocol.md).  Answers are matched by id,
 * found by string search. */
#include "lg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RING 65536 /* requests in flight per controller, at most */

struct lgctl {
	ev_io io;
	struct ev_loop *loop;
	int fd;
	bool failed;
	struct lgbuf in, out;
	int inflight;
	uint64_t next_id;
	lgctl_cb cb;
	void *arg;
	double t[RING];
};

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void ctl_watch(struct lgctl *c)
{
	int ev = EV_READ | (lgbuf_pending(&c->out) ? EV_WRITE : 0);

	if (c->failed || (ev_is_active(&c->io) && c->io.events == ev))
		return;
	ev_io_stop(c->loop, &c->io);
	ev_io_set(&c->io, c->fd, ev);
	ev_io_start(c->loop, &c->io);
}

static void ctl_fail(struct lgctl *c, const char *why)
{
	if (c->failed)
		return;
	lg_warn("control connection: %s", why);
	c->failed = true;
	ev_io_stop(c->loop, &c->io);
}

static void ctl_flush(struct lgctl *c)
{
	while (lgbuf_pending(&c->out)) {
		ssize_t n = send(c->fd, c->out.data + c->out.off, lgbuf_pending(&c->out), MSG_NOSIGNAL);
		if (n > 0)
			lgbuf_consume(&c->out, (size_t)n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			ctl_fail(c, strerror(errno));
			return;
		}
	}
	ctl_watch(c);
}

static void ctl_line(struct lgctl *c, const char *line, size_t len)
{
	double id = lg_num(line, len, "id", -1);
	bool ok;

	if (id < 1 || lg_memmem(line, len, "\"method\"")) /* an event */
		return;
	ok = lg_memmem(line, len, "\"error\"") == NULL;
	c->inflight--;
	c->cb(c, ok, line, len, lg_now() - c->t[(uint64_t)id % RING], c->arg);
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lgctl *c = w->data;

	if (revents & EV_READ) {
		for (;;) {
			ssize_t n;
			lgbuf_reserve(&c->in, 65536);
			n = recv(c->fd, c->in.data + c->in.len, 65536, 0);
			if (n == 0) {
				ctl_fail(c, "closed by the node");
				return;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				ctl_fail(c, strerror(errno));
				return;
			}
			c->in.len += (size_t)n;
			char *start = c->in.data + c->in.off, *nl;
			while ((nl = memchr(start, '\n', (size_t)(c->in.data + c->in.len - start))) != NULL) {
				ctl_line(c, start, (size_t)(nl - start));
				start = nl + 1;
			}
			lgbuf_consume(&c->in, (size_t)(start - (c->in.data + c->in.off)));
			if ((size_t)n < 65536)
				break;
		}
	}
	if (revents & EV_WRITE)
		ctl_flush(c);
}

struct lgctl *lgctl_open(struct ev_loop *loop, const char *path, lgctl_cb cb, void *arg)
{
	int fd = unix_connect(path);
	struct lgctl *c;

	if (fd < 0) {
		lg_warn("%s: %s", path, strerror(errno));
		return NULL;
	}
	lg_nonblock(fd);
	c = calloc(1, sizeof *c);
	if (c == NULL)
		lg_die("out of memory");
	c->loop = loop;
	c->fd = fd;
	c->cb = cb;
	c->arg = arg;
	ev_io_init(&c->io, ctl_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	return c;
}

void lgctl_request(struct lgctl *c, const char *method, const char *params)
{
	uint64_t id = ++c->next_id;

	if (c->failed)
		return;
	c->t[id % RING] = lg_now();
	c->inflight++;
	lgbuf_addf(&c->out, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\"%s%s}\n",
		   (unsigned long long)id, method, params ? ",\"params\":" : "", params ? params : "");
	ctl_flush(c);
}

int lgctl_inflight(const struct lgctl *c)
{
	return c->failed ? 0 : c->inflight;
}

bool lgctl_failed(const struct lgctl *c)
{
	return c->failed;
}

void lgctl_close(struct lgctl *c)
{
	if (c == NULL)
		return;
	ev_io_stop(c->loop, &c->io);
	close(c->fd);
	lgbuf_free(&c->in);
	lgbuf_free(&c->out);
	free(c);
}

int lgctl_call(const char *path, const char *method, const char *params, char *out, size_t outlen,
	       double timeout)
{
	char req[1024];
	int fd = unix_connect(path), n;
	size_t got = 0;
	double deadline = lg_now() + timeout;

	if (fd < 0)
		return -1;
	n = snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"%s%s}\n", method,
		     params ? ",\"params\":" : "", params ? params : "");
	if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -1;
	}
	while (got < outlen - 1) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		double left = deadline - lg_now();
		ssize_t r;
		if (left <= 0 || poll(&pf, 1, (int)(left * 1000) + 1) <= 0)
			break;
		r = recv(fd, out + got, outlen - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
		out[got] = '\0';
		char *nl = strchr(out, '\n');
		if (nl) {
			*nl = '\0';
			if (lg_num(out, strlen(out), "id", -1) == 1) {
				close(fd);
				return 0;
			}
			/* an event line: skip it */
			memmove(out, nl + 1, got - (size_t)(nl + 1 - out) + 1);
			got -= (size_t)(nl + 1 - out);
		}
	}
	close(fd);
	return -1;
}
