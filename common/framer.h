/* Line framer: bytes in as they arrive, whole lines out.
 *
 * Complete lines found inside the bytes fed are handed out in place, without
 * a copy; only a line that straddles two feeds is copied, into a buffer that
 * grows as the line does and never past the limit (so a large limit costs
 * memory only when a line that long comes).  A line longer than the limit is reported once
 * as an overflow and the rest of it (up to its '\n') is skipped.  A trailing
 * '\r' is stripped, so "\r\n" ends a line too.  Empty lines are reported
 * (with len 0): the rendezvous protocol answers them, the peer protocol
 * ignores them.  Pure: no I/O, callable without a loop (fuzzable). */
#ifndef CHATP2P_FRAMER_H
#define CHATP2P_FRAMER_H
#include <stdbool.h>
#include <stddef.h>

#define FRAMER_MAX_LINE 32768 /* PROTOCOL.md: bytes of a line, without '\n' */

enum framer_event {
	FRAMER_LINE,     /* line, len: one line without its terminator */
	FRAMER_OVERFLOW, /* a line went past the limit; it is being skipped */
};

/* Return 0 to go on, anything else to stop the feed (the value is returned
 * by framer_feed; unconsumed bytes are dropped: the owner is closing). */
typedef int (*framer_cb)(void *ctx, enum framer_event ev, const char *line, size_t len);

struct framer {
	char *part;      /* partial line carried between feeds */
	size_t len;      /* bytes in part */
	size_t cap;      /* bytes allocated for part: grows with need up to max + 1 */
	size_t max;      /* line limit */
	bool skipping;   /* inside an over-long line, waiting for its '\n' */
	size_t used;     /* bytes of the last feed consumed when a callback stopped
			  * it (the rest may be for another reader: STARTTLS) */
};

void framer_init(struct framer *f, size_t max_line);
void framer_free(struct framer *f);
int framer_feed(struct framer *f, const char *data, size_t len, framer_cb cb, void *ctx);
/* Bytes of an unterminated line held now (for "line at EOF" handling). */
size_t framer_pending(const struct framer *f, const char **data);

#endif
