/* The control methods: one handler each, in the table at the end.  Params
 * are checked here, answers built here; the node does the work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/control.h"
#include "control/conversation.h"
#include "control/trust.h"
#include "node/identity.h"
#include "log.h"
#include "msgid.h"
#include "node/claims.h"
#include "node/outbox.h"
#include "store/storage.h"
#include "control/metrics.h"
#include "node/ping.h"
#include "node/stats.h"
#include "timeutil.h"
#include "version.h"
#include "xmalloc.h"

/* ---- params ----------------------------------------------------------------- */

/* A string param: NULL if absent; *bad set if present with another type. */
static const char *param_str(jval params, const char *key, bool *bad)
{
	jval v = json_get(params, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_str(v) == NULL)
		*bad = true;
	return json_str(v);
}

static int param_bool(jval params, const char *key, int dflt, bool *bad)
{
	jval v = json_get(params, key);
	int b;

	if (v == NULL || json_is_null(v))
		return dflt;
	if ((b = json_bool(v)) < 0)
		*bad = true;
	return b < 0 ? dflt : b;
}

static void bad_params(struct ctl_req *req, const char *what)
{
	ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "%s", what);
}

void ctl_gen_time(yajl_gen g, const char *key, double wall)
{
	char at[ISO8601_LEN];

	jg_str(g, key);
	if (wall <= 0) {
		jg_null(g);
		return;
	}
	iso8601_format(at, (time_t)wall, (long)((wall - floor(wall)) * 1000), true);
	jg_str(g, at);
}

struct storage *ctl_storage(struct ctl_req *req, const char *what)
{
	struct storage *st = node_storage(ctl_node(req));

	if (st == NULL)
		ctl_error(req, CTL_E_DELIVERY, "no_storage", "no %s: storage.sync is off or the "
			  "database could not be opened (see the log)", what);
	return st;
}

/* How the other end's identity is known (PROTOCOL.md §5.3). */
static void gen_security(yajl_gen g, const struct session *c)
{
	JG_KBOOL(g, "secure", c->secure);
	jg_str(g, "fingerprint");
	if (c->secure && c->fingerprint[0])
		jg_str(g, c->fingerprint);
	else
		jg_null(g);
	JG_KSTR(g, "identity", session_identity_name(c->identity));
}

static void gen_ms(yajl_gen g, const char *key, double ms)
{
	jg_str(g, key);
	jg_double(g, ms, 3);
}

static void gen_rtt(yajl_gen g, const struct rtt_stats *r)
{
	jg_map(g);
	JG_KINT(g, "samples", (long long)r->samples);
	if (r->samples) {
		gen_ms(g, "last", r->last);
		gen_ms(g, "avg", rtt_avg(r));
		gen_ms(g, "min", r->min);
		gen_ms(g, "max", r->max);
	}
	jg_end_map(g);
}

/* ---- introspection ---------------------------------------------------------- */

static void m_version(struct ctl_req *req, jval params)
{
	yajl_gen g = ctl_result_begin(req);

	jg_map(g);
	JG_KSTR(g, "version", CHATP2P_VERSION);
	JG_KINT(g, "protocol", CTL_PROTO_VERSION);
	JG_KSTR(g, "node", node_id(ctl_node(req)));
	jg_end_map(g);
	ctl_result_end(req);
}

struct counts { int total, active, stale, unknown; };

static void count_peer(struct peer *p, void *ctx)
{
	struct counts *c = ctx;

	c->total++;
	c->active += p->state == PEER_ACTIVE;
	c->stale += p->state == PEER_STALE;
	c->unknown += p->state == PEER_UNKNOWN;
}

/* What the node refused or dropped to defend itself (issue 13). */
static void gen_guard(yajl_gen g, const struct node_guard *gd, unsigned long identity_refused)
{
	jg_str(g, "guard");
	jg_map(g);
	JG_KINT(g, "impostors", (long long)gd->impostors);
	JG_KINT(g, "per_ip_refused", (long long)gd->per_ip_refused);
	JG_KINT(g, "pressure_drops", (long long)gd->pressure_drops);
	JG_KINT(g, "forgotten", (long long)gd->forgotten);
	/* PROTOCOL.md §5.2: changed keys, pinned peers without TLS, failed
	 * handshakes of pinned peers, plaintext under security.tls=require. */
	JG_KINT(g, "identity_refused", (long long)identity_refused);
	jg_end_map(g);
}

/* Registered, dialling out fine, and nobody has dialled in since: the
 * first question on this network.  Long means a few of the others'
 * discover rounds (they dial whom they discover). */
