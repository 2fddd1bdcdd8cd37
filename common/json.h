/* JSON on yajl: parse one line into a tree with typed accessors; generate a
 * line through yajl_gen.  Strings are validated UTF-8 both ways; \u escapes
 * and surrogate pairs decode to UTF-8 (yajl does it; tests pin it). */
#ifndef CHATP2P_JSON_H
#define CHATP2P_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include <yajl/yajl_common.h>

#include "buf.h"

typedef yajl_val jval;

/* Parse exactly one JSON text of len bytes (no NUL needed; a NUL inside is
 * an error).  NULL on error with a short reason in err. Free with json_free. */
jval json_parse(const char *text, size_t len, char *err, size_t errlen);
/* Length of the strict UTF-8 sequence at p (n bytes left), 0 if invalid:
 * overlong forms, surrogates and code points past U+10FFFF are refused
 * (yajl checks only a sequence's shape).  1 for ASCII. */
size_t utf8_seq(const unsigned char *p, size_t n);
void json_free(jval v);

/* The checks and repairs json_parse() makes before yajl sees the text:
 * text is a writable copy of len bytes plus a NUL (repairs are in place).
 * For event parsers that feed the text to yajl themselves; they bound the
 * nesting depth themselves (JSON_MAX_DEPTH), as it is not always checked. */
#define JSON_MAX_DEPTH 64
bool json_prescan(char *text, size_t len, char *err, size_t errlen);

/* A bump allocator for yajl (yajl_alloc_funcs) over a caller's buffer,
 * usually on its stack: the parser or generator of one line then costs no
 * malloc/free at all (what does not fit falls back to malloc).  Bind it
 * with json_scratch_init(); it must not move while in use. */
#define JSON_SCRATCH 8192
struct json_scratch {
	yajl_alloc_funcs funcs;
	size_t used;
	_Alignas(16) char buf[JSON_SCRATCH];
};
void json_scratch_init(struct json_scratch *s);
/* A generator as jg_new() makes, allocating from s. */
yajl_gen jg_new_scratch(struct json_scratch *s);

/* Accessors: all take NULL and wrong types gracefully. */
jval json_get(jval obj, const char *key);      /* member of an object, or NULL */
const char *json_str(jval v);                  /* string value, or NULL */
bool json_is_int(jval v);                      /* integral number */
bool json_int(jval v, long long *out);         /* integral number only */
bool json_num(jval v, double *out);            /* any number */
int json_bool(jval v);                         /* 1 true, 0 false, -1 not a bool */
bool json_is_null(jval v);
size_t json_arr_len(jval v);                   /* 0 if not an array */
jval json_arr_at(jval v, size_t i);
size_t json_obj_len(jval v);
const char *json_obj_key(jval v, size_t i);
jval json_obj_val(jval v, size_t i);
const char *json_get_str(jval obj, const char *key);

/* Generation.  jg_new() gives a generator configured for one-line output;
 * jg_finish() appends the finished document plus '\n' to out and resets
 * the generator for the next one.  jg_str() returns -1 for invalid UTF-8. */
yajl_gen jg_new(void);
void jg_free(yajl_gen g);
int jg_finish(yajl_gen g, struct buf *out);
int jg_str(yajl_gen g, const char *s);
int jg_strn(yajl_gen g, const char *s, size_t len);
void jg_int(yajl_gen g, long long v);
void jg_double(yajl_gen g, double v, int decimals); /* fixed decimals, C locale */
void jg_bool(yajl_gen g, bool v);
void jg_null(yajl_gen g);
void jg_map(yajl_gen g);
void jg_end_map(yajl_gen g);
void jg_arr(yajl_gen g);
void jg_end_arr(yajl_gen g);
/* Copy a parsed value into the generator (used to echo ids and params). */
void jg_value(yajl_gen g, jval v);

/* Key/value shorthands for the common case inside a map. */
#define JG_KSTR(g, k, v) (jg_str((g), (k)), jg_str((g), (v)))
#define JG_KINT(g, k, v) (jg_str((g), (k)), jg_int((g), (v)))
#define JG_KBOOL(g, k, v) (jg_str((g), (k)), jg_bool((g), (v)))

#endif
