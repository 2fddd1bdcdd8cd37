#include "control/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control/history.h"
#include "framer.h"
#include "log.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Control"
/* Out of descriptors: how long the listener rests (node.c the same). */
#define ACCEPT_PAUSE 0.5
/* Slots past control.max_clients kept for the administrator (root and the
 * socket owner's uid), so a runaway script cannot lock them out. */
#define ADMIN_SLOTS 2
/* Events queued for a controller are written at the end of the loop
 * iteration (one write for a burst), or at once past this many bytes. */
#define EVENT_FLUSH_BYTES 32768

struct ctl_client {
	struct control *ctl;
	struct ctl_client *next;
	int fd;
	uid_t uid;                  /* SO_PEERCRED, for the admin reserve */
	unsigned id;                /* for the log */
	ev_io rio, wio;
	struct framer fr;
	struct buf out;
	unsigned classes;           /* subscribed event classes */
	enum log_level log_level;
	uint64_t missed;            /* events dropped since the last "lagged" */
	const char *gone_why;       /* why it was closed (a static string) */
	bool dead;
};

struct control {
	struct ev_loop *loop;
	struct node *node;
	const struct config *cfg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool own_path;              /* we created the socket file: unlink it */
	int fd;
	ev_io accept_io;
	ev_timer accept_pause;      /* out of descriptors: do not spin on accept() */
	ev_check reaper;            /* frees closed clients outside their callbacks */
	ev_prepare flusher;         /* writes the events queued in this iteration */
	ev_idle nudge;              /* ... without sleeping first, if queued in a prepare */
	struct ctl_client *clients;
	/* Every request not yet answered, its controller gone or not: at the
	 * end each is answered "stopping", so none is lost or leaked. */
	struct ctl_req *reqs;
	unsigned nclients, next_id;
	uid_t owner;                /* the socket file's owner (admin reserve) */
	struct control_hooks hooks;
	uint64_t seq;               /* last event sequence number */
	bool publishing;            /* in publish()'s fan-out */
	struct history hist;        /* the last control.history events */
	struct buf render;          /* one event's notification, being sent */
	uint64_t dropped;           /* events dropped for slow controllers, ever (metrics) */
};

static void on_accept(struct ev_loop *loop, ev_io *w, int revents);
static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents);
static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void on_reap(struct ev_loop *loop, ev_check *w, int revents);
static void on_flusher(struct ev_loop *loop, ev_prepare *w, int revents);
static void on_nudge(struct ev_loop *loop, ev_idle *w, int revents);
static void on_node_event(void *ctx, const struct node_event *ev);
static void on_log(void *ctx, enum log_level l, const char *module, const char *text);

/* ---- the socket file ------------------------------------------------------- */

