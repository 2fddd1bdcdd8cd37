/* Name resolution off the event loop.  A name lookup can block for seconds,
 * so it runs on glibc's getaddrinfo_a() worker threads and comes back to
 * the loop through an ev_async; numeric addresses are answered at once, on
 * the loop.  Nothing here blocks, resolver_free() included. */
#ifndef CHATP2PD_RESOLVER_H
#define CHATP2PD_RESOLVER_H
#include <ev.h>
#include <sys/socket.h>

struct resolver;
struct resolve_req;

/* err is NULL with an address, else a gai_strerror()-style reason.
 * Called on the loop, once per request that was not cancelled. */
typedef void (*resolve_cb)(void *ctx, const char *err, const struct sockaddr_storage *addr,
			   socklen_t addrlen);

/* Its wakeup watcher does not keep ev_run() from returning. */
struct resolver *resolver_new(struct ev_loop *loop);
/* Look up host:port (TCP, IPv4 or IPv6; the first address is given).  The
 * callback runs before this returns when host is numeric ("[v6]" too) or
 * cannot be looked up at all (empty, too long, bad port, no threads); the
 * return value is then NULL.  Otherwise the handle is valid until the
 * callback has run or resolver_cancel() was called. */
struct resolve_req *resolver_lookup(struct resolver *r, const char *host, int port, resolve_cb cb,
				    void *ctx);
/* Every address of a name, in the order getaddrinfo() sorted them (RFC
 * 6724), at most RESOLVE_ALL_MAX: a client tries them in turn (eyeballs.h)
 * instead of trusting the first.  n is 0 when err is set. */
#define RESOLVE_ALL_MAX 8
typedef void (*resolve_all_cb)(void *ctx, const char *err, const struct sockaddr_storage *addrs,
			       const socklen_t *lens, size_t n);
/* As resolver_lookup(), with every address. */
struct resolve_req *resolver_lookup_all(struct resolver *r, const char *host, int port,
					resolve_all_cb cb, void *ctx);
/* The callback will not be called; safe on NULL. */
void resolver_cancel(struct resolve_req *req);
/* No callback after this (it may be called from inside one).  Lookups still
 * running finish on their own threads and free themselves. */
void resolver_free(struct resolver *r);

#endif
