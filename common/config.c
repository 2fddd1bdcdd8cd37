#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

#include "buf.h"
#include "json.h"
#include "peerid.h"

/* A configuration file is a few KB; anything bigger is a mistake. */
#define CFG_FILE_MAX (1024 * 1024)
/* Longest excerpt of an offending value quoted in an error. */
#define SHOW_SRC_MAX 40
#define SHOW_MAX 256
#define WHY_MAX 512
#define RANGE_MAX 80

/* Every duration in seconds is bounded by a day: longer is a typo. */
#define DAY 86400.0
#define GIB 1073741824.0

enum cfg_type { CFG_INT, CFG_DOUBLE, CFG_BOOL, CFG_STRING, CFG_LEVEL, CFG_MODE };

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t off;
	size_t size;        /* of the member: bounds STRING and LEVEL */
	double min, max;    /* INT, DOUBLE, MODE */
	const char *def;    /* default, as config_set text */
	const char *help;
};

#define MSIZE(m) sizeof(((struct config *)0)->m)
#define K(sec, key, type, m, min, max, def, help) \
	{ sec, key, type, offsetof(struct config, m), MSIZE(m), min, max, def, help }

/* The one description of every key: defaults, file, --set and docs all come
 * from here.  Sections and keys are in config.json order. */
