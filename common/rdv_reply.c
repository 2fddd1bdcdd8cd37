/* Rendezvous replies (PROTOCOL.md section 1), parsed with yajl's event
 * parser: a DISCOVER lists every registration on one line, and a tree of it
 * (seven values per peer, each its own allocation) cost 16 ms for 10,000
 * peers, nearly all of it in malloc/free.  Here the strings go into one
 * arena the size of the line (a decoded string plus its NUL never takes
 * more bytes than the quoted original) and the peers into one array. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

#include "json.h"
#include "msg.h"
#include "xmalloc.h"

/* Fields of the reply object, and of each entry of "peers". */
enum top_key { T_OTHER, T_STATUS, T_MESSAGE, T_ERROR, T_IP, T_OBS_IP, T_PORT, T_OBS_PORT,
	       T_TTL, T_PEERS };
enum peer_key { P_OTHER, P_IP, P_NAME, P_NS, P_PORT, P_TTL, P_EXPIRES };

/* One value as the callbacks see it. */
enum vkind { V_NULL, V_BOOL, V_INT, V_NUM, V_STR, V_MAP, V_ARR };
struct val {
	enum vkind kind;
	const char *s; /* V_STR, in the arena */
	long long i;   /* V_INT */
};

struct rp {
	struct rdv_reply *out;
	size_t used;              /* arena bytes used */
	int depth;                /* containers open */
	bool root_map;            /* the text is an object */
	enum top_key tk;
	bool in_peers;            /* inside the top-level "peers" array */
	bool in_peer;             /* inside one of its objects */
	enum peer_key pk;
	struct rdv_peer cur;
	size_t cap;               /* peers allocated */
	const char *status, *error, *obs_ip;
	int obs_port;
};

/* A TCP port: an integer 1..65535, or the same as a string of digits (the
 * server accepts both, so older ones may echo either); 0 otherwise. */
static int parse_port(const struct val *v)
{
	long long n = 0;

	if (v->kind == V_INT) {
		n = v->i;
	} else if (v->kind == V_STR && v->s[0] != '\0') {
		for (const char *s = v->s; *s != '\0'; s++) {
			if (*s < '0' || *s > '9' || n > 65535)
				return 0;
			n = n * 10 + (*s - '0');
		}
	}
	return n >= 1 && n <= 65535 ? (int)n : 0;
}

/* "…The block will be lifted in 42 seconds." -> 42; -1 if not a block. */
static long parse_blocked(const char *msg)
{
	static const char marker[] = "lifted in ";
	const char *p;
	long n = 0;

	if (msg == NULL || (p = strstr(msg, marker)) == NULL)
		return -1;
	p += sizeof marker - 1;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if (n < 86400 * 365) /* clamp: no overflow on hostile digits */
			n = n * 10 + (*p - '0');
	return n;
}

static const char *str_of(const struct val *v)
{
	return v->kind == V_STR ? v->s : NULL;
}

static long long ll_of(const struct val *v)
{
	return v->kind == V_INT ? v->i : -1;
}

static void peer_reset(struct rdv_peer *p)
{
	memset(p, 0, sizeof *p);
	p->ttl = p->expires_in = -1;
}

/* A value (a container: its start) at the current depth. */
static void value(struct rp *r, const struct val *v)
{
	struct rdv_reply *o = r->out;

	if (r->depth == 1) {
		switch (r->tk) {
		case T_STATUS: r->status = str_of(v); break;
		case T_MESSAGE: o->message = str_of(v); break;
		case T_ERROR: r->error = str_of(v); break;
		case T_IP: o->ip = str_of(v); break;
		case T_OBS_IP: r->obs_ip = str_of(v); break;
		case T_PORT: o->port = parse_port(v); break;
		case T_OBS_PORT: r->obs_port = parse_port(v); break;
		case T_TTL: o->ttl = ll_of(v); break;
		case T_PEERS:
			/* The last "peers" wins; anything but an array lists none. */
			o->npeers = 0;
			r->in_peers = v->kind == V_ARR;
			break;
		case T_OTHER: break;
		}
	} else if (r->depth == 2 && r->in_peers) {
		r->in_peer = v->kind == V_MAP;
		if (r->in_peer)
			peer_reset(&r->cur);
	} else if (r->depth == 3 && r->in_peer) {
		switch (r->pk) {
		case P_IP: r->cur.ip = str_of(v); break;
		case P_NAME: r->cur.name = str_of(v); break;
		case P_NS: r->cur.ns = str_of(v); break;
		case P_PORT: r->cur.port = parse_port(v); break;
		case P_TTL: r->cur.ttl = ll_of(v); break;
		case P_EXPIRES: r->cur.expires_in = ll_of(v); break;
		case P_OTHER: break;
		}
	}
}

/* Name validity (peer_id rules) is the caller's check. */
static void peer_done(struct rp *r)
{
	struct rdv_peer *p = &r->cur;
	struct rdv_reply *o = r->out;

	r->in_peer = false;
	if (p->ip == NULL || p->ip[0] == '\0' || p->name == NULL || p->name[0] == '\0' ||
	    p->ns == NULL || p->ns[0] == '\0' || p->port == 0)
		return;
	if (o->npeers == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		o->peers = xrealloc(o->peers, r->cap * sizeof *o->peers);
	}
	o->peers[o->npeers++] = *p;
}

static int cb_null(void *ctx)
{
	struct val v = { .kind = V_NULL };

	value(ctx, &v);
	return 1;
}

