/* The node itself: status, version, log level, reload, shutdown, readiness, methods, metrics, any method (call). */
#include "cmd_node.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
		if (wait && ctl_run(&c, NULL, o->timeout, NULL, -1) == EX_TIMEOUT) {
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


/* ---- logs ---------------------------------------------------------------------- */

static volatile sig_atomic_t logs_stop;

static void on_logs_stop(int sig)
{
	logs_stop = sig;
}

/* The last n lines of path, then (follow) what is appended, as tail -F:
 * a file rotated or truncated away is opened again. */
static int tail_file(const char *path, long n, bool follow)
{
	FILE *f = fopen(path, "re");
	char buf[65536];
	long long pos;

	if (f == NULL) {
		warnx_("logs: cannot open %s: %s", path, strerror(errno));
		return EX_DAEMON;
	}
	/* The last n lines: within the last 4 MiB at most. */
	fseeko(f, 0, SEEK_END);
	long long size = ftello(f), from = size > 4 << 20 ? size - (4 << 20) : 0;
	struct buf all = BUF_INIT;
	fseeko(f, from, SEEK_SET);
	size_t got;
	while ((got = fread(buf, 1, sizeof buf, f)) > 0)
		buf_append(&all, buf, got);
	/* Back from the end (its newline aside) to the n-th newline. */
	size_t start = all.len, seen = 0;
	if (n > 0) {
		start = all.len > 0 && all.data[all.len - 1] == '\n' ? all.len - 1 : all.len;
		while (start > 0 && !(all.data[start - 1] == '\n' && ++seen == (size_t)n))
			start--;
	}
	fwrite(all.data + start, 1, all.len - start, stdout);
	buf_free(&all);
	fflush(stdout);
	pos = ftello(f);
	if (follow) {
		struct sigaction sa = { .sa_handler = on_logs_stop };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		logs_stop = 0;
		while (!logs_stop) {
			struct stat st;
			clearerr(f);
			while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
				fwrite(buf, 1, got, stdout);
				pos += (long long)got;
			}
			if (fflush(stdout) != 0)
				break;
			/* Rotated (a new file at path) or truncated: start it over. */
			struct stat cur;
			if (stat(path, &st) == 0 && fstat(fileno(f), &cur) == 0 &&
			    (cur.st_ino != st.st_ino || st.st_size < pos)) {
				FILE *g = fopen(path, "re");
				if (g) {
					fclose(f);
					f = g;
					pos = 0;
					continue;
				}
			}
			sleep_s(0.25);
		}
	}
	fclose(f);
	return EX_OK;
}

int c_logs(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "lines", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	bool follow = false;
	long n = 50;
	int ch, rc;
	jval reply;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "fn:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'f') {
			follow = true;
			continue;
		}
		n = strtol(optarg, &end, 10);
		if (*end || end == optarg || n < 0 || n > 1000000)
			return usage_error(argv[0], "-n needs a number of lines, not '%s'", optarg);
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if ((rc = one_call(o, "logs", "status", NULL, &reply)) != EX_OK)
		return rc;
	jval r = ctl_result(reply), log = json_get(r, "log");
	long long pid = 0;
	json_int(json_get(r, "pid"), &pid);
	const char *file = json_get_str(log, "file");
	char path[4096] = "";
	if (file)
		snprintf(path, sizeof path, "%s", file);
	bool journal = json_bool(json_get(log, "journal")) == 1;
	json_free(reply);
	if (journal) {
		/* Under systemd: the journal has it all, with the unit's metadata. */
		char pidm[48], lines[32];
		snprintf(pidm, sizeof pidm, "_PID=%lld", pid);
		snprintf(lines, sizeof lines, "--lines=%ld", n);
		char *jargv[] = { "journalctl", "--no-pager", lines, pidm, follow ? "--follow" : NULL, NULL };
		fflush(stdout);
		execvp("journalctl", jargv);
		warnx_("logs: cannot run journalctl: %s", strerror(errno));
		if (!path[0])
			return EX_DAEMON;
	}
	if (path[0])
		return tail_file(path, n, follow);
	if (log == NULL) {
		warnx_("logs: the daemon does not say where it logs (an older chatp2pd)");
		return EX_DAEMON;
	}
	warnx_("logs: the node logs to its standard error only (logging.log_to_file is false and "
	       "it is not under systemd): see where that goes");
	return EX_DAEMON;
}