static const struct cfg_key keys[] = {
	K("rendezvous", "host", CFG_STRING, rendezvous.host, 0, 0, "pyp2p.mfcaetano.cc",
	    "rendezvous server host name or address"),
	K("rendezvous", "port", CFG_INT, rendezvous.port, 1, 65535, "8080",
	    "rendezvous server TCP port"),
	K("rendezvous", "discover_interval", CFG_DOUBLE, rendezvous.discover_interval, 0.001, DAY, "60",
	    "seconds between DISCOVER requests"),
	K("rendezvous", "register_retry_attempts", CFG_INT, rendezvous.register_retry_attempts, 1, 100, "3",
	    "REGISTER attempts before giving up until the next refresh"),
	K("rendezvous", "register_backoff_base", CFG_DOUBLE, rendezvous.register_backoff_base, 0.001, DAY, "2",
	    "seconds before the first REGISTER retry, doubling with each retry"),
	K("rendezvous", "ttl_warning_treshold", CFG_DOUBLE, rendezvous.ttl_warning_treshold, 0, DAY, "60",
	    "seconds of registration lifetime left at which to warn and renew (spelling as in the original client)"),

	K("network", "ack_timeout", CFG_DOUBLE, network.ack_timeout, 0.001, DAY, "20",
	    "seconds to wait for the ACK of a SEND before reporting it timed out"),
	K("network", "max_msg_size", CFG_INT, network.max_msg_size, 256, 1048576, "32768",
	    "longest line accepted from a peer, in bytes"),
	K("network", "connection_timeout", CFG_DOUBLE, network.connection_timeout, 0.001, DAY, "90",
	    "seconds without any traffic before a peer connection is closed"),

	K("peer_connection", "retry_attempts", CFG_INT, peer_connection.retry_attempts, 1, 100, "3",
	    "connect attempts to a peer before giving up on it for now"),
	K("peer_connection", "backoff_base", CFG_DOUBLE, peer_connection.backoff_base, 0.001, DAY, "2",
	    "seconds before the first connect retry, doubling with each retry"),

	K("reconnection", "max_attempts", CFG_INT, reconnection.max_attempts, 0, 1000, "5",
	    "tries to reconnect a STALE or UNKNOWN peer before waiting for the next DISCOVER (0: none)"),
	K("reconnection", "backoff_base", CFG_DOUBLE, reconnection.backoff_base, 0.001, DAY, "2",
	    "seconds before the first reconnection try, doubling with each try"),
	K("reconnection", "backoff_max", CFG_DOUBLE, reconnection.backoff_max, 0.001, DAY, "32",
	    "cap on the reconnection delay, seconds"),
	K("reconnection", "check_interval", CFG_DOUBLE, reconnection.check_interval, 0.001, DAY, "10",
	    "seconds between reconciliation passes over the peer table"),

	K("keepalive", "ping_interval", CFG_DOUBLE, keepalive.ping_interval, 0.001, DAY, "30",
	    "seconds between PINGs on each connection"),
	K("keepalive", "ping_timeout", CFG_DOUBLE, keepalive.ping_timeout, 0.001, DAY, "10",
	    "seconds to wait for the PONG of a PING"),
	K("keepalive", "max_ping_failures", CFG_INT, keepalive.max_ping_failures, 1, 1000, "3",
	    "PINGs in a row without PONG before the connection is declared dead"),

	K("logging", "level", CFG_LEVEL, logging.level, 0, 0, "INFO",
	    "least severe level logged: DEBUG, INFO, WARNING or ERROR"),
	K("logging", "log_to_file", CFG_BOOL, logging.log_to_file, 0, 0, "true",
	    "also append log lines to logging.file"),
	K("logging", "file", CFG_STRING, logging.file, 0, 0, "chatp2p.log",
	    "log file path; the default name is per node: chatp2p-NAME@NS.log"),
	K("logging", "max_size", CFG_INT, logging.max_size, 0, 2147483647, "10485760",
	    "bytes after which the log file is renamed to FILE.1 (replacing the previous one) and a new one started (0: never)"),
	K("logging", "rate_limit", CFG_INT, logging.rate_limit, 0, 1000000, "20",
	    "lines of one kind (one place in the code) written per 10 s; the rest are counted and summed up in one line (0: no limit)"),

	K("node", "name", CFG_STRING, node.name, 0, 0, "",
	    "this node's name; its peer id is name@namespace (required to run a node)"),
	K("node", "namespace", CFG_STRING, node.namespace_, 0, 0, "CIC",
	    "namespace to register in"),
	K("node", "listen", CFG_STRING, node.listen, 0, 0, "0.0.0.0",
	    "address to accept peer connections on"),
	K("node", "port", CFG_INT, node.port, 0, 65535, "5000",
	    "TCP port for peer connections (0: any free port)"),
	K("node", "ttl", CFG_INT, node.ttl, 30, 86400, "7200",
	    "registration lifetime asked of the rendezvous server, seconds"),
	K("node", "discover_namespace", CFG_STRING, node.discover_namespace, 0, 0, "",
	    "namespace to DISCOVER (empty: all namespaces)"),
	K("node", "state_dir", CFG_STRING, node.state_dir, 0, 0, "",
	    "directory of the inbox/outbox database (empty: $STATE_DIRECTORY, else $XDG_STATE_HOME/chatp2p/NAME@NS, else ~/.local/state/chatp2p/NAME@NS)"),

	K("control", "socket", CFG_STRING, control.socket, 0, 0, "",
	    "control socket path (empty: the default location)"),
	K("control", "mode", CFG_MODE, control.mode, 0, 0777, "0660",
	    "control socket permissions, octal"),
	K("control", "max_clients", CFG_INT, control.max_clients, 1, 65536, "64",
	    "controllers connected at once"),
	K("control", "max_output", CFG_INT, control.max_output, 4096, GIB, "1048576",
	    "bytes queued for one controller before it loses events or is dropped"),
	K("control", "history", CFG_INT, control.history, 0, 1000000, "1024",
	    "events kept for subscribe with since"),

	K("limits", "max_connections", CFG_INT, limits.max_connections, 1, 1000000, "1024",
	    "peer connections open at once, inbound and outbound"),
	K("limits", "out_queue_bytes", CFG_INT, limits.out_queue_bytes, 1024, GIB, "4194304",
	    "bytes queued for one peer connection before it is closed"),
	K("limits", "handshake_timeout", CFG_DOUBLE, limits.handshake_timeout, 0.001, DAY, "5",
	    "seconds for HELLO and HELLO_OK to be exchanged"),
	K("limits", "connect_timeout", CFG_DOUBLE, limits.connect_timeout, 0.001, DAY, "5",
	    "seconds for an outbound TCP connect"),
	K("limits", "rendezvous_timeout", CFG_DOUBLE, limits.rendezvous_timeout, 0.001, DAY, "5",
	    "seconds for one rendezvous request and its reply"),
	K("limits", "send_gap_ms", CFG_DOUBLE, limits.send_gap_ms, 0, 10000, "5",
	    "milliseconds after a line without answer to a one-line-per-recv peer"),
	K("limits", "resend_interval", CFG_DOUBLE, limits.resend_interval, 0.001, DAY, "1",
	    "seconds before an unACKed SEND is resent to a peer without pipeline"),
	K("limits", "max_bad_lines", CFG_INT, limits.max_bad_lines, 0, 1000000, "10",
	    "invalid or over-long lines tolerated from a peer before it is closed"),
	K("limits", "bye_timeout", CFG_DOUBLE, limits.bye_timeout, 0, DAY, "2",
	    "seconds to wait for BYE_OK at shutdown"),
	K("limits", "accept_rate", CFG_INT, limits.accept_rate, 1, 1000000, "20",
	    "inbound connections accepted per address per second"),
	K("limits", "max_connections_per_ip", CFG_INT, limits.max_connections_per_ip, 1, 1000000, "32",
	    "peer connections open at once from one source address (limits.exempt_addresses are spared)"),
	K("limits", "exempt_addresses", CFG_STRING, limits.exempt_addresses, 0, 0, "127.0.0.0/8, ::1",
	    "addresses or prefixes spared by max_connections_per_ip, separated by commas (empty: none)"),
	K("limits", "max_met_only", CFG_INT, limits.max_met_only, 1, 65536, "1024",
	    "peers remembered that were only met through their inbound HELLO (never listed by the rendezvous)"),
	K("limits", "met_only_forget", CFG_DOUBLE, limits.met_only_forget, 0, DAY, "600",
	    "seconds after such a peer was last seen, disconnected, before it is forgotten"),
	K("limits", "rendezvous_reply_max", CFG_INT, limits.rendezvous_reply_max, 32768, GIB,
	    "16777216", "bytes of one rendezvous reply (a DISCOVER lists every peer on one line)"),
	K("limits", "dials_in_flight", CFG_INT, limits.dials_in_flight, 1, 100000, "32",
	    "outbound connections being set up (connect and handshake) at once"),
	K("limits", "dial_rate", CFG_DOUBLE, limits.dial_rate, 0.1, 1000000, "100",
	    "outbound connections started per second"),
	K("limits", "dials_per_address", CFG_INT, limits.dials_per_address, 1, 100000, "2",
	    "outbound connections being set up at once to one ip:port (names listed at one address)"),
	K("limits", "dials_per_ip", CFG_INT, limits.dials_per_ip, 1, 100000, "8",
	    "outbound connections being set up at once to one ip (limits.exempt_addresses are spared)"),

	K("rendezvous_server", "listen", CFG_STRING, rendezvous_server.listen, 0, 0, "0.0.0.0",
	    "address the rendezvous server role listens on"),
	K("rendezvous_server", "port", CFG_INT, rendezvous_server.port, 0, 65535, "8080",
	    "TCP port of the rendezvous server role (0: any free port)"),
	K("rendezvous_server", "rate_limit", CFG_INT, rendezvous_server.rate_limit, 1, 1000000, "50",
	    "connections from one address per rate_window before it is blocked"),
	K("rendezvous_server", "rate_window", CFG_DOUBLE, rendezvous_server.rate_window, 0.001, DAY, "60",
	    "length of the rate-limit window, seconds"),
	K("rendezvous_server", "block_time", CFG_DOUBLE, rendezvous_server.block_time, 0, DAY, "60",
	    "seconds an address stays blocked after passing rate_limit"),
	K("rendezvous_server", "first_line_timeout", CFG_DOUBLE, rendezvous_server.first_line_timeout, 0.001, DAY, "1",
	    "seconds a connection has to send its request line"),
	K("rendezvous_server", "max_clients", CFG_INT, rendezvous_server.max_clients, 1, 1000000, "4096",
	    "connections open at once"),
	K("rendezvous_server", "max_per_ip", CFG_INT, rendezvous_server.max_per_ip, 1, 1000000, "256",
	    "registrations held from one address"),
	K("rendezvous_server", "quota_exempt_loopback", CFG_BOOL, rendezvous_server.quota_exempt_loopback, 0, 0, "true",
	    "loopback clients (127.0.0.0/8, ::1: tests, one-machine labs) are not held to max_per_ip"),
	K("rendezvous_server", "state_dir", CFG_STRING, rendezvous_server.state_dir, 0, 0, "",
	    "directory keeping the registrations across restarts (empty: $STATE_DIRECTORY, else none)"),

	K("storage", "sync", CFG_STRING, storage.sync, 0, 0, "normal",
	    "normal (survives a crash or SIGKILL), full (survives power loss) or off (no database: nothing stored)"),
	K("storage", "inbox_max_messages", CFG_INT, storage.inbox_max_messages, 0, 1000000000, "100000",
	    "messages kept in the inbox, oldest removed first (0: no bound)"),
	K("storage", "inbox_max_bytes", CFG_DOUBLE, storage.inbox_max_bytes, 0, 1e12, "67108864",
	    "bytes of message text kept in the inbox, oldest removed first (0: no bound)"),
	K("storage", "inbox_max_days", CFG_DOUBLE, storage.inbox_max_days, 0, 36500, "30",
	    "days a message is kept in the inbox (0: no bound)"),
	K("storage", "max_attempts", CFG_INT, storage.max_attempts, 1, 1000, "5",
	    "times a queued message is sent (one per connection) before it is reported expired"),
	K("storage", "queue_deadline", CFG_DOUBLE, storage.queue_deadline, 1, 30 * DAY, "3600",
	    "seconds a queued message waits for delivery when send gives no deadline"),
	K("storage", "outbox_max", CFG_INT, storage.outbox_max, 1, 10000000, "100000",
	    "queued sends held in the outbox; beyond it send with queue is refused (outbox_full)"),
	K("storage", "sender_share", CFG_DOUBLE, storage.sender_share, 0.001, 1, "0.25",
	    "fraction of the inbox bounds one sender may fill; retention removes the oldest "
	    "messages of senders over their share first"),
	K("hooks", "on_message", CFG_STRING, hooks.on_message, 0, 0, "",
	    "program run for each stored message, with its arguments, split on blanks (no shell); CHATP2P_FROM, _TO, _TYPE, _TEXT, _MSG_ID and _IDENTITY in its environment (\"\": none)"),
	K("hooks", "timeout", CFG_DOUBLE, hooks.timeout, 0.1, 3600, "10",
	    "seconds a hook may run before it is killed"),
	K("hooks", "max_running", CFG_INT, hooks.max_running, 1, 64, "4",
	    "hooks running at once; more wait (up to 256, then dropped and logged)"),
	K("security", "tls", CFG_STRING, security.tls, 0, 0, "prefer",
	    "TLS with pinned keys between chatp2p nodes: prefer (wherever both sides offer it), "
	    "require (refuse every peer that does not) or off"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const levels[] = { "DEBUG", "INFO", "WARNING", "ERROR" };

#define FIELD(c, k, T) ((T *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, T) ((const T *)(const void *)((const char *)(c) + (k)->off))

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct cfg_key *find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
			return &keys[i];
	return NULL;
}

/* Edit distance (insertions, deletions, substitutions, transpositions of
 * neighbours), ASCII case-insensitive; max + 1 for anything longer than a
 * key can be. */
static size_t distance(const char *a, const char *b, size_t max)
{
	enum { L = 64 };
	size_t la = strlen(a), lb = strlen(b), d[L + 1][L + 1];

	if (la > L || lb > L)
		return max + 1;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1, v = d[i - 1][j - 1] + cost;
			if (d[i - 1][j] + 1 < v)
				v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && (a[i - 1] | 0x20) == (b[j - 2] | 0x20) &&
			    (a[i - 2] | 0x20) == (b[j - 1] | 0x20) && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb] > max ? max + 1 : d[la][lb];
}

