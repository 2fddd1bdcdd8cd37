/* libFuzzer: the bytes after HELLO_OK in a connection's state machine
 * (net/conn.c with its TLS filter, PROTOCOL.md §5.2).  A real connection
 * over a socketpair: the other end writes a handshake line then the input;
 * the line starts TLS (as server, or as client when the first input byte
 * is odd), the rest of that segment and everything after it go through
 * tls_input, and whatever plaintext comes out through the framer.  The
 * connection must end in a close or keep running, never crash, leak, or
 * write a byte in clear after STARTTLS. */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "net/conn.h"
#include "net/keys.h"
#include "net/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static struct config cfg;
static struct tls_ctx *ctx;
static bool server;
static bool closed;
static int lines_after;

static void on_connected(void *c_, struct conn *c) { (void)c_; (void)c; }
static void on_overflow(void *c_, struct conn *c) { (void)c_; (void)c; }
static void on_wrote(void *c_, struct conn *c, const char *l, size_t n) { (void)c_; (void)c; (void)l; (void)n; }
static void on_first(void *c_, struct conn *c) { (void)c_; (void)c; }
static void on_deadline(void *c_, struct conn *c) { (void)c_; conn_close(c, "deadline"); }
static void on_drained(void *c_, struct conn *c) { (void)c_; (void)c; }
static void on_closed(void *c_, struct conn *c, const char *why)
{
	(void)c_;
	(void)c;
	if (getenv("FUZZ_DEBUG"))
		fprintf(stderr, "closed: %s (lines after TLS: %d)\n", why, lines_after);
	closed = true;
}

static void on_line(void *c_, struct conn *c, const char *text, size_t len)
{
	(void)c_;
	(void)text;
	(void)len;
	if (c->tls == NULL) {
		/* The handshake line: STARTTLS now, the rest of the segment is TLS. */
		conn_start_tls(c, ctx, server);
		return;
	}
	/* A line only ever comes out of TLS after the handshake. */
	if (!c->secured)
		abort();
	lines_after++;
}

static void on_secured(void *c_, struct conn *c, const char *fp)
{
	(void)c_;
	if (fp == NULL || !c->secured)
		abort();
	/* Writes now go encrypted. */
	struct buf b = BUF_INIT;
	buf_puts(&b, "{\"type\":\"PING\"}\n");
	conn_put(c, &b, false);
	buf_free(&b);
}

static const struct conn_cbs cbs = {
	.connected = on_connected, .line = on_line, .overflow = on_overflow, .wrote = on_wrote,
	.first_written = on_first, .deadline = on_deadline, .drained = on_drained,
	.secured = on_secured, .closed = on_closed,
};

static void init(void)
{
	char dir[] = "/tmp/fuzz_conn_tls.XXXXXX", err[256];
	struct keys_identity id;

	loop = ev_loop_new(EVFLAG_AUTO);
	config_defaults(&cfg);
	if (!mkdtemp(dir) || keys_load_or_create(dir, "fuzz@CIC", &id, err, sizeof err) != 0 ||
	    (ctx = tls_ctx_new(&id, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz_conn_tls: %s\n", err);
		abort();
	}
	keys_free(&id);
	char path[sizeof dir + 32];
	snprintf(path, sizeof path, "%s/%s", dir, KEYS_FILE);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	struct sockaddr_storage sa;

	if (loop == NULL)
		init();
	if (size == 0 || size > 60000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	server = (data[0] & 1) == 0;
	closed = false;
	lines_after = 0;
	memset(&sa, 0, sizeof sa);
	sa.ss_family = AF_UNIX;
	struct conn *c = conn_accept(loop, &cfg, sv[0], &sa, &cbs, NULL);
	/* The handshake line and what follows in the same segment. */
	static const char hello[] = "{\"type\":\"HELLO_OK\",\"features\":[\"starttls\"]}\n";
	uint8_t *seg = malloc(sizeof hello - 1 + size - 1);
	memcpy(seg, hello, sizeof hello - 1);
	memcpy(seg + sizeof hello - 1, data + 1, size - 1);
	ssize_t w = write(sv[1], seg, sizeof hello - 1 + size - 1);
	(void)w;
	free(seg);
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 64 && !closed; i++)
		ev_run(loop, EVRUN_NOWAIT);
	/* After STARTTLS nothing leaves in clear: the peer reads only TLS
	 * records (content types 20..23, version 3.x). */
	uint8_t out[65536];
	ssize_t n = read(sv[1], out, sizeof out);
	if (n >= 5 && !(out[0] >= 20 && out[0] <= 23 && out[1] == 3))
		abort();
	if (!closed)
		conn_close(c, "fuzz input done");
	close(sv[1]);
	return 0;
}
