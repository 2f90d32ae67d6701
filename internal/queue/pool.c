/* pool.c - connections borrowed per request (see queue.h "queue_pool").
 *
 * Invariants: idle[] holds at most max_idle connections, each owned by the
 * pool; a borrowed connection belongs to its borrower until put back. The
 * lock guards idle[], down_until_us and silent_until_us only: no network
 * I/O happens under it, so a slow connect never blocks the gets that find
 * an idle connection. */
#include "queue/priv.h"

#include "base/clock.h"
#include "base/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_IDLE_DEFAULT 64

struct queue_pool {
	struct queue_opts opts;
	pthread_mutex_t lock;
	struct queue **idle;     /* a stack: the most recently used on top */
	size_t nidle, max_idle;
	int64_t down_until_us;   /* monotonic: gets that would connect fail
				  * fast until then */
	int64_t silent_until_us; /* monotonic: every get fails fast until
				  * then (a command went unanswered) */
};

struct queue_pool *queue_pool_new(const struct queue_opts *opts, size_t max_idle)
{
	struct queue_pool *p = xcalloc(1, sizeof(*p));

	p->opts = *opts;
	p->max_idle = max_idle ? max_idle : POOL_IDLE_DEFAULT;
	p->idle = xcalloc(p->max_idle, sizeof(*p->idle));
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void queue_pool_free(struct queue_pool *p)
{
	if (!p)
		return;
	while (p->nidle > 0)
		queue_free(p->idle[--p->nidle]);
	free(p->idle);
	pthread_mutex_destroy(&p->lock);
	queue_opts_release(&p->opts);
	free(p);
}

/* Opens the fail-fast window after Redis proved unreachable. */
static void mark_down(struct queue_pool *p, const struct err *e)
{
	if (e->code != ERR_UNAVAILABLE)
		return;
	pthread_mutex_lock(&p->lock);
	p->down_until_us = clock_mono_us() + QUEUE_POOL_RETRY_MS * 1000;
	pthread_mutex_unlock(&p->lock);
}

struct queue *queue_pool_get(struct queue_pool *p, struct err *err)
{
	struct queue *q = NULL;
	struct err e;
	int64_t now;

	pthread_mutex_lock(&p->lock);
	now = clock_mono_us();
	if (now < p->silent_until_us) {
		int64_t left_us = p->silent_until_us - now;

		pthread_mutex_unlock(&p->lock);
		err_set(err, ERR_UNAVAILABLE, "redis did not answer; retrying in %lld ms",
			(long long)(left_us + 999) / 1000);
		return NULL;
	}
	if (p->nidle > 0) {
		size_t i = p->nidle - 1;

		/* the topmost live one; else the top one, to reconnect */
		while (i > 0 && !queue_connected(p->idle[i]))
			i--;
		if (!queue_connected(p->idle[i]))
			i = p->nidle - 1;
		q = p->idle[i];
		p->idle[i] = p->idle[--p->nidle];
	}
	now = clock_mono_us();
	if ((!q || !queue_connected(q)) && now < p->down_until_us) {
		int64_t left_us = p->down_until_us - now;

		if (q)
			p->idle[p->nidle++] = q;
		pthread_mutex_unlock(&p->lock);
		err_set(err, ERR_UNAVAILABLE, "redis is unavailable; retrying in %lld ms",
			(long long)(left_us + 999) / 1000);
		return NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (q && queue_connected(q))
		return q;
	if (!q) {
		q = queue_connect(&p->opts, &e);
		if (q)
			return q;
	} else if (queue_reconnect(q, &e) == 0) {
		return q;
	} else {
		queue_pool_put(p, q);
	}
	mark_down(p, &e);
	if (err)
		*err = e;
	return NULL;
}

void queue_pool_put(struct queue_pool *p, struct queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&p->lock);
	/* A server that let a command time out (frozen, cut off) is not
	 * asked again by any connection for a while: the other idle ones
	 * would each wait out a command timeout of their own, and the
	 * requests gathered behind the first one with them. */
	if (queue_unanswered(q))
		p->silent_until_us = clock_mono_us() + QUEUE_POOL_RETRY_MS * 1000;
	if (p->nidle < p->max_idle) {
		p->idle[p->nidle++] = q;
		q = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	queue_free(q);
}
