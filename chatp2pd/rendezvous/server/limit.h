/* Per-source-ip connection rate limit of the rendezvous server role.
 *
 * At most limit connections from one ip in any sliding window of window
 * seconds.  The connection that would exceed it gets RDV_LIMIT_EXCEEDED (the
 * server closes it without a reply) and the ip is blocked for block seconds;
 * meanwhile every connection gets RDV_LIMIT_BLOCKED with the time left.
 *
 * Decisions (PROTOCOL.md leaves them open):
 * - Connections refused while blocked are not counted and do not extend the
 *   block, so a client that honours "lifted in N seconds" gets back in.
 * - When a block ends the ip starts afresh with an empty window (otherwise
 *   the connections that led to the block would block it again at once).
 *
 * Memory: one record per ip seen recently, at most max_ips of them; a record
 * keeps the times of its connections inside the window (at most limit).  An
 * idle ip is dropped by rdv_limit_sweep(); when the table is full the least
 * recently seen ip is evicted.
 *
 * Pure: no I/O, no clock ("now" is monotonic seconds from the caller). */
#ifndef CHATP2PD_RDV_LIMIT_H
#define CHATP2PD_RDV_LIMIT_H
#include <stddef.h>

#define RDV_LIMIT_MAX_IPS 16384

enum rdv_verdict {
	RDV_LIMIT_OK,       /* counted; serve it */
	RDV_LIMIT_EXCEEDED, /* over the limit: the ip is now blocked; close silently */
	RDV_LIMIT_BLOCKED,  /* the ip is blocked; *left says for how long */
};

struct rdv_limit;

/* limit < 1 disables limiting (every connection is RDV_LIMIT_OK). */
struct rdv_limit *rdv_limit_new(int limit, double window, double block, size_t max_ips);
void rdv_limit_free(struct rdv_limit *l);
/* A connection from ip (a printable address, < 64 bytes) at now. */
enum rdv_verdict rdv_limit_check(struct rdv_limit *l, const char *ip, double now, double *left);
/* Drop the records of ips neither blocked nor seen within the window. */
size_t rdv_limit_sweep(struct rdv_limit *l, double now);
size_t rdv_limit_count(const struct rdv_limit *l);
/* Evictions forced by a full table so far (worth a log line). */
size_t rdv_limit_evictions(const struct rdv_limit *l);

#endif
