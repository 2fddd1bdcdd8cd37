/* The node's identity key (PROTOCOL.md §5.2): an Ed25519 key made at first
 * start and kept in the state directory readable by the node only, the
 * self-signed certificate TLS presents for it, and fingerprints written as
 * `ssh-keygen -l` does ("SHA256:" + unpadded base64 of the SHA-256 of the
 * SubjectPublicKeyInfo).  What identifies a node is the key; the
 * certificate's name (the peer_id) is only a label.  Start-up work: the
 * file I/O here happens before the event loop runs. */
#ifndef CHATP2PD_NET_KEYS_H
#define CHATP2PD_NET_KEYS_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fingerprint.h"

#define KEYS_FP_LEN FINGERPRINT_LEN
#define KEYS_FILE "identity.key"

struct keys_identity {
	EVP_PKEY *key;                  /* the private key */
	X509 *cert;                     /* self-signed, CN = peer_id */
	char fingerprint[KEYS_FP_LEN];  /* of key's public half */
	bool created;                   /* made by this call (first start) */
};

/* Load dir/identity.key, or create it (mode 0600, written whole and renamed)
 * when there is none, then make the certificate for peer_id.  A key file
 * that others may read, or that does not hold an Ed25519 key, is refused:
 * -1 with a one-line reason in err.  0 on success.  Start-up only
 * (main.c, before ev_run and before READY): a new key is fsync'd so that
 * a power cut never leaves the node a stranger to the peers that pinned
 * it, and nothing may wait on a disk once the loop runs. */
int keys_load_or_create(const char *dir, const char *peer_id, struct keys_identity *out,
			char *err, size_t errlen);
void keys_free(struct keys_identity *id);

/* The fingerprint of a public (or private) key; -1 if it cannot be encoded. */
int keys_fingerprint(EVP_PKEY *key, char out[KEYS_FP_LEN]);

#endif
