#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "peerid.h"
#include "timeutil.h"
#include "xmalloc.h"
#include <yajl/yajl_parse.h>

static const char *const type_names[PM__COUNT] = {
	[PM_UNKNOWN] = "UNKNOWN",
	[PM_HELLO] = "HELLO",
	[PM_HELLO_OK] = "HELLO_OK",
	[PM_PING] = "PING",
	[PM_PONG] = "PONG",
	[PM_SEND] = "SEND",
	[PM_ACK] = "ACK",
	[PM_PUB] = "PUB",
	[PM_BYE] = "BYE",
	[PM_BYE_OK] = "BYE_OK",
};

static const struct {
	const char *name;
	unsigned bit;
} features[] = {
	{ "ack", FEAT_ACK },
	{ "metrics", FEAT_METRICS },
	{ "pipeline", FEAT_PIPELINE },
	{ "tls", FEAT_TLS },
	{ "starttls", FEAT_STARTTLS },
};

const char *pmsg_type_name(enum pmsg_type t)
{
	if ((unsigned)t >= PM__COUNT)
		return type_names[PM_UNKNOWN];
	return type_names[t];
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- peer protocol: parsing ------------------------------------------- */

/* Only the required fields are checked, per type; everything else is
 * optional and wrong types read as absent (PROTOCOL.md §4).  A bare ACK
 * without msg_id is refused: it can be matched to no SEND. */
static const char *missing_field(const struct pmsg *m)
{
	switch (m->type) {
	case PM_HELLO:
		return m->peer_id == NULL ? "peer_id" : NULL;
	case PM_HELLO_OK:
		/* The dialler knows whom it dialled (PROTOCOL.md §4). */
		return NULL;
	case PM_PING:
	case PM_PONG:
	case PM_ACK:
		return m->msg_id == NULL ? "msg_id" : NULL;
	case PM_SEND:
		/* dst may be absent: the connection says who we are. */
		if (m->msg_id == NULL)
			return "msg_id";
		return m->payload == NULL ? "payload" : NULL;
	case PM_PUB:
		/* dst is what tells a receiver whether the PUB is for it. */
		if (m->msg_id == NULL)
			return "msg_id";
		if (m->payload == NULL)
			return "payload";
		return m->dst == NULL ? "dst" : NULL;
	default:
		return NULL; /* BYE, BYE_OK, unknown types: nothing required */
	}
}

/* ---- the event parser ----
 * A SEND is parsed on every message: yajl's event parser into the fields
 * directly, strings into the pmsg's own arena, yajl's memory from a stack
 * scratch.  Same reading as before (json_get on a tree): the last of
 * duplicate keys wins, a value of the wrong type reads as absent. */

enum pkey { K_OTHER, K_TYPE, K_PEER_ID, K_VERSION, K_FEATURES, K_MSG_ID, K_SRC, K_DST, K_DEST,
	    K_PAYLOAD, K_REASON, K_TIMESTAMP, K_REQUIRE_ACK, K_TTL };

static const struct {
	const char *name;
	size_t len;
	enum pkey k;
} pkeys[] = {
#define PK(s, k) { s, sizeof s - 1, k }
	PK("type", K_TYPE), PK("msg_id", K_MSG_ID), PK("src", K_SRC), PK("dst", K_DST),
	PK("payload", K_PAYLOAD), PK("timestamp", K_TIMESTAMP), PK("require_ack", K_REQUIRE_ACK),
	PK("ttl", K_TTL), PK("peer_id", K_PEER_ID), PK("version", K_VERSION),
	PK("features", K_FEATURES), PK("dest", K_DEST), PK("reason", K_REASON),
#undef PK
};

struct pp {
	struct pmsg *m;
	char *arena;
	size_t used;
	int depth;
	bool root_map;
	enum pkey k;
	bool in_features;           /* inside the top-level "features" array */
	const char *dst, *dest;
};

/* A scalar or container start at the current depth: is it the value of a
 * top-level key?  Then set (or, wrong type, clear) that field. */
static void pv_str(struct pp *p, const char *s)
{
	struct pmsg *m = p->m;

	if (p->depth == 2 && p->in_features) {
		for (size_t j = 0; s != NULL && j < sizeof features / sizeof features[0]; j++)
			if (strcmp(s, features[j].name) == 0)
				m->features |= features[j].bit;
		return;
	}
	if (p->depth != 1)
		return;
	/* An identifier: "" can match nothing. */
	const char *id = s != NULL && s[0] != '\0' ? s : NULL;
	switch (p->k) {
	case K_TYPE: m->type_str = s; break;
	case K_PEER_ID: m->peer_id = id; break;
	case K_VERSION: m->version = s; break;
	case K_FEATURES: m->features = 0; break;
	case K_MSG_ID: m->msg_id = id; break;
	case K_SRC: m->src = s; break;
	case K_DST: p->dst = s; break;
	case K_DEST: p->dest = s; break;
	case K_PAYLOAD: m->payload = s; break;
	case K_REASON: m->reason = s; break;
	case K_TIMESTAMP: m->timestamp = s; break;
	case K_REQUIRE_ACK: m->require_ack = -1; break;
	case K_TTL: m->ttl = -1; break;
	case K_OTHER: break;
	}
}

static int pcb_null(void *ctx)
{
	pv_str(ctx, NULL);
	return 1;
}

/* true, false, or Python-style truthy integers; anything else is "absent". */
static int pcb_bool(void *ctx, int b)
{
	struct pp *p = ctx;

	pv_str(p, NULL);
	if (p->depth == 1 && p->k == K_REQUIRE_ACK)
		p->m->require_ack = b != 0;
	return 1;
}

static int pcb_number(void *ctx, const char *s, size_t len)
{
	struct pp *p = ctx;
	char tmp[32], *end;

	pv_str(p, NULL);
	if (p->depth != 1 || (p->k != K_REQUIRE_ACK && p->k != K_TTL))
		return 1;
	/* Integral only (no fraction, no exponent, fits), as json_int() read it. */
	if (len >= sizeof tmp || memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len))
		return 1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	long long n = strtoll(tmp, &end, 10);
	if (errno != 0 || *end != '\0')
		return 1;
	if (p->k == K_REQUIRE_ACK)
		p->m->require_ack = n != 0;
	else if (n >= 0)
		p->m->ttl = n;
	return 1;
}