static int cb_bool(void *ctx, int b)
{
	struct val v = { .kind = V_BOOL, .i = b };

	value(ctx, &v);
	return 1;
}

/* Integral (no fraction, no exponent, fits a long long), as json_int() reads it. */
static int cb_number(void *ctx, const char *s, size_t len)
{
	struct val v = { .kind = V_NUM };
	char tmp[32], *end;

	if (len < sizeof tmp && memchr(s, '.', len) == NULL && memchr(s, 'e', len) == NULL &&
	    memchr(s, 'E', len) == NULL) {
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		errno = 0;
		long long n = strtoll(tmp, &end, 10);
		if (errno == 0 && *end == '\0') {
			v.kind = V_INT;
			v.i = n;
		}
	}
	value(ctx, &v);
	return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct rp *r = ctx;
	struct val v = { .kind = V_STR };

	/* Only strings something keeps go to the arena. */
	if (r->depth == 1 || (r->depth == 3 && r->in_peer)) {
		char *d = r->out->arena + r->used;
		memcpy(d, s, len);
		d[len] = '\0';
		r->used += len + 1;
		v.s = d;
	} else {
		v.s = "";
	}
	value(r, &v);
	return 1;
}

static bool key_is(const unsigned char *k, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(k, name, len) == 0;
}

static int cb_key(void *ctx, const unsigned char *k, size_t len)
{
	struct rp *r = ctx;

	if (r->depth == 1) {
		static const struct { const char *name; enum top_key k; } top[] = {
			{ "status", T_STATUS }, { "message", T_MESSAGE }, { "error", T_ERROR },
			{ "ip", T_IP }, { "observed_ip", T_OBS_IP }, { "port", T_PORT },
			{ "observed_port", T_OBS_PORT }, { "ttl", T_TTL }, { "peers", T_PEERS },
		};
		r->tk = T_OTHER;
		for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
			if (key_is(k, len, top[i].name))
				r->tk = top[i].k;
	} else if (r->depth == 3 && r->in_peer) {
		static const struct { const char *name; enum peer_key k; } pk[] = {
			{ "ip", P_IP }, { "name", P_NAME }, { "namespace", P_NS }, { "port", P_PORT },
			{ "ttl", P_TTL }, { "expires_in", P_EXPIRES },
		};
		r->pk = P_OTHER;
		for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++)
			if (key_is(k, len, pk[i].name))
				r->pk = pk[i].k;
	}
	return 1;
}

static int cb_start_map(void *ctx)
{
	struct rp *r = ctx;
	struct val v = { .kind = V_MAP };

	if (r->depth == 0)
		r->root_map = true;
	else
		value(r, &v);
	return ++r->depth <= JSON_MAX_DEPTH;
}

static int cb_end_map(void *ctx)
{
	struct rp *r = ctx;

	r->depth--;
	if (r->depth == 2 && r->in_peer)
		peer_done(r);
	return 1;
}

static int cb_start_array(void *ctx)
{
	struct rp *r = ctx;
	struct val v = { .kind = V_ARR };

	if (r->depth > 0)
		value(r, &v);
	return ++r->depth <= JSON_MAX_DEPTH;
}

static int cb_end_array(void *ctx)
{
	struct rp *r = ctx;

	r->depth--;
	if (r->depth == 1)
		r->in_peers = false;
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = cb_null,
	.yajl_boolean = cb_bool,
	.yajl_number = cb_number,
	.yajl_string = cb_string,
	.yajl_start_map = cb_start_map,
	.yajl_map_key = cb_key,
	.yajl_end_map = cb_end_map,
	.yajl_start_array = cb_start_array,
	.yajl_end_array = cb_end_array,
};

int rdv_reply_parse(const char *line, size_t len, struct rdv_reply *out)
{
	char jerr[128], *text;
	struct rp r;
	yajl_handle h;
	bool ok;

	memset(out, 0, sizeof *out);
	out->ttl = -1;
	out->blocked_for = -1;
	/* The same checks and repairs as every other JSON we read. */
	text = xmalloc(len + 1);
	if (len > 0)
		memcpy(text, line, len);
	text[len] = '\0';
	if (!json_prescan(text, len, jerr, sizeof jerr)) {
		free(text);
		return -1;
	}
	memset(&r, 0, sizeof r);
	r.out = out;
	out->arena = xmalloc(len + 1);
	h = yajl_alloc(&callbacks, NULL, &r);
	yajl_config(h, yajl_allow_comments, 1); /* as yajl_tree_parse() does */
	ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
	     yajl_complete_parse(h) == yajl_status_ok;
	yajl_free(h);
	free(text);
	if (!ok || !r.root_map || r.status == NULL) {
		rdv_reply_free(out);
		out->ttl = -1;
		out->blocked_for = -1;
		return -1;
	}
	out->ok = strcasecmp(r.status, "OK") == 0;
	/* Older servers wrote "error" and "observed_ip"/"observed_port". */
	if (out->message == NULL)
		out->message = r.error;
	if (out->ip == NULL)
		out->ip = r.obs_ip;
	if (out->port == 0)
		out->port = r.obs_port;
	if (!out->ok)
		out->blocked_for = parse_blocked(out->message);
	return 0;
}

void rdv_reply_free(struct rdv_reply *r)
{
	free(r->peers);
	free(r->arena);
	memset(r, 0, sizeof *r);
}
