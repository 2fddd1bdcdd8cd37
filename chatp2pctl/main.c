/* chatp2pctl: the control client of chatp2pd.  Global options (anywhere on
 * the line, as systemctl and tailscale take them), the socket path (found
 * exactly as the daemon finds it), then one command from the table in
 * commands.c, or the shell when there is none and a person is typing. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ctlproto.h"
#include "fmt.h"
#include "output.h"
#include "version.h"

/* The global options.  After the command's name they are still global,
 * except a short letter the command uses itself (watch -s is --since). */
enum gopt_id { G_SOCKET, G_JSON, G_TIMEOUT, G_OUTPUT, G_NO_LEGEND, G_SORT, G_TIME, G_VERSION, G_HELP };
static const struct gopt {
	const char *lng;
	char shrt;
	bool arg;
} gopts[] = {
	[G_SOCKET] = { "socket", 's', true },
	[G_JSON] = { "json", 'j', false },
	[G_TIMEOUT] = { "timeout", 't', true },
	[G_OUTPUT] = { "output", 'o', true },
	[G_NO_LEGEND] = { "no-legend", 0, false },
	[G_SORT] = { "sort", 0, true },
	[G_TIME] = { "time", 0, true },
	[G_VERSION] = { "version", 'V', false },
	[G_HELP] = { "help", 'h', false },
};
#define NGOPTS (sizeof gopts / sizeof *gopts)

/* Which global option a is, if any (-1), and where its value is: after
 * '=' or the letter, else the next argument (*val NULL). */
static int match_global(const char *a, const struct command *cmd, const char **val)
{
	*val = NULL;
	if (a[0] != '-' || a[1] == '\0')
		return -1;
	if (a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		for (size_t i = 0; i < NGOPTS; i++)
			if (strlen(gopts[i].lng) == len && strncmp(gopts[i].lng, name, len) == 0) {
				if (eq && !gopts[i].arg)
					return -1;
				*val = eq ? eq + 1 : NULL;
				return (int)i;
			}
		return -1;
	}
	if (cmd && cmd->shortopts && strchr(cmd->shortopts, a[1]))
		return -1;
	for (size_t i = 0; i < NGOPTS; i++)
		if (gopts[i].shrt && gopts[i].shrt == a[1]) {
			if (a[2] && !gopts[i].arg)
				return -1; /* "-jx": not ours */
			*val = a[2] ? a + 2 : NULL;
			return (int)i;
		}
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o = { .timeout = DEFAULT_TIMEOUT };
	const char *sock = NULL, *env;
	const struct command *cmd = NULL;
	const char *cmd_name = NULL;
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	int nrest = 0, rc;
	bool ended = false, help = false;

	/* A daemon that vanishes mid-write costs an EPIPE, not the process
	 * (writes use MSG_NOSIGNAL too; this also covers stdout). */
	signal(SIGPIPE, SIG_IGN);
	fmt_utf8_ctype();
	if (rest == NULL)
		return EX_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		int g;

		if (ended || a[0] != '-' || a[1] == '\0') {
			if (cmd_name == NULL) {
				cmd_name = a;
				cmd = command_find(a);
			}
			rest[nrest++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			/* The end of the options: the command's getopt sees it too. */
			ended = true;
			if (cmd_name)
				rest[nrest++] = argv[i];
			continue;
		}
		if ((g = match_global(a, cmd, &val)) < 0) {
			if (cmd_name == NULL) {
				warnx_("bad option '%s' (chatp2pctl --help)", a);
				free(rest);
				return EX_USAGE;
			}
			rest[nrest++] = argv[i];
			continue;
		}
		if (gopts[g].arg && val == NULL) {
			if (i + 1 >= argc) {
				warnx_("option '%s' needs a value (chatp2pctl --help)", a);
				free(rest);
				return EX_USAGE;
			}
			val = argv[++i];
		}
		char *end;
		switch ((enum gopt_id)g) {
		case G_SOCKET:
			sock = val;
			break;
		case G_JSON:
			o.json = true;
			break;
		case G_TIMEOUT:
			o.timeout = strtod(val, &end);
			if (*end || end == val || !(o.timeout >= 0) || !isfinite(o.timeout)) {
				warnx_("--timeout needs a number of seconds, not '%s'", val);
				free(rest);
				return EX_USAGE;
			}
			break;
		case G_OUTPUT:
			if (strcmp(val, "json") == 0) {
				o.json = true;
			} else if (strcmp(val, "tsv") == 0) {
				o.json = false;
				out_style.tsv = true;
			} else if (strcmp(val, "table") == 0) {
				o.json = false;
				out_style.tsv = false;
			} else {
				warnx_("-o takes table, tsv or json, not '%s'", val);
				free(rest);
				return EX_USAGE;
			}
			break;
		case G_NO_LEGEND:
			out_style.no_legend = true;
			break;
		case G_SORT:
			out_style.sort = val;
			break;
		case G_TIME:
			if (strcmp(val, "relative") == 0) {
				out_style.time = TIME_RELATIVE;
			} else if (strcmp(val, "iso") == 0) {
				out_style.time = TIME_ISO;
			} else {
				warnx_("--time takes relative or iso, not '%s'", val);
				free(rest);
				return EX_USAGE;
			}
			o.time_set = true;
			break;
		case G_VERSION:
			printf("chatp2pctl %s (control protocol %d)\n", CHATP2P_VERSION, CTL_PROTO_VERSION);
			free(rest);
			return EX_OK;
		case G_HELP:
			help = true;
			break;
		}
	}

	if (help) {
		/* After a command: that command's usage. */
		if (cmd)
			command_usage(cmd, stdout);
		else
			usage(stdout);
		free(rest);
		return EX_OK;
	}
	if (sock == NULL && (env = getenv("CHATP2P_SOCKET")) != NULL && *env)
		sock = env;
	if (sock) {
		if (strlen(sock) >= sizeof o.socket) {
			warnx_("socket path too long: %s", sock);
			free(rest);
			return EX_USAGE;
		}
		snprintf(o.socket, sizeof o.socket, "%s", sock);
	} else if (ctl_client_socket(o.socket, sizeof o.socket) != 0) {
		warnx_("the default socket path is too long; use --socket");
		free(rest);
		return EX_USAGE;
	}

	if (cmd_name == NULL) {
		free(rest);
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
			return shell_run(&o);
		warnx_("no command (chatp2pctl --help lists them)");
		return EX_USAGE;
	}
	if (cmd == NULL) {
		const char *near = command_suggest(cmd_name);
		if (near)
			warnx_("unknown command '%s'; did you mean '%s'? (chatp2pctl --help)", cmd_name, near);
		else
			warnx_("unknown command '%s' (chatp2pctl --help)", cmd_name);
		free(rest);
		return EX_USAGE;
	}
	rc = cmd->run(&o, nrest, rest);
	free(rest);
	if (fflush(stdout) != 0 && errno != EPIPE && rc == EX_OK) {
		warnx_("cannot write the output: %s", strerror(errno));
		rc = EX_DAEMON;
	}
	return rc;
}
