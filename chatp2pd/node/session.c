#include "node/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net/tls.h"
#include "timeutil.h"
#include "xmalloc.h"

#define MOD "Peer"

static void on_ping_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_pong_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_probe_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* The connection's callbacks: what it hears comes up to the session. */
static void on_connected(void *ctx, struct conn *c);
static void on_line(void *ctx, struct conn *c, const char *text, size_t len);
static void on_overflow(void *ctx, struct conn *c);
static void on_wrote(void *ctx, struct conn *c, const char *line, size_t len);
static void on_first_written(void *ctx, struct conn *c);
static void on_deadline(void *ctx, struct conn *c);
static void on_closed(void *ctx, struct conn *c, const char *reason);
static void on_drained(void *ctx, struct conn *c);
static void on_secured(void *ctx, struct conn *c, const char *fingerprint);
static void established(struct session *s, const struct pmsg *m);

static const struct conn_cbs conn_cbs = {
	.connected = on_connected,
	.line = on_line,
	.overflow = on_overflow,
	.wrote = on_wrote,
	.first_written = on_first_written,
	.deadline = on_deadline,
	.drained = on_drained,
	.secured = on_secured,
	.closed = on_closed,
};

const char *session_identity_name(enum session_identity id)
{
	switch (id) {
	case ID_UNBACKED: return "unbacked";
	case ID_BACKED: return "backed";
	case ID_PINNED: return "pinned";
	case ID_VERIFIED: return "verified";
	}
	return "?";
}

const char *session_state_name(enum session_state st)
{
	switch (st) {
	case SESSION_CONNECTING: return "connecting";
	case SESSION_HANDSHAKE: return "handshake";
	case SESSION_ESTABLISHED: return "established";
	case SESSION_CLOSED: return "closed";
	}
	return "?";
}

const char *session_wmode_name(enum session_wmode m)
{
	switch (m) {
	case WM_PIPELINE: return "pipeline";
	case WM_PROBING: return "probing";
	case WM_LEARNED: return "learned";
	case WM_ONE_PER_WRITE: return "one-per-write";
	}
	return "?";
}

static struct session *session_new(const struct session_env *env, enum conn_dir dir)
{
	struct session *s = xcalloc(1, sizeof *s);

	s->env = env;
	s->dir = dir;
	s->wmode = WM_ONE_PER_WRITE;
	ev_init(&s->ping_timer, on_ping_timer);
	ev_init(&s->pong_timer, on_pong_timeout);
	ev_init(&s->probe_timer, on_probe_timeout);
	s->ping_timer.data = s->pong_timer.data = s->probe_timer.data = s;
	return s;
}

struct session *session_dial(const struct session_env *env, const char *peer_id, const char *ip,
			     int port, char *err, size_t errlen)
{
	struct session *s = session_new(env, CONN_OUT);

	s->conn = conn_dial(env->loop, env->cfg, ip, port, &conn_cbs, s, err, errlen);
	if (s->conn == NULL) {
		free(s);
		return NULL;
	}
	s->state = SESSION_CONNECTING;
	snprintf(s->peer_id, sizeof s->peer_id, "%s", peer_id);
	snprintf(s->conn->name, sizeof s->conn->name, "%.79s", peer_id);
	snprintf(s->addr, sizeof s->addr, "%s", s->conn->addr);
	return s;
}

struct session *session_accept(const struct session_env *env, int fd,
			       const struct sockaddr_storage *sa)
{
	struct session *s = session_new(env, CONN_IN);

	s->conn = conn_accept(env->loop, env->cfg, fd, sa, &conn_cbs, s);
	s->state = SESSION_HANDSHAKE;
	snprintf(s->addr, sizeof s->addr, "%s", s->conn->addr);
	conn_arm_deadline(s->conn, env->cfg->limits.handshake_timeout);
	return s;
}

/* ---- what the others see ------------------------------------------------ */

size_t session_queued_bytes(const struct session *s)
{
	return s->conn ? conn_queued_bytes(s->conn) : 0;
}

bool session_room(struct session *s, size_t len)
{
	return s->conn != NULL && conn_room(s->conn, len);
}

uint64_t session_serial(const struct session *s)
{
	return s->conn ? s->conn->serial : 0;
}

uint64_t session_mark(const struct session *s)
{
	return s->conn ? conn_mark(s->conn) : 0;
}

