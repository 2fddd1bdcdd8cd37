/* The node's events as they happen: watch (every class, as lines or
 * NDJSON, until interrupted or --count) and recv (the next message(s),
 * for scripts that wait for an answer). */
#include "cmd_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "fmt.h"
#include "output.h"

struct watch {
	bool json;
	bool time_set;       /* --time: relative or ISO; else journalctl's local time */
	bool stamp;          /* human lines start with the time (watch; not recv) */
	bool out_failed;
	bool messages_only;  /* recv: message and pub events only */
	const char *from;    /* recv --from: only from this peer id */
	time_t since, until; /* shown only within (0: no bound) */
	long long count;     /* stop after this many shown (0: never) */
	long long shown;
	char identity[300];  /* our peer id (--exec) */
	bool past_until;     /* an event after --until came: done */
	const char *exec;    /* --exec: a program and its arguments, per message */
	int running;         /* --exec children not yet reaped */
};

extern char **environ;

#define EXEC_MAX_RUNNING 4
#define EXEC_ARGV_MAX 32

/* Reap finished --exec children; block for one while there are max. */
static void exec_reap(struct watch *w, int max)
{
	int st;
	pid_t pid;

	while (w->running > 0 &&
	       (pid = waitpid(-1, &st, w->running >= max ? 0 : WNOHANG)) != 0) {
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			w->running = 0;
			break;
		}
		w->running--;
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			warnx_("--exec: process %ld %s %d", (long)pid,
			       WIFEXITED(st) ? "exited with status" : "killed by signal",
			       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
}

/* watch --exec: the program for a message, as hooks.on_message runs on the
 * daemon's side: no shell, the message in CHATP2P_* variables, at most
 * EXEC_MAX_RUNNING at once. */
static void exec_for(struct watch *w, jval p)
{
	char line[1024], *argv[EXEC_ARGV_MAX + 1], *save = NULL;
	int argc = 0;

	exec_reap(w, EXEC_MAX_RUNNING);
	snprintf(line, sizeof line, "%s", w->exec);
	for (char *t = strtok_r(line, " \t", &save); t && argc < EXEC_ARGV_MAX; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	if (argc == 0)
		return;
	static const char *const keys[][2] = {
		{ "CHATP2P_FROM", "from" }, { "CHATP2P_TO", "to" }, { "CHATP2P_TYPE", "type" },
		{ "CHATP2P_TEXT", "text" }, { "CHATP2P_MSG_ID", "msg_id" },
	};
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	char **envp = calloc(nenv + 8, sizeof *envp), *own[6] = { NULL };
	if (envp == NULL)
		return;
	size_t e = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "CHATP2P_", 8) != 0 || strncmp(environ[i], "CHATP2P_SOCKET=", 15) == 0)
			envp[e++] = environ[i];
	for (size_t k = 0; k < 5; k++) {
		const char *v = json_get_str(p, keys[k][1]);
		if (v && asprintf(&own[k], "%s=%s", keys[k][0], v) >= 0)
			envp[e++] = own[k];
	}
	/* Our identity: the daemon's, as the hook gets it. */
	if (w->identity[0] && asprintf(&own[5], "CHATP2P_IDENTITY=%s", w->identity) >= 0)
		envp[e++] = own[5];
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	for (int k = 0; k < 6; k++)
		free(own[k]);
	free(envp);
	if (rc != 0)
		warnx_("--exec: cannot run %s: %s", argv[0], strerror(rc));
	else
		w->running++;
}

/* Every human line starts with the event's time, in the local zone (like
 * journalctl): a replay (--since) shows when things happened. */
