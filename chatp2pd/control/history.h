/* The control layer's events, kept compact: the last control.history of
 * them in a ring of structs (numbers and copied strings, no JSON), each
 * rendered as a JSON-RPC "event" notification only when a controller is
 * sent it (live, or replayed by "subscribe" with "since").  With nobody
 * listening an event costs a copy, not a JSON document. */
#ifndef CHATP2PD_CONTROL_HISTORY_H
#define CHATP2PD_CONTROL_HISTORY_H
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "log.h"
#include "node/event.h"
#include "timeutil.h"

/* Not a node event: a log line (EVC_LOG). */
#define HIST_LOG EV__COUNT

struct hist_event {
	uint64_t seq;
	unsigned cls;               /* its event class (control.h) */
	enum log_level level;       /* HIST_LOG only */
	int kind;                   /* enum node_event_type, or HIST_LOG */
	char at[ISO8601_LEN];
	/* Per kind (NULL: absent), pointing into buf:
	 *   MESSAGE, PUB:    from, to, text, msg_id, fingerprint (the key
	 *                    its connection proved, or NULL)
	 *   ACK, ACK_TIMEOUT: peer_id, msg_id
	 *   REGISTRATION:    state, error
	 *   LOG:             level, module, text
	 *   IMPOSTOR:        peer_id, reason, address
	 *   others:          peer_id, reason */
	const char *s[5];
	double rtt_ms;              /* ACK */
	long long num;              /* MESSAGE/PUB: inbox id; REGISTRATION: ttl */
	bool flag;                  /* src_mismatch, late, or reconnected */
	bool flag2;                 /* MESSAGE: dst_mismatch */
	const char *identity;       /* MESSAGE/PUB/PEER_CONNECTED: a static name, or NULL */
	char *buf;                  /* the strings, reused slot to slot */
	size_t cap;
};

struct history {
	struct hist_event *ring;
	size_t cap, len, start;
};

void history_init(struct history *h, size_t cap);
void history_free(struct history *h);
/* A new slot for event seq (the oldest one goes when full), its strings
 * copied: n of them (NULL allowed). */
struct hist_event *history_add(struct history *h, uint64_t seq, const char *const *strs, int n);
/* The i-th held event, oldest first (i < h->len). */
static inline struct hist_event *history_at(const struct history *h, size_t i)
{
	return &h->ring[(h->start + i) % h->cap];
}
/* Its notification, '\n'-terminated, appended to out. */
void history_render(const struct hist_event *e, struct buf *out);

#endif
