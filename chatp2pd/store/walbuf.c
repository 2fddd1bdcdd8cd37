/* SQLite's write-ahead log written once per commit.
 *
 * SQLite writes each WAL frame with two pwrite()s (its 24-byte header,
 * then the page).  Under a durable load that was most of the node's system
 * calls, ~10 a commit of a few pages, and on these virtual machines a
 * system call costs microseconds.  This VFS (a shim over the default one,
 * for WAL files) gathers the writes that continue one another and hands
 * them to the kernel as one when SQLite calls anything else on the file: a
 * read, a size, a lock, and above all the sync that ends a commit.
 *
 * The database file gets the same gathering, without the rest below: a
 * checkpoint writes its pages one pwrite each, in page order, and they
 * come in runs (measured: 5,243 page writes in 143 runs), each now one
 * write, all of it before the checkpoint's sync, which is always passed on.
 *
 * The sync is the guarantee.  walbuf_apply() runs the database at
 * synchronous=FULL, so SQLite syncs the WAL inside every COMMIT, after the
 * commit frame and before the frames become visible; our xSync writes what
 * is held there, and an error there fails the COMMIT (nothing is ACKed; the
 * frames never become part of the database).  Then:
 * - storage.sync=normal: fullfsync is off, so a commit's sync comes with
 *   SQLITE_SYNC_NORMAL, and for it we only write: when COMMIT returns the
 *   transaction is in the kernel, which is what SQLite's own
 *   synchronous=NORMAL gives in WAL mode (safe from a crash of the
 *   process, not from a power cut);
 * - checkpoint_fullfsync is on, so the syncs of a checkpoint come with
 *   SQLITE_SYNC_FULL, and those (like every sync in storage.sync=full,
 *   fullfsync on) reach the disk (fdatasync; Linux has no F_FULLFSYNC, so
 *   FULL and NORMAL are the same call for the default VFS).
 * A sync with nothing held is always passed on: we never skip a sync we
 * cannot account for.
 *
 * The buffer is also a mirror of the log, for reads: a checkpoint reads
 * every frame back (one pread a page, ~1,000 a checkpoint).  From the
 * write of a log's header at offset 0 (a new or restarted log), every byte
 * SQLite writes to it comes through here, so buf is the file's bytes
 * [0, len): a commit's frames are appended to it, what is held is its tail
 * [done, len), and a read inside [0, len) is a memcpy.  It holds only what
 * we wrote: at open (a log left by a crash, read by the recovery), after a
 * write that would leave a hole, or past WALBUF_MIRROR, we stop mirroring
 * until the log restarts, and reads go to the file. */
#include "store/walbuf.h"

#include <stdio.h>
#include <string.h>

#define WALBUF_VFS "chatp2p-walbuf"
/* Held at most this much: a long transaction (a big retention DELETE, the
 * outbox loaded at start) writes as it goes, in pieces of this size.  The
 * unix VFS writes at most 128 KiB a call (seekAndWrite: nBuf & 0x1ffff):
 * a bigger write fails as a full disk. */
#define WALBUF_MAX (120 * 1024)
/* The mirror at most: the log is ~4.1 MB when the autocheckpoint (1,000
 * pages) restarts it; a bigger transaction (a migration, a big DELETE) is
 * read from the file.  The buffer is kept when the log restarts (the next
 * one grows as big: freeing it would cost an munmap, an mmap and a page
 * fault a page at every checkpoint), freed at close. */
#define WALBUF_MIRROR (8 * 1024 * 1024)

struct wal_file {
	sqlite3_file base;
	sqlite3_file *real;         /* the default VFS's file, right after us */
	unsigned char *buf;         /* the file's bytes [off, off + len), as written */
	sqlite3_int64 off;
	int len, cap;
	int done;                   /* buf's first done bytes are in the file; the rest is held */
	bool mirror;                /* off is 0 and buf the log from its start (see the top) */
	bool log;                   /* a WAL file (else the database: gathered writes only) */
};

_Static_assert(sizeof(struct wal_file) % 8 == 0, "the real file after it must stay aligned");

static sqlite3_vfs walbuf;

/* Nothing held, nothing mirrored (the buffer is kept for the next). */
static void forget(struct wal_file *w)
{
	w->len = w->done = 0;
	w->mirror = false;
}

/* What is held, buf[done, len), to the kernel, in pieces the unix VFS takes.
 * After an error the file's bytes there are unknown: forgotten. */
static int release(struct wal_file *w)
{
	int rc = SQLITE_OK;

	while (rc == SQLITE_OK && w->done < w->len) {
		int n = w->len - w->done < WALBUF_MAX ? w->len - w->done : WALBUF_MAX;
		rc = w->real->pMethods->xWrite(w->real, w->buf + w->done, n, w->off + w->done);
		w->done += n;
	}
	if (rc != SQLITE_OK || !w->mirror)
		forget(w);
	return rc;
}

