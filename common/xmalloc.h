/* Allocation wrappers: every allocation is checked here, once.  Running out
 * of memory is a broken invariant for a daemon this size, so it is fatal. */
#ifndef CHATP2P_XMALLOC_H
#define CHATP2P_XMALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
