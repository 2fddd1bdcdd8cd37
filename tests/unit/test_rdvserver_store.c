/* The rendezvous server's registration store (chatp2pd/rendezvous/server/store.c): the (ip,
 * namespace, name) upsert, ttl clamping and expiry, DISCOVER scans of one
 * namespace or all, UNREGISTER filters, and the cap on entries.  Time is
 * driven by hand: every call takes "now". */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rendezvous/server/store.h"

/* ---- helpers ------------------------------------------------------------- */

#define MAXLIST 64

/* Every live entry of namespace ns (NULL: all) as "ip|ns|name|port|ttl|left",
 * sorted, joined with spaces into out. */
struct listing {
	char line[MAXLIST][256];
	int n;
	char joined[MAXLIST * 256];
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static const char *list(struct rdv_store *s, const char *ns, double now, struct listing *l)
{
	size_t cursor = 0;
	struct rdv_view v;

	l->n = 0;
	while (rdv_store_next(s, &cursor, ns, now, &v)) {
		assert_true(l->n < MAXLIST);
		snprintf(l->line[l->n], sizeof l->line[l->n], "%s|%s|%s|%d|%d|%ld", v.ip, v.ns,
			 v.name, v.port, v.ttl, v.expires_in);
		l->n++;
	}
	/* A finished scan stays finished. */
	assert_false(rdv_store_next(s, &cursor, ns, now, &v));
	qsort(l->line, (size_t)l->n, sizeof l->line[0], cmp_str);
	l->joined[0] = '\0';
	for (int i = 0; i < l->n; i++) {
		if (i > 0)
			strcat(l->joined, " ");
		strcat(l->joined, l->line[i]);
	}
	return l->joined;
}

static size_t live(struct rdv_store *s, const char *ns, double now)
{
	size_t cursor = 0, n = 0;
	struct rdv_view v;

	while (rdv_store_next(s, &cursor, ns, now, &v))
		n++;
	return n;
}

/* ---- register / upsert ---------------------------------------------------- */

static void test_register_new_then_update_same_key(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	assert_int_equal(rdv_store_max(s), RDV_STORE_MAX);
	assert_int_equal(rdv_store_register(s, "1.2.3.4", "CIC", "alice", 5000, 100, 10.0),
			 RDV_STORE_NEW);
	assert_string_equal(list(s, "CIC", 10.0, &l), "1.2.3.4|CIC|alice|5000|100|100");

	/* Same (ip, ns, name): port and ttl replaced, clock restarted. */
	assert_int_equal(rdv_store_register(s, "1.2.3.4", "CIC", "alice", 5001, 200, 60.0),
			 RDV_STORE_UPDATED);
	assert_int_equal(rdv_store_count(s), 1);
	assert_string_equal(list(s, "CIC", 60.5, &l), "1.2.3.4|CIC|alice|5001|200|199");
	/* Alive past the first registration's expiry (10 + 100). */
	assert_string_equal(list(s, "CIC", 259.0, &l), "1.2.3.4|CIC|alice|5001|200|1");
	assert_string_equal(list(s, "CIC", 260.0, &l), "");
	rdv_store_free(s);
}

static void test_key_is_ip_namespace_name(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	assert_int_equal(rdv_store_register(s, "10.0.0.1", "CIC", "alice", 1, 50, 0),
			 RDV_STORE_NEW);
	/* Another ip, namespace or name is another entry. */
	assert_int_equal(rdv_store_register(s, "10.0.0.2", "CIC", "alice", 2, 50, 0),
			 RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "LAB", "alice", 3, 50, 0),
			 RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "CIC", "bob", 4, 50, 0),
			 RDV_STORE_NEW);
	/* The hash covers the boundaries between the parts: these differ. */
	assert_int_equal(rdv_store_register(s, "ab", "c", "d", 5, 50, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "a", "bc", "d", 6, 50, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "a", "b", "cd", 7, 50, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 7);
	/* The same name@namespace twice, from two ips. */
	assert_string_equal(list(s, "CIC", 0, &l),
			    "10.0.0.1|CIC|alice|1|50|50 10.0.0.1|CIC|bob|4|50|50 "
			    "10.0.0.2|CIC|alice|2|50|50");
	assert_int_equal(rdv_store_register(s, "a", "bc", "d", 8, 50, 1), RDV_STORE_UPDATED);
	assert_string_equal(list(s, "bc", 1, &l), "a|bc|d|8|50|50");
	rdv_store_free(s);
}

