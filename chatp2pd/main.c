/* chatp2pd: flags, configuration, the loop and signals.  Two roles share the
 * binary: the chat node (default) and the rendezvous server
 * (--rendezvous-server), which needs no node identity. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "config.h"
#include "control.h"
#include "ctlproto.h"
#include "log.h"
#include "node.h"
#include "rendezvous_server.h"
#include "version.h"

#define MOD "Main"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: chatp2pd [options]\n"
		"       chatp2pd --rendezvous-server [--listen ADDR] [--port N] [options]\n"
		"\n"
		"  -c, --config FILE        configuration (default ./config.json if present)\n"
		"  -n, --name NAME          node name\n"
		"  -N, --namespace NS       node namespace\n"
		"  -p, --port N             listen port (peers; or the rendezvous server's)\n"
		"  -l, --listen ADDR        listen address\n"
		"  -t, --ttl SEC            registration ttl\n"
		"  -r, --rendezvous H:P     rendezvous server address\n"
		"  -L, --log-level LEVEL    DEBUG, INFO, WARNING or ERROR\n"
		"  -C, --control PATH       control socket (default $RUNTIME_DIRECTORY, /run/chatp2p\n"
		"                           or $XDG_RUNTIME_DIR/chatp2p, then chatp2pd.sock)\n"
		"  -s, --set SECTION.KEY=V  override any configuration key\n"
		"      --rendezvous-server  run the rendezvous server role instead of a node\n"
		"  -V, --version            print the version\n"
		"  -h, --help               this help\n"
		"\n"
		"Exit status: 0 clean stop, 1 runtime failure, 2 bad configuration or usage.\n");
}

struct opts {
	const char *config_path;
	bool rendezvous_server;
};

static void die_config(const char *err)
{
	fprintf(stderr, "chatp2pd: %s\n", err);
	exit(2);
}

static void set_or_die(struct config *cfg, const char *key, const char *val)
{
	char err[256];
	if (config_set(cfg, key, val, err, sizeof err) != 0)
		die_config(err);
}

static void warn_config(const char *msg)
{
	log_warn("Config", "%s", msg);
}

/* Flags override the file, so the file is loaded first and the flags are
 * applied in a second pass over argv. */
static void parse_args(int argc, char **argv, struct opts *o, struct config *cfg)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"name", required_argument, NULL, 'n'},
		{"namespace", required_argument, NULL, 'N'},
		{"port", required_argument, NULL, 'p'},
		{"listen", required_argument, NULL, 'l'},
		{"ttl", required_argument, NULL, 't'},
		{"rendezvous", required_argument, NULL, 'r'},
		{"log-level", required_argument, NULL, 'L'},
		{"control", required_argument, NULL, 'C'},
		{"set", required_argument, NULL, 's'},
		{"rendezvous-server", no_argument, NULL, 'R'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *shortopts = "c:n:N:p:l:t:r:L:C:s:Vh";
	int ch;

	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config_path = optarg; break;
		case 'R': o->rendezvous_server = true; break;
		case 'V': printf("chatp2pd %s\n", CHATP2P_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		case '?': usage(stderr); exit(2);
		default: break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatp2pd: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}

	char err[512];
	const char *path = o->config_path ? o->config_path : "config.json";
	if (config_load(cfg, path, o->config_path != NULL, err, sizeof err, warn_config) != 0)
		die_config(err);

	optind = 1;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		const char *section = o->rendezvous_server ? "rendezvous_server" : "node";
		char key[64];
		switch (ch) {
		case 'n': set_or_die(cfg, "node.name", optarg); break;
		case 'N': set_or_die(cfg, "node.namespace", optarg); break;
		case 't': set_or_die(cfg, "node.ttl", optarg); break;
		case 'L': set_or_die(cfg, "logging.level", optarg); break;
		case 'C': set_or_die(cfg, "control.socket", optarg); break;
		case 'p':
			snprintf(key, sizeof key, "%s.port", section);
			set_or_die(cfg, key, optarg);
			break;
		case 'l':
			snprintf(key, sizeof key, "%s.listen", section);
			set_or_die(cfg, key, optarg);
			break;
		case 'r': {
			const char *colon = strrchr(optarg, ':');
			if (colon == NULL || colon == optarg)
				die_config("--rendezvous: expected HOST:PORT");
			char host[CFG_STR_MAX];
			snprintf(host, sizeof host, "%.*s", (int)(colon - optarg), optarg);
			set_or_die(cfg, "rendezvous.host", host);
			set_or_die(cfg, "rendezvous.port", colon + 1);
			break;
		}
		case 's': {
			const char *eq = strchr(optarg, '=');
			if (eq == NULL)
				die_config("--set: expected SECTION.KEY=VALUE");
			char k[128];
			snprintf(k, sizeof k, "%.*s", (int)(eq - optarg), optarg);
			set_or_die(cfg, k, eq + 1);
			break;
		}
		default: break;
		}
	}
	if (config_check(cfg, err, sizeof err) != 0)
		die_config(err);
}

