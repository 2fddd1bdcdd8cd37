#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* yajl_tree frees and copies recursively: refuse documents nested deeper
 * than any message of ours needs, so hostile input cannot eat the stack. */

/* Length of the strict UTF-8 sequence at p (n bytes left), 0 if invalid.
 * yajl checks only the shape of a sequence; overlong forms, surrogates and
 * code points past U+10FFFF would otherwise reach the rest of the node. */
size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], cp, min;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* The code unit of a \uXXXX escape at s (n bytes left), or -1. */
static long uescape(const char *s, size_t n)
{
	long v = 0;

	if (n < 6 || s[0] != '\\' || s[1] != 'u')
		return -1;
	for (int i = 2; i < 6; i++) {
		int c = (unsigned char)s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* One pass over our copy of the text before yajl sees it: refuse NUL bytes,
 * deep nesting and invalid UTF-8, and rewrite in place (same length) the
 * escapes yajl gets wrong to \ufffd: a lone high surrogate (yajl gives '?',
 * or pairs it with whatever escape follows), a lone low surrogate (yajl
 * emits it as invalid UTF-8) and \u0000 (it would silently cut the C
 * string short).  Python's json.dumps can produce all three. */
static bool prescan(char *s, size_t len, char *err, size_t errlen)
{
	int depth = 0;
	bool in_str = false;
	size_t i = 0;

	while (i < len) {
		unsigned char c;
		size_t n;
		long u, lo;

		/* Inside a string, plain ASCII goes by eight bytes at a time
		 * (this scan runs over every line a peer sends). */
		if (in_str) {
			const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
			for (uint64_t w; i + 8 <= len; i += 8) {
				memcpy(&w, s + i, 8);
				uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
				if (((w - ones) & ~w & highs) | ((q - ones) & ~q & highs) |
				    ((b - ones) & ~b & highs) | (w & highs))
					break;
			}
			if (i >= len)
				break;
		}
		c = (unsigned char)s[i];
		if (c == '\0') {
			snprintf(err, errlen, "NUL byte in JSON text");
			return false;
		}
		if (c >= 0x80) {
			if ((n = utf8_seq((const unsigned char *)s + i, len - i)) == 0) {
				snprintf(err, errlen, "invalid UTF-8 in JSON text");
				return false;
			}
			i += n;
			continue;
		}
		if (!in_str) {
			if (c == '"')
				in_str = true;
			else if ((c == '{' || c == '[') && ++depth > JSON_MAX_DEPTH) {
				snprintf(err, errlen, "JSON nested deeper than %d", JSON_MAX_DEPTH);
				return false;
			} else if (c == '}' || c == ']')
				depth--;
			i++;
			continue;
		}
		if (c == '"') {
			in_str = false;
			i++;
			continue;
		}
		if (c != '\\') {
			i++;
			continue;
		}
		if ((u = uescape(s + i, len - i)) == -1) {
			i += 2; /* another escape, or a bad one yajl will refuse */
			continue;
		}
		if (u >= 0xd800 && u <= 0xdbff) {
			lo = uescape(s + i + 6, len - i - 6);
			if (lo >= 0xdc00 && lo <= 0xdfff) {
				i += 12;
				continue;
			}
		}
		if (u == 0 || (u >= 0xd800 && u <= 0xdfff))
			memcpy(s + i + 2, "fffd", 4);
		i += 6;
	}
	return true;
}

bool json_prescan(char *text, size_t len, char *err, size_t errlen)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;

	/* Without a byte >= 0x80, a backslash or a NUL there is nothing to check
	 * or repair (most lines): eight bytes at a time.  Depth is the caller's. */
	for (uint64_t w, b; i + 8 <= len; i += 8) {
		memcpy(&w, text + i, 8);
		b = w ^ (ones * '\\');
		if (((w - ones) & ~w & highs) | ((b - ones) & ~b & highs) | (w & highs))
			return prescan(text, len, err, errlen);
	}
	for (; i < len; i++)
		if (text[i] == '\0' || text[i] == '\\' || (unsigned char)text[i] >= 0x80)
			return prescan(text, len, err, errlen);
	return true;
}

jval json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	char ebuf[128] = "";
	char *copy;
	jval v;

	/* yajl_tree_parse wants a C string; lines arrive as (ptr, len). */
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, text, len);
	copy[len] = '\0';
	if (!prescan(copy, len, err, errlen)) {
		free(copy);
		return NULL;
	}
	v = yajl_tree_parse(copy, ebuf, sizeof ebuf);
	free(copy);
	if (v == NULL) {
		/* yajl's message spans lines; keep the first one. */
		ebuf[strcspn(ebuf, "\n")] = '\0';
		snprintf(err, errlen, "%s", ebuf[0] ? ebuf : "invalid JSON");
	}
	return v;
}

