#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

/* Scratch directory for the files under test, removed at the end. */
static char tmpdir[64];
static char path[128];

#define MAX_WARNINGS 8
static char warnings[MAX_WARNINGS][512];
static int nwarnings;

static void collect_warning(const char *msg)
{
	if (nwarnings < MAX_WARNINGS)
		snprintf(warnings[nwarnings], sizeof warnings[0], "%s", msg);
	nwarnings++;
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	return 0;
}

static int group_teardown(void **state)
{
	unlink(path);
	return rmdir(tmpdir);
}

static int test_setup(void **state)
{
	nwarnings = 0;
	unlink(path);
	return 0;
}

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* Load text over the defaults; returns config_load's result. */
static int load_text(struct config *c, const char *text, char *err, size_t errlen)
{
	config_defaults(c);
	write_file(text);
	err[0] = '\0';
	return config_load(c, path, true, err, errlen, collect_warning);
}

static void expect_error(const char *text, const char *want)
{
	struct config c;
	char err[1024], full[1024];

	assert_int_equal(load_text(&c, text, err, sizeof err), -1);
	snprintf(full, sizeof full, "%s: %s", path, want);
	assert_string_equal(err, full);
}

/* Compare configurations through their dumps: struct padding is not data. */
static void assert_config_equal(const struct config *a, const struct config *b)
{
	struct buf x = BUF_INIT, y = BUF_INIT;

	config_dump(a, &x, false);
	config_dump(b, &y, false);
	assert_string_equal(buf_cstr(&x), buf_cstr(&y));
	buf_free(&x);
	buf_free(&y);
}

static void test_defaults(void **state)
{
	struct config c;

	config_defaults(&c);
	assert_string_equal(c.rendezvous.host, "pyp2p.mfcaetano.cc");
	assert_int_equal(c.rendezvous.port, 8080);
	assert_true(c.rendezvous.discover_interval == 60);
	assert_int_equal(c.rendezvous.register_retry_attempts, 3);
	assert_true(c.rendezvous.register_backoff_base == 2);
	assert_true(c.rendezvous.ttl_warning_treshold == 60);
	assert_true(c.network.ack_timeout == 20);
	assert_int_equal(c.network.max_msg_size, 32768);
	assert_true(c.network.connection_timeout == 90);
	assert_int_equal(c.peer_connection.retry_attempts, 3);
	assert_true(c.peer_connection.backoff_base == 2);
	assert_int_equal(c.reconnection.max_attempts, 5);
	assert_true(c.reconnection.backoff_base == 2);
	assert_true(c.reconnection.backoff_max == 32);
	assert_true(c.reconnection.check_interval == 10);
	assert_true(c.keepalive.ping_interval == 30);
	assert_true(c.keepalive.ping_timeout == 10);
	assert_int_equal(c.keepalive.max_ping_failures, 3);
	/* The original client's DEBUG would fill a disk on an always-on
	 * daemon (issue 13): INFO, a capped file and a per-kind rate limit. */
	assert_string_equal(c.logging.level, "INFO");
	assert_true(c.logging.log_to_file);
	assert_string_equal(c.logging.file, "chatp2p.log");
	assert_int_equal(c.logging.max_size, 10485760);
	assert_int_equal(c.logging.rate_limit, 20);
	assert_int_equal(c.limits.max_connections_per_ip, 32);
	assert_string_equal(c.limits.exempt_addresses, "127.0.0.0/8, ::1");

	assert_string_equal(c.node.name, "");
	assert_string_equal(c.node.namespace_, "CIC");
	assert_string_equal(c.node.listen, "0.0.0.0");
	assert_int_equal(c.node.port, 5000);
	assert_int_equal(c.node.ttl, 7200);
	assert_string_equal(c.node.discover_namespace, "");
	assert_string_equal(c.control.socket, "");
	assert_int_equal(c.control.mode, 0660);
	assert_int_equal(c.control.max_clients, 64);
	assert_int_equal(c.control.max_output, 1048576);
	assert_int_equal(c.control.history, 1024);
	assert_int_equal(c.limits.max_connections, 1024);
	assert_int_equal(c.limits.out_queue_bytes, 4194304);
	assert_true(c.limits.handshake_timeout == 5);
	assert_true(c.limits.connect_timeout == 5);
	assert_true(c.limits.rendezvous_timeout == 5);
	assert_true(c.limits.send_gap_ms == 5);
	assert_true(c.limits.resend_interval == 1);
	assert_int_equal(c.limits.max_bad_lines, 10);
	assert_true(c.limits.bye_timeout == 2);
	assert_int_equal(c.limits.accept_rate, 20);
	assert_string_equal(c.rendezvous_server.listen, "0.0.0.0");
	assert_int_equal(c.rendezvous_server.port, 8080);
	assert_int_equal(c.rendezvous_server.rate_limit, 50);
	assert_true(c.rendezvous_server.rate_window == 60);
	assert_true(c.rendezvous_server.block_time == 60);
	assert_true(c.rendezvous_server.first_line_timeout == 1);
	assert_int_equal(c.rendezvous_server.max_clients, 4096);
	assert_int_equal(c.rendezvous_server.max_per_ip, 256);
	assert_true(c.rendezvous_server.quota_exempt_loopback);
	assert_string_equal(c.rendezvous_server.state_dir, "");

	char err[256] = "";
	assert_int_equal(config_check(&c, err, sizeof err), 0);
}

