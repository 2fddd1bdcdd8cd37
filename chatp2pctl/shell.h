/* The chat shell: interactive on a terminal, line by line otherwise.
 * Every command of the table also runs here as /command. */
#ifndef CHATP2PCTL_SHELL_H
#define CHATP2PCTL_SHELL_H
#include "cmd.h"

int shell_run(const struct opts *o);
/* The "shell" command of the table. */
int shell_cmd(const struct opts *o, int argc, char **argv);

#endif