/* "; did you mean rendezvous.port?" for a key (section NULL: a section)
 * that is not ours, into buf ("" when nothing is close). */
static void suggest_key(const char *section, const char *name, char *buf, size_t len)
{
	size_t best = 3, lim = strlen(name) / 3 < 1 ? 1 : strlen(name) / 3 > 3 ? 3 : strlen(name) / 3;
	const struct cfg_key *near = NULL;

	buf[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		/* A key of this section, or one of the same name elsewhere. */
		const char *cand = section ? keys[i].key : keys[i].section;
		size_t d = distance(name, cand, lim);
		if (section && strcmp(keys[i].section, section) != 0 && strcmp(keys[i].key, name) != 0)
			continue;
		if (section && strcmp(keys[i].section, section) != 0)
			d = 0; /* the right key in the wrong section */
		if (d <= lim && (near == NULL || d < best)) {
			near = &keys[i];
			best = d;
		}
	}
	if (near && section)
		snprintf(buf, len, "; did you mean %s.%s?", near->section, near->key);
	else if (near)
		snprintf(buf, len, "; did you mean %s?", near->section);
}

/* Where a JSON text stops parsing, as "line L, column C" into buf ("" if
 * yajl finds nothing wrong: json_parse's own checks refused it). */
static void json_error_at(const char *text, size_t len, char *buf, size_t buflen)
{
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	size_t at = (size_t)-1, line = 1, col = 1;

	buf[0] = '\0';
	if (h == NULL)
		return;
	yajl_config(h, yajl_allow_comments, 1); /* as yajl_tree_parse */
	if (yajl_parse(h, (const unsigned char *)text, len) == yajl_status_error)
		at = yajl_get_bytes_consumed(h);
	else if (yajl_complete_parse(h) == yajl_status_error)
		at = len;
	yajl_free(h);
	if (at == (size_t)-1)
		return;
	/* yajl counts the offending byte as consumed: point at it. */
	if (at > 0 && at < len)
		at--;
	for (size_t i = 0; i < at && i < len; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			col++; /* columns count characters, not UTF-8 bytes */
		}
	}
	snprintf(buf, buflen, " (line %zu, column %zu)", line, col);
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

