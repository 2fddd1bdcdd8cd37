#include "peerid.h"

#include <stdio.h>
#include <string.h>

/* Characters in s if it is valid UTF-8 without control characters, else
 * -1.  Overlong forms and surrogates are refused so a name has one spelling. */
static long utf8_chars(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	long n = 0;

	while (p < end) {
		unsigned c = *p;
		int extra;
		unsigned cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return -1;
			p++;
			n++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			extra = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			extra = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			extra = 3;
			cp = c & 0x07;
		} else {
			return -1;
		}
		if (end - p <= extra)
			return -1;
		for (int i = 1; i <= extra; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return -1;
		p += extra + 1;
		n++;
	}
	return n;
}

static bool part_valid(const char *s, size_t len)
{
	long n = utf8_chars(s, len);

	if (n <= 0 || n > NAME_MAX_LEN || len > NAME_MAX_BYTES)
		return false;
	if (memchr(s, '@', len) != NULL)
		return false;
	/* Leading/trailing blanks make two ids that look alike. */
	return s[0] != ' ' && s[len - 1] != ' ';
}

bool name_valid(const char *s)
{
	return s != NULL && part_valid(s, strlen(s));
}

bool peer_id_valid(const char *s)
{
	const char *at;

	if (s == NULL)
		return false;
	at = strrchr(s, '@');
	if (at == NULL)
		return false;
	return part_valid(s, (size_t)(at - s)) && part_valid(at + 1, strlen(at + 1));
}

bool peer_id_split(const char *s, char *name, char *ns)
{
	const char *at;

	if (!peer_id_valid(s))
		return false;
	at = strrchr(s, '@');
	memcpy(name, s, (size_t)(at - s));
	name[at - s] = '\0';
	strcpy(ns, at + 1);
	return true;
}

const char *peer_id_ns(const char *s)
{
	if (!peer_id_valid(s))
		return NULL;
	return strrchr(s, '@') + 1;
}

void peer_id_make(char *out, const char *name, const char *ns)
{
	snprintf(out, PEER_ID_MAX + 1, "%s@%s", name, ns);
}
