/* The rendezvous server role: sockets and deadlines around proto.c (the
 * requests), store.c (the registrations) and limit.c (the per-ip rate
 * limit).
 *
 * A connection goes READ -> WRITE -> LINGER and is freed:
 * - READ: wait for one line (framer), at most first_line_timeout without
 *   data and 10 times that in all; EOF after an unterminated line makes it
 *   the request.
 * - HELD: a request that changed the registrations waits for their commit
 *   to disk (store/registrations.h), later in the same loop iteration, so
 *   that an OK reply means the registration survives a crash.
 * - WRITE: the reply is written at once; only what the socket did not take
 *   arms EV_WRITE.  A DISCOVER reply is produced in RDV_OUT_CHUNK pieces as
 *   the socket drains, so no connection holds more than about one piece.
 * - LINGER: after the reply, shutdown(SHUT_WR) and read-and-discard until the
 *   client closes (briefly), so that unread request bytes do not turn our
 *   close into a RST that could destroy the reply before the client reads it.
 * Every state has a deadline; a client that stops reading is dropped.
 * A connection over the rate limit or over max_clients is closed as soon as
 * it is accepted, without a reply; one from a blocked ip gets the blocked
 * message and goes straight to WRITE. */
#include "rendezvous/server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "framer.h"
#include "log.h"
#include "rendezvous/server/limit.h"
#include "rendezvous/server/persist.h"
#include "rendezvous/server/proto.h"
#include "rendezvous/server/store.h"
#include "store/registrations.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Rendezvous"

#define RDV_BACKLOG        511
#define RDV_ACCEPT_BURST   64          /* accepts per wake-up: others get a turn */
#define RDV_READ_CHUNK     16384
#define RDV_READ_CAP       10.0        /* READ lasts at most this many first_line_timeouts */
#define RDV_WRITE_IDLE     10.0        /* s without the client taking a byte */
#define RDV_WRITE_MAX      60.0        /* s for a whole reply */
#define RDV_WRITE_BUDGET   (16 * 1024) /* bytes per wake-up per connection */
#define RDV_OUT_CHUNK      (16 * 1024) /* DISCOVER reply piece */
#define RDV_LINGER         2.0         /* s to wait for the client's close */
#define RDV_LINGER_BYTES   (256 * 1024) /* discarded at most while lingering */
#define RDV_SWEEP_INTERVAL 5.0
#define RDV_ACCEPT_PAUSE   0.5         /* after EMFILE and friends */
#define RDV_MAX_CLIENTS    1024        /* if the configuration has none */
#define RDV_EXPIRE_EVERY   12          /* sweeps between purges of expired rows on disk */

enum rc_state { RC_READ, RC_HELD, RC_WRITE, RC_LINGER };

struct rconn {
	ev_io io;
	ev_timer timer;
	struct rdv_server *srv;
	TAILQ_ENTRY(rconn) entry;
	TAILQ_ENTRY(rconn) held;   /* in srv->held while RC_HELD */
	int fd;
	enum rc_state state;
	struct framer fr;
	struct buf out;            /* reply bytes; out.data[off..len) unsent */
	size_t off;
	struct rdv_stream *stream; /* rest of a DISCOVER reply, or NULL */
	double start;              /* entered the current state */
	double last;               /* last progress (bytes in or out) */
	size_t drained;
	int port;
	char ip[INET6_ADDRSTRLEN];
};

TAILQ_HEAD(rconn_list, rconn);

struct rdv_server {
	struct ev_loop *loop;
	int fd;
	int port;
	ev_io accept_io;
	ev_timer accept_pause;
	ev_timer sweep;
	struct rdv_store *store;
	struct rdv_limit *limit;
	struct rconn_list conns;
	int nconns;
	int max_clients;
	int rate_limit;
	double first_line_timeout;
	size_t evictions_logged;
	unsigned long refused;     /* over max_clients since the last log line */
	struct regdb *db;          /* the registrations on disk, or NULL: not kept */
	struct rconn_list held;    /* replies waiting for the commit */
	unsigned sweeps;
};

