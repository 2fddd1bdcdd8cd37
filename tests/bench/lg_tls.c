/* Load generator: the bench peers' TLS identity (--tls).  The TLS itself is
 * chatp2pd's own (net/tls.c over memory BIOs, net/keys.c for the key and
 * its self-signed certificate), so the bench peers speak exactly what a
 * node speaks; lg_peer.c drives it. */
#include "lg.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/keys.h"
#include "net/tls.h"

struct tls_ctx *lg_tls_ctx;
char lg_tls_fingerprint[KEYS_FP_LEN];
static struct keys_identity ident;

void lg_tls_setup(const char *dir)
{
	char tmp[] = "/tmp/chatp2p-loadgen-XXXXXX", err[256], path[PATH_MAX];
	const char *d = dir;

	if (d == NULL && (d = mkdtemp(tmp)) == NULL)
		lg_die("--tls: mkdtemp: cannot make a key directory");
	if (keys_load_or_create(d, "bench@BENCH", &ident, err, sizeof err) != 0)
		lg_die("--tls: identity: %s", err);
	if (dir == NULL) {
		/* A throwaway key: nothing left behind. */
		snprintf(path, sizeof path, "%s/%s", d, KEYS_FILE);
		unlink(path);
		rmdir(d);
	}
	lg_tls_ctx = tls_ctx_new(&ident, err, sizeof err);
	if (lg_tls_ctx == NULL)
		lg_die("--tls: %s", err);
	snprintf(lg_tls_fingerprint, sizeof lg_tls_fingerprint, "%s", ident.fingerprint);
	if (lg_verbose)
		lg_warn("bench peers' key: %s", lg_tls_fingerprint);
}

void lg_tls_teardown(void)
{
	tls_ctx_free(lg_tls_ctx);
	lg_tls_ctx = NULL;
	keys_free(&ident);
}
