#include "node/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/guard.h"
#include "net/dial_pacer.h"
#include "log.h"
#include "node/claims.h"
#include "node/core.h"
#include "node/identity.h"
#include "node/outbox.h"
#include "node/ping.h"
#include "node/router.h"
#include "node/session.h"
#include "node/stats.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Node"
/* Peers remembered at most (a hostile DISCOVER cannot grow us without end). */
#define MAX_PEERS 65536
/* A connection that lived this long resets its peer's backoff: one that
 * dies at once (a refusal) must not make us spin. */
#define BACKOFF_RESET_AFTER 10.0
/* An outbound connection the peer closed this soon after HELLO_OK was a
 * refusal (PROTOCOL.md §4: HELLO_OK, a rejection message, EOF). */
#define REFUSED_WITHIN 1.0
/* Inbound addresses tracked for the accept rate limit. */
#define ACCEPT_SLOTS 256
/* Out of descriptors: the listener stays readable, so stop watching it for
 * a moment instead of spinning on accept(). */
#define ACCEPT_PAUSE 0.5
/* Descriptors peers never take: the control socket must always be able to
 * accept its operator, the rendezvous client to make its requests. */
#define FD_RESERVE 16

struct accept_slot {
	char ip[INET6_ADDRSTRLEN];
	double window;   /* mono_now() at the start of the current second */
	int count;
};

struct node {
	struct ev_loop *loop;
	struct config cfg;
	char name[NAME_MAX_BYTES + 1];
	char ns[NAME_MAX_BYTES + 1];
	char id[PEER_ID_MAX + 1];
	int listen_fd;
	int port;
	char listen_addr[CFG_STR_MAX]; /* as bound: a passed socket's own */
	double started;
	ev_io accept_io;
	ev_timer accept_pause;
	ev_timer reconcile;
	struct peer_table peers;
	struct session *conns;
	size_t nconns;
	struct router *router;
	struct storage *store;
	struct outbox *outbox;
	struct rdv_client *rdv;
	struct node_core core;      /* what router, outbox, pinger see of us */
	struct session_env senv;    /* what our sessions call back */
	struct accept_slot accepts[ACCEPT_SLOTS];
	struct node_guard guard;
	struct dial_pacer *pacer;      /* dials in flight / per second */
	struct node_stats stats;
	struct pinger *pinger;
	struct node_identity ident;    /* key, TLS, pins (node/identity.c) */
	/* shutdown */
	bool stopping;
	bool unregistered;
	ev_timer stop_deadline;
	void (*stop_done)(void *ctx);
	void *stop_ctx;
};

static void on_accept(struct ev_loop *loop, ev_io *w, int revents);
static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents);
static void on_reconcile(struct ev_loop *loop, ev_timer *w, int revents);
static void on_retry(struct ev_loop *loop, ev_timer *w, int revents);
static void on_rdv_state(void *ctx, const struct rdv_status *st);
static void on_rdv_discover(void *ctx, const struct rdv_peer *peers, size_t n);
static void maybe_stopped(struct node *n);
static void schedule_retry(struct node *n, struct peer *p);
static bool paced_dial(void *ctx, const char *peer_id);
static void configure_pacer(struct node *n);
static const struct session_cbs session_cbs;

/* ---- accessors ------------------------------------------------------- */

struct ev_loop *node_loop(const struct node *n)
{
	return n->loop;
}

const struct config *node_config(const struct node *n) { return &n->cfg; }
const char *node_id(const struct node *n) { return n->id; }
const char *node_ns(const struct node *n) { return n->ns; }
int node_listen_port(const struct node *n) { return n->port; }
const char *node_listen_addr(const struct node *n) { return n->listen_addr; }
double node_started(const struct node *n) { return n->started; }
const struct peer_table *node_peer_table(const struct node *n) { return &n->peers; }
struct session *node_conns(const struct node *n) { return n->conns; }
const struct node_guard *node_guard(const struct node *n) { return &n->guard; }
struct storage *node_storage(const struct node *n) { return n->store; }
struct outbox *node_outbox(const struct node *n) { return n->outbox; }
struct router *node_router(const struct node *n) { return n->router; }
struct node_stats *node_stats(struct node *n) { return &n->stats; }
struct pinger *node_pinger(struct node *n) { return n->pinger; }

const struct rdv_status *node_registration(const struct node *n)
{
	return rdv_client_status(n->rdv);
}

int node_subscribe(struct node *n, node_event_fn fn, void *ctx)
{
	return node_events_subscribe(&n->core.events, fn, ctx);
}

void node_unsubscribe(struct node *n, node_event_fn fn, void *ctx)
{
	node_events_unsubscribe(&n->core.events, fn, ctx);
}

static void node_emit(struct node *n, const struct node_event *ev)
{
	core_emit(&n->core, ev);
}

static int reconnect_cb(void *owner, const char *peer_id)
{
	return node_reconnect(owner, peer_id);
}

/* ---- life cycle -------------------------------------------------------- */

static int listen_on(struct node *n, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	int one = 1, fd;

	memset(&sa, 0, sizeof sa);
	if (inet_pton(AF_INET, n->cfg.node.listen, &((struct sockaddr_in *)&sa)->sin_addr) == 1) {
		((struct sockaddr_in *)&sa)->sin_family = AF_INET;
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)n->cfg.node.port);
		salen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, n->cfg.node.listen,
			     &((struct sockaddr_in6 *)&sa)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)n->cfg.node.port);
		salen = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "node.listen: not an IP address: %s", n->cfg.node.listen);
		return -1;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 511) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", n->cfg.node.listen,
			 n->cfg.node.port, strerror(errno));
		close(fd);
		return -1;
	}
	salen = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &salen);
	n->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
						: ((struct sockaddr_in6 *)&sa)->sin6_port);
	snprintf(n->listen_addr, sizeof n->listen_addr, "%s", n->cfg.node.listen);
	n->listen_fd = fd;
	return 0;
}

/* ---- socket activation: adopt a listener passed by the service manager ---- */

/* The socket must already be a bound, listening TCP socket; the node takes
 * it over as if listen_on() had made it. */
