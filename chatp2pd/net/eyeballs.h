/* Connecting to a name with several addresses (RFC 8305, "Happy
 * Eyeballs"): try them in order, IPv6 and IPv4 interleaved, starting the
 * next one after a delay (250 ms) or as soon as the current one fails, and
 * keep the first that connects.  A name whose first address is dead (::1
 * where the server listens on 127.0.0.1 only, an AAAA record on a host
 * with broken IPv6) still connects, a quarter second later. */
#ifndef CHATP2PD_EYEBALLS_H
#define CHATP2PD_EYEBALLS_H
#include <ev.h>
#include <stddef.h>
#include <sys/socket.h>

#define EYEBALLS_MAX 8          /* addresses tried at most */
#define EYEBALLS_DELAY 0.25     /* seconds before the next attempt starts */

struct eyeballs;

/* fd >= 0: connected (non-blocking, close-on-exec; the caller owns it) to
 * addr.  fd < 0: every address failed, err says how the last one did. */
typedef void (*eyeballs_cb)(void *ctx, int fd, const struct sockaddr_storage *addr,
			    socklen_t addrlen, const char *err);

/* Start connecting to addrs[0..n) (n >= 1; past EYEBALLS_MAX ignored).  The
 * callback runs exactly once, never inside this call, unless the attempt
 * is cancelled first; the handle is freed right after it. */
struct eyeballs *eyeballs_start(struct ev_loop *loop, const struct sockaddr_storage *addrs,
				const socklen_t *lens, size_t n, double delay, eyeballs_cb cb,
				void *ctx);
/* No callback; every socket closed.  Safe on NULL. */
void eyeballs_cancel(struct eyeballs *e);

#endif
