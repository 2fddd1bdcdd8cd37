/* The node's store: the inbox, marking read, the outbox of queued sends. */
#include "cmd_inbox.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctlproto.h"
#include "fmt.h"
#include "output.h"

/* The time a message was stored, as the tables show times: journalctl's
 * local "May 01 12:00:00", or --time relative / iso (local). */
static const char *msg_time(const struct opts *o, const char *at, char *buf, size_t len)
{
	time_t t = fmt_parse_iso(at);

	if (t == (time_t)-1)
		snprintf(buf, len, "-");
	else if (o->time_set)
		fmt_age(at, buf, len);
	else
		fmt_local_short(t, buf, len);
	return buf;
}

static void inbox_row(const struct opts *o, struct table *t, jval m)
{
	char id[24], when[64];
	const char *type = jstr_or(m, "type", "message");
	long long n = jint_or(m, "id", 0);

	if (n > 0)
		snprintf(id, sizeof id, "%lld", n);
	else
		snprintf(id, sizeof id, "-");
	/* A SEND addressed to someone else (wild peers get fields wrong): kept,
	 * shown with its dst.  IDENTITY: how the sender's name is known. */
	char to[200];
	if (strcmp(type, "pub") == 0)
		snprintf(to, sizeof to, "%s", jstr_or(m, "to", "*"));
	else if (json_bool(json_get(m, "dst_mismatch")) == 1)
		snprintf(to, sizeof to, "%s (not us)", jstr_or(m, "to", "?"));
	else
		snprintf(to, sizeof to, "me");
	const char *row[] = { id, json_bool(json_get(m, "read")) == 1 ? "" : "*",
			      msg_time(o, jstr_or(m, "at", NULL), when, sizeof when),
			      jstr_or(m, "from", "?"), to, jstr_or(m, "text", ""),
			      jstr_or(m, "identity", "-") };
	table_row(t, row);
}

static const char *const inbox_hdr[] = { ">ID", "NEW", "TIME", "FROM", "TO", "TEXT", "IDENTITY" };

/* until: drop the messages after it (0: none); the rest as a table. */
static bool out_inbox(const struct opts *o, jval r, time_t until)
{
	jval list = json_get(r, "messages");
	struct table *t = table_new(7, inbox_hdr);

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		if (until && fmt_parse_iso(jstr_or(m, "at", NULL)) > until)
			continue;
		inbox_row(o, t, m);
	}
	bool ok = table_print_or(t, stdout, "no messages");
	table_free(t);
	if (!ok || out_style.tsv || out_style.no_legend)
		return ok;
	if (json_bool(json_get(r, "more")) == 1)
		printf("(more: --since %lld for the next ones)\n",
		       json_arr_len(list) ? jint_or(json_arr_at(list, json_arr_len(list) - 1), "id", 0) : 0);
	printf("%lld unread\n", jint_or(r, "unread", 0));
	return true;
}

/* The result with the messages after until left out, as one document. */
static void out_inbox_json(jval r, time_t until)
{
	jval list = json_get(r, "messages");
	yajl_gen g = jg_new();
	struct buf b = BUF_INIT;
	long long n = 0;

	jg_map(g);
	jg_str(g, "messages");
	jg_arr(g);
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		if (until && fmt_parse_iso(jstr_or(m, "at", NULL)) > until)
			continue;
		jg_value(g, m);
		n++;
	}
	jg_end_arr(g);
	JG_KINT(g, "count", n);
	JG_KBOOL(g, "more", json_bool(json_get(r, "more")) == 1);
	JG_KINT(g, "unread", jint_or(r, "unread", 0));
	jg_end_map(g);
	if (jg_finish(g, &b) == 0)
		fwrite(b.data, 1, b.len, stdout); /* with its newline */
	buf_free(&b);
	jg_free(g);
}

struct follow {
	const struct opts *o;
	const char *from;      /* messages from this peer only (NULL: any) */
	const char *target;    /* PUBs to this "*" or "#ns" only (NULL: any) */
	/* A row of the table the command printed, for one event. */
	void (*row)(const struct opts *o, struct table *t, jval m);
	size_t ncols;
	const char *const *hdr;
};

