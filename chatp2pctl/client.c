#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "xmalloc.h"

struct ctl_pending {
	struct ctl_pending *next;
	long long id;
	ctl_reply_fn fn;
	void *ctx;
};

double ctl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct ctl_client *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The first failure is the one worth reporting; later ones are its echoes. */
static int fail(struct ctl_client *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->status != EX_OK)
		return c->status;
	c->status = status;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return status;
}

/* Permission denied: say which group grants access, from the socket's (or,
 * when even that cannot be looked at, its directory's) group. */
static int perm_denied(struct ctl_client *c, const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
	struct stat st;
	struct group *gr;
	char *slash;

	if (stat(path, &st) != 0) {
		snprintf(dir, sizeof dir, "%s", path);
		slash = strrchr(dir, '/');
		if (slash == NULL || stat(slash == dir ? "/" : (*slash = '\0', dir), &st) != 0)
			return fail(c, EX_PERM, "%s: permission denied", path);
	}
	gr = getgrgid(st.st_gid);
	if (gr == NULL)
		return fail(c, EX_PERM, "%s: permission denied (access is for group %u: ask to be "
			    "added to it)", path, (unsigned)st.st_gid);
	/* Adding a user to root's group is no advice: root, or a group of
	 * the daemon's own (the systemd units run it as chatp2p). */
	if (st.st_gid == 0)
		return fail(c, EX_PERM, "%s: permission denied; only group 'root' may connect: run "
			    "chatp2pctl as root (sudo), or run chatp2pd as a user with a group of its own "
			    "(systemd/chatp2pd.service: User=chatp2p; its members may connect)", path);
	return fail(c, EX_PERM, "%s: permission denied; members of group '%s' may connect "
		    "(sudo usermod -aG %s $USER, then log in again)", path, gr->gr_name, gr->gr_name);
}

int ctl_open(struct ctl_client *c, const char *path, double timeout_s)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->next_id = 1;
	framer_init(&c->fr, CTL_MAX_REPLY);
	if (strlen(path) >= sizeof sun.sun_path)
		return fail(c, EX_USAGE, "socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(c, EX_UNREACHABLE, "socket: %s", strerror(errno));
	if (timeout_s > 0) {
		/* Linux bounds a blocking AF_UNIX connect (full backlog of a
		 * stuck daemon) by the send timeout. */
		struct timeval tv = { (time_t)timeout_s,
				      (suseconds_t)((timeout_s - floor(timeout_s)) * 1e6) };
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	while (connect(c->fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EACCES || e == EPERM)
			return perm_denied(c, path);
		if (e == EAGAIN || e == EINPROGRESS)
			return fail(c, EX_TIMEOUT, "%s: the daemon does not accept connections", path);
		if (e == ENOENT || e == ECONNREFUSED)
			return fail(c, EX_UNREACHABLE, "cannot reach chatp2pd at %s: %s (is it running? "
				    "start it with 'chatp2pd --name NAME' or 'systemctl start chatp2pd')",
				    path, strerror(e));
		return fail(c, EX_UNREACHABLE, "cannot reach chatp2pd at %s: %s", path, strerror(e));
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	return EX_OK;
}

/* Every pending callback learns the connection is gone (reply NULL). */
static void drop_pending(struct ctl_client *c)
{
	while (c->pending) {
		struct ctl_pending *p = c->pending;
		c->pending = p->next;
		if (p->fn)
			p->fn(p->ctx, NULL);
		free(p);
	}
}

void ctl_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	fail(c, EX_UNREACHABLE, "connection closed");
	drop_pending(c);
	framer_free(&c->fr);
	buf_free(&c->out);
}

size_t ctl_pending_count(const struct ctl_client *c)
{
	size_t n = 0;

	for (const struct ctl_pending *p = c->pending; p; p = p->next)
		n++;
	return n;
}

static void flush_out(struct ctl_client *c)
{
	while (c->out.len > 0 && !c->write_failed) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		} else {
			/* Reading may still tell why (too many controllers). */
			c->write_failed = true;
			buf_reset(&c->out);
		}
	}
}

