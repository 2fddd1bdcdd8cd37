/* Logging under a flood (issue 13): the per-kind rate limit with its
 * summary line, and the size cap with one rotation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

static char dir[] = "/tmp/chatp2p-test-loglim-XXXXXX";
static char path[256];

static size_t count(const char *file, const char *needle)
{
	char line[4096];
	size_t n = 0;
	FILE *f = fopen(file, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static long long size_of(const char *file)
{
	struct stat st;

	return stat(file, &st) == 0 ? (long long)st.st_size : -1;
}

static int setup(void **state)
{
	int fd = open("/dev/null", O_WRONLY);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/chatp2p.log", dir);
	dup2(fd, STDERR_FILENO); /* what goes to stderr is not under test here */
	close(fd);
	log_init("test");
	log_set_level(LOGL_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	char p1[300];

	log_close();
	snprintf(p1, sizeof p1, "%s.1", path);
	unlink(p1);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void refuse(int i)
{
	log_warn("Node", "refusing connection from 10.0.0.%d: over 20 per second", i % 250);
}

static void test_rate_limit(void **state)
{
	double t0;

	unlink(path);
	assert_int_equal(log_set_file(path), 0);
	log_set_limits(0, 5, 0.2);
	for (int i = 0; i < 1234 + 5; i++)
		refuse(i);
	log_info("Node", "another kind of line");
	assert_int_equal(count(path, "refusing connection"), 5);
	assert_int_equal(count(path, "another kind"), 1);
	/* The next window: the count of what was held back, then the line. */
	t0 = mono_now();
	while (mono_now() - t0 < 0.25)
		;
	refuse(0);
	assert_int_equal(count(path, "... and 1,234 more like it in the last"), 1);
	assert_int_equal(count(path, "refusing connection"), 6);
	log_set_file(NULL);
}

static void test_rotation(void **state)
{
	char p1[300];
	long long max = 8192;

	unlink(path);
	snprintf(p1, sizeof p1, "%s.1", path);
	assert_int_equal(log_set_file(path), 0);
	log_set_limits(max, 0, 10);
	for (int i = 0; i < 2000; i++)
		log_info("Peer", "line %d of a flood that would fill the disk", i);
	/* Never more than the cap (plus one line) in either file. */
	assert_true(size_of(path) > 0);
	assert_true(size_of(path) <= max + 200);
	assert_true(size_of(p1) >= max);
	assert_true(size_of(p1) <= max + 200);
	assert_int_equal(count(path, "line 1999 of"), 1);
	log_set_file(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_rotation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
