/* Saving and loading the registrations (see persist.h). */
#include "rendezvous/server/persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"
#include "rendezvous/server/proto.h"
#include "rendezvous/server/pyjson.h"

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int rdv_persist_save(struct rdv_store *st, const char *path, double mono, double wall, char *err,
		     size_t errlen)
{
	struct buf out = BUF_INIT, tmp = BUF_INIT;
	struct rdv_view v;
	size_t cursor = 0, n = 0;
	int fd, rc = -1;

	buf_puts(&out, "[");
	while (rdv_store_next(st, &cursor, NULL, mono, &v)) {
		buf_puts(&out, n++ ? ",\n  {" : "\n  {");
		pyj_kstr(&out, "ip", v.ip, 1);
		pyj_kstr(&out, "namespace", v.ns, 0);
		pyj_kstr(&out, "name", v.name, 0);
		pyj_kint(&out, "port", v.port, 0);
		pyj_kint(&out, "ttl", v.ttl, 0);
		pyj_key(&out, "expires_at", 0);
		buf_printf(&out, "%.3f}", wall + (v.expires - mono));
	}
	buf_puts(&out, n ? "\n]\n" : "]\n");

	buf_printf(&tmp, "%s.tmp", path);
	fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", buf_cstr(&tmp), strerror(errno));
		goto done;
	}
	if (write_all(fd, out.data, out.len) != 0) {
		snprintf(err, errlen, "%s: %s", buf_cstr(&tmp), strerror(errno));
		close(fd);
		unlink(buf_cstr(&tmp));
		goto done;
	}
	if (close(fd) != 0 || rename(buf_cstr(&tmp), path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(buf_cstr(&tmp));
		goto done;
	}
	rc = 0;
done:
	buf_free(&out);
	buf_free(&tmp);
	return rc;
}

static int read_file(const char *path, struct buf *b, char *err, size_t errlen)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (b->len + (size_t)n > RDV_PERSIST_MAX_SIZE) {
			snprintf(err, errlen, "%s: larger than %u bytes", path, RDV_PERSIST_MAX_SIZE);
			close(fd);
			return -1;
		}
		buf_append(b, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

/* One saved entry; the same rules as a REGISTER request. */
static enum rdv_store_result restore_one(struct rdv_store *st, jval e, double mono, double wall)
{
	const char *ip = json_get_str(e, "ip");
	const char *ns = json_get_str(e, "namespace");
	const char *name = json_get_str(e, "name");
	long long port, ttl;
	double at;

	if (ip == NULL || ip[0] == '\0' || strlen(ip) > 64 || ns == NULL || ns[0] == '\0' ||
	    strlen(ns) > 4 * RDV_NAME_MAX || name == NULL || name[0] == '\0' ||
	    strlen(name) > 4 * RDV_NAME_MAX || !json_int(json_get(e, "port"), &port) || port < 1 ||
	    port > 65535 || !json_int(json_get(e, "ttl"), &ttl) || ttl < RDV_TTL_MIN ||
	    ttl > RDV_TTL_MAX || !json_num(json_get(e, "expires_at"), &at))
		return RDV_STORE_FULL; /* counted as invalid */
	return rdv_store_restore(st, ip, ns, name, (int)port, (int)ttl, mono, mono + (at - wall));
}

int rdv_persist_load(struct rdv_store *st, const char *path, double mono, double wall,
		     struct rdv_persist_stats *stats, char *err, size_t errlen)
{
	struct buf text = BUF_INIT;
	char perr[128];
	jval root;
	int rc = read_file(path, &text, err, errlen);

	memset(stats, 0, sizeof *stats);
	if (rc != 0) {
		buf_free(&text);
		return rc > 0 ? 0 : -1;
	}
	root = json_parse(text.data ? text.data : "", text.len, perr, sizeof perr);
	buf_free(&text);
	if (root == NULL || !YAJL_IS_ARRAY(root)) {
		snprintf(err, errlen, "%s: not a JSON array of registrations (%s)", path,
			 root ? "wrong type" : perr);
		json_free(root);
		return -1;
	}
	for (size_t i = 0; i < json_arr_len(root); i++) {
		switch (restore_one(st, json_arr_at(root, i), mono, wall)) {
		case RDV_STORE_NEW:
		case RDV_STORE_UPDATED:
			stats->loaded++;
			break;
		case RDV_STORE_EXPIRED:
			stats->expired++;
			break;
		default:
			stats->invalid++;
			break;
		}
	}
	json_free(root);
	return 0;
}
