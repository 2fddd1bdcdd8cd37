/* Fingerprint syntax (see fingerprint.h). */
#include "fingerprint.h"

#include <string.h>

bool fingerprint_valid(const char *s)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (!s || strncmp(s, "SHA256:", 7) != 0)
		return false;
	s += 7;
	if (strlen(s) != 43 || strspn(s, b64) != 43)
		return false;
	/* 43 characters carry 258 bits: the last one's low 2 bits are zero. */
	const char *last = strchr(b64, s[42]);
	return ((last - b64) & 3) == 0;
}
