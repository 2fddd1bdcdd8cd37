/* libFuzzer: peer_id_valid and friends (common/peerid.c).  A valid id splits
 * into two valid parts that make the same id again; the namespace found by
 * peer_id_ns is the split's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peerid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char name[NAME_MAX_BYTES + 1], ns[NAME_MAX_BYTES + 1], again[PEER_ID_MAX + 1];

	memcpy(s, data, size);
	s[size] = '\0';
	name_valid(s);
	if (peer_id_valid(s)) {
		if (!peer_id_split(s, name, ns) || !name_valid(name) || !name_valid(ns))
			abort();
		peer_id_make(again, name, ns);
		if (strcmp(again, s) != 0)
			abort();
		const char *pns = peer_id_ns(s);
		if (pns == NULL || strcmp(pns, ns) != 0)
			abort();
	} else if (peer_id_split(s, name, ns)) {
		abort(); /* an invalid id must not split */
	}
	free(s);
	return 0;
}