/* Shortest text that reads back as d, so dumps stay "60", not "60.000000". */
static void fmt_num(double d, char *dst, size_t n)
{
	if (d == trunc(d) && fabs(d) < 1e15) {
		snprintf(dst, n, "%.0f", d);
		return;
	}
	snprintf(dst, n, "%.15g", d);
	if (strtod(dst, NULL) != d)
		snprintf(dst, n, "%.17g", d);
}

static void fmt_range(const struct cfg_key *k, char *dst, size_t n)
{
	char lo[32], hi[32];

	if (k->type == CFG_MODE) {
		snprintf(dst, n, "%#o..%#o", (unsigned)k->min, (unsigned)k->max);
		return;
	}
	fmt_num(k->min, lo, sizeof lo);
	fmt_num(k->max, hi, sizeof hi);
	snprintf(dst, n, "%s..%s", lo, hi);
}

/* Quote (part of) a value for an error: errors are one line, so control
 * characters are escaped and long values cut at a UTF-8 boundary. */
static void show_str(const char *s, bool quote, char *dst, size_t n)
{
	size_t len = strlen(s), cut = len, o = 0;
	char tmp[8];

	if (len > SHOW_SRC_MAX) {
		cut = SHOW_SRC_MAX;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
#define PUT(str) do { \
	for (const char *p_ = (str); *p_ != '\0' && o + 1 < n; p_++) \
		dst[o++] = *p_; \
} while (0)
	if (quote)
		PUT("\"");
	for (size_t i = 0; i < cut; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			snprintf(tmp, sizeof tmp, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			snprintf(tmp, sizeof tmp, "\\u%04x", ch);
		else
			snprintf(tmp, sizeof tmp, "%c", ch);
		PUT(tmp);
	}
	if (cut < len)
		PUT("...");
	if (quote)
		PUT("\"");
#undef PUT
	dst[o] = '\0';
}

static void show_json(jval v, char *dst, size_t n)
{
	if (v == NULL || YAJL_IS_NULL(v))
		snprintf(dst, n, "null");
	else if (YAJL_IS_STRING(v))
		show_str(v->u.string, true, dst, n);
	else if (YAJL_IS_NUMBER(v))
		show_str(v->u.number.r, false, dst, n);
	else if (YAJL_IS_TRUE(v))
		snprintf(dst, n, "true");
	else if (YAJL_IS_FALSE(v))
		snprintf(dst, n, "false");
	else if (YAJL_IS_OBJECT(v))
		snprintf(dst, n, "an object");
	else
		snprintf(dst, n, "an array");
}

static int expected(const struct cfg_key *k, const char *shown, char *why, size_t n)
{
	char r[RANGE_MAX];

	fmt_range(k, r, sizeof r);
	switch (k->type) {
	case CFG_INT:
		snprintf(why, n, "expected an integer %s, got %s", r, shown);
		break;
	case CFG_DOUBLE:
		snprintf(why, n, "expected a number %s, got %s", r, shown);
		break;
	case CFG_BOOL:
		snprintf(why, n, "expected true or false, got %s", shown);
		break;
	case CFG_STRING:
		snprintf(why, n, "expected a string, got %s", shown);
		break;
	case CFG_LEVEL:
		snprintf(why, n, "expected one of DEBUG, INFO, WARNING, ERROR, got %s", shown);
		break;
	case CFG_MODE:
		snprintf(why, n, "expected an octal file mode such as \"0660\", got %s", shown);
		break;
	}
	return -1;
}

static int store_num(struct config *c, const struct cfg_key *k, double d, const char *shown,
    char *why, size_t n)
{
	char r[RANGE_MAX];

	/* Written so that NaN fails too. */
	if (!(d >= k->min && d <= k->max)) {
		fmt_range(k, r, sizeof r);
		snprintf(why, n, "out of range (%s): %s", r, shown);
		return -1;
	}
	if (k->type == CFG_DOUBLE)
		*FIELD(c, k, double) = d;
	else
		*FIELD(c, k, int) = (int)d;
	return 0;
}

/* Strings end up in log lines and JSON output, which must stay UTF-8. */
static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned cp;
		int more;

		if (*p < 0x80) {
			p++;
			continue;
		} else if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			more = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			more = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			more = 3;
		} else
			return false;
		p++;
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3f);
		}
		if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) ||
		    (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

static const char *parse_level(const char *s)
{
	if (strcasecmp(s, "WARN") == 0)
		return "WARNING";
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		if (strcasecmp(s, levels[i]) == 0)
			return levels[i];
	return NULL;
}

static int store_str(struct config *c, const struct cfg_key *k, const char *s, const char *shown,
    char *why, size_t n)
{
	size_t len = strlen(s);

	if (k->type == CFG_LEVEL) {
		if ((s = parse_level(s)) == NULL)
			return expected(k, shown, why, n);
		len = strlen(s);
	} else if (len >= k->size) {
		snprintf(why, n, "too long (at most %zu bytes)", k->size - 1);
		return -1;
	} else if (!valid_utf8(s)) {
		snprintf(why, n, "not valid UTF-8");
		return -1;
	}
	memcpy(FIELD(c, k, char), s, len + 1);
	return 0;
}

/* Octal digits only, as chmod reads them ("0660", "660"). */
static bool parse_octal(const char *s, double *out)
{
	size_t len = strlen(s);
	unsigned v = 0;

	if (len == 0 || len > 6 || strspn(s, "01234567") != len)
		return false;
	for (size_t i = 0; i < len; i++)
		v = v * 8 + (unsigned)(s[i] - '0');
	*out = v;
	return true;
}

static int set_json(struct config *c, const struct cfg_key *k, jval v, char *why, size_t n)
{
	char shown[SHOW_MAX];
	double d;
	int b;

	show_json(v, shown, sizeof shown);
	switch (k->type) {
	case CFG_INT:
	case CFG_DOUBLE:
		/* 2.0 is an integer to a human, and to Python. */
		if (!json_num(v, &d) || (k->type == CFG_INT && d != trunc(d)))
			return expected(k, shown, why, n);
		return store_num(c, k, d, shown, why, n);
	case CFG_BOOL:
		if ((b = json_bool(v)) < 0)
			return expected(k, shown, why, n);
		*FIELD(c, k, bool) = b;
		return 0;
	case CFG_STRING:
	case CFG_LEVEL:
		if (json_str(v) == NULL)
			return expected(k, shown, why, n);
		return store_str(c, k, json_str(v), shown, why, n);
	case CFG_MODE:
		/* A string is octal ("0660"); a number is taken as is (432). */
		if (json_str(v) != NULL) {
			if (!parse_octal(json_str(v), &d))
				return expected(k, shown, why, n);
		} else if (!json_num(v, &d) || d != trunc(d))
			return expected(k, shown, why, n);
		return store_num(c, k, d, shown, why, n);
	}
	return -1;
}

static bool parse_long(const char *s, double *out)
{
	char *end;
	long l;

	/* strtol skips leading blanks and stops early; insist on the whole text. */
	if (*s == '\0' || strchr("0123456789+-", *s) == NULL)
		return false;
	errno = 0;
	l = strtol(s, &end, 10);
	if (*end != '\0' || end == s)
		return false;
	/* On overflow l is clamped, which the range check then reports. */
	*out = (double)l;
	return true;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	double d;

	/* Decimal notation only: no hex, inf or nan, as in JSON. */
	if (*s == '\0' || strspn(s, "0123456789+-.eE") != strlen(s))
		return false;
	errno = 0;
	d = strtod(s, &end);
	if (*end != '\0' || end == s || !isfinite(d))
		return false;
	*out = d;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static int set_text(struct config *c, const struct cfg_key *k, const char *s, char *why, size_t n)
{
	char quoted[SHOW_MAX], raw[SHOW_MAX];
	double d;
	bool b;

	show_str(s, true, quoted, sizeof quoted);
	show_str(s, false, raw, sizeof raw);
	switch (k->type) {
	case CFG_INT:
		/* "2.0" is accepted as in a file. */
		if (!parse_long(s, &d) && (!parse_double(s, &d) || d != trunc(d)))
			return expected(k, quoted, why, n);
		return store_num(c, k, d, raw, why, n);
	case CFG_DOUBLE:
		if (!parse_double(s, &d))
			return expected(k, quoted, why, n);
		return store_num(c, k, d, raw, why, n);
	case CFG_MODE:
		if (!parse_octal(s, &d))
			return expected(k, quoted, why, n);
		return store_num(c, k, d, raw, why, n);
	case CFG_BOOL:
		if (!parse_bool(s, &b))
			return expected(k, quoted, why, n);
		*FIELD(c, k, bool) = b;
		return 0;
	case CFG_STRING:
	case CFG_LEVEL:
		return store_str(c, k, s, quoted, why, n);
	}
	return -1;
}

void config_defaults(struct config *c)
{
	char why[WHY_MAX];

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < NKEYS; i++) {
		if (set_text(c, &keys[i], keys[i].def, why, sizeof why) != 0) {
			/* The table is wrong: a bug, caught by the unit tests. */
			fprintf(stderr, "config: bad default for %s.%s: %s\n",
			    keys[i].section, keys[i].key, why);
			abort();
		}
	}
}

/* Read the whole file: 0, 1 if it does not exist, or -1 with err set. */
static int read_file(const char *path, struct buf *b, char *err, size_t errlen)
{
	char chunk[8192];
	FILE *f;
	size_t n;
	int saved;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 1;
		seterr(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b->len + n > CFG_FILE_MAX) {
			fclose(f);
			seterr(err, errlen, "%s: file too large (more than %d bytes)", path,
			    CFG_FILE_MAX);
			return -1;
		}
		buf_append(b, chunk, n);
	}
	if (ferror(f)) {
		saved = errno;
		fclose(f);
		seterr(err, errlen, "cannot read %s: %s", path, strerror(saved));
		return -1;
	}
	fclose(f);
	return 0;
}

