/* Peer identity: peer_id = name@namespace (PROTOCOL.md section 2). */
#ifndef CHATP2P_PEERID_H
#define CHATP2P_PEERID_H
#include <stdbool.h>
#include <stddef.h>

/* Lengths count characters, as the rendezvous server does (Python len());
 * buffers are sized in bytes for the worst case of 4-byte UTF-8. */
#define NAME_MAX_LEN 64
#define NS_MAX_LEN 64
#define NAME_MAX_BYTES (4 * NAME_MAX_LEN)
#define PEER_ID_MAX (2 * NAME_MAX_BYTES + 1) /* bytes, without NUL */

/* A name or namespace: 1..64 characters of valid UTF-8, no '@', no control
 * characters, no whitespace at either end. */
bool name_valid(const char *s);
/* name@namespace with both parts valid; the split is at the last '@'. */
bool peer_id_valid(const char *s);
/* Split a valid peer_id; name and ns must hold NAME_MAX_BYTES + 1. */
bool peer_id_split(const char *s, char *name, char *ns);
/* Namespace part of a peer_id, or NULL. */
const char *peer_id_ns(const char *s);
/* Write name@ns into out (PEER_ID_MAX + 1 bytes). */
void peer_id_make(char *out, const char *name, const char *ns);

#endif
