/* Messages out: send (and wait for the ACK), pub, ping. */
#ifndef CHATP2PCTL_CMD_MSG_H
#define CHATP2PCTL_CMD_MSG_H
#include "cmd.h"

int c_send(const struct opts *o, int argc, char **argv);
int c_pub(const struct opts *o, int argc, char **argv);
int c_ping(const struct opts *o, int argc, char **argv);

#endif
