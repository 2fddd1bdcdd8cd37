/* chatp2pd: flags, configuration, the loop and signals.  Two roles share the
 * binary: the chat node (default) and the rendezvous server
 * (--rendezvous-server), which needs no node identity.
 *
 * Under systemd (see systemd/): sockets may be passed in (socket
 * activation), the manager is told READY/STATUS/RELOADING/STOPPING and fed
 * the watchdog (notify.c), and SIGHUP or the control "reload" method reload
 * config.json exactly as start-up loaded it. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include <ev.h>

#include "config.h"
#include "control/control.h"
#include "control/conversation.h"
#include "control/hooks.h"
#include "ctlproto.h"
#include "net/guard.h"
#include "net/keys.h"
#include "log.h"
#include "node/node.h"
#include "control/notify.h"
#include "rendezvous/server/server.h"
#include "store/storage.h"
#include "version.h"
#include "xmalloc.h"

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
		"  -D, --state-dir DIR      inbox/outbox database directory (default $STATE_DIRECTORY,\n"
		"                           else $XDG_STATE_HOME/chatp2p/NAME@NS, else ~/.local/state/...)\n"
		"      --rendezvous-server  run the rendezvous server role instead of a node\n"
		"  -V, --version            print the version\n"
		"  -h, --help               this help\n"
		"\n"
		"SIGHUP reloads the configuration (file, then these flags again).\n"
		"Exit status: 0 clean stop, 1 runtime failure, 2 bad configuration or usage.\n");
}

/* A configuration flag, kept so a reload can apply it again over the file. */
struct flag {
	int ch;
	const char *arg;   /* points into argv, which lives as long as we do */
};

struct opts {
	const char *config_path;
	bool rendezvous_server;
	struct flag *flags;
	size_t nflags;
};

static void die_config(const char *err)
{
	fprintf(stderr, "chatp2pd: %s\n", err);
	exit(2);
}

static void warn_config(const char *msg)
{
	log_warn("Config", "%s", msg);
}

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
	{"state-dir", required_argument, NULL, 'D'},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* Flags override the file, so they are only collected here; load_config()
 * applies them after reading the file, at start-up and on every reload. */
