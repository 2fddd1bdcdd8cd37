/* Request validation and replies of the rendezvous server role.  The order
 * of checks and the error strings are the public server's. */
#include "rendezvous/server/proto.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rendezvous/server/pyjson.h"
#include "xmalloc.h"

struct rdv_stream {
	size_t cursor;
	size_t listed;  /* entries written so far */
	char *ns;     /* only this namespace; NULL: every one */
	bool none;    /* the filter can match nothing: an empty list */
	bool started;
};

/* ---- replies ------------------------------------------------------------ */

/* Every reply is written as Python's json.dumps() would (pyjson.h). */
void rdv_reply_error(struct buf *out, const char *msg)
{
	buf_puts(out, "{");
	pyj_kstr(out, "status", "ERROR", 1);
	pyj_kstr(out, "message", msg, 0);
	buf_puts(out, "}\n");
}

void rdv_reply_too_long(struct buf *out)
{
	buf_puts(out, "{");
	pyj_kstr(out, "status", "ERROR", 1);
	pyj_kstr(out, "message", "line_too_long", 0);
	pyj_kint(out, "limit", RDV_LINE_MAX, 0);
	buf_puts(out, "}\n");
}

void rdv_reply_blocked(struct buf *out, const char *ip, int port, int limit, double left)
{
	char msg[256];
	long secs = left >= 1e9 ? 1000000000L : (long)ceil(left);

	if (secs < 1)
		secs = 1;
	snprintf(msg, sizeof msg,
		 "Connection from %s:%d has been blocked due to excessive login attempts "
		 "(limit: %d). The block will be lifted in %ld seconds.",
		 ip, port, limit, secs);
	rdv_reply_error(out, msg);
}

static void reply_ok(struct buf *out)
{
	buf_puts(out, "{");
	pyj_kstr(out, "status", "OK", 1);
	buf_puts(out, "}\n");
}

/* ---- Python's int(), len() and truthiness -------------------------------- */

static bool py_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* int("...") in base 10: surrounding whitespace, a sign, digits with single
 * underscores between them.  Out-of-range values saturate (Python has
 * bignums; every caller clamps or range-checks afterwards). */
static bool py_int_str(const char *s, long long *out)
{
	const char *end = s + strlen(s);
	bool neg = false, digit = false;
	unsigned long long v = 0;
	bool big = false;

	while (s < end && py_space((unsigned char)*s))
		s++;
	while (end > s && py_space((unsigned char)end[-1]))
		end--;
	if (s < end && (*s == '+' || *s == '-'))
		neg = *s++ == '-';
	for (; s < end; s++) {
		if (*s == '_') {
			if (!digit || s + 1 >= end || s[1] < '0' || s[1] > '9')
				return false;
			continue;
		}
		if (*s < '0' || *s > '9')
			return false;
		digit = true;
		if (v > (ULLONG_MAX - 9) / 10)
			big = true;
		else
			v = v * 10 + (unsigned)(*s - '0');
	}
	if (!digit)
		return false;
	if (big || v > (unsigned long long)LLONG_MAX)
		*out = neg ? LLONG_MIN : LLONG_MAX;
	else
		*out = neg ? -(long long)v : (long long)v;
	return true;
}

/* int(v) for a JSON value; false where Python raises (and for booleans). */
static bool py_int(jval v, long long *out)
{
	double d;

	if (json_int(v, out))
		return true;
	if (json_num(v, &d)) {
		if (d >= 9.2e18)
			*out = LLONG_MAX;
		else if (d <= -9.2e18)
			*out = LLONG_MIN;
		else
			*out = (long long)d; /* truncates toward zero, as int() */
		return true;
	}
	if (json_str(v) != NULL)
		return py_int_str(json_str(v), out);
	return false;
}

/* len() of a str: code points, i.e. bytes that do not continue one. */
static size_t utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static bool good_label(jval v)
{
	const char *s = json_str(v);
	size_t n;

	if (s == NULL)
		return false;
	n = utf8_len(s);
	return n >= 1 && n <= RDV_NAME_MAX;
}