/* ---- connections --------------------------------------------------------- */

static void conn_watch(struct rconn *c, int events)
{
	struct ev_loop *loop = c->srv->loop;

	if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
}

static void conn_state(struct rconn *c, enum rc_state st, double first_deadline)
{
	c->state = st;
	c->start = c->last = mono_now();
	c->timer.repeat = first_deadline;
	ev_timer_again(c->srv->loop, &c->timer);
}

/* The one way out.  libev's stop calls also cancel pending events, so no
 * callback of c can run after this. */
static void conn_close(struct rconn *c)
{
	struct rdv_server *s = c->srv;

	ev_io_stop(s->loop, &c->io);
	ev_timer_stop(s->loop, &c->timer);
	close(c->fd);
	if (c->state == RC_HELD)
		TAILQ_REMOVE(&s->held, c, held);
	TAILQ_REMOVE(&s->conns, c, entry);
	s->nconns--;
	framer_free(&c->fr);
	buf_free(&c->out);
	rdv_stream_free(c->stream);
	free(c);
}

static int conn_linger(struct rconn *c)
{
	/* FIN after the reply: the client's read ends there. */
	if (shutdown(c->fd, SHUT_WR) != 0)
		return -1;
	conn_state(c, RC_LINGER, RDV_LINGER);
	conn_watch(c, EV_READ);
	return 0;
}

/* Write what is pending, producing more of a DISCOVER reply as the socket
 * takes it.  0 to keep the connection, -1 to close it. */
static int conn_flush(struct rconn *c)
{
	size_t budget = RDV_WRITE_BUDGET;

	for (;;) {
		if (c->off == c->out.len) {
			buf_reset(&c->out);
			c->off = 0;
			if (c->stream == NULL)
				return conn_linger(c);
			if (rdv_stream_fill(c->stream, c->srv->store, mono_now(), &c->out,
					    RDV_OUT_CHUNK)) {
				rdv_stream_free(c->stream);
				c->stream = NULL;
			}
			continue;
		}
		if (budget == 0) {
			conn_watch(c, EV_WRITE);
			return 0;
		}
		size_t want = c->out.len - c->off;
		ssize_t n = send(c->fd, c->out.data + c->off, want < budget ? want : budget,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				conn_watch(c, EV_WRITE);
				return 0;
			}
			log_debug(MOD, "%s:%d: send: %s", c->ip, c->port, strerror(errno));
			return -1;
		}
		c->off += (size_t)n;
		budget -= (size_t)n;
		c->last = mono_now();
	}
}

static int conn_reply(struct rconn *c)
{
	struct rdv_server *s = c->srv;

	/* What this iteration changed is committed at its end (ev_prepare):
	 * the reply goes out then (on_commit). */
	if (regdb_pending(s->db)) {
		/* The io watcher stays as it is (fewer epoll_ctl calls): the
		 * commit comes before the loop polls again, and on_conn_io
		 * ignores a held connection meanwhile. */
		conn_state(c, RC_HELD, RDV_WRITE_IDLE);
		TAILQ_INSERT_TAIL(&s->held, c, held);
		return 0;
	}
	conn_state(c, RC_WRITE, RDV_WRITE_IDLE);
	return conn_flush(c);
}

/* The registrations changed in this iteration are on disk (ok), or could
 * not be written: then the held replies are not sent (an OK would promise
 * what a crash could take back); the client sees the connection close
 * without a reply, and registers again. */
static void on_commit(void *ctx, bool ok)
{
	struct rdv_server *s = ctx;
	struct rconn *c;

	if (!ok && !TAILQ_EMPTY(&s->held))
		log_warn(MOD, "registrations not saved: closing the requests without a reply");
	while ((c = TAILQ_FIRST(&s->held)) != NULL) {
		TAILQ_REMOVE(&s->held, c, held);
		c->state = RC_WRITE;
		if (!ok || conn_reply(c) != 0)
			conn_close(c);
	}
}