static void test_ttl_clamped(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	rdv_store_register(s, "ip", "n", "zero", 1, 0, 0);
	rdv_store_register(s, "ip", "n", "neg", 1, -100, 0);
	rdv_store_register(s, "ip", "n", "huge", 1, 100000, 0);
	rdv_store_register(s, "ip", "n", "max", 1, RDV_TTL_MAX, 0);
	assert_string_equal(list(s, "n", 0, &l),
			    "ip|n|huge|1|86400|86400 ip|n|max|1|86400|86400 ip|n|neg|1|1|1 "
			    "ip|n|zero|1|1|1");
	rdv_store_free(s);
}

/* ---- expiry --------------------------------------------------------------- */

static void test_expiry_exactly_ttl_after_last_register(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	rdv_store_register(s, "ip", "n", "short", 1, 5, 100.0);
	rdv_store_register(s, "ip", "n", "long", 2, 50, 100.0);
	/* expires_in is whole seconds left, truncated. */
	assert_string_equal(list(s, "n", 104.9, &l), "ip|n|long|2|50|45 ip|n|short|1|5|0");
	/* Gone at last REGISTER + ttl, not a moment later. */
	assert_string_equal(list(s, "n", 105.0, &l), "ip|n|long|2|50|45");
	/* The scan purged it. */
	assert_int_equal(rdv_store_count(s), 1);

	/* Re-registering an expired key is a new registration. */
	assert_int_equal(rdv_store_register(s, "ip", "n", "short", 3, 5, 106.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 2);
	rdv_store_free(s);
}

static void test_expired_key_not_yet_purged_counts_as_new(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	rdv_store_register(s, "ip", "n", "a", 1, 5, 0);
	/* Still in the table (nothing purged it), but dead: NEW, fresh clock. */
	assert_int_equal(rdv_store_register(s, "ip", "n", "a", 2, 5, 10.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 1);
	assert_string_equal(list(s, "n", 14.0, &l), "ip|n|a|2|5|1");
	rdv_store_free(s);
}

static void test_expire_purges_only_dead_entries(void **state)
{
	struct rdv_store *s = rdv_store_new(0);

	/* p<i> expires at 10.5 + 3i. */
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof name, "p%d", i);
		rdv_store_register(s, "ip", "n", name, 1, 10 + 3 * i, 0.5);
	}
	assert_int_equal(rdv_store_expire(s, 10.0), 0);
	assert_int_equal(rdv_store_count(s), 20);
	assert_int_equal(rdv_store_expire(s, 15.0), 2); /* 10.5 and 13.5 */
	assert_int_equal(rdv_store_count(s), 18);
	assert_int_equal(live(s, NULL, 15.0), 18);
	/* A shorter re-registration moves the earliest expiry (16.5) earlier:
	 * expire() must not skip its scan on the stale bound. */
	assert_int_equal(rdv_store_register(s, "ip", "n", "p19", 1, 1, 15.0), RDV_STORE_UPDATED);
	assert_int_equal(rdv_store_expire(s, 16.0), 1);
	assert_int_equal(rdv_store_expire(s, 1000.0), 17);
	assert_int_equal(rdv_store_count(s), 0);
	assert_int_equal(rdv_store_expire(s, 2000.0), 0);
	/* Usable again after being emptied. */
	assert_int_equal(rdv_store_register(s, "ip", "n", "again", 1, 3, 2000.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_expire(s, 2002.0), 0);
	assert_int_equal(rdv_store_expire(s, 2003.0), 1);
	rdv_store_free(s);
}

/* ---- DISCOVER -------------------------------------------------------------- */

static void test_discover_one_namespace_all_and_unknown(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	rdv_store_register(s, "ip1", "A", "p1", 1, 100, 0);
	rdv_store_register(s, "ip1", "B", "p2", 2, 100, 0);
	rdv_store_register(s, "ip2", "A", "p3", 3, 100, 0);
	rdv_store_register(s, "ip2", "AA", "p4", 4, 100, 0);
	assert_string_equal(list(s, "A", 0, &l), "ip1|A|p1|1|100|100 ip2|A|p3|3|100|100");
	assert_string_equal(list(s, "B", 0, &l), "ip1|B|p2|2|100|100");
	assert_string_equal(list(s, "AA", 0, &l), "ip2|AA|p4|4|100|100");
	assert_string_equal(list(s, "nobody", 0, &l), "");
	assert_string_equal(list(s, "a", 0, &l), ""); /* namespaces are case-sensitive */
	assert_int_equal(live(s, NULL, 0), 4);
	rdv_store_free(s);
}

static void test_cursor_survives_changes_during_a_scan(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	bool seen[40] = { false };
	size_t cursor = 0;
	struct rdv_view v;
	int n = 0;

	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof name, "%d", i);
		rdv_store_register(s, "ip", "n", name, 1000 + i, 100, 0);
	}
	/* A DISCOVER reply is produced in pieces; the store changes between
	 * them.  Entries present all along come out exactly once. */
	while (rdv_store_next(s, &cursor, NULL, 1.0, &v)) {
		int i = atoi(v.name);
		if (i >= 0 && i < 40 && v.port == 1000 + i) {
			assert_false(seen[i]);
			seen[i] = true;
		}
		if (++n == 10) {
			/* remove some already listed, some not yet; add others */
			assert_int_equal(rdv_store_unregister(s, "ip", "n", "0", false, 0, 1.0), 1);
			assert_int_equal(rdv_store_unregister(s, "ip", "n", "39", false, 0, 1.0), 1);
			rdv_store_register(s, "ip", "n", "new1", 1, 100, 1.0);
			rdv_store_register(s, "ip", "n", "new2", 1, 100, 1.0);
		}
		assert_true(n < 100);
	}
	for (int i = 1; i < 39; i++)
		assert_true(seen[i]);
	assert_false(seen[39]);
	rdv_store_free(s);
}

