/* Load generator: buffers, clocks, string-search field access, samples,
 * /proc readers and the result records. */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

bool lg_verbose;

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		lg_die("out of memory");
	return q;
}

void lgbuf_reserve(struct lgbuf *b, size_t n)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		if (b->off > 0) { /* compact before growing */
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			b->data = xrealloc(b->data, cap);
			b->cap = cap;
		}
	}
}

void lgbuf_add(struct lgbuf *b, const void *p, size_t n)
{
	lgbuf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void lgbuf_addf(struct lgbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof tmp)
		lg_die("internal: line too long for lgbuf_addf");
	lgbuf_add(b, tmp, (size_t)n);
}

void lgbuf_consume(struct lgbuf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void lgbuf_free(struct lgbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

double lg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void lg_die(const char *fmt, ...)
{
	va_list ap;

	fputs("chatp2p-loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void lg_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("chatp2p-loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *lg_memmem(const char *s, size_t len, const char *needle)
{
	return memmem(s, len, needle, strlen(needle));
}

/* Position just after `"key"` and the colon, spaces skipped. */
static const char *after_key(const char *line, size_t len, const char *key)
{
	char pat[64];
	int n = snprintf(pat, sizeof pat, "\"%s\"", key);
	const char *end = line + len, *p;

	if (n <= 0 || (size_t)n >= sizeof pat)
		return NULL;
	p = memmem(line, len, pat, (size_t)n);
	if (p == NULL)
		return NULL;
	p += n;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p >= end || *p != ':')
		return NULL;
	p++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p < end ? p : NULL;
}

int lg_field(const char *line, size_t len, const char *key, const char **val)
{
	const char *end = line + len, *p = after_key(line, len, key), *q;

	if (p == NULL || *p != '"')
		return -1;
	p++;
	q = memchr(p, '"', (size_t)(end - p));
	if (q == NULL)
		return -1;
	*val = p;
	return (int)(q - p);
}

double lg_num(const char *line, size_t len, const char *key, double def)
{
	const char *p = after_key(line, len, key);
	char tmp[48];
	size_t n = 0;

	if (p == NULL)
		return def;
	while (p + n < line + len && n < sizeof tmp - 1 && strchr("+-0123456789.eE", p[n]))
		n++;
	if (n == 0)
		return def;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	return strtod(tmp, NULL);
}

size_t lg_count(const char *s, size_t len, const char *needle)
{
	size_t n = 0, nl = strlen(needle);
	const char *end = s + len, *p = s;

	while (p < end && (p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		n++;
		p += nl;
	}
	return n;
}

void lg_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int lg_dial(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	lg_nonblock(fd);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

int lg_listen(const char *host, int port, int *bound_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t sl = sizeof sa;
	int fd, one = 1;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	lg_nonblock(fd);
	if (bound_port)
		*bound_port = ntohs(sa.sin_port);
	return fd;
}

int lg_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *c = strrchr(s, ':');
	char *end;
	long p;

	if (c == NULL || (size_t)(c - s) >= hostlen)
		return -1;
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = '\0';
	if (host[0] == '\0')
		snprintf(host, hostlen, "127.0.0.1");
	p = strtol(c + 1, &end, 10);
	if (*end != '\0' || p < 1 || p > 65535)
		return -1;
	*port = (int)p;
	return 0;
}

void lg_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int lg_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	return rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
}

int lg_proc_nofile(pid_t pid)
{
	char path[64], line[256];
	int n = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "Max open files", 14) == 0) {
			n = atoi(line + 14);
			break;
		}
	fclose(f);
	return n;
}

/* ---- samples ------------------------------------------------------------- */

#define LGS_CAP (4u << 20) /* 32 MB of doubles at most */

void lgs_add(struct lgsamples *s, double x)
{
	if (s->n == s->cap) {
		if (s->cap >= LGS_CAP) {
			s->dropped++;
			return;
		}
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = x;
}

void lgs_reset(struct lgsamples *s)
{
	s->n = 0;
	s->dropped = 0;
}

void lgs_free(struct lgsamples *s)
{
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double lgs_pct(struct lgsamples *s, double p)
{
	size_t i;

	if (s->n == 0)
		return NAN;
	qsort(s->v, s->n, sizeof *s->v, cmp_double);
	i = (size_t)(p / 100.0 * (double)(s->n - 1) + 0.5);
	return s->v[i < s->n ? i : s->n - 1];
}

double lgs_max(const struct lgsamples *s)
{
	double m = NAN;

	for (size_t i = 0; i < s->n; i++)
		if (isnan(m) || s->v[i] > m)
			m = s->v[i];
	return m;
}

/* ---- /proc ---------------------------------------------------------------- */

double lg_proc_cpu(pid_t pid)
{
	char path[64], buf[2048];
	unsigned long long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields restart
	 * after the last ')'.  utime and stime are fields 14 and 15. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long lg_proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* ---- records ------------------------------------------------------------- */

struct lgkv {
	char key[40];
	char val[128];
	bool str;
};

struct lgrec {
	char scenario[40], target[24];
	struct lgkv kv[40];
	int n;
};

static struct lgrec *recs;
static int nrecs, caprecs;
static struct lgrec *cur;

void lg_rec_begin(const char *scenario, const char *target)
{
	if (nrecs == caprecs) {
		caprecs = caprecs ? caprecs * 2 : 32;
		recs = xrealloc(recs, (size_t)caprecs * sizeof *recs);
	}
	cur = &recs[nrecs++];
	memset(cur, 0, sizeof *cur);
	snprintf(cur->scenario, sizeof cur->scenario, "%s", scenario);
	snprintf(cur->target, sizeof cur->target, "%s", target);
}

static struct lgkv *kv_new(const char *key)
{
	struct lgkv *kv;

	if (cur == NULL || cur->n == (int)(sizeof cur->kv / sizeof cur->kv[0]))
		lg_die("internal: too many fields in a record");
	kv = &cur->kv[cur->n++];
	snprintf(kv->key, sizeof kv->key, "%s", key);
	return kv;
}

void lg_rec_num(const char *key, double v, int decimals)
{
	struct lgkv *kv = kv_new(key);

	if (isnan(v) || isinf(v))
		snprintf(kv->val, sizeof kv->val, "null");
	else
		snprintf(kv->val, sizeof kv->val, "%.*f", decimals, v);
}

void lg_rec_str(const char *key, const char *v)
{
	struct lgkv *kv = kv_new(key);

	snprintf(kv->val, sizeof kv->val, "%s", v);
	kv->str = true;
}

void lg_rec_bool(const char *key, bool v)
{
	snprintf(kv_new(key)->val, sizeof cur->kv[0].val, "%s", v ? "true" : "false");
}

void lg_rec_end(void)
{
	cur = NULL;
}

void lg_rec_print(bool json, FILE *out)
{
	if (json) {
		fputs("{\"results\":[", out);
		for (int i = 0; i < nrecs; i++) {
			fprintf(out, "%s\n{\"scenario\":\"%s\",\"target\":\"%s\"", i ? "," : "",
				recs[i].scenario, recs[i].target);
			for (int j = 0; j < recs[i].n; j++) {
				const struct lgkv *kv = &recs[i].kv[j];
				fprintf(out, kv->str ? ",\"%s\":\"%s\"" : ",\"%s\":%s", kv->key, kv->val);
			}
			fputc('}', out);
		}
		fputs("\n]}\n", out);
		return;
	}
	fprintf(out, "%-12s %-10s %s\n", "scenario", "target", "figures");
	for (int i = 0; i < nrecs; i++) {
		fprintf(out, "%-12s %-10s", recs[i].scenario, recs[i].target);
		for (int j = 0; j < recs[i].n; j++)
			fprintf(out, " %s=%s", recs[i].kv[j].key, recs[i].kv[j].val);
		fputc('\n', out);
	}
}

void lg_rec_free(void)
{
	free(recs);
	recs = NULL;
	nrecs = caprecs = 0;
}

/* ---- waiting --------------------------------------------------------------- */

struct waitctx {
	ev_prepare prep;
	ev_timer timer;
	bool (*done)(void *);
	void *arg;
};

/* A prepare watcher runs before each poll, so a condition met by the last
 * callbacks ends the wait without waiting for another event. */
static void wait_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct waitctx *c = w->data;

	if (c->done(c->arg))
		ev_break(loop, EVBREAK_ONE);
}

static void wait_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ONE);
}

bool lg_wait(struct ev_loop *loop, bool (*done)(void *), void *arg, double timeout)
{
	struct waitctx c = { .done = done, .arg = arg };

	if (done(arg))
		return true;
	ev_prepare_init(&c.prep, wait_check);
	c.prep.data = &c;
	ev_prepare_start(loop, &c.prep);
	ev_now_update(loop);
	ev_timer_init(&c.timer, wait_timeout, timeout, 0);
	ev_timer_start(loop, &c.timer);
	ev_run(loop, 0);
	ev_prepare_stop(loop, &c.prep);
	ev_timer_stop(loop, &c.timer);
	return done(arg);
}
