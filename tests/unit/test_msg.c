/* The message catalogue: builders, the lenient peer parser, PUB targets and
 * the rendezvous protocol. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "msg.h"
#include "timeutil.h"

#define ID1 "6f1c1e0a-3c2b-4a7e-9d6e-2b1f0c9a8e71"

static enum pmsg_status parse(const char *line, struct pmsg *m, char *err, size_t errlen)
{
	return pmsg_parse(line, strlen(line), m, err, errlen);
}

/* Parse what a builder appended to b (one line ending in '\n'). */
static void parse_built(struct buf *b, struct pmsg *m)
{
	char err[128] = "";

	assert_true(b->len > 0);
	assert_int_equal(b->data[b->len - 1], '\n');
	assert_null(memchr(b->data, '\n', b->len - 1)); /* exactly one line */
	if (pmsg_parse(b->data, b->len - 1, m, err, sizeof err) != PMSG_OK)
		fail_msg("built line does not parse: %s (%.*s)", err, (int)b->len, b->data);
}

static void assert_timestamp(const char *ts)
{
	double t;

	assert_non_null(ts);
	assert_int_equal(strlen(ts), 20); /* 2025-10-27T10:00:00Z */
	assert_int_equal(ts[19], 'Z');
	assert_true(iso8601_parse(ts, &t));
}

/* ---- builders, round trips -------------------------------------------- */

static void test_hello_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;

	assert_int_equal(pmsg_build_hello(&b, false, "alice@CIC", FEAT_OURS), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"HELLO\",\"peer_id\":\"alice@CIC\",\"version\":\"1.0\","
			    "\"features\":[\"ack\",\"metrics\",\"pipeline\"],\"ttl\":1}\n");
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_HELLO);
	assert_string_equal(m.type_str, "HELLO");
	assert_string_equal(m.peer_id, "alice@CIC");
	assert_string_equal(m.version, "1.0");
	assert_int_equal(m.features, FEAT_OURS);
	assert_int_equal(m.ttl, 1);
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_hello(&b, true, "bob@CIC", FEAT_ACK | FEAT_METRICS), 0);
	assert_non_null(strstr(buf_cstr(&b), "\"features\":[\"ack\",\"metrics\"],"));
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_HELLO_OK);
	assert_string_equal(m.peer_id, "bob@CIC");
	assert_int_equal(m.features, FEAT_ACK | FEAT_METRICS);
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_hello(&b, true, "bob@CIC", 0), 0);
	assert_non_null(strstr(buf_cstr(&b), "\"features\":[],"));
	parse_built(&b, &m);
	assert_int_equal(m.features, 0);
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_hello(&b, false, "jo\xc3\xa3o@CIC", FEAT_PIPELINE), 0);
	parse_built(&b, &m);
	assert_string_equal(m.peer_id, "jo\xc3\xa3o@CIC");
	assert_int_equal(m.features, FEAT_PIPELINE);
	pmsg_free(&m);
	buf_free(&b);
}

static void test_ping_pong_ack_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;
	static const struct {
		int (*build)(struct buf *, const char *);
		enum pmsg_type type;
		const char *prefix;
	} cases[] = {
		{ pmsg_build_ping, PM_PING, "{\"type\":\"PING\",\"msg_id\":\"" ID1 "\",\"timestamp\":\"" },
		{ pmsg_build_pong, PM_PONG, "{\"type\":\"PONG\",\"msg_id\":\"" ID1 "\",\"timestamp\":\"" },
		{ pmsg_build_ack, PM_ACK, "{\"type\":\"ACK\",\"msg_id\":\"" ID1 "\",\"timestamp\":\"" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_reset(&b);
		assert_int_equal(cases[i].build(&b, ID1), 0);
		assert_memory_equal(b.data, cases[i].prefix, strlen(cases[i].prefix));
		assert_non_null(strstr(buf_cstr(&b), "Z\",\"ttl\":1}\n"));
		parse_built(&b, &m);
		assert_int_equal(m.type, cases[i].type);
		assert_string_equal(m.msg_id, ID1);
		assert_timestamp(m.timestamp);
		assert_int_equal(m.ttl, 1);
		pmsg_free(&m);
	}
	buf_free(&b);
}

static void test_send_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;

	assert_int_equal(pmsg_build_send(&b, ID1, "alice@CIC", "bob@CIC", "oi \xc3\xa9 \"q\"\n", true), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"SEND\",\"msg_id\":\"" ID1 "\",\"src\":\"alice@CIC\","
			    "\"dst\":\"bob@CIC\",\"payload\":\"oi \xc3\xa9 \\\"q\\\"\\n\","
			    "\"require_ack\":true,\"ttl\":1}\n");
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_SEND);
	assert_string_equal(m.msg_id, ID1);
	assert_string_equal(m.src, "alice@CIC");
	assert_string_equal(m.dst, "bob@CIC");
	assert_string_equal(m.payload, "oi \xc3\xa9 \"q\"\n");
	assert_int_equal(m.require_ack, 1);
	assert_int_equal(m.ttl, 1);
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_send(&b, ID1, "alice@CIC", "bob@CIC", "", false), 0);
	parse_built(&b, &m);
	assert_int_equal(m.require_ack, 0);
	assert_string_equal(m.payload, ""); /* an empty message is still a message */
	pmsg_free(&m);
	buf_free(&b);
}