/* Python's bool(v): absent, null, false, 0, "", [] and {} are false. */
static bool py_truthy(jval v)
{
	double d;

	if (v == NULL || json_is_null(v) || json_bool(v) == 0)
		return false;
	if (json_num(v, &d))
		return d != 0;
	if (json_str(v) != NULL)
		return json_str(v)[0] != '\0';
	if (YAJL_IS_ARRAY(v))
		return json_arr_len(v) > 0;
	if (YAJL_IS_OBJECT(v))
		return json_obj_len(v) > 0;
	return true;
}

/* For the log: control characters become '?' (no forged log lines), and a
 * cut never splits a UTF-8 sequence (the parser validated the text). */
static void printable(char *dst, size_t n, const char *src)
{
	size_t i = 0;

	if (n == 0)
		return;
	for (; *src && i + 1 < n; src++) {
		unsigned char c = (unsigned char)*src;
		dst[i++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	/* Cut short: drop the last multi-byte sequence whole, complete or not. */
	while (i > 0 && *src && ((unsigned char)dst[i - 1] & 0xc0) == 0x80)
		i--;
	if (i > 0 && *src && ((unsigned char)dst[i - 1] & 0xc0) == 0xc0)
		i--;
	dst[i] = '\0';
}

/* ---- commands ----------------------------------------------------------- */

struct req {
	struct rdv_store *st;
	const char *ip;
	jval obj;
	double now;
	struct buf *out;
	char *note;
	size_t notelen;
};

static void fail(struct req *r, const char *cmd, const char *code)
{
	char pcode[160];

	rdv_reply_error(r->out, code);
	if (r->note) {
		printable(pcode, sizeof pcode, code); /* "bad_port (<raw value>)" */
		snprintf(r->note, r->notelen, "%s: %s", cmd, pcode);
	}
}

static struct rdv_stream *cmd_register(struct req *r)
{
	jval name = json_get(r->obj, "name");
	jval ttlv = json_get(r->obj, "ttl");
	jval ns = json_get(r->obj, "namespace");
	long long ttl = RDV_TTL_DEFAULT, port;
	char pname[80], pns[80];

	if (!good_label(name)) {
		fail(r, "REGISTER", "bad_name");
		return NULL;
	}
	/* A present "ttl": null is a bad ttl, as int(None) raises. */
	if (ttlv != NULL && !py_int(ttlv, &ttl)) {
		fail(r, "REGISTER", "bad_ttl");
		return NULL;
	}
	ttl = ttl < RDV_TTL_MIN ? RDV_TTL_MIN : ttl > RDV_TTL_MAX ? RDV_TTL_MAX : ttl;
	if (!good_label(ns)) {
		fail(r, "REGISTER", "bad_namespace");
		return NULL;
	}
	if (!py_int(json_get(r->obj, "port"), &port) || port < 1 || port > 65535) {
		fail(r, "REGISTER", "bad_port");
		return NULL;
	}

	enum rdv_store_result res = rdv_store_register(r->st, r->ip, json_str(ns), json_str(name),
						       (int)port, (int)ttl, r->now);
	if (res == RDV_STORE_FULL) {
		fail(r, "REGISTER", RDV_MSG_FULL);
		return NULL;
	}
	if (res == RDV_STORE_IP_FULL) {
		fail(r, "REGISTER", RDV_MSG_IP_FULL);
		return NULL;
	}

	buf_puts(r->out, "{");
	pyj_kstr(r->out, "status", "OK", 1);
	pyj_kint(r->out, "ttl", ttl, 0);
	pyj_kstr(r->out, "ip", r->ip, 0);
	pyj_kint(r->out, "port", port, 0);
	buf_puts(r->out, "}\n");
	if (r->note) {
		printable(pname, sizeof pname, json_str(name));
		printable(pns, sizeof pns, json_str(ns));
		snprintf(r->note, r->notelen, "REGISTER %s@%s port %lld ttl %lld: OK (%s)", pname,
			 pns, port, ttl, res == RDV_STORE_NEW ? "new" : "updated");
	}
	return NULL;
}

static struct rdv_stream *cmd_discover(struct req *r)
{
	jval ns = json_get(r->obj, "namespace");
	struct rdv_stream *s = xcalloc(1, sizeof *s);
	char pns[80];

	/* As the public server: a falsy namespace lists everything, a
	 * non-empty string filters, anything else matches nothing. */
	if (py_truthy(ns)) {
		if (json_str(ns) != NULL)
			s->ns = xstrdup(json_str(ns));
		else
			s->none = true;
	}
	if (r->note) {
		printable(pns, sizeof pns, s->ns ? s->ns : s->none ? "(none)" : "*");
		snprintf(r->note, r->notelen, "DISCOVER %s", pns);
	}
	return s;
}

static struct rdv_stream *cmd_unregister(struct req *r)
{
	jval ns = json_get(r->obj, "namespace");
	jval name = json_get(r->obj, "name");
	jval portv = json_get(r->obj, "port");
	long long port = 0;
	bool has_port = portv != NULL && !json_is_null(portv);
	size_t n = 0;
	char pns[80];

	if (has_port && (json_bool(portv) >= 0 || !py_int(portv, &port))) {
		/* "bad_port (<value as Python prints it>)" */
		struct buf msg = BUF_INIT;
		buf_puts(&msg, "bad_port (");
		if (json_str(portv) != NULL) {
			buf_puts(&msg, json_str(portv));
		} else if (json_bool(portv) >= 0) {
			buf_puts(&msg, json_bool(portv) ? "True" : "False");
		} else if (YAJL_IS_NUMBER(portv)) {
			buf_puts(&msg, portv->u.number.r);
		} else {
			yajl_gen g = jg_new();
			jg_value(g, portv);
			if (jg_finish(g, &msg) == 0)
				msg.len--; /* its '\n' */
			jg_free(g);
		}
		buf_puts(&msg, ")");
		fail(r, "UNREGISTER", buf_cstr(&msg));
		buf_free(&msg);
		return NULL;
	}
	/* A namespace or name that is not a string equals no registration; a
	 * null name (like a missing one) is no filter. */
	if (json_str(ns) != NULL && (name == NULL || json_is_null(name) || json_str(name) != NULL))
		n = rdv_store_unregister(r->st, r->ip, json_str(ns), json_str(name), has_port, port,
					 r->now);
	reply_ok(r->out);
	if (r->note) {
		printable(pns, sizeof pns, json_str(ns) ? json_str(ns) : "(none)");
		snprintf(r->note, r->notelen, "UNREGISTER %s: OK, %zu removed", pns, n);
	}
	return NULL;
}

static const struct {
	const char *name;
	struct rdv_stream *(*fn)(struct req *);
} commands[] = {
	{ "REGISTER", cmd_register },
	{ "DISCOVER", cmd_discover },
	{ "UNREGISTER", cmd_unregister },
};

/* Python's str.upper() where the result is ASCII, which is all a command
 * name can be: ASCII letters, and the four code points whose upper case is
 * ASCII letters of REGISTER, DISCOVER or UNREGISTER (dotless i, long s, and
 * the st ligatures: Python upper-cases "regi\u017fter" to "REGISTER").  false
 * if the result would not be ASCII or not fit in out. */
static bool py_upper_ascii(const char *s, char *out, size_t outlen)
{
	static const struct { const char *from, *to; } special[] = {
		{ "\xc4\xb1", "I" },      /* U+0131 dotless i */
		{ "\xc5\xbf", "S" },      /* U+017F long s */
		{ "\xef\xac\x85", "ST" }, /* U+FB05 long s t ligature */
		{ "\xef\xac\x86", "ST" }, /* U+FB06 s t ligature */
	};
	size_t n = 0;

	while (*s) {
		const char *to = NULL;
		size_t skip = 1;
		char one[2] = { 0, 0 };

		if ((unsigned char)*s < 0x80) {
			one[0] = (*s >= 'a' && *s <= 'z') ? (char)(*s - 'a' + 'A') : *s;
			to = one;
		} else {
			for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
				size_t l = strlen(special[k].from);
				if (strncmp(s, special[k].from, l) == 0) {
					to = special[k].to;
					skip = l;
					break;
				}
			}
			if (to == NULL)
				return false;
		}
		if (n + strlen(to) >= outlen)
			return false;
		memcpy(out + n, to, strlen(to));
		n += strlen(to);
		s += skip;
	}
	out[n] = '\0';
	return true;
}

static bool blank(const char *s, size_t len)
{
	/* Python's bytes.strip() set */
	for (size_t i = 0; i < len; i++)
		if (strchr(" \t\n\r\v\f", s[i]) == NULL || s[i] == '\0')
			return false;
	return true;
}

struct rdv_stream *rdv_handle(struct rdv_store *st, const char *ip, const char *line, size_t len,
			      double now, struct buf *out, char *note, size_t notelen)
{
	struct req r = { st, ip, NULL, now, out, note, notelen };
	struct rdv_stream *s = NULL;
	char err[128], cmd[16];
	const char *type;
	size_t tlen, i;

	if (note && notelen)
		note[0] = '\0';
	if (blank(line, len)) {
		fail(&r, "request", RDV_MSG_EMPTY);
		return NULL;
	}
	/* The deployed server's parser tells invalid JSON, a non-object and a
	 * missing or non-string type apart, but its request handler answers
	 * all of them "Unknown command" (PROTOCOL.md section 1): so do we on
	 * the wire, and keep the distinction for the log only. */
	r.obj = json_parse(line, len, err, sizeof err);
	if (r.obj == NULL || !YAJL_IS_OBJECT(r.obj)) {
		fail(&r, "request", RDV_MSG_UNKNOWN);
		if (note) {
			char perr[sizeof err];
			printable(perr, sizeof perr, r.obj == NULL ? err : "not an object");
			snprintf(note, notelen, "request: invalid_json (%s): " RDV_MSG_UNKNOWN, perr);
		}
		json_free(r.obj);
		return NULL;
	}
	type = json_get_str(r.obj, "type");
	if (type == NULL || type[0] == '\0') {
		fail(&r, "request", RDV_MSG_UNKNOWN);
		if (note)
			snprintf(note, notelen, "request: missing_type: " RDV_MSG_UNKNOWN);
		json_free(r.obj);
		return NULL;
	}
	tlen = strlen(type);
	if (tlen < sizeof cmd && py_upper_ascii(type, cmd, sizeof cmd)) {
		for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
			if (strcmp(cmd, commands[i].name) == 0) {
				s = commands[i].fn(&r);
				json_free(r.obj);
				return s;
			}
		}
	}
	fail(&r, "request", RDV_MSG_UNKNOWN);
	json_free(r.obj);
	return NULL;
}