long long ctl_request(struct ctl_client *c, const char *method, jval params, ctl_reply_fn fn,
		      void *ctx)
{
	yajl_gen g;
	struct ctl_pending *p, **pp;
	long long id;

	if (c->status != EX_OK || c->fd < 0)
		return -1;
	id = c->next_id++;
	g = jg_new();
	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	JG_KINT(g, "id", id);
	jg_str(g, "method");
	if (jg_str(g, method) != 0) {
		jg_free(g);
		return -1;
	}
	if (params) {
		jg_str(g, "params");
		jg_value(g, params);
	}
	jg_end_map(g);
	jg_finish(g, &c->out);
	jg_free(g);
	p = xcalloc(1, sizeof *p);
	p->id = id;
	p->fn = fn;
	p->ctx = ctx;
	/* Appended: answers mostly come back in order. */
	for (pp = &c->pending; *pp; pp = &(*pp)->next)
		;
	*pp = p;
	flush_out(c);
	return id;
}

short ctl_poll_events(const struct ctl_client *c)
{
	return (short)(POLLIN | (c->out.len > 0 && !c->write_failed ? POLLOUT : 0));
}

static void dispatch_reply(struct ctl_client *c, jval msg, jval id)
{
	long long n;
	struct ctl_pending **pp;

	if (json_is_null(id)) {
		/* An error about the connection itself (too many controllers). */
		char line[512];
		ctl_reply_status(msg, line, sizeof line);
		fail(c, EX_DAEMON, "%s", line);
		json_free(msg);
		return;
	}
	if (!json_int(id, &n)) {
		json_free(msg);
		return;
	}
	for (pp = &c->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == n) {
			struct ctl_pending *p = *pp;
			*pp = p->next;
			if (p->fn)
				p->fn(p->ctx, msg);
			else
				json_free(msg);
			free(p);
			return;
		}
	}
	/* Not one of ours: nothing to do with it. */
	json_free(msg);
}

static int on_line(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct ctl_client *c = ctx;
	char err[128];
	jval msg, id;

	if (ev == FRAMER_OVERFLOW)
		return fail(c, EX_PROTO, "protocol error: a line from the daemon is longer than %d bytes",
			    CTL_MAX_REPLY);
	if (len == 0)
		return 0;
	if ((msg = json_parse(line, len, err, sizeof err)) == NULL)
		return fail(c, EX_PROTO, "protocol error: the daemon sent invalid JSON (%s)", err);
	if (!YAJL_IS_OBJECT(msg)) {
		json_free(msg);
		return fail(c, EX_PROTO, "protocol error: the daemon sent a non-object");
	}
	id = json_get(msg, "id");
	if (json_get_str(msg, "method") != NULL && id == NULL) {
		if (c->on_note)
			c->on_note(c->note_ctx, msg);
		json_free(msg);
	} else if (id != NULL && (json_get(msg, "result") || YAJL_IS_OBJECT(json_get(msg, "error")))) {
		dispatch_reply(c, msg, id);
	} else {
		json_free(msg);
		return fail(c, EX_PROTO,
			    "protocol error: the daemon sent neither an answer nor a notification");
	}
	return c->status != EX_OK;
}

static void read_in(struct ctl_client *c)
{
	char data[16384];

	for (int i = 0; i < 16 && c->status == EX_OK; i++) {
		ssize_t n = recv(c->fd, data, sizeof data, MSG_DONTWAIT);
		if (n > 0) {
			framer_feed(&c->fr, data, (size_t)n, on_line, c);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == 0 && framer_pending(&c->fr, NULL) > 0) {
			fail(c, EX_PROTO, "protocol error: the daemon closed the connection mid-line");
		} else if (n == 0) {
			/* Gone between lines: it stopped or crashed, and may be
			 * back (exit 2); a half line above is garbage (exit 6). */
			c->eof = c->status == EX_OK;
			fail(c, EX_UNREACHABLE, ctl_pending_count(c) > 0
			     ? "the daemon closed the connection before answering"
			     : "the daemon closed the connection (the node stopped?)");
		} else {
			fail(c, EX_UNREACHABLE, "the daemon closed the connection: %s", strerror(errno));
		}
	}
}

int ctl_handle(struct ctl_client *c, short revents)
{
	if (c->status != EX_OK)
		return c->status;
	if (revents & POLLOUT)
		flush_out(c);
	if (revents & (POLLIN | POLLHUP | POLLERR))
		read_in(c);
	if (c->status != EX_OK)
		drop_pending(c);
	return c->status;
}