/* The shipped file is the defaults, byte for byte as config_dump writes them. */
static void test_repo_config_json(void **state)
{
	char repo[512], err[512] = "";
	struct config def, c;
	struct buf want = BUF_INIT, got = BUF_INIT;
	const char *slash = strrchr(__FILE__, '/');
	char chunk[4096];
	size_t n;
	bool same;
	FILE *f;

	assert_non_null(slash);
	snprintf(repo, sizeof repo, "%.*s/../../config.json", (int)(slash - __FILE__), __FILE__);

	config_defaults(&def);
	memset(&c, 0x55, sizeof c);
	config_defaults(&c);
	c.rendezvous.port = 1;
	assert_int_equal(config_load(&c, repo, true, err, sizeof err, collect_warning), 0);
	assert_string_equal(err, "");
	assert_int_equal(nwarnings, 0);
	assert_config_equal(&c, &def);

	f = fopen(repo, "r");
	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&got, chunk, n);
	fclose(f);
	config_dump(&def, &want, true);
	same = strcmp(buf_cstr(&got), buf_cstr(&want)) == 0;
	if (!same)
		fprintf(stderr, "config.json differs from the defaults; expected:\n%s", want.data);
	buf_free(&want);
	buf_free(&got);
	assert_true(same);
}

static void test_missing_file(void **state)
{
	struct config c, def;
	char err[512] = "", want[512];

	config_defaults(&def);
	config_defaults(&c);
	assert_int_equal(config_load(&c, path, false, err, sizeof err, collect_warning), 0);
	assert_config_equal(&c, &def);

	assert_int_equal(config_load(&c, path, true, err, sizeof err, collect_warning), -1);
	snprintf(want, sizeof want, "cannot read %s: %s", path, strerror(ENOENT));
	assert_string_equal(err, want);

	/* Unreadable is not missing: an error even when the file is optional. */
	assert_int_equal(config_load(&c, tmpdir, false, err, sizeof err, NULL), -1);
	snprintf(want, sizeof want, "cannot read %s: %s", tmpdir, strerror(EISDIR));
	assert_string_equal(err, want);
}

static void test_malformed(void **state)
{
	struct config c;
	char err[512], prefix[256];

	snprintf(prefix, sizeof prefix, "%s: invalid JSON: ", path);
	assert_int_equal(load_text(&c, "{\"rendezvous\": {", err, sizeof err), -1);
	assert_memory_equal(err, prefix, strlen(prefix));
	assert_null(strchr(err, '\n'));
	assert_true(strlen(err) > strlen(prefix));

	assert_int_equal(load_text(&c, "", err, sizeof err), -1);
	assert_memory_equal(err, prefix, strlen(prefix));
	assert_int_equal(load_text(&c, "{} {}", err, sizeof err), -1);
	assert_memory_equal(err, prefix, strlen(prefix));

	expect_error("[1, 2]", "expected a JSON object at the top level, got an array");
	expect_error("42", "expected a JSON object at the top level, got 42");
	expect_error("{\"network\": 5}", "network: expected an object, got 5");
	expect_error("{\"network\": null}", "network: expected an object, got null");
}

