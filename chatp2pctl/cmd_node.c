/* The node itself: status, version, log level, reload, shutdown, readiness, methods, metrics, any method (call). */
#include "cmd_node.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctlproto.h"
#include "fmt.h"
#include "output.h"
#include "version.h"

int c_status(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "status", NULL, out_status);
}

int c_version(const struct opts *o, int argc, char **argv)
{
	jval reply;
	int rc = no_args(argc, argv);

	if (rc == EX_OK)
		rc = one_call(o, "version", "version", NULL, &reply);
	if (rc != EX_OK)
		return rc;
	jval r = ctl_result(reply);
	long long proto = 0;
	json_int(json_get(r, "protocol"), &proto);
	if (o->json) {
		print_json(stdout, r, false);
	} else {
		printf("chatp2pd %s (control protocol %lld), node %s\n",
		       json_get_str(r, "version") ? json_get_str(r, "version") : "?", proto,
		       json_get_str(r, "node") ? json_get_str(r, "node") : "?");
		printf("chatp2pctl %s (control protocol %d)\n", CHATP2P_VERSION, CTL_PROTO_VERSION);
	}
	if (proto < CTL_PROTO_VERSION)
		warnx_("the daemon speaks control protocol %lld, older than ours (%d): "
		       "some commands may be unknown to it", proto, CTL_PROTO_VERSION);
	json_free(reply);
	return EX_OK;
}


static void out_log(FILE *f, jval r)
{
	const char *prev = json_get_str(r, "previous");

	if (prev)
		fprintf(f, "log level %s (was %s)\n", json_get_str(r, "level"), prev);
	else
		fprintf(f, "%s\n", json_get_str(r, "level") ? json_get_str(r, "level") : "?");
}

int c_log(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc > 2)
		return usage_error(argv[0], "unexpected argument '%s'", argv[2]);
	if (argc == 1)
		return simple(o, "log.get", NULL, out_log);
	if (!level_ok(argv[1]))
		return usage_error(argv[0], "level must be DEBUG, INFO, WARNING or ERROR, not '%s'", argv[1]);
	return simple(o, "log.set", params_kv("level", argv[1]), out_log);
}


static void out_reload(FILE *f, jval r)
{
	jval refused = json_get(r, "refused");

	fputs("configuration reloaded\n", f);
	if (json_arr_len(refused) > 0) {
		fputs("unchanged until a restart:", f);
		for (size_t i = 0; i < json_arr_len(refused); i++) {
			const char *key = json_str(json_arr_at(refused, i));
			fprintf(f, "%s %s", i ? "," : "", key ? key : "?");
		}
		fputc('\n', f);
	}
}

int c_reload(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "reload", NULL, out_reload);
}


int c_shutdown(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	bool wait = false;
	struct ctl_client c;
	jval reply;
	char msg[600];
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "w", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		wait = true;
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if ((rc = ctl_call(&c, "shutdown", NULL, o->timeout, &reply)) != EX_OK) {
		warnx_("%s", c.err);
	} else if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		warnx_("shutdown: %s", msg);
	} else {
		if (o->json)
			print_json(stdout, ctl_result(reply), false);
		else
			puts("node stopping");
		/* The daemon closes every controller as its very last act. */
		if (wait && ctl_run(&c, NULL, o->timeout, NULL) == EX_TIMEOUT) {
			warnx_("the daemon did not stop within %g s", o->timeout);
			rc = EX_TIMEOUT;
		}
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

int c_call(const struct opts *o, int argc, char **argv)
{
	jval params = NULL, reply;
	char err[128];
	int rc;

	argc = strip_dashdash(argc, argv);
	if (argc < 2 || argc > 3)
		return usage_error(argv[0], argc < 2 ? "missing METHOD" : "unexpected argument '%s'",
				   argv[argc - 1]);
	if (argc == 3) {
		params = json_parse(argv[2], strlen(argv[2]), err, sizeof err);
		if (params == NULL)
			return usage_error(argv[0], "JSON-PARAMS is not JSON: %s", err);
		/* Every method takes named params (docs/control-protocol.md). */
		if (!YAJL_IS_OBJECT(params)) {
			json_free(params);
			return usage_error(argv[0], "JSON-PARAMS must be an object ({\"key\": value})");
		}
	}
	struct ctl_client c;
	char msg[600];
	reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		json_free(params);
		return rc;
	}
	rc = ctl_call(&c, argv[1], params, o->timeout, &reply);
	json_free(params);
	if (rc != EX_OK) {
		warnx_("%s", c.err);
		ctl_close(&c);
		return rc;
	}
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		long long code = 0;
		jval mr = NULL;
		json_int(json_get(json_get(reply, "error"), "code"), &code);
		/* An unknown method: the valid ones, the closest first. */
		if (code == CTL_E_NO_METHOD && ctl_call(&c, "methods", NULL, o->timeout, &mr) == EX_OK) {
			jval list = json_get(ctl_result(mr), "methods");
			const char *names[128];
			size_t n = 0;
			struct buf all = BUF_INIT;
			for (size_t i = 0; i < json_arr_len(list) && n < 128; i++) {
				const char *name = json_get_str(json_arr_at(list, i), "name");
				if (name) {
					names[n++] = name;
					buf_printf(&all, "%s%s", all.len ? ", " : "", name);
				}
			}
			const char *near = fmt_closest(argv[1], names, n);
			buf_cstr(&all);
			warnx_("%s: %s%s%s%s; the methods are: %s", argv[1], msg, near ? "; did you mean '" : "",
			       near ? near : "", near ? "'?" : "", all.data);
			buf_free(&all);
		} else {
			warnx_("%s: %s", argv[1], msg);
		}
		json_free(mr);
		json_free(reply);
		ctl_close(&c);
		return rc;
	}
	ctl_close(&c);
	print_json(stdout, ctl_result(reply), !o->json);
	json_free(reply);
	return EX_OK;
}