static void test_scan_purges_expired_entries(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	rdv_store_register(s, "ip", "A", "dead", 1, 1, 0);
	rdv_store_register(s, "ip", "B", "dead", 1, 1, 0);
	rdv_store_register(s, "ip", "A", "alive", 1, 100, 0);
	/* A scan of A passes B's dead entry too, and purges it. */
	assert_string_equal(list(s, "A", 2.0, &l), "ip|A|alive|1|100|98");
	assert_int_equal(rdv_store_count(s), 1);
	rdv_store_free(s);
}

/* ---- UNREGISTER ------------------------------------------------------------ */

static void setup_unreg(struct rdv_store *s)
{
	rdv_store_register(s, "ip1", "N", "a", 5001, 100, 0);
	rdv_store_register(s, "ip1", "N", "b", 5002, 100, 0);
	rdv_store_register(s, "ip1", "N", "c", 5002, 100, 0);
	rdv_store_register(s, "ip1", "M", "a", 5001, 100, 0);
	rdv_store_register(s, "ip2", "N", "a", 5001, 100, 0);
}

static void test_unregister_filters(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	setup_unreg(s);
	/* Only the caller's ip, only the namespace given. */
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", "a", false, 0, 1), 1);
	assert_string_equal(list(s, NULL, 1, &l),
			    "ip1|M|a|5001|100|99 ip1|N|b|5002|100|99 ip1|N|c|5002|100|99 "
			    "ip2|N|a|5001|100|99");
	/* Name and port must both match when both are given. */
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", "b", true, 9999, 1), 0);
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", "b", true, 5002, 1), 1);
	/* Port alone: every name on that port. */
	rdv_store_register(s, "ip1", "N", "b", 5002, 100, 1);
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", NULL, true, 5002, 1), 2);
	assert_string_equal(list(s, NULL, 1, &l), "ip1|M|a|5001|100|99 ip2|N|a|5001|100|99");
	/* Nothing matching: 0, nothing touched. */
	assert_int_equal(rdv_store_unregister(s, "ip3", "N", NULL, false, 0, 1), 0);
	assert_int_equal(rdv_store_unregister(s, "ip1", "X", NULL, false, 0, 1), 0);
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", "a", false, 0, 1), 0);
	/* A port out of int range matches nothing (no truncation). */
	assert_int_equal(rdv_store_unregister(s, "ip2", "N", NULL, true,
					      5001 + (1LL << 32), 1), 0);
	assert_int_equal(rdv_store_count(s), 2);
	rdv_store_free(s);
}

