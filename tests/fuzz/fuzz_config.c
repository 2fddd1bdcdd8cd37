/* libFuzzer: config.c, both ways a configuration arrives.  The first byte
 * chooses: even, the rest is a config.json file (config_load); odd, the
 * rest is lines of SECTION.KEY=VALUE as given to --set (config_set).  Then
 * config_check, and the documented round trip: config_dump read back with
 * config_load gives the same configuration (abort if not). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static void cleanup(void)
{
	unlink(path);
}

static void write_file(const void *p, size_t len)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		abort();
	if (len && fwrite(p, 1, len, f) != len)
		abort();
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, back;
	struct buf a = BUF_INIT, b = BUF_INIT;
	char err[512];
	int rc = 0;

	if (path[0] == '\0') {
		int fd;
		snprintf(path, sizeof path, "/tmp/chatp2p-fuzzcfg-XXXXXX");
		if ((fd = mkstemp(path)) < 0)
			abort();
		close(fd);
		atexit(cleanup);
	}
	if (size == 0)
		return 0;
	config_defaults(&c);
	if ((data[0] & 1) == 0) {
		write_file(data + 1, size - 1);
		rc = config_load(&c, path, true, err, sizeof err, NULL);
	} else {
		char *text = malloc(size);
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		for (char *line = text, *next; line && rc == 0; line = next) {
			char *eq;
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if ((eq = strchr(line, '=')) == NULL)
				continue;
			*eq = '\0';
			rc = config_set(&c, line, eq + 1, err, sizeof err);
		}
		free(text);
	}
	if (rc == 0) {
		config_check(&c, err, sizeof err);
		config_dump(&c, &a, false);
		config_dump(&c, &b, true);
		write_file(b.data, b.len);
		config_defaults(&back);
		if (config_load(&back, path, true, err, sizeof err, NULL) != 0) {
			fprintf(stderr, "config_dump output does not load: %s\n%s", err, buf_cstr(&b));
			abort();
		}
		buf_reset(&b);
		config_dump(&back, &b, false);
		if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
			fprintf(stderr, "round trip differs:\n%s%s", buf_cstr(&a), buf_cstr(&b));
			abort();
		}
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
