#include "msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "peerid.h"
#include "timeutil.h"
#include "xmalloc.h"

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

/* An identifier (msg_id, peer_id): a string, and not empty, since "" can
 * match nothing. */
static const char *get_id(jval o, const char *key)
{
	const char *s = json_get_str(o, key);

	return s != NULL && s[0] != '\0' ? s : NULL;
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

static unsigned parse_features(jval arr)
{
	unsigned bits = 0;

	for (size_t i = 0; i < json_arr_len(arr); i++) {
		const char *s = json_str(json_arr_at(arr, i));

		if (s == NULL)
			continue;
		for (size_t j = 0; j < sizeof features / sizeof features[0]; j++)
			if (strcmp(s, features[j].name) == 0)
				bits |= features[j].bit;
	}
	return bits;
}

/* true, false, or Python-style truthy integers; anything else is "absent". */
static int parse_bool(jval v)
{
	long long n;
	int b = json_bool(v);

	if (b != -1)
		return b;
	if (json_int(v, &n))
		return n != 0;
	return -1;
}

enum pmsg_status pmsg_parse(const char *line, size_t len, struct pmsg *out, char *err, size_t errlen)
{
	char jerr[128];
	const char *missing;
	jval root;
	long long ttl;

	memset(out, 0, sizeof *out);
	out->require_ack = -1;
	out->ttl = -1;
	seterr(err, errlen, "%s", "");

	if ((root = json_parse(line, len, jerr, sizeof jerr)) == NULL) {
		seterr(err, errlen, "%s", jerr);
		return PMSG_BAD_JSON;
	}
	out->root = root;
	if (!YAJL_IS_OBJECT(root)) {
		seterr(err, errlen, "not a JSON object");
		return PMSG_BAD_JSON;
	}
	if ((out->type_str = json_get_str(root, "type")) == NULL) {
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

	/* Every field is read whatever the type; handlers look at theirs. */
	out->peer_id = get_id(root, "peer_id");
	out->version = json_get_str(root, "version");
	out->features = parse_features(json_get(root, "features"));
	out->msg_id = get_id(root, "msg_id");
	out->src = json_get_str(root, "src");
	if ((out->dst = json_get_str(root, "dst")) == NULL)
		out->dst = json_get_str(root, "dest");
	out->payload = json_get_str(root, "payload");
	out->reason = json_get_str(root, "reason");
	out->timestamp = json_get_str(root, "timestamp");
	out->require_ack = parse_bool(json_get(root, "require_ack"));
	if (json_int(json_get(root, "ttl"), &ttl) && ttl >= 0)
		out->ttl = ttl;

	if ((missing = missing_field(out)) != NULL) {
		seterr(err, errlen, "%s without %s", type_names[out->type], missing);
		return PMSG_BAD_FIELDS;
	}
	return PMSG_OK;
}

void pmsg_free(struct pmsg *m)
{
	json_free(m->root);
	memset(m, 0, sizeof *m);
}

/* ---- building --------------------------------------------------------- */

/* One message under construction.  A string that fails (invalid UTF-8, or
 * NULL) marks the whole message bad; it is then never appended. */
struct mb {
	yajl_gen g;
	bool bad;
};

static void mb_begin(struct mb *b, const char *type)
{
	b->g = jg_new();
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

int pmsg_build_ack(struct buf *out, const char *msg_id)
{
	struct mb b;

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