static void watch_stamp(const struct watch *w, jval note)
{
	const char *at = json_get_str(json_get(note, "params"), "at");
	time_t t = fmt_parse_iso(at);
	char buf[64];

	if (t == (time_t)-1)
		t = time(NULL);
	if (w->time_set && out_style.time == TIME_RELATIVE) {
		double age = difftime(time(NULL), t);
		char d[32];
		snprintf(buf, sizeof buf, "%s ago", fmt_duration(age < 0 ? 0 : age, d, sizeof d));
	} else if (w->time_set) {
		fmt_local_iso(t, buf, sizeof buf);
	} else {
		fmt_local_short(t, buf, sizeof buf);
	}
	fprintf(stdout, "%s ", buf);
}

static void on_watch_note(void *ctx, jval note)
{
	struct watch *w = ctx;
	const char *m = json_get_str(note, "method");
	jval p = json_get(note, "params");

	if (m == NULL || (strcmp(m, "event") != 0 && strcmp(m, "lagged") != 0) || w->past_until ||
	    (w->count > 0 && w->shown >= w->count))
		return;
	if (w->messages_only) {
		const char *type = json_get_str(p, "type");
		if (strcmp(m, "event") != 0 || type == NULL ||
		    (strcmp(type, "message") != 0 && strcmp(type, "pub") != 0))
			return;
		if (w->from && strcmp(w->from, jstr_or(p, "from", "")) != 0)
			return;
	}
	if ((w->since || w->until) && strcmp(m, "event") == 0) {
		time_t t = fmt_parse_iso(json_get_str(p, "at"));
		if (t != (time_t)-1 && w->since && t < w->since)
			return;
		if (t != (time_t)-1 && w->until && t > w->until) {
			w->past_until = true;
			follow_stop = 1;
			return;
		}
	}
	if (w->exec) {
		/* Messages run the program; nothing printed for them. */
		const char *type = json_get_str(p, "type");
		if (strcmp(m, "event") == 0 && type &&
		    (strcmp(type, "message") == 0 || strcmp(type, "pub") == 0))
			exec_for(w, p);
	} else if (w->json) {
		out_event_json(stdout, note);
	} else {
		if (w->stamp)
			watch_stamp(w, note);
		out_event(stdout, note);
	}
	w->shown++;
	/* Each event is a line someone is waiting for (| jq, | grep). */
	if (fflush(stdout) != 0) {
		w->out_failed = true; /* the reader is gone: so is our purpose */
		follow_stop = 1;
	}
	if (w->count > 0 && w->shown >= w->count)
		follow_stop = 1;
}

/* Events shown by on_watch_note; standard output is watched too, so
 * "watch | head -1" ends when its reader does, not at the next event. */
static int stream(const struct opts *o, struct ctl_client *c, struct watch *w, jval params,
		  double deadline)
{
	c->on_note = on_watch_note;
	c->note_ctx = w;
	return follow_events(o, c, params, deadline, STDOUT_FILENO);
}

