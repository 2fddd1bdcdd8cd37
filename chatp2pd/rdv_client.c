/* placeholder (lead): link stubs until the real client lands; overwrite freely */
#include "rdv_client.h"
#include <stdlib.h>
struct rdv_client { struct rdv_status st; };
struct rdv_client *rdv_client_new(struct ev_loop *loop, const struct config *cfg, const char *name,
				  const char *ns, int port, int ttl, const struct rdv_client_hooks *hooks)
{ return calloc(1, sizeof(struct rdv_client)); }
void rdv_client_start(struct rdv_client *c) {}
void rdv_client_discover(struct rdv_client *c, rdv_done_fn done, void *ctx) { if (done) done(ctx, "stub", NULL); }
void rdv_client_register(struct rdv_client *c, rdv_done_fn done, void *ctx) { if (done) done(ctx, "stub", NULL); }
void rdv_client_unregister(struct rdv_client *c, rdv_done_fn done, void *ctx) { if (done) done(ctx, "stub", NULL); }
const struct rdv_status *rdv_client_status(const struct rdv_client *c) { return &c->st; }
const char *rdv_reg_state_name(enum rdv_reg_state s) { return "?"; }
void rdv_client_free(struct rdv_client *c) { free(c); }
