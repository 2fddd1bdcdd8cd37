#include "output.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fmt.h"
#include "xmalloc.h"

struct out_style out_style;

/* ---- colour ------------------------------------------------------------------ */

static const char *const escapes[] = {
	[C_OFF] = "\033[0m", [C_OK] = "\033[32m", [C_ERR] = "\033[31m",
	[C_WARN] = "\033[33m", [C_DIM] = "\033[2m", [C_BOLD] = "\033[1m",
};

void out_color_resolve(void)
{
	const char *no = getenv("NO_COLOR");
	bool auto_ok = !(no && *no);

	out_style.color = out_style.color_mode == COLOR_ALWAYS ||
			  (out_style.color_mode == COLOR_AUTO && auto_ok && isatty(STDOUT_FILENO));
	out_style.err_color = out_style.color_mode == COLOR_ALWAYS ||
			      (out_style.color_mode == COLOR_AUTO && auto_ok && isatty(STDERR_FILENO));
}

const char *color(enum color c)
{
	return out_style.color ? escapes[c] : "";
}

const char *err_color(enum color c)
{
	return out_style.err_color ? escapes[c] : "";
}

/* A peer state's colour in tables: connected green, lost yellow, never
 * seen dim. */
static enum color state_color(const char *s)
{
	if (strcmp(s, "ACTIVE") == 0)
		return C_OK;
	if (strncmp(s, "STALE", 5) == 0)
		return C_WARN;
	if (strcmp(s, "UNKNOWN") == 0)
		return C_DIM;
	return C_OFF;
}

/* ---- tables ---------------------------------------------------------------- */

struct table {
	size_t ncols, nrows, cap;
	char **cells;    /* (nrows + 1) * ncols: the header row first */
	bool *right;
	bool keep_order; /* rows as added unless --sort (a conversation) */
};

void table_keep_order(struct table *t)
{
	t->keep_order = true;
}

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

/* The code point of the 3-byte UTF-8 sequence at p (0 if it is none). */
static unsigned cp3(const unsigned char *p)
{
	if ((p[0] & 0xf0) != 0xe0 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
		return 0;
	return ((unsigned)(p[0] & 0x0f) << 12) | ((unsigned)(p[1] & 0x3f) << 6) | (p[2] & 0x3fu);
}

/* Invisible characters that make one name look like another (PROTOCOL.md
 * §5.3): bidi embeddings, overrides and isolates, zero-width characters,
 * word joiner and invisible operators, BOM.  Joiners (U+200C, U+200D) are
 * spared in message text (names: all), where emoji and scripts need them. */
static bool invisible(unsigned cp, bool name)
{
	if (cp == 0x200c || cp == 0x200d)
		return name;
	return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x2069) ||
	       cp == 0xfeff || cp == 0x2028 || cp == 0x2029;
}

/* s with control characters made visible (^X; C1 as \xNN, CSI among
 * them steers terminals too; invisible format characters as \uXXXX).
 * Tabs are kept when lines, and newlines, each followed by CONTINUATION. */
