#include "node/ping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "node/core.h"
#include "node/session.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Ping"
/* Pings out at once, at most (each is a controller's request). */
#define MAX_PINGS 256

struct ping {
	struct ping *next;
	struct pinger *pg;
	char peer_id[PEER_ID_MAX + 1];
	char msg_id[MSGID_LEN];
	double t0;               /* mono_now() when written */
	ev_timer timer;
	ping_cb cb;
	void *ctx;
};

struct pinger {
	struct node_core *core;
	struct ping *out;
	unsigned count;
};

struct pinger *pinger_new(struct node_core *core)
{
	struct pinger *pg = xcalloc(1, sizeof *pg);

	pg->core = core;
	return pg;
}

static void unlink_ping(struct ping *p)
{
	struct ping **pp = &p->pg->out;

	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = p->next;
		p->pg->count--;
	}
	ev_timer_stop(p->pg->core->loop, &p->timer);
}

void pinger_free(struct pinger *pg)
{
	if (pg == NULL)
		return;
	while (pg->out) {
		struct ping *p = pg->out;
		unlink_ping(p);
		free(p);
	}
	free(pg);
}

static void on_ping_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ping *p = w->data;

	unlink_ping(p);
	log_debug(MOD, "%s: no PONG for %s", p->peer_id, p->msg_id);
	p->cb(p->ctx, PING_TIMEOUT, 0);
	free(p);
}

void pinger_ping(struct pinger *pg, const char *peer_id, double timeout_s, ping_cb cb, void *ctx)
{
	struct peer *peer = peer_id_valid(peer_id) ? peer_find(pg->core->peers, peer_id) : NULL;
	struct buf line = BUF_INIT;

	if (peer == NULL) {
		cb(ctx, PING_UNKNOWN_PEER, 0);
		return;
	}
	if (peer->conn == NULL || peer->conn->state != SESSION_ESTABLISHED || pg->count >= MAX_PINGS) {
		cb(ctx, PING_NOT_CONNECTED, 0);
		return;
	}
	struct ping *p = xcalloc(1, sizeof *p);
	p->pg = pg;
	snprintf(p->peer_id, sizeof p->peer_id, "%s", peer_id);
	msgid_new(p->msg_id);
	p->cb = cb;
	p->ctx = ctx;
	p->t0 = mono_now();
	pmsg_build_ping(&line, p->msg_id);
	/* Linked first: a write that closes the connection leaves it to time out. */
	p->next = pg->out;
	pg->out = p;
	pg->count++;
	ev_timer_init(&p->timer, on_ping_timeout, timeout_s, 0);
	p->timer.data = p;
	ev_timer_start(pg->core->loop, &p->timer);
	session_write(peer->conn, &line, CK_CTL, NULL);
	buf_free(&line);
}

void pinger_pong(struct pinger *pg, const char *peer_id, const char *msg_id)
{

	if (msg_id == NULL)
		return;
	for (struct ping *p = pg->out; p; p = p->next) {
		if (strcmp(p->msg_id, msg_id) == 0 && strcmp(p->peer_id, peer_id) == 0) {
			double ms = (mono_now() - p->t0) * 1000.0;
			unlink_ping(p);
			p->cb(p->ctx, PING_PONG, ms);
			free(p);
			return;
		}
	}
}
