#include "control/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "node/node.h"
#include "node/peer_table.h"
#include "rendezvous/client.h"
#include "xmalloc.h"

#define MOD "Notify"
/* STATUS= is re-derived this often and sent only when it changed: cheap,
 * and it needs no hook into the node's events (the control socket owns
 * that one). */
#define STATUS_REFRESH 2.0
#define STATUS_MAX 512

/* Datagrams held while the manager's queue is full, in order. */
#define PENDING_MAX 16

struct notify {
	struct ev_loop *loop;
	bool on;               /* NOTIFY_SOCKET is set */
	bool stopping;
	bool send_failed;      /* logged once */
	double wd_interval;    /* WATCHDOG_USEC in seconds, 0 if none */
	struct sockaddr_un addr;
	socklen_t addrlen;
	int fd;                /* connected to the manager, or -1 */
	ev_io wio;             /* armed while datagrams are pending */
	char *pending[PENDING_MAX];
	size_t npending;
	ev_timer watchdog;
	ev_timer refresh;
	notify_status_fn status;
	void *ctx;
	char sent[STATUS_MAX]; /* the STATUS= the manager has */
	char error[256];
};

/* NOTIFY_SOCKET is a path or, with a leading '@', an abstract name. */
static bool parse_address(struct notify *nt, const char *s)
{
	size_t len = strlen(s);

	if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof nt->addr.sun_path)
		return false;
	memset(&nt->addr, 0, sizeof nt->addr);
	nt->addr.sun_family = AF_UNIX;
	memcpy(nt->addr.sun_path, s, len);
	if (s[0] == '@')
		nt->addr.sun_path[0] = '\0';
	nt->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (s[0] == '/'));
	return true;
}

static void fail_once(struct notify *nt, const char *what, int err)
{
	if (!nt->send_failed)
		log_warn(MOD, "cannot notify the service manager: %s: %s", what, strerror(err));
	nt->send_failed = true;
}

/* Connected, so that poll() reports when the manager's queue has room.
 * The kernel attaches our credentials, which the manager checks against
 * the main PID (NotifyAccess=main). */
static int open_socket(struct notify *nt)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		fail_once(nt, "socket", errno);
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&nt->addr, nt->addrlen) != 0) {
		fail_once(nt, "connect", errno);
		close(fd);
		return -1;
	}
	nt->fd = fd;
	return 0;
}