int config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen,
    void (*warn)(const char *msg))
{
	struct buf b = BUF_INIT;
	char why[WHY_MAX], name[SHOW_MAX], key[SHOW_MAX], msg[3 * SHOW_MAX];
	struct config tmp;
	jval root = NULL;
	int rc = -1;

	switch (read_file(path, &b, err, errlen)) {
	case 0:
		break;
	case 1:
		if (!must_exist)
			rc = 0;
		else
			seterr(err, errlen, "cannot read %s: %s", path, strerror(ENOENT));
		goto out;
	default:
		goto out;
	}
	if ((root = json_parse(b.data ? b.data : "", b.len, why, sizeof why)) == NULL) {
		char where[64];
		json_error_at(b.data ? b.data : "", b.len, where, sizeof where);
		seterr(err, errlen, "%s: invalid JSON: %s%s", path, why, where);
		goto out;
	}
	if (!YAJL_IS_OBJECT(root)) {
		show_json(root, why, sizeof why);
		seterr(err, errlen, "%s: expected a JSON object at the top level, got %s", path, why);
		goto out;
	}

	/* Work on a copy: a file with an error changes nothing (matters for reload). */
	tmp = *c;
	for (size_t i = 0; i < json_obj_len(root); i++) {
		const char *sec = json_obj_key(root, i);
		jval sv = json_obj_val(root, i);

		show_str(sec, false, name, sizeof name);
		/* An unknown name is refused, not ignored: a typo would otherwise
		 * leave that setting at its default without anyone noticing. */
		if (!known_section(sec)) {
			suggest_key(NULL, sec, msg, sizeof msg);
			seterr(err, errlen, "%s: unknown section %s%s", path, name, msg);
			goto out;
		}
		if (!YAJL_IS_OBJECT(sv)) {
			show_json(sv, why, sizeof why);
			seterr(err, errlen, "%s: %s: expected an object, got %s", path, name, why);
			goto out;
		}
		for (size_t j = 0; j < json_obj_len(sv); j++) {
			const struct cfg_key *k = find_key(sec, json_obj_key(sv, j));

			if (k == NULL) {
				show_str(json_obj_key(sv, j), false, key, sizeof key);
				suggest_key(sec, json_obj_key(sv, j), msg, sizeof msg);
				seterr(err, errlen, "%s: unknown key %s.%s%s", path, name, key, msg);
				goto out;
			}
			if (set_json(&tmp, k, json_obj_val(sv, j), why, sizeof why) != 0) {
				seterr(err, errlen, "%s: %s.%s: %s", path, k->section, k->key, why);
				goto out;
			}
		}
	}
	*c = tmp;
	rc = 0;
out:
	json_free(root);
	buf_free(&b);
	return rc;
}