static void gen_reachability(yajl_gen g, struct node *n)
{
	const struct node_stats *st = node_stats(n);
	double quiet = 5 * node_config(n)->rendezvous.discover_interval;
	double now = mono_now(), wall = wall_now();

	if (quiet < 5)
		quiet = 5;
	jg_str(g, "reachability");
	jg_map(g);
	JG_KINT(g, "inbound", (long long)st->established[0]);
	JG_KINT(g, "outbound", (long long)st->established[1]);
	ctl_gen_time(g, "last_inbound", st->last_established[0]);
	ctl_gen_time(g, "last_outbound", st->last_established[1]);
	if (st->registered_since > 0 && now - st->registered_since >= quiet &&
	    st->established[1] > 0 &&
	    st->last_established[0] < wall - (now - st->registered_since)) {
		char hint[320], d[32];
		double secs = now - st->registered_since;
		if (secs >= 3600)
			snprintf(d, sizeof d, "%ldh%ldm", (long)secs / 3600, (long)secs % 3600 / 60);
		else
			snprintf(d, sizeof d, "%ldm%lds", (long)secs / 60, (long)secs % 60);
		snprintf(hint, sizeof hint, "registered for %s and dialling out works, but no peer has "
			 "dialled in since: port %d is likely not reachable from outside (NAT or "
			 "firewall); forward or open TCP port %d to this host", d, node_listen_port(n),
			 node_listen_port(n));
		JG_KSTR(g, "hint", hint);
	}
	jg_end_map(g);
}

static void gen_evicted(void *ctx, const char *src, long stored, uint64_t evicted)
{
	JG_KINT((yajl_gen)ctx, src, (long long)evicted);
}

static void m_status(struct ctl_req *req, jval params)
{
	struct node *n = ctl_node(req);
	const struct config *cfg = node_config(n);
	const struct rdv_status *reg = node_registration(n);
	struct counts pc = { 0, 0, 0, 0 };
	/* rdv_status times are CLOCK_MONOTONIC (rdv_client.h); ev_now() is not. */
	double now_mono = mono_now();
	int nconns = 0;
	yajl_gen g = ctl_result_begin(req);

	peer_foreach(node_peer_table(n), count_peer, &pc);
	for (struct session *c = node_conns(n); c; c = c->next)
		nconns += c->state == SESSION_ESTABLISHED;
	jg_map(g);
	JG_KSTR(g, "peer_id", node_id(n));
	jg_str(g, "fingerprint");
	if (node_identity(n)->fingerprint[0])
		jg_str(g, node_identity(n)->fingerprint);
	else
		jg_null(g);
	JG_KSTR(g, "name", cfg->node.name);
	JG_KSTR(g, "namespace", node_ns(n));
	JG_KSTR(g, "version", CHATP2P_VERSION);
	JG_KINT(g, "protocol", CTL_PROTO_VERSION);
	JG_KINT(g, "pid", getpid());
	ctl_gen_time(g, "started", node_started(n));
	jg_str(g, "uptime_s");
	jg_double(g, wall_now() - node_started(n), 1);
	jg_str(g, "listen");
	jg_map(g);
	JG_KSTR(g, "address", node_listen_addr(n));
	JG_KINT(g, "port", node_listen_port(n));
	jg_end_map(g);
	jg_str(g, "rendezvous");
	jg_map(g);
	JG_KSTR(g, "server", cfg->rendezvous.host);
	JG_KINT(g, "port", cfg->rendezvous.port);
	JG_KSTR(g, "state", rdv_reg_state_name(reg->state));
	if (reg->state == RDV_REGISTERED) {
		JG_KINT(g, "ttl", reg->ttl);
		JG_KINT(g, "expires_in", (long long)(reg->expires - now_mono));
		JG_KSTR(g, "public_ip", reg->public_ip);
	}
	if (reg->state == RDV_BLOCKED)
		JG_KINT(g, "blocked_for", (long long)ceil(reg->blocked_until - now_mono));
	if (reg->last_error[0]) {
		JG_KSTR(g, "last_error", reg->last_error);
		if (strcmp(reg->last_error, node_stats(n)->rdv_error) == 0)
			ctl_gen_time(g, "last_error_at", node_stats(n)->rdv_error_at);
	}
	JG_KINT(g, "requests", reg->requests);
	JG_KINT(g, "reregistered", (long long)reg->reregistered);
	jg_end_map(g);
	gen_reachability(g, n);
	jg_str(g, "peers");
	jg_map(g);
	JG_KINT(g, "total", pc.total);
	JG_KINT(g, "active", pc.active);
	JG_KINT(g, "stale", pc.stale);
	JG_KINT(g, "unknown", pc.unknown);
	jg_end_map(g);
	JG_KINT(g, "connections", nconns);
	JG_KSTR(g, "log_level", log_level_name(log_get_level()));
	/* Where the node's log goes, for "chatp2pctl logs". */
	jg_str(g, "log");
	jg_map(g);
	jg_str(g, "file");
	if (log_file_path() == NULL || jg_str(g, log_file_path()) != 0)
		jg_null(g);
	JG_KBOOL(g, "journal", log_to_journal());
	jg_end_map(g);
	gen_guard(g, node_guard(n), node_identity(n)->refused);
	JG_KINT(g, "unread", storage_unread(node_storage(n)));
	jg_str(g, "storage");
	jg_map(g);
	JG_KSTR(g, "sync", cfg->storage.sync);
	if (node_storage(n)) {
		JG_KSTR(g, "path", storage_path(node_storage(n)));
		JG_KINT(g, "messages", storage_inbox_count(node_storage(n)));
		JG_KINT(g, "evicted", (long long)storage_evicted(node_storage(n)));
		if (storage_error(node_storage(n))[0])
			JG_KSTR(g, "error", storage_error(node_storage(n)));
		if (storage_reopened(node_storage(n)) > 0) {
			JG_KINT(g, "reopened", (long long)storage_reopened(node_storage(n)));
			JG_KSTR(g, "last_error", storage_last_error(node_storage(n)));
		}
		jg_str(g, "evicted_from");
		jg_map(g);
		storage_top_evicted(node_storage(n), 10, gen_evicted, g);
		jg_end_map(g);
	}
	JG_KINT(g, "outbox", outbox_count(node_outbox(n)));
	jg_end_map(g);
	jg_end_map(g);
	ctl_result_end(req);
}