/* 1 sent, 0 would block, -1 failed (dropped). */
static int try_send(struct notify *nt, const char *msg)
{
	int err = 0;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (nt->fd < 0 && open_socket(nt) != 0)
			return -1;
		if (send(nt->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			return 1;
		err = errno;
		if (err == EAGAIN || err == EWOULDBLOCK)
			return 0;
		if (err == EINTR)
			continue;
		/* The manager re-created its socket (or went away): once more
		 * on a fresh one. */
		ev_io_stop(nt->loop, &nt->wio);
		close(nt->fd);
		nt->fd = -1;
	}
	fail_once(nt, "send", err);
	return -1;
}

/* Wait for room in the manager's queue (the watcher follows fd, which a
 * failed send may have replaced). */
static void arm(struct notify *nt)
{
	if (nt->npending == 0 || nt->fd < 0) {
		ev_io_stop(nt->loop, &nt->wio);
		return;
	}
	if (ev_is_active(&nt->wio) && nt->wio.fd == nt->fd)
		return;
	ev_io_stop(nt->loop, &nt->wio);
	ev_io_set(&nt->wio, nt->fd, EV_WRITE);
	ev_io_start(nt->loop, &nt->wio);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct notify *nt = w->data;
	size_t done = 0;

	/* Sent or dropped (-1) both leave the queue; 0 means still full. */
	while (done < nt->npending && try_send(nt, nt->pending[done]) != 0)
		free(nt->pending[done++]);
	memmove(nt->pending, nt->pending + done, (nt->npending - done) * sizeof *nt->pending);
	nt->npending -= done;
	arm(nt);
}

/* One datagram to the manager, never blocking the loop: libsystemd's
 * sd_notify() would wait in sendmsg() whenever the manager's receive queue
 * is full (10 datagrams by default), stalling everything else.  What does
 * not fit now is sent, in order, as soon as the socket is writable. */
static void send_state(struct notify *nt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_state(struct notify *nt, const char *fmt, ...)
{
	char msg[STATUS_MAX + 128];
	bool watchdog;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	watchdog = strcmp(msg, "WATCHDOG=1") == 0;
	if (nt->npending == 0 && try_send(nt, msg) != 0)
		return;
	/* A keep-alive for a manager that is not reading is pointless. */
	if (watchdog)
		return;
	if (nt->npending == PENDING_MAX) {
		log_warn(MOD, "service manager not reading: dropping \"%.40s\"", msg);
		return;
	}
	nt->pending[nt->npending++] = xstrdup(msg);
	arm(nt);
}

/* The manager takes one line per assignment: control characters (some of
 * it comes from the network) would split or forge one. */
static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void compose(struct notify *nt, char *buf, size_t len)
{
	size_t used;

	if (nt->stopping)
		snprintf(buf, len, "stopping");
	else if (nt->status)
		nt->status(nt->ctx, buf, len);
	else
		snprintf(buf, len, "running");
	used = strlen(buf);
	if (nt->error[0] && used < len)
		snprintf(buf + used, len - used, ", last error: %s", nt->error);
	one_line(buf);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct notify *nt = w->data;
	char now[STATUS_MAX];

	compose(nt, now, sizeof now);
	if (strcmp(now, nt->sent) != 0) {
		send_state(nt, "STATUS=%s", now);
		snprintf(nt->sent, sizeof nt->sent, "%s", now);
	}
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	send_state(w->data, "WATCHDOG=1");
}

struct notify *notify_new(struct ev_loop *loop, notify_status_fn status, void *ctx)
{
	struct notify *nt = xcalloc(1, sizeof *nt);
	const char *sock = getenv("NOTIFY_SOCKET");
	uint64_t usec = 0;

	nt->loop = loop;
	nt->status = status;
	nt->ctx = ctx;
	nt->fd = -1;
	ev_init(&nt->wio, on_writable);
	nt->wio.data = nt;
	nt->on = sock != NULL && *sock != '\0';
	if (nt->on && !parse_address(nt, sock)) {
		log_warn(MOD, "NOTIFY_SOCKET=%s: not a UNIX socket address; not notifying", sock);
		nt->on = false;
	}
	ev_timer_init(&nt->refresh, on_refresh, STATUS_REFRESH, STATUS_REFRESH);
	nt->refresh.data = nt;
	ev_timer_init(&nt->watchdog, on_watchdog, 0, 0);
	nt->watchdog.data = nt;
	if (!nt->on)
		return nt;
	/* > 0 only if WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		nt->wd_interval = (double)usec / 1e6;
		/* Half the interval, as sd_watchdog_enabled(3) advises: one late
		 * iteration must not cost a restart, a stuck loop must. */
		ev_timer_set(&nt->watchdog, nt->wd_interval / 2, nt->wd_interval / 2);
		ev_timer_start(loop, &nt->watchdog);
		log_info(MOD, "watchdog every %.3f s (WATCHDOG_USEC=%llu)", nt->wd_interval / 2,
			 (unsigned long long)usec);
	}
	return nt;
}

void notify_free(struct notify *nt)
{
	if (nt == NULL)
		return;
	ev_timer_stop(nt->loop, &nt->watchdog);
	ev_timer_stop(nt->loop, &nt->refresh);
	ev_io_stop(nt->loop, &nt->wio);
	for (size_t i = 0; i < nt->npending; i++)
		free(nt->pending[i]);
	if (nt->fd >= 0)
		close(nt->fd);
	free(nt);
}

bool notify_enabled(const struct notify *nt)
{
	return nt->on;
}

double notify_watchdog_interval(const struct notify *nt)
{
	return nt->wd_interval;
}

void notify_ready(struct notify *nt)
{
	if (!nt->on || nt->stopping)
		return;
	compose(nt, nt->sent, sizeof nt->sent);
	send_state(nt, "READY=1\nSTATUS=%s", nt->sent);
	if (!ev_is_active(&nt->refresh))
		ev_timer_start(nt->loop, &nt->refresh);
}

void notify_reloading(struct notify *nt)
{
	struct timespec ts;

	if (!nt->on || nt->stopping)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(nt->sent, sizeof nt->sent, "reloading configuration");
	send_state(nt, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
		   (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000,
		   nt->sent);
}

void notify_stopping(struct notify *nt)
{
	if (!nt->on || nt->stopping)
		return;
	nt->stopping = true;
	ev_timer_stop(nt->loop, &nt->refresh);
	snprintf(nt->sent, sizeof nt->sent, "stopping");
	send_state(nt, "STOPPING=1\nSTATUS=%s", nt->sent);
}

void notify_set_error(struct notify *nt, const char *err)
{
	snprintf(nt->error, sizeof nt->error, "%s", err ? err : "");
}

/* ---- the chat node's summary ----------------------------------------------- */

static void count_active(struct peer *p, void *ctx)
{
	*(int *)ctx += p->state == PEER_ACTIVE;
}

void notify_node_status(void *ctx, char *buf, size_t len)
{
	const struct node *n = ctx;
	const struct rdv_status *reg = node_registration(n);
	const char *what = "not registered";
	int active = 0;
	size_t used;

	switch (reg->state) {
	case RDV_REGISTERED: what = "registered"; break;
	case RDV_REGISTERING: what = "registering"; break;
	case RDV_BLOCKED: what = "rate-limited by the rendezvous server"; break;
	case RDV_UNREGISTERED: break;
	}
	peer_foreach(node_peer_table(n), count_active, &active);
	snprintf(buf, len, "%s as %s, %d peer%s connected", what, node_id(n), active,
		 active == 1 ? "" : "s");
	used = strlen(buf);
	if (reg->state != RDV_REGISTERED && reg->last_error[0] && used < len)
		snprintf(buf + used, len - used, ", rendezvous: %s", reg->last_error);
}
