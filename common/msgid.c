#include "msgid.h"

#include <uuid/uuid.h>

void msgid_new(char out[MSGID_LEN])
{
	uuid_t u;

	/* Random (v4): ids must not leak the host's MAC or clock. */
	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}
