/* The "history" method and the recording of sent messages.  Received
 * messages come from the inbox (store/storage.c), sent ones from
 * store/history.c; both are read here, merged by time, the newest limit
 * kept, and written oldest first. */
#include "control/conversation.h"

#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "peerid.h"
#include "store/history.h"
#include "store/storage.h"
#include "timeutil.h"
#include "xmalloc.h"

#define HISTORY_MAX 10000

static long keep(const struct node *n)
{
	long max = node_config(n)->storage.inbox_max_messages;

	return max > 0 ? max : 0;
}

void conversation_sent(struct node *n, const char *msg_id, const char *to, const char *text)
{
	struct sent_msg m = { .at = wall_now(), .msg_id = msg_id, .dst = to, .text = text,
			      .outcome = "pending" };

	history_sent_add(node_storage(n), &m, keep(n));
}

void conversation_outcome(struct node *n, const char *msg_id, const char *outcome)
{
	history_sent_outcome(node_storage(n), msg_id, outcome);
}

void conversation_pub(struct node *n, const char *msg_id, const char *to, const char *text,
		      long reached)
{
	struct sent_msg m = { .at = wall_now(), .msg_id = msg_id, .dst = to, .pub = true,
			      .text = text, .outcome = "sent", .reached = reached };

	history_sent_add(node_storage(n), &m, keep(n));
}

void conversation_on_event(struct node *n, const struct node_event *ev)
{
	if (ev->type == EV_ACK && ev->late)
		history_sent_outcome(node_storage(n), ev->msg_id, "acked");
}

/* ---- the method ------------------------------------------------------------------ */

struct entry {
	double at;
	bool out, pub, read;
	long long id;          /* inbox id (received) */
	long reached;
	char *from, *to, *text, *msg_id, *outcome;
};

struct collect {
	struct entry *v;
	size_t n, cap;
	const char *target;    /* "*" or "#ns": PUBs to it only; NULL: a peer */
};

static struct entry *push(struct collect *c)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	memset(&c->v[c->n], 0, sizeof c->v[c->n]);
	return &c->v[c->n++];
}

static bool got_in(void *ctx, const struct stored_msg *m)
{
	struct collect *c = ctx;

	/* A peer's conversation is its SENDs; its PUBs are in "*" or "#ns"'s. */
	if (c->target ? !(m->pub && m->dst && strcmp(m->dst, c->target) == 0) : m->pub)
		return true;
	struct entry *e = push(c);
	e->at = m->at;
	e->pub = m->pub;
	e->read = m->read;
	e->id = m->id;
	e->from = xstrdup(m->src ? m->src : "");
	e->to = m->dst ? xstrdup(m->dst) : NULL;
	e->text = xstrdup(m->text ? m->text : "");
	e->msg_id = xstrdup(m->msg_id ? m->msg_id : "");
	return true;
}

static bool got_out(void *ctx, const struct sent_msg *m)
{
	struct collect *c = ctx;
	struct entry *e = push(c);

	e->at = m->at;
	e->out = true;
	e->pub = m->pub;
	e->reached = m->reached;
	e->to = xstrdup(m->dst ? m->dst : "");
	e->text = xstrdup(m->text ? m->text : "");
	e->msg_id = xstrdup(m->msg_id ? m->msg_id : "");
	e->outcome = xstrdup(m->outcome ? m->outcome : "");
	return true;
}

static int by_time(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return (x->at > y->at) - (x->at < y->at);
}

static void kstr(yajl_gen g, const char *k, const char *v)
{
	jg_str(g, k);
	if (v == NULL || jg_str(g, v) != 0)
		jg_null(g);
}

