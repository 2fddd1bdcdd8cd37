#include "output.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "xmalloc.h"

/* ---- tables ---------------------------------------------------------------- */

struct table {
	size_t ncols, nrows, cap;
	char **cells;    /* (nrows + 1) * ncols: the header row first */
	bool *right;
};

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *t = xcalloc(1, sizeof *t);

	t->ncols = ncols;
	t->cap = 8;
	t->cells = xcalloc(t->cap * ncols, sizeof *t->cells);
	t->right = xcalloc(ncols, sizeof *t->right);
	for (size_t i = 0; i < ncols; i++) {
		t->right[i] = headers[i][0] == '>';
		t->cells[i] = xstrdup(headers[i] + t->right[i]);
	}
	return t;
}

/* What starts every further line of a multi-line text: nothing a peer
 * sends can begin a line of its own, so none can pass for another peer's
 * message or for one of our "* peer …" lines. */
#define CONTINUATION "    "

/* s with control characters made visible (^X; C1 as \xNN, CSI among
 * them steers terminals too).  Tabs are kept when lines, and newlines,
 * each followed by CONTINUATION. */
static void visible(struct buf *b, const char *s, bool lines)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (lines && *p == '\t') {
			buf_append(b, p, 1);
		} else if (lines && *p == '\n') {
			buf_append(b, "\n" CONTINUATION, 1 + sizeof CONTINUATION - 1);
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_printf(b, "^%c", *p == 0x7f ? '?' : *p + '@');
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			buf_printf(b, "\\x%02x", p[1]);
			p++;
		} else {
			buf_append(b, p, 1);
		}
	}
}

/* A table cell is one line. */
static char *cell_dup(const char *s)
{
	struct buf b = BUF_INIT;

	visible(&b, s, false);
	buf_cstr(&b);
	return b.data;
}

void table_row(struct table *t, const char *const *cells)
{
	if (t->nrows + 2 > t->cap) {
		t->cap *= 2;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
	}
	t->nrows++;
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = cell_dup(cells[i] ? cells[i] : "-");
}

size_t table_rows(const struct table *t)
{
	return t->nrows;
}

size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void pad(FILE *f, size_t n)
{
	while (n-- > 0)
		fputc(' ', f);
}

void table_print(const struct table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);

	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = text_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t gap = w[c] - text_width(s);
			bool last = c + 1 == t->ncols;

			if (t->right[c])
				pad(f, gap);
			fputs(s, f);
			if (!t->right[c] && !last)
				pad(f, gap);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
	free(w);
}

void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	free(t);
}

/* ---- values ------------------------------------------------------------------ */

void print_json(FILE *f, jval v, bool pretty)
{
	yajl_gen g = jg_new();
	const unsigned char *p;
	size_t len;

	if (pretty) {
		yajl_gen_config(g, yajl_gen_beautify, 1);
		yajl_gen_config(g, yajl_gen_indent_string, "  ");
	}
	jg_value(g, v);
	if (yajl_gen_get_buf(g, &p, &len) == yajl_gen_status_ok) {
		fwrite(p, 1, len, f);
		/* beautify already ends the document with a newline */
		if (len == 0 || p[len - 1] != '\n')
			fputc('\n', f);
	}
	jg_free(g);
}

void print_text(FILE *f, const char *s)
{
	struct buf b = BUF_INIT;

	visible(&b, s, true);
	if (b.len > 0)
		fwrite(b.data, 1, b.len, f);
	buf_free(&b);
}

const char *fmt_num(jval obj, const char *key, int decimals, char *buf, size_t len)
{
	double d;

	if (!json_num(json_get(obj, key), &d))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", decimals, d);
	return buf;
}

/* timegm without the GNU extension's portability doubts: days from the
 * civil date (Howard Hinnant's algorithm). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

const char *fmt_age(const char *iso, char *buf, size_t len)
{
	int y, mo, d, h, mi, s;
	long long t, age;

	if (iso == NULL || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6 ||
	    mo < 1 || mo > 12 || d < 1 || d > 31) {
		snprintf(buf, len, "-");
		return buf;
	}
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
	age = (long long)time(NULL) - t;
	if (age < 0)
		age = 0;
	if (age < 120)
		snprintf(buf, len, "%llds ago", age);
	else if (age < 7200)
		snprintf(buf, len, "%lldm ago", age / 60);
	else if (age < 172800)
		snprintf(buf, len, "%lldh ago", age / 3600);
	else
		snprintf(buf, len, "%lldd ago", age / 86400);
	return buf;
}

static const char *jstr_or(jval obj, const char *key, const char *dflt)
{
	const char *s = json_get_str(obj, key);
	return s ? s : dflt;
}

static long long jint_or(jval obj, const char *key, long long dflt)
{
	long long v;
	return json_int(json_get(obj, key), &v) ? v : dflt;
}

/* ---- results ---------------------------------------------------------------- */