static int adopt_listener(struct node *n, int fd, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof sa;
	int type = 0, acc = 0, fl;
	socklen_t len = sizeof type, alen = sizeof acc;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) != 0 || !acc ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
	    (sa.ss_family != AF_INET && sa.ss_family != AF_INET6)) {
		snprintf(err, errlen, "passed peer socket (fd %d) is not a listening TCP socket", fd);
		return -1;
	}
	/* Inherited descriptors keep whatever flags the manager left on them. */
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen, "passed peer socket (fd %d): %s", fd, strerror(errno));
		return -1;
	}
	n->port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
						: ((struct sockaddr_in6 *)&sa)->sin6_port);
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, n->listen_addr,
			  sizeof n->listen_addr);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, n->listen_addr,
			  sizeof n->listen_addr);
	n->listen_fd = fd;
	return 0;
}

/* fd >= 0: adopt it (node_new_with_fd); else bind node.listen:node.port. */
static struct node *node_create(struct ev_loop *loop, const struct config *cfg, int fd,
				char *err, size_t errlen)
{
	struct node *n;

	if (!name_valid(cfg->node.name)) {
		snprintf(err, errlen, "node.name: \"%s\" is not a valid name (1..64 characters, no '@')",
			 cfg->node.name);
		return NULL;
	}
	if (!name_valid(cfg->node.namespace_)) {
		snprintf(err, errlen, "node.namespace: \"%s\" is not a valid namespace", cfg->node.namespace_);
		return NULL;
	}
	n = xcalloc(1, sizeof *n);
	n->loop = loop;
	n->cfg = *cfg;
	snprintf(n->name, sizeof n->name, "%s", cfg->node.name);
	snprintf(n->ns, sizeof n->ns, "%s", cfg->node.namespace_);
	peer_id_make(n->id, n->name, n->ns);
	if ((fd >= 0 ? adopt_listener(n, fd, err, errlen) : listen_on(n, err, errlen)) != 0) {
		free(n);
		return NULL;
	}
	n->started = wall_now();
	peer_table_init(&n->peers, MAX_PEERS);
	char dir[CFG_STR_MAX + 64], why[160];
	if (strcmp(cfg->storage.sync, "off") == 0)
		n->store = NULL;
	else if (storage_dir_resolve(cfg->node.state_dir, n->id, dir, sizeof dir, why, sizeof why) != 0)
		log_error(MOD, "%s: running without durable storage", why);
	else
		n->store = storage_open(loop, &n->cfg, dir);
	n->core = (struct node_core){
		.loop = loop, .cfg = &n->cfg, .id = n->id, .ns = n->ns, .peers = &n->peers,
		.sessions = &n->conns, .store = n->store, .reconnect = reconnect_cb, .owner = n,
		.ident = &n->ident,
	};
	n->senv = (struct session_env){ loop, &n->cfg, n->id, &session_cbs, n, NULL };
	n->router = router_new(&n->core);
	n->outbox = outbox_new(&n->core, n->router);
	n->pinger = pinger_new(&n->core);
	n->stats.peers = &n->peers;
	/* The node's own parts hear its events first: an ACK settles a queued
	 * message, then counts; controllers subscribe after (node_subscribe). */
	node_events_subscribe(&n->core.events, outbox_on_event, n->outbox);
	node_events_subscribe(&n->core.events, stats_on_event, &n->stats);
	struct rdv_client_hooks hooks = { on_rdv_state, on_rdv_discover, n };
	n->rdv = rdv_client_new(loop, &n->cfg, n->name, n->ns, n->port, cfg->node.ttl, &hooks);
	ev_io_init(&n->accept_io, on_accept, n->listen_fd, EV_READ);
	n->accept_io.data = n;
	ev_init(&n->accept_pause, on_accept_pause);
	n->accept_pause.data = n;
	ev_timer_init(&n->reconcile, on_reconcile, cfg->reconnection.check_interval,
		      cfg->reconnection.check_interval);
	n->reconcile.data = n;
	n->pacer = dial_pacer_new(loop, paced_dial, n);
	configure_pacer(n);
	return n;
}

struct node *node_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
	return node_create(loop, cfg, -1, err, errlen);
}

struct node *node_new_with_fd(struct ev_loop *loop, const struct config *cfg, int listen_fd,
			      char *err, size_t errlen)
{
	return node_create(loop, cfg, listen_fd, err, errlen);
}

int node_set_identity(struct node *n, const struct keys_identity *keys, const char *dir,
		      char *err, size_t errlen)
{
	if (identity_open(&n->ident, keys, dir, err, errlen) != 0)
		return -1;
	n->senv.tls = n->ident.tls;
	return 0;
}

const struct node_identity *node_identity(const struct node *n)
{
	return &n->ident;
}

void node_start(struct node *n)
{
	char bad[64];

	log_info(MOD, "%s listening for peers on %s:%d", n->id, n->cfg.node.listen, n->port);
	if (guard_addr_list_bad(n->cfg.limits.exempt_addresses, bad, sizeof bad))
		log_warn(MOD, "limits.exempt_addresses: \"%s\" is not an address or prefix; ignored", bad);
	outbox_load(n->outbox);
	ev_io_start(n->loop, &n->accept_io);
	ev_timer_start(n->loop, &n->reconcile);
	rdv_client_start(n->rdv);
}

static void stop_peer_timer(struct peer *p, void *ctx)
{
	struct node *n = ctx;

	ev_timer_stop(n->loop, &p->retry_timer);
}

void node_free(struct node *n)
{
	if (n == NULL)
		return;
	n->stopping = true;
	n->stop_done = NULL;
	while (n->conns)
		session_close(n->conns, "node stopping");
	ev_io_stop(n->loop, &n->accept_io);
	ev_timer_stop(n->loop, &n->accept_pause);
	ev_timer_stop(n->loop, &n->reconcile);
	ev_timer_stop(n->loop, &n->stop_deadline);
	peer_foreach(&n->peers, stop_peer_timer, n);
	rdv_client_free(n->rdv);
	storage_flush(n->store);
	outbox_free(n->outbox);
	router_free(n->router);
	dial_pacer_free(n->pacer);
	storage_close(n->store);
	pinger_free(n->pinger);
	identity_close(&n->ident);
	peer_table_free(&n->peers);
	if (n->listen_fd >= 0)
		close(n->listen_fd);
	free(n);
}