static void test_pub_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;

	assert_int_equal(pmsg_build_pub(&b, ID1, "alice@CIC", "#CIC", "hi all"), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"PUB\",\"msg_id\":\"" ID1 "\",\"src\":\"alice@CIC\","
			    "\"dst\":\"#CIC\",\"payload\":\"hi all\",\"require_ack\":false,\"ttl\":1}\n");
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_PUB);
	assert_string_equal(m.dst, "#CIC");
	assert_string_equal(m.payload, "hi all");
	assert_int_equal(m.require_ack, 0);
	pmsg_free(&m);
	buf_free(&b);
}

static void test_bye_roundtrip(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;

	assert_int_equal(pmsg_build_bye(&b, ID1, "alice@CIC", "bob@CIC", "shutdown"), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"BYE\",\"msg_id\":\"" ID1 "\",\"src\":\"alice@CIC\","
			    "\"dst\":\"bob@CIC\",\"reason\":\"shutdown\",\"ttl\":1}\n");
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_BYE);
	assert_string_equal(m.reason, "shutdown");
	assert_string_equal(m.src, "alice@CIC");
	assert_string_equal(m.dst, "bob@CIC");
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_bye(&b, ID1, "alice@CIC", "bob@CIC", NULL), 0);
	parse_built(&b, &m);
	assert_string_equal(m.reason, "");
	pmsg_free(&m);

	buf_reset(&b);
	assert_int_equal(pmsg_build_bye_ok(&b, ID1, "bob@CIC", "alice@CIC"), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"BYE_OK\",\"msg_id\":\"" ID1 "\",\"src\":\"bob@CIC\","
			    "\"dst\":\"alice@CIC\",\"ttl\":1}\n");
	parse_built(&b, &m);
	assert_int_equal(m.type, PM_BYE_OK);
	assert_string_equal(m.msg_id, ID1);
	assert_string_equal(m.src, "bob@CIC");
	assert_string_equal(m.dst, "alice@CIC");
	pmsg_free(&m);
	buf_free(&b);
}

/* A failed build appends nothing: what was in the buffer stays intact. */
static void test_build_refuses_bad_utf8(void **state)
{
	static const char bad[] = "bad\xff";
	static const char surr[] = "\xed\xa0\xbd";
	struct buf b = BUF_INIT;

	buf_puts(&b, "queued\n");
	assert_int_equal(pmsg_build_hello(&b, false, bad, FEAT_OURS), -1);
	assert_int_equal(pmsg_build_ping(&b, bad), -1);
	assert_int_equal(pmsg_build_pong(&b, surr), -1);
	assert_int_equal(pmsg_build_ack(&b, bad), -1);
	assert_int_equal(pmsg_build_send(&b, ID1, "a@b", "c@d", bad, true), -1);
	assert_int_equal(pmsg_build_send(&b, ID1, bad, "c@d", "x", true), -1);
	assert_int_equal(pmsg_build_send(&b, ID1, "a@b", surr, "x", true), -1);
	assert_int_equal(pmsg_build_pub(&b, ID1, "a@b", "*", bad), -1);
	assert_int_equal(pmsg_build_bye(&b, ID1, "a@b", "c@d", bad), -1);
	assert_int_equal(pmsg_build_bye_ok(&b, bad, "a@b", "c@d"), -1);
	assert_int_equal(rdv_build_register(&b, bad, "alice", 5000, 7200), -1);
	assert_int_equal(rdv_build_discover(&b, bad), -1);
	assert_int_equal(rdv_build_unregister(&b, "CIC", bad, 0), -1);
	/* NULL where a string is needed is refused the same way. */
	assert_int_equal(pmsg_build_send(&b, NULL, "a@b", "c@d", "x", true), -1);
	assert_int_equal(pmsg_build_ping(&b, NULL), -1);
	assert_int_equal(rdv_build_register(&b, NULL, "alice", 5000, 7200), -1);
	assert_int_equal(b.len, 7);
	assert_string_equal(buf_cstr(&b), "queued\n");

	/* Builders append after what is there. */
	assert_int_equal(pmsg_build_ack(&b, ID1), 0);
	assert_memory_equal(b.data, "queued\n{\"type\":\"ACK\"", 20);
	buf_free(&b);
}

/* ---- parsing: leniency ------------------------------------------------ */

