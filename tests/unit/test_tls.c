/* The identity key (net/keys.c) and TLS through memory BIOs (net/tls.c):
 * fingerprints as PROTOCOL.md §5.2 writes them, the key file's creation and
 * its permissions, and a mutual TLS 1.3 handshake between two sessions with
 * the bytes carried by hand, as a connection carries them. */
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

#include <openssl/ssl.h>

#include "buf.h"
#include "fingerprint.h"
#include "net/keys.h"
#include "net/tls.h"

static char tmp[] = "/tmp/chatp2p-test-tls-XXXXXX";

static int setup(void **state)
{
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t len, const char *sub)
{
	snprintf(out, len, "%s/%s", tmp, sub);
}

/* The vector was computed with the openssl command line:
 * openssl pkey -pubout -outform DER | openssl dgst -sha256 -binary | base64 */
static void test_fingerprint_vector(void **state)
{
	unsigned char raw[32];
	for (int i = 0; i < 32; i++)
		raw[i] = (unsigned char)i;
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof raw);
	assert_non_null(k);
	char fp[KEYS_FP_LEN];
	assert_int_equal(keys_fingerprint(k, fp), 0);
	assert_string_equal(fp, "SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU");
	assert_true(fingerprint_valid(fp));
	EVP_PKEY_free(k);

	assert_false(fingerprint_valid(NULL));
	assert_false(fingerprint_valid(""));
	assert_false(fingerprint_valid("SHA256:"));
	assert_false(fingerprint_valid("sha256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU"));
	assert_false(fingerprint_valid("SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaU="));
	assert_false(fingerprint_valid("SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8Xka"));
	assert_false(fingerprint_valid("SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8Xka!"));
	/* The last character can only carry 4 bits: 'V' (21) has low bits set. */
	assert_false(fingerprint_valid("SHA256:oFCDfYUHBYLM9zlLCYiEfMMSy4glm4lImfbyOc8XkaV"));
}

