/* Logging: levels, module tags, the file, the journal prefix, the hook. */
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

static char dir[] = "/tmp/chatp2p-test-log-XXXXXX";

static char *slurp(const char *path)
{
	static char data[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(data, 1, sizeof data - 1, f);
	data[n] = '\0';
	fclose(f);
	return data;
}

/* Point stderr at a file so what the user would see can be read back. */
static void capture_stderr(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static void test_levels_parse(void **state)
{
	enum log_level l;

	assert_true(log_level_parse("debug", &l));
	assert_int_equal(l, LOGL_DEBUG);
	assert_true(log_level_parse("WARNING", &l));
	assert_int_equal(l, LOGL_WARNING);
	assert_true(log_level_parse("warn", &l));
	assert_int_equal(l, LOGL_WARNING);
	assert_true(log_level_parse("Error", &l));
	assert_int_equal(l, LOGL_ERROR);
	assert_false(log_level_parse("verbose", &l));
	assert_string_equal(log_level_name(LOGL_INFO), "INFO");
}

static void test_stderr_and_file(void **state)
{
	char err[256], file[256];
	char *s;

	snprintf(err, sizeof err, "%s/stderr", dir);
	snprintf(file, sizeof file, "%s/chatp2p.log", dir);
	unsetenv("JOURNAL_STREAM");
	log_init("testprog");
	capture_stderr(err);
	assert_int_equal(log_set_file(file), 0);
	log_set_level(LOGL_INFO);
	log_debug("Rendezvous", "hidden %d", 1);
	log_info("Rendezvous", "registered as %s", "alice@CIC");
	log_set_level(LOGL_DEBUG); /* changeable at runtime */
	log_debug("Peer", "now visible");
	log_warn("Peer", "evil\ninjected line");
	fflush(stderr);
	log_close();

	s = slurp(err);
	assert_null(strstr(s, "hidden"));
	assert_non_null(strstr(s, "INFO [Rendezvous] registered as alice@CIC\n"));
	assert_non_null(strstr(s, "DEBUG [Peer] now visible\n"));
	assert_non_null(strstr(s, "WARNING [Peer] evil?injected line\n"));
	assert_true(s[4] == '-' && s[10] == 'T'); /* starts with a timestamp */
	s = slurp(file);
	assert_non_null(strstr(s, "INFO [Rendezvous] registered as alice@CIC\n"));
	assert_null(strstr(s, "hidden"));
}

static void test_journal_prefix(void **state)
{
	char err[256], js[64];
	struct stat st;
	char *s;

	snprintf(err, sizeof err, "%s/journal", dir);
	capture_stderr(err);
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("testprog");
	assert_true(log_to_journal());
	log_set_level(LOGL_INFO);
	log_info("Main", "ready");
	log_error("Main", "boom");
	fflush(stderr);
	s = slurp(err);
	assert_string_equal(s, "<6>INFO [Main] ready\n<3>ERROR [Main] boom\n");

	setenv("JOURNAL_STREAM", "1:2", 1); /* some other stream: not the journal */
	log_init("testprog");
	assert_false(log_to_journal());
	unsetenv("JOURNAL_STREAM");
}

static int hook_calls;
static char hook_text[256];

static void hook(void *ctx, enum log_level l, const char *module, const char *text)
{
	hook_calls++;
	snprintf(hook_text, sizeof hook_text, "%s|%s|%s", log_level_name(l), module, text);
	log_error("Hook", "must not recurse"); /* dropped for the hook, printed */
}

static void test_hook(void **state)
{
	char err[256];

	snprintf(err, sizeof err, "%s/hook", dir);
	capture_stderr(err);
	log_init("testprog");
	log_set_level(LOGL_ERROR);
	log_set_hook(hook, NULL, LOGL_DEBUG); /* the hook sees below the stderr level */
	log_debug("Conn", "x=%d", 5);
	assert_int_equal(hook_calls, 1);
	assert_string_equal(hook_text, "DEBUG|Conn|x=5");
	log_set_hook(NULL, NULL, LOGL_DEBUG);
	log_info("Conn", "after");
	assert_int_equal(hook_calls, 1);
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_levels_parse),
		cmocka_unit_test(test_stderr_and_file),
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_hook),
	};

	if (mkdtemp(dir) == NULL)
		return 1;
	return cmocka_run_group_tests(tests, NULL, teardown);
}