/* Room for n bytes in buf; false when there is no memory. */
static bool room(struct wal_file *w, int n)
{
	int cap = w->cap ? w->cap : 64 * 1024;

	if (n <= w->cap)
		return true;
	while (cap < n)
		cap *= 2;
	unsigned char *b = sqlite3_realloc(w->buf, cap);
	if (b == NULL)
		return false;
	w->buf = b;
	w->cap = cap;
	return true;
}

/* A write to the mirrored log, at most at its end and within WALBUF_MIRROR. */
static int mirror_write(struct wal_file *w, const void *data, int amt, sqlite3_int64 off)
{
	int end = (int)off + amt, len = end > w->len ? end : w->len, rc;

	/* Held past WALBUF_MAX: what is held goes first, as one piece. */
	if (len - w->done > WALBUF_MAX && (rc = release(w)) != SQLITE_OK)
		return rc;
	memcpy(w->buf + off, data, (size_t)amt);
	/* Over bytes already in the file (SQLite rewrites a frame of a
	 * transaction that spilled), or too big to hold: written now, after
	 * what is held. */
	if (off < w->done || len - w->done > WALBUF_MAX) {
		if ((rc = release(w)) != SQLITE_OK)
			return rc;
		if ((rc = w->real->pMethods->xWrite(w->real, data, amt, off)) != SQLITE_OK) {
			forget(w);
			return rc;
		}
		w->done = len;
	}
	w->len = len;
	return SQLITE_OK;
}

static int wal_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *w = (struct wal_file *)f;
	int rc;

	/* The header of a new or restarted log: what is held of the old one
	 * goes first, then we mirror the new one from its start. */
	if (off == 0 && w->log) {
		if ((rc = release(w)) != SQLITE_OK)
			return rc;
		forget(w);
		w->off = 0;
		w->mirror = true;
	}
	if (w->mirror) {
		if (off <= w->len && off + amt <= WALBUF_MIRROR &&
		    room(w, off + amt > w->len ? (int)off + amt : w->len))
			return mirror_write(w, data, amt, off);
		/* A hole, a log past WALBUF_MIRROR, or no memory: we stop
		 * mirroring (until the log restarts) and only gather, below. */
		if ((rc = release(w)) != SQLITE_OK)
			return rc;
		forget(w);
	}
	/* Not the continuation of what is held (SQLite rewrote a frame): what
	 * is held goes first, in order. */
	if (w->len > 0 && (off != w->off + w->len || w->len + amt > WALBUF_MAX))
		if ((rc = release(w)) != SQLITE_OK)
			return rc;
	if (amt > WALBUF_MAX)
		return w->real->pMethods->xWrite(w->real, data, amt, off);
	if (!room(w, w->len + amt)) {
		if ((rc = release(w)) != SQLITE_OK)
			return rc;
		return w->real->pMethods->xWrite(w->real, data, amt, off);
	}
	if (w->len == 0)
		w->off = off;
	memcpy(w->buf + w->len, data, (size_t)amt);
	w->len += amt;
	return SQLITE_OK;
}

static int wal_sync(sqlite3_file *f, int flags)
{
	struct wal_file *w = (struct wal_file *)f;
	bool held = w->len > w->done;
	int rc = release(w);

	if (rc != SQLITE_OK)
		return rc;
	/* The end of a commit in storage.sync=normal (see the top). */
	if (w->log && held && (flags & 0x0f) == SQLITE_SYNC_NORMAL)
		return SQLITE_OK;
	return w->real->pMethods->xSync(w->real, flags);
}

static int wal_close(sqlite3_file *f)
{
	struct wal_file *w = (struct wal_file *)f;
	int rc = release(w), rc2 = w->real->pMethods->xClose(w->real);

	sqlite3_free(w->buf);
	w->buf = NULL;
	w->cap = 0;
	forget(w);
	return rc != SQLITE_OK ? rc : rc2;
}

/* Every other call: what is held goes first, then the default VFS's. */
#define REAL(f) (((struct wal_file *)(f))->real)
#define RELEASE_OR_FAIL(f) do { int rc_ = release((struct wal_file *)(f)); \
	if (rc_ != SQLITE_OK) return rc_; } while (0)

static int wal_read(sqlite3_file *f, void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *w = (struct wal_file *)f;

	/* All inside the mirror: what the file holds (the held bytes once
	 * written).  Else all from the file, what is held first. */
	if (w->mirror && off + amt <= w->len) {
		memcpy(data, w->buf + off, (size_t)amt);
		return SQLITE_OK;
	}
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xRead(REAL(f), data, amt, off);
}