bool session_written(const struct session *s, uint64_t mark)
{
	return s->conn == NULL || conn_written(s->conn, mark);
}

uint64_t session_tx_msgs(const struct session *s)
{
	return s->conn ? s->conn->tx_msgs : 0;
}

double session_last_rx(const struct session *s)
{
	return s->conn ? s->conn->last_rx : 0;
}

bool session_closing(const struct session *s)
{
	return s->conn == NULL || s->conn->close_after_flush;
}

int session_fd(const struct session *s)
{
	return s->conn ? s->conn->fd : -1;
}

/* ---- closing ------------------------------------------------------------ */

void session_close(struct session *s, const char *reason)
{
	if (s->conn)
		conn_close(s->conn, reason); /* on_closed tells the owner */
}

void session_reap(struct session *s)
{
	if (s->state != SESSION_CLOSED || s->busy > 0)
		return;
	free(s);
}

static void on_closed(void *ctx, struct conn *c, const char *reason)
{
	struct session *s = ctx;
	struct ev_loop *loop = s->env->loop;

	s->peer_closed = c->peer_closed;
	if (s->tls_started && s->fingerprint[0] == '\0' && (c->tls_failed || c->peer_closed)) {
		/* STARTTLS and no proved key: the node hears of it (a pinned
		 * peer_id whose handshake fails is refused as an impostor). */
		s->busy++;
		s->env->cbs->identity(s->env->ctx, s, NULL, reason);
		s->busy--;
	}
	s->conn = NULL; /* freed by conn.c after this */
	s->state = SESSION_CLOSED;
	ev_timer_stop(loop, &s->ping_timer);
	ev_timer_stop(loop, &s->pong_timer);
	ev_timer_stop(loop, &s->probe_timer);
	s->busy++;
	s->env->cbs->closed(s->env->ctx, s, reason);
	s->busy--;
	session_reap(s);
}

static void on_drained(void *ctx, struct conn *c)
{
	struct session *s = ctx;

	if (s->state != SESSION_ESTABLISHED || !s->env->cbs->drained)
		return;
	s->busy++;
	s->env->cbs->drained(s->env->ctx, s);
	s->busy--;
	session_reap(s);
}

static void on_deadline(void *ctx, struct conn *c)
{
	struct session *s = ctx;

	switch (s->state) {
	case SESSION_CONNECTING:
	case SESSION_HANDSHAKE:
		conn_close(c, s->dir == CONN_OUT ? "no HELLO_OK in time" : "no HELLO in time");
		break;
	case SESSION_ESTABLISHED:
		/* BYE_OK wait, or the grace of a duplicate connection. */
		conn_close(c, s->bye_sent ? "no BYE_OK in time" : "duplicate connection closed");
		break;
	case SESSION_CLOSED:
		break;
	}
}

void session_arm_deadline(struct session *s, double after)
{
	if (s->conn)
		conn_arm_deadline(s->conn, after);
}

void session_disarm_deadline(struct session *s)
{
	if (s->conn)
		conn_disarm_deadline(s->conn);
}

/* ---- output --------------------------------------------------------------- */

/* The type of a line we built ({"type":"SEND",…}). */
static enum pmsg_type line_type(const char *line, size_t len)
{
	static const char pre[] = "{\"type\":\"";
	const char *p, *q;

	if (len < sizeof pre || memcmp(line, pre, sizeof pre - 1) != 0)
		return PM_UNKNOWN;
	p = line + sizeof pre - 1;
	q = memchr(p, '"', len - (size_t)(p - line));
	if (q == NULL)
		return PM_UNKNOWN;
	for (int t = 1; t < PM__COUNT; t++) {
		const char *name = pmsg_type_name((enum pmsg_type)t);
		if (strlen(name) == (size_t)(q - p) && memcmp(name, p, (size_t)(q - p)) == 0)
			return (enum pmsg_type)t;
	}
	return PM_UNKNOWN;
}

static void on_wrote(void *ctx, struct conn *c, const char *line, size_t len)
{
	struct session *s = ctx;

	s->env->cbs->traffic(s->env->ctx, s, line_type(line, len), len, true);
}

int session_write(struct session *s, const struct buf *line, enum conn_kind kind,
		  const char *msg_id)
{
	if (s->conn == NULL)
		return -1;
	s->busy++;
	conn_write(s->conn, line, kind, msg_id);
	s->busy--;
	if (s->state == SESSION_CLOSED) {
		session_reap(s);
		return -1;
	}
	return 0;
}

