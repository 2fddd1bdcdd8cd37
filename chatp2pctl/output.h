/* What chatp2pctl prints: aligned tables and "key: value" lines for people,
 * the result object as one JSON document for scripts (--json), and events
 * as lines ("[alice@CIC] Olá!") or NDJSON.  Text that came from the network
 * is printed with its control characters made visible, so a peer cannot
 * drive the terminal.  Numbers never depend on the locale (no setlocale for
 * LC_NUMERIC anywhere). */
#ifndef CHATP2PCTL_OUTPUT_H
#define CHATP2PCTL_OUTPUT_H
#include <stdbool.h>
#include <stdio.h>

#include "json.h"

/* How tables and times are printed (chatp2pctl's -o, --no-legend, --sort,
 * --time); set once by main, read by every printer. */
enum time_style { TIME_RELATIVE, TIME_ISO };
enum color_mode { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER };
struct out_style {
	bool tsv;             /* -o tsv: cells separated by tabs, no padding */
	bool no_legend;       /* no header row */
	const char *sort;     /* column to sort rows by (header name); NULL: the first */
	enum time_style time; /* tables: "3m ago" or local ISO-8601 */
	bool failed;          /* a printer refused (--sort COL unknown): exit 3 */
	enum color_mode color_mode; /* --color */
	bool color;           /* colour on standard output (resolved) */
	bool err_color;       /* colour on standard error (resolved) */
};
extern struct out_style out_style;

/* ---- colour ------------------------------------------------------------ */

/* --color auto: only a terminal, and not when NO_COLOR is set (no-color.org);
 * always / never as said.  Sets out_style.color and err_color. */
void out_color_resolve(void);
enum color { C_OFF, C_OK, C_ERR, C_WARN, C_DIM, C_BOLD };
/* The escape for c on standard output (err: standard error), or "". */
const char *color(enum color c);
const char *err_color(enum color c);

/* ---- tables ------------------------------------------------------------ */

struct table;
/* Column headers; one starting with '>' is right-aligned (the '>' is not
 * printed). */
struct table *table_new(size_t ncols, const char *const *headers);
/* One row of ncols cells (copied; NULL prints as "-"). */
void table_row(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
/* Print the rows in the order added, unless --sort says otherwise. */
void table_keep_order(struct table *t);
/* Sorted by out_style.sort ("COL" or "-COL", descending; a header without
 * its unit, any case); an unknown column prints nothing but says which
 * there are on stderr and sets out_style.failed. */
void table_print(const struct table *t, FILE *f);
/* The same, or the line none when there are no rows (nothing at all with
 * -o tsv or --no-legend: a script's empty result).  false: failed. */
bool table_print_or(const struct table *t, FILE *f, const char *none);
void table_free(struct table *t);

/* ---- values -------------------------------------------------------------- */

/* One JSON document and a newline; pretty spreads it over lines. */
void print_json(FILE *f, jval v, bool pretty);
/* Text from the network, control characters shown as ^X / \xNN. */
void print_text(FILE *f, const char *s);
/* A peer_id or name: as print_text, one line, every invisible character
 * (bidi controls, zero-width ones) escaped as \uXXXX (PROTOCOL.md §5.3). */
void print_name(FILE *f, const char *s);
/* A number member with fixed decimals, or "-" (buf returned). */
const char *fmt_num(jval obj, const char *key, int decimals, char *buf, size_t len);
/* An ISO-8601 UTC time as out_style.time says: how long ago ("4m26s ago")
 * or the local time; "-" for none. */
const char *fmt_age(const char *iso, char *buf, size_t len);
/* Display width of UTF-8 text in terminal columns (wcwidth). */
size_t text_width(const char *s);

/* ---- results ------------------------------------------------------------- */

void out_status(FILE *f, jval r);
void out_peers(FILE *f, jval r);
void out_conn(FILE *f, jval r);
void out_rtt(FILE *f, jval r);
void out_reconnect(FILE *f, jval r);
/* what: "discover: ok", "registered: ttl …", or the registered peers. */
void out_rendezvous(FILE *f, const char *what, jval r);
void out_discover(FILE *f, jval r);
void out_register(FILE *f, jval r);
void out_unregister(FILE *f, jval r);
void out_methods(FILE *f, jval r);

/* ---- events -------------------------------------------------------------- */

/* A notification ("event" or "lagged") as one human line. */
void out_event(FILE *f, jval note);
/* The same as one NDJSON line: the event's params; a "lagged"
 * notification becomes {"type":"lagged","missed":N,"seq":S}. */
void out_event_json(FILE *f, jval note);

#endif
