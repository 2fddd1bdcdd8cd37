/* libFuzzer: a rendezvous server's reply line, as the client parses it. */
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rdv_reply r;

	if (rdv_reply_parse((const char *)data, size, &r) == 0)
		rdv_reply_free(&r);
	return 0;
}
