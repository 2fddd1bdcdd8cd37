#include "framer.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void framer_init(struct framer *f, size_t max_line)
{
	f->part = NULL;
	f->len = 0;
	f->cap = 0;
	f->max = max_line;
	f->skipping = false;
}

void framer_free(struct framer *f)
{
	free(f->part);
	f->part = NULL;
	f->len = 0;
	f->cap = 0;
	f->skipping = false;
}

/* Room for need bytes in the carry buffer (need <= max + 1). */
static void carry_reserve(struct framer *f, size_t need)
{
	size_t cap = f->cap ? f->cap : 256;

	if (need <= f->cap)
		return;
	while (cap < need)
		cap *= 2;
	if (cap > f->max + 1)
		cap = f->max + 1;
	f->part = xrealloc(f->part, cap);
	f->cap = cap;
}

/* A '\r' before the '\n' is not content; it may push a line one byte past
 * max before being stripped, so the carry buffer holds max + 1. */
static int emit(struct framer *f, const char *line, size_t len, framer_cb cb, void *ctx)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > f->max)
		return cb(ctx, FRAMER_OVERFLOW, NULL, 0);
	return cb(ctx, FRAMER_LINE, line, len);
}

int framer_feed(struct framer *f, const char *data, size_t len, framer_cb cb, void *ctx)
{
	const char *p = data, *end = data + len;
	int rc;

	f->used = len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t chunk = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (f->skipping) {
			if (nl)
				f->skipping = false;
			p = nl ? nl + 1 : end;
			continue;
		}
		if (f->len + chunk > f->max + 1) {
			/* Too long whether or not its end is here: report once, skip the rest. */
			f->len = 0;
			f->skipping = nl == NULL;
			p = nl ? nl + 1 : end;
			if ((rc = cb(ctx, FRAMER_OVERFLOW, NULL, 0)) != 0) {
				f->used = (size_t)(p - data);
				return rc;
			}
			continue;
		}
		if (!nl) {
			carry_reserve(f, f->len + chunk);
			memcpy(f->part + f->len, p, chunk);
			f->len += chunk;
			break;
		}
		if (f->len == 0) {
			rc = emit(f, p, chunk, cb, ctx); /* whole line in place: no copy */
		} else {
			carry_reserve(f, f->len + chunk);
			memcpy(f->part + f->len, p, chunk);
			size_t n = f->len + chunk;
			f->len = 0;
			rc = emit(f, f->part, n, cb, ctx);
		}
		p = nl + 1;
		if (rc != 0) {
			f->used = (size_t)(p - data);
			return rc;
		}
	}
	return 0;
}

size_t framer_pending(const struct framer *f, const char **data)
{
	if (data)
		*data = f->part;
	return f->skipping ? 0 : f->len;
}
