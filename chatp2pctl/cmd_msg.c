/* Messages out: send (and wait for the ACK), pub, ping. */
#include "cmd_msg.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "ctlproto.h"
#include "fmt.h"
#include "msgid.h"
#include "output.h"

/* The daemon refused a text too long for the wire ("message too long: N
 * bytes on the wire, the limit is M"): our mistake, not the daemon's (exit
 * 3), and how much text would fit, for send and pub alike. */
static bool too_long(jval reply, size_t textlen, const char *cmd)
{
	const char *m = json_get_str(json_get(reply, "error"), "message");
	unsigned long long wire;
	long long max;

	if (m == NULL || (m = strstr(m, "too long: ")) == NULL ||
	    sscanf(m, "too long: %llu bytes on the wire, the limit is %lld", &wire, &max) != 2)
		return false;
	long long overhead = (long long)wire - (long long)textlen;
	long long fit = max - (overhead > 0 ? overhead : 0);
	usage_error(cmd, "the text is too long: %zu bytes, %llu on the wire where the limit is "
		    "%lld (network.max_msg_size); at most about %lld bytes of text fit", textlen, wire,
		    max, fit > 0 ? fit : 0);
	return true;
}

/* A next step for an error that has one. */
static const char *next_step(const char *reason)
{
	if (reason && strcmp(reason, "not_connected") == 0)
		return "; send --queue keeps it in the outbox until the peer is back";
	if (reason && strcmp(reason, "identity_unproven") == 0)
		return "; its key is pinned and this connection did not prove it (chatp2pctl trust)";
	return "";
}

int c_send(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "no-ack", no_argument, NULL, 'n' },
		{ "queue", no_argument, NULL, 'q' },
		{ "deadline", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	bool ack = true, queue = false;
	double deadline = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "nqd:", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'q') {
			queue = true;
		} else if (ch == 'd') {
			if ((deadline = parse_duration(optarg)) < 0 || deadline > 30 * 86400.0)
				return usage_error(argv[0], "--deadline needs a duration up to 30d "
						   "(90, 90s, 10m, 2h, 1d), not '%s'", optarg);
			queue = true;
		} else {
			ack = false;
		}
	}
	if (queue && !ack)
		return usage_error(argv[0], "--queue waits for an ACK: it cannot go with --no-ack");
	if (optind >= argc)
		return usage_error(argv[0], "missing PEER");
	const char *typed = argv[optind];
	if (!peer_arg_ok(typed))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);
	char *text = text_arg(argv[0], argc - optind - 1, argv + optind + 1);
	if (text == NULL)
		return EX_USAGE;
	size_t textlen = strlen(text);

	struct ctl_client c;
	char to[300], msg_id[MSGID_LEN], msg[600];
	jval reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK) {
		free(text);
		return rc;
	}
	if ((rc = resolve_peer(&c, o->timeout, argv[0], typed, to, sizeof to)) != EX_OK) {
		free(text);
		ctl_close(&c);
		return rc;
	}
	/* Our own msg_id: if we stop waiting first, we can still name it. */
	msgid_new(msg_id);
	jval params = queue ? params_send_queued(to, text, deadline, msg_id) : params_send(to, text, ack, msg_id);
	free(text);
	if (params == NULL) {
		ctl_close(&c);
		return usage_error(argv[0], "the text is not valid UTF-8");
	}
	/* A queued send answers when it is delivered or expires: wait for
	 * that (the deadline, default storage.queue_deadline) unless told. */
	rc = ctl_call(&c, "send", params, queue && o->timeout == DEFAULT_TIMEOUT ? 0 : o->timeout, &reply);
	json_free(params);
	if (rc == EX_TIMEOUT) {
		warnx_("no ACK from %s for msg_id %s within %g s (-t); the daemon keeps waiting: "
		       "an 'ack' event with late: true would mean it arrived", to, msg_id, o->timeout);
		if (o->json)
			printf("{\"code\":%d,\"message\":\"client timeout\",\"data\":{\"reason\":"
			       "\"client_timeout\",\"peer_id\":\"%s\",\"msg_id\":\"%s\"}}\n",
			       CTL_E_DELIVERY, to, msg_id);
		ctl_close(&c);
		return EX_TIMEOUT;
	}
	if (rc != EX_OK) {
		warnx_("%s", c.err);
		ctl_close(&c);
		return rc;
	}
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
		char hint[512] = "";
		if (reason && strcmp(reason, "unknown_peer") == 0 &&
		    unknown_peer_hint(&c, o->timeout, to, hint, sizeof hint)) {
			warnx_("%s: %s", argv[0], hint);
			rc = EX_USAGE;
		} else if (too_long(reply, textlen, argv[0])) {
			rc = EX_USAGE;
		} else {
			warnx_("%s: %s%s%s%s", to, msg, hint[0] ? "; " : "", hint, next_step(reason));
		}
		/* Only an outcome still open (an ACK may come late) is worth a
		 * document on stdout: the script keeps the msg_id. */
		if (o->json && reason && strcmp(reason, "ack_timeout") == 0)
			print_error_json(json_get(reply, "error"));
		json_free(reply);
		ctl_close(&c);
		return rc;
	}
	ctl_close(&c);
	jval r = ctl_result(reply);
	const char *status = json_get_str(r, "status");
	/* Exit 0 promises delivery: only an answer that says so keeps it. */
	if (status == NULL || strcmp(status, ack ? "acked" : "sent") != 0) {
		fprintf(stderr, "chatp2pctl: protocol error: send answered without status \"%s\"\n",
			ack ? "acked" : "sent");
		json_free(reply);
		return EX_PROTO;
	}
	if (o->json) {
		print_json(stdout, r, false);
	} else {
		char ms[32];
		double v = -1;
		json_num(json_get(r, "rtt_ms"), &v);
		if (ack)
			printf("delivered to %s (%s)\n", to, fmt_ms(v, ms, sizeof ms));
		else
			printf("sent to %s (no ACK asked for)\n", to);
	}
	json_free(reply);
	return EX_OK;
}