static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	/* Only the last component: its parent is the admin's business. */
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Whoever can write to the directory can replace the socket under us
	 * (and under our controllers): it must be ours or root's, and not open
	 * to everyone unless sticky, like /tmp.  (/tmp/chatp2p-UID made first
	 * by another user is refused.) */
	struct stat st;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -1;
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) ||
	    ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
		snprintf(err, errlen, "%s is owned by uid %u or writable by others: not putting "
			 "the control socket there", dir, (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

/* A socket file left by a crashed run is replaced; a live daemon's socket
 * or any other kind of file is not. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not touching it", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another chatp2pd is listening there (stop it, or give this "
			 "one a socket of its own: --control PATH)", path);
		return -1;
	}
	log_info(MOD, "removing stale socket %s", path);
	unlink(path);
	return 0;
}

static int listen_unix(struct control *c, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;
	int fd;

	if (strlen(c->path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "control socket path too long: %s", c->path);
		return -1;
	}
	if (make_parent(c->path, err, errlen) != 0 || clear_stale(c->path, err, errlen) != 0)
		return -1;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", c->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Created with the final mode: never a moment of wider access. */
	old = umask(0777 & ~(mode_t)c->cfg->control.mode);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	if (rc != 0 || listen(fd, 64) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", c->path, strerror(errno));
		close(fd);
		return -1;
	}
	chmod(c->path, (mode_t)c->cfg->control.mode);
	c->own_path = true;
	c->fd = fd;
	return 0;
}

struct control *control_new(struct ev_loop *loop, struct node *n, const struct config *cfg,
			    const char *path, int listen_fd, const struct control_hooks *hooks,
			    char *err, size_t errlen)
{
	struct control *c = xcalloc(1, sizeof *c);

	c->loop = loop;
	c->node = n;
	c->cfg = cfg;
	c->hooks = *hooks;
	snprintf(c->path, sizeof c->path, "%s", path ? path : "");
	if (listen_fd >= 0) {
		c->fd = listen_fd;
		fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	} else if (listen_unix(c, err, errlen) != 0) {
		free(c);
		return NULL;
	}
	struct stat st;
	c->owner = geteuid();
	if (c->path[0] && stat(c->path, &st) == 0)
		c->owner = st.st_uid;
	history_init(&c->hist, cfg->control.history > 0 ? (size_t)cfg->control.history : 1);
	buf_init(&c->render);
	ev_io_init(&c->accept_io, on_accept, c->fd, EV_READ);
	c->accept_io.data = c;
	ev_io_start(loop, &c->accept_io);
	ev_init(&c->accept_pause, on_accept_pause);
	c->accept_pause.data = c;
	ev_check_init(&c->reaper, on_reap);
	c->reaper.data = c;
	ev_check_start(loop, &c->reaper);
	ev_prepare_init(&c->flusher, on_flusher);
	c->flusher.data = c;
	ev_idle_init(&c->nudge, on_nudge);
	c->nudge.data = c;
	node_subscribe(n, on_node_event, c);
	log_info(MOD, "control socket %s", c->path[0] ? c->path : "(inherited)");
	return c;
}

const char *control_path(const struct control *c)
{
	return c->path;
}

/* ---- clients -------------------------------------------------------------- */

static void client_close(struct ctl_client *cl, const char *why)
{
	struct control *c = cl->ctl;

	if (cl->dead)
		return;
	cl->dead = true;
	/* Logged by the reaper: a log line here would publish an event in the
	 * middle of the fan-out that may have caused this close. */
	cl->gone_why = why;
	ev_io_stop(c->loop, &cl->rio);
	ev_io_stop(c->loop, &cl->wio);
	close(cl->fd);
	cl->fd = -1;
	/* Answers still to come are dropped; their handlers free the requests. */
	for (struct ctl_req *r = c->reqs; r; r = r->next)
		if (r->client == cl)
			r->client = NULL;
}

static void client_free(struct ctl_client *cl)
{
	framer_free(&cl->fr);
	buf_free(&cl->out);
	free(cl);
}

static void update_log_hook(struct control *c);

static void on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
	struct control *c = w->data;
	struct ctl_client **pp = &c->clients;
	bool any = false;

	while (*pp) {
		struct ctl_client *cl = *pp;
		if (cl->dead) {
			log_debug(MOD, "controller #%u gone: %s", cl->id, cl->gone_why);
			*pp = cl->next;
			c->nclients--;
			client_free(cl);
			any = true;
		} else {
			pp = &cl->next;
		}
	}
	if (any)
		update_log_hook(c);
}

