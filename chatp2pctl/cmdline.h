/* The global options (-s, -j, -o, -t, --no-legend, --sort, --time, -V,
 * -h), taken anywhere on a line, as systemctl and tailscale take them:
 * for the command line (main.c) and for each line of the shell alike. */
#ifndef CHATP2PCTL_CMDLINE_H
#define CHATP2PCTL_CMDLINE_H
#include <stdbool.h>

#include "cmd.h"

struct cmdline {
	const char *socket;              /* -s PATH, or NULL */
	const char *cmd_name;            /* the first operand, or NULL */
	const struct command *cmd;       /* its entry, or NULL */
	char **rest;                     /* the command's argv (cmd_name first) */
	int nrest;
	bool help;                       /* -h */
	bool version;                    /* -V */
};

/* Parse argv[1..argc-1] into o (and out_style), the rest into cl->rest
 * (an array of argc + 1 the caller frees with cl->rest).  EX_OK, or
 * EX_USAGE after saying why. */
int cmdline_parse(struct opts *o, int argc, char **argv, struct cmdline *cl);

#endif
