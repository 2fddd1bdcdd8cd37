/* SQLite's write-ahead log written once per commit and read back from
 * memory, the checkpoints' database writes gathered: a VFS over the
 * default one (see walbuf.c for why and for what it guarantees). */
#ifndef CHATP2P_STORE_WALBUF_H
#define CHATP2P_STORE_WALBUF_H

#include <stdbool.h>
#include <stddef.h>

#include <sqlite3.h>

/* The VFS's name for sqlite3_open_v2() (registered at the first call, not
 * as the default), or NULL when it cannot be registered. */
const char *walbuf_vfs(void);

/* The PRAGMAs that make db's commits go through walbuf as the durability
 * mode asks: durable=false (storage.sync=normal: a commit has reached the
 * kernel when it returns), true (full: and the disk).  Run them outside a
 * transaction.  0 ok, -1 error (err). */
int walbuf_apply(sqlite3 *db, bool durable, char *err, size_t errlen);

/* Bytes of db's WAL still held in our memory: 0 after every commit (a
 * check for the caller that is about to acknowledge it). */
long walbuf_held(sqlite3 *db);

#endif
