/* The node's identity key and its certificate (see keys.h). */
#include "net/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>


/* Long enough that nobody meets the end; what counts is the key (§5.2). */
#define CERT_DAYS 36500

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

int keys_fingerprint(EVP_PKEY *key, char out[KEYS_FP_LEN])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len = i2d_PUBKEY(key, &der);
	if (len <= 0)
		return -1;
	int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (!ok || mdlen != 32)
		return -1;
	/* 32 bytes → 44 base64 characters ending in one '=', dropped as
	 * ssh-keygen does. */
	unsigned char b64[64];
	int n = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(out, KEYS_FP_LEN, "SHA256:%.*s", n, (const char *)b64);
	return 0;
}

/* mkdir -p for the state directory, mode 0700 for what we make. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
		return -1;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static EVP_PKEY *load_key(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fail(err, errlen, "cannot open identity key %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		fail(err, errlen, "identity key %s is not a regular file", path);
		return NULL;
	}
	/* As ssh does with private keys: a key others can read proves nothing. */
	if (st.st_mode & 077) {
		close(fd);
		fail(err, errlen, "identity key %s is accessible by others (mode %04o): "
		     "chmod 600 it, or remove it to make a new identity",
		     path, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	BIO *bio = BIO_new_fd(fd, BIO_CLOSE);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (bio)
		BIO_free(bio);
	else
		close(fd);
	if (!key) {
		fail(err, errlen, "identity key %s does not hold a PEM private key", path);
		return NULL;
	}
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(key);
		fail(err, errlen, "identity key %s is not an Ed25519 key", path);
		return NULL;
	}
	return key;
}

/* Write the new key whole to a private temporary file, then rename it in
 * place, so a crash never leaves half a key behind. */
static EVP_PKEY *create_key(const char *dir, const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s/%s.tmp.%ld", dir, KEYS_FILE, (long)getpid()) >=
	    (int)sizeof tmp) {
		fail(err, errlen, "state directory path too long: %s", dir);
		return NULL;
	}
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key) {
		fail(err, errlen, "cannot generate an Ed25519 key");
		return NULL;
	}
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		EVP_PKEY_free(key);
		fail(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return NULL;
	}
	BIO *bio = BIO_new_fd(fd, BIO_NOCLOSE);
	bool ok = bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1 &&
		  BIO_flush(bio) == 1;
	if (bio)
		BIO_free(bio);
	/* Start-up only, before the loop runs (keys.h): the key must survive a
	 * power cut, or the node would come back as a stranger to every peer
	 * that pinned it. */
	ok = ok && fsync(fd) == 0;
	ok = (close(fd) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		EVP_PKEY_free(key);
		fail(err, errlen, "cannot write identity key %s: %s", path,
		     e ? strerror(e) : "encoding failed");
		return NULL;
	}
	return key;
}

static X509 *make_cert(EVP_PKEY *key, const char *peer_id)
{
	X509 *x = X509_new();
	if (!x)
		return NULL;
	unsigned char serial[8];
	BIGNUM *bn = NULL;
	bool ok = X509_set_version(x, 2) == 1 && RAND_bytes(serial, sizeof serial) == 1;
	if (ok) {
		serial[0] &= 0x7f; /* a positive serial */
		bn = BN_bin2bn(serial, sizeof serial, NULL);
		ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
		BN_free(bn);
	}
	ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -86400) != NULL &&
	     X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) != NULL &&
	     X509_set_pubkey(x, key) == 1;
	if (ok) {
		X509_NAME *name = X509_get_subject_name(x);
		/* commonName holds at most 64 characters; a longer peer_id gets a
		 * generic label, since the name decides nothing. */
		if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					       (const unsigned char *)peer_id, -1, -1, 0) != 1) {
			ERR_clear_error();
			ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
							(const unsigned char *)"chatp2p", -1,
							-1, 0) == 1;
		}
		ok = ok && X509_set_issuer_name(x, name) == 1;
	}
	/* Ed25519 signs the whole message: no separate digest. */
	ok = ok && X509_sign(x, key, NULL) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int keys_load_or_create(const char *dir, const char *peer_id, struct keys_identity *out,
			char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", dir, KEYS_FILE) >= (int)sizeof path)
		return fail(err, errlen, "state directory path too long: %s", dir);
	if (make_dirs(dir) != 0)
		return fail(err, errlen, "cannot create state directory %s: %s", dir,
			    strerror(errno));
	struct stat st;
	if (lstat(path, &st) == 0) {
		out->key = load_key(path, err, errlen);
	} else if (errno == ENOENT) {
		out->key = create_key(dir, path, err, errlen);
		out->created = out->key != NULL;
	} else {
		return fail(err, errlen, "cannot read identity key %s: %s", path, strerror(errno));
	}
	if (!out->key)
		return -1;
	out->cert = make_cert(out->key, peer_id);
	if (!out->cert || keys_fingerprint(out->key, out->fingerprint) != 0) {
		keys_free(out);
		return fail(err, errlen, "cannot make the identity certificate");
	}
	return 0;
}

void keys_free(struct keys_identity *id)
{
	X509_free(id->cert);
	EVP_PKEY_free(id->key);
	id->cert = NULL;
	id->key = NULL;
}