static void test_key_made_once_private_and_kept(void **state)
{
	char dir[256], file[300], err[256];
	path_of(dir, sizeof dir, "a/state");
	struct keys_identity id, again;
	assert_int_equal(keys_load_or_create(dir, "alice@CIC", &id, err, sizeof err), 0);
	assert_true(id.created);
	assert_true(fingerprint_valid(id.fingerprint));
	snprintf(file, sizeof file, "%s/%s", dir, KEYS_FILE);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(keys_load_or_create(dir, "alice@CIC", &again, err, sizeof err), 0);
	assert_false(again.created);
	assert_string_equal(again.fingerprint, id.fingerprint);
	keys_free(&again);

	/* A name too long for a certificate's CN still gets a certificate. */
	char longname[200];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	assert_int_equal(keys_load_or_create(dir, longname, &again, err, sizeof err), 0);
	assert_string_equal(again.fingerprint, id.fingerprint);
	keys_free(&again);

	/* As ssh refuses an unprotected private key. */
	assert_int_equal(chmod(file, 0644), 0);
	assert_int_equal(keys_load_or_create(dir, "alice@CIC", &again, err, sizeof err), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(again.key);

	/* Not a key at all. */
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("not a key\n", f);
	fclose(f);
	assert_int_equal(chmod(file, 0600), 0);
	assert_int_equal(keys_load_or_create(dir, "alice@CIC", &again, err, sizeof err), -1);
	assert_non_null(strstr(err, "PEM"));
	keys_free(&id);
}

struct end {
	struct keys_identity id;
	struct tls_ctx *ctx;
	struct tls *tls;
	struct buf out;    /* ciphertext on its way to the other end */
	struct buf plain;  /* what the other end's application wrote */
};

static void end_init(struct end *e, const char *sub, bool server)
{
	char dir[256], err[256];
	memset(e, 0, sizeof *e);
	path_of(dir, sizeof dir, sub);
	assert_int_equal(keys_load_or_create(dir, sub, &e->id, err, sizeof err), 0);
	e->ctx = tls_ctx_new(&e->id, err, sizeof err);
	assert_non_null(e->ctx);
	e->tls = tls_new(e->ctx, server, &e->out);
}

static void end_free(struct end *e)
{
	tls_free(e->tls);
	tls_ctx_free(e->ctx);
	keys_free(&e->id);
	buf_free(&e->out);
	buf_free(&e->plain);
}

/* Carry what `from` wrote to `to`; tls_input's result. */
static int carry(struct end *from, struct end *to)
{
	int rc = tls_input(to->tls, from->out.data, from->out.len, &to->plain, &to->out);
	buf_reset(&from->out);
	return rc;
}

static void handshake(struct end *c, struct end *s)
{
	for (int i = 0; i < 8 && !(tls_handshake_done(c->tls) && tls_handshake_done(s->tls)); i++) {
		assert_int_equal(carry(c, s), 0);
		assert_int_equal(carry(s, c), 0);
	}
	assert_true(tls_handshake_done(c->tls));
	assert_true(tls_handshake_done(s->tls));
}

static void test_mutual_handshake_and_lines(void **state)
{
	struct end c, s;
	end_init(&c, "client", false);
	end_init(&s, "server", true);
	/* The ClientHello is ready at once; nothing is readable before the end. */
	assert_true(c.out.len > 0);
	assert_null(tls_peer_fingerprint(c.tls));
	assert_int_equal(tls_output(c.tls, "x", 1, &c.out), -1);
	handshake(&c, &s);
	assert_string_equal(tls_peer_fingerprint(c.tls), s.id.fingerprint);
	assert_string_equal(tls_peer_fingerprint(s.tls), c.id.fingerprint);

	const char line[] = "{\"type\":\"PING\"}\n";
	assert_int_equal(tls_output(c.tls, line, sizeof line - 1, &c.out), 0);
	assert_null(memmem(c.out.data, c.out.len, "PING", 4)); /* encrypted */
	assert_int_equal(carry(&c, &s), 0);
	assert_int_equal(s.plain.len, sizeof line - 1);
	assert_memory_equal(s.plain.data, line, sizeof line - 1);

	/* More than one record each way, delivered whole and in order. */
	size_t big = 100000;
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(tls_output(s.tls, data, big, &s.out), 0);
	assert_int_equal(carry(&s, &c), 0);
	assert_int_equal(c.plain.len, big);
	assert_memory_equal(c.plain.data, data, big);
	free(data);

	/* A clean end is told apart from an error. */
	tls_close_notify(c.tls, &c.out);
	assert_int_equal(carry(&c, &s), 1);
	end_free(&c);
	end_free(&s);
}

/* The client's first line may travel in the same segment as its Finished. */
static void test_line_with_the_finished_message(void **state)
{
	struct end c, s;
	end_init(&c, "client2", false);
	end_init(&s, "server2", true);
	assert_int_equal(carry(&c, &s), 0);  /* ClientHello → server flight */
	assert_int_equal(carry(&s, &c), 0);  /* → client done, Finished queued */
	assert_true(tls_handshake_done(c.tls));
	assert_int_equal(tls_output(c.tls, "SEND\n", 5, &c.out), 0);
	assert_int_equal(carry(&c, &s), 0);
	assert_true(tls_handshake_done(s.tls));
	assert_int_equal(s.plain.len, 5);
	assert_memory_equal(s.plain.data, "SEND\n", 5);
	end_free(&c);
	end_free(&s);
}

/* Plaintext where TLS is expected, on either side, is a failure. */
static void test_garbage_is_a_failure(void **state)
{
	struct end c, s;
	end_init(&c, "client3", false);
	end_init(&s, "server3", true);
	const char junk[] = "{\"type\":\"SEND\",\"payload\":\"hi\"}\n";
	struct buf plain = BUF_INIT, out = BUF_INIT;
	assert_int_equal(tls_input(s.tls, junk, sizeof junk - 1, &plain, &out), -1);
	assert_true(strlen(tls_error(s.tls)) > 0);
	assert_int_equal(plain.len, 0);
	assert_int_equal(tls_input(c.tls, junk, sizeof junk - 1, &plain, &out), -1);
	assert_int_equal(plain.len, 0);
	buf_free(&plain);
	buf_free(&out);
	end_free(&c);
	end_free(&s);
}

/* A client with no certificate cannot complete the handshake: the key
 * proof is both ways. */
static void test_client_without_certificate_refused(void **state)
{
	struct end s;
	end_init(&s, "server4", true);
	SSL_CTX *bare = SSL_CTX_new(TLS_method());
	SSL_CTX_set_min_proto_version(bare, TLS1_3_VERSION);
	SSL_CTX_set_verify(bare, SSL_VERIFY_NONE, NULL);
	SSL *cl = SSL_new(bare);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(rb, -1);
	SSL_set_bio(cl, rb, wb);
	SSL_set_connect_state(cl);
	int rc = 0;
	for (int i = 0; i < 6 && rc == 0; i++) {
		SSL_do_handshake(cl);
		char tmpb[16384];
		int n = BIO_read(wb, tmpb, sizeof tmpb);
		if (n > 0)
			rc = tls_input(s.tls, tmpb, (size_t)n, &s.plain, &s.out);
		if (s.out.len > 0) {
			BIO_write(rb, s.out.data, (int)s.out.len);
			buf_reset(&s.out);
		}
	}
	assert_int_equal(rc, -1);
	assert_false(tls_handshake_done(s.tls));
	SSL_free(cl);
	SSL_CTX_free(bare);
	end_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint_vector),
		cmocka_unit_test(test_key_made_once_private_and_kept),
		cmocka_unit_test(test_mutual_handshake_and_lines),
		cmocka_unit_test(test_line_with_the_finished_message),
		cmocka_unit_test(test_garbage_is_a_failure),
		cmocka_unit_test(test_client_without_certificate_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