int node_reload(struct node *n, const struct config *nc, char *note, size_t notelen)
{
	const struct config *old = &n->cfg;
	struct config next = *nc;
	int refused = 0;
	size_t used = 0;

	note[0] = '\0';
#define KEEP(field, key)                                                                    \
	if (memcmp(&next.field, &old->field, sizeof old->field) != 0) {                     \
		memcpy(&next.field, &old->field, sizeof old->field);                        \
		refused++;                                                                  \
		if (used < notelen)                                                         \
			used += (size_t)snprintf(note + used, notelen - used, "%s%s",       \
						 used ? ", " : "", key);                    \
	}
	KEEP(node.name, "node.name")
	KEEP(node.namespace_, "node.namespace")
	KEEP(node.listen, "node.listen")
	KEEP(node.port, "node.port")
	KEEP(node.ttl, "node.ttl")
	KEEP(control, "control.*")
	KEEP(rendezvous.host, "rendezvous.host")
	KEEP(rendezvous.port, "rendezvous.port")
	KEEP(node.state_dir, "node.state_dir")
	KEEP(storage.sync, "storage.sync")
#undef KEEP
	/* A changed interval counts from now (ev_timer_again restarts a
	 * running timer); an unchanged one keeps running, so reloads more
	 * frequent than the interval do not starve its timer (issue 18). */
	bool reconcile_changed = next.reconnection.check_interval != old->reconnection.check_interval;
	bool ping_changed = next.keepalive.ping_interval != old->keepalive.ping_interval;
	n->cfg = next;
	if (reconcile_changed) {
		n->reconcile.repeat = n->cfg.reconnection.check_interval;
		if (ev_is_active(&n->reconcile))
			ev_timer_again(n->loop, &n->reconcile);
	}
	for (struct session *c = n->conns; ping_changed && c; c = c->next)
		session_reconfigure(c);
	rdv_client_reconfigure(n->rdv, &n->cfg);
	configure_pacer(n);
	storage_reconfigure(n->store, &n->cfg);
	return refused;
}

/* ---- dialling and backoff ------------------------------------------------ */

/* Dial pacing and per-address hygiene (dial_pacer.h): an address is
 * backed off like a peer, from peer_connection.backoff_base up to
 * reconnection.backoff_max. */
static void configure_pacer(struct node *n)
{
	const struct config *c = &n->cfg;
	struct dial_limits l = {
		.in_flight = c->limits.dials_in_flight,
		.per_second = c->limits.dial_rate,
		.per_address = c->limits.dials_per_address,
		.per_ip = c->limits.dials_per_ip,
		.exempt = c->limits.exempt_addresses,
		.backoff_base = c->peer_connection.backoff_base,
		.backoff_max = c->reconnection.backoff_max,
	};

	dial_pacer_configure(n->pacer, &l);
}

/* True if a dial started (p->dialing), or started and failed at once (the
 * pacer was told).  The pacer counts it in flight until then. */
static bool dial_now(struct node *n, struct peer *p)
{
	char err[160];

	ev_timer_stop(n->loop, &p->retry_timer);
	p->attempts++;
	log_debug(MOD, "dialling %s at %s:%d (attempt %u)", p->id, p->ip, p->port, p->retry + 1);
	struct session *c = session_dial(&n->senv, p->id, p->ip, p->port, err, sizeof err);
	if (c == NULL) {
		log_info(MOD, "cannot dial %s: %s", p->id, err);
		dial_pacer_done(n->pacer, p->id, DIAL_FAILED);
		p->retry++;
		schedule_retry(n, p);
		return true;
	}
	c->prev = NULL;
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->nconns++;
	p->dialing = c;
	if (session_fd(c) >= guard_nofile() - FD_RESERVE)
		session_close(c, "descriptors running out (some kept in reserve)"); /* a failed dial */
	return true;
}

/* Connected on an unbacked claim while the name is listed: the listed
 * address is dialled all the same, and the owner, answering, replaces
 * the claim (§5.1). */
static bool unbacked_conn(const struct peer *p)
{
	return p->conn != NULL && p->conn->identity < ID_BACKED && p->nlisted > 0;
}

static bool wants_dial(const struct node *n, const struct peer *p)
{
	return !n->stopping && (p->conn == NULL || unbacked_conn(p)) && p->dialing == NULL &&
	       p->ip[0] != '\0';
}

/* Dials wait their turn (dial_pacer.h): a DISCOVER may list 1,000 peers. */
static void dial(struct node *n, struct peer *p)
{
	if (!wants_dial(n, p))
		return;
	/* Listed at several ips: the one it was reached at before first. */
	if (claims_pick(&n->peers, p, mono_now()) &&
	    strcmp(p->warned_ip, p->ip) != 0) {
		snprintf(p->warned_ip, sizeof p->warned_ip, "%s", p->ip);
		log_warn(MOD, "%s is listed at several addresses; trying %s:%d, not where it was "
			 "reached before (%s)", p->id, p->ip, p->port,
			 p->known_ip[0] ? p->known_ip : "never");
	}
	if (!dial_pacer_admit(n->pacer, p->id, p->ip, p->port))
		return;
	dial_now(n, p);
}

static bool paced_dial(void *ctx, const char *peer_id)
{
	struct node *n = ctx;
	struct peer *p = peer_find(&n->peers, peer_id);

	return p != NULL && wants_dial(n, p) && dial_now(n, p);
}

/* After a failed dial or a lost connection: when to try again, if at all.
 * Never-connected peers use peer_connection.*, lost ones reconnection.*. */
static void schedule_retry(struct node *n, struct peer *p)
{
	const struct config *c = &n->cfg;
	bool lost = p->connects > 0;
	unsigned max = (unsigned)(lost ? c->reconnection.max_attempts : c->peer_connection.retry_attempts);
	double base = lost ? c->reconnection.backoff_base : c->peer_connection.backoff_base;
	double delay;

	if (n->stopping || p->left || p->conn || p->dialing || p->ip[0] == '\0')
		return;
	if (p->retry >= max) {
		if (!p->gave_up)
			log_info(MOD, "%s: %u attempts failed; waiting for the next DISCOVER", p->id, p->retry);
		p->gave_up = true;
		return;
	}
	delay = base * pow(2, p->retry > 0 ? p->retry - 1 : 0);
	if (delay > c->reconnection.backoff_max)
		delay = c->reconnection.backoff_max;
	/* ±20 % jitter: two peers that lost each other do not redial in lockstep. */
	delay *= 0.8 + 0.4 * ((double)rand() / RAND_MAX);
	p->owner = n;
	ev_timer_stop(n->loop, &p->retry_timer);
	ev_timer_init(&p->retry_timer, on_retry, delay, 0);
	p->retry_timer.data = p;
	ev_timer_start(n->loop, &p->retry_timer);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peer *p = w->data;

	dial(p->owner, p);
}

