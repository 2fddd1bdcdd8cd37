/* The service manager's side channel (sd_notify(3)): READY=1 once the
 * sockets are up, a one-line STATUS= kept current, RELOADING=1 … READY=1
 * around a reload, STOPPING=1 at the start of a graceful stop, and
 * WATCHDOG=1 from the loop at half of WATCHDOG_USEC, so a stuck loop is
 * what the manager detects.  Sending never blocks the loop: a manager that
 * stops reading gets the state changes, in order, when it reads again.
 * Without NOTIFY_SOCKET every call is a no-op: no timers, no sockets. */
#ifndef CHATP2PD_NOTIFY_H
#define CHATP2PD_NOTIFY_H
#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

struct notify;
struct node;

/* Writes the one-line summary shown as STATUS= (without "STATUS="). */
typedef void (*notify_status_fn)(void *ctx, char *buf, size_t len);

/* status may be NULL (STATUS= then only says ready / reloading / stopping).
 * Starts the watchdog timer when WATCHDOG_USEC (and WATCHDOG_PID, if set)
 * ask for it. */
struct notify *notify_new(struct ev_loop *loop, notify_status_fn status, void *ctx);
void notify_free(struct notify *nt);
/* Whether a service manager is listening (NOTIFY_SOCKET is set). */
bool notify_enabled(const struct notify *nt);
/* The watchdog interval asked for, in seconds (0: none). */
double notify_watchdog_interval(const struct notify *nt);

/* READY=1 with a fresh STATUS=; starts the periodic STATUS refresh. */
void notify_ready(struct notify *nt);
/* RELOADING=1 with MONOTONIC_USEC= (what systemd >= 253 checks); follow
 * with notify_ready() whether the reload worked or not. */
void notify_reloading(struct notify *nt);
/* STOPPING=1; STATUS= stays "stopping" from then on. */
void notify_stopping(struct notify *nt);
/* Remember the last error (NULL clears it); STATUS= ends with it until
 * cleared, so `systemctl status` shows why the last reload failed. */
void notify_set_error(struct notify *nt, const char *err);

/* A notify_status_fn for the chat node (ctx: struct node *):
 * "registered as alice@CIC, 2 peers connected[, last error: …]". */
void notify_node_status(void *ctx, char *buf, size_t len);

#endif