/* Every change of the store goes to disk, in this iteration's transaction. */
static void on_store_change(void *ctx, const struct rdv_view *v, bool removed)
{
	struct rdv_server *s = ctx;

	if (removed)
		regdb_delete(s->db, v->ip, v->ns, v->name);
	else
		regdb_put(s->db, v->ip, v->ns, v->name, v->port, v->ttl,
			  wall_now() + (v->expires - mono_now()));
}

static void conn_request(struct rconn *c, const char *line, size_t len)
{
	char note[256];

	c->stream = rdv_handle(c->srv->store, c->ip, line, len, mono_now(), &c->out, note,
			       sizeof note);
	log_info(MOD, "%s:%d %s", c->ip, c->port, note);
}

static int on_frame(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct rconn *c = ctx;

	if (ev == FRAMER_OVERFLOW) {
		log_info(MOD, "%s:%d request: line_too_long", c->ip, c->port);
		rdv_reply_too_long(&c->out);
	} else {
		conn_request(c, line, len);
	}
	return 1; /* one command per connection: ignore the rest */
}

/* READ: 0 to keep the connection, -1 to close it. */
static int conn_read(struct rconn *c)
{
	char buf[RDV_READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof buf, 0);

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		log_debug(MOD, "%s:%d: recv: %s", c->ip, c->port, strerror(errno));
		return -1;
	}
	if (n == 0) {
		/* The client shut its side: what it sent is the request. */
		const char *data = NULL;
		size_t len = framer_pending(&c->fr, &data);
		conn_request(c, data, len);
		return conn_reply(c);
	}
	c->last = mono_now();
	if (framer_feed(&c->fr, buf, (size_t)n, on_frame, c) != 0)
		return conn_reply(c);
	return 0;
}

/* LINGER: discard until the client closes. */
static int conn_drain(struct rconn *c)
{
	char buf[RDV_READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof buf, 0);

	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
	if (n == 0)
		return -1;
	c->drained += (size_t)n;
	return c->drained > RDV_LINGER_BYTES ? -1 : 0;
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rconn *c = w->data;
	int rc = 0;

	switch (c->state) {
	case RC_READ:
		if (revents & EV_READ)
			rc = conn_read(c);
		break;
	case RC_HELD:
		break;
	case RC_WRITE:
		if (revents & EV_WRITE)
			rc = conn_flush(c);
		break;
	case RC_LINGER:
		if (revents & EV_READ)
			rc = conn_drain(c);
		break;
	}
	if (rc != 0)
		conn_close(c);
}

/* Deadlines are checked lazily: progress only moves c->last, and the timer
 * re-arms itself for whatever is left (libev manual, "timer tricks"). */
static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rconn *c = w->data;
	double flt = c->srv->first_line_timeout;
	double now = mono_now(), deadline = now;

	switch (c->state) {
	case RC_READ:
		deadline = c->last + flt;
		if (deadline > c->start + flt * RDV_READ_CAP)
			deadline = c->start + flt * RDV_READ_CAP;
		break;
	case RC_HELD:
	case RC_WRITE:
		deadline = c->last + RDV_WRITE_IDLE;
		if (deadline > c->start + RDV_WRITE_MAX)
			deadline = c->start + RDV_WRITE_MAX;
		break;
	case RC_LINGER:
		deadline = c->start + RDV_LINGER;
		break;
	}
	if (now < deadline) {
		w->repeat = deadline - now;
		ev_timer_again(loop, w);
		return;
	}
	switch (c->state) {
	case RC_READ:
		log_info(MOD, "%s:%d request: timeout", c->ip, c->port);
		rdv_reply_error(&c->out, RDV_MSG_TIMEOUT);
		if (conn_reply(c) != 0)
			conn_close(c);
		return;
	case RC_WRITE:
		log_info(MOD, "%s:%d: not reading its reply; closing", c->ip, c->port);
		break;
	case RC_HELD: /* a commit never came: cannot happen */
	case RC_LINGER:
		break;
	}
	conn_close(c);
}