static void reconcile_one(struct peer *p, void *ctx)
{
	struct node *n = ctx;

	if (p->state != PEER_ACTIVE && !p->gave_up && !p->left && !ev_is_active(&p->retry_timer))
		dial(n, p);
}

static void on_reconcile(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct node *n = w->data;
	size_t gone;

	peer_foreach(&n->peers, reconcile_one, n);
	/* Met only through their own HELLO, gone a while: no address to dial
	 * them back, and made-up ids must not pile up. */
	gone = peer_forget_idle(&n->peers, wall_now() - n->cfg.limits.met_only_forget);
	if (gone > 0) {
		n->guard.forgotten += gone;
		log_debug(MOD, "forgot %zu peer(s) met only inbound, gone for %g s", gone,
			  n->cfg.limits.met_only_forget);
	}
}

int node_reconnect(struct node *n, const char *peer_id)
{
	int started = 0;

	if (peer_id != NULL) {
		struct peer *p = peer_id_valid(peer_id) ? peer_find(&n->peers, peer_id) : NULL;
		if (p == NULL)
			return -1;
		/* Without an address we could not dial it back: keep what we have. */
		if (p->ip[0] == '\0')
			return 0;
		if (p->conn)
			session_close(p->conn, "reconnect requested");
		p->retry = 0;
		p->gave_up = p->left = false;
		/* Asked for: its address's backoff does not hold it back. */
		dial_pacer_forgive(n->pacer, p->id, p->ip, p->port);
		dial(n, p);
		return p->dialing ? 1 : 0;
	}
	for (size_t i = 0; i < n->peers.nbuckets; i++)
		for (struct peer *p = n->peers.buckets[i]; p; p = p->next) {
			if (p->state == PEER_ACTIVE)
				continue;
			p->retry = 0;
			p->gave_up = p->left = false;
			dial_pacer_forgive(n->pacer, NULL, p->ip, p->port);
			dial(n, p);
			started += p->dialing != NULL;
		}
	return started;
}

/* ---- inbound ------------------------------------------------------------- */

/* At most limits.accept_rate connections per second from one address. */
static bool accept_allowed(struct node *n, const char *ip)
{
	struct accept_slot *s = &n->accepts[0], *oldest = s;
	double now = mono_now();

	for (int i = 0; i < ACCEPT_SLOTS; i++) {
		s = &n->accepts[i];
		if (strcmp(s->ip, ip) == 0)
			goto found;
		if (s->window < oldest->window)
			oldest = s;
	}
	s = oldest;
	snprintf(s->ip, sizeof s->ip, "%s", ip);
	s->window = now;
	s->count = 0;
found:
	if (now - s->window >= 1.0) {
		s->window = now;
		s->count = 0;
	}
	return ++s->count <= n->cfg.limits.accept_rate;
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct node *n = w->data;

	if (!n->stopping)
		ev_io_start(loop, &n->accept_io);
}

/* Connections open from ip, inbound or outbound. */
static int conns_from(const struct node *n, const char *ip)
{
	size_t len = strlen(ip);
	int count = 0;

	for (const struct session *c = n->conns; c; c = c->next) {
		const char *a = c->addr[0] == '[' ? c->addr + 1 : c->addr;
		count += strncmp(a, ip, len) == 0 && (a[len] == ':' || a[len] == ']');
	}
	return count;
}

/* Make room under pressure: close the inbound connection that has not
 * said HELLO yet and has been silent longest.  False if there is none. */
static bool drop_idle(struct node *n, const char *why)
{
	struct session *victim = NULL;

	for (struct session *c = n->conns; c; c = c->next)
		if (c->dir == CONN_IN && c->state == SESSION_HANDSHAKE &&
		    (victim == NULL || session_last_rx(c) < session_last_rx(victim)))
			victim = c;
	if (victim == NULL)
		return false;
	n->guard.pressure_drops++;
	log_info(MOD, "dropping %s (no HELLO yet) to make room: %s", victim->addr, why);
	session_close(victim, "dropped under pressure: no HELLO yet");
	return true;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct node *n = w->data;
	long fd_max = guard_nofile() - FD_RESERVE;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		char ip[INET6_ADDRSTRLEN] = "?";
		int fd = accept4(n->listen_fd, (struct sockaddr *)&sa, &salen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED || errno == EPROTO)
				return;
			log_warn(MOD, "accept: %s; pausing for %.1f s", strerror(errno), ACCEPT_PAUSE);
			ev_io_stop(loop, &n->accept_io);
			ev_timer_set(&n->accept_pause, ACCEPT_PAUSE, 0);
			ev_timer_start(loop, &n->accept_pause);
			return;
		}
		if (sa.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof ip);
		else if (sa.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof ip);
		/* The cheap refusals first: a connection turned away must not
		 * cost anyone else theirs. */
		if (conns_from(n, ip) >= n->cfg.limits.max_connections_per_ip &&
		    !guard_addr_in(n->cfg.limits.exempt_addresses, ip)) {
			n->guard.per_ip_refused++;
			log_warn(MOD, "refusing connection from %s: %d open from that address "
				 "(limits.max_connections_per_ip)", ip, n->cfg.limits.max_connections_per_ip);
			close(fd);
			continue;
		}
		if (!accept_allowed(n, ip)) {
			log_debug(MOD, "refusing connection from %s: over %d per second", ip,
				  n->cfg.limits.accept_rate);
			close(fd);
			continue;
		}
		/* Out of descriptors (but for the reserve) or of slots: an
		 * idle stranger makes room for the newcomer, else it is refused. */
		if (!n->stopping && fd >= fd_max) {
			if (!drop_idle(n, "descriptors running out")) {
				log_warn(MOD, "refusing connection from %s: descriptors running out "
					 "(%d kept in reserve)", ip, FD_RESERVE);
				close(fd);
				continue;
			}
			/* Move it to the descriptor just freed, so the next accept
			 * is judged by how many are open, not by this one's number. */
			int lo = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (lo >= 0 && lo < fd) {
				close(fd);
				fd = lo;
			} else if (lo >= 0) {
				close(lo);
			}
		}
		if (!n->stopping && n->nconns >= (size_t)n->cfg.limits.max_connections)
			drop_idle(n, "max_connections reached");
		if (n->stopping || n->nconns >= (size_t)n->cfg.limits.max_connections) {
			log_warn(MOD, "refusing connection from %s: %s", ip,
				 n->stopping ? "stopping" : "max_connections reached");
			close(fd);
			continue;
		}
		struct session *c = session_accept(&n->senv, fd, &sa);
		c->next = n->conns;
		if (n->conns)
			n->conns->prev = c;
		n->conns = c;
		n->nconns++;
	}
}