static void gen_traffic(yajl_gen g, const struct peer_traffic *t)
{
	jg_map(g);
	JG_KINT(g, "msgs_in", (long long)t->msgs_in);
	JG_KINT(g, "msgs_out", (long long)t->msgs_out);
	JG_KINT(g, "bytes_in", (long long)t->bytes_in);
	JG_KINT(g, "bytes_out", (long long)t->bytes_out);
	JG_KINT(g, "pubs_in", (long long)t->pubs_in);
	JG_KINT(g, "pubs_out", (long long)t->pubs_out);
	JG_KINT(g, "sends_acked", (long long)t->sends_acked);
	JG_KINT(g, "sends_timed_out", (long long)t->sends_timed_out);
	JG_KINT(g, "sends_late", (long long)t->sends_late);
	jg_end_map(g);
}

struct peers_ctx {
	yajl_gen g;
	enum pub_target target;
	const char *ns;
};

static void gen_peer(struct peer *p, void *ctx)
{
	struct peers_ctx *pc = ctx;
	yajl_gen g = pc->g;

	if (pc->target == PUB_NS && strcmp(p->ns, pc->ns) != 0)
		return;
	jg_map(g);
	JG_KSTR(g, "peer_id", p->id);
	JG_KSTR(g, "namespace", p->ns);
	JG_KSTR(g, "state", peer_state_name(p->state));
	if (p->ip[0]) {
		JG_KSTR(g, "ip", p->ip);
		JG_KINT(g, "port", p->port);
	}
	if (p->conn)
		JG_KSTR(g, "direction", p->conn->dir == CONN_OUT ? "outbound" : "inbound");
	/* How its connection's claim is known (PROTOCOL.md §5.3); null when none. */
	if (p->conn) {
		gen_security(g, p->conn);
	} else {
		JG_KBOOL(g, "secure", false);
		jg_str(g, "fingerprint");
		jg_null(g);
		jg_str(g, "identity");
		jg_null(g);
	}
	JG_KBOOL(g, "ambiguous", claims_ambiguous(p, mono_now()));
	ctl_gen_time(g, "first_seen", p->first_seen);
	ctl_gen_time(g, "last_seen", p->last_seen);
	JG_KINT(g, "connects", p->connects);
	JG_KINT(g, "disconnects", p->disconnects);
	JG_KINT(g, "attempts", p->attempts);
	jg_str(g, "success_rate");
	if (p->attempts > 0)
		jg_double(g, peer_success_rate(p), 1);
	else
		jg_null(g); /* never dialled: no rate, as the table's "-" */
	JG_KINT(g, "reconnects", p->connects > 1 ? (long long)p->connects - 1 : 0);
	jg_str(g, "traffic");
	gen_traffic(g, &p->traffic);
	JG_KBOOL(g, "left", p->left);
	JG_KBOOL(g, "gave_up", p->gave_up);
	jg_str(g, "rtt_ms");
	gen_rtt(g, &p->rtt);
	jg_end_map(g);
}

struct peers_req {
	struct ctl_req *req;
	enum pub_target target;
	char ns[NAME_MAX_BYTES + 1];
};

static void answer_peers(struct ctl_req *req, enum pub_target target, const char *ns)
{
	struct peers_ctx pc = { ctl_result_begin(req), target, ns };

	jg_map(pc.g);
	jg_str(pc.g, "peers");
	jg_arr(pc.g);
	peer_foreach(node_peer_table(ctl_node(req)), gen_peer, &pc);
	jg_end_arr(pc.g);
	jg_end_map(pc.g);
	ctl_result_end(req);
}

static void peers_after_discover(void *ctx, const char *err, const struct rdv_reply *reply)
{
	struct peers_req *pr = ctx;

	if (err)
		ctl_error(pr->req, CTL_E_RENDEZVOUS, "rendezvous", "DISCOVER failed: %s", err);
	else
		answer_peers(pr->req, pr->target, pr->ns);
	free(pr);
}

static void m_peers(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *filter = param_str(params, "filter", &bad), *ns = NULL;
	int fresh = param_bool(params, "discover", 0, &bad);
	enum pub_target t = PUB_ALL;

	if (filter && (t = pub_target_parse(filter, &ns)) != PUB_ALL && t != PUB_NS)
		bad = true;
	if (bad) {
		bad_params(req, "params: filter (\"*\" or \"#ns\"), discover (boolean)");
		return;
	}
	if (!fresh) {
		answer_peers(req, t, ns);
		return;
	}
	struct peers_req *pr = xcalloc(1, sizeof *pr);
	pr->req = req;
	pr->target = t;
	snprintf(pr->ns, sizeof pr->ns, "%s", ns ? ns : "");
	node_discover(ctl_node(req), peers_after_discover, pr);
}

