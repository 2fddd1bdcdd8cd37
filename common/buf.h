/* A growable byte buffer: the output side of every connection and the
 * target of every message builder.  Bounding is the owner's job (compare
 * buf.len against its own limit before appending). */
#ifndef CHATP2P_BUF_H
#define CHATP2P_BUF_H
#include <stddef.h>

struct buf {
	char *data;
	size_t len;   /* bytes held, data[0..len) */
	size_t cap;   /* bytes allocated */
};

#define BUF_INIT { NULL, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop n bytes from the front (after a partial write). */
void buf_consume(struct buf *b, size_t n);
/* NUL-terminate without counting the NUL in len; returns data. */
char *buf_cstr(struct buf *b);

#endif