/* The connection the pair keeps when there are two: the one dialled by the
 * peer whose id sorts lower (PROTOCOL.md §2), so both ends agree. */
static const char *dialler(const struct node *n, const struct session *c)
{
	return c->dir == CONN_OUT ? n->id : c->peer_id;
}

static bool wins_over(const struct node *n, const struct session *a, const struct session *b)
{
	int cmp = strcmp(dialler(n, a), dialler(n, b));

	return cmp < 0;
}

#define AMBIGUOUS_REASON "its name is listed at several addresses and this is not the one " \
			 "it was reached at before"

/* A claim refused or displaced (§5.1): counted, logged, an event. */
static void impostor(struct node *n, const struct session *c, const char *reason)
{
	struct node_event ev = { .type = EV_IMPOSTOR, .peer_id = c->peer_id, .address = c->addr,
				 .text = reason };

	n->guard.impostors++;
	log_warn(MOD, "impostor: %s claimed to be %s: %s (%lu so far)", c->addr, c->peer_id, reason,
		 n->guard.impostors);
	node_emit(n, &ev);
}

/* c's claim to be p weighed by address: backed or unbacked, never
 * lowering a key proved over TLS (pinned, verified: §5.2). */
static void weigh(const struct peer *p, struct session *c)
{
	if (c->identity < ID_PINNED)
		c->identity = claims_weigh(p, c, mono_now());
}

/* A claim of p on c while p is connected on old (§5.1). */
enum verdict {
	V_SAME_IP,  /* the peer's own host: the rules of our kind (below) */
	V_REPLACE,  /* the owner from its listed address replaces an unbacked claim */
	V_REFUSE,   /* from elsewhere, no stronger: an impostor */
	V_CONTEST,  /* two unbacked claims from two ips: kept aside, the
		     * rendezvous asked, the listed one wins when it is known */
};

static enum verdict judge(const struct session *c, const struct session *old)
{
	if (claims_same_ip(c, old))
		return V_SAME_IP;
	if (c->identity > old->identity)
		return V_REPLACE;
	if (old->ping_failures > 0 && c->identity >= old->identity)
		return V_SAME_IP; /* the old one is dying: proven dead, it makes way */
	if (old->identity < ID_BACKED)
		return V_CONTEST;
	return V_REFUSE;
}

/* Who the other end is (TLS key, pins): node/identity.c decides. */
static bool on_identity(void *ctx, struct session *c, const char *fingerprint,
			const char *tls_error)
{
	struct node *n = ctx;

	return identity_decide(&n->core, c, fingerprint, tls_error);
}

static bool on_hello(void *ctx, struct session *c, const struct pmsg *m)
{
	struct node *n = ctx;

	if (!peer_id_valid(m->peer_id)) {
		log_info(MOD, "%s: HELLO with an invalid peer_id, refused", c->addr);
		return false;
	}
	if (strcmp(m->peer_id, n->id) == 0) {
		log_info(MOD, "%s: HELLO claims to be us (%s), refused", c->addr, n->id);
		return false;
	}
	snprintf(c->peer_id, sizeof c->peer_id, "%s", m->peer_id);
	/* Refused before HELLO_OK, so nothing it wrote with the HELLO (a SEND
	 * in the same segment) is ever read as the peer's. */
	struct peer *p = peer_find(&n->peers, c->peer_id);
	if (p && claims_elsewhere(p, c, mono_now())) {
		impostor(n, c, AMBIGUOUS_REASON);
		return false;
	}
	if (p && p->conn && p->conn->state == SESSION_ESTABLISHED) {
		weigh(p, c);
		if (judge(c, p->conn) == V_REFUSE) {
			impostor(n, c, "claims a peer connected from another address");
			return false;
		}
	}
	return true;
}

/* Flow control (issue 18): c's output queue drained to low water; the
 * resends and the outbox backlog continue. */
static void on_session_drained(void *ctx, struct session *c)
{
	struct node *n = ctx;

	router_conn_drained(n->router, c);
	if (c->state == SESSION_ESTABLISHED)
		outbox_conn_drained(n->outbox, c);
}

/* c became p's connection: what waited for it goes now. */
static void conn_up(struct node *n, struct session *c)
{
	router_conn_up(n->router, c);
	outbox_conn_up(n->outbox, c->peer_id);
}

static void make_primary(struct node *n, struct peer *p, struct session *c)
{
	bool again = p->connects > 0;
	struct node_event ev = { .type = EV_PEER_CONNECTED, .peer_id = p->id, .reconnected = again };

	c->primary = true;
	c->peer = p;
	p->conn = c;
	claims_remember(p, c, mono_now());
	p->state = PEER_ACTIVE;
	p->connects++;
	p->gave_up = false;
	p->left = false;
	p->connected_at = mono_now();
	peer_seen(&n->peers, p, wall_now());
	ev_timer_stop(n->loop, &p->retry_timer);
	ev.identity = session_identity_name(c->identity);
	log_info(MOD, "%s %s (%s, %s%s, %s)", p->id, again ? "reconnected" : "connected", c->addr,
		 c->dir == CONN_OUT ? "outbound" : "inbound", c->pipeline ? ", pipeline" : "",
		 session_identity_name(c->identity));
	node_emit(n, &ev);
	conn_up(n, c);
}

/* A second connection to a peer: it stays open only while it is used
 * (peers that open one connection per message), then closes. */
static void demote(struct node *n, struct session *c)
{
	c->primary = false;
	c->peer = NULL;
	session_arm_deadline(c, n->cfg.limits.handshake_timeout);
}

/* A peer met only through its inbound HELLO joins the table: within
 * limits.max_met_only, forgetting the one seen longest ago that is gone. */
static bool room_for_met_only(struct node *n, const struct session *c)
{
	if (c->dir != CONN_IN || peer_find(&n->peers, c->peer_id) != NULL)
		return true;
	if (peer_count_met_only(&n->peers) < (size_t)n->cfg.limits.max_met_only)
		return true;
	if (!peer_evict_one(&n->peers))
		return false;
	n->guard.forgotten++;
	return true;
}

