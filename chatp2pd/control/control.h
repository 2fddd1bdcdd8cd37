/* The control socket: JSON-RPC 2.0, one object per line, over a UNIX stream
 * socket that many controllers use at once.  Requests are answered by id,
 * possibly out of order (a send waiting for its ACK holds up nothing).
 * Each controller has a bounded output buffer: events it cannot take are
 * counted and reported ("lagged"), responses it cannot take disconnect it.
 * Methods live in methods.c, one handler each. */
#ifndef CHATP2PD_CONTROL_H
#define CHATP2PD_CONTROL_H
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "ctlproto.h"
#include "json.h"
#include "log.h"
#include "node/node.h"

struct control;
struct ctl_client;

/* What the daemon does for the "shutdown" and "reload" methods. */
struct control_hooks {
	void (*stop)(void *ctx);
	/* 0, or -1 with a one-line reason; note names refused keys, if any. */
	int (*reload)(void *ctx, char *err, size_t errlen, char *note, size_t notelen);
	void *ctx;
};

/* Listen on path (created with cfg->control.mode; a stale socket from a
 * crashed run is replaced, anything else refused), or adopt listen_fd >= 0
 * (socket activation).  cfg is read live (reloads take effect). */
struct control *control_new(struct ev_loop *loop, struct node *n, const struct config *cfg,
			    const char *path, int listen_fd, const struct control_hooks *hooks,
			    char *err, size_t errlen);
const char *control_path(const struct control *c);
void control_free(struct control *c);

/* ---- for method handlers (methods.c) --------------------------------- */

enum event_class {
	EVC_MESSAGE = 1u << 0,      /* message, pub */
	EVC_ACK = 1u << 1,          /* ack, ack_timeout */
	EVC_PEER = 1u << 2,         /* peer_* */
	EVC_REGISTRATION = 1u << 3,
	EVC_LOG = 1u << 4,
	EVC_ALL = 0x1f,
};

/* One request being answered.  Handlers answer exactly once, now or later;
 * if the controller goes away first, req->client becomes NULL and the
 * answer is dropped (the handler still must call it, to free req).
 * control_free() answers what is still outstanding ("stopping") and frees
 * it: call it before node_free(), which drops the node's callbacks unseen. */
struct ctl_req {
	struct control *ctl;
	struct ctl_client *client;
	struct ctl_req *next, **prevp; /* the control's outstanding requests */
	char *id_str;               /* id when a string */
	char *id_raw;               /* id when a number: its JSON text */
	bool notification;          /* no id: no answer is written */
};

struct ctl_method {
	const char *name;
	void (*fn)(struct ctl_req *req, jval params);
};
/* The method table (methods.c), terminated by a NULL name. */
extern const struct ctl_method ctl_methods[];
/* A method's one-line description (help.c), "" if it has none. */
const char *ctl_method_help(const char *name);

struct node *ctl_node(const struct ctl_req *req);
/* Start a result: returns a generator positioned where the result value
 * goes; write exactly one value, then ctl_result_end(). */
yajl_gen ctl_result_begin(struct ctl_req *req);
void ctl_result_end(struct ctl_req *req);
/* Answer with an error; reason is the stable data.reason word (may be NULL). */
void ctl_error(struct ctl_req *req, int code, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same, with data.msg_id: the message a failed send was given. */
void ctl_error_msg(struct ctl_req *req, int code, const char *reason, const char *msg_id,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Subscriptions of the requesting controller. */
int ctl_subscribe(struct ctl_req *req, unsigned classes, bool has_since, uint64_t since,
		  enum log_level log_level);
void ctl_unsubscribe(struct ctl_req *req, unsigned classes);
uint64_t ctl_last_seq(const struct control *c);
struct stored_msg;
/* One stored message to the requesting controller alone, as a "message"
 * (or "pub") event marked "replayed" (subscribe "replay"). */
void ctl_replay_message(struct ctl_req *req, const struct stored_msg *m);
/* Shared by the methods' JSON: a wall-clock time as ISO 8601 UTC (null if
 * unset), and a stored message's fields (from, to, text, msg_id, flags,
 * identity, secure, fingerprint; me: our peer_id, a SEND's default to). */
void ctl_gen_time(yajl_gen g, const char *key, double wall);
void ctl_gen_stored_fields(yajl_gen g, const struct stored_msg *m, const char *me);
/* The node's storage, or NULL with the error answered ("no <what>:
 * storage.sync is off ..."). */
struct storage;
struct storage *ctl_storage(struct ctl_req *req, const char *what);
void ctl_stop_node(struct ctl_req *req);
int ctl_reload(struct ctl_req *req, char *err, size_t errlen, char *note, size_t notelen);
unsigned event_class_parse(const char *name);  /* 0 if unknown */
/* For metrics: controllers connected now, events dropped for slow ones ever. */
void control_stats(const struct control *c, unsigned *clients, uint64_t *dropped);
const char *event_class_name(unsigned bit);

#endif
