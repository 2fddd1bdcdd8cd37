/* The registrations as a JSON file (like the public server's peers.json).
 * Until issue 18 the server role kept them this way; they now live in a
 * SQLite database (store/registrations.h), and a peers.json found in the
 * state directory is loaded here once, to be imported.
 *
 * rdv_persist_save writes the file whole to "<path>.tmp" and renames it
 * over <path>, so a crash leaves either the previous file or the new one,
 * never a torn one (kept for tests and tools).  Expiry is stored as
 * wall-clock time, so time spent down counts; entries already expired at
 * load are dropped. */
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
