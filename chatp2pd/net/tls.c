/* TLS 1.3 through memory BIOs (see tls.h).  Modelled on nginx's
 * ngx_event_openssl.c and libevent's bufferevent_openssl: the socket is
 * never handed to OpenSSL; bytes go in with BIO_write and come out with
 * BIO_read, so WANT_READ only ever means "feed me more from the socket". */
#include "net/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "xmalloc.h"

/* What one SSL_read may append at most (a TLS record's plaintext). */
#define TLS_READ_CHUNK 16384

struct tls_ctx {
	SSL_CTX *ssl;
};

struct tls {
	SSL *ssl;
	BIO *rbio;  /* socket → OpenSSL */
	BIO *wbio;  /* OpenSSL → socket */
	bool done;  /* handshake finished and the peer's key read */
	char fingerprint[KEYS_FP_LEN];
	char err[160];
};

/* Every certificate is self-signed: chains and CAs mean nothing here.  The
 * handshake's CertificateVerify proves the key is held; the node compares
 * the key with its pins once the handshake is done. */
static int accept_self_signed(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

struct tls_ctx *tls_ctx_new(const struct keys_identity *id, char *err, size_t errlen)
{
	SSL_CTX *ssl = SSL_CTX_new(TLS_method());
	if (!ssl) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	bool ok = SSL_CTX_set_min_proto_version(ssl, TLS1_3_VERSION) == 1 &&
		  SSL_CTX_use_certificate(ssl, id->cert) == 1 &&
		  SSL_CTX_use_PrivateKey(ssl, id->key) == 1 &&
		  SSL_CTX_check_private_key(ssl) == 1;
	if (!ok) {
		char e[120];
		ERR_error_string_n(ERR_get_error(), e, sizeof e);
		ERR_clear_error();
		SSL_CTX_free(ssl);
		snprintf(err, errlen, "TLS context: %s", e);
		return NULL;
	}
	SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   accept_self_signed);
	/* Idle connections give their record buffers back (a thousand of
	 * them would otherwise hold ~34 KB each). */
	SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	/* No resumption: every connection proves its key afresh, and no
	 * tickets are written after the handshake. */
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ssl, 0);
	struct tls_ctx *ctx = xcalloc(1, sizeof *ctx);
	ctx->ssl = ssl;
	return ctx;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ssl);
	free(ctx);
}

/* Move what OpenSSL wrote into cipher_out. */
static void drain(struct tls *t, struct buf *cipher_out)
{
	size_t pending;
	while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
		buf_reserve(cipher_out, pending);
		int n = BIO_read(t->wbio, cipher_out->data + cipher_out->len, (int)pending);
		if (n <= 0)
			break;
		cipher_out->len += (size_t)n;
	}
}

static int failed(struct tls *t, const char *what)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char s[120];
		ERR_error_string_n(e, s, sizeof s);
		snprintf(t->err, sizeof t->err, "%s: %s", what, s);
	} else {
		snprintf(t->err, sizeof t->err, "%s", what);
	}
	ERR_clear_error();
	return -1;
}

struct tls *tls_new(struct tls_ctx *ctx, bool server, struct buf *cipher_out)
{
	struct tls *t = xcalloc(1, sizeof *t);
	t->ssl = SSL_new(ctx->ssl);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio)
		abort(); /* out of memory: fatal, as everywhere (xmalloc.h) */
	/* An empty BIO means "more to come", never end of file. */
	BIO_set_mem_eof_return(t->rbio, -1);
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		SSL_do_handshake(t->ssl); /* WANT_READ after the ClientHello */
		ERR_clear_error();
		drain(t, cipher_out);
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

static int finish_handshake(struct tls *t)
{
	X509 *peer = SSL_get0_peer_certificate(t->ssl);
	EVP_PKEY *pub = peer ? X509_get0_pubkey(peer) : NULL;
	if (!pub)
		return failed(t, "the peer presented no certificate");
	if (EVP_PKEY_get_id(pub) != EVP_PKEY_ED25519)
		return failed(t, "the peer's key is not Ed25519");
	if (keys_fingerprint(pub, t->fingerprint) != 0)
		return failed(t, "cannot read the peer's key");
	t->done = true;
	return 0;
}

int tls_input(struct tls *t, const void *cipher, size_t len, struct buf *plain_out,
	      struct buf *cipher_out)
{
	if (len > 0 && BIO_write(t->rbio, cipher, (int)len) != (int)len)
		return failed(t, "TLS input");
	int rc = 0;
	if (!t->done) {
		int r = SSL_do_handshake(t->ssl);
		if (r == 1) {
			rc = finish_handshake(t);
		} else {
			int e = SSL_get_error(t->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				rc = failed(t, "TLS handshake");
		}
	}
	while (rc == 0 && t->done) {
		buf_reserve(plain_out, TLS_READ_CHUNK);
		size_t got = 0;
		int r = SSL_read_ex(t->ssl, plain_out->data + plain_out->len, TLS_READ_CHUNK, &got);
		if (r == 1) {
			plain_out->len += got;
			continue;
		}
		int e = SSL_get_error(t->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ERR_clear_error();
			break;
		}
		if (e == SSL_ERROR_ZERO_RETURN) {
			snprintf(t->err, sizeof t->err, "the peer ended TLS (close_notify)");
			rc = 1;
			break;
		}
		rc = failed(t, "TLS read");
	}
	/* Alerts too: a failed handshake tells the other side why. */
	drain(t, cipher_out);
	return rc;
}

int tls_output(struct tls *t, const void *plain, size_t len, struct buf *cipher_out)
{
	if (!t->done) {
		snprintf(t->err, sizeof t->err, "write before the TLS handshake finished");
		return -1;
	}
	const char *p = plain;
	while (len > 0) {
		size_t wrote = 0;
		if (SSL_write_ex(t->ssl, p, len, &wrote) != 1)
			return failed(t, "TLS write");
		p += wrote;
		len -= wrote;
	}
	drain(t, cipher_out);
	return 0;
}

void tls_close_notify(struct tls *t, struct buf *cipher_out)
{
	if (t->done && SSL_shutdown(t->ssl) < 0)
		ERR_clear_error();
	drain(t, cipher_out);
}

bool tls_handshake_done(const struct tls *t)
{
	return t->done;
}

const char *tls_peer_fingerprint(const struct tls *t)
{
	return t->done ? t->fingerprint : NULL;
}

const char *tls_error(const struct tls *t)
{
	return t->err;
}