/* Until the daemon answers and is registered at the rendezvous server:
 * for scripts and service ordering.  Polls; the daemon may not exist yet. */
int c_wait_ready(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	double timeout = o->timeout, deadline;
	char last[600] = "the daemon did not answer";
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		timeout = strtod(optarg, &end);
		if (*end || end == optarg || !(timeout >= 0) || !isfinite(timeout))
			return usage_error(argv[0], "--timeout needs seconds, not '%s'", optarg);
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	deadline = timeout > 0 ? ctl_now() + timeout : 0;
	for (;;) {
		struct ctl_client c;
		double left = deadline > 0 ? deadline - ctl_now() : 0;
		int rc;

		if (deadline > 0 && left <= 0)
			break;
		rc = ctl_open(&c, o->socket, left);
		if (rc == EX_PERM || rc == EX_USAGE) {
			warnx_("%s", c.err);
			ctl_close(&c);
			return rc;
		}
		while (rc == EX_OK) {
			jval reply;
			left = deadline > 0 ? deadline - ctl_now() : 0;
			if (deadline > 0 && left <= 0)
				break;
			if ((rc = ctl_call(&c, "status", NULL, left > 0 ? left : 0, &reply)) != EX_OK) {
				snprintf(last, sizeof last, "%s", c.err);
				break;
			}
			jval r = ctl_result(reply);
			const char *state = json_get_str(json_get(r, "rendezvous"), "state");
			if (state && strcmp(state, "registered") == 0) {
				const char *id = json_get_str(r, "peer_id");
				if (o->json)
					print_json(stdout, r, false);
				else
					printf("ready: %s registered\n", id ? id : "?");
				json_free(reply);
				ctl_close(&c);
				return EX_OK;
			}
			const char *rerr = json_get_str(json_get(r, "rendezvous"), "last_error");
			/* Why it is not registered, when the daemon knows. */
			snprintf(last, sizeof last, "rendezvous registration is %s%s%s", state ? state : "?",
				 rerr ? "; last error: " : "", rerr ? rerr : "");
			json_free(reply);
			sleep_s(0.1);
		}
		if (rc != EX_OK && rc != EX_TIMEOUT)
			snprintf(last, sizeof last, "%s", c.err);
		ctl_close(&c);
		if (deadline == 0 || ctl_now() + 0.1 < deadline)
			sleep_s(0.1);
	}
	warnx_("not ready within %g s: %s", timeout, last);
	return EX_TIMEOUT;
}


int c_methods(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "methods", NULL, out_methods);
}

static void out_metrics(FILE *f, jval r)
{
	const char *text = json_get_str(r, "text");

	fputs(text ? text : "", f);
}

/* The daemon's Prometheus text as OpenMetrics 1.0: a counter family is
 * named without its _total (its samples keep it), and "# EOF" ends it. */
static void out_openmetrics(FILE *f, jval r)
{
	const char *text = json_get_str(r, "text");
	struct buf counters = BUF_INIT; /* " name_total " for every counter family */

	if (text == NULL)
		text = "";
	buf_puts(&counters, " ");
	for (const char *l = text; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		char name[128], type[32];
		if (sscanf(l, "# TYPE %127s %31s", name, type) == 2 && strcmp(type, "counter") == 0)
			buf_printf(&counters, "%s ", name);
	}
	buf_cstr(&counters);
	for (const char *l = text; *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		char name[128], key[132];
		if ((strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0) &&
		    sscanf(l + 7, "%127s", name) == 1 && strlen(name) > 6 &&
		    strcmp(name + strlen(name) - 6, "_total") == 0 &&
		    (snprintf(key, sizeof key, " %s ", name), strstr(counters.data, key))) {
			fprintf(f, "%.7s%.*s%.*s\n", l, (int)(strlen(name) - 6), name,
				(int)(len - 7 - strlen(name)), l + 7 + strlen(name));
		} else if (len > 0) {
			fprintf(f, "%.*s\n", (int)len, l);
		}
		l += len + (nl ? 1 : 0);
	}
	fputs("# EOF\n", f);
	buf_free(&counters);
}

int c_metrics(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "openmetrics", no_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	bool om = false;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		om = true;
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	return simple(o, "metrics", NULL, om ? out_openmetrics : out_metrics);
}

