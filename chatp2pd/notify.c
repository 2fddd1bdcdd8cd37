#include "notify.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "node.h"
#include "peer_table.h"
#include "rdv_client.h"
#include "xmalloc.h"

#define MOD "Notify"
/* STATUS= is re-derived this often and sent only when it changed: cheap,
 * and it needs no hook into the node's events (the control socket owns
 * that one). */
#define STATUS_REFRESH 2.0
#define STATUS_MAX 512

struct notify {
	struct ev_loop *loop;
	bool on;               /* NOTIFY_SOCKET is set */
	bool stopping;
	bool send_failed;      /* logged once */
	double wd_interval;    /* WATCHDOG_USEC in seconds, 0 if none */
	ev_timer watchdog;
	ev_timer refresh;
	notify_status_fn status;
	void *ctx;
	char sent[STATUS_MAX]; /* the STATUS= the manager has */
	char error[256];
};

/* One datagram to the manager.  sd_notify() is a single sendmsg() on a
 * datagram socket the manager drains at once; it keeps NOTIFY_SOCKET in the
 * environment (unset_environment 0) because we notify for the whole run. */
static void send_state(struct notify *nt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_state(struct notify *nt, const char *fmt, ...)
{
	char msg[STATUS_MAX + 128];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r = sd_notify(0, msg);
	if (r < 0 && !nt->send_failed) {
		nt->send_failed = true;
		log_warn(MOD, "cannot notify the service manager: %s", strerror(-r));
	}
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
	nt->on = sock != NULL && *sock != '\0';
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