static void test_unregister_all_of_an_ip_in_a_namespace(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;

	setup_unreg(s);
	assert_int_equal(rdv_store_unregister(s, "ip1", "N", NULL, false, 0, 1), 3);
	assert_string_equal(list(s, NULL, 1, &l), "ip1|M|a|5001|100|99 ip2|N|a|5001|100|99");
	rdv_store_free(s);
}

static void test_unregister_does_not_count_expired_entries(void **state)
{
	struct rdv_store *s = rdv_store_new(0);

	rdv_store_register(s, "ip", "N", "dead", 1, 1, 0);
	rdv_store_register(s, "ip", "N", "alive", 1, 100, 0);
	assert_int_equal(rdv_store_unregister(s, "ip", "N", NULL, false, 0, 5.0), 1);
	assert_int_equal(rdv_store_count(s), 0);
	rdv_store_free(s);
}

/* ---- the cap ---------------------------------------------------------------- */

static void test_cap_refuses_new_keys_updates_still_work(void **state)
{
	struct rdv_store *s = rdv_store_new(4);
	struct listing l;

	assert_int_equal(rdv_store_max(s), 4);
	for (int i = 0; i < 4; i++) {
		char name[8];
		snprintf(name, sizeof name, "p%d", i);
		assert_int_equal(rdv_store_register(s, "ip", "N", name, 1, 10 + i, 0),
				 RDV_STORE_NEW);
	}
	assert_int_equal(rdv_store_register(s, "ip", "N", "p4", 1, 100, 1), RDV_STORE_FULL);
	assert_int_equal(rdv_store_register(s, "ip2", "N", "p0", 1, 100, 1), RDV_STORE_FULL);
	assert_int_equal(rdv_store_count(s), 4);
	/* The refused key left no trace. */
	assert_string_equal(list(s, "N", 1, &l),
			    "ip|N|p0|1|10|9 ip|N|p1|1|11|10 ip|N|p2|1|12|11 ip|N|p3|1|13|12");
	/* An existing key is always updated, full or not. */
	assert_int_equal(rdv_store_register(s, "ip", "N", "p3", 2, 500, 1), RDV_STORE_UPDATED);

	/* When full, an insert first purges what has expired (p0 at 10). */
	assert_int_equal(rdv_store_register(s, "ip", "N", "p4", 1, 100, 10.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 4);
	assert_int_equal(rdv_store_register(s, "ip", "N", "p5", 1, 100, 10.5), RDV_STORE_FULL);
	/* Unregistering frees room at once. */
	assert_int_equal(rdv_store_unregister(s, "ip", "N", "p4", false, 0, 10.5), 1);
	assert_int_equal(rdv_store_register(s, "ip", "N", "p5", 1, 100, 10.5), RDV_STORE_NEW);
	/* Everything that was there all along still is. */
	assert_string_equal(list(s, "N", 10.5, &l),
			    "ip|N|p1|1|11|0 ip|N|p2|1|12|1 ip|N|p3|2|500|490 ip|N|p5|1|100|100");
	rdv_store_free(s);
}

static void test_cap_default_is_rdv_store_max(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	char name[16];

	/* The server's own cap, filled for real: 65536 keys, then FULL. */
	for (int i = 0; i < RDV_STORE_MAX; i++) {
		snprintf(name, sizeof name, "%d", i);
		assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", name, 1, 60, 0),
				 RDV_STORE_NEW);
	}
	assert_int_equal(rdv_store_count(s), RDV_STORE_MAX);
	assert_int_equal(rdv_store_register(s, "10.0.0.2", "N", "x", 1, 60, 1), RDV_STORE_FULL);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "7", 2, 60, 1),
			 RDV_STORE_UPDATED);
	assert_int_equal(live(s, NULL, 1), RDV_STORE_MAX);
	/* Once they expire, room again. */
	assert_int_equal(rdv_store_register(s, "10.0.0.2", "N", "x", 1, 60, 60.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 2); /* "7" was renewed at 1 */
	rdv_store_free(s);
}

