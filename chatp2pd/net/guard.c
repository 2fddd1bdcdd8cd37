#include "net/guard.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* One entry: "addr" or "addr/bits".  Returns false if it does not parse. */
static bool parse_entry(const char *s, size_t len, int *family, unsigned char net[16], int *bits)
{
	char text[64], *slash, *end;
	long b;

	if (len == 0 || len >= sizeof text)
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, text, net) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, text, net) == 1)
		*family = AF_INET6;
	else
		return false;
	*bits = *family == AF_INET ? 32 : 128;
	if (slash) {
		b = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || b < 0 || b > *bits)
			return false;
		*bits = (int)b;
	}
	return true;
}

static bool prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ b[whole]) & (0xff << (8 - rest))) == 0;
}

/* Calls fn for every entry; stops when it returns true. */
static bool each_entry(const char *list, bool (*fn)(const char *s, size_t len, void *ctx), void *ctx)
{
	const char *p = list;

	while (*p) {
		size_t len;
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len > 0 && fn(p, len, ctx))
			return true;
		p += len;
	}
	return false;
}

struct match { int family; unsigned char addr[16]; };

static bool entry_matches(const char *s, size_t len, void *ctx)
{
	struct match *m = ctx;
	unsigned char net[16];
	int family, bits;

	return parse_entry(s, len, &family, net, &bits) && family == m->family &&
	       prefix_eq(net, m->addr, bits);
}

bool guard_addr_in(const char *list, const char *ip)
{
	struct match m;

	if (inet_pton(AF_INET, ip, m.addr) == 1)
		m.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, m.addr) == 1)
		m.family = AF_INET6;
	else
		return false;
	/* An IPv4 peer on a dual-stack listener shows as ::ffff:a.b.c.d. */
	if (m.family == AF_INET6 && memcmp(m.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(m.addr, m.addr + 12, 4);
		m.family = AF_INET;
	}
	return each_entry(list, entry_matches, &m);
}

struct bad { char *out; unsigned outlen; };

static bool entry_bad(const char *s, size_t len, void *ctx)
{
	struct bad *b = ctx;
	unsigned char net[16];
	int family, bits;

	if (parse_entry(s, len, &family, net, &bits))
		return false;
	snprintf(b->out, b->outlen, "%.*s", (int)len, s);
	return true;
}

bool guard_addr_list_bad(const char *list, char *out, unsigned outlen)
{
	struct bad b = { out, outlen };

	return each_entry(list, entry_bad, &b);
}

long guard_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > 1L << 30)
		return 1L << 30;
	return (long)rl.rlim_cur;
}

long guard_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return guard_nofile();
}