void session_send_done(struct session *s, const char *msg_id)
{
	if (s->conn)
		conn_send_done(s->conn, msg_id);
}

void session_flush_now(struct session *s)
{
	if (s->conn)
		conn_flush_now(s->conn);
}

/* ---- the pipeline probe ----------------------------------------------------- */

/* Two PINGs in one write, ahead of everything queued (PROTOCOL.md §4). */
static void start_probe(struct session *s)
{
	struct buf two = BUF_INIT;

	s->wmode = WM_PROBING;
	for (int i = 0; i < 2; i++) {
		msgid_new(s->probe_id[i]);
		s->probe_pong[i] = false;
		pmsg_build_ping(&two, s->probe_id[i]);
	}
	conn_write_first(s->conn, &two, 2, s->probe_id[0]);
	buf_free(&two);
}

static void on_first_written(void *ctx, struct conn *c)
{
	struct session *s = ctx;

	s->probe_sent = mono_now();
	ev_timer_set(&s->probe_timer, s->env->cfg->keepalive.ping_timeout, 0);
	ev_timer_start(s->env->loop, &s->probe_timer);
}

static void on_probe_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	if (s->wmode != WM_PROBING)
		return;
	/* One PONG (or none): this peer loses what shares a segment.  The lost
	 * PING is no keep-alive failure: keep-alive has PINGs of its own. */
	s->wmode = WM_ONE_PER_WRITE;
	log_info(MOD, "%s: %d of 2 PINGs sent together answered: one message per write",
		 s->peer_id, (int)s->probe_pong[0] + (int)s->probe_pong[1]);
}

/* A PONG for one of the probe's PINGs?  Both answered: learned. */
static bool probe_pong(struct session *s, const char *msg_id)
{
	int i;

	if (s->wmode != WM_PROBING || msg_id == NULL)
		return false;
	for (i = 0; i < 2 && strcmp(s->probe_id[i], msg_id) != 0; i++)
		;
	if (i == 2)
		return false;
	if (!s->probe_pong[0] && !s->probe_pong[1])
		s->env->cbs->rtt(s->env->ctx, s, (mono_now() - s->probe_sent) * 1000.0);
	s->probe_pong[i] = true;
	if (s->probe_pong[0] && s->probe_pong[1]) {
		ev_timer_stop(s->env->loop, &s->probe_timer);
		log_debug(MOD, "%s: both PINGs of one write answered: batched writes", s->peer_id);
		s->wmode = WM_LEARNED;
		conn_go_batched(s->conn);
	} else {
		conn_answered(s->conn, s->conn->await_id);
	}
	return true;
}

/* ---- keep-alive --------------------------------------------------------- */

static void start_keepalive(struct session *s)
{
	const struct config *cfg = s->env->cfg;

	ev_timer_set(&s->ping_timer, cfg->keepalive.ping_interval, cfg->keepalive.ping_interval);
	ev_timer_start(s->env->loop, &s->ping_timer);
}

void session_reconfigure(struct session *s)
{
	s->ping_timer.repeat = s->env->cfg->keepalive.ping_interval;
	if (ev_is_active(&s->ping_timer))
		ev_timer_again(s->env->loop, &s->ping_timer);
}

static void ping_now(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	struct buf line = BUF_INIT;

	if (mono_now() - s->conn->last_rx > cfg->network.connection_timeout) {
		conn_close(s->conn, "idle: nothing received within connection_timeout");
		return;
	}
	if (s->ping_out)
		return; /* the pong timer is still judging the last one */
	msgid_new(s->ping_id);
	s->ping_sent = mono_now();
	s->ping_out = true;
	pmsg_build_ping(&line, s->ping_id);
	if (session_write(s, &line, CK_PING, s->ping_id) == 0) {
		ev_timer_set(&s->pong_timer, cfg->keepalive.ping_timeout, 0);
		ev_timer_start(s->env->loop, &s->pong_timer);
	}
	buf_free(&line);
}

static void on_ping_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	s->busy++;
	ping_now(s);
	s->busy--;
	session_reap(s);
}

