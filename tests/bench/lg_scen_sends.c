/* Load generator scenarios: SEND/ACK throughput over windows of SENDs, and
 * the single-message round trip, against the node and the responder. */
#include "lg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- throughput and round trip ------------------------------------------- */

struct tp_result {
	double per_s, p50, p99, max, cpu;
	double own_cpu;  /* ours (the generator's) per ACK, µs */
	int ready;
	int secured;     /* of them over TLS */
};

static bool no_inflight(void *arg)
{
	return ((struct lgrun *)arg)->inflight == 0;
}

static struct tp_result run_sends(const char *host, int port, pid_t pid, int conns, int window,
				  bool pipeline, bool batch, double duration, const char *prefix, bool tls)
{
	struct lgrun r = { .loop = lg_loop, .window = window, .batch = batch, .tls = tls,
			   .payload = (size_t)opt.payload, .dst = opt.node_id[0] ? opt.node_id : "bench@BENCH" };
	struct tp_result res = { .per_s = NAN, .cpu = NAN, .own_cpu = NAN };
	struct lgpeer **ps = lgp_dial_many(&r, host, port, conns, prefix, pipeline, 64, 20);
	double c0, c1, t0, t1, o0, o1;
	uint64_t a1;

	res.ready = r.ready;
	res.secured = r.secured;
	if (tls && r.secured < r.ready)
		lg_warn("%s: only %d of %d connections speak TLS", prefix, r.secured, r.ready);
	if (r.ready < conns) {
		lg_warn("%s: only %d of %d connections to %s:%d completed the handshake", prefix, r.ready,
			conns, host, port);
		if (r.ready == 0)
			goto out;
	}
	lg_run_for(0.2); /* let the handshake's aftermath (probes, pings) pass */
	c0 = lg_cpu_of(pid);
	o0 = lg_cpu_of(getpid());
	t0 = lg_now();
	r.sending = true;
	for (int i = 0; i < conns; i++)
		lgp_fill(ps[i]);
	lg_run_for(duration);
	t1 = lg_now();
	a1 = r.acks;
	c1 = lg_cpu_of(pid);
	o1 = lg_cpu_of(getpid());
	r.sending = false;
	lg_wait(lg_loop, no_inflight, &r, 3);
	res.per_s = (double)a1 / (t1 - t0);
	res.p50 = lgs_pct(&r.lat, 50) * 1e3;
	res.p99 = lgs_pct(&r.lat, 99) * 1e3;
	res.max = lgs_max(&r.lat) * 1e3;
	res.cpu = lg_cpu_us(c0, c1, (double)a1);
	res.own_cpu = lg_cpu_us(o0, o1, (double)a1);
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
		     bool by_rtt, const char *tag, struct tp_result *rr, struct tp_result *nr,
		     struct tp_result *tr)
{
	char prefix[128];

	*rr = *nr = (struct tp_result){ .per_s = NAN, .p50 = NAN, .p99 = NAN, .max = NAN, .cpu = NAN,
					.own_cpu = NAN };
	if (tr)
		*tr = *nr;
	for (int k = 0; k < opt.repeat; k++) {
		struct tp_result x;
		if (ref) {
			snprintf(prefix, sizeof prefix, "lgr%d-%s-%d", (int)getpid(), tag, k);
			x = run_sends(lg_ref_host, lg_ref_port, lg_ref_child ? lg_ref_child : opt.ref_pid, conns, window,
				      pipeline, batch, opt.duration, prefix, false);
			if (better(&x, rr, by_rtt))
				*rr = x;
		}
		if (node) {
			snprintf(prefix, sizeof prefix, "lgn%d-%s-%d", (int)getpid(), tag, k);
			x = run_sends(opt.host, opt.port, opt.pid, conns, window, pipeline, batch,
				      opt.duration, prefix, false);
			if (better(&x, nr, by_rtt))
				*nr = x;
		}
		if (node && tr) {
			/* The same load over TLS, right after: same node, same machine. */
			snprintf(prefix, sizeof prefix, "lgt%d-%s-%d", (int)getpid(), tag, k);
			x = run_sends(opt.host, opt.port, opt.pid, conns, window, pipeline, batch,
				      opt.duration, prefix, true);
			if (better(&x, tr, by_rtt))
				*tr = x;
		}
	}
}

static void rec_tp(const char *scen, const char *target, const char *mode, int conns, int window,
		   bool pipeline, bool batch, const struct tp_result *x, const struct tp_result *ref,
		   bool tls, const struct tp_result *plain)
{
	lg_rec_begin(scen, target);
	lg_rec_str("mode", mode);
	lg_rec_bool("tls", tls);
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
	if (plain) {
		/* With TLS the generator's own cost is no longer negligible: it
		 * shares the machine, so say what it spent. */
		lg_rec_num("loadgen_cpu_us_per_ack", x->own_cpu, 2);
		lg_rec_num("plain_loadgen_cpu_us_per_ack", plain->own_cpu, 2);
		lg_rec_num("secured", x->secured, 0);
		lg_rec_num("ratio_to_plain", plain->per_s > 0 ? x->per_s / plain->per_s : NAN, 3);
	}
	lg_rec_end();
}

/* The variants: what we advertise, how we write, SENDs in flight per
 * connection (0: --window).  one_in_flight puts exactly one SEND in each
 * segment the node reads, whatever the load: a read and a write per message. */
void scen_throughput(bool ref)
{
	static const struct { const char *name; bool pipeline, batch; int window; } v[] = {
		{ "pipeline_batched", true, true, 0 }, { "pipeline_per_send", true, false, 0 },
		{ "no_pipeline", false, false, 0 }, { "one_in_flight", true, false, 1 } };
	char prefix[64], modes[300];

	snprintf(modes, sizeof modes, ",%s,", opt.modes);
	for (int c = 0; c < opt.nconns; c++)
		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
			struct tp_result rr, nr, tr;
			int n = opt.conns[c], w = v[i].window ? v[i].window : opt.window;
			snprintf(prefix, sizeof prefix, ",%s,", v[i].name);
			if (strstr(modes, prefix) == NULL)
				continue;
			snprintf(prefix, sizeof prefix, "t%d-%zu", n, i);
			run_pair(ref, opt.port != 0, n, w, v[i].pipeline, v[i].batch, false, prefix, &rr, &nr,
				 opt.tls ? &tr : NULL);
			if (ref)
				rec_tp("throughput", "responder", v[i].name, n, w, v[i].pipeline, v[i].batch, &rr, NULL,
				       false, NULL);
			if (opt.port)
				rec_tp("throughput", "node", v[i].name, n, w, v[i].pipeline, v[i].batch, &nr,
				       ref ? &rr : NULL, false, NULL);
			if (opt.port && opt.tls)
				rec_tp("throughput", "node", v[i].name, n, w, v[i].pipeline, v[i].batch, &tr,
				       ref ? &rr : NULL, true, &nr);
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

void scen_rtt(bool ref)
{
	char prefix[64];

	for (int pl = 1; pl >= 0; pl--) {
		struct tp_result rr, nr;
		snprintf(prefix, sizeof prefix, "r%d", pl);
		run_pair(ref, opt.port != 0, 1, 1, pl, false, true, prefix, &rr, &nr, NULL);
		if (ref)
			rec_rtt("responder", pl, &rr, NULL);
		if (opt.port)
			rec_rtt("node", pl, &nr, ref ? &rr : NULL);
	}
}