int config_set(struct config *c, const char *dotted_key, const char *value, char *err, size_t errlen)
{
	const struct cfg_key *k = NULL;
	const char *dot = strchr(dotted_key, '.');
	char why[WHY_MAX], shown[SHOW_MAX];

	for (size_t i = 0; dot != NULL && i < NKEYS; i++) {
		size_t slen = strlen(keys[i].section);
		if ((size_t)(dot - dotted_key) == slen &&
		    strncmp(dotted_key, keys[i].section, slen) == 0 &&
		    strcmp(dot + 1, keys[i].key) == 0) {
			k = &keys[i];
			break;
		}
	}
	if (k == NULL) {
		show_str(dotted_key, false, shown, sizeof shown);
		seterr(err, errlen, "unknown configuration key %s", shown);
		return -1;
	}
	if (set_text(c, k, value, why, sizeof why) != 0) {
		seterr(err, errlen, "%s.%s: %s", k->section, k->key, why);
		return -1;
	}
	return 0;
}

int config_check(const struct config *c, char *err, size_t errlen)
{
	char a[32], b[32], msg[SHOW_MAX];

	if (c->reconnection.backoff_max < c->reconnection.backoff_base) {
		fmt_num(c->reconnection.backoff_max, a, sizeof a);
		fmt_num(c->reconnection.backoff_base, b, sizeof b);
		seterr(err, errlen, "reconnection.backoff_max (%s) is less than "
		    "reconnection.backoff_base (%s)", a, b);
		return -1;
	}
	/* A PING still waiting when the next is due would make them overlap. */
	if (c->keepalive.ping_timeout > c->keepalive.ping_interval) {
		fmt_num(c->keepalive.ping_timeout, a, sizeof a);
		fmt_num(c->keepalive.ping_interval, b, sizeof b);
		seterr(err, errlen, "keepalive.ping_timeout (%s) is greater than "
		    "keepalive.ping_interval (%s)", a, b);
		return -1;
	}
	/* The largest line plus its newline must fit in a peer's queue. */
	if ((long long)c->limits.out_queue_bytes < (long long)c->network.max_msg_size + 1) {
		seterr(err, errlen, "limits.out_queue_bytes (%d) is less than "
		    "network.max_msg_size + 1 (%lld)", c->limits.out_queue_bytes,
		    (long long)c->network.max_msg_size + 1);
		return -1;
	}
	if (c->logging.log_to_file && c->logging.file[0] == '\0') {
		seterr(err, errlen, "logging.file is empty but logging.log_to_file is true");
		return -1;
	}
	/* Our own name and namespace are typed in commands and shells
	 * (bob@CIC): letters (any script), digits, '-', '_', '.'. */
	const char *const idparts[2][2] = { { "node.name", c->node.name },
					    { "node.namespace", c->node.namespace_ } };
	for (size_t i = 0; i < 2; i++) {
		const char *v = idparts[i][1];
		for (const unsigned char *p = (const unsigned char *)v; *p; p++)
			if (*p < 0x80 && !(isalnum(*p) || *p == '-' || *p == '_' || *p == '.')) {
				show_str(v, true, msg, sizeof msg);
				seterr(err, errlen, "%s %s: '%c' is not allowed (letters, digits, '-', '_' "
				       "and '.' only: it is typed in commands as name@namespace)",
				       idparts[i][0], msg, *p);
				return -1;
			}
		if (v[0] && !name_valid(v)) {
			show_str(v, true, msg, sizeof msg);
			seterr(err, errlen, "%s %s: 1 to 64 characters", idparts[i][0], msg);
			return -1;
		}
	}
	if (strcmp(c->storage.sync, "normal") != 0 && strcmp(c->storage.sync, "full") != 0 &&
	    strcmp(c->storage.sync, "off") != 0) {
		seterr(err, errlen, "storage.sync: \"%s\" is not normal, full or off", c->storage.sync);
		return -1;
	}
	if (strcmp(c->security.tls, "prefer") != 0 && strcmp(c->security.tls, "require") != 0 &&
	    strcmp(c->security.tls, "off") != 0) {
		seterr(err, errlen, "security.tls: \"%s\" is not prefer, require or off", c->security.tls);
		return -1;
	}
	return 0;
}

