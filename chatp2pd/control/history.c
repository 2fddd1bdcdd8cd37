#include "control/history.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
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

	if (n > (int)(sizeof e->s / sizeof *e->s))
		n = (int)(sizeof e->s / sizeof *e->s);
	size_t need = 0, lens[5];

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
	for (int i = 0; i < (int)(sizeof e->s / sizeof *e->s); i++) {
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
	e->flag2 = false;
	e->identity = NULL;
	e->level = LOGL_INFO;
	return e;
}

/* ---- rendering: a JSON writer for these few shapes ----------------------
 * Written by hand, straight into the output: the same text as the yajl
 * generator makes (no spaces; ", \, control characters escaped, \u00XX
 * upper-case), at a fraction of its cost per event. */

/* A JSON string, or null if s is not valid UTF-8 (as jg_str() refuses it). */
static void put_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), start = b->len, i = 0, run = 0;

	buf_reserve(b, len + 2);
	b->data[b->len++] = '"';
	while (i < len) {
		unsigned char ch = p[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x80) {
			i++;
			run++;
			continue;
		}
		buf_append(b, p + i - run, run);
		run = 0;
		if (ch >= 0x80) {
			size_t n = utf8_seq(p + i, len - i);
			if (n == 0) {
				b->len = start;
				buf_append(b, "null", 4);
				return;
			}
			buf_append(b, p + i, n);
			i += n;
			continue;
		}
		char esc[6] = { '\\', 0, '0', '0', 0, 0 };
		size_t elen = 2;
		switch (ch) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 0xf];
			elen = 6;
		}
		buf_append(b, esc, elen);
		i++;
	}
	buf_append(b, p + i - run, run);
	buf_append(b, "\"", 1);
}

/* ,"key": then a value: keys are ours, plain ASCII. */
static void put_key(struct buf *b, const char *key)
{
	size_t n = strlen(key);

	buf_reserve(b, n + 4);
	b->data[b->len++] = ',';
	b->data[b->len++] = '"';
	memcpy(b->data + b->len, key, n);
	b->len += n;
	b->data[b->len++] = '"';
	b->data[b->len++] = ':';
}

static void put_kstr(struct buf *b, const char *key, const char *v)
{
	if (v == NULL)
		return;
	put_key(b, key);
	put_string(b, v);
}

static void put_kint(struct buf *b, const char *key, long long v)
{
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	put_key(b, key);
	buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

static void put_kbool(struct buf *b, const char *key, bool v)
{
	put_key(b, key);
	buf_append(b, v ? "true" : "false", v ? 4 : 5);
}

/* As jg_double(v, 3): three decimals, '.' whatever the locale, null if not finite. */
static void put_kms(struct buf *b, const char *key, double v)
{
	char tmp[400];
	int n = isfinite(v) ? snprintf(tmp, sizeof tmp, "%.3f", v) : -1;

	put_key(b, key);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		buf_append(b, "null", 4);
		return;
	}
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
	buf_append(b, tmp, (size_t)n);
}

void history_render(const struct hist_event *e, struct buf *b)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":";
	char tmp[24], *p = tmp + sizeof tmp;
	uint64_t u = e->seq;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	buf_append(b, head, sizeof head - 1);
	buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
	put_kstr(b, "type", e->kind == HIST_LOG ? "log" : node_event_name((enum node_event_type)e->kind));
	put_kstr(b, "at", e->at);
	switch (e->kind) {
	case EV_MESSAGE:
	case EV_PUB:
		put_kstr(b, "from", e->s[0]);
		put_kstr(b, "to", e->s[1]);
		put_kstr(b, "text", e->s[2]);
		put_kstr(b, "msg_id", e->s[3]);
		if (e->flag)
			put_kbool(b, "src_mismatch", true);
		if (e->flag2)
			put_kbool(b, "dst_mismatch", true);
		if (e->identity)
			put_kstr(b, "identity", e->identity);
		/* PROTOCOL.md §5.3: TLS with a proved key, and which key. */
		put_kbool(b, "secure", e->s[4] != NULL);
		put_kstr(b, "fingerprint", e->s[4]);
		if (e->num > 0)
			put_kint(b, "id", e->num);
		break;
	case EV_ACK:
	case EV_ACK_TIMEOUT:
		put_kstr(b, "peer_id", e->s[0]);
		put_kstr(b, "msg_id", e->s[1]);
		if (e->kind == EV_ACK) {
			put_kms(b, "rtt_ms", e->rtt_ms);
			if (e->flag)
				put_kbool(b, "late", true);
		}
		break;
	case EV_REGISTRATION:
		put_kstr(b, "state", e->s[0]);
		put_kstr(b, "error", e->s[1]);
		put_kint(b, "ttl", e->num);
		break;
	case EV_IDENTITY_NEW:
	case EV_IDENTITY_CHANGED:
	case EV_IMPOSTOR:
		put_kstr(b, "peer_id", e->s[0]);
		put_kstr(b, "address", e->s[1]);
		put_kstr(b, e->kind == EV_IMPOSTOR ? "reason" : "fingerprint", e->s[2]);
		if (e->kind != EV_IDENTITY_NEW)
			put_kstr(b, "pinned", e->s[3]);
		break;
	case HIST_LOG:
		put_kstr(b, "level", e->s[0]);
		put_kstr(b, "module", e->s[1]);
		put_kstr(b, "text", e->s[2]);
		break;
	default:
		put_kstr(b, "peer_id", e->s[0]);
		put_kstr(b, "reason", e->s[1]);
		if (e->kind == EV_PEER_CONNECTED) {
			put_kbool(b, "reconnected", e->flag);
			if (e->identity)
				put_kstr(b, "identity", e->identity);
		}
		break;
	}
	buf_append(b, "}}\n", 3);
}
