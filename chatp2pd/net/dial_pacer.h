/* Dial pacing.  A DISCOVER may list 1,000 peers at once; dialling them all
 * in one loop iteration would open 1,000 sockets at once, put 1,000
 * handshakes in flight against the handshake timeout, and look like a flood
 * to peers that rate-limit per address.  So at most
 * limits.dials_in_flight dials (connect + handshake) are in flight, and at
 * most limits.dial_rate start per second; the others wait in
 * order, once each (docs/configuration.md).
 *
 * Dial hygiene (issue 18): registrations are anyone's to make, so 1,000
 * names may be listed at one silent address.  Per address:
 * - at most limits.dials_per_address handshakes at once to one ip:port and
 *   limits.dials_per_ip to one ip (limits.exempt_addresses are spared the
 *   per-ip cap);
 * - an ip:port whose dial failed or stalled (connect error or timeout, or
 *   a handshake that timed out with nothing received) is backed off, for
 *   every name listed at it: backoff_base doubling per failure up to
 *   backoff_max, reset by a handshake that completes.
 * A waiting dial whose address is capped or backed off is parked with its
 * ip and skipped, so names at other addresses go first; it returns to the
 * queue when a dial to that ip ends or its backoff is over (looked at every
 * second). */
#ifndef CHATP2PD_DIAL_PACER_H
#define CHATP2PD_DIAL_PACER_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct dial_pacer;

/* Dial peer_id now, if it still wants a dial: true if a dial started (it
 * then counts as in flight until dial_pacer_done). */
typedef bool (*dial_pacer_fn)(void *ctx, const char *peer_id);

struct dial_limits {
	int in_flight;          /* limits.dials_in_flight */
	double per_second;      /* limits.dial_rate */
	int per_address;        /* limits.dials_per_address: one ip:port */
	int per_ip;             /* limits.dials_per_ip */
	const char *exempt;     /* limits.exempt_addresses: no per-ip cap (copied) */
	double backoff_base;    /* s after an address's first failure */
	double backoff_max;     /* s at most */
};

/* How a dial ended, for its address. */
enum dial_outcome {
	DIAL_OK,                /* handshake complete: the address works */
	DIAL_FAILED,            /* no connection, or silence until a timeout */
	DIAL_ANSWERED,          /* it answered, then the dial failed: no verdict */
};

struct dial_pacer *dial_pacer_new(struct ev_loop *loop, dial_pacer_fn go, void *ctx);
void dial_pacer_free(struct dial_pacer *dp);
void dial_pacer_configure(struct dial_pacer *dp, const struct dial_limits *l);
/* true: dial now (it counts as in flight); false: queued (or already
 * queued), go() is called when its turn comes.  ip:port is where it will
 * be dialled. */
bool dial_pacer_admit(struct dial_pacer *dp, const char *peer_id, const char *ip, int port);
/* The dial of peer_id admitted or started by go() ended. */
void dial_pacer_done(struct dial_pacer *dp, const char *peer_id, enum dial_outcome how);
size_t dial_pacer_waiting(const struct dial_pacer *dp);
unsigned dial_pacer_in_flight(const struct dial_pacer *dp);
/* An operator's reconnect: ip:port is no longer backed off, and peer_id
 * (if not NULL) leaves the queue, so that dial_pacer_admit can start it at
 * once (O(waiting) with a peer_id). */
void dial_pacer_forgive(struct dial_pacer *dp, const char *peer_id, const char *ip, int port);
/* Seconds ip:port is still backed off (0: not). */
double dial_pacer_backoff(const struct dial_pacer *dp, const char *ip, int port);

#endif
