#include "net/dial_pacer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peerid.h"
#include "timeutil.h"
#include "xmalloc.h"

#define BUCKETS 256

struct waiting {
	struct waiting *next;       /* FIFO */
	struct waiting *hnext;      /* hash chain: queued once */
	char peer_id[PEER_ID_MAX + 1];
};

struct dial_pacer {
	struct ev_loop *loop;
	dial_pacer_fn go;
	void *ctx;
	unsigned max;               /* in flight at most */
	double rate;                /* starts per second */
	unsigned in_flight;
	double tokens;              /* token bucket: up to max, refilled at rate */
	double refilled;            /* mono_now() of the last refill */
	struct waiting *head, *tail;
	struct waiting *hash[BUCKETS];
	size_t nwaiting;
	ev_timer timer;             /* next turn */
	bool pumping;
};

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % BUCKETS;
}

static void refill(struct dial_pacer *dp)
{
	double now = mono_now();

	dp->tokens += (now - dp->refilled) * dp->rate;
	if (dp->tokens > dp->max)
		dp->tokens = dp->max;
	dp->refilled = now;
}

static bool may_start(struct dial_pacer *dp)
{
	refill(dp);
	return dp->in_flight < dp->max && dp->tokens >= 1.0;
}

static void arm(struct dial_pacer *dp)
{
	double after = 0;

	if (dp->head == NULL || dp->in_flight >= dp->max)
		return; /* dial_pacer_done() arms it again */
	if (dp->tokens < 1.0)
		after = (1.0 - dp->tokens) / dp->rate;
	ev_timer_stop(dp->loop, &dp->timer);
	ev_timer_set(&dp->timer, after, 0);
	ev_timer_start(dp->loop, &dp->timer);
}

static struct waiting *pop(struct dial_pacer *dp)
{
	struct waiting *w = dp->head, **pp;

	dp->head = w->next;
	if (dp->head == NULL)
		dp->tail = NULL;
	for (pp = &dp->hash[hash(w->peer_id)]; *pp != w; pp = &(*pp)->hnext)
		;
	*pp = w->hnext;
	dp->nwaiting--;
	return w;
}

static void on_turn(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dial_pacer *dp = w->data;

	dp->pumping = true;
	while (dp->head != NULL && may_start(dp)) {
		struct waiting *x = pop(dp);
		dp->tokens -= 1.0;
		dp->in_flight++;
		if (!dp->go(dp->ctx, x->peer_id))
			dp->in_flight--; /* connected meanwhile, or gone */
		free(x);
	}
	dp->pumping = false;
	arm(dp);
}

struct dial_pacer *dial_pacer_new(struct ev_loop *loop, dial_pacer_fn go, void *ctx)
{
	struct dial_pacer *dp = xcalloc(1, sizeof *dp);

	dp->loop = loop;
	dp->go = go;
	dp->ctx = ctx;
	dp->max = 32;
	dp->rate = 100;
	dp->tokens = dp->max;
	dp->refilled = mono_now();
	ev_init(&dp->timer, on_turn);
	dp->timer.data = dp;
	return dp;
}

void dial_pacer_free(struct dial_pacer *dp)
{
	if (dp == NULL)
		return;
	ev_timer_stop(dp->loop, &dp->timer);
	while (dp->head != NULL)
		free(pop(dp));
	free(dp);
}

void dial_pacer_configure(struct dial_pacer *dp, int max_in_flight, double per_second)
{
	dp->max = max_in_flight > 0 ? (unsigned)max_in_flight : 1;
	dp->rate = per_second > 0 ? per_second : 1;
	refill(dp);
	arm(dp);
}

bool dial_pacer_admit(struct dial_pacer *dp, const char *peer_id)
{
	uint32_t b = hash(peer_id);
	struct waiting *w;

	/* Those already waiting go first: no overtaking. */
	if (dp->head == NULL && may_start(dp)) {
		dp->tokens -= 1.0;
		dp->in_flight++;
		return true;
	}
	for (w = dp->hash[b]; w != NULL; w = w->hnext)
		if (strcmp(w->peer_id, peer_id) == 0)
			return false;
	w = xcalloc(1, sizeof *w);
	memcpy(w->peer_id, peer_id, strnlen(peer_id, PEER_ID_MAX));
	w->hnext = dp->hash[b];
	dp->hash[b] = w;
	if (dp->tail)
		dp->tail->next = w;
	else
		dp->head = w;
	dp->tail = w;
	dp->nwaiting++;
	if (!ev_is_active(&dp->timer) && !dp->pumping)
		arm(dp);
	return false;
}

void dial_pacer_done(struct dial_pacer *dp)
{
	if (dp->in_flight > 0)
		dp->in_flight--;
	/* From the next loop iteration, not inside the caller's callback. */
	if (dp->head != NULL && !ev_is_active(&dp->timer) && !dp->pumping)
		arm(dp);
}

size_t dial_pacer_waiting(const struct dial_pacer *dp)
{
	return dp->nwaiting;
}

unsigned dial_pacer_in_flight(const struct dial_pacer *dp)
{
	return dp->in_flight;
}
