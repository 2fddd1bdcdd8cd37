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

#define MAXLIST 8

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
"              and no pipeline with one SEND per write\n"
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
"                         no_pipeline)\n"
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
"  --json                 JSON instead of a table\n"
"  --verbose              say more on stderr\n"
"  --help\n"
"\n"
"--responder answers HELLO, SEND (ACK) and PING (PONG) as cheaply as possible,\n"
"without a JSON parser: the transport limit of this machine.  It prints\n"
"\"listening on HOST:PORT\" and runs until SIGTERM.\n";

static struct {
	char host[64];
	int port;
	const char *control;
	pid_t pid;
	const char *reference;
	pid_t ref_pid;
	char scen[256];
	const char *modes;
	double duration;
	int repeat;
	int window;
	int conns[MAXLIST], nconns;
	int payload;
	int pub_peers[MAXLIST], npub;
	int pub_reps;
	int idle_conns[MAXLIST], nidle;
	double idle_seconds;
	int ctl_clients, ctl_window;
	char rdv_host[64];
	int rdv_port;
	pid_t rdv_pid;
	int rdv_regs, rdv_discovers, rdv_conc;
	char ns_host[64];
	int ns_port;
	int ns_peers;
	double ns_timeout;
	bool json;
	/* learned */
	char node_id[128];
	char node_ns[80];
	double rtt_p50;        /* pipeline single round trip against the node, s */
} opt;

static struct ev_loop *loop;
static char ref_host[64];
static int ref_port;
static pid_t ref_child;

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

static bool never(void *arg)
{
	return false;
}

static void run_for(double seconds)
{
	lg_wait(loop, never, NULL, seconds);
}

static double cpu_of(pid_t pid)
{
	return lg_proc_cpu(pid);
}

/* CPU µs per message, or NAN when unknown. */
static double cpu_us(double c0, double c1, double msgs)
{
	if (c0 < 0 || c1 < 0 || msgs <= 0)
		return NAN;
	return (c1 - c0) * 1e6 / msgs;
}

/* ---- throughput and round trip ------------------------------------------- */

struct tp_result {
	double per_s, p50, p99, max, cpu;
	int ready;
};

static bool no_inflight(void *arg)
{
	return ((struct lgrun *)arg)->inflight == 0;
}

static struct tp_result run_sends(const char *host, int port, pid_t pid, int conns, int window,
				  bool pipeline, bool batch, double duration, const char *prefix)
{
	struct lgrun r = { .loop = loop, .window = window, .batch = batch,
			   .payload = (size_t)opt.payload, .dst = opt.node_id[0] ? opt.node_id : "bench@BENCH" };
	struct tp_result res = { .per_s = NAN };
	struct lgpeer **ps = lgp_dial_many(&r, host, port, conns, prefix, pipeline, 64, 20);
	double c0, c1, t0, t1;
	uint64_t a1;

	res.ready = r.ready;
	if (r.ready < conns) {
		lg_warn("%s: only %d of %d connections to %s:%d completed the handshake", prefix, r.ready,
			conns, host, port);
		if (r.ready == 0)
			goto out;
	}
	run_for(0.2); /* let the handshake's aftermath (probes, pings) pass */
	c0 = cpu_of(pid);
	t0 = lg_now();
	r.sending = true;
	for (int i = 0; i < conns; i++)
		lgp_fill(ps[i]);
	run_for(duration);
	t1 = lg_now();
	a1 = r.acks;
	c1 = cpu_of(pid);
	r.sending = false;
	lg_wait(loop, no_inflight, &r, 3);
	res.per_s = (double)a1 / (t1 - t0);
	res.p50 = lgs_pct(&r.lat, 50) * 1e3;
	res.p99 = lgs_pct(&r.lat, 99) * 1e3;
	res.max = lgs_max(&r.lat) * 1e3;
	res.cpu = cpu_us(c0, c1, (double)a1);
	if (r.unmatched)
		lg_warn("%s: %llu ACKs matched no SEND of ours", prefix, (unsigned long long)r.unmatched);
out:
	lgp_close_all(ps, conns);
	lgs_free(&r.lat);
	return res;
}

