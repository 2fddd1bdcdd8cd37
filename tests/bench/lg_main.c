/* chatp2p-loadgen: many peers of the chat network's peer protocol at once,
 * against any address (our node or any other implementation), plus the
 * node's control plane and a rendezvous server.  See --help. */
#include "lg.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
"usage: chatp2p-loadgen [options]            load a node (or any peer)\n"
"       chatp2p-loadgen --responder [--listen HOST] [--port P]\n"
"\n"
"Plays many peers of the chat peer protocol at once and prints what it\n"
"measured: a table, or JSON with --json.  Every scenario is bounded in\n"
"count and time.  Node CPU time per message is read from /proc/PID/stat.\n"
"\n"
"Where:\n"
"  --target HOST:PORT     the peer address to load (our node or another)\n"
"  --control PATH         the node's control socket (pub, ctl, ns; and its pid)\n"
"  --pid PID              the node's pid (default: from the control `status`)\n"
"  --reference X          the transport limit for throughput/rtt: `spawn` (default:\n"
"                         fork a --responder), HOST:PORT of one, or `none`\n"
"  --reference-pid PID    the pid of an external responder (for its CPU)\n"
"\n"
"Scenarios (--scenarios LIST, comma-separated; default: those the options allow):\n"
"  throughput  SEND/ACK with a window, over each --conns count; advertising\n"
"              pipeline with batched writes, pipeline with one SEND per write,\n"
"              no pipeline with one SEND per write, and one SEND in flight per\n"
"              connection (each segment the target reads holds one SEND)\n"
"  rtt         single-message round trip (window 1), with and without pipeline\n"
"  pub         PUB fan-out to each --pub-peers count of connected bench peers,\n"
"              triggered by `pub` on the control socket; time until the last has it\n"
"  idle        --idle-conns idle connections: node RSS per connection, idle CPU\n"
"  ctl         --ctl-clients controllers issuing `send` to a bench peer that\n"
"              advertises pipeline, one that does not, and one that reads only\n"
"              the first line of each recv()\n"
"  rdv         REGISTER/s, DISCOVER/s and DISCOVER latency at --rdv-regs\n"
"              registrations on the rendezvous server --rdv\n"
"  ns          --ns-peers bench peers registered at --ns-rdv (the node's own\n"
"              server) in the node's namespace; the node's `discover` must find\n"
"              and connect to all of them\n"
"\n"
"Knobs:\n"
"  --duration S           seconds per throughput/rtt/ctl measurement (2)\n"
"  --repeat N             throughput/rtt runs per figure, the best kept (1)\n"
"  --window W             SENDs in flight per connection (64)\n"
"  --conns LIST           connection counts for throughput (1,64)\n"
"  --modes LIST           throughput variants (pipeline_batched,pipeline_per_send,\n"
"                         no_pipeline,one_in_flight: window 1, one SEND per segment)\n"
"  --payload N            SEND payload bytes (16)\n"
"  --pub-peers LIST       fan-out sizes (100,1000)\n"
"  --pub-reps N           PUBs per size (20)\n"
"  --idle-conns LIST      (1000; each capped by the descriptor limit)\n"
"  --idle-seconds S       idle CPU sampling time (3)\n"
"  --ctl-clients K        controllers (8)\n"
"  --ctl-window W         `send` requests in flight per controller (25)\n"
"  --rdv HOST:PORT        rendezvous server for `rdv`;  --rdv-pid PID its pid\n"
"  --rdv-regs N           registrations (10000)\n"
"  --rdv-discovers N      DISCOVERs (20)\n"
"  --rdv-conc C           requests at once (1: sequential)\n"
"  --ns-rdv HOST:PORT     the node's rendezvous server, for `ns`\n"
"  --ns-peers N           (1000);  --ns-timeout S  (60)\n"
"  --tls                  bench peers speak TLS as chatp2p nodes do (throughput,\n"
"                         idle, ns): dialling, they offer \"tls\" and start TLS on a\n"
"                         HELLO_OK with \"starttls\"; accepting (ns), they answer a\n"
"                         \"tls\" offer with \"starttls\" and serve TLS.  All share one\n"
"                         Ed25519 key (made in a temporary directory, then removed).\n"
"                         throughput then runs each load in plaintext and in TLS\n"
"                         against the node, interleaved (ratio_to_plain); idle and\n"
"                         ns give node CPU per TLS connection (server / client side)\n"
"  --tls-key DIR          load (or make) the bench peers' key in DIR instead\n"
"  --json                 JSON instead of a table\n"
"  --verbose              say more on stderr\n"
"  --help\n"
"\n"
"--responder answers HELLO, SEND (ACK) and PING (PONG) as cheaply as possible,\n"
"without a JSON parser: the transport limit of this machine.  It prints\n"
"\"listening on HOST:PORT\" and runs until SIGTERM.\n";

