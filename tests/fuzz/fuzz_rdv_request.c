/* libFuzzer: request lines against our rendezvous server's protocol logic,
 * one store kept across inputs so registrations pile up and expire. */
#include <stddef.h>
#include <stdint.h>

#include "rendezvous/server/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rdv_store *st;
	static double now;
	struct buf out = BUF_INIT;
	char note[256];
	struct rdv_stream *s;

	if (st == NULL) {
		st = rdv_store_new(1024);
		rdv_store_set_max_per_ip(st, 256, false); /* both caps get hit */
	}
	now += 1;
	s = rdv_handle(st, size & 1 ? "127.0.0.1" : "::1", (const char *)data, size, now, &out, note,
		       sizeof note);
	if (s) {
		while (!rdv_stream_fill(s, st, now, &out, 4096))
			buf_reset(&out);
		rdv_stream_free(s);
	}
	buf_free(&out);
	return 0;
}