static void client_flush(struct ctl_client *cl)
{
	struct control *c = cl->ctl;

	while (cl->out.len > 0) {
		ssize_t n = send(cl->fd, cl->out.data, cl->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			buf_consume(&cl->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(c->loop, &cl->wio);
			return;
		}
		client_close(cl, "write failed");
		return;
	}
	ev_io_stop(c->loop, &cl->wio);
}

/* Queue the notice that missed events were lost (it always fits: it is
 * only sent once the buffer has room). */
static void client_lagged(struct ctl_client *cl, uint64_t missed)
{
	char line[160];
	int n = snprintf(line, sizeof line,
			 "{\"jsonrpc\":\"2.0\",\"method\":\"lagged\",\"params\":{\"missed\":%llu,\"seq\":%llu}}\n",
			 (unsigned long long)missed, (unsigned long long)cl->ctl->seq);

	buf_append(&cl->out, line, (size_t)n);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *cl = w->data;

	client_flush(cl);
	if (!cl->dead && cl->missed > 0 && cl->out.len < (size_t)cl->ctl->cfg->control.max_output / 2) {
		/* Room again: say how many events were lost, then carry on. */
		log_warn(MOD, "controller #%u caught up after missing %llu event(s)", cl->id,
			 (unsigned long long)cl->missed);
		client_lagged(cl, cl->missed);
		cl->missed = 0;
		client_flush(cl);
	}
}

/* Queue a response: a controller that cannot take its answers is gone. */
static void client_send(struct ctl_client *cl, const char *data, size_t len)
{
	if (cl == NULL || cl->dead)
		return;
	/* One answer may be longer than max_output (peers of a big table, at
	 * most CTL_MAX_REPLY): what counts is what is already waiting. */
	if (cl->out.len > 0 && cl->out.len + len > (size_t)cl->ctl->cfg->control.max_output) {
		log_warn(MOD, "controller #%u does not read its answers (%zu bytes queued): disconnected",
			 cl->id, cl->out.len);
		client_close(cl, "output buffer full");
		return;
	}
	buf_append(&cl->out, data, len);
	client_flush(cl);
}

/* Queue an event: one the controller cannot take is counted, not kept. */
static void client_event(struct ctl_client *cl, const char *data, size_t len)
{
	if (cl->dead)
		return;
	if (cl->missed > 0 || cl->out.len + len > (size_t)cl->ctl->cfg->control.max_output) {
		cl->ctl->dropped++;
		if (cl->missed++ == 0) {
			log_warn(MOD, "controller #%u does not read its events (%zu bytes queued): "
				 "dropping them until it catches up", cl->id, cl->out.len);
			ev_io_start(cl->ctl->loop, &cl->wio);
		}
		return;
	}
	buf_append(&cl->out, data, len);
	/* A burst leaves in few writes: at the end of this loop iteration, or
	 * now once a good part of a buffer is queued, so that a reader that
	 * keeps up never lags behind a burst. */
	size_t now = (size_t)cl->ctl->cfg->control.max_output / 4;
	if (cl->out.len >= (now < EVENT_FLUSH_BYTES ? now : EVENT_FLUSH_BYTES))
		client_flush(cl);
	else if (!ev_is_active(&cl->ctl->flusher)) {
		ev_prepare_start(cl->ctl->loop, &cl->ctl->flusher);
		/* Queued from another prepare watcher, the flusher would run
		 * only after the loop slept: the idle watcher keeps it awake. */
		ev_idle_start(cl->ctl->loop, &cl->ctl->nudge);
	}
}

static void flush_events(struct control *c)
{
	ev_prepare_stop(c->loop, &c->flusher);
	ev_idle_stop(c->loop, &c->nudge);
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next)
		if (!cl->dead && cl->out.len > 0 && !ev_is_active(&cl->wio))
			client_flush(cl);
}

static void on_flusher(struct ev_loop *loop, ev_prepare *w, int revents)
{
	flush_events(w->data);
}

static void on_nudge(struct ev_loop *loop, ev_idle *w, int revents)
{
	flush_events(w->data);
}

/* ---- requests ------------------------------------------------------------ */

struct node *ctl_node(const struct ctl_req *req)
{
	return req->ctl->node;
}

static void req_free(struct ctl_req *req)
{
	*req->prevp = req->next;
	if (req->next)
		req->next->prevp = req->prevp;
	free(req->id_str);
	free(req->id_raw);
	free(req);
}

static void gen_id(yajl_gen g, const struct ctl_req *req)
{
	if (req->id_str)
		jg_str(g, req->id_str);
	else if (req->id_raw)
		yajl_gen_number(g, req->id_raw, strlen(req->id_raw));
	else
		jg_null(g);
}

static void begin_reply(yajl_gen g, const struct ctl_req *req)
{
	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	jg_str(g, "id");
	gen_id(g, req);
}

static yajl_gen reply_gen;

yajl_gen ctl_result_begin(struct ctl_req *req)
{
	if (reply_gen == NULL)
		reply_gen = jg_new();
	begin_reply(reply_gen, req);
	jg_str(reply_gen, "result");
	return reply_gen;
}

void ctl_result_end(struct ctl_req *req)
{
	struct buf out = BUF_INIT;

	jg_end_map(reply_gen);
	jg_finish(reply_gen, &out);
	if (!req->notification)
		client_send(req->client, out.data, out.len);
	buf_free(&out);
	req_free(req);
}