struct lgopts opt;
struct ev_loop *lg_loop;
char lg_ref_host[64];
int lg_ref_port;
pid_t lg_ref_child;

static bool want(const char *s)
{
	char list[300];

	snprintf(list, sizeof list, ",%s,", opt.scen);
	char pat[40];
	snprintf(pat, sizeof pat, ",%s,", s);
	return strstr(list, pat) != NULL;
}

static int parse_list(const char *s, int *out)
{
	int n = 0;
	char *end;

	while (*s && n < MAXLIST) {
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > 1000000)
			lg_die("bad number list: %s", s);
		out[n++] = (int)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			lg_die("bad number list");
	}
	return n;
}

bool lg_never(void *arg)
{
	return false;
}

void lg_run_for(double seconds)
{
	lg_wait(lg_loop, lg_never, NULL, seconds);
}

double lg_cpu_of(pid_t pid)
{
	return lg_proc_cpu(pid);
}

/* CPU µs per message, or NAN when unknown. */
double lg_cpu_us(double c0, double c1, double msgs)
{
	if (c0 < 0 || c1 < 0 || msgs <= 0)
		return NAN;
	return (c1 - c0) * 1e6 / msgs;
}

/* ---- the transport reference ------------------------------------------------------- */

static void spawn_responder(void)
{
	int fd = lg_listen("127.0.0.1", 0, &lg_ref_port);
	pid_t pid;

	if (fd < 0)
		lg_die("responder: listen: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		lg_die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		lg_responder_run(fd, "responder@BENCH");
		_exit(0);
	}
	close(fd);
	lg_ref_child = pid;
	snprintf(lg_ref_host, sizeof lg_ref_host, "127.0.0.1");
}

static int responder_main(const char *host, int port)
{
	int bound, fd = lg_listen(host, port, &bound);

	if (fd < 0)
		lg_die("%s:%d: %s", host, port, strerror(errno));
	printf("listening on %s:%d\n", host, bound);
	fflush(stdout);
	return lg_responder_run(fd, "responder@BENCH");
}

/* ---- main ---------------------------------------------------------------------------- */

static void learn_node(void)
{
	char out[8192];

	if (opt.control == NULL)
		return;
	if (lgctl_call(opt.control, "status", NULL, out, sizeof out, 5) != 0)
		lg_die("%s: no answer to `status`", opt.control);
	if (opt.pid == 0)
		opt.pid = (pid_t)lg_num(out, strlen(out), "pid", 0);
	const char *v;
	int n = lg_field(out, strlen(out), "peer_id", &v);
	if (n > 0 && (size_t)n < sizeof opt.node_id)
		snprintf(opt.node_id, sizeof opt.node_id, "%.*s", n, v);
	n = lg_field(out, strlen(out), "namespace", &v);
	if (n > 0 && (size_t)n < sizeof opt.node_ns)
		snprintf(opt.node_ns, sizeof opt.node_ns, "%.*s", n, v);
}

