/* Registrations across restarts: the store saved to a JSON file in the state
 * directory (like the public server's peers.json), and loaded at start.
 *
 * The file is written whole to "<path>.tmp" and renamed over <path>, so a
 * crash leaves either the previous file or the new one, never a torn one.
 * There is no fsync (the caller runs on the event loop): a power cut may
 * lose the last seconds of registrations, which clients re-send anyway;
 * rename atomicity still holds (and ext4 flushes a file renamed over
 * another).  Expiry is stored as wall-clock time, so time spent down counts;
 * entries already expired at load are dropped. */
#ifndef CHATP2PD_RDV_PERSIST_H
#define CHATP2PD_RDV_PERSIST_H
#include <stddef.h>

#include "rendezvous/server/store.h"

#define RDV_PERSIST_FILE     "peers.json"
#define RDV_PERSIST_MAX_SIZE (64u * 1024 * 1024) /* a bigger file is not ours */

struct rdv_persist_stats {
	size_t loaded;   /* entries restored */
	size_t expired;  /* dropped: expired while we were down */
	size_t invalid;  /* dropped: malformed, or over a cap */
};

/* Write every live entry of st to path (via path.tmp).  mono and wall are the
 * same instant on the two clocks.  0, or -1 with a reason in err. */
int rdv_persist_save(struct rdv_store *st, const char *path, double mono, double wall, char *err,
		     size_t errlen);

/* Restore the entries of path into st.  A missing file is an empty one (0).
 * -1 with a reason in err if the file cannot be read or is not such a JSON
 * array (st then holds what was restored before the problem, if anything). */
int rdv_persist_load(struct rdv_store *st, const char *path, double mono, double wall,
		     struct rdv_persist_stats *stats, char *err, size_t errlen);

#endif
