/* The node's store: the inbox, marking read, the outbox of queued sends. */
#ifndef CHATP2PCTL_CMD_INBOX_H
#define CHATP2PCTL_CMD_INBOX_H
#include "cmd.h"

int c_inbox(const struct opts *o, int argc, char **argv);
int c_read(const struct opts *o, int argc, char **argv);
int c_history(const struct opts *o, int argc, char **argv);
int c_outbox(const struct opts *o, int argc, char **argv);

#endif