static struct rconn *conn_new(struct rdv_server *s, int fd, const char *ip, int port)
{
	struct rconn *c = xcalloc(1, sizeof *c);

	c->srv = s;
	c->fd = fd;
	c->port = port;
	snprintf(c->ip, sizeof c->ip, "%s", ip);
	framer_init(&c->fr, FRAMER_MAX_LINE);
	buf_init(&c->out);
	ev_io_init(&c->io, on_conn_io, fd, EV_READ);
	c->io.data = c;
	ev_init(&c->timer, on_conn_timer);
	c->timer.data = c;
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	s->nconns++;
	return c;
}

/* ---- accepting ----------------------------------------------------------- */

/* Printable address; an IPv4-mapped IPv6 address (dual-stack listener) is
 * shown as plain IPv4 so one client has one identity. */
static void addr_format(const struct sockaddr_storage *ss, char ip[INET6_ADDRSTRLEN], int *port)
{
	ip[0] = '\0';
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, INET6_ADDRSTRLEN);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip, INET6_ADDRSTRLEN);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, INET6_ADDRSTRLEN);
		*port = ntohs(sin6->sin6_port);
	}
	if (ip[0] == '\0')
		snprintf(ip, INET6_ADDRSTRLEN, "unknown");
}

static void admit(struct rdv_server *s, int fd, const char *ip, int port)
{
	double left;
	enum rdv_verdict v = rdv_limit_check(s->limit, ip, mono_now(), &left);
	struct rconn *c;

	if (v == RDV_LIMIT_EXCEEDED) {
		log_warn(MOD, "%s:%d: over %d connections in the window; ip blocked for %.0f s", ip,
			 port, s->rate_limit, left);
		close(fd);
		return;
	}
	if (s->nconns >= s->max_clients) {
		if (s->refused++ == 0)
			log_warn(MOD, "%d clients already: refusing connections", s->nconns);
		close(fd);
		return;
	}
	c = conn_new(s, fd, ip, port);
	if (v == RDV_LIMIT_BLOCKED) {
		log_debug(MOD, "%s:%d: blocked for %.0f s more", ip, port, left);
		rdv_reply_blocked(&c->out, ip, port, s->rate_limit, left);
		if (conn_reply(c) != 0)
			conn_close(c);
		return;
	}
	conn_state(c, RC_READ, s->first_line_timeout);
	conn_watch(c, EV_READ);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct rdv_server *s = w->data;

	for (int i = 0; i < RDV_ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		char ip[INET6_ADDRSTRLEN];
		int port;
		int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_warn(MOD, "accept: %s; pausing for %.1f s", strerror(errno),
				 RDV_ACCEPT_PAUSE);
			/* Out of descriptors or memory: retrying at once would spin. */
			ev_io_stop(loop, &s->accept_io);
			ev_timer_set(&s->accept_pause, RDV_ACCEPT_PAUSE, 0.);
			ev_timer_start(loop, &s->accept_pause);
			return;
		}
		addr_format(&ss, ip, &port);
		admit(s, fd, ip, port);
	}
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_server *s = w->data;

	ev_io_start(loop, &s->accept_io);
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rdv_server *s = w->data;
	double now = mono_now();
	size_t expired = rdv_store_expire(s->store, now);
	size_t idle = rdv_limit_sweep(s->limit, now);
	size_t ev = rdv_limit_evictions(s->limit);

	if (expired > 0)
		log_debug(MOD, "%zu registrations expired, %zu left", expired,
			  rdv_store_count(s->store));
	if (idle > 0)
		log_debug(MOD, "forgot %zu idle ips", idle);
	if (ev != s->evictions_logged) {
		log_warn(MOD, "rate-limit table full: %zu ips forgotten early",
			 ev - s->evictions_logged);
		s->evictions_logged = ev;
	}
	if (s->refused > 0) {
		log_warn(MOD, "refused %lu connections over max_clients (%d)", s->refused,
			 s->max_clients);
		s->refused = 0;
	}
	if (s->db != NULL && ++s->sweeps % RDV_EXPIRE_EVERY == 0)
		regdb_expire(s->db, wall_now());
}

