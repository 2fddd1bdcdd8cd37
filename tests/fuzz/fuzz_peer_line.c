/* libFuzzer: bytes from a peer, through the framer, into pmsg_parse, and
 * any parsed message rebuilt by the builders (nothing may crash or leak). */
#include <stddef.h>
#include <stdint.h>

#include "framer.h"
#include "msg.h"

static int on_line(void *ctx, enum framer_event ev, const char *line, size_t len)
{
	struct pmsg m;
	char err[128];
	struct buf out = BUF_INIT;

	if (ev != FRAMER_LINE)
		return 0;
	if (pmsg_parse(line, len, &m, err, sizeof err) == PMSG_OK) {
		if (m.msg_id && m.src && m.dst && m.payload)
			pmsg_build_send(&out, m.msg_id, m.src, m.dst, m.payload, m.require_ack != 0);
		if (m.peer_id)
			pmsg_build_hello(&out, true, m.peer_id, m.features);
		if (m.dst) {
			const char *rest;
			pub_target_parse(m.dst, &rest);
		}
	}
	pmsg_free(&m);
	buf_free(&out);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct framer f;

	framer_init(&f, FRAMER_MAX_LINE);
	/* Two feeds: lines that straddle reads take the copying path too. */
	framer_feed(&f, (const char *)data, size / 2, on_line, NULL);
	framer_feed(&f, (const char *)data + size / 2, size - size / 2, on_line, NULL);
	framer_free(&f);
	return 0;
}