static bool better(const struct tp_result *a, const struct tp_result *b, bool by_rtt)
{
	if (isnan(b->per_s))
		return true;
	if (isnan(a->per_s))
		return false;
	return by_rtt ? a->p50 < b->p50 : a->per_s > b->per_s;
}

/* --repeat runs, the responder's and the node's interleaved so both see the
 * same machine; the best run of each is kept (a shared machine only ever
 * makes figures worse). */
static void run_pair(bool ref, bool node, int conns, int window, bool pipeline, bool batch,
		     bool by_rtt, const char *tag, struct tp_result *rr, struct tp_result *nr)
{
	char prefix[128];

	rr->per_s = nr->per_s = NAN;
	for (int k = 0; k < opt.repeat; k++) {
		struct tp_result x;
		if (ref) {
			snprintf(prefix, sizeof prefix, "lgr%d-%s-%d", (int)getpid(), tag, k);
			x = run_sends(ref_host, ref_port, ref_child ? ref_child : opt.ref_pid, conns, window,
				      pipeline, batch, opt.duration, prefix);
			if (better(&x, rr, by_rtt))
				*rr = x;
		}
		if (node) {
			snprintf(prefix, sizeof prefix, "lgn%d-%s-%d", (int)getpid(), tag, k);
			x = run_sends(opt.host, opt.port, opt.pid, conns, window, pipeline, batch,
				      opt.duration, prefix);
			if (better(&x, nr, by_rtt))
				*nr = x;
		}
	}
}

static void rec_tp(const char *scen, const char *target, int conns, int window, bool pipeline,
		   bool batch, const struct tp_result *x, const struct tp_result *ref)
{
	lg_rec_begin(scen, target);
	lg_rec_str("mode", pipeline ? (batch ? "pipeline_batched" : "pipeline_per_send") : "no_pipeline");
	lg_rec_num("conns", conns, 0);
	lg_rec_num("window", window, 0);
	lg_rec_bool("pipeline", pipeline);
	lg_rec_str("writes", batch ? "batched" : "one_per_send");
	lg_rec_num("acks_per_s", x->per_s, 0);
	lg_rec_num("p50_ms", x->p50, 3);
	lg_rec_num("p99_ms", x->p99, 3);
	lg_rec_num("max_ms", x->max, 3);
	lg_rec_num("cpu_us_per_ack", x->cpu, 2);
	if (ref && ref->per_s > 0)
		lg_rec_num("ratio_to_transport", x->per_s / ref->per_s, 3);
	lg_rec_end();
}

static void scen_throughput(bool ref)
{
	static const struct { const char *name; bool pipeline, batch; } v[] = {
		{ "pipeline_batched", true, true }, { "pipeline_per_send", true, false },
		{ "no_pipeline", false, false } };
	char prefix[64];

	for (int c = 0; c < opt.nconns; c++)
		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
			struct tp_result rr, nr;
			int n = opt.conns[c];
			char modes[300];
			snprintf(modes, sizeof modes, ",%s,", opt.modes);
			snprintf(prefix, sizeof prefix, ",%s,", v[i].name);
			if (strstr(modes, prefix) == NULL)
				continue;
			snprintf(prefix, sizeof prefix, "t%d-%zu", n, i);
			run_pair(ref, opt.port != 0, n, opt.window, v[i].pipeline, v[i].batch, false, prefix,
				 &rr, &nr);
			if (ref)
				rec_tp("throughput", "responder", n, opt.window, v[i].pipeline, v[i].batch, &rr, NULL);
			if (opt.port)
				rec_tp("throughput", "node", n, opt.window, v[i].pipeline, v[i].batch, &nr,
				       ref ? &rr : NULL);
		}
}

static void rec_rtt(const char *target, bool pipeline, const struct tp_result *x, const struct tp_result *ref)
{
	lg_rec_begin("rtt", target);
	lg_rec_bool("pipeline", pipeline);
	lg_rec_num("p50_ms", x->p50, 3);
	lg_rec_num("p99_ms", x->p99, 3);
	lg_rec_num("max_ms", x->max, 3);
	lg_rec_num("per_s", x->per_s, 0);
	lg_rec_num("cpu_us_per_ack", x->cpu, 2);
	if (ref && ref->p50 > 0)
		lg_rec_num("ratio_to_transport", ref->p50 / x->p50, 3); /* > 1: slower than the limit */
	lg_rec_end();
}