/* ---- the DISCOVER stream -------------------------------------------------- */

bool rdv_stream_fill(struct rdv_stream *s, struct rdv_store *st, double now, struct buf *out,
		     size_t want)
{
	struct rdv_view v;

	if (!s->started) {
		buf_puts(out, "{");
		pyj_kstr(out, "status", "OK", 1);
		pyj_key(out, "peers", 0);
		buf_puts(out, "[");
		s->started = true;
	}
	/* At least one entry per call, so a caller that drains out always
	 * makes progress. */
	while (!s->none && rdv_store_next(st, &s->cursor, s->ns, now, &v)) {
		buf_puts(out, s->listed++ ? ", {" : "{");
		pyj_kstr(out, "ip", v.ip, 1);
		pyj_kint(out, "port", v.port, 0);
		pyj_kstr(out, "name", v.name, 0);
		pyj_kstr(out, "namespace", v.ns, 0);
		pyj_kint(out, "ttl", v.ttl, 0);
		pyj_kint(out, "expires_in", v.expires_in, 0);
		buf_puts(out, "}");
		if (out->len >= want)
			return false;
	}
	buf_puts(out, "]}\n");
	return true;
}

void rdv_stream_free(struct rdv_stream *s)
{
	if (s == NULL)
		return;
	free(s->ns);
	free(s);
}
