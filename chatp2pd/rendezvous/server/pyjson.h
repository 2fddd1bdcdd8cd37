/* JSON text exactly as Python's json.dumps() writes it with its defaults
 * (separators ", " and ": ", ensure_ascii=True), for the rendezvous server
 * role's replies: the public server sends json.dumps() output and some
 * clients on the network match reply text, so ours must be byte-identical.
 *
 * Strings must be valid UTF-8 (the request parser validated them). */
#ifndef CHATP2PD_RDV_PYJSON_H
#define CHATP2PD_RDV_PYJSON_H
#include "buf.h"

/* A JSON string: '"', escapes as Python's (\" \\ \n \r \t \b \f, other
 * controls and every non-ASCII code point as \u00xx lowercase, astral ones as
 * a surrogate pair), '"'. */
void pyj_str(struct buf *b, const char *s);
/* "key": (with the ", " before it unless first) */
void pyj_key(struct buf *b, const char *key, int first);
/* "key": "value" / "key": 123, with the ", " before it unless first */
void pyj_kstr(struct buf *b, const char *key, const char *val, int first);
void pyj_kint(struct buf *b, const char *key, long long val, int first);

#endif