static void dump_value(yajl_gen g, const struct config *c, const struct cfg_key *k)
{
	char tmp[64];

	switch (k->type) {
	case CFG_INT:
		jg_int(g, *CFIELD(c, k, int));
		break;
	case CFG_DOUBLE:
		fmt_num(*CFIELD(c, k, double), tmp, sizeof tmp);
		yajl_gen_number(g, tmp, strlen(tmp));
		break;
	case CFG_BOOL:
		jg_bool(g, *CFIELD(c, k, bool));
		break;
	case CFG_STRING:
	case CFG_LEVEL:
		/* Only reachable by writing the struct directly; keep the map valid. */
		if (jg_str(g, CFIELD(c, k, char)) != 0)
			jg_null(g);
		break;
	case CFG_MODE:
		snprintf(tmp, sizeof tmp, "%04o", (unsigned)*CFIELD(c, k, int) & 07777);
		jg_str(g, tmp);
		break;
	}
}

void config_dump(const struct config *c, struct buf *out, bool pretty)
{
	yajl_gen g = jg_new();
	const unsigned char *p;
	size_t len;

	if (pretty) {
		yajl_gen_config(g, yajl_gen_beautify, 1);
		yajl_gen_config(g, yajl_gen_indent_string, "  ");
	}
	jg_map(g);
	for (size_t i = 0; i < NKEYS; i++) {
		if (i == 0 || strcmp(keys[i].section, keys[i - 1].section) != 0) {
			if (i > 0)
				jg_end_map(g);
			jg_str(g, keys[i].section);
			jg_map(g);
		}
		jg_str(g, keys[i].key);
		dump_value(g, c, &keys[i]);
	}
	jg_end_map(g);
	jg_end_map(g);
	if (yajl_gen_get_buf(g, &p, &len) != yajl_gen_status_ok)
		len = 0;
	if (len > 0)
		buf_append(out, p, len);
	/* yajl ends a beautified document with a newline, a compact one without. */
	if (len == 0 || p[len - 1] != '\n')
		buf_append(out, "\n", 1);
	jg_free(g);
}