static void out_pub(FILE *f, jval r)
{
	long long n = 0;

	json_int(json_get(r, "reached"), &n);
	fprintf(f, "published to %lld peer%s\n", n, n == 1 ? "" : "s");
}

int c_pub(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	if (argc < 2)
		return usage_error(argv[0], "missing '*' or '#namespace'");
	if (!target_ok(argv[1])) {
		/* An unquoted * reaches us as the file names it matched. */
		if (access(argv[1], F_OK) == 0 && argv[1][0] != '#')
			return usage_error(argv[0], "'%s' is a file here: did the shell expand an unquoted "
					   "*? Quote it: pub '*' TEXT", argv[1]);
		if (argv[1][0] != '#' && !strpbrk(argv[1], "@ \t*"))
			return usage_error(argv[0], "target must be '*' or '#namespace', not '%s': did "
					   "you mean '#%s'?", argv[1], argv[1]);
		return usage_error(argv[0], "target must be '*' or '#namespace', not '%s'", argv[1]);
	}
	const char *target = argv[1];
	char *text = text_arg(argv[0], argc - 2, argv + 2);
	if (text == NULL)
		return EX_USAGE;
	size_t textlen = strlen(text);
	jval params = params_pub(target, text), reply = NULL;
	free(text);
	if (params == NULL)
		return usage_error(argv[0], "the text is not valid UTF-8");
	struct ctl_client c;
	char msg[600];
	int rc = open_or_report(&c, o);
	if (rc == EX_OK) {
		if ((rc = ctl_call(&c, "pub", params, o->timeout, &reply)) != EX_OK)
			warnx_("%s", c.err);
		ctl_close(&c);
	}
	json_free(params);
	if (rc != EX_OK)
		return rc;
	if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		if (too_long(reply, textlen, argv[0]))
			rc = EX_USAGE;
		else
			warnx_("pub: %s", msg);
		json_free(reply);
		return rc;
	}
	jval r = ctl_result(reply);
	long long n = 0;
	json_int(json_get(r, "reached"), &n);
	if (o->json)
		print_json(stdout, r, false);
	else if (n > 0)
		out_pub(stdout, r);
	json_free(reply);
	/* Reaching nobody is no success (the shell says so too). */
	if (n == 0) {
		if (strcmp(target, "*") == 0)
			warnx_("pub: nobody received it: no peer is connected");
		else
			warnx_("pub: nobody received it: no connected peer in %s", target);
		return EX_TIMEOUT;
	}
	return EX_OK;
}