/* ---- keeping the registrations ----------------------------------------------- */

static void restore_row(void *ctx, const char *ip, const char *ns, const char *name, int port,
			int ttl, double expires_at)
{
	struct rdv_server *s = ctx;
	double mono = mono_now();

	if (ip[0] == '\0' || ns[0] == '\0' || name[0] == '\0' || port < 1 || port > 65535)
		return;
	rdv_store_restore(s->store, ip, ns, name, port, ttl, mono, mono + (expires_at - wall_now()));
}

static void note_commit(void *ctx, bool ok)
{
	*(bool *)ctx = ok;
}

/* A peers.json left by an earlier chatp2pd (which saved the registrations
 * that way) is imported into the database once, then renamed
 * peers.json.imported; a torn one is moved aside to peers.json.bad. */
static void import_json(struct rdv_server *s, const char *dir)
{
	char path[4200], to[4300], err[512];
	struct rdv_persist_stats st;
	bool ok = true;
	int rc;

	snprintf(path, sizeof path, "%s/%s", dir, RDV_PERSIST_FILE);
	if (access(path, F_OK) != 0)
		return;
	/* Each entry restored reaches the database through on_store_change. */
	rc = rdv_persist_load(s->store, path, mono_now(), wall_now(), &st, err, sizeof err);
	regdb_on_commit(s->db, note_commit, &ok);
	regdb_flush(s->db);
	regdb_on_commit(s->db, on_commit, s);
	if (rc != 0) {
		snprintf(to, sizeof to, "%s.bad", path);
		log_warn(MOD, "%s; moved aside to %s", err, to);
		if (rename(path, to) != 0)
			log_warn(MOD, "rename %s: %s", to, strerror(errno));
		return;
	}
	if (!ok) {
		log_warn(MOD, "%s: could not import into %s; trying again at the next start", path,
			 regdb_path(s->db));
		return;
	}
	snprintf(to, sizeof to, "%s.imported", path);
	if (rename(path, to) != 0) {
		log_warn(MOD, "rename %s: %s", to, strerror(errno));
		return;
	}
	log_info(MOD, "imported %s (%zu restored, %zu expired, %zu invalid dropped), renamed %s",
		 path, st.loaded, st.expired, st.invalid, to);
}

/* state_dir, else systemd's $STATE_DIRECTORY (its first entry), else none. */
static int setup_state(struct rdv_server *s, const struct config *cfg, char *err, size_t errlen)
{
	const char *dir = cfg->rendezvous_server.state_dir;
	const char *env = getenv("STATE_DIRECTORY");
	char envdir[4096], path[4200], why[256];
	long n;

	if (dir[0] == '\0' && env != NULL && env[0] != '\0') {
		snprintf(envdir, sizeof envdir, "%.*s", (int)strcspn(env, ":"), env);
		dir = envdir;
	}
	if (dir[0] == '\0') {
		log_info(MOD, "no state_dir: registrations are not kept across restarts");
		return 0;
	}
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "rendezvous_server.state_dir: cannot create %s: %s", dir,
			 strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s", dir, REGDB_NAME);
	s->db = regdb_open(s->loop, path, why, sizeof why);
	if (s->db == NULL) {
		log_error(MOD, "cannot open %s (%s): registrations are not kept across restarts",
			  path, why);
		return 0;
	}
	/* Before the listener: restoring must not write the rows back. */
	n = regdb_load(s->db, wall_now(), restore_row, s);
	rdv_store_set_listener(s->store, on_store_change, s);
	regdb_on_commit(s->db, on_commit, s);
	import_json(s, dir);
	regdb_expire(s->db, wall_now()); /* what expired while we were down */
	log_info(MOD, "registrations kept in %s: %ld restored", path, n < 0 ? 0 : n);
	return 0;
}