int main(int argc, char **argv)
{
	enum { O_TARGET = 256, O_CONTROL, O_PID, O_REF, O_REFPID, O_SCEN, O_DUR, O_WIN, O_CONNS,
	       O_PAYLOAD, O_PUBP, O_PUBR, O_IDLEC, O_IDLES, O_CTLC, O_CTLW, O_RDV, O_RDVPID, O_RDVREGS,
	       O_RDVDISC, O_RDVCONC, O_NSRDV, O_NSPEERS, O_NSTIME, O_JSON, O_VERBOSE, O_HELP,
	       O_RESP, O_LISTEN, O_PORT, O_MODES, O_REPEAT, O_TLS, O_TLSKEY };
	static const struct option lo[] = {
		{ "target", 1, NULL, O_TARGET }, { "control", 1, NULL, O_CONTROL },
		{ "pid", 1, NULL, O_PID }, { "reference", 1, NULL, O_REF },
		{ "reference-pid", 1, NULL, O_REFPID }, { "scenarios", 1, NULL, O_SCEN },
		{ "duration", 1, NULL, O_DUR }, { "window", 1, NULL, O_WIN },
		{ "conns", 1, NULL, O_CONNS }, { "payload", 1, NULL, O_PAYLOAD },
		{ "pub-peers", 1, NULL, O_PUBP }, { "pub-reps", 1, NULL, O_PUBR },
		{ "idle-conns", 1, NULL, O_IDLEC }, { "idle-seconds", 1, NULL, O_IDLES },
		{ "ctl-clients", 1, NULL, O_CTLC }, { "ctl-window", 1, NULL, O_CTLW },
		{ "rdv", 1, NULL, O_RDV }, { "rdv-pid", 1, NULL, O_RDVPID },
		{ "rdv-regs", 1, NULL, O_RDVREGS }, { "rdv-discovers", 1, NULL, O_RDVDISC },
		{ "rdv-conc", 1, NULL, O_RDVCONC }, { "ns-rdv", 1, NULL, O_NSRDV },
		{ "ns-peers", 1, NULL, O_NSPEERS }, { "ns-timeout", 1, NULL, O_NSTIME },
		{ "json", 0, NULL, O_JSON }, { "verbose", 0, NULL, O_VERBOSE }, { "help", 0, NULL, O_HELP },
		{ "modes", 1, NULL, O_MODES }, { "repeat", 1, NULL, O_REPEAT }, { "responder", 0, NULL, O_RESP }, { "listen", 1, NULL, O_LISTEN }, { "port", 1, NULL, O_PORT },
		{ "tls", 0, NULL, O_TLS }, { "tls-key", 1, NULL, O_TLSKEY },
		{ 0 } };
	bool responder = false;
	const char *listen_host = "127.0.0.1";
	int listen_port = 0, c;

	opt.reference = "spawn";
	opt.modes = "pipeline_batched,pipeline_per_send,no_pipeline,one_in_flight";
	opt.duration = 2;
	opt.repeat = 1;
	opt.window = 64;
	opt.nconns = parse_list("1,64", opt.conns);
	opt.payload = 16;
	opt.npub = parse_list("100,1000", opt.pub_peers);
	opt.pub_reps = 20;
	opt.nidle = parse_list("1000", opt.idle_conns);
	opt.idle_seconds = 3;
	opt.ctl_clients = 8;
	opt.ctl_window = 25;
	opt.rdv_regs = 10000;
	opt.rdv_discovers = 20;
	opt.rdv_conc = 1;
	opt.ns_peers = 1000;
	opt.ns_timeout = 60;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_TARGET:
			if (lg_parse_hostport(optarg, opt.host, sizeof opt.host, &opt.port) != 0)
				lg_die("--target: HOST:PORT expected");
			break;
		case O_CONTROL: opt.control = optarg; break;
		case O_PID: opt.pid = atoi(optarg); break;
		case O_REF: opt.reference = optarg; break;
		case O_REFPID: opt.ref_pid = atoi(optarg); break;
		case O_SCEN: snprintf(opt.scen, sizeof opt.scen, "%s", optarg); break;
		case O_DUR: opt.duration = atof(optarg); break;
		case O_WIN: opt.window = atoi(optarg); break;
		case O_CONNS: opt.nconns = parse_list(optarg, opt.conns); break;
		case O_PAYLOAD: opt.payload = atoi(optarg); break;
		case O_PUBP: opt.npub = parse_list(optarg, opt.pub_peers); break;
		case O_PUBR: opt.pub_reps = atoi(optarg); break;
		case O_IDLEC: opt.nidle = parse_list(optarg, opt.idle_conns); break;
		case O_IDLES: opt.idle_seconds = atof(optarg); break;
		case O_CTLC: opt.ctl_clients = atoi(optarg); break;
		case O_CTLW: opt.ctl_window = atoi(optarg); break;
		case O_RDV:
			if (lg_parse_hostport(optarg, opt.rdv_host, sizeof opt.rdv_host, &opt.rdv_port) != 0)
				lg_die("--rdv: HOST:PORT expected");
			break;
		case O_RDVPID: opt.rdv_pid = atoi(optarg); break;
		case O_RDVREGS: opt.rdv_regs = atoi(optarg); break;
		case O_RDVDISC: opt.rdv_discovers = atoi(optarg); break;
		case O_RDVCONC: opt.rdv_conc = atoi(optarg); break;
		case O_NSRDV:
			if (lg_parse_hostport(optarg, opt.ns_host, sizeof opt.ns_host, &opt.ns_port) != 0)
				lg_die("--ns-rdv: HOST:PORT expected");
			break;
		case O_NSPEERS: opt.ns_peers = atoi(optarg); break;
		case O_NSTIME: opt.ns_timeout = atof(optarg); break;
		case O_JSON: opt.json = true; break;
		case O_TLS: opt.tls = true; break;
		case O_TLSKEY: opt.tls_key_dir = optarg; opt.tls = true; break;
		case O_VERBOSE: lg_verbose = true; break;
		case O_MODES: opt.modes = optarg; break;
		case O_REPEAT: opt.repeat = atoi(optarg); break;
		case O_RESP: responder = true; break;
		case O_LISTEN: listen_host = optarg; break;
		case O_PORT: listen_port = atoi(optarg); break;
		case 'h':
		case O_HELP: fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc)
		lg_die("unexpected argument: %s (see --help)", argv[optind]);
	if (opt.duration <= 0 || opt.duration > 600 || opt.repeat < 1 || opt.repeat > 100 || opt.window < 1 || opt.window > 100000 ||
	    opt.payload < 0 || opt.payload > 4000 || opt.pub_reps < 1 || opt.pub_reps > 100000 ||
	    opt.idle_seconds <= 0 || opt.idle_seconds > 600 ||
	    opt.ctl_clients < 1 || opt.ctl_clients > 64 || opt.ctl_window < 1 || opt.ctl_window > 10000 ||
	    opt.rdv_regs < 1 || opt.rdv_regs > 1000000 || opt.rdv_discovers < 1 || opt.rdv_conc < 1 ||
	    opt.rdv_conc > 1000 || opt.ns_peers < 1 || opt.ns_timeout <= 0 || opt.ns_timeout > 3600)
		lg_die("an option is out of range (see --help)");
	lg_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (responder)
		return responder_main(listen_host, listen_port);

	if (opt.scen[0] == '\0') {
		snprintf(opt.scen, sizeof opt.scen, "%s%s%s%s",
			 opt.port ? "throughput,rtt," : "",
			 opt.port && opt.control ? "pub,idle,ctl," : "",
			 opt.rdv_port ? "rdv," : "",
			 opt.ns_port && opt.control ? "ns," : "");
	}
	if ((want("pub") || want("idle") || want("ctl") || want("ns")) && (!opt.port || !opt.control))
		lg_die("pub, idle, ctl and ns need --target and --control");
	if (want("rdv") && !opt.rdv_port)
		lg_die("rdv needs --rdv");
	if (want("ns") && !opt.ns_port)
		lg_die("ns needs --ns-rdv");
	bool ref = (want("throughput") || want("rtt")) && strcmp(opt.reference, "none") != 0;
	if (ref && strcmp(opt.reference, "spawn") == 0)
		spawn_responder(); /* before the loop exists: the child makes its own */
	else if (ref && lg_parse_hostport(opt.reference, lg_ref_host, sizeof lg_ref_host, &lg_ref_port) != 0)
		lg_die("--reference: spawn, none or HOST:PORT");
	if ((want("throughput") || want("rtt")) && !opt.port && !ref)
		lg_die("throughput and rtt need --target or --reference");

	if (opt.tls)
		lg_tls_setup(opt.tls_key_dir);
	lg_loop = ev_default_loop(EVFLAG_AUTO);
	learn_node();
	if (opt.port && opt.pid == 0)
		lg_warn("the node's pid is unknown (--pid or --control): no CPU figures");
	for (int i = 0; want("idle") && i < opt.nidle; i++)
		scen_idle(opt.idle_conns[i]); /* first: the node's heap is still what idle costs */
	if (want("rtt"))
		scen_rtt(ref);
	if (want("throughput"))
		scen_throughput(ref);
	if (want("pub"))
		scen_pub();
	if (want("ctl"))
		scen_ctl();
	if (want("rdv"))
		scen_rdv();
	if (want("ns"))
		scen_ns(); /* last: the node now knows N more peers */

	lg_rec_print(opt.json, stdout);
	lg_rec_free();
	if (lg_ref_child > 0) {
		kill(lg_ref_child, SIGTERM);
		waitpid(lg_ref_child, NULL, 0);
	}
	ev_loop_destroy(lg_loop);
	if (opt.tls)
		lg_tls_teardown();
	return 0;
}
