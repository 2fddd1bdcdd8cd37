/* Help: the list of commands, one command's usage. */
#include "cmd_help.h"

#include <getopt.h>
#include <string.h>

#include "output.h"

void command_usage(const struct command *c, FILE *f)
{
	fprintf(f, "usage: chatp2pctl [options] %s%s%s\n  %s\n", c->name, c->usage[0] ? " " : "",
		c->usage, c->help);
	if (c->options)
		fprintf(f, "\n%s", c->options);
	fprintf(f, "\noptions anywhere on the line: -s PATH, -j/-o json|tsv|table, -t SEC, "
		   "--no-legend, --sort [-]COL, --time relative|iso, --color auto|always|never, -h; "
		   "-- ends them\n");
	if (c->example)
		fprintf(f, "\nexample:\n  %s\n", c->example);
	fprintf(f, "\nexit status: 0 done, 1 the daemon refused, 2 daemon unreachable, 3 usage, "
		   "4 timeout or not delivered, 5 permission denied, 6 protocol error "
		   "(chatp2pctl(1), EXIT STATUS)\n");
}

int c_help(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc > 1) {
		const struct command *c = command_find(argv[1]);
		if (c == NULL) {
			const char *near = command_suggest(argv[1]);
			if (near)
				return usage_error(argv[0], "unknown command '%s'; did you mean '%s'?", argv[1],
						   near);
			return usage_error(argv[0], "unknown command '%s'", argv[1]);
		}
		command_usage(c, stdout);
		return EX_OK;
	}
	usage(stdout);
	return EX_OK;
}


void usage(FILE *f)
{
	fprintf(f, "usage: chatp2pctl [OPTIONS] COMMAND [ARGS] [OPTIONS] [-- TEXT...]\n"
		   "       chatp2pctl [--socket PATH]            (the shell, on a terminal)\n"
		   "\n"
		   "Options go anywhere on the line; -- ends them.\n"
		   "  -s, --socket PATH   control socket (default $CHATP2P_SOCKET, else where\n"
		   "                      chatp2pd puts it: $RUNTIME_DIRECTORY, /run/chatp2p or\n"
		   "                      $XDG_RUNTIME_DIR/chatp2p, then chatp2pd.sock)\n"
		   "  -j, --json          the same as -o json\n"
		   "  -o, --output FMT    table (default), tsv, or json: the result as one JSON\n"
		   "                      document (watch: NDJSON)\n"
		   "      --no-legend     tables without their header line\n"
		   "      --sort COLUMN   sort table rows by COLUMN (default: the first, PEER)\n"
		   "      --time STYLE    times in tables and watch: relative or iso (local)\n"
		   "  -t, --timeout SEC   give up waiting for the daemon after SEC seconds\n"
		   "                      (default %g; 0: wait forever)\n"
		   "  -V, --version       print chatp2pctl's version\n"
		   "  -h, --help          this help; after a command, that command's\n"
		   "\ncommands:\n",
		DEFAULT_TIMEOUT);
	for (const struct command *c = command_table; c && c->name; c++) {
		char head[80];
		snprintf(head, sizeof head, "%s %s", c->name, c->usage);
		if (strlen(head) > 30)
			fprintf(f, "  %s\n  %-30s %s\n", head, "", c->help);
		else
			fprintf(f, "  %-30s %s\n", head, c->help);
	}
	fprintf(f, "\nexit status:\n"
		   "  0  success (send: the peer ACKed, or it was sent without asking for one)\n"
		   "  1  the daemon answered with an error\n"
		   "  2  the daemon is unreachable (no socket, connection refused, or it closed\n"
		   "     the connection before answering)\n"
		   "  3  usage error (bad command, option or argument)\n"
		   "  4  timeout, or the peer could not be reached: ack_timeout, not_connected,\n"
		   "     unknown_peer, identity_unproven (send, reconnect, ping alike), no PONG,\n"
		   "     a pub that reached nobody\n"
		   "  5  permission denied on the control socket\n"
		   "  6  protocol error (garbage, a line cut off, an answer that makes no sense)\n");
}