static int wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct wal_file *w = (struct wal_file *)f;

	RELEASE_OR_FAIL(f);
	/* The mirror ends where the file does (failed or not, [0, size) is
	 * as it was). */
	if (w->mirror && size < w->len)
		w->len = w->done = (int)size;
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int wal_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int wal_lock(sqlite3_file *f, int level)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int wal_unlock(sqlite3_file *f, int level)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int wal_check_reserved(sqlite3_file *f, int *out)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int wal_file_control(sqlite3_file *f, int op, void *arg)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int wal_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int wal_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* What the log and the database file share: writes gathered, every other
 * call after what is held. */
#define GATHERED_METHODS \
	.xClose = wal_close, .xRead = wal_read, .xWrite = wal_write, .xTruncate = wal_truncate, \
	.xSync = wal_sync, .xFileSize = wal_file_size, .xLock = wal_lock, .xUnlock = wal_unlock, \
	.xCheckReservedLock = wal_check_reserved, .xFileControl = wal_file_control, \
	.xSectorSize = wal_sector_size, .xDeviceCharacteristics = wal_device_characteristics

/* The database file's own: shared memory is not its content (and unused
 * with locking_mode=EXCLUSIVE); a memory map is, so what is held goes
 * first. */
static int db_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int db_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void db_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int db_shm_unmap(sqlite3_file *f, int delete_flag)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int db_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	RELEASE_OR_FAIL(f);
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int db_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods db_methods = {
	.iVersion = 3,
	GATHERED_METHODS,
	.xShmMap = db_shm_map,
	.xShmLock = db_shm_lock,
	.xShmBarrier = db_shm_barrier,
	.xShmUnmap = db_shm_unmap,
	.xFetch = db_fetch,
	.xUnfetch = db_unfetch,
};

/* Version 1: shared memory and memory maps belong to the database file,
 * never to its WAL. */
static const sqlite3_io_methods wal_methods = {
	.iVersion = 1,
	GATHERED_METHODS,
};

static int walbuf_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
		       int *out)
{
	sqlite3_vfs *real = vfs->pAppData;
	struct wal_file *w = (struct wal_file *)f;
	int rc;

	/* Neither a WAL nor a database (a temporary file): the default VFS's
	 * own file and methods in our place. */
	if (!(flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_DB)))
		return real->xOpen(real, name, f, flags, out);
	/* Not mirroring: a log already there is read from the file. */
	memset(w, 0, sizeof *w);
	w->real = (sqlite3_file *)(w + 1);
	w->log = (flags & SQLITE_OPEN_WAL) != 0;
	rc = real->xOpen(real, name, w->real, flags, out);
	/* SQLite closes what it opened only when pMethods is set.  The unix
	 * VFS's database methods are version 3: ours must be too. */
	if (w->real->pMethods == NULL)
		f->pMethods = NULL;
	else if (w->log)
		f->pMethods = &wal_methods;
	else if (w->real->pMethods->iVersion >= 3)
		f->pMethods = &db_methods;
	else
		f->pMethods = NULL; /* cannot happen with the unix VFS: refuse, not guess */
	if (f->pMethods == NULL && w->real->pMethods != NULL) {
		w->real->pMethods->xClose(w->real);
		return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
	}
	return rc;
}

const char *walbuf_vfs(void)
{
	static bool done;

	if (!done) {
		sqlite3_vfs *real = sqlite3_vfs_find(NULL);
		if (real == NULL)
			return NULL;
		/* The default VFS's other methods as they are: the unix ones read
		 * only fields we copy (xOpen is the one that needs its own). */
		walbuf = *real;
		walbuf.pNext = NULL;
		walbuf.zName = WALBUF_VFS;
		walbuf.pAppData = real;
		walbuf.szOsFile = (int)sizeof(struct wal_file) + real->szOsFile;
		walbuf.xOpen = walbuf_open;
		if (sqlite3_vfs_register(&walbuf, 0) != SQLITE_OK)
			return NULL;
		done = true;
	}
	return WALBUF_VFS;
}

int walbuf_apply(sqlite3 *db, bool durable, char *err, size_t errlen)
{
	const char *sql = durable ?
		"PRAGMA synchronous=FULL; PRAGMA fullfsync=ON; PRAGMA checkpoint_fullfsync=ON" :
		"PRAGMA synchronous=FULL; PRAGMA fullfsync=OFF; PRAGMA checkpoint_fullfsync=ON";
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

long walbuf_held(sqlite3 *db)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
	    f == NULL || f->pMethods != &wal_methods)
		return 0;
	return ((struct wal_file *)f)->len - ((struct wal_file *)f)->done;
}