static int pcb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct pp *p = ctx;
	char *d = p->arena + p->used;

	if (p->depth != 1 && !(p->depth == 2 && p->in_features))
		return 1;
	memcpy(d, s, len);
	d[len] = '\0';
	p->used += len + 1;
	pv_str(p, d);
	return 1;
}

static int pcb_key(void *ctx, const unsigned char *s, size_t len)
{
	struct pp *p = ctx;

	if (p->depth != 1)
		return 1;
	p->k = K_OTHER;
	for (size_t i = 0; i < sizeof pkeys / sizeof pkeys[0]; i++)
		if (pkeys[i].len == len && memcmp(pkeys[i].name, s, len) == 0) {
			p->k = pkeys[i].k;
			break;
		}
	return 1;
}

static int pcb_start_map(void *ctx)
{
	struct pp *p = ctx;

	if (p->depth == 0)
		p->root_map = true;
	else
		pv_str(p, NULL);
	return ++p->depth <= JSON_MAX_DEPTH; /* deeper: yajl stops, the line is refused */
}

static int pcb_start_array(void *ctx)
{
	struct pp *p = ctx;

	if (p->depth > 0)
		pv_str(p, NULL);
	if (p->depth == 1 && p->k == K_FEATURES)
		p->in_features = true;
	return ++p->depth <= JSON_MAX_DEPTH;
}

static int pcb_end(void *ctx)
{
	struct pp *p = ctx;

	p->depth--;
	if (p->depth == 1)
		p->in_features = false;
	return 1;
}

static const yajl_callbacks pcallbacks = {
	.yajl_null = pcb_null,
	.yajl_boolean = pcb_bool,
	.yajl_number = pcb_number,
	.yajl_string = pcb_string,
	.yajl_start_map = pcb_start_map,
	.yajl_map_key = pcb_key,
	.yajl_end_map = pcb_end,
	.yajl_start_array = pcb_start_array,
	.yajl_end_array = pcb_end,
};

enum pmsg_status pmsg_parse(const char *line, size_t len, struct pmsg *out, char *err, size_t errlen)
{
	char jerr[128];
	const char *missing;
	struct json_scratch sc;
	struct pp p;
	yajl_handle h;
	char *text;
	bool ok;