static void parse_args(int argc, char **argv, struct opts *o)
{
	int ch;

	o->flags = xcalloc((size_t)argc, sizeof *o->flags);
	while ((ch = getopt_long(argc, argv, "c:n:N:p:l:t:r:L:C:s:VhD:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config_path = optarg; break;
		case 'R': o->rendezvous_server = true; break;
		case 'V': printf("chatp2pd %s\n", CHATP2P_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		case '?': usage(stderr); exit(2);
		default:
			o->flags[o->nflags++] = (struct flag){ ch, optarg };
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatp2pd: unexpected argument '%s'\n", argv[optind]);
		exit(2);
	}
}

static int apply_flag(const struct opts *o, struct config *cfg, const struct flag *f,
		      char *err, size_t errlen)
{
	const char *section = o->rendezvous_server ? "rendezvous_server" : "node";
	char key[128];

	switch (f->ch) {
	case 'n': return config_set(cfg, "node.name", f->arg, err, errlen);
	case 'N': return config_set(cfg, "node.namespace", f->arg, err, errlen);
	case 't': return config_set(cfg, "node.ttl", f->arg, err, errlen);
	case 'L': return config_set(cfg, "logging.level", f->arg, err, errlen);
	case 'C': return config_set(cfg, "control.socket", f->arg, err, errlen);
	case 'D': return config_set(cfg, "node.state_dir", f->arg, err, errlen);
	case 'p':
		snprintf(key, sizeof key, "%s.port", section);
		return config_set(cfg, key, f->arg, err, errlen);
	case 'l':
		snprintf(key, sizeof key, "%s.listen", section);
		return config_set(cfg, key, f->arg, err, errlen);
	case 'r': {
		const char *colon = strrchr(f->arg, ':');
		char host[CFG_STR_MAX];
		if (colon == NULL || colon == f->arg) {
			snprintf(err, errlen, "--rendezvous: expected HOST:PORT");
			return -1;
		}
		snprintf(host, sizeof host, "%.*s", (int)(colon - f->arg), f->arg);
		if (config_set(cfg, "rendezvous.host", host, err, errlen) != 0)
			return -1;
		return config_set(cfg, "rendezvous.port", colon + 1, err, errlen);
	}
	case 's': {
		const char *eq = strchr(f->arg, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "--set: expected SECTION.KEY=VALUE");
			return -1;
		}
		snprintf(key, sizeof key, "%.*s", (int)(eq - f->arg), f->arg);
		return config_set(cfg, key, eq + 1, err, errlen);
	}
	}
	return 0;
}

/* The whole configuration from scratch: defaults, the file, the flags,
 * the cross-key checks.  0, or -1 with a one-line err (cfg is then junk). */
static int load_config(const struct opts *o, struct config *cfg, char *err, size_t errlen)
{
	const char *path = o->config_path ? o->config_path : "config.json";

	config_defaults(cfg);
	if (config_load(cfg, path, o->config_path != NULL, err, errlen, warn_config) != 0)
		return -1;
	for (size_t i = 0; i < o->nflags; i++)
		if (apply_flag(o, cfg, &o->flags[i], err, errlen) != 0)
			return -1;
	/* The server role logs to stderr (the journal under systemd) unless a
	 * file was asked for: a -c file, or --set logging.*; not a chatp2p.log
	 * in whatever directory it was started from. */
	if (o->rendezvous_server && o->config_path == NULL) {
		bool asked = false;
		for (size_t i = 0; i < o->nflags; i++)
			asked |= o->flags[i].ch == 's' && strncmp(o->flags[i].arg, "logging.", 8) == 0 &&
				 strncmp(o->flags[i].arg, "logging.level", 13) != 0;
		if (!asked)
			cfg->logging.log_to_file = false;
	}
	return config_check(cfg, err, errlen);
}

/* Level and log file; run again on reload, which also reopens the file
 * (what log rotation expects of a SIGHUP). */
static void apply_logging(const struct config *cfg)
{
	enum log_level l;

	if (log_level_parse(cfg->logging.level, &l))
		log_set_level(l);
	log_set_limits(cfg->logging.max_size, (unsigned)cfg->logging.rate_limit, 10);
	/* The default name is per node: nodes started in one directory would
	 * otherwise write one chatp2p.log together.  Absolute, so that
	 * "chatp2pctl logs" finds it (status says where). */
	char name[2 * CFG_STR_MAX + 16], path[4096 + sizeof name], cwd[4096];
	if (cfg->node.name[0]) {
		snprintf(name, sizeof name, "%s@%s", cfg->node.name, cfg->node.namespace_);
		log_set_ident(name);
	}
	if (cfg->node.name[0] && strcmp(cfg->logging.file, "chatp2p.log") == 0)
		snprintf(name, sizeof name, "chatp2p-%s@%s.log", cfg->node.name, cfg->node.namespace_);
	else
		snprintf(name, sizeof name, "%s", cfg->logging.file);
	if (name[0] != '/' && getcwd(cwd, sizeof cwd) != NULL)
		snprintf(path, sizeof path, "%s/%s", cwd, name);
	else
		snprintf(path, sizeof path, "%s", name);
	if (!cfg->logging.log_to_file || cfg->logging.file[0] == '\0')
		log_set_file(NULL);
	else if (log_set_file(path) != 0)
		log_warn(MOD, "cannot open log file %s: %s (logging to stderr only)", path,
			 strerror(errno));
}

/* ---- socket activation ----------------------------------------------------- */

/* Descriptors the service manager passed (LISTEN_FDS): a UNIX stream
 * listener is the control socket, a TCP listener the peer listener. */
struct passed {
	int control_fd;
	int peer_fd;
	char control_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
};

static void take_passed_fds(struct passed *p, bool want_peer)
{
	char **names = NULL;
	int n;

	p->control_fd = p->peer_fd = -1;
	p->control_path[0] = '\0';
	/* Unset LISTEN_*: they describe this process only. */
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		log_warn(MOD, "ignoring passed sockets: %s", strerror(-n));
		return;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names && names[i] ? names[i] : "?";

		if (p->control_fd < 0 && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) {
			struct sockaddr_un sun;
			socklen_t len = sizeof sun;

			p->control_fd = fd;
			memset(&sun, 0, sizeof sun);
			if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 &&
			    len > offsetof(struct sockaddr_un, sun_path)) {
				size_t plen = len - offsetof(struct sockaddr_un, sun_path);
				/* An abstract name starts with NUL: show it as '@'. */
				bool abstract = sun.sun_path[0] == '\0';
				snprintf(p->control_path, sizeof p->control_path, "%s%.*s",
					 abstract ? "@" : "", (int)(plen - abstract),
					 sun.sun_path + abstract);
			}
			log_info(MOD, "control socket passed by the service manager (fd %d, %s)", fd,
				 name);
		} else if (want_peer && p->peer_fd < 0 &&
			   sd_is_socket_inet(fd, 0, SOCK_STREAM, 1, 0) > 0) {
			p->peer_fd = fd;
			log_info(MOD, "peer listener passed by the service manager (fd %d, %s)", fd,
				 name);
		} else {
			log_warn(MOD, "closing passed fd %d (%s): not a socket we use", fd, name);
			close(fd);
		}
	}
	if (names) {
		for (int i = 0; names[i]; i++)
			free(names[i]);
		free(names);
	}
}

