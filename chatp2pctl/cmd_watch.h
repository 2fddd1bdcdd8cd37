/* The node's events as they happen: watch, recv. */
#ifndef CHATP2PCTL_CMD_WATCH_H
#define CHATP2PCTL_CMD_WATCH_H
#include "cmd.h"

int c_watch(const struct opts *o, int argc, char **argv);
int c_recv(const struct opts *o, int argc, char **argv);

#endif
