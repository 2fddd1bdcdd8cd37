/* Clocks and timestamps.  Durations always come from the monotonic clock;
 * wall-clock time is only for display and the wire's ISO-8601 fields. */
#ifndef CHATP2P_TIMEUTIL_H
#define CHATP2P_TIMEUTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define ISO8601_LEN 32

double mono_now(void);                         /* seconds, CLOCK_MONOTONIC */
double wall_now(void);                         /* seconds since the epoch, for display */
/* "2025-10-27T10:00:00Z" (ms = false) or "…:00.123Z" (ms = true). */
void iso8601_now(char out[ISO8601_LEN], bool ms);
void iso8601_format(char out[ISO8601_LEN], time_t t, long msec, bool ms);
/* Lenient parse: fractional seconds, Z, ±hh:mm / ±hhmm offsets, naive (UTC
 * assumed).  Returns false if not a timestamp. */
bool iso8601_parse(const char *s, double *epoch);

#endif