static void error_v(struct ctl_req *req, int code, const char *reason, const char *msg_id,
		    const char *fmt, va_list ap)
{
	char msg[512];
	yajl_gen g = jg_new();
	struct buf out = BUF_INIT;

	vsnprintf(msg, sizeof msg, fmt, ap);
	begin_reply(g, req);
	jg_str(g, "error");
	jg_map(g);
	JG_KINT(g, "code", code);
	JG_KSTR(g, "message", msg);
	if (reason) {
		jg_str(g, "data");
		jg_map(g);
		JG_KSTR(g, "reason", reason);
		if (msg_id)
			JG_KSTR(g, "msg_id", msg_id);
		jg_end_map(g);
	}
	jg_end_map(g);
	jg_end_map(g);
	jg_finish(g, &out);
	jg_free(g);
	if (!req->notification)
		client_send(req->client, out.data, out.len);
	buf_free(&out);
	req_free(req);
}

void ctl_error(struct ctl_req *req, int code, const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_v(req, code, reason, NULL, fmt, ap);
	va_end(ap);
}

void ctl_error_msg(struct ctl_req *req, int code, const char *reason, const char *msg_id,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_v(req, code, reason, msg_id, fmt, ap);
	va_end(ap);
}

static struct ctl_req *req_new(struct ctl_client *cl)
{
	struct ctl_req *req = xcalloc(1, sizeof *req);

	req->ctl = cl->ctl;
	req->client = cl;
	req->next = cl->ctl->reqs;
	if (req->next)
		req->next->prevp = &req->next;
	req->prevp = &cl->ctl->reqs;
	cl->ctl->reqs = req;
	return req;
}

static void dispatch(struct ctl_client *cl, const char *line, size_t len)
{
	char err[128];
	jval root = json_parse(line, len, err, sizeof err);
	struct ctl_req *req = req_new(cl);
	jval id, params;
	const char *method;

	if (root == NULL) {
		ctl_error(req, CTL_E_PARSE, "parse_error", "invalid JSON: %s", err);
		return;
	}
	if (json_obj_len(root) == 0 && !YAJL_IS_OBJECT(root)) {
		ctl_error(req, CTL_E_INVALID_REQUEST, "invalid_request", "a request is a JSON object");
		json_free(root);
		return;
	}
	id = json_get(root, "id");
	if (id == NULL)
		req->notification = true;
	else if (json_str(id))
		req->id_str = xstrdup(json_str(id));
	else if (YAJL_IS_NUMBER(id))
		req->id_raw = xstrdup(YAJL_GET_NUMBER(id));
	else if (!json_is_null(id)) {
		req->notification = false;
		ctl_error(req, CTL_E_INVALID_REQUEST, "invalid_request", "id must be a string or a number");
		json_free(root);
		return;
	}
	method = json_get_str(root, "method");
	params = json_get(root, "params");
	if (method == NULL) {
		/* Not a notification but no request at all: answered (id null). */
		req->notification = false;
		ctl_error(req, CTL_E_INVALID_REQUEST, "invalid_request", "missing \"method\"");
	} else if (params != NULL && !YAJL_IS_OBJECT(params)) {
		/* Every method takes named params: an array would be ignored. */
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "params must be an object");
	} else {
		const struct ctl_method *m = ctl_methods;
		while (m->name && strcmp(m->name, method) != 0)
			m++;
		if (m->name == NULL)
			ctl_error(req, CTL_E_NO_METHOD, "unknown_method", "unknown method \"%s\"", method);
		else
			m->fn(req, YAJL_IS_OBJECT(params) ? params : NULL);
	}
	json_free(root);
}

static int on_line(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct ctl_client *cl = ctx;

	if (ev == FRAMER_OVERFLOW) {
		struct ctl_req *req = req_new(cl);
		ctl_error(req, CTL_E_LIMIT, "line_too_long", "request longer than %d bytes",
			  CTL_MAX_LINE);
	} else if (len > 0) {
		dispatch(cl, line, len);
	}
	return cl->dead;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *cl = w->data;
	char data[16384];
	ssize_t n = recv(cl->fd, data, sizeof data, 0);

	if (n > 0) {
		framer_feed(&cl->fr, data, (size_t)n, on_line, cl);
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		client_close(cl, n == 0 ? "closed" : strerror(errno));
	}
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control *c = w->data;

	ev_io_start(loop, &c->accept_io);
}