static void scen_rtt(bool ref)
{
	char prefix[64];

	for (int pl = 1; pl >= 0; pl--) {
		struct tp_result rr, nr;
		snprintf(prefix, sizeof prefix, "r%d", pl);
		run_pair(ref, opt.port != 0, 1, 1, pl, false, true, prefix, &rr, &nr);
		if (ref)
			rec_rtt("responder", pl, &rr, NULL);
		if (opt.port) {
			rec_rtt("node", pl, &nr, ref ? &rr : NULL);
			if (pl)
				opt.rtt_p50 = nr.p50 / 1e3;
		}
	}
}

/* ---- PUB fan-out ------------------------------------------------------------ */

struct pubctx {
	struct lgrun *r;
	int answered;
	double call_lat;
	long reached;
	int want;
};

static void pub_answer(struct lgctl *c, bool ok, const char *line, size_t len, double lat, void *arg)
{
	struct pubctx *x = arg;

	x->answered++;
	x->call_lat = lat;
	x->reached = ok ? (long)lg_num(line, len, "reached", -1) : -1;
}

static bool pub_done(void *arg)
{
	struct pubctx *x = arg;

	return x->answered > 0 && x->r->pub_got >= x->want;
}

static void scen_pub(void)
{
	for (int s = 0; s < opt.npub; s++) {
		int k = opt.pub_peers[s];
		struct lgrun r = { .loop = loop, .window = 1 };
		char prefix[64], markers[2][64], params[160];
		struct lgsamples lat = { 0 }, call = { 0 };
		struct pubctx x = { .r = &r };
		struct lgpeer **ps;
		struct lgctl *c;
		int missed = 0;
		long reached = -1;
		double c0, c1;

		snprintf(prefix, sizeof prefix, "lgp%d-%d", (int)getpid(), k);
		ps = lgp_dial_many(&r, opt.host, opt.port, k, prefix, true, 64, 60);
		x.want = r.ready;
		if (r.ready < k)
			lg_warn("pub: only %d of %d bench peers connected", r.ready, k);
		c = lgctl_open(loop, opt.control, pub_answer, &x);
		if (c == NULL)
			lg_die("pub: cannot open the control socket %s", opt.control);
		run_for(0.3);
		c0 = cpu_of(opt.pid);
		for (int i = 0; i < opt.pub_reps && !lgctl_failed(c); i++) {
			char *m = markers[i % 2];
			snprintf(m, sizeof markers[0], "lgpub-%d-%d-%d", (int)getpid(), k, i);
			r.pub_marker = m;
			r.pub_got = 0;
			x.answered = 0;
			x.want = r.ready;
			snprintf(params, sizeof params, "{\"to\":\"*\",\"text\":\"%s\"}", m);
			double t0 = lg_now();
			lgctl_request(c, "pub", params);
			if (!lg_wait(loop, pub_done, &x, 10)) {
				missed++;
				continue;
			}
			lgs_add(&lat, r.pub_last - t0);
			lgs_add(&call, x.call_lat);
			reached = x.reached;
		}
		c1 = cpu_of(opt.pid);
		lg_rec_begin("pub", "node");
		lg_rec_num("peers", r.ready, 0);
		lg_rec_num("reps", opt.pub_reps, 0);
		lg_rec_num("reached", (double)reached, 0);
		lg_rec_num("last_p50_ms", lgs_pct(&lat, 50) * 1e3, 3);
		lg_rec_num("last_p99_ms", lgs_pct(&lat, 99) * 1e3, 3);
		lg_rec_num("last_max_ms", lgs_max(&lat) * 1e3, 3);
		lg_rec_num("call_p50_ms", lgs_pct(&call, 50) * 1e3, 3);
		lg_rec_num("incomplete", missed, 0);
		lg_rec_num("cpu_us_per_line", cpu_us(c0, c1, (double)r.ready * (opt.pub_reps - missed)), 2);
		lg_rec_end();
		lgctl_close(c);
		lgp_close_all(ps, k);
		lgs_free(&lat);
		lgs_free(&call);
	}
}

