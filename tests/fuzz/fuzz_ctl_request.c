/* libFuzzer: request lines from a controller through the daemon's real
 * control path: the control socket's framer, dispatch (JSON-RPC checks, id
 * echo) and every method's params parsing and answer, against a real node.
 *
 * The node is set up once and never touches anything but loopback: it
 * listens on 127.0.0.1 and its rendezvous server is a loopback port that
 * refuses connections (a bound socket that does not listen), so "register"
 * and "discover" fail quickly; a fuzzed "connect" cannot exist (no method
 * takes an address).  The stop and reload hooks are stubs. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "control/control.h"
#include "log.h"
#include "node/node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static struct node *node;
static struct control *ctl;
static struct config cfg;
static char sock_path[128];
static int client = -1;

static void stop_stub(void *ctx) { (void)ctx; }

static int reload_stub(void *ctx, char *err, size_t errlen, char *note, size_t notelen)
{
	(void)ctx;
	(void)err;
	(void)errlen;
	snprintf(note, notelen, "fuzz");
	return 0;
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ctl_request setup: %s\n", what);
	abort();
}

static void set(const char *key, const char *value)
{
	char err[256];

	if (config_set(&cfg, key, value, err, sizeof err) != 0)
		die(err);
}

static int refusing_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0); /* kept open: nobody else gets the port */

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0)
		die("refusing port");
	return ntohs(sin.sin_port);
}

static void run_loop(int rounds)
{
	for (int i = 0; i < rounds; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static void connect_client(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
	client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (client < 0 || connect(client, (struct sockaddr *)&sun, sizeof sun) != 0)
		die("connect to the control socket");
	run_loop(2);
}

/* Read (and drop) everything the daemon wrote; notice its close. */
static void drain(void)
{
	char buf[65536];

	for (;;) {
		ssize_t n = recv(client, buf, sizeof buf, 0);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close(client); /* closed by the daemon (e.g. too much output) */
		client = -1;
		return;
	}
}

static char sock_dir[64];

/* No socket files left in /tmp by each run. */
static void cleanup(void)
{
	char cmd[sizeof sock_dir + 16];

	unlink(sock_path);
	/* The node's database, inside the run's own directory. */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", sock_dir);
	if (system(cmd) != 0)
		rmdir(sock_dir);
}

static void setup(void)
{
	char err[256], port[16], dir[] = "/tmp/chatp2p-fuzzctl-XXXXXX";
	struct control_hooks hooks = { stop_stub, reload_stub, NULL };

	log_init("fuzz_ctl_request");
	log_set_level(LOGL_ERROR);
	loop = ev_default_loop(0);
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	snprintf(sock_dir, sizeof sock_dir, "%s", dir);
	snprintf(sock_path, sizeof sock_path, "%s/ctl.sock", dir);
	atexit(cleanup);
	snprintf(port, sizeof port, "%d", refusing_port());
	config_defaults(&cfg);
	set("node.name", "fuzz");
	set("node.namespace", "CIC");
	set("node.listen", "127.0.0.1");
	set("node.port", "0");
	set("rendezvous.host", "127.0.0.1");
	set("rendezvous.port", port);
	set("logging.level", "ERROR");
	set("logging.log_to_file", "false");
	set("control.socket", sock_path);
	/* The inbox in the run's directory, never the user's ~/.local/state. */
	set("node.state_dir", sock_dir);
	node = node_new(loop, &cfg, err, sizeof err);
	if (node == NULL)
		die(err);
	node_start(node);
	ctl = control_new(loop, node, &cfg, sock_path, -1, &hooks, err, sizeof err);
	if (ctl == NULL)
		die(err);
	connect_client();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (loop == NULL)
		setup();
	if (client < 0)
		connect_client();
	/* The input is what a controller writes: one or more lines (a final
	 * '\n' is added so the last one is complete). */
	size_t off = 0;
	int tries = 0;
	while (off <= size && client >= 0 && tries++ < 1000) {
		const char nl = '\n';
		ssize_t n = off < size ? send(client, data + off, size - off, MSG_NOSIGNAL)
				       : send(client, &nl, 1, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			run_loop(1);
			drain();
			continue;
		}
		close(client);
		client = -1;
	}
	run_loop(4);
	if (client >= 0)
		drain();
	run_loop(1);
	/* A fuzzed log.set must not make every later run log at DEBUG. */
	log_set_level(LOGL_ERROR);
	return 0;
}