/* Anyone up to control.max_clients; past it, ADMIN_SLOTS more for root
 * and the socket owner's uid, unless that uid itself holds half the slots
 * (then it is the runaway, not the administrator coming to stop it). */
static bool admitted(const struct control *c, uid_t uid)
{
	unsigned max = (unsigned)c->cfg->control.max_clients, mine = 0;

	if (c->nclients < max)
		return true;
	if (c->nclients >= max + ADMIN_SLOTS || (uid != 0 && uid != c->owner))
		return false;
	for (const struct ctl_client *cl = c->clients; cl; cl = cl->next)
		mine += !cl->dead && cl->uid == uid;
	return mine < (max + 1) / 2;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *c = w->data;

	for (int i = 0; i < 16; i++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cred = { 0, 0, 0 };
		socklen_t clen = sizeof cred;

		if (fd < 0) {
			/* As the peer listener does (node.c): out of descriptors or
			 * memory, the socket stays readable; pause, do not spin. */
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED || errno == EPROTO)
				return;
			log_warn(MOD, "accept: %s; pausing for %.1f s", strerror(errno), ACCEPT_PAUSE);
			ev_io_stop(loop, &c->accept_io);
			ev_timer_set(&c->accept_pause, ACCEPT_PAUSE, 0);
			ev_timer_start(loop, &c->accept_pause);
			return;
		}
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen);
		if (!admitted(c, cred.uid)) {
			static const char full[] =
				"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32003,"
				"\"message\":\"too many controllers\",\"data\":{\"reason\":\"too_many_clients\"}}}\n";
			log_warn(MOD, "refusing controller pid %d uid %u: %d already connected",
				 (int)cred.pid, (unsigned)cred.uid, c->nclients);
			(void)!send(fd, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		struct ctl_client *cl = xcalloc(1, sizeof *cl);
		cl->ctl = c;
		cl->fd = fd;
		cl->uid = cred.uid;
		cl->id = ++c->next_id;
		cl->log_level = LOGL_INFO;
		framer_init(&cl->fr, CTL_MAX_LINE);
		ev_io_init(&cl->rio, on_read, fd, EV_READ);
		ev_io_init(&cl->wio, on_write, fd, EV_WRITE);
		cl->rio.data = cl->wio.data = cl;
		ev_io_start(loop, &cl->rio);
		cl->next = c->clients;
		c->clients = cl;
		c->nclients++;
		log_info(MOD, "controller #%u connected (pid %d, uid %u, gid %u)", cl->id, (int)cred.pid,
			 (unsigned)cred.uid, (unsigned)cred.gid);
	}
}

void control_free(struct control *c)
{
	if (c == NULL)
		return;
	log_set_hook(NULL, NULL, LOGL_ERROR);
	node_unsubscribe(c->node, on_node_event, c);
	/* Requests still waiting (an ACK, the rendezvous) are answered now: the
	 * node is freed next and drops its callbacks unseen (node.h). */
	while (c->reqs)
		ctl_error(c->reqs, CTL_E_STOPPING, "stopping", "the daemon is stopping");
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next) {
		/* Last words (the shutdown answer, final events), if they fit now. */
		if (!cl->dead && cl->out.len > 0)
			(void)!send(cl->fd, cl->out.data, cl->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		client_close(cl, "daemon stopping");
	}
	on_reap(c->loop, &c->reaper, 0);
	ev_check_stop(c->loop, &c->reaper);
	ev_prepare_stop(c->loop, &c->flusher);
	ev_idle_stop(c->loop, &c->nudge);
	ev_io_stop(c->loop, &c->accept_io);
	ev_timer_stop(c->loop, &c->accept_pause);
	close(c->fd);
	if (c->own_path)
		unlink(c->path);
	history_free(&c->hist);
	buf_free(&c->render);
	free(c);
	jg_free(reply_gen);
	reply_gen = NULL;
}