int c_watch(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ "after-seq", required_argument, NULL, 'A' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "replay", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "exec", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	const char *level = NULL;
	long long since = -1, replay = 0;
	struct watch w = { .json = o->json, .time_set = o->time_set, .stamp = true };
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "l:r:n:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		errno = 0;
		switch (ch) {
		case 'r':
			replay = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || replay < 0 || replay > 10000)
				return usage_error(argv[0], "--replay needs a count (0..10000), not '%s'",
						   optarg);
			break;
		case 'n':
			w.count = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || w.count < 1)
				return usage_error(argv[0], "--count needs a number of events, not '%s'", optarg);
			break;
		case 'l':
			if (!level_ok(optarg))
				return usage_error(argv[0], "bad log level '%s'", optarg);
			level = optarg;
			break;
		case 'S':
			/* A number alone: a sequence number, as before --after-seq. */
			if (optarg[0] && optarg[strspn(optarg, "0123456789")] == '\0') {
				since = strtoll(optarg, &end, 10);
				if (errno || since < 0)
					return usage_error(argv[0], "--since: '%s' is out of range", optarg);
			} else if (!when_arg(argv[0], "--since", optarg, &w.since)) {
				return EX_USAGE;
			}
			break;
		case 'U':
			if (!when_arg(argv[0], "--until", optarg, &w.until))
				return EX_USAGE;
			break;
		case 'x':
			if (optarg[strspn(optarg, " \t")] == '\0')
				return usage_error(argv[0], "--exec needs a program");
			w.exec = optarg;
			break;
		default: /* 'A' */
			since = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || since < 0)
				return usage_error(argv[0], "--after-seq needs a sequence number, not '%s'",
						   optarg);
			break;
		}
	}
	/* A time: every event still held, those before it left out. */
	if (w.since && since < 0)
		since = 0;
	if (w.until && w.until <= time(NULL) && since < 0 && replay == 0)
		since = 0; /* --until in the past alone: the held events up to it */
	yajl_gen g = jg_new();
	jg_map(g);
	if (optind < argc) {
		jg_str(g, "events");
		jg_arr(g);
		for (int i = optind; i < argc; i++) {
			if (!event_class_ok(argv[i])) {
				jg_free(g);
				return usage_error(argv[0], "unknown event class '%s' (message, ack, "
						   "peer, registration, log, all)", argv[i]);
			}
			jg_str(g, argv[i]);
		}
		jg_end_arr(g);
	}
	if (since >= 0)
		JG_KINT(g, "since", since);
	if (replay > 0)
		JG_KINT(g, "replay", replay);
	if (level)
		JG_KSTR(g, "log_level", level);
	jval params = params_end(g, true);

	struct ctl_client c;
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		json_free(params);
		return rc;
	}
	if (w.exec) {
		jval vr = NULL;
		if (ctl_call(&c, "version", NULL, o->timeout, &vr) == EX_OK &&
		    json_get_str(ctl_result(vr), "node"))
			snprintf(w.identity, sizeof w.identity, "%s", json_get_str(ctl_result(vr), "node"));
		json_free(vr);
	}
	double deadline = 0;
	if (w.until > time(NULL))
		deadline = ctl_now() + difftime(w.until, time(NULL));
	else if (w.until)
		/* Already past: the held events, which follow the subscribe
		 * answer at once, then done (a second is ample for them). */
		deadline = ctl_now() + 1.0;
	rc = stream(o, &c, &w, params, deadline);
	if (rc == EX_TIMEOUT && w.until)
		rc = EX_OK; /* --until reached: done, not late */
	ctl_close(&c);
	exec_reap(&w, 1); /* the programs still running finish first */
	return rc;
}

int c_recv(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct watch w = { .json = o->json, .messages_only = true, .count = 1 };
	const char *from = NULL;
	char peer[300];
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "f:n:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'f') {
			from = optarg;
			continue;
		}
		errno = 0;
		w.count = strtoll(optarg, &end, 10);
		if (errno || *end || end == optarg || w.count < 1 || w.count > 1000000)
			return usage_error(argv[0], "-n needs a count of at least 1, not '%s'", optarg);
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if (from && !peer_arg_ok(from))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", from);

	struct ctl_client c;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if (from && (rc = resolve_peer(&c, o->timeout, argv[0], from, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	w.from = from ? peer : NULL;
	static const char subs[] = "{\"events\":[\"message\"]}";
	char err[64];
	/* -t bounds the wait for the message itself; without it, no limit. */
	double deadline = o->timeout_set && o->timeout > 0 ? ctl_now() + o->timeout : 0;
	rc = stream(o, &c, &w, json_parse(subs, strlen(subs), err, sizeof err), deadline);
	ctl_close(&c);
	if (rc == EX_TIMEOUT) {
		if (w.shown > 0)
			warnx_("recv: %lld of %lld messages within %g s (-t)", w.shown, w.count, o->timeout);
		else
			warnx_("recv: no message%s%s within %g s (-t)", from ? " from " : "",
			       from ? peer : "", o->timeout);
		return EX_TIMEOUT;
	}
	if (rc == EX_OK && w.shown < w.count && !w.out_failed)
		return EX_TIMEOUT; /* interrupted before the messages came */
	return rc;
}
