/* Who this node is and whom it trusts (PROTOCOL.md §5.2): id, trust. */
#ifndef CHATP2PCTL_CMD_TRUST_H
#define CHATP2PCTL_CMD_TRUST_H
#include "cmd.h"

int c_id(const struct opts *o, int argc, char **argv);
int c_trust(const struct opts *o, int argc, char **argv);

#endif