	memset(out, 0, offsetof(struct pmsg, inl));
	out->require_ack = -1;
	out->ttl = -1;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	/* The text (a writable copy for json_prescan) and the strings: one
	 * block, in the struct when the line is short. */
	if (2 * (len + 1) <= sizeof out->inl) {
		out->arena = out->inl;
	} else {
		out->arena = xmalloc(2 * (len + 1));
		out->arena_heap = true;
	}
	text = out->arena + len + 1;
	if (len > 0)
		memcpy(text, line, len);
	text[len] = '\0';
	if (!json_prescan(text, len, jerr, sizeof jerr)) {
		seterr(err, errlen, "%s", jerr);
		return PMSG_BAD_JSON;
	}
	memset(&p, 0, sizeof p);
	p.m = out;
	p.arena = out->arena;
	json_scratch_init(&sc);
	h = yajl_alloc(&pcallbacks, &sc.funcs, &p);
	yajl_config(h, yajl_allow_comments, 1); /* as yajl_tree_parse() does */
	ok = yajl_parse(h, (const unsigned char *)text, len) == yajl_status_ok &&
	     yajl_complete_parse(h) == yajl_status_ok;
	if (!ok) {
		unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)text, len);
		/* yajl's message spans lines; keep the first one. */
		seterr(err, errlen, "%.*s", (int)strcspn((const char *)e, "\n"), (const char *)e);
		yajl_free_error(h, e);
		yajl_free(h);
		return PMSG_BAD_JSON;
	}
	yajl_free(h);
	if (!p.root_map) {
		seterr(err, errlen, "not a JSON object");
		return PMSG_BAD_JSON;
	}
	if (out->type_str == NULL) {
		seterr(err, errlen, "no string \"type\"");
		return PMSG_BAD_JSON;
	}
	/* Case-sensitive on the peer protocol: "send" is an unknown type. */
	out->type = PM_UNKNOWN;
	for (int t = PM_UNKNOWN + 1; t < PM__COUNT; t++) {
		if (strcmp(out->type_str, type_names[t]) == 0) {
			out->type = (enum pmsg_type)t;
			break;
		}
	}
	out->dst = p.dst != NULL ? p.dst : p.dest;

	if ((missing = missing_field(out)) != NULL) {
		seterr(err, errlen, "%s without %s", type_names[out->type], missing);
		return PMSG_BAD_FIELDS;
	}
	return PMSG_OK;
}

void pmsg_free(struct pmsg *m)
{
	if (m->arena_heap)
		free(m->arena);
	memset(m, 0, offsetof(struct pmsg, inl));
}

/* ---- building --------------------------------------------------------- */

/* One message under construction.  A string that fails (invalid UTF-8, or
 * NULL) marks the whole message bad; it is then never appended. */
struct mb {
	yajl_gen g;
	bool bad;
	struct json_scratch sc;     /* the generator's memory: no malloc per line */
};

static void mb_begin(struct mb *b, const char *type)
{
	json_scratch_init(&b->sc);
	b->g = jg_new_scratch(&b->sc);
	b->bad = false;
	jg_map(b->g);
	JG_KSTR(b->g, "type", type);
}

static void mb_str(struct mb *b, const char *key, const char *val)
{
	if (val == NULL || jg_str(b->g, key) == -1 || jg_str(b->g, val) == -1)
		b->bad = true;
}

static void mb_int(struct mb *b, const char *key, long long val)
{
	JG_KINT(b->g, key, val);
}

static void mb_bool(struct mb *b, const char *key, bool val)
{
	JG_KBOOL(b->g, key, val);
}

static void mb_timestamp(struct mb *b)
{
	char ts[ISO8601_LEN];

	iso8601_now(ts, false);
	mb_str(b, "timestamp", ts);
}

static int mb_end(struct mb *b, struct buf *out)
{
	int rc = -1;

	jg_end_map(b->g);
	if (!b->bad)
		rc = jg_finish(b->g, out);
	jg_free(b->g);
	return rc;
}