/* c, the stronger claim (backed over unbacked, a proved key over either),
 * takes p from its connection from another ip, which is closed. */
static void replace_unbacked(struct node *n, struct peer *p, struct session *c)
{
	struct session *old = p->conn;
	char why[160];

	log_info(MOD, "%s: %s (%s) replaces the %s claim from %s", p->id, c->addr,
		 session_identity_name(c->identity), session_identity_name(old->identity), old->addr);
	snprintf(why, sizeof why, "%s claim; the peer connected from %s (%s)",
		 session_identity_name(old->identity), c->addr, session_identity_name(c->identity));
	session_disarm_deadline(c);
	c->challenger = false;
	p->conn = c;
	p->contested = false;
	c->primary = true;
	c->peer = p;
	claims_remember(p, c, mono_now());
	old->primary = false;
	old->peer = NULL;
	impostor(n, old, why);
	session_close(old, "impostor: a stronger claim of its peer_id connected from another address");
	conn_up(n, c);
}

/* A DISCOVER listed p: its unbacked connection may be backed now, or one
 * kept aside in a contest is (O(connections), only for contested peers). */
static void reweigh(struct node *n, struct peer *p)
{
	double now = mono_now();

	if (p->conn == NULL || p->conn->identity >= ID_BACKED)
		return;
	p->conn->identity = claims_weigh(p, p->conn, now);
	if (p->conn->identity >= ID_BACKED) {
		claims_remember(p, p->conn, now);
		p->contested = false;
		return;
	}
	if (!p->contested)
		return;
	p->contested = false;
	for (struct session *o = n->conns; o; o = o->next) {
		if (o == p->conn || o->state != SESSION_ESTABLISHED || o->bye_sent ||
		    session_closing(o) || strcmp(o->peer_id, p->id) != 0)
			continue;
		weigh(p, o);
		if (o->identity >= ID_BACKED && !claims_same_ip(o, p->conn)) {
			replace_unbacked(n, p, o);
			return;
		}
	}
}

static void on_established(void *ctx, struct session *c)
{
	struct node *n = ctx;

	if (!room_for_met_only(n, c)) {
		log_info(MOD, "%s (%s): refused, %d peers met only inbound are connected "
			 "(limits.max_met_only)", c->peer_id, c->addr, n->cfg.limits.max_met_only);
		session_close(c, "too many peers met only inbound");
		return;
	}
	struct peer *p = peer_get(&n->peers, c->peer_id, wall_now());

	if (p == NULL) {
		session_close(c, "peer table full");
		return;
	}
	if (c->dir == CONN_OUT && p->dialing == c) {
		p->dialing = NULL;
		p->dial_ok++;
		dial_pacer_done(n->pacer, p->id, DIAL_OK);
	}
	/* Who reaches whom: the reachability hint of "status". */
	n->stats.established[c->dir == CONN_OUT]++;
	n->stats.last_established[c->dir == CONN_OUT] = wall_now();
	if (n->stopping) {
		session_bye(c, "shutdown");
		return;
	}
	weigh(p, c);
	/* Listed at several ips, reached at one before: until a pinned key
	 * decides (§5.2), the others get nothing meant for it. */
	if (claims_elsewhere(p, c, mono_now())) {
		impostor(n, c, AMBIGUOUS_REASON);
		session_close(c, "impostor: " AMBIGUOUS_REASON);
		return;
	}
	if (p->conn == NULL) {
		make_primary(n, p, c);
		return;
	}
	/* Two connections to one peer.  A live, answering connection is never
	 * displaced by a newcomer claiming the same id (anyone can write any
	 * peer_id in a HELLO).  The newcomer takes over only when the old one
	 * is proven dead (its last PING unanswered), or when it wins the
	 * simultaneous-dial tie-break of our own kind (it advertises pipeline,
	 * both ends apply the same rule) and comes from the address the
	 * rendezvous lists for that id.  Otherwise it is kept only while used
	 * (peers that open one connection per message); and when it is one
	 * our kind would only open if the old one had died (same dialler, or
	 * a tie-break win from elsewhere), the old one is PINGed at once:
	 * silent, it is closed and the newcomer promoted (a crashed peer
	 * back without a FIN); answering, the newcomer is an impostor. */
	struct session *old = p->conn;
	/* From another ip (§5.1): the owner from its listed address replaces
	 * an unbacked claim, which is closed; any other claim is refused. */
	switch (judge(c, old)) {
	case V_REFUSE:
		impostor(n, c, "claims a peer connected from another address");
		session_close(c, "impostor: the peer it claims is connected from another address");
		return;
	case V_REPLACE:
		replace_unbacked(n, p, c);
		return;
	case V_CONTEST:
		log_info(MOD, "%s: claimed from %s and %s, neither listed (yet): asking the rendezvous",
			 p->id, old->addr, c->addr);
		demote(n, c);
		p->contested = true;
		rdv_client_discover(n->rdv, NULL, NULL);
		return;
	case V_SAME_IP:
		break;
	}
	bool same = strcmp(dialler(n, c), dialler(n, old)) == 0;
	bool wins = !same && wins_over(n, c, old);
	if (old->ping_failures > 0 || (c->pipeline && wins && c->identity >= ID_BACKED)) {
		log_info(MOD, "%s: two connections; keeping the %sone %s dialled", p->id,
			 old->ping_failures > 0 ? "newer " : "", dialler(n, c));
		demote(n, old);
		p->conn = c;
		c->primary = true;
		c->peer = p;
		claims_remember(p, c, mono_now());
		conn_up(n, c);
		return;
	}
	demote(n, c);
	if (c->pipeline && (same || wins)) {
		const struct config *cfg = &n->cfg;
		double grace = cfg->keepalive.ping_timeout + 1;
		log_info(MOD, "%s: a second connection (%s) claims it while %s is up; checking that one",
			 p->id, c->addr, old->addr);
		c->challenger = true;
		session_arm_deadline(c, grace > cfg->limits.handshake_timeout ? grace
									  : cfg->limits.handshake_timeout);
		session_probe(old); /* may close old and promote c */
	} else {
		log_debug(MOD, "%s: second connection from %s kept only while it is used", p->id, c->addr);
	}
}