void config_describe(struct buf *out)
{
	static const char *const tname[] = {
		[CFG_INT] = "integer", [CFG_DOUBLE] = "number", [CFG_BOOL] = "boolean",
		[CFG_STRING] = "string", [CFG_LEVEL] = "string", [CFG_MODE] = "string (octal)",
	};
	char range[RANGE_MAX];

	buf_puts(out, "| Key | Type | Default | Range | Description |\n");
	buf_puts(out, "|---|---|---|---|---|\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];
		bool quoted = k->type == CFG_STRING || k->type == CFG_LEVEL || k->type == CFG_MODE;

		switch (k->type) {
		case CFG_INT:
		case CFG_DOUBLE:
		case CFG_MODE:
			fmt_range(k, range, sizeof range);
			break;
		case CFG_BOOL:
			snprintf(range, sizeof range, "true, false");
			break;
		case CFG_STRING:
			snprintf(range, sizeof range, "up to %zu bytes", k->size - 1);
			break;
		case CFG_LEVEL:
			snprintf(range, sizeof range, "DEBUG, INFO, WARNING, ERROR");
			break;
		}
		buf_printf(out, "| `%s.%s` | %s | `%s%s%s` | %s | %s |\n", k->section, k->key,
		    tname[k->type], quoted ? "\"" : "", k->def, quoted ? "\"" : "", range, k->help);
	}
}
