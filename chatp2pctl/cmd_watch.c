/* watch: the node's events as they happen, as lines or NDJSON. */
#include "cmd_watch.h"

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

#include "ctlproto.h"
#include "fmt.h"
#include "output.h"

/* ---- watch ---------------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	stop_flag = sig;
}

struct watch {
	bool json;
	bool time_set;       /* --time: relative or ISO; else journalctl's local time */
	bool out_failed;
};

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

	if (m == NULL || (strcmp(m, "event") != 0 && strcmp(m, "lagged") != 0))
		return;
	if (w->json) {
		out_event_json(stdout, note);
	} else {
		watch_stamp(w, note);
		out_event(stdout, note);
	}
	/* Each event is a line someone is waiting for (| jq, | grep). */
	if (fflush(stdout) != 0) {
		w->out_failed = true; /* the reader is gone: so is our purpose */
		stop_flag = 1;
	}
}

/* ctl_run for watch, which also ends when its reader goes away: standard
 * output is polled for POLLHUP/POLLERR (a pipe whose reader closed), so
 * "watch | head -1" ends at once, not at the next event. */
static int watch_run(struct ctl_client *c, volatile sig_atomic_t *stop)
{
	sigset_t block, orig;
	int rc = EX_OK;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	while (c->status == EX_OK && !*stop) {
		struct pollfd pfd[2] = {
			{ c->fd, ctl_poll_events(c), 0 },
			{ STDOUT_FILENO, 0, 0 }, /* no events asked: HUP and ERR come anyway */
		};
		int n = ppoll(pfd, 2, NULL, &orig);
		if (n < 0 && errno != EINTR) {
			rc = EX_UNREACHABLE;
			break;
		}
		if (n <= 0)
			continue;
		if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			*stop = 1;
			break;
		}
		if (pfd[0].revents)
			ctl_handle(c, pfd[0].revents);
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return c->status != EX_OK ? c->status : rc;
}

int c_watch(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "since", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "replay", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *level = NULL;
	long long since = -1, replay = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "s:l:r:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'r') {
			errno = 0;
			replay = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || replay < 0 || replay > 10000)
				return usage_error(argv[0], "--replay needs a count (0..10000), not '%s'",
						   optarg);
		} else if (ch == 'l') {
			if (!level_ok(optarg))
				return usage_error(argv[0], "bad log level '%s'", optarg);
			level = optarg;
		} else {
			errno = 0;
			since = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || since < 0)
				return usage_error(argv[0], "--since needs a sequence number, not '%s'", optarg);
		}
	}
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
	jval params = params_end(g, true), reply;

	struct ctl_client c;
	struct watch w = { o->json, o->time_set, false };
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		json_free(params);
		return rc;
	}
	c.on_note = on_watch_note;
	c.note_ctx = &w;
	rc = ctl_call(&c, "subscribe", params, o->timeout, &reply);
	json_free(params);
	if (rc != EX_OK) {
		warnx_("%s", c.err);
		ctl_close(&c);
		return rc;
	}
	char msg[600];
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		warnx_("subscribe: %s", msg);
		json_free(reply);
		ctl_close(&c);
		return rc;
	}
	json_free(reply);

	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* Events already queued behind the answer are dispatched first. */
	rc = watch_run(&c, &stop_flag);
	if (w.out_failed || stop_flag) {
		rc = EX_OK;
	} else if (rc != EX_OK) {
		/* The daemon went away (stopped): nothing left to watch. */
		warnx_("%s", c.err);
		rc = c.eof ? EX_UNREACHABLE : rc;
	}
	ctl_close(&c);
	return rc;
}

