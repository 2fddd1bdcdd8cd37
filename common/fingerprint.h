/* Key fingerprints as PROTOCOL.md §5.2 writes them, the way `ssh-keygen -l`
 * does: "SHA256:" + unpadded base64 of the SHA-256 of the key's
 * SubjectPublicKeyInfo.  Shared by the daemon (keys, pins) and the client
 * (trust commands check an operator's typing before asking the daemon). */
#ifndef CHATP2P_FINGERPRINT_H
#define CHATP2P_FINGERPRINT_H
#include <stdbool.h>

/* "SHA256:" + 43 base64 characters + NUL, with room to spare. */
#define FINGERPRINT_LEN 64

/* Is s exactly "SHA256:" + 43 base64 characters encoding 32 bytes? */
bool fingerprint_valid(const char *s);

#endif