int ctl_run(struct ctl_client *c, const bool *done, double timeout_s, volatile sig_atomic_t *stop,
	    int hup_fd)
{
	double deadline = timeout_s > 0 ? ctl_now() + timeout_s : 0;
	sigset_t block, orig;
	int rc = -1;

	if (stop) {
		/* Blocked except inside ppoll: a signal cannot slip in between
		 * the check of *stop and the wait. */
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigaddset(&block, SIGTERM);
		sigaddset(&block, SIGHUP);
		sigprocmask(SIG_BLOCK, &block, &orig);
	}
	while (rc < 0 && c->status == EX_OK && !(done && *done)) {
		struct pollfd pfd[2] = {
			{ c->fd, ctl_poll_events(c), 0 },
			{ hup_fd, 0, 0 }, /* no events asked: HUP and ERR come anyway; -1 is skipped */
		};
		struct timespec ts, *tsp = NULL;

		if (stop && *stop) {
			rc = EX_OK;
			break;
		}
		if (deadline > 0) {
			double left = deadline - ctl_now();
			if (left <= 0) {
				rc = EX_TIMEOUT;
				break;
			}
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tsp = &ts;
		}
		int n = ppoll(pfd, 2, tsp, stop ? &orig : NULL);
		if (n < 0 && errno != EINTR)
			rc = fail(c, EX_UNREACHABLE, "poll: %s", strerror(errno));
		else if (n > 0 && (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)))
			*stop = 1; /* its reader is gone: so is our purpose */
		else if (n > 0)
			ctl_handle(c, pfd[0].revents);
	}
	if (stop)
		sigprocmask(SIG_SETMASK, &orig, NULL);
	if (rc >= 0)
		return rc;
	return done && *done ? EX_OK : c->status;
}

struct call_ctx {
	bool done;
	jval reply;
};

static void on_call_reply(void *ctx, jval reply)
{
	struct call_ctx *cc = ctx;

	cc->done = true;
	cc->reply = reply;
}

int ctl_call(struct ctl_client *c, const char *method, jval params, double timeout_s,
	     jval *reply)
{
	struct call_ctx cc = { false, NULL };
	long long id = ctl_request(c, method, params, on_call_reply, &cc);
	int rc;

	*reply = NULL;
	if (id < 0)
		return c->status != EX_OK ? c->status : EX_USAGE;
	rc = ctl_run(c, &cc.done, timeout_s, NULL, -1);
	if (rc == EX_TIMEOUT) {
		/* Forget the request: a late answer is dropped unread. */
		for (struct ctl_pending *p = c->pending; p; p = p->next)
			if (p->id == id)
				p->fn = NULL;
		snprintf(c->err, sizeof c->err, "no answer from the daemon within %g s", timeout_s);
		return EX_TIMEOUT;
	}
	if (rc != EX_OK || cc.reply == NULL)
		return c->status != EX_OK ? c->status : EX_PROTO;
	*reply = cc.reply;
	return EX_OK;
}

jval ctl_result(jval reply)
{
	return json_get(reply, "error") ? NULL : json_get(reply, "result");
}

int ctl_reply_status(jval reply, char *msg, size_t len)
{
	jval e = json_get(reply, "error");
	const char *text, *reason;
	long long code = 0;

	if (msg && len)
		msg[0] = '\0';
	if (e == NULL)
		return json_get(reply, "result") ? EX_OK : EX_PROTO;
	json_int(json_get(e, "code"), &code);
	text = json_get_str(e, "message");
	reason = json_get_str(json_get(e, "data"), "reason");
	if (msg && len) {
		if (reason)
			snprintf(msg, len, "%s (%s)", text ? text : "error", reason);
		else
			snprintf(msg, len, "%s (code %lld)", text ? text : "error", code);
	}
	/* Delivery not confirmed is what a script branches on. */
	if (code == CTL_E_DELIVERY ||
	    (reason && (strcmp(reason, "ack_timeout") == 0 || strcmp(reason, "not_connected") == 0 ||
			strcmp(reason, "unknown_peer") == 0)))
		return EX_TIMEOUT;
	return EX_DAEMON;
}