int pmsg_build_hello(struct buf *out, bool ok, const char *peer_id, unsigned feats)
{
	struct mb b;

	mb_begin(&b, ok ? "HELLO_OK" : "HELLO");
	mb_str(&b, "peer_id", peer_id);
	mb_str(&b, "version", PROTO_VERSION);
	jg_str(b.g, "features");
	jg_arr(b.g);
	for (size_t j = 0; j < sizeof features / sizeof features[0]; j++)
		if (feats & features[j].bit)
			jg_str(b.g, features[j].name);
	jg_end_arr(b.g);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_ping(struct buf *out, const char *msg_id)
{
	struct mb b;

	mb_begin(&b, "PING");
	mb_str(&b, "msg_id", msg_id);
	mb_timestamp(&b);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_pong(struct buf *out, const char *msg_id)
{
	struct mb b;

	mb_begin(&b, "PONG");
	mb_str(&b, "msg_id", msg_id);
	mb_timestamp(&b);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_send(struct buf *out, const char *msg_id, const char *src, const char *dst,
		    const char *payload, bool require_ack)
{
	struct mb b;

	mb_begin(&b, "SEND");
	mb_str(&b, "msg_id", msg_id);
	mb_str(&b, "src", src);
	mb_str(&b, "dst", dst);
	mb_str(&b, "payload", payload);
	mb_bool(&b, "require_ack", require_ack);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

/* Printable ASCII that JSON writes as is (yajl escapes '"', '\\' and
 * control characters; '/' only on request, which we do not make). */
static bool plain(const char *s, size_t *len)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '"' ||
		    s[i] == '\\')
			return false;
	*len = i;
	return true;
}

int pmsg_build_ack(struct buf *out, const char *msg_id)
{
	struct mb b;
	size_t idlen;

	/* One per SEND received: the usual id needs no escaping, so the line
	 * is put together directly, byte for byte what the generator writes. */
	if (msg_id != NULL && plain(msg_id, &idlen)) {
		static const char a[] = "{\"type\":\"ACK\",\"msg_id\":\"", c[] = "\",\"timestamp\":\"",
				  e[] = "\",\"ttl\":1}\n";
		char ts[ISO8601_LEN];

		iso8601_now(ts, false);
		buf_reserve(out, sizeof a + idlen + sizeof c + strlen(ts) + sizeof e);
		buf_append(out, a, sizeof a - 1);
		buf_append(out, msg_id, idlen);
		buf_append(out, c, sizeof c - 1);
		buf_append(out, ts, strlen(ts));
		buf_append(out, e, sizeof e - 1);
		return 0;
	}

	mb_begin(&b, "ACK");
	mb_str(&b, "msg_id", msg_id);
	mb_timestamp(&b);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_pub(struct buf *out, const char *msg_id, const char *src, const char *dst,
		   const char *payload)
{
	struct mb b;

	mb_begin(&b, "PUB");
	mb_str(&b, "msg_id", msg_id);
	mb_str(&b, "src", src);
	mb_str(&b, "dst", dst);
	mb_str(&b, "payload", payload);
	mb_bool(&b, "require_ack", false);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_bye(struct buf *out, const char *msg_id, const char *src, const char *dst,
		   const char *reason)
{
	struct mb b;

	mb_begin(&b, "BYE");
	mb_str(&b, "msg_id", msg_id);
	mb_str(&b, "src", src);
	mb_str(&b, "dst", dst);
	/* Some peers read reason unconditionally: never omit it. */
	mb_str(&b, "reason", reason != NULL ? reason : "");
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

int pmsg_build_bye_ok(struct buf *out, const char *msg_id, const char *src, const char *dst)
{
	struct mb b;

	mb_begin(&b, "BYE_OK");
	mb_str(&b, "msg_id", msg_id);
	mb_str(&b, "src", src);
	mb_str(&b, "dst", dst);
	mb_int(&b, "ttl", 1);
	return mb_end(&b, out);
}

enum pub_target pub_target_parse(const char *dst, const char **rest)
{
	const char *dummy;

	if (rest == NULL)
		rest = &dummy;
	*rest = NULL;
	if (dst == NULL)
		return PUB_INVALID;
	if (strcmp(dst, "*") == 0)
		return PUB_ALL;
	if (dst[0] == '#') {
		if (!name_valid(dst + 1))
			return PUB_INVALID;
		*rest = dst + 1;
		return PUB_NS;
	}
	if (strchr(dst, '@') != NULL) {
		if (!peer_id_valid(dst))
			return PUB_INVALID;
		*rest = dst;
		return PUB_PEER;
	}
	/* Some peers write the namespace bare ("CIC" for "#CIC"). */
	if (!name_valid(dst))
		return PUB_INVALID;
	*rest = dst;
	return PUB_NS;
}

/* ---- rendezvous protocol ---------------------------------------------- */

int rdv_build_register(struct buf *out, const char *ns, const char *name, int port, long long ttl)
{
	struct mb b;

	mb_begin(&b, "REGISTER");
	mb_str(&b, "namespace", ns);
	mb_str(&b, "name", name);
	mb_int(&b, "port", port);
	mb_int(&b, "ttl", ttl);
	return mb_end(&b, out);
}

int rdv_build_discover(struct buf *out, const char *ns)
{
	struct mb b;

	mb_begin(&b, "DISCOVER");
	if (ns != NULL)
		mb_str(&b, "namespace", ns);
	return mb_end(&b, out);
}

int rdv_build_unregister(struct buf *out, const char *ns, const char *name, int port)
{
	struct mb b;

	mb_begin(&b, "UNREGISTER");
	mb_str(&b, "namespace", ns);
	if (name != NULL)
		mb_str(&b, "name", name);
	if (port != 0)
		mb_int(&b, "port", port);
	return mb_end(&b, out);
}

/* rdv_reply_parse() is in rdv_reply.c. */
