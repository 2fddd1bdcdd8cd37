#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* yajl_tree frees and copies recursively: refuse documents nested deeper
 * than any message of ours needs, so hostile input cannot eat the stack. */
#define JSON_MAX_DEPTH 64

static bool too_deep(const char *s, size_t len)
{
	int depth = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if ((c == '{' || c == '[') && ++depth > JSON_MAX_DEPTH)
			return true;
		else if (c == '}' || c == ']')
			depth--;
	}
	return false;
}

jval json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	char ebuf[128] = "";
	char *copy;
	jval v;

	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "NUL byte in JSON text");
		return NULL;
	}
	if (too_deep(text, len)) {
		snprintf(err, errlen, "JSON nested deeper than %d", JSON_MAX_DEPTH);
		return NULL;
	}
	/* yajl_tree_parse wants a C string; lines arrive as (ptr, len). */
	copy = xmalloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
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

yajl_gen jg_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	if (g == NULL)
		abort();
	yajl_gen_config(g, yajl_gen_beautify, 0);
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
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
	return yajl_gen_string(g, (const unsigned char *)s, len) == yajl_gen_status_ok ? 0 : -1;
}

int jg_str(yajl_gen g, const char *s)
{
	return jg_strn(g, s, strlen(s));
}

void jg_int(yajl_gen g, long long v)
{
	yajl_gen_integer(g, v);
}

void jg_double(yajl_gen g, double v, int decimals)
{
	char tmp[64];
	int n;

	/* JSON has no NaN or infinity. */
	if (!isfinite(v)) {
		yajl_gen_null(g);
		return;
	}
	n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		yajl_gen_null(g);
		return;
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