/* ---- events ------------------------------------------------------------------ */

static const char *const class_names[] = { "message", "ack", "peer", "registration", "log" };

unsigned event_class_parse(const char *name)
{
	for (unsigned i = 0; i < sizeof class_names / sizeof *class_names; i++)
		if (strcmp(name, class_names[i]) == 0)
			return 1u << i;
	if (strcmp(name, "all") == 0 || strcmp(name, "*") == 0)
		return EVC_ALL;
	return 0;
}

const char *event_class_name(unsigned bit)
{
	for (unsigned i = 0; i < sizeof class_names / sizeof *class_names; i++)
		if (bit == 1u << i)
			return class_names[i];
	return "?";
}

static unsigned class_of(enum node_event_type t)
{
	switch (t) {
	case EV_MESSAGE:
	case EV_PUB: return EVC_MESSAGE;
	case EV_ACK:
	case EV_ACK_TIMEOUT:
	case EV_EXPIRED: return EVC_ACK;
	case EV_REGISTRATION: return EVC_REGISTRATION;
	default: return EVC_PEER;
	}
}

static bool wants(const struct ctl_client *cl, const struct hist_event *e)
{
	return (cl->classes & e->cls) && (e->cls != EVC_LOG || e->level >= cl->log_level);
}

/* Kept in history; rendered as JSON only if a controller takes it. */
static void publish(struct control *c, const struct hist_event *e)
{
	bool rendered = false;

	c->publishing = true;
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next) {
		if (cl->dead || !wants(cl, e))
			continue;
		if (cl->missed > 0) {
			/* Lagging: it loses this one too (client_event would drop
			 * it), and no JSON is made for it. */
			c->dropped++;
			cl->missed++;
			continue;
		}
		if (!rendered) {
			buf_reset(&c->render);
			history_render(e, &c->render);
			rendered = true;
		}
		client_event(cl, c->render.data, c->render.len);
	}
	c->publishing = false;
}

static struct hist_event *event_new(struct control *c, int kind, unsigned cls,
				    const char *const *strs, int n)
{
	struct hist_event *e = history_add(&c->hist, ++c->seq, strs, n);

	e->kind = kind;
	e->cls = cls;
	iso8601_now(e->at, true);
	return e;
}

static void on_node_event(void *ctx, const struct node_event *ev)
{
	struct control *c = ctx;
	struct hist_event *e;

	switch (ev->type) {
	case EV_MESSAGE:
	case EV_PUB: {
		const char *to = ev->type == EV_MESSAGE && ev->to == NULL ? node_id(c->node) : ev->to;
		const char *strs[5] = { ev->peer_id, to, ev->text, ev->msg_id, ev->fingerprint };
		e = event_new(c, ev->type, class_of(ev->type), strs, 5);
		e->flag = ev->src_mismatch;
		e->flag2 = ev->dst_mismatch;
		e->identity = ev->identity;
		e->num = ev->inbox_id;
		break;
	}
	case EV_ACK:
	case EV_ACK_TIMEOUT: {
		const char *strs[2] = { ev->peer_id, ev->msg_id };
		e = event_new(c, ev->type, class_of(ev->type), strs, 2);
		e->rtt_ms = ev->rtt_ms;
		e->flag = ev->late;
		break;
	}
	case EV_REGISTRATION: {
		const char *strs[2] = { rdv_reg_state_name(ev->reg->state),
					ev->reg->last_error[0] ? ev->reg->last_error : NULL };
		e = event_new(c, ev->type, class_of(ev->type), strs, 2);
		e->num = ev->reg->ttl;
		break;
	}
	case EV_IDENTITY_NEW:
	case EV_IDENTITY_CHANGED:
	case EV_IMPOSTOR: {
		const char *strs[4] = { ev->peer_id, ev->address,
					ev->type == EV_IMPOSTOR ? ev->text : ev->fingerprint,
					ev->pinned };
		e = event_new(c, ev->type, class_of(ev->type), strs, 4);
		break;
	}
	default: {
		const char *strs[2] = { ev->peer_id, ev->text };
		e = event_new(c, ev->type, class_of(ev->type), strs, 2);
		e->flag = ev->reconnected;
		e->identity = ev->identity;
		break;
	}
	}
	publish(c, e);
}