static void test_wrong_type(void **state)
{
	struct config c, def;
	char err[512];

	expect_error("{\"rendezvous\": {\"port\": \"abc\"}}",
	    "rendezvous.port: expected an integer 1..65535, got \"abc\"");
	expect_error("{\"network\": {\"ack_timeout\": \"5\"}}",
	    "network.ack_timeout: expected a number 0.001..86400, got \"5\"");
	expect_error("{\"logging\": {\"log_to_file\": 1}}",
	    "logging.log_to_file: expected true or false, got 1");
	expect_error("{\"node\": {\"name\": 7}}", "node.name: expected a string, got 7");
	expect_error("{\"node\": {\"namespace\": [\"CIC\"]}}",
	    "node.namespace: expected a string, got an array");
	expect_error("{\"logging\": {\"level\": \"verbose\"}}",
	    "logging.level: expected one of DEBUG, INFO, WARNING, ERROR, got \"verbose\"");
	expect_error("{\"keepalive\": {\"max_ping_failures\": 2.5}}",
	    "keepalive.max_ping_failures: expected an integer 1..1000, got 2.5");
	expect_error("{\"keepalive\": {\"max_ping_failures\": {}}}",
	    "keepalive.max_ping_failures: expected an integer 1..1000, got an object");
	/* Values are quoted on one line, escaped and cut short. */
	expect_error("{\"node\": {\"port\": \"a\\nb\\\"c\"}}",
	    "node.port: expected an integer 0..65535, got \"a\\u000ab\\\"c\"");
	expect_error("{\"node\": {\"port\": \"0123456789012345678901234567890123456789xyz\"}}",
	    "node.port: expected an integer 0..65535, "
	    "got \"0123456789012345678901234567890123456789...\"");

	/* An error changes nothing, not even keys read before it. */
	config_defaults(&def);
	assert_int_equal(load_text(&c, "{\"node\": {\"port\": 6000, \"ttl\": \"x\"}}", err,
	    sizeof err), -1);
	assert_config_equal(&c, &def);
}

static void test_out_of_range(void **state)
{
	expect_error("{\"rendezvous\": {\"port\": 70000}}",
	    "rendezvous.port: out of range (1..65535): 70000");
	expect_error("{\"rendezvous\": {\"port\": 0}}",
	    "rendezvous.port: out of range (1..65535): 0");
	expect_error("{\"network\": {\"max_msg_size\": 100}}",
	    "network.max_msg_size: out of range (256..1048576): 100");
	expect_error("{\"keepalive\": {\"ping_interval\": 0}}",
	    "keepalive.ping_interval: out of range (0.001..86400): 0");
	expect_error("{\"keepalive\": {\"ping_interval\": -1.5}}",
	    "keepalive.ping_interval: out of range (0.001..86400): -1.5");
	expect_error("{\"node\": {\"ttl\": 86401}}", "node.ttl: out of range (30..86400): 86401");
	/* Shorter, and refreshing it would spend the request budget. */
	expect_error("{\"node\": {\"ttl\": 29}}", "node.ttl: out of range (30..86400): 29");
	/* Beyond long long and beyond int: still a range error, no overflow. */
	expect_error("{\"node\": {\"ttl\": 99999999999999999999999}}",
	    "node.ttl: out of range (30..86400): 99999999999999999999999");
	expect_error("{\"node\": {\"ttl\": 4294967297}}",
	    "node.ttl: out of range (30..86400): 4294967297");
	expect_error("{\"node\": {\"ttl\": 1e300}}", "node.ttl: out of range (30..86400): 1e300");
}

