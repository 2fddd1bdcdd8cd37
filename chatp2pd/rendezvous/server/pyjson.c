/* Python json.dumps() text (see pyjson.h). */
#include "rendezvous/server/pyjson.h"

#include <stdint.h>

static void put_u(struct buf *b, unsigned v)
{
	buf_printf(b, "\\u%04x", v);
}

/* One code point from valid UTF-8; *p is advanced past it.  A malformed
 * byte (not expected) is taken as itself, so the loop always advances. */
static uint32_t next_cp(const unsigned char **p)
{
	const unsigned char *s = *p;
	uint32_t c = s[0];
	int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;

	if (n > 0) {
		c &= 0x3f >> n;
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80) {
				*p = s + 1;
				return s[0];
			}
			c = (c << 6) | (s[i] & 0x3f);
		}
	}
	*p = s + n + 1;
	return c;
}

void pyj_str(struct buf *b, const char *str)
{
	const unsigned char *p = (const unsigned char *)str;

	buf_puts(b, "\"");
	while (*p) {
		const unsigned char *start = p;
		/* a run of printable ASCII other than '"' and '\\' goes as is */
		while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			p++;
		if (p > start)
			buf_append(b, start, (size_t)(p - start));
		if (*p == '\0')
			break;
		uint32_t c = next_cp(&p);
		switch (c) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		case '\b': buf_puts(b, "\\b"); break;
		case '\f': buf_puts(b, "\\f"); break;
		default:
			if (c >= 0x10000) {
				c -= 0x10000;
				put_u(b, 0xd800 | (c >> 10));
				put_u(b, 0xdc00 | (c & 0x3ff));
			} else {
				put_u(b, c);
			}
		}
	}
	buf_puts(b, "\"");
}

void pyj_key(struct buf *b, const char *key, int first)
{
	if (!first)
		buf_puts(b, ", ");
	pyj_str(b, key);
	buf_puts(b, ": ");
}

void pyj_kstr(struct buf *b, const char *key, const char *val, int first)
{
	pyj_key(b, key, first);
	pyj_str(b, val);
}

void pyj_kint(struct buf *b, const char *key, long long val, int first)
{
	pyj_key(b, key, first);
	buf_printf(b, "%lld", val);
}
