/* Help: the list of commands, one command's usage. */
#ifndef CHATP2PCTL_CMD_HELP_H
#define CHATP2PCTL_CMD_HELP_H
#include "cmd.h"

/* chatp2pctl --help: the global options, the commands, the exit codes. */
void usage(FILE *f);
/* One command's usage, options, example and exit codes. */
void command_usage(const struct command *c, FILE *f);
int c_help(const struct opts *o, int argc, char **argv);

#endif