static void test_slots_reused_count_stays_exact(void **state)
{
	struct rdv_store *s = rdv_store_new(100);
	char name[16];

	/* Churn: many more registrations over time than the cap, each short. */
	for (int round = 0; round < 50; round++) {
		double now = round * 10.0;
		for (int i = 0; i < 100; i++) {
			snprintf(name, sizeof name, "r%d-%d", round, i);
			assert_int_equal(rdv_store_register(s, "ip", "N", name, 1, 5, now),
					 RDV_STORE_NEW);
		}
		assert_int_equal(rdv_store_count(s), 100);
		assert_int_equal(live(s, "N", now), 100);
	}
	rdv_store_free(s);
}

/* ---- the per-address quota ---------------------------------------------------- */

static void test_per_ip_quota_refuses_new_keys_from_that_ip_only(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	char name[16];

	assert_int_equal(rdv_store_max_per_ip(s), 0); /* none unless set */
	rdv_store_set_max_per_ip(s, 3, false);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "n%d", i);
		assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", name, 1, 10, 0),
				 RDV_STORE_NEW);
	}
	assert_int_equal(rdv_store_ip_count(s, "10.0.0.1"), 3);
	/* Over the quota: a new key from that ip (any namespace) is refused... */
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "n3", 1, 10, 1),
			 RDV_STORE_IP_FULL);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "M", "n0", 1, 10, 1),
			 RDV_STORE_IP_FULL);
	/* ...renewing a held key works, and other ips are not affected. */
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "n2", 2, 100, 1),
			 RDV_STORE_UPDATED);
	assert_int_equal(rdv_store_register(s, "10.0.0.2", "N", "n3", 1, 10, 1), RDV_STORE_NEW);
	assert_int_equal(rdv_store_count(s), 4);
	/* Unregistering frees a place at once. */
	assert_int_equal(rdv_store_unregister(s, "10.0.0.1", "N", "n0", false, 0, 2), 1);
	assert_int_equal(rdv_store_ip_count(s, "10.0.0.1"), 2);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "n3", 1, 10, 2), RDV_STORE_NEW);
	/* Expired entries (n1, n3 at 10 and 12) do not count against it. */
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "n4", 1, 10, 12.0),
			 RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "n5", 1, 10, 12.0),
			 RDV_STORE_NEW);
	assert_int_equal(rdv_store_ip_count(s, "10.0.0.1"), 3);
	rdv_store_free(s);
}