static void test_parse_lenient_hello(void **state)
{
	struct pmsg m;
	char err[128];

	/* version as a number, no ttl, features in another order plus unknown
	 * and non-string entries. */
	assert_int_equal(parse("{\"features\":[\"pipeline\",7,\"zip\",\"ack\"],\"peer_id\":\"bob@CIC\","
			       "\"type\":\"HELLO\",\"version\":1}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_HELLO);
	assert_null(m.version);
	assert_int_equal(m.ttl, -1);
	assert_int_equal(m.features, FEAT_ACK | FEAT_PIPELINE);
	pmsg_free(&m);

	/* HELLO_OK without a usable peer_id: the dialler knows whom it dialled. */
	assert_int_equal(parse("{\"type\":\"HELLO_OK\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_HELLO_OK);
	assert_null(m.peer_id);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"HELLO_OK\",\"peer_id\":null,\"version\":\"1.0\"}", &m, err,
			       sizeof err), PMSG_OK);
	assert_null(m.peer_id);
	pmsg_free(&m);

	/* features missing or not an array. */
	assert_int_equal(parse("{\"type\":\"HELLO_OK\",\"peer_id\":\"bob@CIC\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.features, 0);
	assert_null(m.version);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"HELLO\",\"peer_id\":\"b@C\",\"features\":\"ack\",\"ttl\":\"1\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.features, 0);
	assert_int_equal(m.ttl, -1); /* a string ttl reads as missing */
	pmsg_free(&m);
	/* Features are matched exactly. */
	assert_int_equal(parse("{\"type\":\"HELLO\",\"peer_id\":\"b@C\",\"features\":[\"ACK\",\"metrics\"]}",
			       &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.features, FEAT_METRICS);
	pmsg_free(&m);
}

static void test_parse_lenient_send(void **state)
{
	struct pmsg m;
	char err[128];

	/* dest for dst, require_ack missing, naive timestamp kept as is. */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"src\":\"a@C\",\"dest\":\"b@C\","
			       "\"payload\":\"x\",\"timestamp\":\"2025-10-27 10:00:00.5\"}", &m, err, sizeof err),
			 PMSG_OK);
	assert_string_equal(m.dst, "b@C");
	assert_int_equal(m.require_ack, -1);
	assert_int_equal(m.ttl, -1);
	assert_string_equal(m.timestamp, "2025-10-27 10:00:00.5");
	pmsg_free(&m);

	/* dst wins over dest; require_ack null; no src, no dst at all is fine. */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"dst\":\"x@C\",\"dest\":\"y@C\","
			       "\"payload\":\"x\",\"require_ack\":null}", &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.dst, "x@C");
	assert_int_equal(m.require_ack, -1);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"payload\":\"x\",\"require_ack\":\"yes\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_null(m.dst);
	assert_null(m.src);
	assert_int_equal(m.require_ack, -1);
	pmsg_free(&m);

	/* Integers read the Python way. */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"payload\":\"x\",\"require_ack\":1}",
			       &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.require_ack, 1);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"payload\":\"x\",\"require_ack\":0,\"ttl\":1}",
			       &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.require_ack, 0);
	assert_int_equal(m.ttl, 1);
	pmsg_free(&m);

	/* Duplicate keys: the last wins. */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m1\",\"payload\":\"first\",\"payload\":\"last\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.payload, "last");
	pmsg_free(&m);
}

