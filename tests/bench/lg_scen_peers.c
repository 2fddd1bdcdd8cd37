/* Load generator scenarios: PUB fan-out to many connected bench peers, and
 * the node's cost of many idle connections. */
#include "lg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void scen_pub(void)
{
	for (int s = 0; s < opt.npub; s++) {
		int k = opt.pub_peers[s];
		struct lgrun r = { .loop = lg_loop, .window = 1 };
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
		c = lgctl_open(lg_loop, opt.control, pub_answer, &x);
		if (c == NULL)
			lg_die("pub: cannot open the control socket %s", opt.control);
		lg_run_for(0.3);
		c0 = lg_cpu_of(opt.pid);
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
			if (!lg_wait(lg_loop, pub_done, &x, 10)) {
				missed++;
				continue;
			}
			lgs_add(&lat, r.pub_last - t0);
			lgs_add(&call, x.call_lat);
			reached = x.reached;
		}
		c1 = lg_cpu_of(opt.pid);
		lg_rec_begin("pub", "node");
		lg_rec_num("peers", r.ready, 0);
		lg_rec_num("reps", opt.pub_reps, 0);
		lg_rec_num("reached", (double)reached, 0);
		lg_rec_num("last_p50_ms", lgs_pct(&lat, 50) * 1e3, 3);
		lg_rec_num("last_p99_ms", lgs_pct(&lat, 99) * 1e3, 3);
		lg_rec_num("last_max_ms", lgs_max(&lat) * 1e3, 3);
		lg_rec_num("call_p50_ms", lgs_pct(&call, 50) * 1e3, 3);
		lg_rec_num("incomplete", missed, 0);
		lg_rec_num("cpu_us_per_line", lg_cpu_us(c0, c1, (double)r.ready * (opt.pub_reps - missed)), 2);
		lg_rec_end();
		lgctl_close(c);
		lgp_close_all(ps, k);
		lgs_free(&lat);
		lgs_free(&call);
	}
}

/* ---- idle scale ------------------------------------------------------------- */

void scen_idle(int n)
{
	int cap = lg_nofile() - 64, theirs = lg_proc_nofile(opt.pid);
	struct lgrun r = { .loop = lg_loop, .window = 1, .tls = opt.tls };

	if (theirs > 0 && theirs - 100 < cap)
		cap = theirs - 100; /* the node's descriptors: it holds the other ends */
	char prefix[64];
	long rss0, rss1;
	double c0, c1, cd0, cd1;

	if (n > cap) {
		lg_warn("idle: %d connections capped to %d by the descriptor limit", n, cap);
		n = cap;
	}
	rss0 = lg_proc_rss_kb(opt.pid);
	snprintf(prefix, sizeof prefix, "lgi%d", (int)getpid());
	cd0 = lg_cpu_of(opt.pid);
	struct lgpeer **ps = lgp_dial_many(&r, opt.host, opt.port, n, prefix, true, 64, 60);
	lg_run_for(1.0); /* handshakes' aftermath: probes, first pings */
	cd1 = lg_cpu_of(opt.pid);
	rss1 = lg_proc_rss_kb(opt.pid);
	c0 = lg_cpu_of(opt.pid);
	double t0 = lg_now();
	lg_run_for(opt.idle_seconds);
	c1 = lg_cpu_of(opt.pid);
	double t1 = lg_now();
	lg_rec_begin("idle", "node");
	lg_rec_num("conns", r.ready, 0);
	lg_rec_num("rss_before_kb", (double)rss0, 0);
	lg_rec_num("rss_after_kb", (double)rss1, 0);
	lg_rec_num("kb_per_conn", r.ready > 0 && rss0 > 0 ? (double)(rss1 - rss0) / r.ready : NAN, 2);
	lg_rec_num("idle_cpu_pct", c0 >= 0 && c1 >= 0 ? (c1 - c0) / (t1 - t0) * 100 : NAN, 2);
	lg_rec_num("lost", r.closed, 0);
	/* The node's CPU from the first connect until a second after the last
	 * handshake, per connection: TCP accept, HELLO, session, and with --tls
	 * the TLS handshake as server (and the peer's pin). */
	lg_rec_num("cpu_ms_per_conn", cd0 >= 0 && cd1 >= 0 && r.ready > 0 ? (cd1 - cd0) * 1e3 / r.ready : NAN, 3);
	lg_rec_bool("tls", opt.tls);
	if (opt.tls)
		lg_rec_num("secured", r.secured, 0);
	lg_rec_end();
	lgp_close_all(ps, n);
}
