/* Dial pacing.  A DISCOVER may list 1,000 peers at once; dialling them all
 * in one loop iteration would open 1,000 sockets at once, put 1,000
 * handshakes in flight against the handshake timeout, and look like a flood
 * to peers that rate-limit per address.  So at most
 * limits.dials_in_flight dials (connect + handshake) are in flight, and at
 * most limits.dial_rate start per second; the others wait in
 * order, once each (docs/configuration.md). */
#ifndef CHATP2PD_DIAL_PACER_H
#define CHATP2PD_DIAL_PACER_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct dial_pacer;

/* Dial peer_id now, if it still wants a dial: true if a dial started (it
 * then counts as in flight until dial_pacer_done). */
typedef bool (*dial_pacer_fn)(void *ctx, const char *peer_id);

struct dial_pacer *dial_pacer_new(struct ev_loop *loop, dial_pacer_fn go, void *ctx);
void dial_pacer_free(struct dial_pacer *dp);
void dial_pacer_configure(struct dial_pacer *dp, int max_in_flight, double per_second);
/* true: dial now (it counts as in flight); false: queued (or already
 * queued), go() is called when its turn comes. */
bool dial_pacer_admit(struct dial_pacer *dp, const char *peer_id);
/* A dial admitted or started by go() ended (connected or failed). */
void dial_pacer_done(struct dial_pacer *dp);
size_t dial_pacer_waiting(const struct dial_pacer *dp);
unsigned dial_pacer_in_flight(const struct dial_pacer *dp);

#endif
