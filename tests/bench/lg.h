/* chatp2p-loadgen: a load generator for the chat network's peer protocol.
 * Shared declarations of its parts:
 *   lg_util.c      buffers, clocks, line fields found by string search,
 *                  latency samples, /proc readers, the result records
 *   lg_peer.c      bench peers: dial or accept, HELLO, SEND windows, PUB
 *                  receivers, ACK sinks (what a real peer does, cheaply)
 *   lg_ctl.c       control-socket clients (JSON-RPC lines)
 *   lg_responder.c --responder: the cheapest possible ACKing peer
 *   lg_rdv.c       rendezvous requests (REGISTER / DISCOVER load)
 *   lg_scen_*.c    the scenarios: sends (throughput, rtt), peers (pub,
 *                  idle), ctl (control plane), rdv (rendezvous, namespace)
 *   lg_main.c      options, the forked responder, the order of scenarios
 * The program speaks the wire protocols by string search, without a JSON
 * parser, so its own cost stays far below the node's. */
#ifndef LG_H
#define LG_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- lg_util.c ---------------------------------------------------------- */

struct lgbuf {
	char *data;
	size_t len, cap, off; /* unread/unsent bytes are data[off..len) */
};

void lgbuf_reserve(struct lgbuf *b, size_t n); /* room for n more at data+len */
void lgbuf_add(struct lgbuf *b, const void *p, size_t n);
void lgbuf_addf(struct lgbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lgbuf_consume(struct lgbuf *b, size_t n);
void lgbuf_free(struct lgbuf *b);
static inline size_t lgbuf_pending(const struct lgbuf *b) { return b->len - b->off; }

double lg_now(void); /* monotonic seconds */
void lg_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void lg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool lg_verbose;

/* The string value of "key" in one JSON line (first occurrence), found by
 * string search; no escapes expected in the values we look for.  Returns
 * its length and sets *val, or -1. */
int lg_field(const char *line, size_t len, const char *key, const char **val);
/* The number after "key": (first occurrence), or def. */
double lg_num(const char *line, size_t len, const char *key, double def);
size_t lg_count(const char *s, size_t len, const char *needle);
const char *lg_memmem(const char *s, size_t len, const char *needle);

/* A nonblocking TCP socket connecting to host:port (numeric). -1 on error. */
int lg_dial(const char *host, int port);
int lg_listen(const char *host, int port, int *bound_port);
int lg_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
void lg_nonblock(int fd);
void lg_raise_nofile(void);
int lg_nofile(void);

/* Latency samples (seconds), bounded. */
struct lgsamples {
	double *v;
	size_t n, cap, dropped;
};
void lgs_add(struct lgsamples *s, double x);
void lgs_reset(struct lgsamples *s);
void lgs_free(struct lgsamples *s);
double lgs_pct(struct lgsamples *s, double p); /* sorts; NAN when empty */
double lgs_max(const struct lgsamples *s);

/* /proc: utime+stime in seconds, VmRSS in kB; -1 when unreadable. */
double lg_proc_cpu(pid_t pid);
long lg_proc_rss_kb(pid_t pid);
int lg_proc_nofile(pid_t pid); /* its soft RLIMIT_NOFILE, or -1 */

/* Result records: one per measurement, printed as a table or JSON. */
void lg_rec_begin(const char *scenario, const char *target);
void lg_rec_num(const char *key, double v, int decimals);
void lg_rec_str(const char *key, const char *v);
void lg_rec_bool(const char *key, bool v);
void lg_rec_end(void);
void lg_rec_print(bool json, FILE *out);
void lg_rec_free(void);

/* Run the loop until done() holds (checked after each iteration) or
 * timeout seconds pass.  Returns done(). */
bool lg_wait(struct ev_loop *loop, bool (*done)(void *), void *arg, double timeout);

/* ---- lg_peer.c ---------------------------------------------------------- */

/* LGP_TLS: HELLO/HELLO_OK said starttls; the TLS handshake is under way
 * (the peer counts as ready once it is done). */
enum lgp_state { LGP_CONNECTING, LGP_HELLO, LGP_TLS, LGP_READY, LGP_CLOSED };

struct lgpeer;

/* What the bench peers of one scenario do; shared by all of them. */
struct lgrun {
	struct ev_loop *loop;
	/* SEND windows */
	bool sending;        /* keep windows full */
	bool batch;          /* a whole window refill in one write */
	int window;
	size_t payload;      /* bytes of SEND payload */
	const char *dst;     /* SEND dst */
	uint64_t acks;       /* ACKs matched to our SENDs */
	uint64_t sends;
	uint64_t unmatched;
	uint64_t inflight;
	struct lgsamples lat;
	/* PUB receivers */
	const char *pub_marker;
	int pub_got;
	double pub_last;
	/* ACK sink (the node sends us SENDs) */
	uint64_t sink_sends;
	uint64_t sink_lost_bytes; /* one-line-per-recv peers drop the rest */
	/* peers */
	int ready;           /* handshakes done */
	int closed;          /* connections lost (not by us) */
	int dialling;        /* connects + handshakes in progress */
	/* TLS (--tls): dialled peers offer "tls" and start TLS on a HELLO_OK
	 * with "starttls"; accepted ones answer a "tls" offer with
	 * "starttls" and serve TLS.  Needs lg_tls_ctx. */
	bool tls;
	int secured;         /* TLS handshakes completed */
	int tls_failed;      /* TLS handshakes that did not complete */
	int tls_declined;    /* the other side answered our offer in plaintext */
};

struct lgpeer_opts {
	const char *name;    /* our peer_id */
	bool pipeline;       /* advertise "pipeline" */
	bool oneline;        /* handle only the first line of each recv() */
};

struct lgpeer *lgp_dial(struct lgrun *run, const char *host, int port, const struct lgpeer_opts *o);
/* An accepted connection: waits for HELLO, answers HELLO_OK as name. */
struct lgpeer *lgp_accept(struct lgrun *run, int fd, const struct lgpeer_opts *o, int tag);
void lgp_close(struct lgpeer *p);
enum lgp_state lgp_state(const struct lgpeer *p);
int lgp_tag(const struct lgpeer *p);
void lgp_fill(struct lgpeer *p);  /* top up the SEND window now */

/* Dial n peers named prefix-i with at most `parallel` handshakes at once;
 * returns the array (n entries) once all are ready or timeout passes. */
struct lgpeer **lgp_dial_many(struct lgrun *run, const char *host, int port, int n,
			      const char *prefix, bool pipeline, int parallel, double timeout);
void lgp_close_all(struct lgpeer **ps, int n);

/* ---- lg_tls.c ----------------------------------------------------------- */

/* The bench peers' identity for --tls: one Ed25519 key, made in a fresh
 * temporary directory (removed at once: the key stays in memory) or loaded
 * from dir, shared by every bench peer (they differ only by peer_id; the
 * node pins each peer_id to this key).  Uses chatp2pd's net/keys.c and
 * net/tls.c. */
extern struct tls_ctx *lg_tls_ctx;
extern char lg_tls_fingerprint[];
void lg_tls_setup(const char *dir);
void lg_tls_teardown(void);

/* ---- lg_ctl.c ----------------------------------------------------------- */

struct lgctl;
/* Called for each answer: ok (result, not error), the line, the latency. */
typedef void (*lgctl_cb)(struct lgctl *c, bool ok, const char *line, size_t len, double lat, void *arg);

struct lgctl *lgctl_open(struct ev_loop *loop, const char *path, lgctl_cb cb, void *arg);
/* Queue one request; params is a JSON object text or NULL. */
void lgctl_request(struct lgctl *c, const char *method, const char *params);
int lgctl_inflight(const struct lgctl *c);
bool lgctl_failed(const struct lgctl *c);
void lgctl_close(struct lgctl *c);
/* One blocking call outside the loop (setup): the answer line in out. */
int lgctl_call(const char *path, const char *method, const char *params, char *out, size_t outlen,
	       double timeout);

/* ---- lg_responder.c ----------------------------------------------------- */

/* Serve the peer protocol on listen_fd until SIGTERM/SIGINT. */
int lg_responder_run(int listen_fd, const char *name);

/* ---- lg_rdv.c ----------------------------------------------------------- */

struct lgrdv_stats {
	int ok, failed;
	double seconds;
	struct lgsamples lat;
	size_t bytes;        /* reply bytes */
	long entries;        /* DISCOVER: entries in the last reply */
};

/* n requests, at most conc at once; req(i) gives the i-th request line. */
void lg_rdv_batch(struct ev_loop *loop, const char *host, int port, int n, int conc,
		  void (*req)(int i, char *line, size_t len, void *arg), void *arg,
		  struct lgrdv_stats *st, double timeout);

/* ---- lg_main.c: options and what the scenarios share ---------------------- */

#define MAXLIST 8

struct lgopts {
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
	bool tls;
	const char *tls_key_dir;
	/* learned */
	char node_id[128];
	char node_ns[80];
};

extern struct lgopts opt;
extern struct ev_loop *lg_loop;
extern char lg_ref_host[64];   /* the responder (transport reference) */
extern int lg_ref_port;
extern pid_t lg_ref_child;     /* its pid when we forked it */

bool lg_never(void *arg);
void lg_run_for(double seconds);   /* run the loop this long */
double lg_cpu_of(pid_t pid);
double lg_cpu_us(double c0, double c1, double msgs); /* µs per message, NAN if unknown */

/* ---- lg_scen_*.c: the scenarios; each adds its result records ------------- */

void scen_throughput(bool ref);   /* lg_scen_sends.c */
void scen_rtt(bool ref);
void scen_pub(void);              /* lg_scen_peers.c */
void scen_idle(int n);
void scen_ctl(void);              /* lg_scen_ctl.c */
void scen_rdv(void);              /* lg_scen_rdv.c */
void scen_ns(void);

#endif
