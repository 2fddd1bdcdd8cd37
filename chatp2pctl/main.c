/* chatp2pctl: the control client of chatp2pd.  Global flags, the socket
 * path (found exactly as the daemon finds it), then one command from the
 * table in commands.c, or the shell when there is none and a person is
 * typing. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ctlproto.h"
#include "version.h"

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .timeout = DEFAULT_TIMEOUT };
	const char *sock = NULL, *env;
	int ch, rc;

	/* A daemon that vanishes mid-write costs an EPIPE, not the process
	 * (writes use MSG_NOSIGNAL too; this also covers stdout). */
	signal(SIGPIPE, SIG_IGN);

	opterr = 0;
	/* "+": stop at the command; what follows is the command's. */
	while ((ch = getopt_long(argc, argv, "+s:jt:Vh", longopts, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			o.timeout = strtod(optarg, &end);
			if (*end || end == optarg || !(o.timeout >= 0) || !isfinite(o.timeout)) {
				warnx_("--timeout needs a number of seconds, not '%s'", optarg);
				return EX_USAGE;
			}
			break;
		case 'V':
			printf("chatp2pctl %s (control protocol %d)\n", CHATP2P_VERSION, CTL_PROTO_VERSION);
			return EX_OK;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			warnx_("bad option '%s' (chatp2pctl --help)", argv[optind - 1]);
			return EX_USAGE;
		}
	}

	if (sock == NULL && (env = getenv("CHATP2P_SOCKET")) != NULL && *env)
		sock = env;
	if (sock) {
		if (strlen(sock) >= sizeof o.socket) {
			warnx_("socket path too long: %s", sock);
			return EX_USAGE;
		}
		snprintf(o.socket, sizeof o.socket, "%s", sock);
	} else if (ctl_client_socket(o.socket, sizeof o.socket) != 0) {
		warnx_("the default socket path is too long; use --socket");
		return EX_USAGE;
	}

	if (optind >= argc) {
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
			return shell_run(&o);
		warnx_("no command (chatp2pctl --help lists them)");
		return EX_USAGE;
	}
	const struct command *cmd = command_find(argv[optind]);
	if (cmd == NULL) {
		warnx_("unknown command '%s' (chatp2pctl --help)", argv[optind]);
		return EX_USAGE;
	}
	rc = cmd->run(&o, argc - optind, argv + optind);
	if (fflush(stdout) != 0 && errno != EPIPE && rc == EX_OK) {
		warnx_("cannot write the output: %s", strerror(errno));
		rc = EX_DAEMON;
	}
	return rc;
}
