/* Configuration: config.json keeps every section and key of the original
 * client (rendezvous, network, peer_connection, reconnection, keepalive,
 * logging: same names, meanings and defaults) and adds the daemon's own
 * (node, control, limits, rendezvous_server).  One table describes every key
 * (config.c), so the file, command-line overrides (--set section.key=value)
 * and reload all go through the same checks.  Errors are one line naming the
 * key; the caller exits 2. */
#ifndef CHATP2P_CONFIG_H
#define CHATP2P_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

#define CFG_STR_MAX 256

struct config {
	struct {
		char host[CFG_STR_MAX];
		int port;
		double discover_interval;
		int register_retry_attempts;
		double register_backoff_base;
		double ttl_warning_treshold; /* sic: the original key's spelling */
	} rendezvous;
	struct {
		double ack_timeout;
		int max_msg_size;
		double connection_timeout;
	} network;
	struct {
		int retry_attempts;
		double backoff_base;
	} peer_connection;
	struct {
		int max_attempts;
		double backoff_base;
		double backoff_max;
		double check_interval;
	} reconnection;
	struct {
		double ping_interval;
		double ping_timeout;
		int max_ping_failures;
	} keepalive;
	struct {
		char level[16];
		bool log_to_file;
		char file[CFG_STR_MAX];
		int max_size;                 /* bytes before FILE becomes FILE.1; 0 = never */
		int rate_limit;               /* lines of one kind per 10 s; 0 = no limit */
	} logging;
	/* ---- the daemon's own ---- */
	struct {
		char name[CFG_STR_MAX];       /* "" until set: required to run a node */
		char namespace_[CFG_STR_MAX]; /* key "namespace" */
		char listen[CFG_STR_MAX];     /* address to bind for peers */
		int port;                     /* peer listen port; 0 = any */
		int ttl;                      /* registration ttl asked for */
		char discover_namespace[CFG_STR_MAX]; /* "" = all namespaces */
		char state_dir[CFG_STR_MAX];  /* "" = $STATE_DIRECTORY, XDG, ~/.local/state */
	} node;
	struct {
		char socket[CFG_STR_MAX];     /* "" = default location */
		int mode;                     /* file mode, e.g. 0660 (written "0660") */
		int max_clients;
		int max_output;               /* bytes queued per controller */
		int history;                  /* events kept for subscribe since */
	} control;
	struct {
		int max_connections;
		int out_queue_bytes;          /* per peer connection */
		double handshake_timeout;
		double connect_timeout;
		double rendezvous_timeout;
		double send_gap_ms;           /* gap between writes to non-pipeline peers */
		double resend_interval;       /* resend unACKed SEND to non-pipeline peers */
		int max_bad_lines;            /* invalid lines before closing a peer */
		double bye_timeout;           /* wait for BYE_OK at shutdown */
		int accept_rate;              /* inbound connections per address per second */
		int max_connections_per_ip;   /* open at once from one address */
		char exempt_addresses[CFG_STR_MAX]; /* spared by the cap above */
		int max_met_only;             /* peers known only from their inbound HELLO */
		double met_only_forget;       /* seconds after they go before they are forgotten */
		int rendezvous_reply_max;     /* bytes of one rendezvous reply line */
		int dials_in_flight;          /* outbound connects + handshakes at once */
		double dial_rate;             /* outbound dials started per second */
		int dials_per_address;        /* handshakes at once to one ip:port */
		int dials_per_ip;             /* handshakes at once to one ip */
	} limits;
	struct {
		char listen[CFG_STR_MAX];
		int port;
		int rate_limit;               /* connections per window per ip */
		double rate_window;
		double block_time;
		double first_line_timeout;
		int max_clients;
		int max_per_ip;               /* registrations held from one address */
		bool quota_exempt_loopback;   /* 127.0.0.0/8 and ::1 not held to max_per_ip */
		char state_dir[CFG_STR_MAX];  /* where registrations are kept ("" : none) */
	} rendezvous_server;
	struct {
		char sync[16];                /* normal | full | off */
		int inbox_max_messages;       /* 0 = no bound */
		double inbox_max_bytes;       /* text bytes; 0 = no bound */
		double inbox_max_days;        /* 0 = no bound */
		int max_attempts;             /* sends of a queued message */
		double queue_deadline;        /* default deadline of a queued send, seconds */
		int outbox_max;               /* queued sends held; more: outbox_full */
		double sender_share;          /* fraction of the inbox bounds one sender may fill */
	} storage;
	struct {
		char on_message[CFG_STR_MAX]; /* program and arguments ("" : none) */
		double timeout;               /* seconds before a hook is killed */
		int max_running;              /* hooks at once */
	} hooks;
	struct {
		char tls[16];                 /* prefer | require | off (PROTOCOL.md §5.2) */
	} security;
};

void config_defaults(struct config *c);
/* Load path over c.  A missing file is fine when !must_exist.  An unknown
 * key or section is an error naming the closest valid one (warn, may be
 * NULL, is kept for messages that do not stop the load). */
int config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen,
		void (*warn)(const char *msg));
/* Set "section.key" from text (command-line override); same checks. */
int config_set(struct config *c, const char *dotted_key, const char *value, char *err, size_t errlen);
/* Checks across keys (e.g. backoff_max >= backoff_base); 0 or -1 + err. */
int config_check(const struct config *c, char *err, size_t errlen);

struct buf;
/* Append c as JSON to out: pretty (2-space indent, the layout of the shipped
 * config.json) or on one line; either ends in one '\n'.  Reading it back
 * with config_load gives the same configuration. */
void config_dump(const struct config *c, struct buf *out, bool pretty);
/* Append a Markdown table of every key (key, type, default, range,
 * description), for generating the documentation. */
void config_describe(struct buf *out);

#endif