static void test_parse_bare_messages(void **state)
{
	struct pmsg m;
	char err[128];

	assert_int_equal(parse("{\"type\":\"ACK\",\"msg_id\":\"m1\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_ACK);
	assert_string_equal(m.msg_id, "m1");
	assert_null(m.timestamp);
	assert_int_equal(m.ttl, -1);
	pmsg_free(&m);

	assert_int_equal(parse("{\"type\":\"BYE_OK\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_BYE_OK);
	assert_null(m.msg_id);
	assert_null(m.src);
	pmsg_free(&m);

	assert_int_equal(parse("{\"type\":\"BYE\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_BYE);
	assert_null(m.reason);
	pmsg_free(&m);

	assert_int_equal(parse("{\"type\":\"PING\",\"msg_id\":\"p\"}", &m, err, sizeof err), PMSG_OK);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"PONG\",\"msg_id\":\"p\",\"timestamp\":\"2025-10-27T10:00:00+02:00\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.timestamp, "2025-10-27T10:00:00+02:00");
	pmsg_free(&m);
	/* Unknown extra fields are ignored. */
	assert_int_equal(parse("{\"type\":\"PING\",\"msg_id\":\"p\",\"x\":{\"y\":[1]},\"ttl\":1}",
			       &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.ttl, 1);
	pmsg_free(&m);
}

static void test_parse_unknown_type(void **state)
{
	struct pmsg m;
	char err[128];

	/* Case-sensitive: "send" is not SEND, and that is not an error. */
	assert_int_equal(parse("{\"type\":\"send\",\"msg_id\":\"m\",\"payload\":\"x\"}", &m, err, sizeof err),
			 PMSG_OK);
	assert_int_equal(m.type, PM_UNKNOWN);
	assert_string_equal(m.type_str, "send");
	pmsg_free(&m);

	assert_int_equal(parse("{\"type\":\"FOO\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_UNKNOWN);
	assert_string_equal(m.type_str, "FOO");
	pmsg_free(&m);

	assert_int_equal(parse("{\"type\":\"\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_UNKNOWN);
	pmsg_free(&m);

	/* Type names that only look alike. */
	assert_int_equal(parse("{\"type\":\"UNKNOWN\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_UNKNOWN);
	pmsg_free(&m);
	assert_int_equal(parse("{\"type\":\"HELLO \",\"peer_id\":\"a@b\"}", &m, err, sizeof err), PMSG_OK);
	assert_int_equal(m.type, PM_UNKNOWN);
	pmsg_free(&m);
}

static void test_parse_bad_json(void **state)
{
	const char *bad[] = {
		"", "not json", "{\"type\":\"PING\"", "[\"type\",\"PING\"]", "\"PING\"", "42", "null",
		"{}", "{\"type\":1}", "{\"type\":null}", "{\"type\":[\"PING\"]}", "{\"Type\":\"PING\"}",
		"{\"type\":\"PING\",\"msg_id\":\"\xff\"}",
	};
	struct pmsg m;
	char err[128];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (parse(bad[i], &m, err, sizeof err) != PMSG_BAD_JSON)
			fail_msg("not BAD_JSON: %s", bad[i]);
		assert_true(err[0] != '\0');
		pmsg_free(&m);
		pmsg_free(&m); /* twice is harmless */
		assert_null(m.arena);
	}
	/* A NUL inside the line. */
	assert_int_equal(pmsg_parse("{\"type\":\"PI\0NG\"}", 16, &m, err, sizeof err), PMSG_BAD_JSON);
	pmsg_free(&m);
	/* err is optional. */
	assert_int_equal(parse("x", &m, NULL, 0), PMSG_BAD_JSON);
	pmsg_free(&m);
}

static void test_parse_bad_fields(void **state)
{
	static const struct {
		const char *line;
		enum pmsg_type type;
		const char *field;
	} cases[] = {
		{ "{\"type\":\"HELLO\"}", PM_HELLO, "peer_id" },
		{ "{\"type\":\"HELLO\",\"peer_id\":42}", PM_HELLO, "peer_id" },
		{ "{\"type\":\"PING\"}", PM_PING, "msg_id" },
		{ "{\"type\":\"PING\",\"msg_id\":7}", PM_PING, "msg_id" },
		{ "{\"type\":\"PONG\",\"msg_id\":\"\"}", PM_PONG, "msg_id" },
		{ "{\"type\":\"ACK\"}", PM_ACK, "msg_id" },
		{ "{\"type\":\"ACK\",\"msg_id\":{\"id\":\"m\"}}", PM_ACK, "msg_id" },
		{ "{\"type\":\"SEND\",\"payload\":\"x\"}", PM_SEND, "msg_id" },
		{ "{\"type\":\"SEND\",\"msg_id\":\"m\"}", PM_SEND, "payload" },
		{ "{\"type\":\"SEND\",\"msg_id\":\"m\",\"payload\":5}", PM_SEND, "payload" },
		{ "{\"type\":\"PUB\",\"payload\":\"x\",\"dst\":\"*\"}", PM_PUB, "msg_id" },
		{ "{\"type\":\"PUB\",\"msg_id\":\"m\",\"dst\":\"*\"}", PM_PUB, "payload" },
		{ "{\"type\":\"PUB\",\"msg_id\":\"m\",\"payload\":\"x\"}", PM_PUB, "dst" },
		{ "{\"type\":\"PUB\",\"msg_id\":\"m\",\"payload\":\"x\",\"dst\":[\"*\"]}", PM_PUB, "dst" },
	};
	struct pmsg m;
	char err[128];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		if (parse(cases[i].line, &m, err, sizeof err) != PMSG_BAD_FIELDS)
			fail_msg("not BAD_FIELDS: %s", cases[i].line);
		assert_int_equal(m.type, cases[i].type);
		if (strstr(err, cases[i].field) == NULL)
			fail_msg("err \"%s\" does not name %s", err, cases[i].field);
		pmsg_free(&m);
		pmsg_free(&m);
	}
	/* PUB takes dest too. */
	assert_int_equal(parse("{\"type\":\"PUB\",\"msg_id\":\"m\",\"payload\":\"x\",\"dest\":\"CIC\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.dst, "CIC");
	pmsg_free(&m);
}

static void test_parse_python_escapes(void **state)
{
	struct pmsg m;
	char err[128];

	/* What json.dumps writes for "olé 😀". */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m\",\"payload\":\"ol\\u00e9 \\ud83d\\ude00\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.payload, "ol\xc3\xa9 \xf0\x9f\x98\x80");
	pmsg_free(&m);

	/* A lone surrogate is not an error: it reads as U+FFFD. */
	assert_int_equal(parse("{\"type\":\"SEND\",\"msg_id\":\"m\",\"payload\":\"a\\ud83db\"}",
			       &m, err, sizeof err), PMSG_OK);
	assert_string_equal(m.payload, "a\xef\xbf\xbd" "b");
	pmsg_free(&m);

	/* And the text survives a rebuild byte for byte. */
	struct buf b = BUF_INIT;
	assert_int_equal(pmsg_build_send(&b, "m", "a@C", "b@C", "ol\xc3\xa9 \xf0\x9f\x98\x80", true), 0);
	parse_built(&b, &m);
	assert_string_equal(m.payload, "ol\xc3\xa9 \xf0\x9f\x98\x80");
	pmsg_free(&m);
	buf_free(&b);
}

static void test_type_names(void **state)
{
	static const char *const want[PM__COUNT] = {
		"UNKNOWN", "HELLO", "HELLO_OK", "PING", "PONG", "SEND", "ACK", "PUB", "BYE", "BYE_OK",
	};
	struct pmsg m;
	char line[128];

	for (int t = 0; t < PM__COUNT; t++)
		assert_string_equal(pmsg_type_name((enum pmsg_type)t), want[t]);
	assert_string_equal(pmsg_type_name(PM__COUNT), "UNKNOWN");
	assert_string_equal(pmsg_type_name((enum pmsg_type)-1), "UNKNOWN");

	/* Every name parses back to its type (with all fields supplied). */
	for (int t = 1; t < PM__COUNT; t++) {
		snprintf(line, sizeof line, "{\"type\":\"%s\",\"peer_id\":\"a@b\",\"msg_id\":\"m\","
			 "\"payload\":\"p\",\"dst\":\"*\"}", want[t]);
		assert_int_equal(parse(line, &m, NULL, 0), PMSG_OK);
		assert_int_equal(m.type, t);
		pmsg_free(&m);
	}
}

/* ---- PUB targets ------------------------------------------------------ */

static void test_pub_target(void **state)
{
	const char *rest = "untouched";

	assert_int_equal(pub_target_parse("*", &rest), PUB_ALL);
	assert_int_equal(pub_target_parse("#CIC", &rest), PUB_NS);
	assert_string_equal(rest, "CIC");
	assert_int_equal(pub_target_parse("CIC", &rest), PUB_NS);
	assert_string_equal(rest, "CIC");
	assert_int_equal(pub_target_parse("bob@CIC", &rest), PUB_PEER);
	assert_string_equal(rest, "bob@CIC");
	assert_int_equal(pub_target_parse("#jo\xc3\xa3o", &rest), PUB_NS);
	assert_string_equal(rest, "jo\xc3\xa3o");

	assert_int_equal(pub_target_parse("", &rest), PUB_INVALID);
	assert_null(rest);
	assert_int_equal(pub_target_parse("#", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse(NULL, &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse("#a@b", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse("@CIC", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse("bob@", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse(" CIC", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse("a\tb", &rest), PUB_INVALID);
	assert_int_equal(pub_target_parse("**", &rest), PUB_NS); /* a valid, odd namespace */
	assert_int_equal(pub_target_parse("*", NULL), PUB_ALL);  /* rest is optional */
	assert_int_equal(pub_target_parse("#CIC", NULL), PUB_NS);
}

/* ---- rendezvous ------------------------------------------------------- */

static void test_rdv_builders(void **state)
{
	struct buf b = BUF_INIT;

	assert_int_equal(rdv_build_register(&b, "CIC", "alice", 5000, 7200), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"REGISTER\",\"namespace\":\"CIC\",\"name\":\"alice\","
			    "\"port\":5000,\"ttl\":7200}\n");
	buf_reset(&b);
	assert_int_equal(rdv_build_discover(&b, "CIC"), 0);
	assert_string_equal(buf_cstr(&b), "{\"type\":\"DISCOVER\",\"namespace\":\"CIC\"}\n");
	buf_reset(&b);
	assert_int_equal(rdv_build_discover(&b, NULL), 0);
	assert_string_equal(buf_cstr(&b), "{\"type\":\"DISCOVER\"}\n");
	buf_reset(&b);
	assert_int_equal(rdv_build_unregister(&b, "CIC", "alice", 5000), 0);
	assert_string_equal(buf_cstr(&b),
			    "{\"type\":\"UNREGISTER\",\"namespace\":\"CIC\",\"name\":\"alice\",\"port\":5000}\n");
	buf_reset(&b);
	assert_int_equal(rdv_build_unregister(&b, "CIC", NULL, 0), 0);
	assert_string_equal(buf_cstr(&b), "{\"type\":\"UNREGISTER\",\"namespace\":\"CIC\"}\n");
	buf_reset(&b);
	assert_int_equal(rdv_build_unregister(&b, "CIC", NULL, 5001), 0);
	assert_string_equal(buf_cstr(&b), "{\"type\":\"UNREGISTER\",\"namespace\":\"CIC\",\"port\":5001}\n");
	buf_free(&b);
}

static void test_rdv_register_ok(void **state)
{
	static const char line[] = "{\"status\":\"OK\",\"ttl\":7200,\"ip\":\"203.0.113.7\",\"port\":5000}";
	struct rdv_reply r;

	assert_int_equal(rdv_reply_parse(line, sizeof line - 1, &r), 0);
	assert_true(r.ok);
	assert_null(r.message);
	assert_int_equal(r.ttl, 7200);
	assert_string_equal(r.ip, "203.0.113.7");
	assert_int_equal(r.port, 5000);
	assert_int_equal(r.blocked_for, -1);
	assert_null(r.peers);
	assert_int_equal(r.npeers, 0);
	rdv_reply_free(&r);
	rdv_reply_free(&r);

	/* Older servers: observed_ip / observed_port, a string port. */
	static const char old[] =
		"{\"status\":\"OK\",\"observed_ip\":\"198.51.100.2\",\"observed_port\":41000,\"port\":\"5000\"}";
	assert_int_equal(rdv_reply_parse(old, sizeof old - 1, &r), 0);
	assert_true(r.ok);
	assert_string_equal(r.ip, "198.51.100.2");
	assert_int_equal(r.port, 5000);
	assert_int_equal(r.ttl, -1);
	rdv_reply_free(&r);

	static const char only_observed[] = "{\"status\":\"OK\",\"observed_ip\":\"1.2.3.4\",\"observed_port\":41000}";
	assert_int_equal(rdv_reply_parse(only_observed, sizeof only_observed - 1, &r), 0);
	assert_int_equal(r.port, 41000);
	rdv_reply_free(&r);

	/* A bare OK (UNREGISTER). */
	assert_int_equal(rdv_reply_parse("{\"status\":\"OK\"}", 15, &r), 0);
	assert_true(r.ok);
	assert_null(r.ip);
	assert_int_equal(r.port, 0);
	rdv_reply_free(&r);
}

static void test_rdv_errors(void **state)
{
	static const char msg[] = "{\"status\":\"ERROR\",\"message\":\"bad_port (abc)\"}";
	static const char old[] = "{\"status\":\"ERROR\",\"error\":\"bad_name\"}";
	static const char both[] = "{\"status\":\"ERROR\",\"message\":\"new\",\"error\":\"old\"}";
	static const char block[] =
		"{\"status\":\"ERROR\",\"message\":\"Connection from 127.0.0.1:5555 has been blocked due to "
		"excessive login attempts (limit: 50). The block will be lifted in 42 seconds.\"}";
	static const char notnum[] = "{\"status\":\"ERROR\",\"message\":\"lifted in a while\"}";
	static const char huge[] =
		"{\"status\":\"ERROR\",\"message\":\"lifted in 99999999999999999999999999 seconds.\"}";
	struct rdv_reply r;

	assert_int_equal(rdv_reply_parse(msg, sizeof msg - 1, &r), 0);
	assert_false(r.ok);
	assert_string_equal(r.message, "bad_port (abc)");
	assert_int_equal(r.blocked_for, -1);
	rdv_reply_free(&r);

	assert_int_equal(rdv_reply_parse(old, sizeof old - 1, &r), 0);
	assert_false(r.ok);
	assert_string_equal(r.message, "bad_name");
	rdv_reply_free(&r);

	assert_int_equal(rdv_reply_parse(both, sizeof both - 1, &r), 0);
	assert_string_equal(r.message, "new");
	rdv_reply_free(&r);

	assert_int_equal(rdv_reply_parse(block, sizeof block - 1, &r), 0);
	assert_false(r.ok);
	assert_int_equal(r.blocked_for, 42);
	rdv_reply_free(&r);

	assert_int_equal(rdv_reply_parse(notnum, sizeof notnum - 1, &r), 0);
	assert_int_equal(r.blocked_for, -1);
	rdv_reply_free(&r);

	assert_int_equal(rdv_reply_parse(huge, sizeof huge - 1, &r), 0);
	assert_true(r.blocked_for > 0); /* clamped, no overflow */
	rdv_reply_free(&r);
}

static void test_rdv_discover(void **state)
{
	static const char line[] =
		"{\"status\":\"OK\",\"peers\":["
		"{\"ip\":\"10.0.0.1\",\"port\":5000,\"name\":\"alice\",\"namespace\":\"CIC\",\"ttl\":7200,\"expires_in\":6931},"
		"{\"ip\":\"10.0.0.2\",\"port\":\"5001\",\"name\":\"bob\",\"namespace\":\"CIC\"},"
		"{\"ip\":\"10.0.0.3\",\"port\":0,\"name\":\"c\",\"namespace\":\"CIC\"},"        /* bad port */
		"{\"ip\":\"10.0.0.3\",\"port\":70000,\"name\":\"c\",\"namespace\":\"CIC\"},"
		"{\"ip\":\"10.0.0.3\",\"port\":\"50x\",\"name\":\"c\",\"namespace\":\"CIC\"},"
		"{\"ip\":\"10.0.0.3\",\"port\":5000.5,\"name\":\"c\",\"namespace\":\"CIC\"},"
		"{\"port\":5000,\"name\":\"c\",\"namespace\":\"CIC\"},"                          /* no ip */
		"{\"ip\":\"10.0.0.3\",\"port\":5000,\"name\":7,\"namespace\":\"CIC\"},"
		"{\"ip\":\"10.0.0.3\",\"port\":5000,\"name\":\"c\"},"
		"{\"ip\":\"\",\"port\":5000,\"name\":\"c\",\"namespace\":\"CIC\"},"
		"\"junk\",null,[],"
		"{\"ip\":\"10.0.0.4\",\"port\":65535,\"name\":\"dave\",\"namespace\":\"X\",\"observed_ip\":\"1.1.1.1\"}"
		"]}";
	struct rdv_reply r;

	assert_int_equal(rdv_reply_parse(line, sizeof line - 1, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.npeers, 3);
	assert_string_equal(r.peers[0].ip, "10.0.0.1");
	assert_string_equal(r.peers[0].name, "alice");
	assert_string_equal(r.peers[0].ns, "CIC");
	assert_int_equal(r.peers[0].port, 5000);
	assert_int_equal(r.peers[0].ttl, 7200);
	assert_int_equal(r.peers[0].expires_in, 6931);
	assert_string_equal(r.peers[1].name, "bob");
	assert_int_equal(r.peers[1].port, 5001);
	assert_int_equal(r.peers[1].ttl, -1);
	assert_int_equal(r.peers[1].expires_in, -1);
	assert_string_equal(r.peers[2].name, "dave");
	assert_int_equal(r.peers[2].port, 65535);
	rdv_reply_free(&r);
	assert_null(r.peers);
	assert_int_equal(r.npeers, 0);

	assert_int_equal(rdv_reply_parse("{\"status\":\"OK\",\"peers\":[]}", 26, &r), 0);
	assert_int_equal(r.npeers, 0);
	rdv_reply_free(&r);
	assert_int_equal(rdv_reply_parse("{\"status\":\"OK\",\"peers\":{}}", 26, &r), 0);
	assert_int_equal(r.npeers, 0);
	rdv_reply_free(&r);
}

static void test_rdv_not_a_reply(void **state)
{
	const char *bad[] = {
		"", "garbage", "[]", "{}", "{\"status\":1}", "{\"status\":null}", "{\"message\":\"x\"}",
		"{\"status\":\"OK\"", "\"OK\"",
	};
	struct rdv_reply r;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (rdv_reply_parse(bad[i], strlen(bad[i]), &r) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_null(r.arena);
		rdv_reply_free(&r); /* harmless after a failure */
	}
	/* Status case does not matter; any other status is a well-formed failure. */
	assert_int_equal(rdv_reply_parse("{\"status\":\"ok\"}", 15, &r), 0);
	assert_true(r.ok);
	rdv_reply_free(&r);
	assert_int_equal(rdv_reply_parse("{\"status\":\"WHAT\"}", 17, &r), 0);
	assert_false(r.ok);
	rdv_reply_free(&r);
}

/* A DISCOVER of any size (issue 10): 10,000 peers on one line, all kept;
 * odd entries skipped; the last of duplicate keys wins; nested values read
 * as absent. */
static void test_rdv_discover_large(void **state)
{
	struct buf b = BUF_INIT;
	struct rdv_reply r;
	const int n = 10000;

	buf_puts(&b, "{\"status\":\"OK\",\"peers\":[");
	for (int i = 0; i < n; i++)
		buf_printf(&b, "%s{\"ip\":\"10.0.%d.%d\",\"port\":%d,\"name\":\"p%d\","
			   "\"namespace\":\"CIC\",\"ttl\":7200,\"expires_in\":%d,\"x\":[{\"ip\":1}]}",
			   i ? "," : "", i / 256, i % 256, 4000 + i, i, 7000 - i % 100);
	buf_puts(&b, ",7,[{\"ip\":\"1.1.1.1\"}],{\"ip\":{\"a\":\"b\"},\"port\":1,\"name\":\"n\","
		     "\"namespace\":\"CIC\"}]}");
	assert_int_equal(rdv_reply_parse(b.data, b.len, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.npeers, n);
	assert_string_equal(r.peers[0].ip, "10.0.0.0");
	assert_string_equal(r.peers[n - 1].name, "p9999");
	assert_string_equal(r.peers[n - 1].ns, "CIC");
	assert_int_equal(r.peers[n - 1].port, 4000 + n - 1);
	assert_int_equal(r.peers[n - 1].ttl, 7200);
	assert_int_equal(r.peers[n - 1].expires_in, 7000 - (n - 1) % 100);
	rdv_reply_free(&r);
	buf_free(&b);

	static const char dup[] = "{\"status\":1,\"peers\":[{\"ip\":\"1.2.3.4\",\"port\":5,"
		"\"name\":\"a\",\"namespace\":\"CIC\"}],\"status\":\"OK\",\"peers\":[{\"ip\":\"5.6.7.8\","
		"\"port\":6,\"port\":\"7\",\"name\":\"b\",\"namespace\":\"CIC\",\"ttl\":1.5}],\"ttl\":{}}";
	assert_int_equal(rdv_reply_parse(dup, sizeof dup - 1, &r), 0);
	assert_true(r.ok);
	assert_int_equal(r.npeers, 1);
	assert_string_equal(r.peers[0].ip, "5.6.7.8");
	assert_int_equal(r.peers[0].port, 7);
	assert_int_equal(r.peers[0].ttl, -1);
	assert_int_equal(r.ttl, -1);
	rdv_reply_free(&r);
}

/* The ACK is written without the generator when its id needs no escaping:
 * the same bytes either way. */
static void test_ack_fast_path(void **state)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct pmsg m;

	assert_int_equal(pmsg_build_ack(&a, "plain-id_1/2"), 0);
	assert_int_equal(pmsg_build_ack(&b, "quote\"d\\id\x01"), 0);
	assert_non_null(strstr(buf_cstr(&b), "\"msg_id\":\"quote\\\"d\\\\id\\u0001\""));
	/* Same shape: replace the id in b's line and compare with a's, timestamp aside. */
	assert_int_equal(strncmp(buf_cstr(&a), "{\"type\":\"ACK\",\"msg_id\":\"plain-id_1/2\",\"timestamp\":\"", 50), 0);
	const char *ta = strstr(a.data, "\"timestamp\""), *tb = strstr(b.data, "\"timestamp\"");
	assert_non_null(ta);
	assert_non_null(tb);
	assert_int_equal(strlen(ta), strlen(tb));
	assert_int_equal(strncmp(ta, tb, 14), 0);
	assert_string_equal(ta + strlen(ta) - 10, tb + strlen(tb) - 10); /* ,"ttl":1}\n */
	assert_int_equal(pmsg_parse(a.data, a.len - 1, &m, NULL, 0), PMSG_OK);
	assert_int_equal(m.type, PM_ACK);
	assert_string_equal(m.msg_id, "plain-id_1/2");
	assert_int_equal(m.ttl, 1);
	pmsg_free(&m);
	buf_free(&a);
	buf_free(&b);
}

/* The event parsers bound nesting themselves (the fast prescan does not). */
static void test_deep_nesting_refused(void **state)
{
	struct buf b = BUF_INIT;
	struct pmsg m;
	struct rdv_reply r;

	buf_puts(&b, "{\"type\":\"PING\",\"msg_id\":\"x\",\"deep\":");
	for (int i = 0; i < 200; i++)
		buf_puts(&b, "[");
	for (int i = 0; i < 200; i++)
		buf_puts(&b, "]");
	buf_puts(&b, "}");
	assert_int_equal(pmsg_parse(b.data, b.len, &m, NULL, 0), PMSG_BAD_JSON);
	pmsg_free(&m);
	buf_reset(&b);
	buf_puts(&b, "{\"status\":\"OK\",\"peers\":");
	for (int i = 0; i < 200; i++)
		buf_puts(&b, "[");
	for (int i = 0; i < 200; i++)
		buf_puts(&b, "]");
	buf_puts(&b, "}");
	assert_int_equal(rdv_reply_parse(b.data, b.len, &r), -1);
	rdv_reply_free(&r);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_roundtrip),
		cmocka_unit_test(test_ping_pong_ack_roundtrip),
		cmocka_unit_test(test_send_roundtrip),
		cmocka_unit_test(test_pub_roundtrip),
		cmocka_unit_test(test_bye_roundtrip),
		cmocka_unit_test(test_build_refuses_bad_utf8),
		cmocka_unit_test(test_parse_lenient_hello),
		cmocka_unit_test(test_parse_lenient_send),
		cmocka_unit_test(test_parse_bare_messages),
		cmocka_unit_test(test_parse_unknown_type),
		cmocka_unit_test(test_parse_bad_json),
		cmocka_unit_test(test_parse_bad_fields),
		cmocka_unit_test(test_parse_python_escapes),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_pub_target),
		cmocka_unit_test(test_rdv_builders),
		cmocka_unit_test(test_rdv_register_ok),
		cmocka_unit_test(test_rdv_errors),
		cmocka_unit_test(test_rdv_discover),
		cmocka_unit_test(test_rdv_not_a_reply),
		cmocka_unit_test(test_rdv_discover_large),
		cmocka_unit_test(test_ack_fast_path),
		cmocka_unit_test(test_deep_nesting_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