/* ---- idle scale ------------------------------------------------------------- */

static void scen_idle(int n)
{
	int cap = lg_nofile() - 64, theirs = lg_proc_nofile(opt.pid);
	struct lgrun r = { .loop = loop, .window = 1 };

	if (theirs > 0 && theirs - 100 < cap)
		cap = theirs - 100; /* the node's descriptors: it holds the other ends */
	char prefix[64];
	long rss0, rss1;
	double c0, c1;

	if (n > cap) {
		lg_warn("idle: %d connections capped to %d by the descriptor limit", n, cap);
		n = cap;
	}
	rss0 = lg_proc_rss_kb(opt.pid);
	snprintf(prefix, sizeof prefix, "lgi%d", (int)getpid());
	struct lgpeer **ps = lgp_dial_many(&r, opt.host, opt.port, n, prefix, true, 64, 60);
	run_for(1.0); /* handshakes' aftermath: probes, first pings */
	rss1 = lg_proc_rss_kb(opt.pid);
	c0 = cpu_of(opt.pid);
	double t0 = lg_now();
	run_for(opt.idle_seconds);
	c1 = cpu_of(opt.pid);
	double t1 = lg_now();
	lg_rec_begin("idle", "node");
	lg_rec_num("conns", r.ready, 0);
	lg_rec_num("rss_before_kb", (double)rss0, 0);
	lg_rec_num("rss_after_kb", (double)rss1, 0);
	lg_rec_num("kb_per_conn", r.ready > 0 && rss0 > 0 ? (double)(rss1 - rss0) / r.ready : NAN, 2);
	lg_rec_num("idle_cpu_pct", c0 >= 0 && c1 >= 0 ? (c1 - c0) / (t1 - t0) * 100 : NAN, 2);
	lg_rec_num("lost", r.closed, 0);
	lg_rec_end();
	lgp_close_all(ps, n);
}

/* ---- control plane ------------------------------------------------------------ */

struct ctlctx {
	bool sending;
	char params[200];
	int ok, err;
	int ok_in_time;
	struct lgsamples lat;
	int window;
};

static void ctl_answer(struct lgctl *c, bool ok, const char *line, size_t len, double lat, void *arg)
{
	struct ctlctx *x = arg;

	if (ok) {
		x->ok++;
		if (x->sending)
			x->ok_in_time++;
		lgs_add(&x->lat, lat);
	} else {
		x->err++;
		if (lg_verbose && x->err < 5)
			lg_warn("ctl: %.*s", (int)(len > 300 ? 300 : len), line);
	}
	if (x->sending)
		lgctl_request(c, "send", x->params);
}

struct ctlwait {
	struct lgctl **cs;
	int k;
};

static bool ctl_drained(void *arg)
{
	struct ctlwait *w = arg;

	for (int i = 0; i < w->k; i++)
		if (w->cs[i] && lgctl_inflight(w->cs[i]) > 0)
			return false;
	return true;
}

static bool sink_ready(void *arg)
{
	return ((struct lgrun *)arg)->ready > 0 || ((struct lgrun *)arg)->dialling == 0;
}