void json_free(jval v)
{
	if (v != NULL)
		yajl_tree_free(v);
}

jval json_get(jval obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	/* The last duplicate wins, as in Python's json module. */
	for (size_t i = obj->u.object.len; i-- > 0;)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

const char *json_str(jval v)
{
	return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

bool json_is_int(jval v)
{
	return YAJL_IS_INTEGER(v);
}

bool json_int(jval v, long long *out)
{
	if (!YAJL_IS_INTEGER(v))
		return false;
	*out = YAJL_GET_INTEGER(v);
	return true;
}

bool json_num(jval v, double *out)
{
	if (YAJL_IS_INTEGER(v))
		*out = (double)YAJL_GET_INTEGER(v);
	else if (YAJL_IS_DOUBLE(v))
		*out = YAJL_GET_DOUBLE(v);
	else
		return false;
	return true;
}

int json_bool(jval v)
{
	if (YAJL_IS_TRUE(v))
		return 1;
	if (YAJL_IS_FALSE(v))
		return 0;
	return -1;
}

bool json_is_null(jval v)
{
	return YAJL_IS_NULL(v);
}

size_t json_arr_len(jval v)
{
	return YAJL_IS_ARRAY(v) ? v->u.array.len : 0;
}

jval json_arr_at(jval v, size_t i)
{
	return YAJL_IS_ARRAY(v) && i < v->u.array.len ? v->u.array.values[i] : NULL;
}

size_t json_obj_len(jval v)
{
	return YAJL_IS_OBJECT(v) ? v->u.object.len : 0;
}

const char *json_obj_key(jval v, size_t i)
{
	return YAJL_IS_OBJECT(v) && i < v->u.object.len ? v->u.object.keys[i] : NULL;
}

jval json_obj_val(jval v, size_t i)
{
	return YAJL_IS_OBJECT(v) && i < v->u.object.len ? v->u.object.values[i] : NULL;
}

const char *json_get_str(jval obj, const char *key)
{
	return json_str(json_get(obj, key));
}

/* ---- generation ------------------------------------------------------- */

/* Blocks carry their size in a 16-byte header (realloc needs it). */
#define SC_HDR 16

static bool sc_owns(const struct json_scratch *s, const void *p)
{
	return (const char *)p >= s->buf && (const char *)p < s->buf + sizeof s->buf;
}

static void *sc_malloc(void *ctx, size_t sz)
{
	struct json_scratch *s = ctx;
	size_t need = SC_HDR + ((sz + 15) & ~(size_t)15);

	if (sz <= sizeof s->buf && need <= sizeof s->buf - s->used) {
		char *p = s->buf + s->used;
		memcpy(p, &sz, sizeof sz);
		s->used += need;
		return p + SC_HDR;
	}
	return xmalloc(sz);
}

static void sc_free(void *ctx, void *p)
{
	struct json_scratch *s = ctx;

	if (p == NULL)
		return;
	if (!sc_owns(s, p)) {
		free(p);
		return;
	}
	/* The last block gives its room back; others wait for the end. */
	size_t sz;
	memcpy(&sz, (char *)p - SC_HDR, sizeof sz);
	if ((char *)p - SC_HDR + SC_HDR + ((sz + 15) & ~(size_t)15) == s->buf + s->used)
		s->used = (size_t)((char *)p - SC_HDR - s->buf);
}

static void *sc_realloc(void *ctx, void *p, size_t sz)
{
	struct json_scratch *s = ctx;
	size_t old;
	void *q;

	if (p == NULL)
		return sc_malloc(ctx, sz);
	if (!sc_owns(s, p))
		return xrealloc(p, sz);
	memcpy(&old, (char *)p - SC_HDR, sizeof old);
	/* The last block grows in place while it fits. */
	char *end = (char *)p + ((old + 15) & ~(size_t)15);
	if (end == s->buf + s->used && sz <= sizeof s->buf &&
	    (size_t)((char *)p - s->buf) + ((sz + 15) & ~(size_t)15) <= sizeof s->buf) {
		memcpy((char *)p - SC_HDR, &sz, sizeof sz);
		s->used = (size_t)((char *)p - s->buf) + ((sz + 15) & ~(size_t)15);
		return p;
	}
	q = sc_malloc(ctx, sz);
	memcpy(q, p, old < sz ? old : sz);
	sc_free(ctx, p);
	return q;
}

void json_scratch_init(struct json_scratch *s)
{
	s->funcs.malloc = sc_malloc;
	s->funcs.realloc = sc_realloc;
	s->funcs.free = sc_free;
	s->funcs.ctx = s;
	s->used = 0;
}

yajl_gen jg_new_scratch(struct json_scratch *s)
{
	yajl_gen g = yajl_gen_alloc(&s->funcs);
	if (g == NULL)
		abort();
	yajl_gen_config(g, yajl_gen_beautify, 0);
	/* jg_strn() checks every string, more strictly than yajl does. */
	yajl_gen_config(g, yajl_gen_validate_utf8, 0);
	return g;
}

yajl_gen jg_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (g == NULL)
		abort();
	yajl_gen_config(g, yajl_gen_beautify, 0);
	/* jg_strn() checks every string, more strictly than yajl does. */
	yajl_gen_config(g, yajl_gen_validate_utf8, 0);
	return g;
}

void jg_free(yajl_gen g)
{
	if (g != NULL)
		yajl_gen_free(g);
}

int jg_finish(yajl_gen g, struct buf *out)
{
	const unsigned char *p;
	size_t len;
	int rc = 0;

	if (yajl_gen_get_buf(g, &p, &len) != yajl_gen_status_ok) {
		rc = -1;
	} else {
		buf_append(out, p, len);
		buf_append(out, "\n", 1);
	}
	yajl_gen_clear(g);
	yajl_gen_reset(g, NULL);
	return rc;
}

int jg_strn(yajl_gen g, const char *s, size_t len)
{
	size_t i = 0, n;

	/* ASCII (most of it) needs no decoding: skip it eight bytes at a time. */
	for (uint64_t w; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		if (w & 0x8080808080808080u)
			break;
	}
	/* yajl's own check lets surrogates and overlong forms through. */
	for (; i < len; i += n)
		if ((n = utf8_seq((const unsigned char *)s + i, len - i)) == 0)
			return -1;
	return yajl_gen_string(g, (const unsigned char *)s, len) == yajl_gen_status_ok ? 0 : -1;
}

int jg_str(yajl_gen g, const char *s)
{
	return jg_strn(g, s, strlen(s));
}

void jg_int(yajl_gen g, long long v)
{
	/* yajl_gen_integer() goes through sprintf: 4% of an ACK's cost. */
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	yajl_gen_number(g, p, (size_t)(tmp + sizeof tmp - p));
}

void jg_double(yajl_gen g, double v, int decimals)
{
	char tmp[400]; /* DBL_MAX is 309 digits; decimals are capped below */
	const char *dp;
	char *p;
	int n;

	/* JSON has no NaN or infinity. */
	if (!isfinite(v)) {
		yajl_gen_null(g);
		return;
	}
	if (decimals < 0)
		decimals = 0;
	if (decimals > 17)
		decimals = 17;
	n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		yajl_gen_null(g);
		return;
	}
	/* printf follows LC_NUMERIC; JSON wants '.' whatever a front end set. */
	dp = localeconv()->decimal_point;
	if (dp != NULL && strcmp(dp, ".") != 0 && dp[0] != '\0' &&
	    (p = strstr(tmp, dp)) != NULL) {
		size_t dl = strlen(dp);

		*p = '.';
		memmove(p + 1, p + dl, strlen(p + dl) + 1);
		n -= (int)dl - 1;
	}
	yajl_gen_number(g, tmp, (size_t)n);
}

void jg_bool(yajl_gen g, bool v)
{
	yajl_gen_bool(g, v);
}

void jg_null(yajl_gen g)
{
	yajl_gen_null(g);
}

void jg_map(yajl_gen g)
{
	yajl_gen_map_open(g);
}

void jg_end_map(yajl_gen g)
{
	yajl_gen_map_close(g);
}

void jg_arr(yajl_gen g)
{
	yajl_gen_array_open(g);
}

void jg_end_arr(yajl_gen g)
{
	yajl_gen_array_close(g);
}

void jg_value(yajl_gen g, jval v)
{
	if (v == NULL) {
		yajl_gen_null(g);
		return;
	}
	switch (v->type) {
	case yajl_t_string:
		jg_str(g, v->u.string);
		break;
	case yajl_t_number:
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			jg_str(g, v->u.object.keys[i]);
			jg_value(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
		break;
	case yajl_t_array:
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			jg_value(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
		break;
	case yajl_t_true:
		yajl_gen_bool(g, 1);
		break;
	case yajl_t_false:
		yajl_gen_bool(g, 0);
		break;
	default:
		yajl_gen_null(g);
		break;
	}
}
