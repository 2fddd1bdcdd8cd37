/* Every command, in the order --help lists them.  Adding one touches this
 * table and one function in the cmd_*.c of its group. */
#include "cmd_table.h"

#include <stddef.h>

#include "cmd_help.h"
#include "cmd_inbox.h"
#include "cmd_msg.h"
#include "cmd_node.h"
#include "cmd_peers.h"
#include "cmd_trust.h"
#include "cmd_watch.h"
#include "shell.h"

const struct command commands[] = {
	{ .name = "status", .usage = "",
	  .help = "identity, version, uptime, registration, reachability, counts",
	  .run = c_status, .example = "chatp2pctl --json status | jq .rendezvous" },
	{ .name = "peers", .usage = "[--discover] ['*'|#ns]",
	  .help = "the peer table (--discover: ask the rendezvous server first)",
	  .options = "  -d, --discover      ask the rendezvous server who is registered first\n"
		     "  '*' | #ns           only the peers of that namespace\n",
	  .run = c_peers, .shortopts = "d", .example = "chatp2pctl peers -o tsv --no-legend" },
	{ .name = "conn", .usage = "", .help = "connections: direction, address, since, RTT, traffic",
	  .run = c_conn },
	{ .name = "id", .usage = "", .help = "this node's peer_id and key fingerprint (compare it out of band)",
	  .run = c_id, .example = "chatp2pctl id" },
	{ .name = "trust", .usage = "[list | verify PEER FP | pin PEER FP | forget PEER]",
	  .help = "pinned keys of peers: list, mark verified, pin beforehand, forget",
	  .options = "  list                the pins (default): peer, fingerprint, first/last seen\n"
		     "  verify PEER FP      mark PEER's pin verified (refused if FP is not the pin)\n"
		     "  pin PEER FP         pin PEER's key before first contact, or replace its pin\n"
		     "  forget PEER         forget the pin: the next key is pinned on first use\n",
	  .run = c_trust, .example = "chatp2pctl trust verify bob@CIC SHA256:..." },
	{ .name = "send", .usage = "[--no-ack | --queue [--deadline DUR]] PEER [TEXT...|-]",
	  .help = "send TEXT (or standard input) to PEER (an id, or a unique name), wait for its ACK",
	  .options = "  -n, --no-ack        do not ask for an ACK (exit 0 once it is written)\n"
		     "  -q, --queue         keep it in the outbox until PEER is reachable\n"
		     "  -d, --deadline DUR  how long it may wait there (90, 90s, 10m, 2h, 1d)\n"
		     "  PEER                name@namespace, or a name known to one peer\n"
		     "  TEXT...|-           the words of the message, or standard input\n",
	  .run = c_send, .shortopts = "nqd:", .example = "chatp2pctl send bob 'are you there?'" },
	{ .name = "pub", .usage = "'*'|#ns [TEXT...|-]",
	  .help = "publish to every connected peer or a namespace",
	  .options = "  '*' | #ns           every connected peer, or those of one namespace\n"
		     "  TEXT...|-           the words of the message, or standard input\n",
	  .run = c_pub, .example = "chatp2pctl pub '#CIC' 'lunch?'" },
	{ .name = "rtt", .usage = "", .help = "round-trip times per peer: last, avg, min, max",
	  .run = c_rtt },
	{ .name = "reconnect", .usage = "[PEER]", .help = "dial now: PEER, or every peer not connected",
	  .options = "  PEER                an id, or a unique name; none: every peer not connected\n"
		     "                      (exit 0: the dial started; its outcome is a peer event)\n",
	  .run = c_reconnect, .example = "chatp2pctl reconnect bob && chatp2pctl watch --count 1 peer" },
	{ .name = "log", .usage = "[LEVEL]", .help = "show or set the log level (DEBUG, INFO, WARNING, ERROR)",
	  .options = "  LEVEL               DEBUG, INFO, WARNING or ERROR; none: print it\n",
	  .run = c_log, .example = "chatp2pctl log DEBUG" },
	{ .name = "discover", .usage = "", .help = "ask the rendezvous server who is registered",
	  .run = c_discover },
	{ .name = "register", .usage = "", .help = "register at the rendezvous server now",
	  .run = c_register },
	{ .name = "unregister", .usage = "", .help = "unregister from the rendezvous server",
	  .run = c_unregister },
	{ .name = "watch",
	  .usage = "[--since TIME] [--until TIME] [--after-seq SEQ] [--replay N] [--count N] "
		   "[--exec CMD] [--log-level LEVEL] [CLASS...]",
	  .help = "stream events until interrupted; CLASS: message ack peer registration log all",
	  .options = "  --since TIME        the held events from TIME on first (10m, 2h, today,\n"
		     "                      yesterday, 2026-05-01 12:00; no zone: local time)\n"
		     "  --until TIME        stop at TIME (or show the held events up to it)\n"
		     "  --after-seq SEQ     replay the held events after sequence number SEQ\n"
		     "                      (--since SEQ, a number alone, still means this)\n"
		     "  -r, --replay N      replay the last N stored inbox messages first\n"
		     "  -n, --count N       exit after N events\n"
		     "  --exec CMD          run CMD (a program and its arguments, no shell) for\n"
		     "                      each message instead of printing it; CHATP2P_FROM,\n"
		     "                      _TO, _TYPE, _TEXT, _MSG_ID, _IDENTITY in its environment\n"
		     "  -l, --log-level LVL log lines from LVL up (with CLASS log)\n"
		     "  CLASS...            message ack peer registration log all\n",
	  .run = c_watch, .shortopts = "l:r:n:",
	  .example = "chatp2pctl watch --json --count 1 message | jq -r .text" },
	{ .name = "recv", .usage = "[--from PEER] [-n COUNT] [-t SECONDS]",
	  .help = "wait for the next message(s), print them, exit (4: none within -t)",
	  .options = "  -f, --from PEER     only messages from PEER (an id, or a unique name)\n"
		     "  -n, --count COUNT   how many to wait for (default 1)\n"
		     "  -t SECONDS          give up after SECONDS, exit 4 (default: wait on)\n",
	  .run = c_recv, .shortopts = "f:n:",
	  .example = "chatp2pctl send bob 'ping?' && chatp2pctl recv --from bob -t 60" },
	{ .name = "reload", .usage = "", .help = "re-read the configuration file (as SIGHUP does)",
	  .run = c_reload },
	{ .name = "shutdown", .usage = "[--wait]",
	  .help = "stop the node gracefully (--wait: until it has stopped)",
	  .options = "  -w, --wait          return when the daemon has stopped\n",
	  .run = c_shutdown, .shortopts = "w" },
	{ .name = "shell", .usage = "", .help = "interactive chat shell", .run = shell_cmd,
	  .flags = CMD_NO_SHELL },
	{ .name = "call", .usage = "METHOD [JSON-PARAMS]", .help = "call any control method, print its result",
	  .options = "  METHOD              a control method (chatp2pctl methods lists them)\n"
		     "  JSON-PARAMS         its parameters, one JSON object\n",
	  .run = c_call, .example = "chatp2pctl call peers '{\"filter\":\"#CIC\"}'" },
	{ .name = "wait-ready", .usage = "[--timeout SEC]",
	  .help = "wait until the daemon answers and is registered",
	  .options = "  -t, --timeout SEC   give up after SEC seconds\n",
	  .run = c_wait_ready, .example = "chatp2pctl wait-ready -t 10 && chatp2pctl peers" },
	{ .name = "logs", .usage = "[-f] [-n N]", .help = "the node's own log: from the journal under "
	  "systemd, else from its file",
	  .options = "  -f, --follow        then what is added, until interrupted\n"
		     "  -n, --lines N       the last N lines (default 50)\n",
	  .run = c_logs, .shortopts = "fn:", .example = "chatp2pctl logs -f" },
	{ .name = "version", .usage = "", .help = "the daemon's version and control protocol",
	  .run = c_version },
	{ .name = "help", .usage = "[COMMAND]", .help = "this help, or one command's",
	  .options = "  COMMAND             its usage, options, an example and the exit codes\n",
	  .run = c_help, .example = "chatp2pctl help send" },
	{ .name = "ping", .usage = "PEER [-c N] [-i SECS]",
	  .help = "PING PEER over its connection N times (default 3), print each RTT",
	  .options = "  PEER                an id, or a unique name; it must be connected\n"
		     "  -c, --count N       how many PINGs (default 3)\n"
		     "  -i, --interval SECS between them (default 1)\n",
	  .run = c_ping, .shortopts = "c:i:", .example = "chatp2pctl ping bob -c 1" },
	{ .name = "methods", .usage = "", .help = "the daemon's control methods, one line each",
	  .run = c_methods },
	{ .name = "metrics", .usage = "[--openmetrics]",
	  .help = "counters and gauges in the Prometheus text format (--openmetrics: OpenMetrics 1.0)",
	  .options = "  --openmetrics       OpenMetrics 1.0 text: counter families without _total,\n"
		     "                      ending in # EOF\n",
	  .run = c_metrics, .example = "chatp2pctl metrics > /var/lib/node_exporter/chatp2p.prom" },
	{ .name = "inbox",
	  .usage = "[--unread] [--from PEER] [--since TIME|ID] [--until TIME] [--limit N] [-f] | --delete ID...",
	  .help = "stored messages (the newest N, default 100; * marks unread)",
	  .options = "  -u, --unread        only those not marked read\n"
		     "  --from PEER         only those from PEER (an id, or a unique name)\n"
		     "  --since TIME|ID     after an inbox id, or from a time on (10m, 2h, today,\n"
		     "                      yesterday, 2026-05-01 12:00; no zone: local time)\n"
		     "  --until TIME        up to a time\n"
		     "  -n, --limit N       the newest N (1..10000, default 100)\n"
		     "  -f, --follow        then print new messages as they come, until interrupted\n"
		     "  --delete ID...      delete these messages (exit 1 if one is not there)\n",
	  .run = c_inbox, .shortopts = "ufn:", .example = "chatp2pctl inbox --unread --since today" },
	{ .name = "read", .usage = "ID...|--all|--from PEER", .help = "mark stored messages read",
	  .options = "  ID...               these inbox ids (exit 1 if one is not stored)\n"
		     "  -a, --all           every message\n"
		     "  --from PEER         every unread message from PEER\n",
	  .run = c_read, .shortopts = "a", .example = "chatp2pctl read --from bob" },
	{ .name = "history", .usage = "PEER|'*'|#ns [-n N] [--since TIME] [--until TIME] [-f]",
	  .help = "the conversation with PEER both ways, oldest first (PUBs: '*' or #ns)",
	  .options = "  PEER                an id, or a unique name; '*' or #ns: the PUBs to it\n"
		     "  -n, --lines N       the newest N (default 20)\n"
		     "  --since, --until TIME  within these times (10m, today, 2026-05-01 12:00)\n"
		     "  -f, --follow        then print new messages from PEER as they come\n",
	  .run = c_history, .shortopts = "n:f", .example = "chatp2pctl history bob -n 50" },
	{ .name = "outbox", .usage = "[--cancel MSG_ID]",
	  .help = "queued messages waiting for their peer; cancel one",
	  .options = "  -c, --cancel MSG_ID drop that queued message\n",
	  .run = c_outbox, .shortopts = "c:" },
	{ .name = NULL },
};