void session_probe(struct session *s)
{
	if (s->state != SESSION_ESTABLISHED || s->probing)
		return;
	s->probing = true;
	if (s->ping_out)
		return; /* the pong timer already running judges it */
	s->busy++;
	ping_now(s);
	s->busy--;
	session_reap(s);
}

static void on_pong_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;
	int max = s->env->cfg->keepalive.max_ping_failures;

	s->ping_out = false;
	s->ping_failures++;
	log_debug(MOD, "%s: PING %d/%d unanswered", s->peer_id, s->ping_failures, max);
	if (s->probing) {
		/* Another connection claims this peer and this one is silent:
		 * proven dead, the other one takes over (the owner's closed). */
		session_close(s, "keepalive: PING unanswered while another connection claims the peer");
		return;
	}
	if (s->ping_failures >= max) {
		char why[96];
		snprintf(why, sizeof why, "keepalive: %d PINGs unanswered", s->ping_failures);
		session_close(s, why);
	}
}

static void on_pong(struct session *s, const struct pmsg *m)
{
	/* Any PONG proves the peer alive; only ours by msg_id gives an RTT. */
	s->ping_failures = 0;
	if (s->probing) {
		s->probing = false;
		s->env->cbs->alive(s->env->ctx, s);
		if (s->state == SESSION_CLOSED)
			return;
	}
	if (probe_pong(s, m->msg_id))
		return;
	conn_answered(s->conn, m->msg_id);
	if (s->ping_out && m->msg_id && strcmp(m->msg_id, s->ping_id) == 0) {
		double ms = (mono_now() - s->ping_sent) * 1000.0;
		s->ping_out = false;
		ev_timer_stop(s->env->loop, &s->pong_timer);
		s->env->cbs->rtt(s->env->ctx, s, ms);
	} else {
		s->env->cbs->pong(s->env->ctx, s, m->msg_id); /* an on-demand ping's */
	}
}

/* ---- TLS (PROTOCOL.md §5.2) ---------------------------------------------- */

/* security.tls is read when used: a reload applies to the next handshakes. */
static bool tls_wanted(const struct session *s)
{
	return s->env->tls != NULL && strcmp(s->env->cfg->security.tls, "off") != 0;
}

/* The session goes on in plaintext: may it?  (Not for a pinned peer_id,
 * nor anyone under security.tls=require: the node decides and logs.) */
static bool plaintext_allowed(struct session *s)
{
	s->identity = ID_UNBACKED;
	return s->env->cbs->identity(s->env->ctx, s, NULL, NULL);
}

static void start_tls(struct session *s, bool server)
{
	s->tls_started = true;
	/* The TLS handshake has its own limit (net/conn.c). */
	conn_disarm_deadline(s->conn);
	conn_start_tls(s->conn, s->env->tls, server);
}

/* The handshake proved the other end holds the key of fingerprint. */
static void on_secured(void *ctx, struct conn *c, const char *fingerprint)
{
	struct session *s = ctx;

	snprintf(s->fingerprint, sizeof s->fingerprint, "%s", fingerprint ? fingerprint : "");
	s->busy++;
	bool ok = fingerprint && s->env->cbs->identity(s->env->ctx, s, fingerprint, NULL);
	if (s->state == SESSION_CLOSED) {
		/* closed by the node */
	} else if (!ok) {
		session_close(s, "identity refused: the key does not match the peer_id's pin");
	} else {
		s->secure = true;
		log_debug(MOD, "%s (%s): TLS, key %s", s->peer_id, s->addr, s->fingerprint);
		established(s, NULL);
	}
	s->busy--;
	session_reap(s);
}

/* ---- input ------------------------------------------------------------ */

static void on_connected(void *ctx, struct conn *c)
{
	struct session *s = ctx;
	struct buf hello = BUF_INIT;

	s->state = SESSION_HANDSHAKE;
	s->tls_offered = tls_wanted(s);
	/* HELLO alone, and nothing else until HELLO_OK (PROTOCOL.md §4). */
	if (pmsg_build_hello(&hello, false, s->env->self_id,
			     FEAT_OURS | (s->tls_offered ? FEAT_TLS : 0)) != 0) {
		conn_close(c, "cannot build HELLO");
		return;
	}
	conn_put(c, &hello, false);
	buf_free(&hello);
	conn_arm_deadline(c, s->env->cfg->limits.handshake_timeout);
	conn_flush_now(c);
}

