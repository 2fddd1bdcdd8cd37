/* Defences against resource exhaustion (issue 13): which source addresses
 * the per-address connection cap spares, and the descriptor budget. */
#ifndef CHATP2PD_GUARD_H
#define CHATP2PD_GUARD_H
#include <stdbool.h>

/* Is ip (text, v4 or v6) inside one of the entries of list: addresses or
 * prefixes ("127.0.0.0/8", "::1", "10.1.2.3"), separated by commas or
 * spaces?  Entries that do not parse never match. */
bool guard_addr_in(const char *list, const char *ip);
/* The first entry of list that does not parse, copied to out (for a
 * warning at start); false if every entry is fine. */
bool guard_addr_list_bad(const char *list, char *out, unsigned outlen);
/* Raise the soft RLIMIT_NOFILE to the hard one; returns the soft limit now. */
long guard_raise_nofile(void);
/* The soft RLIMIT_NOFILE now (a service manager or prlimit may change it). */
long guard_nofile(void);

#endif
