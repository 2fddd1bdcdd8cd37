/* FNV-1a, the hash of every in-memory table of chatp2p (peer ids, msg ids,
 * ip strings): short keys, fast, no allocation.  Not a defence against
 * chosen keys: each table bounds its size or rate instead.  h is the offset
 * basis (FNV32_BASIS, FNV64_BASIS) or a running hash, so keys made of
 * several strings chain. */
#ifndef CHATP2P_FNV_H
#define CHATP2P_FNV_H
#include <stddef.h>
#include <stdint.h>

#define FNV32_BASIS 2166136261u
#define FNV64_BASIS 14695981039346656037ull

static inline uint32_t fnv32_byte(uint32_t h, unsigned char c)
{
	return (h ^ c) * 16777619u;
}

static inline uint32_t fnv32(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = fnv32_byte(h, (unsigned char)*s);
	return h;
}

static inline uint64_t fnv64_byte(uint64_t h, unsigned char c)
{
	return (h ^ c) * 1099511628211ull;
}

/* At most max bytes of s. */
static inline uint64_t fnv64n(uint64_t h, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++)
		h = fnv64_byte(h, (unsigned char)s[i]);
	return h;
}

static inline uint64_t fnv64(uint64_t h, const char *s)
{
	return fnv64n(h, s, SIZE_MAX);
}

#endif