static void test_string_limits(void **state)
{
	struct config c;
	char text[1024], err[512];
	char name[CFG_STR_MAX + 1];

	memset(name, 'a', CFG_STR_MAX - 1);
	name[CFG_STR_MAX - 1] = '\0';
	snprintf(text, sizeof text, "{\"node\": {\"name\": \"%s\"}}", name);
	assert_int_equal(load_text(&c, text, err, sizeof err), 0);
	assert_string_equal(c.node.name, name);

	name[CFG_STR_MAX - 1] = 'a';
	name[CFG_STR_MAX] = '\0';
	snprintf(text, sizeof text, "{\"node\": {\"name\": \"%s\"}}", name);
	snprintf(err, sizeof err, "node.name: too long (at most %d bytes)", CFG_STR_MAX - 1);
	expect_error(text, err);

	/* UTF-8 passes through; yajl decodes escapes. */
	assert_int_equal(load_text(&c, "{\"node\": {\"name\": \"jos\\u00e9\"}}", err, sizeof err), 0);
	assert_string_equal(c.node.name, "jos\xc3\xa9");
}

/* An unknown key or section is refused (issue 19): a typo would leave that
 * setting at its default unnoticed.  The message suggests the closest. */
static void test_unknown_keys_refused(void **state)
{
	struct config c;
	char err[512] = "", want[512];

	assert_int_equal(load_text(&c, "{\"rendezvous\": {\"prot\": 9000}}", err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: unknown key rendezvous.prot; did you mean rendezvous.port?", path);
	assert_string_equal(err, want);
	assert_int_equal(load_text(&c, "{\"rendezvouz\": {\"port\": 9000}}", err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: unknown section rendezvouz; did you mean rendezvous?", path);
	assert_string_equal(err, want);
	/* The right key in the wrong section. */
	assert_int_equal(load_text(&c, "{\"node\": {\"ack_timeout\": 5}}", err, sizeof err), -1);
	assert_non_null(strstr(err, "unknown key node.ack_timeout; did you mean network.ack_timeout?"));
	assert_int_equal(load_text(&c, "{\"bogus\": {\"x\": 2}}", err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: unknown section bogus", path);
	assert_string_equal(err, want);
	assert_int_equal(nwarnings, 0);
}

/* Where the JSON breaks: line and column (characters), as editors count. */
static void test_malformed_says_where(void **state)
{
	struct config c;
	char err[512];

	assert_int_equal(load_text(&c, "{\n  \"node\": {\n    \"name\": alice\n  }\n}\n", err, sizeof err), -1);
	assert_non_null(strstr(err, "(line 3, column 13)"));
}

/* Our own name is typed in commands: no blanks or punctuation. */
static void test_own_name_checked(void **state)
{
	struct config c;
	char err[512];

	config_defaults(&c);
	snprintf(c.node.name, sizeof c.node.name, "bad name!");
	assert_int_equal(config_check(&c, err, sizeof err), -1);
	assert_non_null(strstr(err, "node.name"));
	snprintf(c.node.name, sizeof c.node.name, "jos\xc3\xa9-2_b.c");
	assert_int_equal(config_check(&c, err, sizeof err), 0);
}

static void test_partial_and_numbers(void **state)
{
	struct config c;
	char err[512] = "";

	/* Keys not in the file keep their values; later duplicates win. */
	assert_int_equal(load_text(&c, "{\"node\": {\"port\": 9000.0, \"ttl\": 60, \"ttl\": 120},"
	    " \"network\": {\"ack_timeout\": 2.5, \"connection_timeout\": 7}}", err, sizeof err), 0);
	assert_int_equal(c.node.port, 9000);
	assert_int_equal(c.node.ttl, 120);
	assert_true(c.network.ack_timeout == 2.5);
	assert_true(c.network.connection_timeout == 7);
	assert_int_equal(c.rendezvous.port, 8080);
	assert_int_equal(c.network.max_msg_size, 32768);

	/* yajl allows comments; an empty object is fine. */
	assert_int_equal(load_text(&c, "/* defaults */ {}", err, sizeof err), 0);
	assert_int_equal(load_text(&c, "{\"node\": {}}", err, sizeof err), 0);
}

static void test_mode(void **state)
{
	struct config c;
	char err[512] = "";

	assert_int_equal(load_text(&c, "{\"control\": {\"mode\": \"0600\"}}", err, sizeof err), 0);
	assert_int_equal(c.control.mode, 0600);
	assert_int_equal(load_text(&c, "{\"control\": {\"mode\": 432}}", err, sizeof err), 0);
	assert_int_equal(c.control.mode, 0660);
	assert_int_equal(load_text(&c, "{\"control\": {\"mode\": \"640\"}}", err, sizeof err), 0);
	assert_int_equal(c.control.mode, 0640);
	expect_error("{\"control\": {\"mode\": \"0999\"}}",
	    "control.mode: expected an octal file mode such as \"0660\", got \"0999\"");
	expect_error("{\"control\": {\"mode\": \"\"}}",
	    "control.mode: expected an octal file mode such as \"0660\", got \"\"");
	expect_error("{\"control\": {\"mode\": \"01000\"}}",
	    "control.mode: out of range (0..0777): \"01000\"");
	expect_error("{\"control\": {\"mode\": 512}}", "control.mode: out of range (0..0777): 512");
	expect_error("{\"control\": {\"mode\": true}}",
	    "control.mode: expected an octal file mode such as \"0660\", got true");

	config_defaults(&c);
	assert_int_equal(config_set(&c, "control.mode", "0600", err, sizeof err), 0);
	assert_int_equal(c.control.mode, 0600);
	assert_int_equal(config_set(&c, "control.mode", "rw", err, sizeof err), -1);
	assert_string_equal(err,
	    "control.mode: expected an octal file mode such as \"0660\", got \"rw\"");
}

static void test_level(void **state)
{
	struct config c;
	char err[512] = "";

	assert_int_equal(load_text(&c, "{\"logging\": {\"level\": \"info\"}}", err, sizeof err), 0);
	assert_string_equal(c.logging.level, "INFO");
	assert_int_equal(load_text(&c, "{\"logging\": {\"level\": \"Warn\"}}", err, sizeof err), 0);
	assert_string_equal(c.logging.level, "WARNING");
	assert_int_equal(config_set(&c, "logging.level", "error", err, sizeof err), 0);
	assert_string_equal(c.logging.level, "ERROR");
	assert_int_equal(config_set(&c, "logging.level", "wArNiNg", err, sizeof err), 0);
	assert_string_equal(c.logging.level, "WARNING");
	assert_int_equal(config_set(&c, "logging.level", "debug", err, sizeof err), 0);
	assert_string_equal(c.logging.level, "DEBUG");
	assert_int_equal(config_set(&c, "logging.level", "trace", err, sizeof err), -1);
	assert_string_equal(err,
	    "logging.level: expected one of DEBUG, INFO, WARNING, ERROR, got \"trace\"");
	assert_string_equal(c.logging.level, "DEBUG");
}

static void test_set(void **state)
{
	struct config c;
	char err[512] = "";

	config_defaults(&c);
	assert_int_equal(config_set(&c, "rendezvous.port", "9090", err, sizeof err), 0);
	assert_int_equal(c.rendezvous.port, 9090);
	assert_int_equal(config_set(&c, "node.port", "0", err, sizeof err), 0);
	assert_int_equal(c.node.port, 0);
	assert_int_equal(config_set(&c, "node.ttl", "60.0", err, sizeof err), 0);
	assert_int_equal(c.node.ttl, 60);
	assert_int_equal(config_set(&c, "keepalive.ping_interval", "0.25", err, sizeof err), 0);
	assert_true(c.keepalive.ping_interval == 0.25);
	assert_int_equal(config_set(&c, "keepalive.ping_timeout", "1", err, sizeof err), 0);
	assert_true(c.keepalive.ping_timeout == 1);
	assert_int_equal(config_set(&c, "node.namespace", "UFRJ", err, sizeof err), 0);
	assert_string_equal(c.node.namespace_, "UFRJ");
	assert_int_equal(config_set(&c, "node.name", "", err, sizeof err), 0);
	assert_string_equal(c.node.name, "");
	assert_int_equal(config_set(&c, "node.name", "bob", err, sizeof err), 0);
	assert_string_equal(c.node.name, "bob");

	static const char *const yes[] = { "true", "1", "yes", "on", "TRUE" };
	static const char *const no[] = { "false", "0", "no", "off", "No" };
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(config_set(&c, "logging.log_to_file", no[i], err, sizeof err), 0);
		assert_false(c.logging.log_to_file);
		assert_int_equal(config_set(&c, "logging.log_to_file", yes[i], err, sizeof err), 0);
		assert_true(c.logging.log_to_file);
	}

	/* Errors name the key and leave the value alone. */
	assert_int_equal(config_set(&c, "rendezvous.port", "abc", err, sizeof err), -1);
	assert_string_equal(err, "rendezvous.port: expected an integer 1..65535, got \"abc\"");
	assert_int_equal(config_set(&c, "rendezvous.port", "12x", err, sizeof err), -1);
	assert_string_equal(err, "rendezvous.port: expected an integer 1..65535, got \"12x\"");
	assert_int_equal(config_set(&c, "rendezvous.port", "", err, sizeof err), -1);
	assert_string_equal(err, "rendezvous.port: expected an integer 1..65535, got \"\"");
	assert_int_equal(config_set(&c, "rendezvous.port", " 80", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "rendezvous.port", "0x50", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "rendezvous.port", "80.5", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "rendezvous.port", "70000", err, sizeof err), -1);
	assert_string_equal(err, "rendezvous.port: out of range (1..65535): 70000");
	assert_int_equal(config_set(&c, "rendezvous.port", "99999999999999999999999", err,
	    sizeof err), -1);
	assert_string_equal(err, "rendezvous.port: out of range (1..65535): 99999999999999999999999");
	assert_int_equal(c.rendezvous.port, 9090);

	assert_int_equal(config_set(&c, "network.ack_timeout", "nan", err, sizeof err), -1);
	assert_string_equal(err, "network.ack_timeout: expected a number 0.001..86400, got \"nan\"");
	assert_int_equal(config_set(&c, "network.ack_timeout", "inf", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "network.ack_timeout", "1e999", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "network.ack_timeout", "-1", err, sizeof err), -1);
	assert_string_equal(err, "network.ack_timeout: out of range (0.001..86400): -1");
	assert_true(c.network.ack_timeout == 20);
	assert_int_equal(config_set(&c, "limits.send_gap_ms", "0", err, sizeof err), 0);
	assert_true(c.limits.send_gap_ms == 0);

	assert_int_equal(config_set(&c, "logging.log_to_file", "maybe", err, sizeof err), -1);
	assert_string_equal(err, "logging.log_to_file: expected true or false, got \"maybe\"");

	assert_int_equal(config_set(&c, "node.name", "\xff", err, sizeof err), -1);
	assert_string_equal(err, "node.name: not valid UTF-8");
	assert_string_equal(c.node.name, "bob");

	assert_int_equal(config_set(&c, "rendezvous.foo", "1", err, sizeof err), -1);
	assert_string_equal(err, "unknown configuration key rendezvous.foo");
	assert_int_equal(config_set(&c, "rendezvous", "1", err, sizeof err), -1);
	assert_string_equal(err, "unknown configuration key rendezvous");
	assert_int_equal(config_set(&c, "node.namespace_", "x", err, sizeof err), -1);
	assert_string_equal(err, "unknown configuration key node.namespace_");
	assert_int_equal(config_set(&c, "rendezvous_port", "1", err, sizeof err), -1);
	assert_int_equal(config_set(&c, ".port", "1", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "rendezvous.port.x", "1", err, sizeof err), -1);
	assert_string_equal(err, "unknown configuration key rendezvous.port.x");
}

static void test_check(void **state)
{
	struct config c;
	char err[512] = "";

	config_defaults(&c);
	c.reconnection.backoff_max = 1;
	assert_int_equal(config_check(&c, err, sizeof err), -1);
	assert_string_equal(err,
	    "reconnection.backoff_max (1) is less than reconnection.backoff_base (2)");

	config_defaults(&c);
	c.keepalive.ping_timeout = 30.5;
	assert_int_equal(config_check(&c, err, sizeof err), -1);
	assert_string_equal(err,
	    "keepalive.ping_timeout (30.5) is greater than keepalive.ping_interval (30)");
	c.keepalive.ping_timeout = 30;
	assert_int_equal(config_check(&c, err, sizeof err), 0);

	config_defaults(&c);
	c.limits.out_queue_bytes = 32768;
	assert_int_equal(config_check(&c, err, sizeof err), -1);
	assert_string_equal(err,
	    "limits.out_queue_bytes (32768) is less than network.max_msg_size + 1 (32769)");

	config_defaults(&c);
	c.logging.file[0] = '\0';
	assert_int_equal(config_check(&c, err, sizeof err), -1);
	assert_string_equal(err, "logging.file is empty but logging.log_to_file is true");
	c.logging.log_to_file = false;
	assert_int_equal(config_check(&c, err, sizeof err), 0);
}

/* What config_dump writes, config_load reads back to the same configuration. */
static void test_dump_roundtrip(void **state)
{
	struct config c, back;
	struct buf out = BUF_INIT;
	char err[512] = "";

	config_defaults(&c);
	assert_int_equal(config_set(&c, "node.name", "al\"ice\\ \xc3\xa9", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "keepalive.ping_interval", "0.1", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "network.ack_timeout", "1e-3", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "control.mode", "0600", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "logging.log_to_file", "no", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "logging.level", "warn", err, sizeof err), 0);

	for (int pretty = 0; pretty <= 1; pretty++) {
		buf_reset(&out);
		config_dump(&c, &out, pretty);
		assert_true(out.len > 0 && out.data[out.len - 1] == '\n');
		/* One line unless pretty. */
		assert_true((memchr(out.data, '\n', out.len - 1) != NULL) == pretty);
		write_file(buf_cstr(&out));
		config_defaults(&back);
		assert_int_equal(config_load(&back, path, true, err, sizeof err, collect_warning), 0);
		assert_true(back.keepalive.ping_interval == 0.1);
		assert_true(back.network.ack_timeout == 0.001);
		assert_config_equal(&back, &c);
	}
	assert_int_equal(nwarnings, 0);
	assert_non_null(strstr(buf_cstr(&out), "\"mode\": \"0600\""));
	buf_free(&out);
}

static void test_describe(void **state)
{
	struct buf out = BUF_INIT;
	const char *s;

	config_describe(&out);
	s = buf_cstr(&out);
	assert_non_null(strstr(s, "| `rendezvous.ttl_warning_treshold` | number | `60` | 0..86400 |"));
	assert_non_null(strstr(s, "| `node.port` | integer | `5000` | 0..65535 |"));
	assert_non_null(strstr(s, "| `control.mode` | string (octal) | `\"0660\"` | 0..0777 |"));
	assert_non_null(strstr(s, "| `node.namespace` | string | `\"CIC\"` | up to 255 bytes |"));
	/* One row per key, plus the two header lines. */
	size_t lines = 0;
	for (const char *p = s; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 2 + 6 + 3 + 2 + 4 + 3 + 5 + 7 + 5 + 19 + 10 + 8 + 3 + 1);
	buf_free(&out);
}

static void test_too_large(void **state)
{
	struct config c;
	char err[512], want[512];
	size_t n = 1024 * 1024 + 10;
	char *big = malloc(n + 1);

	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	assert_int_equal(load_text(&c, big, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: file too large (more than 1048576 bytes)", path);
	assert_string_equal(err, want);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, test_setup),
		cmocka_unit_test_setup(test_repo_config_json, test_setup),
		cmocka_unit_test_setup(test_missing_file, test_setup),
		cmocka_unit_test_setup(test_malformed, test_setup),
		cmocka_unit_test_setup(test_wrong_type, test_setup),
		cmocka_unit_test_setup(test_out_of_range, test_setup),
		cmocka_unit_test_setup(test_string_limits, test_setup),
		cmocka_unit_test_setup(test_unknown_keys_refused, test_setup),
		cmocka_unit_test_setup(test_malformed_says_where, test_setup),
		cmocka_unit_test_setup(test_own_name_checked, test_setup),
		cmocka_unit_test_setup(test_partial_and_numbers, test_setup),
		cmocka_unit_test_setup(test_mode, test_setup),
		cmocka_unit_test_setup(test_level, test_setup),
		cmocka_unit_test_setup(test_set, test_setup),
		cmocka_unit_test_setup(test_check, test_setup),
		cmocka_unit_test_setup(test_dump_roundtrip, test_setup),
		cmocka_unit_test_setup(test_describe, test_setup),
		cmocka_unit_test_setup(test_too_large, test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