/* PING over the live connection, as often as asked: each RTT, then the
 * summary.  0 when at least one PONG came back, 4 when none did. */
int c_ping(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	long count = 3;
	double interval = 1.0, sum = 0, mn = 0, mx = 0;
	int ch, rc, answered = 0, sent = 0;
	char peer[300], last_err[600] = "";

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "c:i:", lo)) != -1) {
		char *end;
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'c') {
			count = strtol(optarg, &end, 10);
			if (*end || end == optarg || count < 1 || count > 100000)
				return usage_error(argv[0], "-c needs a count of at least 1, not '%s'", optarg);
		} else {
			interval = strtod(optarg, &end);
			if (*end || end == optarg || !(interval >= 0) || !isfinite(interval))
				return usage_error(argv[0], "-i needs seconds, not '%s'", optarg);
		}
	}
	if (optind >= argc)
		return usage_error(argv[0], "missing PEER");
	if (argc - optind > 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *typed = argv[optind];
	if (!peer_arg_ok(typed))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);

	struct ctl_client c;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if ((rc = resolve_peer(&c, o->timeout, argv[0], typed, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	struct buf rtts = BUF_INIT;
	int fail_rc = EX_TIMEOUT;
	for (long i = 0; i < count; i++) {
		jval reply = NULL, params = params_kv("peer", peer);
		double ms;
		if (i > 0 && interval > 0)
			sleep_s(interval);
		sent++;
		rc = ctl_call(&c, "ping", params, o->timeout, &reply);
		json_free(params);
		if (rc != EX_OK) {
			snprintf(last_err, sizeof last_err, "%s", c.err);
			fail_rc = rc;
			json_free(reply);
			break;
		}
		if ((rc = ctl_reply_status(reply, last_err, sizeof last_err)) != EX_OK ||
		    !json_num(json_get(ctl_result(reply), "rtt_ms"), &ms)) {
			const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
			/* Not connected or unknown: asking again will not help. */
			bool again = reason != NULL && strcmp(reason, "ping_timeout") == 0;
			fail_rc = rc != EX_OK ? rc : EX_PROTO;
			if (!o->json) {
				printf("no pong from %s: %s\n", peer, last_err);
				fflush(stdout);
			}
			json_free(reply);
			if (!again)
				break;
			continue;
		}
		json_free(reply);
		answered++;
		sum += ms;
		mn = answered == 1 || ms < mn ? ms : mn;
		mx = answered == 1 || ms > mx ? ms : mx;
		buf_printf(&rtts, "%s%.3f", answered > 1 ? "," : "", ms);
		if (!o->json) {
			char t[32];
			printf("pong from %s: %s\n", peer, fmt_ms(ms, t, sizeof t));
			fflush(stdout);
		}
	}
	ctl_close(&c);
	buf_cstr(&rtts);
	if (o->json) {
		printf("{\"peer_id\":\"%s\",\"sent\":%d,\"answered\":%d,\"rtt_ms\":[%s]", peer, sent,
		       answered, rtts.data);
		if (answered)
			printf(",\"min\":%.3f,\"avg\":%.3f,\"max\":%.3f", mn, sum / answered, mx);
		printf("}\n");
	} else if (answered) {
		char t1[32], t2[32], t3[32];
		if (mx < 1000) /* one unit for the three, as ping(8) */
			printf("%s: %d sent, %d answered; rtt min/avg/max %.2f/%.2f/%.2f ms\n", peer,
			       sent, answered, mn, sum / answered, mx);
		else
			printf("%s: %d sent, %d answered; rtt min/avg/max %s/%s/%s\n", peer, sent,
			       answered, fmt_ms(mn, t1, sizeof t1), fmt_ms(sum / answered, t2, sizeof t2),
			       fmt_ms(mx, t3, sizeof t3));
	}
	buf_free(&rtts);
	if (answered)
		return EX_OK;
	warnx_("ping %s: %s", peer, last_err[0] ? last_err : "no answer");
	return fail_rc == EX_DAEMON ? EX_TIMEOUT : fail_rc;
}