static void scen_ctl(void)
{
	static const struct { const char *mode; bool pipeline, oneline; } v[] = {
		{ "pipeline", true, false }, { "no_pipeline", false, false }, { "one_line_per_recv", false, true } };

	for (size_t m = 0; m < sizeof v / sizeof v[0]; m++) {
		struct lgrun r = { .loop = loop, .window = 1 };
		struct ctlctx x = { .window = opt.ctl_window };
		struct lgctl *cs[64] = { 0 };
		struct ctlwait w = { cs, opt.ctl_clients > 64 ? 64 : opt.ctl_clients };
		char name[96];
		struct lgpeer_opts o = { .name = name, .pipeline = v[m].pipeline, .oneline = v[m].oneline };
		struct lgpeer *sink;
		double c0, c1, t0, t1;
		int ok_in_time;

		snprintf(name, sizeof name, "lgsink%d-%s@BENCH", (int)getpid(), v[m].mode);
		sink = lgp_dial(&r, opt.host, opt.port, &o);
		if (sink == NULL || !lg_wait(loop, sink_ready, &r, 10) || r.ready == 0) {
			lg_warn("ctl: the sink peer could not connect");
			lgp_close(sink);
			continue;
		}
		run_for(0.3); /* a probe of the node's, if any, is answered */
		snprintf(x.params, sizeof x.params, "{\"to\":\"%s\",\"text\":\"lg\"}", name);
		for (int i = 0; i < w.k; i++)
			cs[i] = lgctl_open(loop, opt.control, ctl_answer, &x);
		c0 = cpu_of(opt.pid);
		t0 = lg_now();
		x.sending = true;
		for (int i = 0; i < w.k; i++)
			for (int j = 0; cs[i] && j < opt.ctl_window; j++)
				lgctl_request(cs[i], "send", x.params);
		run_for(opt.duration);
		x.sending = false;
		t1 = lg_now();
		c1 = cpu_of(opt.pid);
		ok_in_time = x.ok_in_time;
		lg_wait(loop, ctl_drained, &w, 15);
		lg_rec_begin("ctl", "node");
		lg_rec_str("sink", v[m].mode);
		lg_rec_num("controllers", w.k, 0);
		lg_rec_num("window", opt.ctl_window, 0);
		lg_rec_num("acked_per_s", ok_in_time / (t1 - t0), 0);
		lg_rec_num("p50_ms", lgs_pct(&x.lat, 50) * 1e3, 3);
		lg_rec_num("p99_ms", lgs_pct(&x.lat, 99) * 1e3, 3);
		lg_rec_num("acked", x.ok, 0);
		lg_rec_num("failed", x.err, 0);
		lg_rec_num("unanswered", ctl_drained(&w) ? 0 : 1, 0);
		lg_rec_num("sink_sends", (double)r.sink_sends, 0);
		lg_rec_num("cpu_us_per_send", cpu_us(c0, c1, ok_in_time), 2);
		if (opt.rtt_p50 > 0 && !v[m].pipeline) /* stop-and-wait: 1/RTT is its ceiling */
			lg_rec_num("ratio_to_1_rtt", ok_in_time / (t1 - t0) * opt.rtt_p50, 3);
		lg_rec_end();
		for (int i = 0; i < w.k; i++)
			lgctl_close(cs[i]);
		lgp_close(sink);
		lgs_free(&x.lat);
	}
}

/* ---- rendezvous server ---------------------------------------------------------- */

static char rdv_ns[64];

static void req_register(int i, char *line, size_t len, void *arg)
{
	snprintf(line, len, "{\"type\":\"REGISTER\",\"namespace\":\"%s\",\"name\":\"lg%d\",\"port\":%d,\"ttl\":600}",
		 rdv_ns, i, 10000 + i % 50000);
}

static void req_discover(int i, char *line, size_t len, void *arg)
{
	snprintf(line, len, "{\"type\":\"DISCOVER\",\"namespace\":\"%s\"}", rdv_ns);
}

static void req_unregister(int i, char *line, size_t len, void *arg)
{
	snprintf(line, len, "{\"type\":\"UNREGISTER\",\"namespace\":\"%s\"}", rdv_ns);
}

static void rec_rdv(const char *what, struct lgrdv_stats *st, double c0, double c1)
{
	lg_rec_begin("rdv", what);
	lg_rec_num("ok", st->ok, 0);
	lg_rec_num("failed", st->failed, 0);
	lg_rec_num("conc", opt.rdv_conc, 0);
	lg_rec_num("per_s", st->ok / st->seconds, 0);
	lg_rec_num("p50_ms", lgs_pct(&st->lat, 50) * 1e3, 3);
	lg_rec_num("p99_ms", lgs_pct(&st->lat, 99) * 1e3, 3);
	lg_rec_num("max_ms", lgs_max(&st->lat) * 1e3, 3);
	if (st->entries >= 0)
		lg_rec_num("entries", (double)st->entries, 0);
	if (st->ok > 0)
		lg_rec_num("reply_bytes", (double)st->bytes / st->ok, 0);
	lg_rec_num("server_cpu_us_per_req", cpu_us(c0, c1, st->ok), 1);
	lg_rec_end();
}