static void m_conn(struct ctl_req *req, jval params)
{
	struct node *n = ctl_node(req);
	yajl_gen g = ctl_result_begin(req);

	jg_map(g);
	jg_str(g, "connections");
	jg_arr(g);
	for (struct session *c = node_conns(n); c; c = c->next) {
		struct peer *p = c->peer_id[0] ? peer_find(node_peer_table(n), c->peer_id) : NULL;
		jg_map(g);
		JG_KSTR(g, "peer_id", c->peer_id);
		JG_KSTR(g, "direction", c->dir == CONN_OUT ? "outbound" : "inbound");
		JG_KSTR(g, "state", session_state_name(c->state));
		JG_KBOOL(g, "primary", c->primary);
		JG_KSTR(g, "address", c->addr);
		if (p && claims_ambiguous(p, mono_now()))
			JG_KBOOL(g, "ambiguous", true);
		ctl_gen_time(g, "since", c->since);
		JG_KBOOL(g, "pipeline", c->pipeline);
		gen_security(g, c);
		JG_KINT(g, "rx_msgs", (long long)c->rx_msgs);
		JG_KINT(g, "tx_msgs", (long long)session_tx_msgs(c));
		JG_KINT(g, "queued_bytes", (long long)session_queued_bytes(c));
		if (p && p->rtt.samples && c->primary)
			gen_ms(g, "rtt_ms", p->rtt.last);
		if (c->state == SESSION_ESTABLISHED)
			JG_KSTR(g, "write_mode", session_wmode_name(c->wmode));
		if (p && c->primary) {
			/* The peer's, over all its connections. */
			jg_str(g, "traffic");
			gen_traffic(g, &p->traffic);
			JG_KINT(g, "reconnects", p->connects > 1 ? (long long)p->connects - 1 : 0);
		}
		jg_end_map(g);
	}
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

static void gen_rtt_peer(struct peer *p, void *ctx)
{
	yajl_gen g = ctx;

	if (p->rtt.samples == 0)
		return;
	jg_map(g);
	JG_KSTR(g, "peer_id", p->id);
	JG_KINT(g, "samples", (long long)p->rtt.samples);
	gen_ms(g, "last", p->rtt.last);
	gen_ms(g, "avg", rtt_avg(&p->rtt));
	gen_ms(g, "min", p->rtt.min);
	gen_ms(g, "max", p->rtt.max);
	jg_end_map(g);
}

static void m_rtt(struct ctl_req *req, jval params)
{
	yajl_gen g = ctl_result_begin(req);

	jg_map(g);
	jg_str(g, "rtt");
	jg_arr(g);
	peer_foreach(node_peer_table(ctl_node(req)), gen_rtt_peer, g);
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

/* ---- messages ------------------------------------------------------------------ */

static void send_done(void *ctx, enum send_result r, const char *msg_id, double rtt_ms,
		      const char *detail)
{
	struct ctl_req *req = ctx;
	yajl_gen g;

	conversation_outcome(ctl_node(req), msg_id, send_result_name(r));
	if (r == SEND_ACKED || r == SEND_SENT) {
		g = ctl_result_begin(req);
		jg_map(g);
		JG_KSTR(g, "msg_id", msg_id);
		JG_KSTR(g, "status", send_result_name(r));
		if (r == SEND_ACKED)
			gen_ms(g, "rtt_ms", rtt_ms);
		jg_end_map(g);
		ctl_result_end(req);
		return;
	}
	ctl_error_msg(req, r == SEND_FAILED ? CTL_E_BAD_PARAMS : CTL_E_DELIVERY, send_result_name(r),
		      msg_id, "%s", detail ? detail : send_result_name(r));
}

static void m_send(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *to = param_str(params, "to", &bad);
	const char *text = param_str(params, "text", &bad);
	int ack = param_bool(params, "require_ack", 1, &bad);
	int queue = param_bool(params, "queue", 0, &bad);
	jval dl = json_get(params, "deadline");
	double deadline = 0;
	const char *want_id = param_str(params, "msg_id", &bad);
	char id[MSGID_LEN] = "";

	if (dl && !json_is_null(dl) && (!json_num(dl, &deadline) || !(deadline > 0) ||
					 deadline > 30 * 86400.0))
		bad = true;
	if (want_id && (strlen(want_id) < 8 || strlen(want_id) >= MSGID_LEN ||
			strspn(want_id, "0123456789abcdefABCDEF-") != strlen(want_id)))
		bad = true;
	if (want_id && !bad)
		memcpy(id, want_id, strlen(want_id) + 1);
	if (bad || to == NULL || text == NULL || (queue && !ack)) {
		bad_params(req, "send needs \"to\" (peer_id) and \"text\" (strings), optional \"require_ack\" (boolean), "
				"\"queue\" (boolean; needs require_ack), \"deadline\" (seconds, up to 30 days) and \"msg_id\" (a UUID)");
		return;
	}
	if (!peer_id_valid(to)) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "\"%s\" is not a peer_id (name@namespace)", to);
		return;
	}
	/* Our id from the start: the history records it before the outcome. */
	if (id[0] == '\0')
		msgid_new(id);
	conversation_sent(ctl_node(req), id, to, text);
	/* The request is the callback's context: if its controller leaves
	 * first, send_done still runs, drops the answer and frees it. */
	if (queue && outbox_full(node_outbox(ctl_node(req)))) {
		ctl_error(req, CTL_E_DELIVERY, "outbox_full", "the outbox holds storage.outbox_max (%d) "
			  "messages: wait for some to be delivered or expire, or cancel some",
			  node_config(ctl_node(req))->storage.outbox_max);
		return;
	}
	if (queue)
		node_queue(ctl_node(req), to, text, deadline, send_done, req, id);
	else
		node_send(ctl_node(req), to, text, ack, send_done, req, id);
}