static void on_follow_note(void *ctx, jval note)
{
	struct follow *fl = ctx;
	jval p = json_get(note, "params");
	const char *type = json_get_str(p, "type");

	if (type == NULL || (strcmp(type, "message") != 0 && strcmp(type, "pub") != 0))
		return;
	if (fl->from && strcmp(jstr_or(p, "from", ""), fl->from) != 0)
		return;
	if (fl->target && (strcmp(type, "pub") != 0 || strcmp(jstr_or(p, "to", ""), fl->target) != 0))
		return;
	if (fl->o->json) {
		print_json(stdout, p, false);
	} else {
		/* One row at a time: cells as the table's, tab- or space-separated. */
		struct out_style saved = out_style;
		struct table *t = table_new(fl->ncols, fl->hdr);
		table_keep_order(t);
		fl->row(fl->o, t, p);
		out_style.no_legend = true;
		out_style.sort = NULL;
		table_print(t, stdout);
		table_free(t);
		out_style = saved;
	}
	if (fflush(stdout) != 0)
		follow_stop = 1;
}

/* inbox -f, history -f: the new messages as they are stored, until
 * interrupted. */
static int follow(struct ctl_client *c, struct follow fl)
{
	static const char subs[] = "{\"events\":[\"message\"]}";
	char err[64];

	c->on_note = on_follow_note;
	c->note_ctx = &fl;
	return follow_events(fl.o, c, json_parse(subs, strlen(subs), err, sizeof err), 0, -1);
}

/* An inbox id as typed (inbox --delete, read): 1 or more. */
static bool inbox_id(const char *s, long long *id)
{
	char *end;

	errno = 0;
	*id = strtoll(s, &end, 10);
	return !(errno || *end || end == s || *id < 1);
}

/* inbox --limit, history -n: a count of messages, 1..10000. */
static bool count_arg(const char *cmd, const char *opt, const char *val, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(val, &end, 10);
	if (errno || *end || end == val || *out < 1 || *out > 10000) {
		usage_error(cmd, "%s needs a count (1..10000), not '%s'", opt, val);
		return false;
	}
	return true;
}

/* inbox --delete ID...: those messages gone from the inbox (exit 1 if one
 * was not there). */
static int inbox_delete(const struct opts *o, int n, char **ids, const char *cmd)
{
	yajl_gen g;
	jval reply;
	int rc;

	if (n == 0)
		return usage_error(cmd, "--delete needs the inbox ids (inbox lists them)");
	g = jg_new();
	jg_map(g);
	jg_str(g, "ids");
	jg_arr(g);
	for (int i = 0; i < n; i++) {
		long long id;
		if (!inbox_id(ids[i], &id)) {
			jg_free(g);
			return usage_error(cmd, "'%s' is not an inbox id", ids[i]);
		}
		jg_int(g, id);
	}
	jg_end_arr(g);
	jval params = params_end(g, true);
	rc = one_call(o, "inbox", "delete", params, &reply);
	json_free(params);
	if (rc != EX_OK)
		return rc;
	jval r = ctl_result(reply), missing = json_get(r, "missing");
	if (o->json)
		print_json(stdout, r, false);
	else
		printf("deleted %lld, %lld unread\n", jint_or(r, "deleted", 0), jint_or(r, "unread", 0));
	for (size_t i = 0; i < json_arr_len(missing); i++) {
		long long id = 0;
		json_int(json_arr_at(missing, i), &id);
		warnx_("inbox: no message %lld to delete", id);
		rc = EX_DAEMON;
	}
	json_free(reply);
	return rc;
}