static void kv(FILE *f, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void kv(FILE *f, const char *key, const char *fmt, ...)
{
	va_list ap;

	fprintf(f, "%-12s ", key);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}

void out_status(FILE *f, jval r)
{
	jval rdv = json_get(r, "rendezvous"), listen = json_get(r, "listen");
	jval peers = json_get(r, "peers");
	const char *state = jstr_or(rdv, "state", "?");
	char up[32], extra[256] = "";

	kv(f, "peer_id:", "%s", jstr_or(r, "peer_id", "?"));
	kv(f, "version:", "%s (control protocol %lld)", jstr_or(r, "version", "?"),
	   jint_or(r, "protocol", 0));
	kv(f, "pid:", "%lld", jint_or(r, "pid", 0));
	kv(f, "started:", "%s (up %s s)", jstr_or(r, "started", "?"),
	   fmt_num(r, "uptime_s", 1, up, sizeof up));
	kv(f, "listen:", "%s:%lld", jstr_or(listen, "address", "?"), jint_or(listen, "port", 0));
	if (strcmp(state, "registered") == 0)
		snprintf(extra, sizeof extra, " (ttl %lld s, expires in %lld s, public ip %s)",
			 jint_or(rdv, "ttl", 0), jint_or(rdv, "expires_in", 0),
			 jstr_or(rdv, "public_ip", "?"));
	else if (strcmp(state, "blocked") == 0)
		snprintf(extra, sizeof extra, " (for %lld s)", jint_or(rdv, "blocked_for", 0));
	if (jint_or(rdv, "reregistered", 0) > 0) {
		size_t used = strlen(extra);
		snprintf(extra + used, sizeof extra - used, " (re-registered %lld times: the server "
			 "had forgotten us)", jint_or(rdv, "reregistered", 0));
	}
	kv(f, "rendezvous:", "%s:%lld %s%s", jstr_or(rdv, "server", "?"), jint_or(rdv, "port", 0),
	   state, extra);
	if (json_get_str(rdv, "last_error")) {
		fprintf(f, "%-12s ", "last error:");
		print_text(f, json_get_str(rdv, "last_error"));
		fputc('\n', f);
	}
	kv(f, "peers:", "%lld (%lld active, %lld stale, %lld unknown)", jint_or(peers, "total", 0),
	   jint_or(peers, "active", 0), jint_or(peers, "stale", 0), jint_or(peers, "unknown", 0));
	kv(f, "connections:", "%lld", jint_or(r, "connections", 0));
	kv(f, "log level:", "%s", jstr_or(r, "log_level", "?"));
	jval gd = json_get(r, "guard");
	if (gd)
		kv(f, "guard:", "%lld impostors, %lld refused per ip, %lld dropped under pressure, "
		   "%lld forgotten", jint_or(gd, "impostors", 0),
		   jint_or(gd, "per_ip_refused", 0), jint_or(gd, "pressure_drops", 0),
		   jint_or(gd, "forgotten", 0));
	jval st = json_get(r, "storage");
	if (st && json_get_str(st, "path"))
		kv(f, "inbox:", "%lld unread (%lld stored, %s), outbox %lld queued",
		   jint_or(r, "unread", 0), jint_or(st, "messages", 0), jstr_or(st, "path", "?"),
		   jint_or(st, "outbox", 0));
	else if (st)
		kv(f, "inbox:", "not stored (storage.sync %s), outbox %lld queued",
		   jstr_or(st, "sync", "?"), jint_or(st, "outbox", 0));
}

void out_peers(FILE *f, jval r)
{
	static const char *const hdr[] = { "PEER", "STATE", "ADDRESS", "DIR", ">RTT(avg ms)",
					   "LAST SEEN", ">CONNECTS", ">DISCONNECTS", ">SUCCESS" };
	jval list = json_get(r, "peers");
	struct table *t = table_new(9, hdr);

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval p = json_arr_at(list, i);
		char addr[128] = "-", rtt[32], seen[32], con[24], dis[24], ok[24];
		const char *ip = json_get_str(p, "ip"), *dir = json_get_str(p, "direction");

		if (ip)
			snprintf(addr, sizeof addr, strchr(ip, ':') ? "[%s]:%lld" : "%s:%lld", ip,
				 jint_or(p, "port", 0));
		snprintf(con, sizeof con, "%lld", jint_or(p, "connects", 0));
		snprintf(dis, sizeof dis, "%lld", jint_or(p, "disconnects", 0));
		double rate;
		/* Never dialled (it only ever dialled us): no rate to speak of. */
		if (jint_or(p, "attempts", 0) > 0 && json_num(json_get(p, "success_rate"), &rate))
			snprintf(ok, sizeof ok, "%.0f%%", rate);
		else
			snprintf(ok, sizeof ok, "-");
		const char *row[] = {
			jstr_or(p, "peer_id", "?"), jstr_or(p, "state", "?"), addr,
			dir ? (strcmp(dir, "outbound") == 0 ? "out" : "in") : "-",
			fmt_num(json_get(p, "rtt_ms"), "avg", 2, rtt, sizeof rtt),
			fmt_age(json_get_str(p, "last_seen"), seen, sizeof seen), con, dis, ok,
		};
		table_row(t, row);
	}
	if (table_rows(t) == 0)
		fputs("no peers\n", f);
	else
		table_print(t, f);
	table_free(t);
}

