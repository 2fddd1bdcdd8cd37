/* libFuzzer: what the daemon sends to chatp2pctl.  The bytes arrive on the
 * client's real socket path (framer, JSON, matching by id, notifications),
 * three requests being pending; each answer goes through ctl_reply_status
 * and every output formatter, each notification through both event
 * printers (to /dev/null).  Nothing may crash, leak or hang. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "ctlproto.h"
#include "output.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static void on_reply(void *ctx, jval reply)
{
	char msg[512];
	jval r;

	if (reply == NULL)
		return;
	ctl_reply_status(reply, msg, sizeof msg);
	print_json(devnull, reply, true);
	print_json(devnull, reply, false);
	if ((r = ctl_result(reply)) != NULL) {
		out_status(devnull, r);
		out_peers(devnull, r);
		out_conn(devnull, r);
		out_rtt(devnull, r);
		out_reconnect(devnull, r);
		out_rendezvous(devnull, (const char *)ctx, r);
	}
	json_free(reply);
}

static void on_note(void *ctx, jval note)
{
	(void)ctx;
	out_event(devnull, note);
	out_event_json(devnull, note);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_client c;
	int sv[2];

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	memset(&c, 0, sizeof c);
	c.fd = sv[0];
	c.next_id = 1;
	framer_init(&c.fr, CTL_MAX_LINE);
	c.on_note = on_note;
	/* ids 1, 2, 3 */
	ctl_request(&c, "status", NULL, on_reply, "status");
	ctl_request(&c, "discover", NULL, on_reply, "discover");
	ctl_request(&c, "peers", NULL, on_reply, "peers");
	ctl_handle(&c, POLLOUT);
	/* The daemon's side: the fuzz input, then EOF. */
	for (size_t off = 0; off < size;) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	while (ctl_handle(&c, POLLIN) == EX_OK)
		;
	ctl_close(&c);
	close(sv[1]);
	return 0;
}
