/* libFuzzer: the pin store's loader (pins_open).  The input is a whole
 * SQLite database image (first byte 'D'), or rows whose columns take any
 * type and value (anything else): either way pins_open loads or refuses,
 * never crashes, and every pin it keeps is well formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fingerprint.h"
#include "peerid.h"
#include "store/pins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool check(void *ctx, const struct pin *p)
{
	if (!peer_id_valid(p->peer_id) || !fingerprint_valid(p->fingerprint))
		abort();
	(*(size_t *)ctx)++;
	return true;
}

/* Bind the next column from the input: its type from one byte, then a
 * length-prefixed value. */
static void bind_next(sqlite3_stmt *s, int col, const uint8_t **p, const uint8_t *end)
{
	if (*p >= end) {
		sqlite3_bind_null(s, col);
		return;
	}
	uint8_t kind = *(*p)++;
	size_t len = *p < end ? *(*p)++ : 0;
	if (len > (size_t)(end - *p))
		len = (size_t)(end - *p);
	const uint8_t *v = *p;
	*p += len;
	switch (kind % 5) {
	case 0: sqlite3_bind_null(s, col); break;
	case 1: sqlite3_bind_text(s, col, (const char *)v, (int)len, SQLITE_TRANSIENT); break;
	case 2: sqlite3_bind_blob(s, col, v, (int)len, SQLITE_TRANSIENT); break;
	case 3: {
		long long x = 0;
		memcpy(&x, v, len < sizeof x ? len : sizeof x);
		sqlite3_bind_int64(s, col, x);
		break;
	}
	default: {
		double x = 0;
		memcpy(&x, v, len < sizeof x ? len : sizeof x);
		sqlite3_bind_double(s, col, x);
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
		sqlite3_close(db);
		return 0;
	}
	if (size > 0 && data[0] == 'D') {
		/* A database image, as a damaged or hand-made file would be. */
		unsigned char *img = sqlite3_malloc64(size - 1);
		if (!img || size == 1) {
			sqlite3_free(img);
			sqlite3_close(db);
			return 0;
		}
		memcpy(img, data + 1, size - 1);
		if (sqlite3_deserialize(db, "main", img, (sqlite3_int64)(size - 1),
					(sqlite3_int64)(size - 1),
					SQLITE_DESERIALIZE_FREEONCLOSE |
						SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
			sqlite3_close(db);
			return 0;
		}
	} else {
		/* A table with no type checks (as an old or edited file may
		 * have), then rows of any column types. */
		sqlite3_exec(db,
			     "CREATE TABLE pins (peer_id, fingerprint, first_seen, last_seen,"
			     " verified)",
			     NULL, NULL, NULL);
		sqlite3_stmt *s = NULL;
		sqlite3_prepare_v2(db, "INSERT INTO pins VALUES (?, ?, ?, ?, ?)", -1, &s, NULL);
		const uint8_t *p = data, *end = data + size;
		for (int row = 0; s && p < end && row < 64; row++) {
			for (int col = 1; col <= 5; col++)
				bind_next(s, col, &p, end);
			sqlite3_step(s);
			sqlite3_reset(s);
		}
		sqlite3_finalize(s);
	}
	long skipped = 0;
	char err[256];
	struct pins *pins = pins_open(db, &skipped, err, sizeof err);
	if (pins) {
		size_t n = 0;
		pins_each(pins, check, &n);
		if (n != pins_count(pins))
			abort();
		pins_close(pins);
	}
	sqlite3_close(db);
	return 0;
}
