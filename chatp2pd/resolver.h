/* Name resolution off the event loop.  getaddrinfo() blocks, so lookups run
 * on glibc's getaddrinfo_a() worker threads and come back to the loop
 * through an ev_async; numeric addresses are answered at once, on the loop. */
#ifndef CHATP2PD_RESOLVER_H
#define CHATP2PD_RESOLVER_H
#include <ev.h>
#include <sys/socket.h>

struct resolver;
struct resolve_req;

/* err is 0 with at least one address, else a gai_strerror()-style reason.
 * Called on the loop, once per request that was not cancelled. */
typedef void (*resolve_cb)(void *ctx, const char *err, const struct sockaddr_storage *addr,
			   socklen_t addrlen);

struct resolver *resolver_new(struct ev_loop *loop);
/* Look up host:port (TCP, IPv4 or IPv6).  The callback may run before this
 * returns when host is numeric; then the return value is NULL. */
struct resolve_req *resolver_lookup(struct resolver *r, const char *host, int port, resolve_cb cb,
				    void *ctx);
/* The callback will not be called; safe on NULL. */
void resolver_cancel(struct resolve_req *req);
void resolver_free(struct resolver *r);

#endif
