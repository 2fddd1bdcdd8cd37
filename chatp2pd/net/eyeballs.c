#include "net/eyeballs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"

struct attempt {
	struct eyeballs *e;
	int fd;
	ev_io io;
};

struct eyeballs {
	struct ev_loop *loop;
	struct sockaddr_storage addr[EYEBALLS_MAX];
	socklen_t len[EYEBALLS_MAX];
	size_t n, next;
	struct attempt att[EYEBALLS_MAX];
	unsigned live;          /* attempts in progress */
	double delay;
	ev_timer timer;         /* next attempt; or the deferred failure */
	bool failed;            /* nothing left: report from the timer */
	eyeballs_cb cb;
	void *ctx;
	char err[128];
};

static void on_connect(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

static void release(struct eyeballs *e)
{
	for (size_t i = 0; i < e->n; i++) {
		ev_io_stop(e->loop, &e->att[i].io);
		if (e->att[i].fd >= 0)
			close(e->att[i].fd);
	}
	ev_timer_stop(e->loop, &e->timer);
	free(e);
}

static void fail_later(struct eyeballs *e)
{
	e->failed = true;
	ev_timer_stop(e->loop, &e->timer);
	ev_timer_set(&e->timer, 0, 0);
	ev_timer_start(e->loop, &e->timer);
}

static void set_err(struct eyeballs *e, size_t i, int err)
{
	snprintf(e->err, sizeof e->err, "%s", strerror(err));
	(void)i;
}

/* Start the next address's attempt; with none left and none running, fail. */
static void start_next(struct eyeballs *e)
{
	while (e->next < e->n) {
		size_t i = e->next++;
		struct attempt *a = &e->att[i];
		int fd = socket(e->addr[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			set_err(e, i, errno);
			continue;
		}
		if (connect(fd, (const struct sockaddr *)&e->addr[i], e->len[i]) != 0 &&
		    errno != EINPROGRESS) {
			set_err(e, i, errno);
			close(fd);
			continue; /* refused at once: on to the next, no delay */
		}
		a->fd = fd;
		ev_io_init(&a->io, on_connect, fd, EV_WRITE);
		a->io.data = a;
		ev_io_start(e->loop, &a->io);
		e->live++;
		if (e->next < e->n) {
			ev_timer_stop(e->loop, &e->timer);
			ev_timer_set(&e->timer, e->delay, 0);
			ev_timer_start(e->loop, &e->timer);
		}
		return;
	}
	if (e->live == 0)
		fail_later(e);
}

static void on_connect(struct ev_loop *loop, ev_io *w, int revents)
{
	struct attempt *a = w->data;
	struct eyeballs *e = a->e;
	size_t i = (size_t)(a - e->att);
	socklen_t sl = sizeof(int);
	int soerr = 0, fd;

	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	ev_io_stop(loop, &a->io);
	e->live--;
	if (soerr != 0) {
		set_err(e, i, soerr);
		close(a->fd);
		a->fd = -1;
		start_next(e); /* failed: the next one now, not after the delay */
		return;
	}
	fd = a->fd;
	a->fd = -1; /* the caller's now */
	eyeballs_cb cb = e->cb;
	void *ctx = e->ctx;
	struct sockaddr_storage addr = e->addr[i];
	socklen_t len = e->len[i];
	release(e);
	cb(ctx, fd, &addr, len, NULL);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct eyeballs *e = w->data;

	if (e->failed) {
		eyeballs_cb cb = e->cb;
		void *ctx = e->ctx;
		char err[sizeof e->err];
		memcpy(err, e->err, sizeof err);
		release(e);
		cb(ctx, -1, NULL, 0, err[0] ? err : "no address to connect to");
		return;
	}
	start_next(e);
}

struct eyeballs *eyeballs_start(struct ev_loop *loop, const struct sockaddr_storage *addrs,
				const socklen_t *lens, size_t n, double delay, eyeballs_cb cb,
				void *ctx)
{
	struct eyeballs *e = xcalloc(1, sizeof *e);
	bool used[EYEBALLS_MAX] = { false };
	int fam = n > 0 ? addrs[0].ss_family : 0;

	if (n > EYEBALLS_MAX)
		n = EYEBALLS_MAX;
	/* RFC 8305 4: keep the resolver's order, but alternate the families,
	 * the first one's first, so one dead family costs one delay. */
	for (size_t k = 0; k < n; k++) {
		size_t pick = n;
		for (size_t j = 0; j < n && pick == n; j++)
			if (!used[j] && addrs[j].ss_family == fam)
				pick = j;
		for (size_t j = 0; j < n && pick == n; j++)
			if (!used[j])
				pick = j;
		used[pick] = true;
		e->addr[k] = addrs[pick];
		e->len[k] = lens[pick];
		fam = addrs[pick].ss_family == AF_INET6 ? AF_INET : AF_INET6;
	}
	for (size_t k = 0; k < EYEBALLS_MAX; k++) {
		e->att[k].e = e;
		e->att[k].fd = -1;
	}
	e->loop = loop;
	e->n = n;
	e->delay = delay;
	e->cb = cb;
	e->ctx = ctx;
	ev_init(&e->timer, on_timer);
	e->timer.data = e;
	start_next(e);
	return e;
}

void eyeballs_cancel(struct eyeballs *e)
{
	if (e != NULL)
		release(e);
}
