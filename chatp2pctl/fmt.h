/* Pure formatting helpers of chatp2pctl, unit-tested on their own
 * (tests/unit/test_ctlfmt.c): durations as people write them ("4m26s"),
 * display widths of UTF-8 text (wcwidth: CJK and emoji take two columns),
 * times in the local zone, and "did you mean" distances. */
#ifndef CHATP2PCTL_FMT_H
#define CHATP2PCTL_FMT_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* LC_CTYPE from the environment, or C.UTF-8 when that is not UTF-8: chat
 * is UTF-8 whatever the locale says (wcwidth and libedit need it).  Only
 * LC_CTYPE: numbers stay in the C locale. */
void fmt_utf8_ctype(void);

/* Seconds as "42s", "4m26s", "1h59m", "3d4h" (two units at most, the
 * second dropped when zero; under 10 s one decimal: "1.5s").  Negative or
 * not finite: "-". */
const char *fmt_duration(double secs, char *buf, size_t len);

/* A round-trip time for a person: "0.41 ms", "22.68 s", "2m5s". */
const char *fmt_ms(double ms, char *buf, size_t len);

/* Display width of UTF-8 text in terminal columns (wcwidth per code point;
 * an unprintable or undecodable one counts 1). */
size_t fmt_width(const char *s);

/* An ISO-8601 UTC time ("2026-05-01T10:00:00.123Z") as seconds since the
 * epoch; -1 if it does not parse. */
time_t fmt_parse_iso(const char *iso);
/* When a person names a time, relative to now: "10m", "2h", "1d", "2w"
 * (ago), "now", "today", "yesterday" (local midnight), or ISO 8601
 * ("2026-05-01", "2026-05-01 12:00", "…T12:00:00Z", "…+02:00"); without a
 * zone it is local time.  false if it does not parse. */
bool fmt_parse_when(const char *s, time_t now, time_t *out);
/* t as UTC ISO 8601, "2026-05-01T10:00:00Z" (what the daemon reads). */
const char *fmt_utc_iso(time_t t, char *buf, size_t len);
/* t in the local zone: "2026-05-01T12:00:00+0200". */
const char *fmt_local_iso(time_t t, char *buf, size_t len);
/* t in the local zone as journalctl starts its lines: "May 01 12:00:00". */
const char *fmt_local_short(time_t t, char *buf, size_t len);

/* Edit distance (insertions, deletions, substitutions, transpositions of
 * neighbours), ASCII case-insensitive; stops counting above max (returns
 * max + 1). */
size_t fmt_distance(const char *a, const char *b, size_t max);
/* The closest of n candidates to word within a distance that fits its
 * length (a third of it, at least 1, at most 3), or NULL. */
const char *fmt_closest(const char *word, const char *const *cands, size_t n);

#endif
