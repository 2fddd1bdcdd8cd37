#include "control/trust.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctlproto.h"
#include "node/identity.h"
#include "node/node.h"
#include "node/session.h"
#include "store/pins.h"
#include "timeutil.h"

static bool gen_pin(void *ctx, const struct pin *p)
{
	yajl_gen g = ctx;

	jg_map(g);
	JG_KSTR(g, "peer_id", p->peer_id);
	JG_KSTR(g, "fingerprint", p->fingerprint);
	ctl_gen_time(g, "first_seen", p->first_seen);
	ctl_gen_time(g, "last_seen", p->last_seen);
	JG_KBOOL(g, "verified", p->verified);
	jg_end_map(g);
	return true;
}

/* The node's pins, or an error answered (no identity key). */
static struct pins *pins_of(struct ctl_req *req)
{
	struct pins *p = node_identity(ctl_node(req))->pins;

	if (p == NULL)
		ctl_error(req, CTL_E_INTERNAL, "no_identity",
			  "this node has no identity key (security.tls is off and the key could not be loaded)");
	return p;
}

void m_trust_list(struct ctl_req *req, jval params)
{
	struct pins *pins = pins_of(req);

	if (pins == NULL)
		return;
	yajl_gen g = ctl_result_begin(req);
	jg_map(g);
	jg_str(g, "pins");
	jg_arr(g);
	pins_each(pins, gen_pin, g);
	jg_end_arr(g);
	jg_end_map(g);
	ctl_result_end(req);
}

static bool params_peer_fp(struct ctl_req *req, jval params, bool need_fp, const char **peer,
			   const char **fp)
{
	jval pv = json_get(params, "peer"), fv = json_get(params, "fingerprint");

	*peer = pv ? json_str(pv) : NULL;
	*fp = fv ? json_str(fv) : NULL;
	if (*peer == NULL || (need_fp && *fp == NULL)) {
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "%s",
			  need_fp ? "params: peer (peer_id), fingerprint (\"SHA256:...\")"
				  : "params: peer (peer_id)");
		return false;
	}
	return true;
}

static void answer(struct ctl_req *req, enum pins_result r, const char *peer)
{
	const struct pin *p;

	switch (r) {
	case PINS_OK:
		p = pins_find(node_identity(ctl_node(req))->pins, peer);
		yajl_gen g = ctl_result_begin(req);
		if (p)
			gen_pin(g, p);
		else {
			jg_map(g);
			JG_KSTR(g, "peer_id", peer);
			JG_KBOOL(g, "forgotten", true);
			jg_end_map(g);
		}
		ctl_result_end(req);
		return;
	case PINS_BAD_FINGERPRINT:
	case PINS_BAD_PEER:
		ctl_error(req, CTL_E_BAD_PARAMS, "bad_params", "%s", pins_result_str(r));
		return;
	case PINS_NOT_PINNED:
		ctl_error(req, CTL_E_BAD_PARAMS, "not_pinned", "%s has no pinned key", peer);
		return;
	case PINS_MISMATCH:
		ctl_error(req, CTL_E_BAD_PARAMS, "mismatch",
			  "that is not the key pinned for %s (chatp2pctl trust shows it)", peer);
		return;
	default:
		ctl_error(req, CTL_E_INTERNAL, "pins", "%s", pins_result_str(r));
		return;
	}
}

void m_trust_verify(struct ctl_req *req, jval params)
{
	const char *peer, *fp;
	struct pins *pins;

	if (!params_peer_fp(req, params, true, &peer, &fp) || (pins = pins_of(req)) == NULL)
		return;
	enum pins_result r = pins_verify(pins, peer, fp);
	if (r == PINS_OK)
		for (struct session *c = node_conns(ctl_node(req)); c; c = c->next)
			if (c->secure && strcmp(c->peer_id, peer) == 0)
				c->identity = ID_VERIFIED;
	answer(req, r, peer);
}

void m_trust_pin(struct ctl_req *req, jval params)
{
	const char *peer, *fp;
	struct pins *pins;

	if (!params_peer_fp(req, params, true, &peer, &fp) || (pins = pins_of(req)) == NULL)
		return;
	/* Set by the operator from what was compared out of band: verified. */
	enum pins_result r = pins_add(pins, peer, fp, true, wall_now());
	if (r == PINS_OK) {
		struct session *c, *next;
		for (c = node_conns(ctl_node(req)); c; c = next) {
			next = c->next;
			if (strcmp(c->peer_id, peer) != 0 || !c->secure)
				continue;
			if (strcmp(c->fingerprint, fp) == 0)
				c->identity = ID_VERIFIED;
			else
				session_close(c, "its key is no longer the pinned one (trust pin)");
		}
	}
	answer(req, r, peer);
}

void m_trust_forget(struct ctl_req *req, jval params)
{
	const char *peer, *fp;
	struct pins *pins;

	if (!params_peer_fp(req, params, false, &peer, &fp) || (pins = pins_of(req)) == NULL)
		return;
	answer(req, pins_forget(pins, peer), peer);
}