/* The probed connection of a peer answered: whoever claimed that peer on
 * another connection meanwhile is not it. */
static void on_alive(void *ctx, struct session *c)
{
	struct node *n = ctx;
	struct session *o, *next;

	for (o = n->conns; o; o = next) {
		next = o->next;
		if (o == c || !o->challenger || o->state == SESSION_CLOSED ||
		    strcmp(o->peer_id, c->peer_id) != 0)
			continue;
		char why[160];
		snprintf(why, sizeof why, "the peer it claims to be answers on %s; closed", c->addr);
		impostor(n, o, why);
		session_close(o, "impostor: the peer it claims to be answers on another connection");
	}
}

static void on_message(void *ctx, struct session *c, const struct pmsg *m)
{
	struct node *n = ctx;

	if (!c->primary && !c->bye_sent)
		session_arm_deadline(c, n->cfg.limits.handshake_timeout);
	if (c->peer)
		c->peer->last_seen = wall_now();
	if (m->type == PM_ACK) {
		if (m->msg_id)
			router_on_ack(n->router, c, m->msg_id);
	} else {
		router_on_message(n->router, c, m);
	}
}

static void on_rtt(void *ctx, struct session *c, double ms)
{
	struct node *n = ctx;
	struct peer *p = peer_find(&n->peers, c->peer_id);

	if (p)
		rtt_add(&p->rtt, ms);
	log_debug(MOD, "%s: RTT %.3f ms", c->peer_id, ms);
}

static void on_bye(void *ctx, struct session *c)
{
	struct node *n = ctx;
	struct peer *p = peer_find(&n->peers, c->peer_id);

	log_info(MOD, "%s said BYE", c->peer_id);
	if (p && c->primary) {
		p->left = true;
		p->left_at = mono_now();
	}
}

/* The primary c of p closed: make another established connection with p
 * the primary, if there is one (found by tests/e2e/test_interop.py). */
static bool promote_other(struct node *n, struct peer *p, struct session *c, const char *reason)
{
	for (struct session *o = n->conns; o; o = o->next) {
		if (o == c || o->state != SESSION_ESTABLISHED || o->bye_sent || session_closing(o) ||
		    strcmp(o->peer_id, p->id) != 0)
			continue;
		session_disarm_deadline(o); /* the grace of a demoted one */
		o->challenger = false;
		o->primary = true;
		o->peer = p;
		p->conn = o;
		claims_remember(p, o, mono_now());
		log_info(MOD, "%s: connection %s closed (%s); keeping the other one (%s, %s)", p->id,
			 c->addr, reason, o->addr, o->dir == CONN_OUT ? "outbound" : "inbound");
		conn_up(n, o);
		maybe_stopped(n);
		return true;
	}
	return false;
}

static void on_closed(void *ctx, struct session *c, const char *reason)
{
	struct node *n = ctx;
	struct peer *p = c->peer_id[0] ? peer_find(&n->peers, c->peer_id) : NULL;

	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	n->nconns--;

	if (p && p->dialing == c) {
		p->dialing = NULL;
		/* Silence until a timeout counts against the address; an answer
		 * (a wrong peer_id, a refusal) does not. */
		dial_pacer_done(n->pacer, p->id, c->rx_msgs > 0 ? DIAL_ANSWERED : DIAL_FAILED);
		p->retry++;
		log_info(MOD, "dial %s (%s) failed: %s", p->id, c->addr, reason);
		schedule_retry(n, p);
	} else if (p && p->conn == c) {
		struct node_event ev = { .peer_id = p->id, .text = reason };
		p->conn = NULL;
		peer_seen(&n->peers, p, wall_now()); /* met-only peers are forgotten counting from here */
		/* Another established connection with this peer (the loser of a
		 * simultaneous dial, demoted by us but kept by a peer that does
		 * not know our tie-break) takes over: else both would die. */
		if (!p->left && !n->stopping && promote_other(n, p, c, reason))
			return;
		p->disconnects++;
		p->state = PEER_STALE;
		/* A connection that dies at once (HELLO_OK, a rejection, EOF)
		 * counts as a failed attempt, so the backoff grows; a dial of
		 * ours refused that way is no success in the peer's stats. */
		double lived = mono_now() - p->connected_at;
		if (lived >= BACKOFF_RESET_AFTER)
			p->retry = 0;
		else
			p->retry++;
		if (c->dir == CONN_OUT && c->peer_closed && lived < REFUSED_WITHIN && p->dial_ok > 0) {
			p->dial_ok--;
			reason = "refused right after the handshake";
			ev.text = reason;
		}
		/* Closed on purpose, by it (BYE) or by us (stopping): not lost. */
		ev.type = p->left || n->stopping ? EV_PEER_DISCONNECTED : EV_PEER_STALE;
		log_info(MOD, "%s %s: %s", p->id, p->left ? "left" : n->stopping ? "closed" : "lost",
			 reason);
		node_emit(n, &ev);
		schedule_retry(n, p);
	} else {
		log_debug(MOD, "connection %s%s%s closed: %s", c->addr, c->peer_id[0] ? " " : "",
			  c->peer_id, reason);
	}
	maybe_stopped(n);
}

static void on_pong(void *ctx, struct session *c, const char *msg_id)
{
	struct node *n = ctx;

	pinger_pong(n->pinger, c->peer_id, msg_id);
}

static void on_traffic(void *ctx, struct session *c, enum pmsg_type t, size_t bytes, bool out)
{
	struct node *n = ctx;
	struct peer *p = c->peer;

	if (p == NULL && c->peer_id[0])
		p = peer_find(&n->peers, c->peer_id);
	stats_traffic(&n->stats, p, t, bytes, out);
}

static const struct session_cbs session_cbs = {
	.hello = on_hello,
	.identity = on_identity,
	.established = on_established,
	.message = on_message,
	.rtt = on_rtt,
	.pong = on_pong,
	.bye = on_bye,
	.alive = on_alive,
	.traffic = on_traffic,
	.drained = on_session_drained,
	.closed = on_closed,
};

/* ---- rendezvous ------------------------------------------------------------ */