static void visible_as(struct buf *b, const char *s, bool lines, bool name)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned cp = *p >= 0xe0 ? cp3(p) : 0;
		if (cp && invisible(cp, name)) {
			buf_printf(b, "\\u%04x", cp);
			p += 2;
		} else if (*p == 0xc2 && p[1] == 0xad) { /* soft hyphen */
			buf_printf(b, "\\u00ad");
			p++;
		} else if (lines && *p == '\t') {
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

static void visible(struct buf *b, const char *s, bool lines)
{
	visible_as(b, s, lines, false);
}

/* A table cell is one line; names and text alike, every invisible shown. */
static char *cell_dup(const char *s)
{
	struct buf b = BUF_INIT;

	visible_as(&b, s, false, true);
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
	return fmt_width(s);
}

static void pad(FILE *f, size_t n)
{
	while (n-- > 0)
		fputc(' ', f);
}

/* Rows compare by one column: as numbers when both cells are ("12", "3.5",
 * "80%"), else as text; ties by the first column, so the order is stable. */
struct sort_ctx {
	const struct table *t;
	size_t col;
	bool desc;     /* --sort -COL */
};
static struct sort_ctx sorting;

static int cell_cmp(const char *a, const char *b)
{
	char *ea, *eb;
	double da = strtod(a, &ea), db = strtod(b, &eb);

	if (ea != a && eb != b && (*ea == '\0' || *ea == '%') && (*eb == '\0' || *eb == '%'))
		return (da > db) - (da < db);
	return strcmp(a, b);
}

static int row_cmp(const void *pa, const void *pb)
{
	size_t ra = *(const size_t *)pa, rb = *(const size_t *)pb, n = sorting.t->ncols;
	int c = cell_cmp(sorting.t->cells[ra * n + sorting.col], sorting.t->cells[rb * n + sorting.col]);

	if (sorting.desc)
		c = -c;
	if (c == 0)
		c = strcmp(sorting.t->cells[ra * n], sorting.t->cells[rb * n]);
	return c != 0 ? c : (ra > rb) - (ra < rb);
}

/* A header as --sort names it: without the right-alignment mark, its unit
 * in parentheses, case, and with '-' or '_' for a blank ("rtt", "avg",
 * "last-seen" for "RTT(avg ms)", "AVG(ms)", "LAST SEEN"). */
static bool column_is(const char *header, const char *name)
{
	size_t hl = strcspn(header, "(");

	while (hl > 0 && header[hl - 1] == ' ')
		hl--;
	if (strcasecmp(header, name) == 0)
		return true;
	if (strlen(name) != hl)
		return false;
	for (size_t i = 0; i < hl; i++) {
		char h = header[i], n = name[i];
		if (h == ' ' && (n == '-' || n == '_' || n == ' '))
			continue;
		if ((h | 0x20) != (n | 0x20))
			return false;
	}
	return true;
}

static void column_name(const char *header, char *buf, size_t len)
{
	size_t hl = strcspn(header, "("), n = 0;

	while (hl > 0 && header[hl - 1] == ' ')
		hl--;
	for (size_t i = 0; i < hl && n + 1 < len; i++)
		buf[n++] = header[i] == ' ' ? '-' : (char)((header[i] >= 'A' && header[i] <= 'Z') ? header[i] | 0x20 : header[i]);
	buf[n] = '\0';
}

/* The column --sort names (a leading '-': descending), or -1 after saying
 * which ones there are (a usage error: out_style.failed). */
static long sort_column(const struct table *t, bool *desc)
{
	const char *name = out_style.sort;

	*desc = false;
	if (name == NULL)
		return 0;
	if (name[0] == '-') {
		*desc = true;
		name++;
	}
	for (size_t c = 0; c < t->ncols; c++)
		if (column_is(t->cells[c], name))
			return (long)c;
	const char *cands[32] = { NULL };
	char names[32][32];
	size_t n = 0;
	for (size_t c = 0; c < t->ncols && c < 32; c++) {
		column_name(t->cells[c], names[c], sizeof names[c]);
		cands[n++] = names[c];
	}
	const char *near = fmt_closest(name, cands, n);
	fflush(stdout);
	fprintf(stderr, "chatp2pctl: --sort: no column '%s'%s%s%s; the columns are:", name,
		near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
	for (size_t c = 0; c < n; c++)
		fprintf(stderr, " %s", names[c]);
	fputc('\n', stderr);
	out_style.failed = true;
	return -1;
}

bool table_print_or(const struct table *t, FILE *f, const char *none)
{
	bool desc;

	if (table_rows(t) > 0) {
		table_print(t, f);
	} else if (sort_column(t, &desc) >= 0 && !out_style.tsv && !out_style.no_legend) {
		/* Prose only for a person: a script's empty result is no lines. */
		fprintf(f, "%s\n", none);
	}
	return !out_style.failed;
}

void table_print(const struct table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols, sizeof *w), *order = xcalloc(t->nrows + 1, sizeof *order);
	bool desc;
	long col = sort_column(t, &desc);

	if (col < 0) {
		free(order);
		free(w);
		return;
	}
	for (size_t r = 0; r < t->nrows; r++)
		order[r] = r + 1;
	sorting = (struct sort_ctx){ t, (size_t)col, desc };
	if (!(t->keep_order && out_style.sort == NULL))
		qsort(order, t->nrows, sizeof *order, row_cmp);

	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = text_width(t->cells[r * t->ncols + c]);
			if ((r > 0 || !out_style.no_legend) && cw > w[c])
				w[c] = cw;
		}
	for (size_t i = out_style.no_legend ? 1 : 0; i <= t->nrows; i++) {
		size_t r = i == 0 ? 0 : order[i - 1];
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t gap = w[c] - text_width(s);
			bool last = c + 1 == t->ncols;

			if (out_style.tsv) {
				fputs(s, f);
				if (!last)
					fputc('\t', f);
				continue;
			}
			if (t->right[c])
				pad(f, gap);
			enum color sc = i > 0 && out_style.color && strcmp(t->cells[c], "STATE") == 0
					? state_color(s) : C_OFF;
			if (sc != C_OFF)
				fprintf(f, "%s%s%s", color(sc), s, color(C_OFF));
			else
				fputs(s, f);
			if (!t->right[c] && !last)
				pad(f, gap);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
	free(order);
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

void print_name(FILE *f, const char *s)
{
	struct buf b = BUF_INIT;

	visible_as(&b, s, false, true);
	if (b.len > 0)
		fwrite(b.data, 1, b.len, f);
	buf_free(&b);
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

const char *fmt_age(const char *iso, char *buf, size_t len)
{
	time_t t = fmt_parse_iso(iso);
	char d[32];

	if (t == (time_t)-1) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (out_style.time == TIME_ISO)
		return fmt_local_iso(t, buf, len);
	double age = difftime(time(NULL), t);
	snprintf(buf, len, "%s ago", fmt_duration(age < 0 ? 0 : age, d, sizeof d));
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
	jval peers = json_get(r, "peers"), reach = json_get(r, "reachability");
	const char *state = jstr_or(rdv, "state", "?");
	char up[32], extra[256] = "", d1[32], d2[32], when[48];
	double v;

	kv(f, "peer_id:", "%s", jstr_or(r, "peer_id", "?"));
	kv(f, "version:", "%s (control protocol %lld)", jstr_or(r, "version", "?"),
	   jint_or(r, "protocol", 0));
	kv(f, "pid:", "%lld", jint_or(r, "pid", 0));
	time_t started = fmt_parse_iso(json_get_str(r, "started"));
	if (started != (time_t)-1)
		fmt_local_iso(started, when, sizeof when);
	else
		snprintf(when, sizeof when, "?");
	/* Whole seconds: "up 8s", not "up 8.9s". */
	kv(f, "started:", "%s (up %s)", when,
	   fmt_duration(json_num(json_get(r, "uptime_s"), &v) ? floor(v) : -1, up, sizeof up));
	kv(f, "listen:", "%s:%lld", jstr_or(listen, "address", "?"), jint_or(listen, "port", 0));
	if (strcmp(state, "registered") == 0)
		snprintf(extra, sizeof extra, " (ttl %s, expires in %s, public ip %s)",
			 fmt_duration((double)jint_or(rdv, "ttl", 0), d1, sizeof d1),
			 fmt_duration((double)jint_or(rdv, "expires_in", 0), d2, sizeof d2),
			 jstr_or(rdv, "public_ip", "?"));
	else if (strcmp(state, "blocked") == 0)
		snprintf(extra, sizeof extra, " (for %s)",
			 fmt_duration((double)jint_or(rdv, "blocked_for", 0), d1, sizeof d1));
	if (jint_or(rdv, "reregistered", 0) > 0) {
		size_t used = strlen(extra);
		snprintf(extra + used, sizeof extra - used, " (re-registered %lld times: the server "
			 "had forgotten us)", jint_or(rdv, "reregistered", 0));
	}
	kv(f, "rendezvous:", "%s:%lld %s%s", jstr_or(rdv, "server", "?"), jint_or(rdv, "port", 0),
	   state, extra);
	if (json_get_str(rdv, "last_error")) {
		/* Old news once registered again: the label says how old. */
		char age[64], label[96];
		const char *at = json_get_str(rdv, "last_error_at");
		if (at)
			snprintf(label, sizeof label, "last error (%s%s):", fmt_age(at, age, sizeof age),
				 strcmp(state, "registered") == 0 ? ", registered since" : "");
		else
			snprintf(label, sizeof label, "last error:");
		fprintf(f, "%s ", label);
		print_text(f, json_get_str(rdv, "last_error"));
		fputc('\n', f);
	}
	kv(f, "peers:", "%lld (%lld active, %lld stale, %lld unknown)", jint_or(peers, "total", 0),
	   jint_or(peers, "active", 0), jint_or(peers, "stale", 0), jint_or(peers, "unknown", 0));
	kv(f, "connections:", "%lld", jint_or(r, "connections", 0));
	if (reach) {
		char in[64], out[64];
		fmt_age(json_get_str(reach, "last_inbound"), in, sizeof in);
		fmt_age(json_get_str(reach, "last_outbound"), out, sizeof out);
		kv(f, "dialled in:", "%lld time%s (last %s); dialled out: %lld (last %s)",
		   jint_or(reach, "inbound", 0), jint_or(reach, "inbound", 0) == 1 ? "" : "s",
		   strcmp(in, "-") == 0 ? "never" : in, jint_or(reach, "outbound", 0),
		   strcmp(out, "-") == 0 ? "never" : out);
		if (json_get_str(reach, "hint")) {
			fprintf(f, "%-12s ", "reachable?");
			print_text(f, json_get_str(reach, "hint"));
			fputc('\n', f);
		}
	}
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

/* How the identity is known (§5.3), "ambiguous" when the name is listed
 * at several addresses; "-" when there is no connection. */
static void identity_cell(jval o, char *buf, size_t len)
{
	const char *id = json_get_str(o, "identity");
	bool amb = json_bool(json_get(o, "ambiguous")) == 1;

	snprintf(buf, len, "%s%s", id ? id : "-", amb ? " (ambiguous)" : "");
}

void out_peers(FILE *f, jval r)
{
	static const char *const hdr[] = { "PEER", "STATE", "ADDRESS", "DIR", ">RTT(avg ms)",
					   "LAST SEEN", ">CONNECTS", ">DISCONNECTS", ">SUCCESS",
					   "IDENTITY" };
	jval list = json_get(r, "peers");
	struct table *t = table_new(10, hdr);

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
		char ident[48];
		identity_cell(p, ident, sizeof ident);
		const char *row[] = {
			jstr_or(p, "peer_id", "?"), jstr_or(p, "state", "?"), addr,
			dir ? (strcmp(dir, "outbound") == 0 ? "out" : "in") : "-",
			fmt_num(json_get(p, "rtt_ms"), "avg", 2, rtt, sizeof rtt),
			fmt_age(json_get_str(p, "last_seen"), seen, sizeof seen), con, dis, ok, ident,
		};
		table_row(t, row);
	}
	table_print_or(t, f, "no peers");
	table_free(t);
}

void out_conn(FILE *f, jval r)
{
	static const char *const hdr[] = { "PEER", "DIR", "STATE", "ADDRESS", "SINCE", ">RTT(ms)",
					   ">RX", ">TX", ">QUEUED", "IDENTITY", "WRITE" };
	jval list = json_get(r, "connections");
	struct table *t = table_new(11, hdr);

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
		char ident[48];
		identity_cell(c, ident, sizeof ident);
		const char *row[] = {
			peer, strcmp(jstr_or(c, "direction", ""), "outbound") == 0 ? "out" : "in", state,
			jstr_or(c, "address", "-"), fmt_age(json_get_str(c, "since"), since, sizeof since),
			fmt_num(c, "rtt_ms", 2, rtt, sizeof rtt), rx, tx, q,
			ident, jstr_or(c, "write_mode", "-"),
		};
		table_row(t, row);
	}
	table_print_or(t, f, "no connections");
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
	table_print_or(t, f, "no RTT samples yet");
	table_free(t);
}

/* discover, register, unregister: what the rendezvous server said. */
void out_rendezvous(FILE *f, const char *what, jval r)
{
	jval list = json_get(r, "peers");
	char ttl_buf[32];

	if (json_get_str(r, "ip"))
		fprintf(f, "%s: ttl %s, public address %s:%lld\n", what,
			fmt_duration((double)jint_or(r, "ttl", 0), ttl_buf, sizeof ttl_buf),
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
			fmt_duration((double)v, ttl, sizeof ttl);
		if (json_int(json_get(p, "expires_in"), &v))
			fmt_duration((double)v, exp, sizeof exp);
		const char *row[] = { id, addr, ttl, exp };
		table_row(t, row);
	}
	if (table_rows(t) == 0)
		fprintf(f, "%s: no peers registered\n", what);
	else
		table_print(t, f);
	table_free(t);
}

/* The command and the shell's /command print alike. */
void out_discover(FILE *f, jval r)
{
	out_rendezvous(f, "discover", r);
}

void out_register(FILE *f, jval r)
{
	out_rendezvous(f, "registered", r);
}

void out_unregister(FILE *f, jval r)
{
	out_rendezvous(f, "unregistered", r);
}

void out_methods(FILE *f, jval r)
{
	static const char *const hdr[] = { "METHOD", "DESCRIPTION" };
	jval list = json_get(r, "methods");
	struct table *t = table_new(2, hdr);

	for (size_t i = 0; i < json_arr_len(list); i++) {
		jval m = json_arr_at(list, i);
		const char *row[] = { jstr_or(m, "name", "?"), jstr_or(m, "description", "") };
		table_row(t, row);
	}
	table_print(t, f);
	table_free(t);
}

/* ---- events ---------------------------------------------------------------------- */

static void peer_line(FILE *f, jval p, const char *what)
{
	const char *reason = json_get_str(p, "reason");

	fputs("* peer ", f);
	print_name(f, jstr_or(p, "peer_id", "?"));
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
		print_name(f, jstr_or(p, "from", "?"));
		if (strcmp(type, "pub") == 0) {
			fputs(" → ", f);
			print_name(f, jstr_or(p, "to", "*"));
		}
		fputs("] ", f);
		print_text(f, jstr_or(p, "text", ""));
		if (json_bool(json_get(p, "src_mismatch")) == 1)
			fputs("  (sender's src differs from its handshake)", f);
		if (json_bool(json_get(p, "dst_mismatch")) == 1) {
			fputs("  (addressed to ", f);
			print_name(f, jstr_or(p, "to", "?"));
			fputs(", not us)", f);
		}
		fputc('\n', f);
	} else if (strcmp(type, "ack") == 0) {
		bool late = json_bool(json_get(p, "late")) == 1;
		fputs(late ? "* late ack from " : "* ack from ", f);
		print_name(f, jstr_or(p, "peer_id", "?"));
		double v = -1;
		json_num(json_get(p, "rtt_ms"), &v);
		fprintf(f, " (%s) for %s%s\n", fmt_ms(v, ms, sizeof ms),
			jstr_or(p, "msg_id", "?"), late ? ": delivered after all" : "");
	} else if (strcmp(type, "ack_timeout") == 0) {
		fputs("* no ack from ", f);
		print_name(f, jstr_or(p, "peer_id", "?"));
		fprintf(f, " for %s\n", jstr_or(p, "msg_id", "?"));
	} else if (strcmp(type, "expired") == 0) {
		/* A queued send given up (its deadline, or storage.max_attempts). */
		fputs("* gave up on ", f);
		print_text(f, jstr_or(p, "msg_id", "?"));
		fputs(" to ", f);
		print_name(f, jstr_or(p, "peer_id", "?"));
		if (json_get_str(p, "reason")) {
			fputs(": ", f);
			print_text(f, json_get_str(p, "reason"));
		}
		fputc('\n', f);
	} else if (strcmp(type, "peer_connected") == 0) {
		peer_line(f, p, json_bool(json_get(p, "reconnected")) == 1 ? "reconnected" : "connected");
	} else if (strcmp(type, "peer_disconnected") == 0) {
		peer_line(f, p, "disconnected");
	} else if (strcmp(type, "peer_stale") == 0) {
		peer_line(f, p, "lost");
	} else if (strcmp(type, "peer_discovered") == 0) {
		peer_line(f, p, "discovered");
	} else if (strcmp(type, "identity_new") == 0 || strcmp(type, "identity_changed") == 0 ||
		   strcmp(type, "impostor") == 0) {
		/* PROTOCOL.md §5.2: a key pinned, a key refused, a claim refused. */
		bool isnew = strcmp(type, "identity_new") == 0;
		bool changed = strcmp(type, "identity_changed") == 0;
		fputs(isnew ? "* key of " : changed ? "* KEY CHANGED for " : "* refused claim of ", f);
		print_name(f, jstr_or(p, "peer_id", "?"));
		fputs(" from ", f);
		print_name(f, jstr_or(p, "address", "?"));
		if (isnew || changed) {
			fputs(isnew ? " pinned: " : ": ", f);
			print_text(f, jstr_or(p, "fingerprint", "?"));
		} else {
			fputs(": ", f);
			print_text(f, jstr_or(p, "reason", "?"));
		}
		if (!isnew && json_get_str(p, "pinned")) {
			fputs(changed ? ", pinned " : " (pinned ", f);
			print_text(f, json_get_str(p, "pinned"));
			fputs(changed ? " (refused; chatp2pctl trust)" : ")", f);
		}
		fputc('\n', f);
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