static void test_loopback_exempt_when_asked(void **state)
{
	struct rdv_store *s = rdv_store_new(0);

	rdv_store_set_max_per_ip(s, 1, true);
	assert_int_equal(rdv_store_register(s, "127.0.0.1", "N", "a", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "127.0.0.1", "N", "b", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "127.9.9.9", "N", "a", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "127.9.9.9", "N", "b", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "::1", "N", "a", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "::1", "N", "b", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "a", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "10.0.0.1", "N", "b", 1, 10, 0), RDV_STORE_IP_FULL);
	assert_int_equal(rdv_store_register(s, "::2", "N", "a", 1, 10, 0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_register(s, "::2", "N", "b", 1, 10, 0), RDV_STORE_IP_FULL);
	rdv_store_free(s);
}

static void test_per_ip_counts_follow_every_removal(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	char name[16];

	rdv_store_set_max_per_ip(s, 256, false);
	/* The flood: one address registering 65,536 names. */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof name, "%d", i);
		enum rdv_store_result r = rdv_store_register(s, "10.9.9.9", "N", name, 1, 5, 0);
		assert_int_equal(r, i < 256 ? RDV_STORE_NEW : RDV_STORE_IP_FULL);
	}
	assert_int_equal(rdv_store_count(s), 256);
	assert_int_equal(rdv_store_ip_count(s, "10.9.9.9"), 256);
	/* Purged by a scan: the count goes with them. */
	assert_int_equal(live(s, NULL, 5.0), 0);
	assert_int_equal(rdv_store_ip_count(s, "10.9.9.9"), 0);
	assert_int_equal(rdv_store_register(s, "10.9.9.9", "N", "x", 1, 5, 5.0), RDV_STORE_NEW);
	rdv_store_free(s);
}

/* ---- restore and the change counter ------------------------------------------ */

static void test_restore_keeps_the_saved_expiry(void **state)
{
	struct rdv_store *s = rdv_store_new(0);
	struct listing l;
	unsigned long c0 = rdv_store_changes(s);

	assert_int_equal(rdv_store_restore(s, "ip", "N", "a", 1, 100, 50.0, 80.0), RDV_STORE_NEW);
	assert_int_equal(rdv_store_restore(s, "ip", "N", "gone", 1, 100, 50.0, 50.0),
			 RDV_STORE_EXPIRED);
	/* Never longer than the ttl granted. */
	assert_int_equal(rdv_store_restore(s, "ip", "N", "b", 1, 10, 50.0, 1e9), RDV_STORE_NEW);
	assert_string_equal(list(s, NULL, 50.0, &l), "ip|N|a|1|100|30 ip|N|b|1|10|10");
	assert_true(rdv_store_changes(s) != c0);
	c0 = rdv_store_changes(s);
	assert_int_equal(live(s, NULL, 51.0), 2);
	assert_true(rdv_store_changes(s) == c0); /* a read changes nothing */
	assert_int_equal(rdv_store_register(s, "ip", "N", "a", 1, 100, 51.0), RDV_STORE_UPDATED);
	assert_true(rdv_store_changes(s) != c0);
	rdv_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_new_then_update_same_key),
		cmocka_unit_test(test_key_is_ip_namespace_name),
		cmocka_unit_test(test_ttl_clamped),
		cmocka_unit_test(test_expiry_exactly_ttl_after_last_register),
		cmocka_unit_test(test_expired_key_not_yet_purged_counts_as_new),
		cmocka_unit_test(test_expire_purges_only_dead_entries),
		cmocka_unit_test(test_discover_one_namespace_all_and_unknown),
		cmocka_unit_test(test_cursor_survives_changes_during_a_scan),
		cmocka_unit_test(test_scan_purges_expired_entries),
		cmocka_unit_test(test_unregister_filters),
		cmocka_unit_test(test_unregister_all_of_an_ip_in_a_namespace),
		cmocka_unit_test(test_unregister_does_not_count_expired_entries),
		cmocka_unit_test(test_cap_refuses_new_keys_updates_still_work),
		cmocka_unit_test(test_cap_default_is_rdv_store_max),
		cmocka_unit_test(test_slots_reused_count_stays_exact),
		cmocka_unit_test(test_per_ip_quota_refuses_new_keys_from_that_ip_only),
		cmocka_unit_test(test_per_ip_counts_follow_every_removal),
		cmocka_unit_test(test_loopback_exempt_when_asked),
		cmocka_unit_test(test_restore_keeps_the_saved_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
