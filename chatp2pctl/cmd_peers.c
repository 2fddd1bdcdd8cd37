/* Peers and the rendezvous server: the peer table, connections, RTTs, reconnect, discover, register, unregister. */
#include "cmd_peers.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlproto.h"
#include "fmt.h"
#include "output.h"

int c_peers(const struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "discover", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	bool discover = false;
	int ch;

	reset_getopt();
	while ((ch = cmd_getopt(argc, argv, "d", lo)) != -1) {
		if (ch == '?')
			return EX_USAGE;
		discover = true;
	}
	if (argc - optind > 1)
		return usage_error(argv[0], "unexpected argument '%s'", argv[optind + 1]);
	const char *filter = optind < argc ? argv[optind] : NULL;
	if (filter && !target_ok(filter))
		return usage_error(argv[0], "filter must be '*' or '#namespace', not '%s'", filter);

	yajl_gen g = jg_new();
	jg_map(g);
	bool ok = filter ? kstr(g, "filter", filter) : true;
	if (discover)
		JG_KBOOL(g, "discover", true);
	jval params = params_end(g, ok);
	if (params == NULL)
		return usage_error(argv[0], "filter is not valid UTF-8");
	return simple(o, "peers", params, out_peers);
}

int c_conn(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "conn", NULL, out_conn);
}

int c_rtt(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "rtt", NULL, out_rtt);
}

int c_reconnect(const struct opts *o, int argc, char **argv)
{
	argc = strip_dashdash(argc, argv);
	char peer[300];
	struct ctl_client c;
	jval reply = NULL;
	char msg[600];
	int rc;

	if (argc > 2)
		return usage_error(argv[0], "unexpected argument '%s'", argv[2]);
	const char *typed = argc > 1 ? argv[1] : NULL;
	if (typed && !peer_arg_ok(typed))
		return usage_error(argv[0], "'%s' is not a peer id (name@namespace) or name", typed);
	if ((rc = open_or_report(&c, o)) != EX_OK)
		return rc;
	if (typed && (rc = resolve_peer(&c, o->timeout, argv[0], typed, peer, sizeof peer)) != EX_OK) {
		ctl_close(&c);
		return rc;
	}
	jval params = params_kv("peer", typed ? peer : NULL);
	if (params == NULL) {
		ctl_close(&c);
		return usage_error(argv[0], "the peer id is not valid UTF-8");
	}
	rc = ctl_call(&c, "reconnect", params, o->timeout, &reply);
	json_free(params);
	if (rc != EX_OK) {
		warnx_("%s", c.err);
	} else if ((rc = ctl_reply_status(reply, msg, sizeof msg)) != EX_OK) {
		char hint[512] = "";
		const char *reason = json_get_str(json_get(json_get(reply, "error"), "data"), "reason");
		if (typed && reason && strcmp(reason, "unknown_peer") == 0 &&
		    unknown_peer_hint(&c, o->timeout, peer, hint, sizeof hint)) {
			warnx_("reconnect: %s", hint);
			rc = EX_USAGE;
		} else {
			warnx_("reconnect: %s%s%s", msg, hint[0] ? "; " : "", hint);
		}
	} else if (o->json) {
		print_json(stdout, ctl_result(reply), false);
	} else {
		out_reconnect(stdout, ctl_result(reply));
	}
	json_free(reply);
	ctl_close(&c);
	return rc;
}

int c_discover(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "discover", NULL, out_discover);
}

int c_register(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "register", NULL, out_register);
}

int c_unregister(const struct opts *o, int argc, char **argv)
{
	int rc = no_args(argc, argv);

	return rc != EX_OK ? rc : simple(o, "unregister", NULL, out_unregister);
}

