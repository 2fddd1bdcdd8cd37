/* The rendezvous server role: our own implementation of the public meeting
 * point (PROTOCOL.md section 1) on the node's libev loop, for tests and for
 * labs without internet access.  One command per connection, per-ip rate
 * limit, bounded memory under floods. */
#ifndef CHATP2PD_RENDEZVOUS_SERVER_H
#define CHATP2PD_RENDEZVOUS_SERVER_H
#include <ev.h>
#include <stddef.h>

#include "config.h"

struct rdv_server;

/* Bind and listen on cfg->rendezvous_server.listen:port (port 0: any free
 * one).  NULL with a one-line reason in err. */
struct rdv_server *rdv_server_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen);
/* The port actually bound. */
int rdv_server_port(const struct rdv_server *s);
/* Close every connection and the listener, free everything. */
void rdv_server_free(struct rdv_server *s);

#endif