static void setup_logging(const struct config *cfg)
{
	enum log_level l;
	if (log_level_parse(cfg->logging.level, &l))
		log_set_level(l);
	if (cfg->logging.log_to_file && cfg->logging.file[0] &&
	    log_set_file(cfg->logging.file) != 0)
		log_warn(MOD, "cannot open log file %s: %s (logging to stderr only)",
			 cfg->logging.file, strerror(errno));
}

/* The node being run, if any: a stop signal asks it to leave gracefully. */
static struct node *running_node;

static void on_node_stopped(void *ctx)
{
	ev_break((struct ev_loop *)ctx, EVBREAK_ALL);
}

static void stop_node(void *ctx)
{
	struct ev_loop *loop = ctx;

	if (running_node)
		node_shutdown(running_node, on_node_stopped, loop);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	static int signals;

	if (running_node == NULL || ++signals > 1) {
		/* A second signal means "now". */
		log_info(MOD, "signal %d: stopping now", w->signum);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info(MOD, "signal %d: stopping", w->signum);
	node_shutdown(running_node, on_node_stopped, loop);
}

static int run_node(struct ev_loop *loop, const struct config *cfg)
{
	char err[256];
	struct node *n = node_new(loop, cfg, err, sizeof err);

	if (n == NULL) {
		fprintf(stderr, "chatp2pd: %s\n", err);
		return strncmp(err, "node.", 5) == 0 ? 2 : 1;
	}
	char path[CFG_STR_MAX];
	if (cfg->control.socket[0])
		snprintf(path, sizeof path, "%s", cfg->control.socket);
	else if (ctl_default_socket(path, sizeof path) != 0) {
		fprintf(stderr, "chatp2pd: default control socket path too long\n");
		node_free(n);
		return 1;
	}
	struct control_hooks hooks = { stop_node, NULL, loop };
	struct control *ctl = control_new(loop, n, node_config(n), path, -1, &hooks, err, sizeof err);
	if (ctl == NULL) {
		fprintf(stderr, "chatp2pd: %s\n", err);
		node_free(n);
		return 1;
	}
	running_node = n;
	/* The line tests and scripts wait for to learn the port. */
	printf("listening on %s:%d as %s, control %s\n", cfg->node.listen, node_listen_port(n),
	       node_id(n), path);
	fflush(stdout);
	node_start(n);
	ev_run(loop, 0);
	running_node = NULL;
	control_free(ctl);
	node_free(n);
	return 0;
}

static int run_rendezvous_server(struct ev_loop *loop, const struct config *cfg)
{
	char err[256];
	struct rdv_server *s = rdv_server_new(loop, cfg, err, sizeof err);
	if (s == NULL) {
		log_error(MOD, "%s", err);
		return 1;
	}
	/* The line tests and scripts wait for to learn the port. */
	printf("listening on %s:%d\n", cfg->rendezvous_server.listen, rdv_server_port(s));
	fflush(stdout);
	ev_run(loop, 0);
	rdv_server_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct config cfg;
	int rc;

	log_init("chatp2pd");
	config_defaults(&cfg);
	parse_args(argc, argv, &o, &cfg);
	setup_logging(&cfg);
	/* Peers and controllers that vanish must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);

	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	ev_signal sigint, sigterm;
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_start(loop, &sigint);
	ev_signal_start(loop, &sigterm);

	if (o.rendezvous_server) {
		rc = run_rendezvous_server(loop, &cfg);
	} else {
		if (cfg.node.name[0] == '\0')
			die_config("node.name is required (--name NAME or config.json node.name)");
		rc = run_node(loop, &cfg);
	}
	ev_signal_stop(loop, &sigint);
	ev_signal_stop(loop, &sigterm);
	ev_loop_destroy(loop);
	log_close();
	return rc;
}