void m_history(struct ctl_req *req, jval params)
{
	struct node *n = ctl_node(req);
	struct storage *st;
	const char *peer = json_get_str(params, "peer");
	jval lim = json_get(params, "limit");
	long long limit = 50;

	if (lim && !json_is_null(lim) && (!json_int(lim, &limit) || limit < 1 || limit > HISTORY_MAX))
		peer = NULL;
	if (peer == NULL || !(peer_id_valid(peer) || strcmp(peer, "*") == 0 ||
			      (peer[0] == '#' && peer[1] && name_valid(peer + 1)))) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "history needs \"peer\" (a peer_id, "
			  "\"*\" or \"#namespace\") and an optional \"limit\" (1..%d)", HISTORY_MAX);
		return;
	}
	if ((st = ctl_storage(req, "history")) == NULL)
		return;
	struct collect c = { .target = peer_id_valid(peer) ? NULL : peer };
	/* Received: from that peer, or PUBs to that target (read through the
	 * inbox, newest first within its bound). */
	struct inbox_filter f = { .from = c.target ? NULL : peer,
				  .limit = c.target ? HISTORY_MAX : (int)limit };
	if (storage_inbox_list(st, &f, got_in, &c) < 0 ||
	    history_sent_list(st, peer, (int)limit, got_out, &c) < 0) {
		ctl_error(req, CTL_E_DELIVERY, "storage", "the database could not be read (see the log)");
		c.target = NULL;
	} else {
		qsort(c.v, c.n, sizeof *c.v, by_time);
		size_t first = c.n > (size_t)limit ? c.n - (size_t)limit : 0;
		const char *me = node_id(n);
		yajl_gen g = ctl_result_begin(req);
		jg_map(g);
		JG_KSTR(g, "peer", peer);
		jg_str(g, "messages");
		jg_arr(g);
		for (size_t i = first; i < c.n; i++) {
			struct entry *e = &c.v[i];
			jg_map(g);
			JG_KSTR(g, "dir", e->out ? "out" : "in");
			JG_KSTR(g, "type", e->pub ? "pub" : "message");
			ctl_gen_time(g, "at", e->at);
			kstr(g, "from", e->out ? me : e->from);
			kstr(g, "to", e->out ? e->to : (e->pub ? e->to : me));
			kstr(g, "text", e->text);
			kstr(g, "msg_id", e->msg_id);
			if (e->out) {
				kstr(g, "outcome", e->outcome);
				if (e->pub)
					JG_KINT(g, "reached", e->reached);
			} else {
				JG_KINT(g, "id", e->id);
				JG_KBOOL(g, "read", e->read);
			}
			jg_end_map(g);
		}
		jg_end_arr(g);
		JG_KINT(g, "count", (long long)(c.n - first));
		jg_end_map(g);
		ctl_result_end(req);
	}
	for (size_t i = 0; i < c.n; i++) {
		free(c.v[i].from);
		free(c.v[i].to);
		free(c.v[i].text);
		free(c.v[i].msg_id);
		free(c.v[i].outcome);
	}
	free(c.v);
}

/* ---- delete ---------------------------------------------------------------------- */

void m_delete(struct ctl_req *req, jval params)
{
	struct storage *st;
	jval ids = json_get(params, "ids");
	long long id;
	size_t n = json_arr_len(ids);
	bool bad = !YAJL_IS_ARRAY(ids) || n == 0 || n > HISTORY_MAX;

	for (size_t i = 0; !bad && i < n; i++)
		bad = !json_int(json_arr_at(ids, i), &id) || id < 1;
	if (bad) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "delete needs \"ids\": a list of inbox ids "
			  "(1..%d of them)", HISTORY_MAX);
		return;
	}
	if ((st = ctl_storage(req, "inbox")) == NULL)
		return;
	yajl_gen g = ctl_result_begin(req);
	long long deleted = 0;
	jg_map(g);
	jg_str(g, "missing");
	jg_arr(g);
	for (size_t i = 0; i < n; i++) {
		json_int(json_arr_at(ids, i), &id);
		long r = storage_inbox_delete(st, id);
		if (r > 0)
			deleted += r;
		else
			jg_int(g, id); /* not there (or the database refused: logged) */
	}
	jg_end_arr(g);
	JG_KINT(g, "deleted", deleted);
	JG_KINT(g, "unread", storage_unread(st));
	jg_end_map(g);
	ctl_result_end(req);
}

void conversation_subscriber(void *ctx, const struct node_event *ev)
{
	conversation_on_event(ctx, ev);
}
