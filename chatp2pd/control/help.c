/* One line per control method, for the "methods" method (chatp2pctl
 * methods, and the completion of "chatp2pctl call").  Kept apart from the
 * dispatch table so a method added there still works without a line here. */
#include <string.h>

#include "control/control.h"

static const struct {
	const char *name, *help;
} help[] = {
	{ "version", "the daemon's version, control protocol and peer id" },
	{ "hello", "the same as version" },
	{ "status", "identity, uptime, registration, reachability, counts" },
	{ "peers", "the peer table with counters (filter, discover)" },
	{ "conn", "connections: direction, address, since, RTT, traffic" },
	{ "send", "SEND text to a peer and wait for its ACK (to, text, require_ack, msg_id)" },
	{ "pub", "PUB text to every connected peer or a namespace (to, text)" },
	{ "rtt", "round-trip times per peer" },
	{ "reconnect", "dial a peer, or every peer not connected, now (peer)" },
	{ "log.get", "the log level" },
	{ "log.set", "set the log level (level)" },
	{ "discover", "ask the rendezvous server who is registered" },
	{ "register", "register at the rendezvous server now" },
	{ "unregister", "unregister from the rendezvous server" },
	{ "subscribe", "receive events (events, since, log_level)" },
	{ "unsubscribe", "stop receiving events (events)" },
	{ "shutdown", "stop the node gracefully" },
	{ "reload", "re-read the configuration file" },
	{ "ping", "PING a peer over its connection, answer with the RTT (peer, timeout)" },
	{ "methods", "this list" },
	{ "metrics", "counters and gauges as Prometheus/OpenMetrics text" },
	{ "trust.list", "the pinned keys of peers: peer_id, fingerprint, first/last seen, verified" },
	{ "trust.verify", "mark a peer's pinned key verified, compared out of band (peer, fingerprint)" },
	{ "trust.pin", "pin a peer's key before first contact, or replace its pin (peer, fingerprint)" },
	{ "trust.forget", "forget a peer's pinned key: the next one is pinned on first use (peer)" },
	{ "inbox", "stored messages: unread, from, since (id or time), limit" },
	{ "read", "mark a stored message (id) or all read" },
	{ "outbox", "queued messages waiting for their peer; cancel one" },
	{ "history", "a conversation both ways: messages from and to a peer (or PUBs to * or #ns), oldest first" },
	{ "delete", "delete stored inbox messages by id" },
};

const char *ctl_method_help(const char *name)
{
	for (size_t i = 0; i < sizeof help / sizeof *help; i++)
		if (strcmp(help[i].name, name) == 0)
			return help[i].help;
	return "";
}
