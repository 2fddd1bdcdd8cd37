#include "node/identity.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "net/tls.h"
#include "node/core.h"
#include "node/session.h"
#include "store/pins.h"
#include "timeutil.h"

#define MOD "Identity"

int identity_open(struct node_identity *id, const struct keys_identity *keys, const char *dir,
		  char *err, size_t errlen)
{
	char path[CFG_STR_MAX + 64];
	long skipped = 0;

	memset(id, 0, sizeof *id);
	id->tls = tls_ctx_new(keys, err, errlen);
	if (id->tls == NULL)
		return -1;
	snprintf(id->fingerprint, sizeof id->fingerprint, "%s", keys->fingerprint);
	if (snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_PINS_FILE) >= (int)sizeof path) {
		snprintf(err, errlen, "pins: path too long");
		goto fail;
	}
	id->pins = pins_open_file(path, &skipped, err, errlen);
	if (id->pins == NULL)
		goto fail;
	if (skipped > 0)
		log_warn(MOD, "%s: %ld malformed pin(s) skipped", path, skipped);
	log_info(MOD, "our key %s; %zu pinned peer key(s) in %s", id->fingerprint,
		 pins_count(id->pins), path);
	return 0;
fail:
	identity_close(id);
	return -1;
}

void identity_close(struct node_identity *id)
{
	pins_close(id->pins);
	id->pins = NULL;
	tls_ctx_free(id->tls);
	id->tls = NULL;
}

static const char *tls_mode(const struct node_core *core)
{
	return core->cfg->security.tls;
}

bool identity_tls_on(const struct node_core *core)
{
	return core->ident && core->ident->tls && strcmp(tls_mode(core), "off") != 0;
}

static const struct pin *pin_of(const struct node_core *core, const char *peer_id)
{
	return core->ident && core->ident->pins ? pins_find(core->ident->pins, peer_id) : NULL;
}

static void emit(struct node_core *core, enum node_event_type type, const struct session *s,
		 const char *fp, const char *pinned, const char *reason)
{
	struct node_event ev = {
		.type = type, .peer_id = s->peer_id, .address = s->addr, .fingerprint = fp,
		.pinned = pinned, .text = reason,
	};
	core_emit(core, &ev);
}

static bool refuse(struct node_core *core, struct session *s)
{
	core->ident->refused++;
	return false;
}

/* A plaintext session (fp NULL, no error): allowed unless TLS is required
 * or the peer_id has a pinned key. */
static bool decide_plain(struct node_core *core, struct session *s)
{
	const struct pin *pin;

	if (!identity_tls_on(core))
		return true;
	if (strcmp(tls_mode(core), "require") == 0) {
		log_warn(MOD, "%s (%s): refused: it does not speak TLS and security.tls is require",
			 s->peer_id[0] ? s->peer_id : "?", s->addr);
		emit(core, EV_IMPOSTOR, s, NULL, NULL, "no TLS (security.tls=require)");
		return refuse(core, s);
	}
	pin = pin_of(core, s->peer_id);
	if (pin == NULL)
		return true;
	log_warn(MOD, "impostor? %s claims %s without TLS, whose key is pinned (%s): refused",
		 s->addr, s->peer_id, pin->fingerprint);
	emit(core, EV_IMPOSTOR, s, NULL, pin->fingerprint, "no TLS for a pinned peer");
	return refuse(core, s);
}

bool identity_decide(struct node_core *core, struct session *s, const char *fp,
		     const char *tls_error)
{
	const struct pin *pin;
	double now = wall_now();

	if (tls_error) {
		pin = pin_of(core, s->peer_id);
		if (pin) {
			log_warn(MOD, "impostor? %s claims %s, whose key is pinned (%s), and its TLS "
				 "handshake failed: %s", s->addr, s->peer_id, pin->fingerprint, tls_error);
			emit(core, EV_IMPOSTOR, s, NULL, pin->fingerprint, tls_error);
			core->ident->refused++;
		} else {
			log_info(MOD, "%s (%s): TLS handshake failed: %s", s->peer_id, s->addr, tls_error);
		}
		return false;
	}
	if (fp == NULL)
		return decide_plain(core, s);
	pin = pin_of(core, s->peer_id);
	if (pin == NULL) {
		enum pins_result r = pins_add(core->ident->pins, s->peer_id, fp, false, now);
		if (r != PINS_OK) {
			/* Not pinned (full, disk): the key is proved for this session only. */
			log_warn(MOD, "%s: key %s not pinned: %s", s->peer_id, fp, pins_result_str(r));
		} else {
			log_info(MOD, "%s (%s): key %s pinned on first use", s->peer_id, s->addr, fp);
			emit(core, EV_IDENTITY_NEW, s, fp, NULL, NULL);
		}
		s->identity = ID_PINNED;
		return true;
	}
	if (strcmp(pin->fingerprint, fp) != 0) {
		char pinned[FINGERPRINT_LEN];
		snprintf(pinned, sizeof pinned, "%s", pin->fingerprint);
		log_warn(MOD, "IDENTITY CHANGED: %s (%s) presents key %s, but %s is pinned: refused "
			 "(if the peer really has a new key: chatp2pctl trust forget %s)",
			 s->peer_id, s->addr, fp, pinned, s->peer_id);
		emit(core, EV_IDENTITY_CHANGED, s, fp, pinned, "key does not match the pin");
		return refuse(core, s);
	}
	s->identity = pin->verified ? ID_VERIFIED : ID_PINNED;
	pins_seen(core->ident->pins, s->peer_id, now);
	return true;
}

bool identity_may_send(const struct node_core *core, const struct session *s)
{
	if (s->secure || !identity_tls_on(core))
		return true;
	return pin_of(core, s->peer_id) == NULL;
}