/* m: the HELLO or HELLO_OK (NULL: none read, or read before STARTTLS). */
static void established(struct session *s, const struct pmsg *m)
{
	if (m)
		s->features = m->features;
	s->pipeline = (s->features & FEAT_PIPELINE) != 0;
	/* A HELLO is the dialler's own word; a HELLO_OK may be our HELLO's
	 * features echoed back by a peer that reads one line per recv()
	 * (PROTOCOL.md §4).  On sessions we dialled the write discipline is
	 * learned by the probe, never taken from the HELLO_OK, unless a TLS
	 * handshake proved a chatp2p node's key (§5.2). */
	bool believed = s->secure || (s->pipeline && s->dir == CONN_IN);
	s->wmode = believed ? WM_PIPELINE : WM_ONE_PER_WRITE;
	s->state = SESSION_ESTABLISHED;
	s->since = wall_now();
	conn_disarm_deadline(s->conn);
	conn_start(s->conn, believed);
	if (s->state == SESSION_CLOSED)
		return;
	start_keepalive(s);
	/* Learn whether this peer reads whole segments before anything else
	 * is written (it waits behind the probe). */
	if (!believed)
		start_probe(s);
	if (s->state == SESSION_CLOSED)
		return; /* the probe's write failed */
	s->env->cbs->established(s->env->ctx, s);
}

static void bad_line(struct session *s, const char *why)
{
	int max = s->env->cfg->limits.max_bad_lines;

	s->bad_lines++;
	log_debug(MOD, "%s (%s): %s (%d/%d)", s->peer_id[0] ? s->peer_id : "?", s->addr, why,
		  s->bad_lines, max);
	if (s->state != SESSION_ESTABLISHED) {
		session_close(s, why);
		return;
	}
	if (s->bad_lines >= max) {
		char reason[128];
		snprintf(reason, sizeof reason, "too many invalid lines (%d)", s->bad_lines);
		session_close(s, reason);
	}
}

static void on_overflow(void *ctx, struct conn *c)
{
	struct session *s = ctx;
	char why[64];

	snprintf(why, sizeof why, "line longer than %d bytes", s->env->cfg->network.max_msg_size);
	s->busy++;
	bad_line(s, why);
	s->busy--;
	session_reap(s);
}

/* The inbound handshake: HELLO, answered by HELLO_OK. */
static void hello(struct session *s, const struct pmsg *m)
{
	struct buf ok = BUF_INIT;

	if (m->type != PM_HELLO) {
		session_close(s, "first message was not HELLO");
		return;
	}
	bool accepted = s->env->cbs->hello(s->env->ctx, s, m);
	if (!accepted || s->state == SESSION_CLOSED) {
		session_close(s, "HELLO refused");
		return;
	}
	snprintf(s->conn->name, sizeof s->conn->name, "%.79s", s->peer_id);
	if ((m->features & FEAT_TLS) && tls_wanted(s)) {
		/* The offer taken: HELLO_OK alone and in clear, then TLS as
		 * server; the session is established once the key is proved. */
		s->features = m->features;
		pmsg_build_hello(&ok, true, s->env->self_id, FEAT_OURS | FEAT_STARTTLS);
		conn_put(s->conn, &ok, false);
		buf_free(&ok);
		start_tls(s, true);
		conn_flush_now(s->conn);
		return;
	}
	if (!plaintext_allowed(s) || s->state == SESSION_CLOSED) {
		session_close(s, "refused without TLS");
		return;
	}
	/* HELLO_OK in a write of its own, and a gap after it: it gets no answer. */
	pmsg_build_hello(&ok, true, s->env->self_id, FEAT_OURS);
	conn_put(s->conn, &ok, (m->features & FEAT_PIPELINE) == 0);
	buf_free(&ok);
	established(s, m);
	if (s->state != SESSION_CLOSED)
		conn_flush_now(s->conn);
}

static void bye(struct session *s, const struct pmsg *m)
{
	struct buf line = BUF_INIT;
	char why[128];

	pmsg_build_bye_ok(&line, m->msg_id ? m->msg_id : "", s->env->self_id, s->peer_id);
	s->env->cbs->bye(s->env->ctx, s);
	if (s->state != SESSION_CLOSED) {
		snprintf(why, sizeof why, "peer said BYE%s%.80s", m->reason && m->reason[0] ? ": " : "",
			 m->reason ? m->reason : "");
		/* Nothing else will be said: BYE_OK goes now, then we close
		 * ourselves (PROTOCOL.md §4). */
		conn_drop_queued(s->conn, true);
		conn_put(s->conn, &line, s->conn->gap);
		conn_close_after_flush(s->conn, why);
	}
	buf_free(&line);
}