static void m_pub(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *to = param_str(params, "to", &bad);
	const char *text = param_str(params, "text", &bad);
	char id[MSGID_LEN], err[160];
	int reached;

	if (bad || to == NULL || text == NULL) {
		bad_params(req, "pub needs \"to\" (\"*\" or \"#namespace\") and \"text\"");
		return;
	}
	reached = node_pub(ctl_node(req), to, text, id, err, sizeof err);
	if (reached < 0) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "%s", err);
		return;
	}
	conversation_pub(ctl_node(req), id, to, text, reached);
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KSTR(g, "msg_id", id);
	JG_KINT(g, "reached", reached);
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_reconnect(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *peer = param_str(params, "peer", &bad);
	int started;

	if (bad) {
		bad_params(req, "reconnect takes an optional \"peer\" (peer_id)");
		return;
	}
	/* A healthy connection is kept: redialling would only drop it. */
	const struct peer *live = peer ? peer_find(node_peer_table(ctl_node(req)), peer) : NULL;
	if (live && live->conn && live->conn->ping_failures == 0) {
		char why[200];
		snprintf(why, sizeof why, "already connected (%s, %s): the healthy connection is kept",
			 live->conn->dir == CONN_OUT ? "outbound" : "inbound", live->conn->addr);
		yajl_gen g = ctl_result_begin(req);
		jg_map(g);
		JG_KINT(g, "dialling", 0);
		JG_KBOOL(g, "connected", true);
		JG_KSTR(g, "reason", why);
		jg_end_map(g);
		ctl_result_end(req);
		return;
	}
	int unanswered = live && live->conn ? live->conn->ping_failures : 0;
	started = node_reconnect(ctl_node(req), peer);
	if (started < 0) {
		ctl_error(req, CTL_E_DELIVERY, "unknown_peer", "unknown peer %s", peer);
		return;
	}
	/* Nothing started for the one peer asked for: say why. */
	const struct peer *p = peer && started == 0 ? peer_find(node_peer_table(ctl_node(req)), peer)
						    : NULL;
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KINT(g, "dialling", started);
	if (unanswered > 0 && started > 0)
		JG_KSTR(g, "reason", "its connection had unanswered PINGs: closed it, dialling again");
	else if (p && p->ip[0] == '\0')
		JG_KSTR(g, "reason", "no address to dial: no DISCOVER has listed it, so only it "
			"can connect to us");
	else if (p)
		JG_KSTR(g, "reason", "the dial could not start; retrying with backoff (see the log)");
	jg_end_map(g);
	ctl_result_end(req);
}

/* ---- logging ------------------------------------------------------------------- */

