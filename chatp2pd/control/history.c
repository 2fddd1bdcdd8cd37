#include "control/history.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "xmalloc.h"

void history_init(struct history *h, size_t cap)
{
	h->cap = cap > 0 ? cap : 1;
	h->ring = xcalloc(h->cap, sizeof *h->ring);
	h->len = h->start = 0;
}

void history_free(struct history *h)
{
	for (size_t i = 0; i < h->cap; i++)
		free(h->ring[i].buf);
	free(h->ring);
	h->ring = NULL;
}

struct hist_event *history_add(struct history *h, uint64_t seq, const char *const *strs, int n)
{
	struct hist_event *e;
	size_t need = 0, lens[4];

	if (h->len == h->cap) {
		h->start = (h->start + 1) % h->cap;
		h->len--;
	}
	e = &h->ring[(h->start + h->len) % h->cap];
	h->len++;
	for (int i = 0; i < n; i++) {
		lens[i] = strs[i] ? strlen(strs[i]) + 1 : 0;
		need += lens[i];
	}
	/* The slot keeps its buffer for the next event: no allocation per
	 * event once the ring has gone round, unless one is longer (a big
	 * one's room is given back when a small one takes the slot). */
	if (need > e->cap || (e->cap > 8192 && need < e->cap / 4)) {
		free(e->buf);
		e->cap = need > 256 ? need : 256;
		e->buf = xmalloc(e->cap);
	}
	char *p = e->buf;
	for (int i = 0; i < 4; i++) {
		if (i >= n || strs[i] == NULL) {
			e->s[i] = NULL;
			continue;
		}
		memcpy(p, strs[i], lens[i]);
		e->s[i] = p;
		p += lens[i];
	}
	e->seq = seq;
	e->rtt_ms = 0;
	e->num = 0;
	e->flag = false;
	e->level = LOGL_INFO;
	return e;
}

static void kstr_opt(yajl_gen g, const char *k, const char *v)
{
	if (v == NULL)
		return;
	jg_str(g, k);
	/* Peers' text was checked as UTF-8 by the parser; be safe anyway. */
	if (jg_str(g, v) != 0)
		jg_null(g);
}

void history_render(const struct hist_event *e, struct buf *out)
{
	static yajl_gen g;

	if (g == NULL)
		g = jg_new();
	jg_map(g);
	JG_KSTR(g, "jsonrpc", "2.0");
	JG_KSTR(g, "method", "event");
	jg_str(g, "params");
	jg_map(g);
	JG_KINT(g, "seq", (long long)e->seq);
	JG_KSTR(g, "type", e->kind == HIST_LOG ? "log" : node_event_name((enum node_event_type)e->kind));
	JG_KSTR(g, "at", e->at);
	switch (e->kind) {
	case EV_MESSAGE:
	case EV_PUB:
		kstr_opt(g, "from", e->s[0]);
		kstr_opt(g, "to", e->s[1]);
		kstr_opt(g, "text", e->s[2]);
		kstr_opt(g, "msg_id", e->s[3]);
		if (e->flag)
			JG_KBOOL(g, "src_mismatch", true);
		if (e->num > 0)
			JG_KINT(g, "id", e->num);
		break;
	case EV_ACK:
	case EV_ACK_TIMEOUT:
		kstr_opt(g, "peer_id", e->s[0]);
		kstr_opt(g, "msg_id", e->s[1]);
		if (e->kind == EV_ACK) {
			jg_str(g, "rtt_ms");
			jg_double(g, e->rtt_ms, 3);
			if (e->flag)
				JG_KBOOL(g, "late", true);
		}
		break;
	case EV_REGISTRATION:
		kstr_opt(g, "state", e->s[0]);
		kstr_opt(g, "error", e->s[1]);
		JG_KINT(g, "ttl", e->num);
		break;
	case HIST_LOG:
		kstr_opt(g, "level", e->s[0]);
		kstr_opt(g, "module", e->s[1]);
		kstr_opt(g, "text", e->s[2]);
		break;
	default:
		kstr_opt(g, "peer_id", e->s[0]);
		kstr_opt(g, "reason", e->s[1]);
		if (e->kind == EV_PEER_CONNECTED)
			JG_KBOOL(g, "reconnected", e->flag);
		break;
	}
	jg_end_map(g); /* params */
	jg_end_map(g);
	jg_finish(g, out);
}