int c_inbox(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "unread", no_argument, NULL, 'u' },
		{ "from", required_argument, NULL, 'F' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'U' },
		{ "limit", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "delete", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	bool unread = false, follow_on = false, del = false;
	const char *from = NULL, *since = NULL;
	time_t since_t = 0, until = 0;
	long long limit = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "ufs:n:", lo)) != -1) {
		switch (ch) {
		case '?':
			return EX_USAGE;
		case 'u':
			unread = true;
			break;
		case 'F':
			if (!peer_arg_ok(optarg))
				return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name",
						   optarg);
			from = optarg;
			break;
		case 's':
			since = optarg;
			/* An id is all digits; anything else is a time. */
			if (!(since[0] && since[strspn(since, "0123456789")] == '\0') &&
			    !when_arg(argv[0], "--since", since, &since_t))
				return EX_USAGE;
			break;
		case 'U':
			if (!when_arg(argv[0], "--until", optarg, &until))
				return EX_USAGE;
			break;
		case 'f':
			follow_on = true;
			break;
		case 'D':
			del = true;
			break;
		case 'n':
			if (!count_arg(argv[0], "--limit", optarg, &limit))
				return EX_USAGE;
			break;
		}
	}
	if (del)
		return inbox_delete(o, argc - optind, argv + optind, argv[0]);
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	if (follow_on && until)
		return usage_error(argv[0], "--follow waits for new messages: it cannot go with --until");

	struct ctl_client c;
	char peer[300];
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	/* A name as everywhere else ("alice"), resolved against the peers. */
	if (from && (rc = resolve_peer(&c, o->timeout, argv[0], from, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	yajl_gen g = jg_new();
	bool ok = true;
	jg_map(g);
	if (unread)
		JG_KBOOL(g, "unread", true);
	if (from)
		ok = kstr(g, "from", peer);
	if (since && since_t == 0) {
		JG_KINT(g, "since", strtoll(since, NULL, 10));
	} else if (since) {
		char iso[40];
		JG_KSTR(g, "since", fmt_utc_iso(since_t, iso, sizeof iso));
	}
	if (limit)
		JG_KINT(g, "limit", limit);
	jval params = params_end(g, ok), reply = NULL;
	if (params == NULL) {
		ctl_close(&c);
		return usage_error(argv[0], "an argument is not valid UTF-8");
	}
	rc = client_call(&c, o, "inbox", "inbox", params, &reply);
	json_free(params);
	if (rc == EX_OK) {
		if (o->json)
			out_inbox_json(ctl_result(reply), until);
		else if (!out_inbox(o, ctl_result(reply), until))
			rc = EX_USAGE;
		fflush(stdout);
		if (rc == EX_OK && follow_on)
			rc = follow(&c, (struct follow){ .o = o, .from = from ? peer : NULL,
							 .row = inbox_row, .ncols = 7, .hdr = inbox_hdr });
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

/* Is inbox id stored at all (read or not)? */
static bool inbox_has(struct ctl_client *c, double timeout, long long id)
{
	char params_s[96], err[64];
	jval reply = NULL;
	bool found = false;

	snprintf(params_s, sizeof params_s, "{\"since\":%lld,\"limit\":10000}", id - 1);
	jval params = json_parse(params_s, strlen(params_s), err, sizeof err);
	if (ctl_call(c, "inbox", params, timeout, &reply) == EX_OK) {
		jval list = json_get(ctl_result(reply), "messages");
		for (size_t i = 0; i < json_arr_len(list) && !found; i++)
			found = jint_or(json_arr_at(list, i), "id", 0) == id;
	}
	json_free(params);
	json_free(reply);
	return found;
}

/* Mark inbox id read (0: every message); *last: the answer. */
static int read_one(struct ctl_client *c, const struct opts *o, long long id, jval *last)
{
	char params_s[64], err[64];
	jval reply = NULL;
	int rc;

	if (id > 0)
		snprintf(params_s, sizeof params_s, "{\"id\":%lld}", id);
	else
		snprintf(params_s, sizeof params_s, "{\"all\":true}");
	jval params = json_parse(params_s, strlen(params_s), err, sizeof err);
	rc = client_call(c, o, "read", "read", params, &reply);
	json_free(params);
	if (rc != EX_OK)
		return rc;
	if (id > 0 && jint_or(ctl_result(reply), "marked", 0) == 0 &&
	    !inbox_has(c, o->timeout, id)) {
		/* Not there at all (marking a read one again is fine). */
		warnx_("read: no message %lld in the inbox", id);
		json_free(reply);
		return EX_DAEMON;
	}
	json_free(*last);
	*last = reply;
	return EX_OK;
}

int c_read(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "from", required_argument, NULL, 'F' },
		{ NULL, 0, NULL, 0 },
	};
	bool all = false;
	const char *from = NULL;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "a", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		if (ch == 'a')
			all = true;
		else
			from = optarg;
	}
	if (optind >= argc && !all && !from)
		return usage_error(argv[0], "missing ID, --all or --from PEER");
	if ((all || from) && optind < argc)
		return usage_error(argv[0], "IDs, --all and --from go alone");
	if (all && from)
		return usage_error(argv[0], "--all or --from, not both");
	for (int i = optind; i < argc; i++) {
		long long id;
		if (!inbox_id(argv[i], &id))
			return usage_error(argv[0], "'%s' is not an inbox id", argv[i]);
	}

	struct ctl_client c;
	jval last = NULL;
	long long marked = 0, unread_now = 0;
	char peer[300];
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if (all) {
		rc = read_one(&c, o, 0, &last);
		marked = jint_or(ctl_result(last), "marked", 0);
	} else if (from) {
		/* Every unread message from PEER, by id. */
		if ((rc = resolve_peer(&c, o->timeout, argv[0], from, peer, sizeof peer)) == EX_OK) {
			yajl_gen g = jg_new();
			jval reply = NULL, params;
			jg_map(g);
			JG_KBOOL(g, "unread", true);
			kstr(g, "from", peer);
			JG_KINT(g, "limit", 10000);
			params = params_end(g, true);
			rc = client_call(&c, o, "read", "inbox", params, &reply);
			json_free(params);
			jval list = json_get(ctl_result(reply), "messages");
			for (size_t i = 0; rc == EX_OK && i < json_arr_len(list); i++) {
				rc = read_one(&c, o, jint_or(json_arr_at(list, i), "id", 0), &last);
				marked += jint_or(ctl_result(last), "marked", 0);
			}
			unread_now = jint_or(ctl_result(reply), "unread", 0);
			json_free(reply);
		}
	} else {
		for (int i = optind; rc == EX_OK && i < argc; i++) {
			rc = read_one(&c, o, strtoll(argv[i], NULL, 10), &last);
			marked += jint_or(ctl_result(last), "marked", 0);
		}
	}
	ctl_close(&c);
	if (last)
		unread_now = jint_or(ctl_result(last), "unread", 0);
	if (rc == EX_OK) {
		if (o->json)
			printf("{\"marked\":%lld,\"unread\":%lld}\n", marked, unread_now);
		else
			printf("marked %lld read, %lld unread\n", marked, unread_now);
	}
	json_free(last);
	return rc;
}

/* ---- history ---------------------------------------------------------------------- */

static const char *const history_hdr[] = { "TIME", "FROM", "TO", "TEXT", "STATUS" };

/* One line of a conversation: a received message (a history entry or a
 * message event) or one we sent, with its outcome. */
static void history_row(const struct opts *o, struct table *t, jval m)
{
	char when[64], status[48] = "";
	bool out = strcmp(jstr_or(m, "dir", "in"), "out") == 0;
	const char *outcome = jstr_or(m, "outcome", "");

	if (out && strcmp(outcome, "acked") == 0)
		snprintf(status, sizeof status, "✓ acked");
	else if (out && strcmp(outcome, "sent") == 0 && json_get(m, "reached"))
		snprintf(status, sizeof status, "sent to %lld", jint_or(m, "reached", 0));
	else if (out && (strcmp(outcome, "pending") == 0 || strcmp(outcome, "sent") == 0))
		snprintf(status, sizeof status, "%s", outcome);
	else if (out)
		snprintf(status, sizeof status, "✗ %s", outcome);
	else if (json_bool(json_get(m, "read")) == 0)
		snprintf(status, sizeof status, "new");
	const char *row[] = { msg_time(o, jstr_or(m, "at", NULL), when, sizeof when),
			      jstr_or(m, "from", "?"), jstr_or(m, "to", "?"), jstr_or(m, "text", ""),
			      status };
	table_row(t, row);
}

int c_history(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "lines", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 'S' },
		{ "until", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	long long limit = 20;
	bool follow_on = false;
	time_t since = 0, until = 0;
	int ch, rc;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "n:f", lo)) != -1) {
		switch (ch) {
		case '?':
			return EX_USAGE;
		case 'f':
			follow_on = true;
			break;
		case 'S':
			if (!when_arg(argv[0], "--since", optarg, &since))
				return EX_USAGE;
			break;
		case 'U':
			if (!when_arg(argv[0], "--until", optarg, &until))
				return EX_USAGE;
			break;
		default:
			if (!count_arg(argv[0], "-n", optarg, &limit))
				return EX_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error(argv[0], "missing PEER ('*' or #namespace for PUBs)");
	if (argc - optind > 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *typed = argv[optind];
	bool target = target_ok(typed);
	if (!target && !peer_arg_ok(typed))
		return usage_error(argv[0], "'%s' is not a peer id, a name, '*' or #namespace", typed);
	/* With --since, ask for more than -n: the time filter is applied here. */
	long long ask = since || until ? 10000 : limit;

	struct ctl_client c;
	char peer[300];
	jval reply = NULL;
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if (target)
		snprintf(peer, sizeof peer, "%s", typed);
	else if ((rc = resolve_peer(&c, o->timeout, argv[0], typed, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	yajl_gen g = jg_new();
	jg_map(g);
	bool ok = kstr(g, "peer", peer);
	JG_KINT(g, "limit", ask);
	jval params = params_end(g, ok);
	rc = client_call(&c, o, "history", "history", params, &reply);
	json_free(params);
	if (rc == EX_OK) {
		jval list = json_get(ctl_result(reply), "messages");
		size_t n = json_arr_len(list), shown = 0;
		/* The newest -n of those within the times, oldest first. */
		size_t *keep = calloc(n + 1, sizeof *keep);
		for (size_t i = 0; keep && i < n; i++) {
			time_t t = fmt_parse_iso(jstr_or(json_arr_at(list, i), "at", NULL));
			if ((since && t < since) || (until && t > until))
				continue;
			keep[shown++] = i;
		}
		size_t first = shown > (size_t)limit ? shown - (size_t)limit : 0;
		if (o->json) {
			yajl_gen jg = jg_new();
			struct buf b = BUF_INIT;
			jg_map(jg);
			JG_KSTR(jg, "peer", peer);
			jg_str(jg, "messages");
			jg_arr(jg);
			for (size_t i = first; i < shown; i++)
				jg_value(jg, json_arr_at(list, keep[i]));
			jg_end_arr(jg);
			JG_KINT(jg, "count", (long long)(shown - first));
			jg_end_map(jg);
			if (jg_finish(jg, &b) == 0)
				fwrite(b.data, 1, b.len, stdout);
			buf_free(&b);
			jg_free(jg);
		} else {
			struct table *t = table_new(5, history_hdr);
			for (size_t i = first; i < shown; i++)
				history_row(o, t, json_arr_at(list, keep[i]));
			/* In time order, as a conversation reads. */
			table_keep_order(t);
			if (!table_print_or(t, stdout, "no messages yet"))
				rc = EX_USAGE;
			table_free(t);
		}
		free(keep);
		fflush(stdout);
		if (rc == EX_OK && follow_on)
			rc = follow(&c, (struct follow){ .o = o, .from = target ? NULL : peer,
							 .target = target ? peer : NULL, .row = history_row,
							 .ncols = 5, .hdr = history_hdr });
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

static void out_outbox(FILE *f, jval r)
{
	static const char *const hdr[] = { "MSG_ID", "TO", ">AGE", "DEADLINE", ">ATTEMPTS", "STATE" };
	jval list = json_get(r, "queued");
	struct table *t = table_new(6, hdr);

	if (json_get_str(r, "cancelled"))
		fprintf(f, "cancelled %s\n", json_get_str(r, "cancelled"));
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval q = json_arr_at(list, i);
		char age[32], att[32], dl[64];
		double a = -1;
		json_num(json_get(q, "age_s"), &a);
		/* Durations as everywhere ("3s", "4m26s"); the deadline as the
		 * tables show times, "in 59m" (--time iso: local time). */
		fmt_duration(a >= 0 ? floor(a) : a, age, sizeof age);
		time_t d = fmt_parse_iso(json_get_str(q, "deadline"));
		if (d == (time_t)-1) {
			snprintf(dl, sizeof dl, "-");
		} else if (out_style.time == TIME_ISO) {
			fmt_local_iso(d, dl, sizeof dl);
		} else {
			char dd[32];
			double left = difftime(d, time(NULL));
			snprintf(dl, sizeof dl, "in %s", fmt_duration(left > 0 ? floor(left) : 0, dd, sizeof dd));
		}
		snprintf(att, sizeof att, "%lld", jint_or(q, "attempts", 0));
		const char *cells[] = { jstr_or(q, "msg_id", "?"), jstr_or(q, "to", "?"), age, dl, att,
					json_bool(json_get(q, "in_flight")) == 1 ? "in flight" : "waiting" };
		table_row(t, cells);
	}
	table_print_or(t, f, "outbox empty");
	table_free(t);
}

int c_outbox(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "cancel", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cancel = NULL;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "c:", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		cancel = optarg;
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	jval params = params_kv("cancel", cancel);
	if (params == NULL)
		return usage_error(argv[0], "the msg_id is not valid UTF-8");
	return simple(o, "outbox", params, out_outbox);
}