/* ---- setup ---------------------------------------------------------------- */

static int listen_on(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, fd;

	memset(&ss, 0, sizeof ss);
	if (strcmp(addr, "localhost") == 0)
		addr = "127.0.0.1";
	else if (addr[0] == '\0')
		addr = "0.0.0.0";
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sl = sizeof *sin;
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sl = sizeof *sin6;
	} else {
		/* No name resolution here: it would block the loop. */
		snprintf(err, errlen, "rendezvous_server.listen: '%s' is not an IPv4 or IPv6 address",
			 addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, RDV_BACKLOG) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

struct rdv_server *rdv_server_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
	const char *addr = cfg->rendezvous_server.listen;
	int port = cfg->rendezvous_server.port;
	int rate_limit = cfg->rendezvous_server.rate_limit;
	int max_clients = cfg->rendezvous_server.max_clients;
	double window = cfg->rendezvous_server.rate_window;
	double block = cfg->rendezvous_server.block_time;
	double flt = cfg->rendezvous_server.first_line_timeout;
	struct rdv_server *s;
	int fd;

	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "rendezvous_server.port: %d is not a port", port);
		return NULL;
	}
	if ((fd = listen_on(addr, port, err, errlen)) < 0)
		return NULL;

	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->fd = fd;
	s->port = bound_port(fd);
	s->max_clients = max_clients > 0 ? max_clients : RDV_MAX_CLIENTS;
	s->rate_limit = rate_limit;
	s->first_line_timeout = flt > 0 ? flt : 1.0;
	s->store = rdv_store_new(RDV_STORE_MAX);
	rdv_store_set_max_per_ip(s->store, cfg->rendezvous_server.max_per_ip > 0
					   ? (size_t)cfg->rendezvous_server.max_per_ip
					   : RDV_STORE_MAX_PER_IP,
				 cfg->rendezvous_server.quota_exempt_loopback);
	s->limit = rdv_limit_new(rate_limit, window, block, RDV_LIMIT_MAX_IPS);
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->held);
	if (setup_state(s, cfg, err, errlen) != 0) {
		close(fd);
		rdv_store_free(s->store);
		rdv_limit_free(s->limit);
		free(s);
		return NULL;
	}

	ev_io_init(&s->accept_io, on_accept, fd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(loop, &s->accept_io);
	ev_init(&s->accept_pause, on_accept_pause);
	s->accept_pause.data = s;
	ev_timer_init(&s->sweep, on_sweep, RDV_SWEEP_INTERVAL, RDV_SWEEP_INTERVAL);
	s->sweep.data = s;
	ev_timer_start(loop, &s->sweep);

	log_info(MOD, "listening on %s:%d (rate limit %d per %g s, block %g s, first line %g s, "
		 "max %d clients, max %d registrations, %zu per address%s)", addr, s->port,
		 rate_limit, window, block, s->first_line_timeout, s->max_clients, RDV_STORE_MAX,
		 rdv_store_max_per_ip(s->store),
		 cfg->rendezvous_server.quota_exempt_loopback ? " but loopback" : "");
	return s;
}

int rdv_server_port(const struct rdv_server *s)
{
	return s->port;
}

void rdv_server_free(struct rdv_server *s)
{
	struct rconn *c;

	if (s == NULL)
		return;
	regdb_flush(s->db); /* held replies go out */
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		conn_close(c);
	ev_io_stop(s->loop, &s->accept_io);
	ev_timer_stop(s->loop, &s->accept_pause);
	ev_timer_stop(s->loop, &s->sweep);
	regdb_close(s->db);
	close(s->fd);
	rdv_store_free(s->store);
	rdv_limit_free(s->limit);
	log_info(MOD, "stopped");
	free(s);
}
