/* chatp2pctl: the control client of chatp2pd.  Global options (anywhere on
 * the line, cmdline.c), the socket path (found exactly as the daemon finds
 * it), then one command from the table in cmd_table.c, or the shell when
 * there is none and a person is typing. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_help.h"
#include "cmd_table.h"
#include "cmdline.h"
#include "ctlproto.h"
#include "fmt.h"
#include "output.h"
#include "shell.h"
#include "version.h"

int main(int argc, char **argv)
{
	struct opts o = { .timeout = DEFAULT_TIMEOUT };
	struct cmdline cl;
	const char *env;
	int rc;

	/* A daemon that vanishes mid-write costs an EPIPE, not the process
	 * (writes use MSG_NOSIGNAL too; this also covers stdout). */
	signal(SIGPIPE, SIG_IGN);
	fmt_utf8_ctype();
	command_table = commands;

	if ((rc = cmdline_parse(&o, argc, argv, &cl)) != EX_OK) {
		free(cl.rest);
		return rc;
	}
	if (cl.version) {
		printf("chatp2pctl %s (control protocol %d)\n", CHATP2P_VERSION, CTL_PROTO_VERSION);
		free(cl.rest);
		return EX_OK;
	}
	if (cl.help) {
		/* After a command: that command's usage. */
		if (cl.cmd)
			command_usage(cl.cmd, stdout);
		else
			usage(stdout);
		free(cl.rest);
		return EX_OK;
	}
	const char *sock = cl.socket;
	if (sock == NULL && (env = getenv("CHATP2P_SOCKET")) != NULL && *env)
		sock = env;
	if (sock) {
		if (strlen(sock) >= sizeof o.socket) {
			warnx_("socket path too long: %s", sock);
			free(cl.rest);
			return EX_USAGE;
		}
		snprintf(o.socket, sizeof o.socket, "%s", sock);
	} else if (ctl_client_socket(o.socket, sizeof o.socket) != 0) {
		warnx_("the default socket path is too long; use --socket");
		free(cl.rest);
		return EX_USAGE;
	}

	if (cl.cmd_name == NULL) {
		free(cl.rest);
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
			return shell_run(&o);
		warnx_("no command (chatp2pctl --help lists them)");
		return EX_USAGE;
	}
	if (cl.cmd == NULL) {
		const char *near = command_suggest(cl.cmd_name);
		if (near)
			warnx_("unknown command '%s'; did you mean '%s'? (chatp2pctl --help)", cl.cmd_name, near);
		else
			warnx_("unknown command '%s' (chatp2pctl --help)", cl.cmd_name);
		free(cl.rest);
		return EX_USAGE;
	}
	rc = cl.cmd->run(&o, cl.nrest, cl.rest);
	free(cl.rest);
	if (out_style.failed && rc == EX_OK)
		rc = EX_USAGE; /* a printer refused an option (--sort) */
	if (fflush(stdout) != 0 && errno != EPIPE && rc == EX_OK) {
		warnx_("cannot write the output: %s", strerror(errno));
		rc = EX_DAEMON;
	}
	return rc;
}
