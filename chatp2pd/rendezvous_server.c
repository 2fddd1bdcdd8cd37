/* placeholder: being written */
#include "rendezvous_server.h"
#include <stdio.h>
struct rdv_server *rdv_server_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{ snprintf(err, errlen, "not built"); return NULL; }
int rdv_server_port(const struct rdv_server *s) { return 0; }
void rdv_server_free(struct rdv_server *s) {}
