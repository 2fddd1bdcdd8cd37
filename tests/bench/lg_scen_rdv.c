/* Load generator scenarios: the rendezvous server role under many
 * registrations, and a node finding a namespace of N registered peers. */
#include "lg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
	lg_rec_num("server_cpu_us_per_req", lg_cpu_us(c0, c1, st->ok), 1);
	lg_rec_end();
}

void scen_rdv(void)
{
	struct lgrdv_stats st = { 0 };
	double c0, c1;

	snprintf(rdv_ns, sizeof rdv_ns, "LGRDV%d", (int)getpid());
	c0 = lg_cpu_of(opt.rdv_pid);
	lg_rdv_batch(lg_loop, opt.rdv_host, opt.rdv_port, opt.rdv_regs, opt.rdv_conc, req_register, NULL, &st, 120);
	c1 = lg_cpu_of(opt.rdv_pid);
	rec_rdv("register", &st, c0, c1);
	c0 = lg_cpu_of(opt.rdv_pid);
	lg_rdv_batch(lg_loop, opt.rdv_host, opt.rdv_port, opt.rdv_discovers, opt.rdv_conc, req_discover, NULL, &st, 120);
	c1 = lg_cpu_of(opt.rdv_pid);
	rec_rdv("discover", &st, c0, c1);
	lg_rdv_batch(lg_loop, opt.rdv_host, opt.rdv_port, 1, 1, req_unregister, NULL, &st, 30);
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
	double answer_lat, cpu0, cpu_answer, cpu_all;
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
	ns.cpu_answer = lg_cpu_of(opt.pid);
	ns.discovered = ok ? (long)lg_count(line, len, pat) : 0;
	if (!ok)
		lg_warn("ns: the node's discover failed: %.*s", (int)(len > 300 ? 300 : len), line);
}

static bool ns_connected(void *arg)
{
	if (ns.r.ready >= ns.n && ns.t_all == 0) {
		ns.t_all = lg_now();
		ns.cpu_all = lg_cpu_of(opt.pid);
	}
	return ns.r.ready >= ns.n || (ns.answered && !ns.ok);
}

void scen_ns(void)
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
	ns.r.loop = lg_loop;
	ns.r.window = 1;
	ns.r.tls = opt.tls;
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
		ev_io_start(lg_loop, &ns.lis[i]);
	}
	lg_rdv_batch(lg_loop, opt.ns_host, opt.ns_port, n, 8, req_ns_register, NULL, &st, 60);
	if (st.ok < n)
		lg_warn("ns: only %d of %d registrations succeeded", st.ok, n);
	c = lgctl_open(lg_loop, opt.control, ns_answer, NULL);
	if (c == NULL)
		lg_die("ns: cannot open the control socket");
	t0 = lg_now();
	ns.cpu0 = lg_cpu_of(opt.pid);
	lgctl_request(c, "discover", NULL);
	lg_wait(lg_loop, ns_connected, NULL, opt.ns_timeout);
	double t1 = lg_now();
	if (ns.answered && !ns.ok)
		lg_run_for(3); /* connections it may still make from an older list */
	lg_rec_begin("ns", "node");
	lg_rec_num("registered", st.ok, 0);
	lg_rec_num("discovered", ns.answered ? (double)ns.discovered : NAN, 0);
	lg_rec_num("discover_ms", ns.answered ? ns.answer_lat * 1e3 : NAN, 2);
	lg_rec_num("discover_cpu_ms", ns.answered && ns.cpu0 >= 0 ? (ns.cpu_answer - ns.cpu0) * 1e3 : NAN, 0);
	lg_rec_num("connected", ns.r.ready, 0);
	lg_rec_num("all_connected_s", ns.t_all > 0 ? ns.t_all - t0 : NAN, 2);
	lg_rec_num("waited_s", t1 - t0, 2);
	lg_rec_num("rss_growth_kb", (double)(lg_proc_rss_kb(opt.pid) - rss0), 0);
	/* The node's CPU from its discover answer until the last bench peer
	 * finished its handshake, per peer: dials, HELLOs, and with --tls the
	 * TLS handshakes as client (and the pins). */
	lg_rec_num("cpu_ms_per_conn", ns.t_all > 0 && ns.cpu0 >= 0 && ns.r.ready > 0
		   ? (ns.cpu_all - ns.cpu_answer) * 1e3 / ns.r.ready : NAN, 3);
	lg_rec_bool("tls", opt.tls);
	if (opt.tls)
		lg_rec_num("secured", ns.r.secured, 0);
	lg_rec_end();
	lgctl_close(c);
	lg_rdv_batch(lg_loop, opt.ns_host, opt.ns_port, 1, 1, req_ns_unregister, NULL, &st, 30);
	for (int i = 0; i < ns.nacc; i++)
		lgp_close(ns.acc[i]);
	for (int i = 0; i < n; i++) {
		ev_io_stop(lg_loop, &ns.lis[i]);
		close(ns.lis[i].fd);
	}
	free(ns.acc);
	free(ns.lis);
	free(ns.ports);
	lgs_free(&st.lat);
}