void out_conn(FILE *f, jval r)
{
	static const char *const hdr[] = { "PEER", "DIR", "STATE", "ADDRESS", "SINCE", ">RTT(ms)",
					   ">RX", ">TX", ">QUEUED", "WRITE" };
	jval list = json_get(r, "connections");
	struct table *t = table_new(10, hdr);

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval c = json_arr_at(list, i);
		char since[32], rtt[32], rx[24], tx[24], q[24], peer[160], state[48];
		const char *id = jstr_or(c, "peer_id", "");

		/* The primary connection is the one carrying the peer's traffic. */
		snprintf(peer, sizeof peer, "%s", id[0] ? id : "?");
		snprintf(state, sizeof state, "%s%s", jstr_or(c, "state", "?"),
			 json_bool(json_get(c, "primary")) == 1 ? "" : " (spare)");
		snprintf(rx, sizeof rx, "%lld", jint_or(c, "rx_msgs", 0));
		snprintf(tx, sizeof tx, "%lld", jint_or(c, "tx_msgs", 0));
		snprintf(q, sizeof q, "%lld", jint_or(c, "queued_bytes", 0));
		const char *row[] = {
			peer, strcmp(jstr_or(c, "direction", ""), "outbound") == 0 ? "out" : "in", state,
			jstr_or(c, "address", "-"), fmt_age(json_get_str(c, "since"), since, sizeof since),
			fmt_num(c, "rtt_ms", 2, rtt, sizeof rtt), rx, tx, q,
			jstr_or(c, "write_mode", "-"),
		};
		table_row(t, row);
	}
	if (table_rows(t) == 0)
		fputs("no connections\n", f);
	else
		table_print(t, f);
	table_free(t);
}

void out_rtt(FILE *f, jval r)
{
	static const char *const hdr[] = { "PEER", ">SAMPLES", ">LAST(ms)", ">AVG(ms)", ">MIN(ms)",
					   ">MAX(ms)" };
	jval list = json_get(r, "rtt");
	struct table *t = table_new(6, hdr);

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval p = json_arr_at(list, i);
		char n[24], last[32], avg[32], mn[32], mx[32];

		snprintf(n, sizeof n, "%lld", jint_or(p, "samples", 0));
		const char *row[] = {
			jstr_or(p, "peer_id", "?"), n, fmt_num(p, "last", 2, last, sizeof last),
			fmt_num(p, "avg", 2, avg, sizeof avg), fmt_num(p, "min", 2, mn, sizeof mn),
			fmt_num(p, "max", 2, mx, sizeof mx),
		};
		table_row(t, row);
	}
	if (table_rows(t) == 0)
		fputs("no RTT samples yet\n", f);
	else
		table_print(t, f);
	table_free(t);
}

/* discover, register, unregister: what the rendezvous server said. */
void out_rendezvous(FILE *f, const char *what, jval r)
{
	jval list = json_get(r, "peers");

	if (json_get_str(r, "ip"))
		fprintf(f, "%s: ttl %lld s, public address %s:%lld\n", what, jint_or(r, "ttl", 0),
			json_get_str(r, "ip"), jint_or(r, "port", 0));
	else if (list == NULL)
		fprintf(f, "%s: ok\n", what);
	if (list == NULL)
		return;

	static const char *const hdr[] = { "PEER", "ADDRESS", ">TTL", ">EXPIRES IN" };
	struct table *t = table_new(4, hdr);
	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval p = json_arr_at(list, i);
		char id[200], addr[128], ttl[24] = "-", exp[24] = "-";
		long long v;

		snprintf(id, sizeof id, "%s@%s", jstr_or(p, "name", "?"), jstr_or(p, "namespace", "?"));
		snprintf(addr, sizeof addr, "%s:%lld", jstr_or(p, "ip", "?"), jint_or(p, "port", 0));
		if (json_int(json_get(p, "ttl"), &v))
			snprintf(ttl, sizeof ttl, "%lld", v);
		if (json_int(json_get(p, "expires_in"), &v))
			snprintf(exp, sizeof exp, "%llds", v);
		const char *row[] = { id, addr, ttl, exp };
		table_row(t, row);
	}
	if (table_rows(t) == 0)
		fprintf(f, "%s: no peers registered\n", what);
	else
		table_print(t, f);
	table_free(t);
}

