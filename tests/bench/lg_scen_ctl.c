/* Load generator scenario: K controllers issuing `send` to a bench peer of
 * each kind (pipeline, plain, one line per recv()). */
#include "lg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The RTT the sink's stop-and-wait is held to: measured while the sends
 * run, by a second bench peer that writes one SEND every PROBE_EVERY and
 * times its ACK (the same node, loop and machine load; too rare to load
 * either). */
#define PROBE_EVERY 0.002

struct probe {
	ev_timer t;
	struct lgrun r;
	struct lgpeer *p;
};

static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct probe *pr = w->data;

	if (pr->r.inflight > 0)
		return;
	pr->r.sending = true; /* one SEND, no refill when its ACK comes */
	lgp_fill(pr->p);
	pr->r.sending = false;
}

static bool probe_ready(void *arg)
{
	return ((struct lgrun *)arg)->dialling == 0;
}

void scen_ctl(void)
{
	static const struct { const char *mode; bool pipeline, oneline; } v[] = {
		{ "pipeline", true, false }, { "no_pipeline", false, false }, { "one_line_per_recv", false, true } };

	for (size_t m = 0; m < sizeof v / sizeof v[0]; m++) {
		struct lgrun r = { .loop = lg_loop, .window = 1 };
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
		if (sink == NULL || !lg_wait(lg_loop, sink_ready, &r, 10) || r.ready == 0) {
			lg_warn("ctl: the sink peer could not connect");
			lgp_close(sink);
			continue;
		}
		struct probe pr = { .r = { .loop = lg_loop, .window = 1,
					     .dst = opt.node_id[0] ? opt.node_id : "bench@BENCH" } };
		char pname[96];
		struct lgpeer_opts po = { .name = pname, .pipeline = true };
		snprintf(pname, sizeof pname, "lgprobe%d-%s@BENCH", (int)getpid(), v[m].mode);
		pr.p = lgp_dial(&pr.r, opt.host, opt.port, &po);
		lg_wait(lg_loop, probe_ready, &pr.r, 10);
		ev_timer_init(&pr.t, probe_cb, PROBE_EVERY, PROBE_EVERY);
		pr.t.data = &pr;
		lg_run_for(0.3); /* a probe of the node's, if any, is answered */
		snprintf(x.params, sizeof x.params, "{\"to\":\"%s\",\"text\":\"lg\"}", name);
		for (int i = 0; i < w.k; i++)
			cs[i] = lgctl_open(lg_loop, opt.control, ctl_answer, &x);
		c0 = lg_cpu_of(opt.pid);
		t0 = lg_now();
		x.sending = true;
		if (pr.r.ready > 0)
			ev_timer_start(lg_loop, &pr.t);
		for (int i = 0; i < w.k; i++)
			for (int j = 0; cs[i] && j < opt.ctl_window; j++)
				lgctl_request(cs[i], "send", x.params);
		lg_run_for(opt.duration);
		x.sending = false;
		ev_timer_stop(lg_loop, &pr.t);
		t1 = lg_now();
		c1 = lg_cpu_of(opt.pid);
		ok_in_time = x.ok_in_time;
		lg_wait(lg_loop, ctl_drained, &w, 15);
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
		lg_rec_num("cpu_us_per_send", lg_cpu_us(c0, c1, ok_in_time), 2);
		double rtt = lgs_pct(&pr.r.lat, 50);
		lg_rec_num("rtt_ms", rtt * 1e3, 3);
		if (v[m].oneline && rtt > 0) /* stop-and-wait: 1/RTT is its ceiling */
			lg_rec_num("ratio_to_1_rtt", ok_in_time / (t1 - t0) * rtt, 3);
		lg_rec_end();
		lgp_close(pr.p);
		lgs_free(&pr.r.lat);
		for (int i = 0; i < w.k; i++)
			lgctl_close(cs[i]);
		lgp_close(sink);
		lgs_free(&x.lat);
	}
}