static struct control *log_ctl;

static void on_log(void *ctx, enum log_level l, const char *module, const char *text)
{
	struct control *c = ctx;

	/* A line logged during a fan-out (a controller falling behind) goes to
	 * the log only: as an event it would overtake the one being sent. */
	if (c->publishing)
		return;
	const char *strs[3] = { log_level_name(l), module, text };
	struct hist_event *e = event_new(c, HIST_LOG, EVC_LOG, strs, 3);
	e->level = l;
	publish(c, e);
}

/* The log hook runs only while someone listens, at the lowest level asked. */
static void update_log_hook(struct control *c)
{
	enum log_level min = LOGL_ERROR;
	bool any = false;

	for (struct ctl_client *cl = c->clients; cl; cl = cl->next)
		if (!cl->dead && (cl->classes & EVC_LOG)) {
			any = true;
			if (cl->log_level < min)
				min = cl->log_level;
		}
	log_ctl = any ? c : NULL;
	log_set_hook(any ? on_log : NULL, c, min);
}

int ctl_subscribe(struct ctl_req *req, unsigned classes, bool has_since, uint64_t since,
		  enum log_level log_level)
{
	struct ctl_client *cl = req->client;
	struct control *c = req->ctl;

	if (cl == NULL)
		return 0;
	cl->classes |= classes;
	if (classes & EVC_LOG)
		cl->log_level = log_level;
	update_log_hook(c);
	if (!has_since)
		return 0;
	/* Replay what history still holds after `since`; say what it lost. */
	uint64_t oldest = c->hist.len ? history_at(&c->hist, 0)->seq : c->seq + 1;
	/* Events older than the history are gone: say how many (of any class:
	 * theirs are no longer known), then replay what is held. */
	if (since + 1 < oldest && cl->missed == 0)
		client_lagged(cl, oldest - since - 1);
	for (size_t i = 0; i < c->hist.len; i++) {
		const struct hist_event *e = history_at(&c->hist, i);
		if (e->seq > since && (classes & e->cls) && wants(cl, e)) {
			buf_reset(&c->render);
			history_render(e, &c->render);
			client_event(cl, c->render.data, c->render.len);
		}
	}
	return 0;
}

void ctl_unsubscribe(struct ctl_req *req, unsigned classes)
{
	if (req->client)
		req->client->classes &= ~classes;
	update_log_hook(req->ctl);
}

void ctl_replay_message(struct ctl_req *req, const struct stored_msg *m)
{
	struct control *c = req->ctl;
	static yajl_gen g;
	struct buf b = BUF_INIT;

	if (req->client == NULL)
		return;
	if (g == NULL)
		g = jg_new();
	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	JG_KSTR(g, "method", "event");
	jg_str(g, "params");
	jg_map(g);
	/* Not a new event: the sequence number of the stream so far. */
	JG_KINT(g, "seq", (long long)c->seq);
	JG_KSTR(g, "type", m->pub ? "pub" : "message");
	ctl_gen_time(g, "at", m->at);
	ctl_gen_stored_fields(g, m, node_id(c->node));
	JG_KINT(g, "id", m->id);
	JG_KBOOL(g, "read", m->read);
	JG_KBOOL(g, "replayed", true);
	jg_end_map(g);
	jg_end_map(g);
	jg_finish(g, &b);
	client_event(req->client, b.data, b.len);
	buf_free(&b);
}

uint64_t ctl_last_seq(const struct control *c)
{
	return c->seq;
}

void ctl_stop_node(struct ctl_req *req)
{
	req->ctl->hooks.stop(req->ctl->hooks.ctx);
}

int ctl_reload(struct ctl_req *req, char *err, size_t errlen, char *note, size_t notelen)
{
	if (req->ctl->hooks.reload == NULL) {
		snprintf(err, errlen, "reload is not available");
		return -1;
	}
	return req->ctl->hooks.reload(req->ctl->hooks.ctx, err, errlen, note, notelen);
}

void control_stats(const struct control *c, unsigned *clients, uint64_t *dropped)
{
	*clients = c->nclients;
	*dropped = c->dropped;
}
