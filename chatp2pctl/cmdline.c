/* The global options: one loop for the command line and the shell's
 * lines, so "-o json" means the same thing in both. */
#include "cmdline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "xmalloc.h"

/* The global options.  After the command's name they are still global,
 * except a short letter the command uses itself (watch -s is --since). */
enum gopt_id { G_SOCKET, G_JSON, G_TIMEOUT, G_OUTPUT, G_NO_LEGEND, G_SORT, G_TIME, G_COLOR, G_VERSION, G_HELP };
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
	[G_COLOR] = { "color", 0, true },
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

int cmdline_parse(struct opts *o, int argc, char **argv, struct cmdline *cl)
{
	bool ended = false;

	*cl = (struct cmdline){ .rest = xcalloc((size_t)argc + 1, sizeof *cl->rest) };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		int g;

		if (ended || a[0] != '-' || a[1] == '\0') {
			if (cl->cmd_name == NULL) {
				cl->cmd_name = a;
				cl->cmd = command_find(a);
			}
			cl->rest[cl->nrest++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			/* The end of the options: the command's getopt sees it too-> */
			ended = true;
			if (cl->cmd_name)
				cl->rest[cl->nrest++] = argv[i];
			continue;
		}
		if ((g = match_global(a, cl->cmd, &val)) < 0) {
			if (cl->cmd_name == NULL) {
				const char *near = strncmp(a, "--", 2) == 0 ? option_suggest(a, NULL) : NULL;
				if (near)
					warnx_("bad option '%s'; did you mean '%s'? (chatp2pctl --help)", a, near);
				else
					warnx_("bad option '%s' (chatp2pctl --help)", a);
				return EX_USAGE;
			}
			cl->rest[cl->nrest++] = argv[i];
			continue;
		}
		if (gopts[g].arg && val == NULL) {
			if (i + 1 >= argc) {
				warnx_("option '%s' needs a value (chatp2pctl --help)", a);
				return EX_USAGE;
			}
			val = argv[++i];
		}
		char *end;
		switch ((enum gopt_id)g) {
		case G_SOCKET:
			cl->socket = val;
			break;
		case G_JSON:
			o->json = true;
			break;
		case G_TIMEOUT:
			o->timeout = strtod(val, &end);
			o->timeout_set = true;
			if (*end || end == val || !(o->timeout >= 0) || !isfinite(o->timeout)) {
				warnx_("--timeout needs a number of seconds, not '%s'", val);
				return EX_USAGE;
			}
			break;
		case G_OUTPUT:
			if (strcmp(val, "json") == 0) {
				o->json = true;
			} else if (strcmp(val, "tsv") == 0) {
				o->json = false;
				out_style.tsv = true;
			} else if (strcmp(val, "table") == 0) {
				o->json = false;
				out_style.tsv = false;
			} else {
				warnx_("-o takes table, tsv or json, not '%s'", val);
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
				return EX_USAGE;
			}
			o->time_set = true;
			break;
		case G_COLOR:
			if (strcmp(val, "auto") == 0) {
				out_style.color_mode = COLOR_AUTO;
			} else if (strcmp(val, "always") == 0) {
				out_style.color_mode = COLOR_ALWAYS;
			} else if (strcmp(val, "never") == 0) {
				out_style.color_mode = COLOR_NEVER;
			} else {
				warnx_("--color takes auto, always or never, not '%s'", val);
				return EX_USAGE;
			}
			break;
		case G_VERSION:
			cl->version = true; /* at once, as before: what follows is not read */
			return EX_OK;
		case G_HELP:
			cl->help = true;
			break;
		}
	}

	out_color_resolve();
	return EX_OK;
}