static void scen_rdv(void)
{
	struct lgrdv_stats st = { 0 };
	double c0, c1;

	snprintf(rdv_ns, sizeof rdv_ns, "LGRDV%d", (int)getpid());
	c0 = cpu_of(opt.rdv_pid);
	lg_rdv_batch(loop, opt.rdv_host, opt.rdv_port, opt.rdv_regs, opt.rdv_conc, req_register, NULL, &st, 120);
	c1 = cpu_of(opt.rdv_pid);
	rec_rdv("register", &st, c0, c1);
	c0 = cpu_of(opt.rdv_pid);
	lg_rdv_batch(loop, opt.rdv_host, opt.rdv_port, opt.rdv_discovers, opt.rdv_conc, req_discover, NULL, &st, 120);
	c1 = cpu_of(opt.rdv_pid);
	rec_rdv("discover", &st, c0, c1);
	lg_rdv_batch(loop, opt.rdv_host, opt.rdv_port, 1, 1, req_unregister, NULL, &st, 30);
	lgs_free(&st.lat);
}

/* ---- a namespace of N registered peers -------------------------------------------- */

struct nsctx {
	struct lgrun r;
	ev_io *lis;
	int *ports;
	int n;
	struct lgpeer **acc;
	int nacc, capacc;
	bool answered, ok;
	long discovered;
	double answer_lat, cpu0, cpu_answer;
	double t_all;
};

static struct nsctx ns;

static void ns_accept(struct ev_loop *l, ev_io *w, int revents)
{
	int i = (int)(w - ns.lis);
	char name[96];
	struct lgpeer_opts o = { .name = name, .pipeline = false };

	for (;;) {
		int fd = accept(w->fd, NULL, NULL);
		if (fd < 0)
			return;
		if (ns.nacc == ns.capacc) {
			ns.capacc = ns.capacc ? ns.capacc * 2 : 1024;
			ns.acc = realloc(ns.acc, (size_t)ns.capacc * sizeof *ns.acc);
			if (ns.acc == NULL)
				lg_die("out of memory");
		}
		snprintf(name, sizeof name, "lgns%d-%d@%s", (int)getpid(), i, opt.node_ns);
		ns.acc[ns.nacc++] = lgp_accept(&ns.r, fd, &o, i);
	}
}

static void req_ns_register(int i, char *line, size_t len, void *arg)
{
	snprintf(line, len, "{\"type\":\"REGISTER\",\"namespace\":\"%s\",\"name\":\"lgns%d-%d\",\"port\":%d,\"ttl\":600}",
		 opt.node_ns, (int)getpid(), i, ns.ports[i]);
}

static void req_ns_unregister(int i, char *line, size_t len, void *arg)
{
	snprintf(line, len, "{\"type\":\"UNREGISTER\",\"namespace\":\"%s\"}", opt.node_ns);
}

static void ns_answer(struct lgctl *c, bool ok, const char *line, size_t len, double lat, void *arg)
{
	char pat[40];

	snprintf(pat, sizeof pat, "\"lgns%d-", (int)getpid());
	ns.answered = true;
	ns.ok = ok;
	ns.answer_lat = lat;
	ns.cpu_answer = cpu_of(opt.pid);
	ns.discovered = ok ? (long)lg_count(line, len, pat) : 0;
	if (!ok)
		lg_warn("ns: the node's discover failed: %.*s", (int)(len > 300 ? 300 : len), line);
}

static bool ns_connected(void *arg)
{
	if (ns.r.ready >= ns.n && ns.t_all == 0)
		ns.t_all = lg_now();
	return ns.r.ready >= ns.n || (ns.answered && !ns.ok);
}

