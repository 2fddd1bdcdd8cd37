/* libFuzzer: the rendezvous role's registrations file (peers.json) as read
 * at start (rdv_persist_load): any bytes load or are refused, never crash;
 * what loaded saves and loads again to the same entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rendezvous/server/persist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/chatp2p-fuzzpersist-XXXXXX";
static char path[96];

static void cleanup(void)
{
	char tmp[128];

	unlink(path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
}

static size_t live(struct rdv_store *s, double now)
{
	size_t cursor = 0, n = 0;
	struct rdv_view v;

	while (rdv_store_next(s, &cursor, NULL, now, &v))
		n++;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rdv_store *a, *b;
	struct rdv_persist_stats st;
	char err[512];
	FILE *f;

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(path, sizeof path, "%s/%s", dir, RDV_PERSIST_FILE);
		atexit(cleanup);
	}
	if ((f = fopen(path, "w")) == NULL)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);

	a = rdv_store_new(64);
	rdv_store_set_max_per_ip(a, 8, false);
	/* wall 1.7e9, mono 100: entries may be expired, capped or clamped */
	if (rdv_persist_load(a, path, 100.0, 1.7e9, &st, err, sizeof err) == 0) {
		size_t n = live(a, 100.0);
		if (rdv_persist_save(a, path, 100.0, 1.7e9, err, sizeof err) != 0)
			abort();
		b = rdv_store_new(64);
		rdv_store_set_max_per_ip(b, 8, false);
		if (rdv_persist_load(b, path, 100.0, 1.7e9, &st, err, sizeof err) != 0 ||
		    live(b, 100.0) != n) {
			fprintf(stderr, "saved %zu entries, reloaded %zu: %s\n", n, live(b, 100.0), err);
			abort();
		}
		rdv_store_free(b);
	}
	rdv_store_free(a);
	return 0;
}