static void on_rdv_state(void *ctx, const struct rdv_status *st)
{
	struct node *n = ctx;
	struct node_event ev = { .type = EV_REGISTRATION, .reg = st };

	/* When the last error happened, so "status" can say how old it is. */
	if (st->last_error[0] && strcmp(st->last_error, n->stats.rdv_error) != 0) {
		snprintf(n->stats.rdv_error, sizeof n->stats.rdv_error, "%s", st->last_error);
		n->stats.rdv_error_at = wall_now();
	}
	if (st->state != RDV_REGISTERED)
		n->stats.registered_since = 0;
	else if (n->stats.registered_since == 0)
		n->stats.registered_since = mono_now();
	node_emit(n, &ev);
}

static void on_rdv_discover(void *ctx, const struct rdv_peer *list, size_t count)
{
	struct node *n = ctx;
	char id[PEER_ID_MAX + 1];
	double now = mono_now(), wall = wall_now();

	for (size_t i = 0; i < count; i++) {
		const struct rdv_peer *e = &list[i];
		if (!name_valid(e->name) || !name_valid(e->ns) || e->port <= 0 || e->port > 65535)
			continue;
		peer_id_make(id, e->name, e->ns);
		if (strcmp(id, n->id) == 0)
			continue; /* ourselves */
		bool known = peer_find(&n->peers, id) != NULL;
		struct peer *p = peer_get(&n->peers, id, wall);
		if (p == NULL)
			break;
		/* Listed twice (registered from two ips): keep the address we
		 * reach it on, else the fresher registration. */
		bool fresher = e->expires_in < 0 || p->listed_expires < 0 ||
			       now + (double)e->expires_in >= p->listed_until;
		/* Connected (it dialled us) and no address yet: keep the listed
		 * one all the same, for a later reconnect. */
		claims_listed(p, e->ip, e->port,
			      now + (e->expires_in > 0 ? (double)e->expires_in
						       : n->cfg.rendezvous.discover_interval * 2));
		/* Listed at several ips: the one it was reached at before stays
		 * its address (a registration from elsewhere is no move). */
		bool elsewhere = p->known_ip[0] && strcmp(e->ip, p->known_ip) != 0 &&
				 claims_ambiguous(p, now);
		if (p->ip[0] == '\0' || (p->conn == NULL && fresher && !elsewhere))
			peer_set_addr(&n->peers, p, e->ip, e->port);
		if (fresher) {
			p->listed_until = now + (double)(e->expires_in >= 0 ? e->expires_in : 0);
			p->listed_expires = e->expires_in;
		}
		p->last_seen = wall;
		/* It re-registered after saying BYE: it is back. */
		if (p->left && e->ttl >= 0 && e->expires_in >= 0 &&
		    now - p->left_at > (double)(e->ttl - e->expires_in) + 1)
			p->left = false;
		if (p->gave_up) {
			p->gave_up = false;
			p->retry = 0;
		}
		if (!known) {
			struct node_event ev = { .type = EV_PEER_DISCOVERED, .peer_id = p->id };
			log_info(MOD, "discovered %s at %s:%d", p->id, p->ip, p->port);
			node_emit(n, &ev);
		}
		reweigh(n, p);
		if ((p->state != PEER_ACTIVE || unbacked_conn(p)) && !p->left &&
		    !ev_is_active(&p->retry_timer))
			dial(n, p);
	}
}

void node_discover(struct node *n, rdv_done_fn done, void *ctx)
{
	rdv_client_discover(n->rdv, done, ctx);
}

void node_register(struct node *n, rdv_done_fn done, void *ctx)
{
	rdv_client_register(n->rdv, done, ctx);
}

void node_unregister(struct node *n, rdv_done_fn done, void *ctx)
{
	rdv_client_unregister(n->rdv, false, done, ctx);
}

/* ---- messages ---------------------------------------------------------------- */

void node_send(struct node *n, const char *to, const char *text, bool require_ack,
	       node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN])
{
	router_send(n->router, to, text, require_ack, cb, ctx, msg_id_out);
}

void node_queue(struct node *n, const char *to, const char *text, double deadline_s,
		node_send_cb cb, void *ctx, char msg_id_out[MSGID_LEN])
{
	outbox_queue(n->outbox, to, text, deadline_s, cb, ctx, msg_id_out);
}

int node_pub(struct node *n, const char *dst, const char *text, char msg_id_out[MSGID_LEN],
	     char *err, size_t errlen)
{
	return router_pub(n->router, dst, text, msg_id_out, err, errlen);
}

/* ---- shutdown ------------------------------------------------------------------ */

static void maybe_stopped(struct node *n)
{
	void (*done)(void *) = n->stop_done;

	if (!n->stopping || n->stop_done == NULL || n->conns != NULL || !n->unregistered)
		return;
	n->stop_done = NULL;
	ev_timer_stop(n->loop, &n->stop_deadline);
	log_info(MOD, "stopped");
	done(n->stop_ctx);
}

static void on_unregistered(void *ctx, const char *err, const struct rdv_reply *reply)
{
	struct node *n = ctx;

	if (err)
		log_warn(MOD, "UNREGISTER failed: %s", err);
	else
		log_info(MOD, "unregistered");
	n->unregistered = true;
	maybe_stopped(n);
}

static void on_stop_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct node *n = w->data;

	log_warn(MOD, "shutdown: giving up waiting");
	while (n->conns)
		session_close(n->conns, "shutdown");
	n->unregistered = true;
	maybe_stopped(n);
}

void node_shutdown(struct node *n, void (*done)(void *ctx), void *ctx)
{
	if (n->stopping)
		return;
	log_info(MOD, "shutting down: BYE to %zu connection(s), UNREGISTER", n->nconns);
	n->stopping = true;
	n->stop_done = done;
	n->stop_ctx = ctx;
	ev_io_stop(n->loop, &n->accept_io);
	ev_timer_stop(n->loop, &n->accept_pause);
	ev_timer_stop(n->loop, &n->reconcile);
	peer_foreach(&n->peers, stop_peer_timer, n);
	/* Belt and braces: every step has its own timeout; this caps the sum. */
	ev_timer_init(&n->stop_deadline, on_stop_deadline,
		      n->cfg.limits.bye_timeout + n->cfg.limits.rendezvous_timeout + 1, 0);
	n->stop_deadline.data = n;
	ev_timer_start(n->loop, &n->stop_deadline);

	struct session *c = n->conns, *next;
	for (; c; c = next) {
		next = c->next;
		if (c->state == SESSION_ESTABLISHED)
			session_bye(c, "shutdown");
		else
			session_close(c, "shutdown");
	}
	rdv_client_unregister(n->rdv, true, on_unregistered, n);
}