static void scen_ns(void)
{
	struct lgrdv_stats st = { 0 };
	int n = opt.ns_peers, cap = (lg_nofile() - 64) / 2, theirs = lg_proc_nofile(opt.pid);
	struct lgctl *c;
	double t0;
	long rss0 = lg_proc_rss_kb(opt.pid);

	if (theirs > 0 && theirs - 100 < cap)
		cap = theirs - 100;
	if (n > cap) {
		lg_warn("ns: %d peers capped to %d by the descriptor limit", n, cap);
		n = cap;
	}
	memset(&ns, 0, sizeof ns);
	ns.r.loop = loop;
	ns.r.window = 1;
	ns.n = n;
	ns.lis = calloc((size_t)n, sizeof *ns.lis);
	ns.ports = calloc((size_t)n, sizeof *ns.ports);
	if (ns.lis == NULL || ns.ports == NULL)
		lg_die("out of memory");
	for (int i = 0; i < n; i++) {
		int fd = lg_listen("127.0.0.1", 0, &ns.ports[i]);
		if (fd < 0)
			lg_die("ns: listen: %s", strerror(errno));
		ev_io_init(&ns.lis[i], ns_accept, fd, EV_READ);
		ev_io_start(loop, &ns.lis[i]);
	}
	lg_rdv_batch(loop, opt.ns_host, opt.ns_port, n, 8, req_ns_register, NULL, &st, 60);
	if (st.ok < n)
		lg_warn("ns: only %d of %d registrations succeeded", st.ok, n);
	c = lgctl_open(loop, opt.control, ns_answer, NULL);
	if (c == NULL)
		lg_die("ns: cannot open the control socket");
	t0 = lg_now();
	ns.cpu0 = cpu_of(opt.pid);
	lgctl_request(c, "discover", NULL);
	lg_wait(loop, ns_connected, NULL, opt.ns_timeout);
	double t1 = lg_now();
	if (ns.answered && !ns.ok)
		run_for(3); /* connections it may still make from an older list */
	lg_rec_begin("ns", "node");
	lg_rec_num("registered", st.ok, 0);
	lg_rec_num("discovered", ns.answered ? (double)ns.discovered : NAN, 0);
	lg_rec_num("discover_ms", ns.answered ? ns.answer_lat * 1e3 : NAN, 2);
	lg_rec_num("discover_cpu_ms", ns.answered && ns.cpu0 >= 0 ? (ns.cpu_answer - ns.cpu0) * 1e3 : NAN, 0);
	lg_rec_num("connected", ns.r.ready, 0);
	lg_rec_num("all_connected_s", ns.t_all > 0 ? ns.t_all - t0 : NAN, 2);
	lg_rec_num("waited_s", t1 - t0, 2);
	lg_rec_num("rss_growth_kb", (double)(lg_proc_rss_kb(opt.pid) - rss0), 0);
	lg_rec_end();
	lgctl_close(c);
	lg_rdv_batch(loop, opt.ns_host, opt.ns_port, 1, 1, req_ns_unregister, NULL, &st, 30);
	for (int i = 0; i < ns.nacc; i++)
		lgp_close(ns.acc[i]);
	for (int i = 0; i < n; i++) {
		ev_io_stop(loop, &ns.lis[i]);
		close(ns.lis[i].fd);
	}
	free(ns.acc);
	free(ns.lis);
	free(ns.ports);
	lgs_free(&st.lat);
}

/* ---- the transport reference ------------------------------------------------------- */

static void spawn_responder(void)
{
	int fd = lg_listen("127.0.0.1", 0, &ref_port);
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
	ref_child = pid;
	snprintf(ref_host, sizeof ref_host, "127.0.0.1");
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
	       O_RESP, O_LISTEN, O_PORT, O_MODES, O_REPEAT };
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
		{ 0 } };
	bool responder = false;
	const char *listen_host = "127.0.0.1";
	int listen_port = 0, c;

	opt.reference = "spawn";
	opt.modes = "pipeline_batched,pipeline_per_send,no_pipeline";
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
	else if (ref && lg_parse_hostport(opt.reference, ref_host, sizeof ref_host, &ref_port) != 0)
		lg_die("--reference: spawn, none or HOST:PORT");
	if ((want("throughput") || want("rtt")) && !opt.port && !ref)
		lg_die("throughput and rtt need --target or --reference");

	loop = ev_default_loop(EVFLAG_AUTO);
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
	if (ref_child > 0) {
		kill(ref_child, SIGTERM);
		waitpid(ref_child, NULL, 0);
	}
	ev_loop_destroy(loop);
	return 0;
}