/* ---- events ---------------------------------------------------------------------- */

static void peer_line(FILE *f, jval p, const char *what)
{
	const char *reason = json_get_str(p, "reason");

	fputs("* peer ", f);
	print_text(f, jstr_or(p, "peer_id", "?"));
	fprintf(f, " %s", what);
	if (reason && *reason) {
		fputs(" (", f);
		print_text(f, reason);
		fputc(')', f);
	}
	fputc('\n', f);
}

void out_reconnect(FILE *f, jval r)
{
	long long n = jint_or(r, "dialling", 0);
	const char *why = json_get_str(r, "reason");

	fprintf(f, "dialling %lld peer%s", n, n == 1 ? "" : "s");
	if (why) {
		fputs(": ", f);
		print_text(f, why);
	}
	fputc('\n', f);
}

void out_event(FILE *f, jval note)
{
	const char *method = json_get_str(note, "method");
	jval p = json_get(note, "params");
	const char *type = jstr_or(p, "type", "?");
	char ms[32];

	if (method && strcmp(method, "lagged") == 0) {
		fprintf(f, "* lagged: %lld events missed (now at seq %lld)\n", jint_or(p, "missed", 0),
			jint_or(p, "seq", 0));
		return;
	}
	if (strcmp(type, "message") == 0 || strcmp(type, "pub") == 0) {
		fputc('[', f);
		print_text(f, jstr_or(p, "from", "?"));
		if (strcmp(type, "pub") == 0) {
			fputs(" → ", f);
			print_text(f, jstr_or(p, "to", "*"));
		}
		fputs("] ", f);
		print_text(f, jstr_or(p, "text", ""));
		if (json_bool(json_get(p, "src_mismatch")) == 1)
			fputs("  (sender's src differs from its handshake)", f);
		fputc('\n', f);
	} else if (strcmp(type, "ack") == 0) {
		bool late = json_bool(json_get(p, "late")) == 1;
		fputs(late ? "* late ack from " : "* ack from ", f);
		print_text(f, jstr_or(p, "peer_id", "?"));
		fprintf(f, " (%s ms) for %s%s\n", fmt_num(p, "rtt_ms", 2, ms, sizeof ms),
			jstr_or(p, "msg_id", "?"), late ? ": delivered after all" : "");
	} else if (strcmp(type, "ack_timeout") == 0) {
		fputs("* no ack from ", f);
		print_text(f, jstr_or(p, "peer_id", "?"));
		fprintf(f, " for %s\n", jstr_or(p, "msg_id", "?"));
	} else if (strcmp(type, "peer_connected") == 0) {
		peer_line(f, p, json_bool(json_get(p, "reconnected")) == 1 ? "reconnected" : "connected");
	} else if (strcmp(type, "peer_disconnected") == 0) {
		peer_line(f, p, "disconnected");
	} else if (strcmp(type, "peer_stale") == 0) {
		peer_line(f, p, "lost");
	} else if (strcmp(type, "peer_discovered") == 0) {
		peer_line(f, p, "discovered");
	} else if (strcmp(type, "registration") == 0) {
		fprintf(f, "* registration %s", jstr_or(p, "state", "?"));
		if (json_get_str(p, "error")) {
			fputs(": ", f);
			print_text(f, json_get_str(p, "error"));
		}
		fputc('\n', f);
	} else if (strcmp(type, "log") == 0) {
		fprintf(f, "* %s [", jstr_or(p, "level", "?"));
		print_text(f, jstr_or(p, "module", "?"));
		fputs("] ", f);
		print_text(f, jstr_or(p, "text", ""));
		fputc('\n', f);
	} else {
		/* A newer daemon's event: show it whole rather than not at all. */
		fputs("* ", f);
		print_json(f, p, false);
	}
}

void out_event_json(FILE *f, jval note)
{
	const char *method = json_get_str(note, "method");
	jval p = json_get(note, "params");

	if (method && strcmp(method, "lagged") == 0) {
		fprintf(f, "{\"type\":\"lagged\",\"missed\":%lld,\"seq\":%lld}\n", jint_or(p, "missed", 0),
			jint_or(p, "seq", 0));
		return;
	}
	print_json(f, p, false);
}
