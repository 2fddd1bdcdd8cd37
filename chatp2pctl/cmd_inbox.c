/* The node's store: the inbox, marking read, the outbox of queued sends. */
#include "cmd_inbox.h"

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

static void out_inbox(FILE *f, jval r)
{
	jval list = json_get(r, "messages");

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		int rd = json_bool(json_get(m, "read"));
		const char *type = jstr_or(m, "type", "message");
		fprintf(f, "%6lld%c %s ", jint_or(m, "id", 0), rd == 1 ? ' ' : '*',
			jstr_or(m, "at", "?"));
		if (strcmp(type, "pub") == 0)
			fprintf(f, "[%s -> %s] ", jstr_or(m, "from", "?"), jstr_or(m, "to", "?"));
		else
			fprintf(f, "[%s] ", jstr_or(m, "from", "?"));
		print_text(f, jstr_or(m, "text", ""));
		fputc('\n', f);
	}
	if (json_bool(json_get(r, "more")) == 1)
		fprintf(f, "(more: --since %lld for the next ones)\n",
			json_arr_len(list) ? jint_or(json_arr_at(list, json_arr_len(list) - 1), "id", 0) : 0);
	fprintf(f, "%lld unread\n", jint_or(r, "unread", 0));
}

int c_inbox(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "unread", no_argument, NULL, 'u' },
		{ "from", required_argument, NULL, 'f' },
		{ "since", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	bool unread = false;
	const char *from = NULL, *since = NULL;
	long long limit = 0;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "uf:s:n:", lo)) != -1) {
		char *end;
		switch (ch) {
		case '?':
			return EX_USAGE;
		case 'u':
			unread = true;
			break;
		case 'f':
			if (!peer_id_ok(optarg))
				return usage_error(argv[0], "'%s' is not a peer id (name@namespace)", optarg);
			from = optarg;
			break;
		case 's':
			since = optarg;
			break;
		case 'n':
			errno = 0;
			limit = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || limit < 1 || limit > 10000)
				return usage_error(argv[0], "--limit needs a count (1..10000), not '%s'", optarg);
			break;
		}
	}
	if (optind < argc)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind]);
	yajl_gen g = jg_new();
	bool ok = true;
	jg_map(g);
	if (unread)
		JG_KBOOL(g, "unread", true);
	if (from)
		ok = kstr(g, "from", from);
	if (since) {
		/* An id is all digits; anything else is a time for the daemon to parse. */
		if (since[strspn(since, "0123456789")] == '\0' && since[0])
			JG_KINT(g, "since", strtoll(since, NULL, 10));
		else
			ok = kstr(g, "since", since) && ok;
	}
	if (limit)
		JG_KINT(g, "limit", limit);
	jval params = params_end(g, ok);
	if (params == NULL)
		return usage_error(argv[0], "an argument is not valid UTF-8");
	return simple(o, "inbox", params, out_inbox);
}

static void out_read(FILE *f, jval r)
{
	fprintf(f, "marked %lld read, %lld unread\n", jint_or(r, "marked", 0), jint_or(r, "unread", 0));
}

int c_read(const struct opts *o, int argc, char **argv)
{
	yajl_gen g;
	char *end;
	long long id;

	if (argc != 2)
		return usage_error(argv[0], argc < 2 ? "missing ID or --all" : "one ID or --all");
	g = jg_new();
	jg_map(g);
	if (strcmp(argv[1], "--all") == 0 || strcmp(argv[1], "-a") == 0) {
		JG_KBOOL(g, "all", true);
	} else {
		errno = 0;
		id = strtoll(argv[1], &end, 10);
		if (errno || *end || end == argv[1] || id < 1) {
			jg_free(g);
			return usage_error(argv[0], "'%s' is not an inbox id", argv[1]);
		}
		JG_KINT(g, "id", id);
	}
	return simple(o, "read", params_end(g, true), out_read);
}

static void out_outbox(FILE *f, jval r)
{
	static const char *const hdr[] = { "MSG_ID", "TO", ">AGE(s)", "DEADLINE", ">ATTEMPTS", "STATE" };
	jval list = json_get(r, "queued");
	struct table *t = table_new(6, hdr);

	if (json_get_str(r, "cancelled"))
		fprintf(f, "cancelled %s\n", json_get_str(r, "cancelled"));
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval q = json_arr_at(list, i);
		char age[32], att[32];
		fmt_num(q, "age_s", 0, age, sizeof age);
		snprintf(att, sizeof att, "%lld", jint_or(q, "attempts", 0));
		const char *cells[] = { jstr_or(q, "msg_id", "?"), jstr_or(q, "to", "?"), age,
					jstr_or(q, "deadline", "?"), att,
					json_bool(json_get(q, "in_flight")) == 1 ? "in flight" : "waiting" };
		table_row(t, cells);
	}
	if (table_rows(t))
		table_print(t, f);
	else
		fprintf(f, "outbox empty\n");
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

