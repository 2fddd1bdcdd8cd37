/* Who this node is and whom it trusts (PROTOCOL.md §5.2): the node's
 * fingerprint (id), and the pinned keys of its peers (trust). */
#include "cmd_trust.h"

#include <stdio.h>
#include <string.h>

#include "ctlproto.h"
#include "output.h"

static void out_id(FILE *f, jval r)
{
	const char *fp = json_get_str(r, "fingerprint");

	fprintf(f, "%s %s\n", jstr_or(r, "peer_id", "?"), fp ? fp : "(no identity key)");
}

int c_id(const struct opts *o, int argc, char **argv)
{
	jval reply;
	int rc = no_args(argc, argv);

	if (rc == EX_OK)
		rc = one_call(o, "id", "status", NULL, &reply);
	if (rc != EX_OK)
		return rc;
	jval r = ctl_result(reply);
	if (o->json) {
		yajl_gen g = jg_new();
		struct buf b = BUF_INIT;
		jg_map(g);
		JG_KSTR(g, "peer_id", json_get_str(r, "peer_id"));
		jg_str(g, "fingerprint");
		if (json_get_str(r, "fingerprint"))
			jg_str(g, json_get_str(r, "fingerprint"));
		else
			jg_null(g);
		jg_end_map(g);
		jg_finish(g, &b);
		jg_free(g);
		fwrite(b.data, 1, b.len, stdout);
		putchar('\n');
		buf_free(&b);
	} else {
		out_id(stdout, r);
	}
	json_free(reply);
	return EX_OK;
}

static void out_pin(FILE *f, jval p)
{
	int v = json_bool(json_get(p, "verified"));

	fprintf(f, "%-32s %s %s  (first seen %s, last seen %s)\n", jstr_or(p, "peer_id", "?"),
		jstr_or(p, "fingerprint", "?"), v == 1 ? "verified" : "pinned  ",
		jstr_or(p, "first_seen", "-"), jstr_or(p, "last_seen", "-"));
}

static int trust_list(const struct opts *o)
{
	jval reply;
	int rc = one_call(o, "trust", "trust.list", NULL, &reply);

	if (rc != EX_OK)
		return rc;
	jval pins = json_get(ctl_result(reply), "pins");
	if (o->json) {
		print_json(stdout, pins, false);
	} else if (json_arr_len(pins) == 0) {
		printf("no pinned keys\n");
	} else {
		for (size_t i = 0; i < json_arr_len(pins); i++)
			out_pin(stdout, json_arr_at(pins, i));
	}
	json_free(reply);
	return EX_OK;
}

static jval params_trust(const char *peer, const char *fp)
{
	yajl_gen g = jg_new();
	bool ok;

	jg_map(g);
	ok = kstr(g, "peer", peer);
	if (fp)
		ok = kstr(g, "fingerprint", fp) && ok;
	return params_end(g, ok);
}

static void out_pin_changed(FILE *f, jval r)
{
	if (json_bool(json_get(r, "forgotten")) == 1)
		fprintf(f, "%s: pin forgotten; its next key is pinned on first use\n",
			jstr_or(r, "peer_id", "?"));
	else
		out_pin(f, r);
}

int c_trust(const struct opts *o, int argc, char **argv)
{
	const char *sub;
	int need;

	argc = strip_dashdash(argc, argv);
	if (argc < 2 || strcmp(argv[1], "list") == 0) {
		if (argc > 2)
			return usage_error(argv[0], "list takes no argument");
		return trust_list(o);
	}
	sub = argv[1];
	if (strcmp(sub, "verify") == 0 || strcmp(sub, "pin") == 0)
		need = 2;
	else if (strcmp(sub, "forget") == 0)
		need = 1;
	else
		return usage_error(argv[0], "unknown subcommand \"%s\" (list, verify, pin, forget)", sub);
	if (argc != 2 + need)
		return usage_error(argv[0], "%s needs %s", sub,
				   need == 2 ? "PEER FINGERPRINT" : "PEER");
	if (!peer_id_ok(argv[2]))
		return usage_error(argv[0], "\"%s\" is not a peer id (name@namespace)", argv[2]);
	if (need == 2 && strncmp(argv[3], "SHA256:", 7) != 0)
		return usage_error(argv[0], "\"%s\" is not a fingerprint (SHA256:...)", argv[3]);
	jval params = params_trust(argv[2], need == 2 ? argv[3] : NULL);
	if (params == NULL)
		return usage_error(argv[0], "arguments are not valid UTF-8");
	char method[32];
	snprintf(method, sizeof method, "trust.%s", sub);
	return simple(o, method, params, out_pin_changed);
}