static void handle(struct session *s, const struct pmsg *m)
{
	struct buf line = BUF_INIT;

	/* Only bad lines in a row close a connection: a long-lived peer with
	 * the odd malformed message is not a stream of garbage. */
	s->bad_lines = 0;
	if (s->state == SESSION_HANDSHAKE) {
		if (s->dir == CONN_IN) {
			if (s->tls_started)
				return; /* cannot be: lines come after the TLS handshake */
			hello(s, m);
			return;
		}
		if (s->tls_started)
			return;
		if (m->type == PM_HELLO_OK) {
			if (m->peer_id && strcmp(m->peer_id, s->peer_id) != 0)
				log_info(MOD, "%s: HELLO_OK says it is %s; keeping the dialled id",
					 s->peer_id, m->peer_id);
			/* "starttls" is in no HELLO, so no echo of ours can say it;
			 * and it counts only as the answer to an offer we made. */
			if ((m->features & FEAT_STARTTLS) && s->tls_offered) {
				s->features = m->features;
				start_tls(s, false);
				return;
			}
			if (!plaintext_allowed(s) || s->state == SESSION_CLOSED) {
				session_close(s, "refused without TLS");
				return;
			}
			established(s, m);
			return;
		}
		if (m->type == PM_UNKNOWN || m->type == PM_HELLO)
			return;
		/* Some peers talk before their HELLO_OK is read: take it as given. */
		if (!plaintext_allowed(s) || s->state == SESSION_CLOSED) {
			session_close(s, "refused without TLS");
			return;
		}
		established(s, NULL);
		if (s->state == SESSION_CLOSED)
			return;
	}
	switch (m->type) {
	case PM_PING:
		pmsg_build_pong(&line, m->msg_id);
		session_write(s, &line, CK_CTL, NULL);
		break;
	case PM_PONG:
		on_pong(s, m);
		break;
	case PM_BYE:
		bye(s, m);
		break;
	case PM_BYE_OK:
		if (s->bye_sent)
			session_close(s, "BYE_OK received");
		break;
	case PM_HELLO:
	case PM_HELLO_OK:
		log_debug(MOD, "%s: %s after the handshake, ignored", s->peer_id, pmsg_type_name(m->type));
		break;
	case PM_UNKNOWN:
		log_debug(MOD, "%s: unknown type \"%s\", ignored", s->peer_id, m->type_str);
		break;
	default:
		s->env->cbs->message(s->env->ctx, s, m);
		break;
	}
	buf_free(&line);
}

static void on_line(void *ctx, struct conn *c, const char *text, size_t len)
{
	struct session *s = ctx;
	struct pmsg m;
	char err[128];

	s->busy++;
	enum pmsg_status st = pmsg_parse(text, len, &m, err, sizeof err);
	if (st == PMSG_OK) {
		s->rx_msgs++;
		s->env->cbs->traffic(s->env->ctx, s, m.type, len, false);
		handle(s, &m);
	} else {
		char why[192];
		snprintf(why, sizeof why, "%s: %s",
			 st == PMSG_BAD_JSON ? "invalid message" : "missing field", err);
		bad_line(s, why);
	}
	pmsg_free(&m);
	s->busy--;
	session_reap(s);
}

void session_bye(struct session *s, const char *reason)
{
	struct buf line = BUF_INIT;
	char id[MSGID_LEN];

	if (s->state != SESSION_ESTABLISHED) {
		session_close(s, reason);
		return;
	}
	if (s->bye_sent)
		return;
	s->bye_sent = true;
	msgid_new(id);
	pmsg_build_bye(&line, id, s->env->self_id, s->peer_id, reason);
	/* BYE jumps the data queue: nothing more will follow it, nor is a SEND
	 * awaiting its ACK written again after it. */
	conn_drop_queued(s->conn, false);
	/* The write may close and free s (queue full, write error). */
	if (session_write(s, &line, CK_CTL, NULL) == 0)
		conn_arm_deadline(s->conn, s->env->cfg->limits.bye_timeout);
	buf_free(&line);
}
