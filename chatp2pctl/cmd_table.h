/* The one table of chatp2pctl's commands, for the command line and the
 * shell alike (main.c hands it to command_table). */
#ifndef CHATP2PCTL_CMD_TABLE_H
#define CHATP2PCTL_CMD_TABLE_H
#include "cmd.h"

extern const struct command commands[];

#endif