/* ---- the running daemon -------------------------------------------------------- */

struct daemon {
	struct ev_loop *loop;
	const struct opts *o;
	struct config *cfg;       /* rendezvous-server role: the running configuration */
	struct node *node;        /* node role, while running */
	struct notify *nt;
	bool stopping;
	int stop_signals;
};

static void on_node_stopped(void *ctx)
{
	struct daemon *d = ctx;

	ev_break(d->loop, EVBREAK_ALL);
}

static void begin_stop(struct daemon *d)
{
	d->stopping = true;
	notify_stopping(d->nt);
	if (d->node)
		node_shutdown(d->node, on_node_stopped, d);
	else
		ev_break(d->loop, EVBREAK_ALL);
}

/* control "shutdown" */
static void stop_hook(void *ctx)
{
	begin_stop(ctx);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (++d->stop_signals > 1) {
		/* A second signal means "now". */
		log_info(MOD, "signal %d: stopping now", w->signum);
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	log_info(MOD, "signal %d: stopping", w->signum);
	begin_stop(d);
}

/* Re-read the configuration as start-up did.  A file that does not load
 * changes nothing; keys that cannot change while running are kept and
 * named in note.  The manager sees RELOADING=1 … READY=1 either way. */
static int reload(struct daemon *d, char *err, size_t errlen, char *note, size_t notelen)
{
	const char *path = d->o->config_path ? d->o->config_path : "config.json";
	struct config next;
	char why[300];

	note[0] = '\0';
	if (d->stopping) {
		snprintf(err, errlen, "stopping: not reloading");
		log_info(MOD, "reload: %s", err);
		return -1;
	}
	notify_reloading(d->nt);
	if (load_config(d->o, &next, err, errlen) != 0) {
		log_error(MOD, "reload: %s (keeping the running configuration)", err);
		snprintf(why, sizeof why, "reload failed: %s", err);
		notify_set_error(d->nt, why);
		notify_ready(d->nt);
		return -1;
	}
	if (d->node) {
		if (node_reload(d->node, &next, note, notelen) > 0)
			log_warn(MOD, "reload: fixed until restart, not changed: %s", note);
		apply_logging(node_config(d->node));
	} else {
		if (memcmp(&next.rendezvous_server, &d->cfg->rendezvous_server,
			   sizeof next.rendezvous_server) != 0)
			log_warn(MOD, "reload: rendezvous_server.* changes take effect on restart");
		d->cfg->logging = next.logging;
		apply_logging(d->cfg);
	}
	log_info(MOD, "reloaded %s (log level %s)", path, log_level_name(log_get_level()));
	notify_set_error(d->nt, NULL);
	notify_ready(d->nt);
	return 0;
}

/* control "reload" */
static int reload_hook(void *ctx, char *err, size_t errlen, char *note, size_t notelen)
{
	return reload(ctx, err, errlen, note, notelen);
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
	char err[512], note[256];

	log_info(MOD, "SIGHUP: reloading the configuration");
	(void)reload(w->data, err, sizeof err, note, sizeof note);
}

/* The identity key in the state directory, made at first start (PROTOCOL.md
 * §5.2).  A key that cannot be used stops the start, unless TLS is off. */
static int load_identity(struct node *n, const struct config *cfg)
{
	char dir[CFG_STR_MAX + 64], err[512];
	struct keys_identity keys;
	bool needed = strcmp(cfg->security.tls, "off") != 0;

	if (storage_dir_resolve(cfg->node.state_dir, node_id(n), dir, sizeof dir, err, sizeof err) ==
		    0 &&
	    keys_load_or_create(dir, node_id(n), &keys, err, sizeof err) == 0) {
		if (keys.created)
			log_info(MOD, "made a new identity key %s/%s (%s)", dir, KEYS_FILE,
				 keys.fingerprint);
		int rc = node_set_identity(n, &keys, dir, err, sizeof err);
		keys_free(&keys);
		if (rc == 0)
			return 0;
	}
	if (needed) {
		fprintf(stderr, "chatp2pd: identity: %s\n", err);
		return -1;
	}
	log_warn(MOD, "identity: %s (security.tls is off: going on without a key)", err);
	return 0;
}

static int run_node(struct daemon *d, const struct config *cfg)
{
	char err[256];
	char path[CFG_STR_MAX];
	struct passed p;
	struct node *n;

	take_passed_fds(&p, true);
	if (p.peer_fd >= 0) {
		n = node_new_with_fd(d->loop, cfg, p.peer_fd, err, sizeof err);
		if (n == NULL)
			close(p.peer_fd);
	} else {
		n = node_new(d->loop, cfg, err, sizeof err);
	}
	if (n == NULL) {
		fprintf(stderr, "chatp2pd: %s\n", err);
		if (p.control_fd >= 0)
			close(p.control_fd);
		return strncmp(err, "node.", 5) == 0 ? 2 : 1;
	}
	if (load_identity(n, cfg) != 0) {
		if (p.control_fd >= 0)
			close(p.control_fd);
		node_free(n);
		return 1;
	}
	if (p.control_fd >= 0)
		snprintf(path, sizeof path, "%s", p.control_path);
	else if (cfg->control.socket[0])
		snprintf(path, sizeof path, "%s", cfg->control.socket);
	else if (ctl_default_socket(path, sizeof path) != 0) {
		fprintf(stderr, "chatp2pd: default control socket path too long\n");
		node_free(n);
		return 1;
	}
	struct control_hooks hooks = { stop_hook, reload_hook, d };
	struct control *ctl = control_new(d->loop, n, node_config(n), path, p.control_fd, &hooks,
					  err, sizeof err);
	if (ctl == NULL) {
		fprintf(stderr, "chatp2pd: %s\n", err);
		node_free(n);
		return 1;
	}
	/* Every event, whether or not a controller listens: the record of
	 * what we sent (a late ACK settles it) and the message hooks. */
	node_subscribe(n, conversation_subscriber, n);
	node_subscribe(n, hooks_subscriber, n);
	d->node = n;
	d->nt = notify_new(d->loop, notify_node_status, n);
	/* The line tests and scripts wait for to learn the port. */
	printf("listening on %s:%d as %s, control %s\n", node_listen_addr(n), node_listen_port(n),
	       node_id(n), path[0] ? path : "(passed)");
	fflush(stdout);
	node_start(n);
	/* Both sockets are up: controllers and peers are served from here on,
	 * registration goes on in the background. */
	notify_ready(d->nt);
	ev_run(d->loop, 0);
	notify_stopping(d->nt);
	d->node = NULL;
	node_unsubscribe(n, hooks_subscriber, n);
	node_unsubscribe(n, conversation_subscriber, n);
	hooks_stop();
	control_free(ctl);
	node_free(n);
	notify_free(d->nt);
	d->nt = NULL;
	return 0;
}

static int run_rendezvous_server(struct daemon *d, const struct config *cfg)
{
	char err[256];
	struct passed p;

	/* This role binds its own listener; a passed one would sit unused. */
	take_passed_fds(&p, false);
	if (p.control_fd >= 0)
		close(p.control_fd);
	struct rdv_server *s = rdv_server_new(d->loop, cfg, err, sizeof err);
	if (s == NULL) {
		log_error(MOD, "%s", err);
		return 1;
	}
	d->nt = notify_new(d->loop, NULL, NULL);
	/* The line tests and scripts wait for to learn the port. */
	printf("listening on %s:%d\n", cfg->rendezvous_server.listen, rdv_server_port(s));
	fflush(stdout);
	notify_ready(d->nt);
	ev_run(d->loop, 0);
	notify_stopping(d->nt);
	rdv_server_free(s);
	notify_free(d->nt);
	d->nt = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct config cfg;
	char err[512];
	int rc;

	log_init("chatp2pd");
	parse_args(argc, argv, &o);
	if (load_config(&o, &cfg, err, sizeof err) != 0)
		die_config(err);
	apply_logging(&cfg);
	/* Peers and controllers that vanish must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* Every peer is a descriptor: take all the system allows (issue 13). */
	guard_raise_nofile();

	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct daemon d = { .loop = loop, .o = &o, .cfg = &cfg };
	ev_signal sigint, sigterm, sighup;
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&sighup, on_sighup, SIGHUP);
	sigint.data = sigterm.data = sighup.data = &d;
	ev_signal_start(loop, &sigint);
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sighup);

	if (o.rendezvous_server) {
		rc = run_rendezvous_server(&d, &cfg);
	} else {
		if (cfg.node.name[0] == '\0')
			die_config("node.name is required (--name NAME or config.json node.name)");
		rc = run_node(&d, &cfg);
	}
	ev_signal_stop(loop, &sigint);
	ev_signal_stop(loop, &sigterm);
	ev_signal_stop(loop, &sighup);
	ev_loop_destroy(loop);
	free(o.flags);
	log_close();
	return rc;
}