static void m_log_get(struct ctl_req *req, jval params)
{
	yajl_gen g = ctl_result_begin(req);

	jg_map(g);
	JG_KSTR(g, "level", log_level_name(log_get_level()));
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_log_set(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *level = param_str(params, "level", &bad);
	enum log_level l, prev = log_get_level();

	if (bad || level == NULL || !log_level_parse(level, &l)) {
		bad_params(req, "log.set needs \"level\": DEBUG, INFO, WARNING or ERROR");
		return;
	}
	log_set_level(l);
	log_info("Control", "log level %s -> %s", log_level_name(prev), log_level_name(l));
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KSTR(g, "level", log_level_name(l));
	JG_KSTR(g, "previous", log_level_name(prev));
	jg_end_map(g);
	ctl_result_end(req);
}

/* ---- rendezvous ------------------------------------------------------------------- */

static void rdv_answer(void *ctx, const char *err, const struct rdv_reply *reply)
{
	struct ctl_req *req = ctx;
	yajl_gen g;

	if (err) {
		ctl_error(req, CTL_E_RENDEZVOUS, "rendezvous", "%s", err);
		return;
	}
	g = ctl_result_begin(req);
	jg_map(g);
	if (reply && reply->ttl >= 0)
		JG_KINT(g, "ttl", reply->ttl);
	if (reply && reply->ip)
		JG_KSTR(g, "ip", reply->ip);
	if (reply && reply->port > 0)
		JG_KINT(g, "port", reply->port);
	if (reply && reply->peers) {
		jg_str(g, "peers");
		jg_arr(g);
		for (size_t i = 0; i < reply->npeers; i++) {
			const struct rdv_peer *p = &reply->peers[i];
			jg_map(g);
			JG_KSTR(g, "name", p->name);
			JG_KSTR(g, "namespace", p->ns);
			JG_KSTR(g, "ip", p->ip);
			JG_KINT(g, "port", p->port);
			if (p->ttl >= 0)
				JG_KINT(g, "ttl", p->ttl);
			if (p->expires_in >= 0)
				JG_KINT(g, "expires_in", p->expires_in);
			jg_end_map(g);
		}
		jg_end_arr(g);
	}
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_discover(struct ctl_req *req, jval params)
{
	node_discover(ctl_node(req), rdv_answer, req);
}

static void m_register(struct ctl_req *req, jval params)
{
	node_register(ctl_node(req), rdv_answer, req);
}

static void m_unregister(struct ctl_req *req, jval params)
{
	node_unregister(ctl_node(req), rdv_answer, req);
}

/* ---- events ------------------------------------------------------------------------ */

/* "events": ["message", "peer", …] (default: all but log). */
static bool parse_classes(jval params, unsigned *out)
{
	jval ev = json_get(params, "events");

	*out = 0;
	if (ev == NULL || json_is_null(ev)) {
		*out = EVC_ALL & ~EVC_LOG;
		return true;
	}
	if (!YAJL_IS_ARRAY(ev))
		return false;
	for (size_t i = 0; i < json_arr_len(ev); i++) {
		const char *name = json_str(json_arr_at(ev, i));
		unsigned bit = name ? event_class_parse(name) : 0;
		if (bit == 0)
			return false;
		*out |= bit;
	}
	return true;
}

static void gen_classes(yajl_gen g, unsigned classes)
{
	jg_arr(g);
	for (unsigned bit = 1; bit & EVC_ALL; bit <<= 1)
		if (classes & bit)
			jg_str(g, event_class_name(bit));
	jg_end_arr(g);
}

/* Most stored messages a subscribe "replay" or one "inbox" answer carries. */
#define REPLAY_MAX 10000

static bool replay_one(void *ctx, const struct stored_msg *m)
{
	ctl_replay_message(ctx, m);
	return true;
}

static void m_subscribe(struct ctl_req *req, jval params)
{
	bool bad = false;
	unsigned classes;
	jval since = json_get(params, "since");
	long long since_v = 0;
	const char *lvl = param_str(params, "log_level", &bad);
	enum log_level l = LOGL_INFO;

	jval replay = json_get(params, "replay");
	long long replay_n = 0;

	if (!parse_classes(params, &classes) || bad || (lvl && !log_level_parse(lvl, &l)) ||
	    (since && !json_is_null(since) && (!json_int(since, &since_v) || since_v < 0)) ||
	    (replay && !json_is_null(replay) &&
	     (!json_int(replay, &replay_n) || replay_n < 0 || replay_n > REPLAY_MAX))) {
		bad_params(req, "subscribe: \"events\" (array of message, ack, peer, registration, log), "
				"\"since\" (sequence number), \"log_level\", \"replay\" (stored messages, "
				"0..10000)");
		return;
	}
	uint64_t seq = ctl_last_seq(req->ctl);
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	jg_str(g, "events");
	gen_classes(g, classes);
	JG_KINT(g, "seq", (long long)seq);
	jg_end_map(g);
	/* The answer goes out first, then any replayed history. */
	struct ctl_req keep = *req;
	ctl_result_end(req);
	/* Stored messages first, then the live stream: all in this one
	 * callback, so nothing arrives in between (nothing missed or doubled). */
	if (replay_n > 0) {
		struct inbox_filter f = { .limit = (int)replay_n };
		storage_inbox_list(node_storage(ctl_node(&keep)), &f, replay_one, &keep);
	}
	ctl_subscribe(&keep, classes, since && !json_is_null(since), (uint64_t)since_v, l);
}

static void m_unsubscribe(struct ctl_req *req, jval params)
{
	unsigned classes;

	if (!parse_classes(params, &classes)) {
		bad_params(req, "unsubscribe: \"events\" (array of event classes; omitted: all)");
		return;
	}
	if (json_get(params, "events") == NULL)
		classes = EVC_ALL;
	ctl_unsubscribe(req, classes);
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_shutdown(struct ctl_req *req, jval params)
{
	yajl_gen g = ctl_result_begin(req);
	struct ctl_req keep = *req;

	jg_map(g);
	JG_KBOOL(g, "stopping", true);
	jg_end_map(g);
	ctl_result_end(req);
	ctl_stop_node(&keep);
}

static void m_reload(struct ctl_req *req, jval params)
{
	char err[256], note[256];

	if (ctl_reload(req, err, sizeof err, note, sizeof note) != 0) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_config", "%s", err);
		return;
	}
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KBOOL(g, "reloaded", true);
	jg_str(g, "refused");
	jg_arr(g);
	/* note is "key, key": one array entry each */
	for (char *k = note, *end; *k; k = *end ? end + 2 : end) {
		end = strstr(k, ", ");
		if (end == NULL)
			end = k + strlen(k);
		jg_strn(g, k, (size_t)(end - k));
	}
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

/* ---- inbox and outbox ------------------------------------------------------------- */

void ctl_gen_stored_fields(yajl_gen g, const struct stored_msg *m, const char *me)
{
	JG_KSTR(g, "from", m->src);
	jg_str(g, "to");
	if (jg_str(g, m->pub ? (m->dst ? m->dst : "*") : (m->dst ? m->dst : me)) != 0)
		jg_null(g);
	jg_str(g, "text");
	if (jg_str(g, m->text) != 0)
		jg_null(g);
	JG_KSTR(g, "msg_id", m->msg_id);
	if (m->src_mismatch)
		JG_KBOOL(g, "src_mismatch", true);
	if (m->dst_mismatch)
		JG_KBOOL(g, "dst_mismatch", true);
	/* Rows stored before identities were kept have none: null. */
	jg_str(g, "identity");
	if (m->identity)
		jg_str(g, m->identity);
	else
		jg_null(g);
	/* PROTOCOL.md §5.3: TLS with a proved key, and which key. */
	JG_KBOOL(g, "secure", m->fingerprint != NULL);
	jg_str(g, "fingerprint");
	if (m->fingerprint)
		jg_str(g, m->fingerprint);
	else
		jg_null(g);
}

static void gen_stored(yajl_gen g, const struct stored_msg *m, const char *me)
{
	jg_map(g);
	JG_KINT(g, "id", m->id);
	JG_KSTR(g, "type", m->pub ? "pub" : "message");
	ctl_gen_time(g, "at", m->at);
	ctl_gen_stored_fields(g, m, me);
	JG_KBOOL(g, "read", m->read);
	jg_end_map(g);
}

struct inbox_ctx {
	yajl_gen g;
	const char *me;
	size_t budget;     /* bytes of text left: the answer must fit max_output */
	int shown;
	bool more;
};

static bool inbox_one(void *ctx, const struct stored_msg *m)
{
	struct inbox_ctx *ic = ctx;
	size_t need = strlen(m->text) * 6 + 512; /* escaped text plus the fields */

	if (need > ic->budget && ic->shown > 0) {
		ic->more = true;
		return false;
	}
	ic->budget = need > ic->budget ? 0 : ic->budget - need;
	gen_stored(ic->g, m, ic->me);
	ic->shown++;
	return true;
}

static void m_inbox(struct ctl_req *req, jval params)
{
	struct node *n = ctl_node(req);
	struct storage *st;
	bool bad = false;
	const char *from = param_str(params, "from", &bad);
	jval since = json_get(params, "since");
	jval lim = json_get(params, "limit");
	long long limit = 100, since_id = 0;
	double since_t = 0;
	struct inbox_filter f = { 0 };

	f.unread_only = param_bool(params, "unread", 0, &bad) == 1;
	if (lim && !json_is_null(lim) && (!json_int(lim, &limit) || limit < 1 || limit > REPLAY_MAX))
		bad = true;
	/* since: an inbox id (number) or a time (ISO 8601 string). */
	if (since && !json_is_null(since)) {
		if (json_str(since)) {
			if (!iso8601_parse(json_str(since), &since_t))
				bad = true;
		} else if (!json_int(since, &since_id) || since_id < 0) {
			bad = true;
		}
	}
	if (bad || (from && !peer_id_valid(from))) {
		bad_params(req, "inbox: \"unread\" (boolean), \"from\" (peer_id), \"since\" (an id, or a "
				"time as ISO 8601), \"limit\" (1..10000)");
		return;
	}
	if ((st = ctl_storage(req, "inbox")) == NULL)
		return;
	f.from = from;
	f.since_id = since_id;
	f.since_given = since && !json_is_null(since) && !json_str(since);
	f.since_time = since_t;
	f.limit = (int)limit;
	yajl_gen g = ctl_result_begin(req);
	struct inbox_ctx ic = { g, node_id(n), (size_t)node_config(n)->control.max_output / 2, 0, false };
	jg_map(g);
	jg_str(g, "messages");
	jg_arr(g);
	long matched = storage_inbox_list(st, &f, inbox_one, &ic);
	jg_end_arr(g);
	JG_KINT(g, "count", ic.shown);
	JG_KBOOL(g, "more", ic.more || matched > ic.shown);
	JG_KINT(g, "unread", storage_unread(st));
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_read(struct ctl_req *req, jval params)
{
	struct storage *st;
	jval idv = json_get(params, "id");
	bool bad = false;
	int all = param_bool(params, "all", 0, &bad);
	long long id = 0;
	long n;

	if (bad || (idv && !json_is_null(idv) && (!json_int(idv, &id) || id < 1)) ||
	    ((idv == NULL || json_is_null(idv)) == (all != 1))) {
		bad_params(req, "read needs \"id\" (an inbox id) or \"all\": true");
		return;
	}
	if ((st = ctl_storage(req, "inbox")) == NULL)
		return;
	if ((n = storage_inbox_mark_read(st, all == 1 ? 0 : id)) < 0) {
		ctl_error(req, CTL_E_DELIVERY, "storage", "the database refused the change (see the log)");
		return;
	}
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KINT(g, "marked", n);
	JG_KINT(g, "unread", storage_unread(st));
	jg_end_map(g);
	ctl_result_end(req);
}

static void gen_item(void *ctx, const struct outbox_item *it)
{
	yajl_gen g = ctx;

	jg_map(g);
	JG_KSTR(g, "msg_id", it->msg_id);
	JG_KSTR(g, "to", it->to);
	ctl_gen_time(g, "queued", it->created);
	ctl_gen_time(g, "deadline", it->deadline);
	jg_str(g, "age_s");
	jg_double(g, wall_now() - it->created, 1);
	JG_KINT(g, "attempts", it->attempts);
	JG_KBOOL(g, "in_flight", it->in_flight);
	jg_end_map(g);
}

static void m_outbox(struct ctl_req *req, jval params)
{
	struct outbox *ob = node_outbox(ctl_node(req));
	bool bad = false;
	const char *cancel = param_str(params, "cancel", &bad);

	if (bad) {
		bad_params(req, "outbox takes an optional \"cancel\" (a queued msg_id)");
		return;
	}
	if (cancel && !outbox_cancel(ob, cancel)) {
		ctl_error(req, CTL_E_DELIVERY, "not_queued", "%s is not in the outbox", cancel);
		return;
	}
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	if (cancel)
		JG_KSTR(g, "cancelled", cancel);
	jg_str(g, "queued");
	jg_arr(g);
	outbox_foreach(ob, gen_item, g);
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

/* ---- ping, methods, metrics ---------------------------------------------------------- */

static void ping_done(void *ctx, enum ping_result r, double rtt_ms)
{
	struct ctl_req *req = ctx;

	switch (r) {
	case PING_PONG: {
		yajl_gen g = ctl_result_begin(req);
		jg_map(g);
		gen_ms(g, "rtt_ms", rtt_ms);
		jg_end_map(g);
		ctl_result_end(req);
		return;
	}
	case PING_TIMEOUT:
		ctl_error(req, CTL_E_DELIVERY, "ping_timeout", "no PONG within the timeout");
		return;
	case PING_NOT_CONNECTED:
		ctl_error(req, CTL_E_DELIVERY, "not_connected", "peer not connected");
		return;
	case PING_UNKNOWN_PEER:
		ctl_error(req, CTL_E_DELIVERY, "unknown_peer", "unknown peer");
		return;
	}
}

static void m_ping(struct ctl_req *req, jval params)
{
	bool bad = false;
	const char *peer = param_str(params, "peer", &bad);
	jval tv = json_get(params, "timeout");
	double timeout = node_config(ctl_node(req))->keepalive.ping_timeout;

	if (tv && !json_is_null(tv) && (!json_num(tv, &timeout) || !(timeout > 0) || timeout > 60))
		bad = true;
	if (bad || peer == NULL) {
		bad_params(req, "ping needs \"peer\" (peer_id), optional \"timeout\" (seconds, at most 60)");
		return;
	}
	/* A PONG usually takes well under the keep-alive's limit; a floor
	 * keeps a tight ping_timeout from failing busy peers at once. */
	if (tv == NULL && timeout < 2)
		timeout = 2;
	pinger_ping(node_pinger(ctl_node(req)), peer, timeout, ping_done, req);
}

static void m_methods(struct ctl_req *req, jval params)
{
	yajl_gen g = ctl_result_begin(req);

	jg_map(g);
	jg_str(g, "methods");
	jg_arr(g);
	for (const struct ctl_method *m = ctl_methods; m->name; m++) {
		jg_map(g);
		JG_KSTR(g, "name", m->name);
		JG_KSTR(g, "description", ctl_method_help(m->name));
		jg_end_map(g);
	}
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

static void m_metrics(struct ctl_req *req, jval params)
{
	struct buf b = BUF_INIT;

	metrics_text(ctl_node(req), req->ctl, &b);
	buf_cstr(&b);
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	JG_KSTR(g, "format", "prometheus-text-0.0.4");
	JG_KSTR(g, "text", b.data);
	jg_end_map(g);
	ctl_result_end(req);
	buf_free(&b);
}

const struct ctl_method ctl_methods[] = {
	{ "version", m_version },
	{ "hello", m_version },
	{ "status", m_status },
	{ "peers", m_peers },
	{ "conn", m_conn },
	{ "send", m_send },
	{ "pub", m_pub },
	{ "rtt", m_rtt },
	{ "reconnect", m_reconnect },
	{ "log.get", m_log_get },
	{ "log.set", m_log_set },
	{ "discover", m_discover },
	{ "register", m_register },
	{ "unregister", m_unregister },
	{ "subscribe", m_subscribe },
	{ "unsubscribe", m_unsubscribe },
	{ "shutdown", m_shutdown },
	{ "reload", m_reload },
	{ "inbox", m_inbox },
	{ "read", m_read },
	{ "outbox", m_outbox },
	{ "history", m_history },
	{ "delete", m_delete },
	{ "ping", m_ping },
	{ "methods", m_methods },
	{ "metrics", m_metrics },
	{ "trust.list", m_trust_list },
	{ "trust.verify", m_trust_verify },
	{ "trust.pin", m_trust_pin },
	{ "trust.forget", m_trust_forget },
	{ NULL, NULL },
};
