/* The rendezvous server's registration store: who registered which
 * (namespace, name) from which ip, on which port, for how long.
 *
 * Pure: no I/O, no loop, no clock.  Every call that cares about time takes
 * "now" in monotonic seconds, so tests and fuzzers drive time themselves.
 *
 * An entry is keyed by (ip, namespace, name); registering the same key again
 * updates port and ttl and restarts its clock.  An entry is gone ttl seconds
 * after its last registration: it is never listed again, and is purged
 * lazily (when a scan or an insert passes it) or by rdv_store_expire().
 *
 * The store holds at most max entries.  When it is full (after purging what
 * has expired) a new key is refused with RDV_STORE_FULL; the server answers
 * {"status": "ERROR", "message": "registry_full"} (RDV_MSG_FULL).
 * Likewise one ip holds at most max_per_ip entries (if set): a new key over
 * it is refused with RDV_STORE_IP_FULL (RDV_MSG_IP_FULL), so that one
 * address cannot take every registration.  Updating an existing key always
 * works. */
#ifndef CHATP2PD_RDV_STORE_H
#define CHATP2PD_RDV_STORE_H
#include <stdbool.h>
#include <stddef.h>

#define RDV_STORE_MAX     65536           /* default cap on entries */
#define RDV_MSG_FULL      "registry_full" /* error code when the cap is hit */
#define RDV_MSG_IP_FULL   "too_many_registrations_from_ip" /* max_per_ip hit */
#define RDV_STORE_MAX_PER_IP 256          /* default per-address quota */
#define RDV_TTL_MIN       1
#define RDV_TTL_MAX       86400

struct rdv_store;

/* One entry as seen by a reader.  The strings belong to the store and stay
 * valid until the next call that may modify it. */
struct rdv_view {
	const char *ip;
	const char *ns;
	const char *name;
	int port;
	int ttl;
	long expires_in; /* whole seconds left, truncated, >= 0 */
	double expires;  /* the "now" at which it is gone */
};

enum rdv_store_result {
	RDV_STORE_NEW,     /* a new key */
	RDV_STORE_UPDATED, /* the key existed: port/ttl/clock updated */
	RDV_STORE_FULL,    /* refused: max entries reached */
	RDV_STORE_IP_FULL, /* refused: max_per_ip entries from this ip */
	RDV_STORE_EXPIRED, /* rdv_store_restore: already gone, not added */
};

/* max: cap on entries (0: RDV_STORE_MAX). */
struct rdv_store *rdv_store_new(size_t max);
void rdv_store_free(struct rdv_store *s);

/* Per-ip quota on entries (0, the default of rdv_store_new: none); with
 * exempt_loopback, 127.0.0.0/8 and ::1 are not held to it. */
void rdv_store_set_max_per_ip(struct rdv_store *s, size_t max_per_ip, bool exempt_loopback);

/* Insert or update (ip, ns, name).  The caller has validated the fields
 * (non-empty strings, port 1..65535); ttl is clamped to 1..86400 here too. */
enum rdv_store_result rdv_store_register(struct rdv_store *s, const char *ip, const char *ns,
					  const char *name, int port, int ttl, double now);

/* As rdv_store_register, but the entry is gone at expires (in now's clock)
 * rather than now + ttl: an entry saved before a restart.  One already
 * expired is not added (RDV_STORE_EXPIRED); expires is capped at now + ttl. */
enum rdv_store_result rdv_store_restore(struct rdv_store *s, const char *ip, const char *ns,
					 const char *name, int port, int ttl, double now,
					 double expires);

/* The next live entry at or after *cursor whose namespace is ns (NULL: any);
 * false when there is none.  *cursor starts at 0 and is advanced past the
 * entry returned.  The cursor stays valid across modifications: an entry
 * present during the whole scan is returned exactly once, one added or
 * removed meanwhile may or may not be.  Expired entries passed are purged. */
bool rdv_store_next(struct rdv_store *s, size_t *cursor, const char *ns, double now,
		    struct rdv_view *out);

/* Remove every live entry from ip in namespace ns whose name is name (NULL:
 * any name) and, if has_port, whose port is port.  Returns how many. */
size_t rdv_store_unregister(struct rdv_store *s, const char *ip, const char *ns, const char *name,
			    bool has_port, long long port, double now);

/* Purge every expired entry; returns how many went. */
size_t rdv_store_expire(struct rdv_store *s, double now);

/* Live and not-yet-purged entries (an upper bound on live ones). */
size_t rdv_store_count(const struct rdv_store *s);
size_t rdv_store_max(const struct rdv_store *s);
/* Entries (live or not yet purged) held from ip. */
size_t rdv_store_ip_count(struct rdv_store *s, const char *ip);
size_t rdv_store_max_per_ip(const struct rdv_store *s);
/* Told of every entry registered or restored (removed false) and of every
 * one rdv_store_unregister() removes (removed true), at once: to mirror
 * them on disk.  Expiry is not told (the mirror expires by time itself). */
typedef void (*rdv_store_change_fn)(void *ctx, const struct rdv_view *v, bool removed);
void rdv_store_set_listener(struct rdv_store *s, rdv_store_change_fn fn, void *ctx);
/* A counter that moves on every change of the entries (for saving them). */
unsigned long rdv_store_changes(const struct rdv_store *s);

#endif
