/* heartbeat.c - one thread renews the leases of every job this process
 * holds (ready or running) and its registration, in one round trip per
 * queue every hb_interval, so a handler stuck in CPU-heavy work never
 * loses its lease. It also enforces job timeouts (checked every 100 ms)
 * and turns renewal answers into cancel flags: lost lease or cancel
 * request.
 *
 * The renewal is also how Redis learns that a job's run has begun (it
 * marks `ran`, and only then does a lease that expires count an attempt:
 * a job leased by a worker that died before starting it gets its attempt
 * back). So a job still running REPORT_AFTER_US after its start is
 * reported by the next tick, without waiting for hb_interval: a job
 * shorter than that is settled first and costs no renewal at all, and
 * jobs that start together share one.
 */
#include "worker/worker_int.h"

#include "base/clock.h"
#include "base/mem.h"
#include "log/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TICK_US 100000
#define ABANDON_AFTER_US 10000000 /* past a job's timeout */
#define REPORT_AFTER_US 250000    /* a run not yet reported is, this long after its start */

/* The task holding a lease of queue qi: its id and token (tokens come from
 * each queue's own sequence, so only the three together name one lease). */
static int holds(const struct task *t, size_t qi, const char *id, int64_t token)
{
	return t && (size_t)t->qi == qi && t->job.token == token && !strcmp(t->job.id, id);
}

static struct task *find_task(struct worker *w, size_t qi, const char *id, int64_t token)
{
	struct task *t;
	size_t i;

	for (t = w->ready; t; t = t->next)
		if (holds(t, qi, id, token))
			return t;
	for (i = 0; i < (size_t)w->cfg->concurrency; i++)
		if (holds(w->running[i], qi, id, token))
			return w->running[i];
	return NULL;
}

/* Whether a running job has gone unreported for REPORT_AFTER_US. */
static int unreported(const struct worker *w, int64_t now)
{
	size_t i;

	for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
		const struct task *t = w->running[i];

		if (t && !t->reported && t->reason == STOP_NONE && t->started_mono &&
		    now - t->started_mono >= REPORT_AFTER_US)
			return 1;
	}
	return 0;
}

static void stop_task(struct task *t, int reason)
{
	if (t->reason != STOP_NONE)
		return;
	t->reason = reason;
	atomic_store(&t->cancel, 1);
}

/* A failed renewal or touch: while Redis is unreachable, written the
 * first time, then every 10 to 60 s with a count (log_limit). */
static void warn_renew(struct log_limit *lim, const char *msg, const char *queue,
		       const struct err *e)
{
	unsigned long held = 0;
	char n[24];

	if ((e->code == ERR_UNAVAILABLE || e->code == ERR_TIMEOUT) &&
	    !log_limit_due(lim, &held))
		return;
	snprintf(n, sizeof(n), "%lu", held);
	log_warn(msg, "queue", queue, "error", e->msg, "repeated", held ? n : NULL);
}

static void renew(struct worker *w, struct queue *hq, struct log_limit *lim)
{
	struct queue_lease *leases = NULL;
	char (*ids)[UUID_STR_LEN] = NULL;
	size_t qi, n, cap, i;
	struct task *t;
	struct err e;

	for (qi = 0; qi < w->nqueues; qi++) {
		pthread_mutex_lock(&w->mu);
		cap = w->nready + w->nrunning + 1;
		leases = xrealloc(leases, cap * sizeof(*leases));
		ids = xrealloc(ids, cap * sizeof(*ids));
		n = 0;
		for (t = w->ready; t; t = t->next)
			if ((size_t)t->qi == qi && n < cap) {
				memcpy(ids[n], t->job.id, UUID_STR_LEN);
				leases[n].token = t->job.token;
				leases[n].running = 0; /* leased ahead */
				n++;
			}
		for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
			t = w->running[i];
			if (t && t->deadline_mono && t->reason == STOP_TIMEOUT &&
			    clock_mono_us() > t->deadline_mono + ABANDON_AFTER_US) {
				/* Its handler ignores the timeout: stop holding the
				 * lease so the job can run again elsewhere; whatever
				 * it returns later is dropped. */
				log_warn("handler ignores its timeout, releasing the job",
					 "job_id", t->job.id);
				t->reason = STOP_LOST;
				continue;
			}
			if (t && (size_t)t->qi == qi && !t->settled_early &&
			    t->reason != STOP_LOST && n < cap) {
				memcpy(ids[n], t->job.id, UUID_STR_LEN);
				leases[n].token = t->job.token;
				leases[n].running = 1;
				n++;
			}
		}
		pthread_mutex_unlock(&w->mu);
		for (i = 0; i < n; i++)
			leases[i].id = ids[i];
		if (n == 0) {
			/* Idle: one plain command keeps the registration. */
			if (queue_touch(hq, w->queue_names[qi], w->id, w->worker_ttl_ms, &e) < 0)
				warn_renew(lim, "heartbeat failed", w->queue_names[qi], &e);
			else
				log_limit_clear(lim, NULL, NULL);
			continue;
		}
		if (queue_renew(hq, w->queue_names[qi], w->id, (int64_t)(w->cfg->lease * 1000),
				w->worker_ttl_ms, leases, n, &e) < 0) {
			warn_renew(lim, "lease renewal failed", w->queue_names[qi], &e);
			continue;
		}
		log_limit_clear(lim, NULL, NULL);
		pthread_mutex_lock(&w->mu);
		for (i = 0; i < n; i++) {
			if (!leases[i].running && !leases[i].lost && !leases[i].cancel)
				continue;
			t = find_task(w, qi, leases[i].id, leases[i].token);
			if (!t)
				continue;
			if (leases[i].running && !leases[i].lost)
				t->reported = 1;
			if (!leases[i].lost && !leases[i].cancel)
				continue;
			if (leases[i].lost) {
				log_warn("lease lost, stopping job", "job_id", leases[i].id);
				stop_task(t, STOP_LOST);
			} else {
				log_info("cancel requested, stopping job", "job_id", leases[i].id);
				stop_task(t, STOP_CANCEL);
			}
		}
		pthread_mutex_unlock(&w->mu);
	}
	free(leases);
	free(ids);
}

void *heartbeat_main(void *arg)
{
	struct worker *w = arg;
	struct queue *hq = NULL;
	struct log_limit lim = { 0 };
	int64_t next_renew = 0, last_renew = 0;
	uint64_t seen_gen = 0;
	struct err e;

	pthread_mutex_lock(&w->mu);
	while (!w->hb_quit) {
		int64_t now = clock_mono_us();
		size_t i;

		for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
			struct task *t = w->running[i];

			if (t && t->deadline_mono && now > t->deadline_mono &&
			    t->reason == STOP_NONE) {
				atomic_fetch_add(&w->m_timeouts, 1);
				stop_task(t, STOP_TIMEOUT);
			}
		}
		/* A new drain registers itself on its first take: its first
		 * refresh is due an interval later, so a wake that finds
		 * nothing (ended by then) costs no command here. */
		if (w->drain_gen != seen_gen) {
			seen_gen = w->drain_gen;
			if (!w->nrunning && !w->nready &&
			    next_renew < now + w->hb_interval_ms * 1000)
				next_renew = now + w->hb_interval_ms * 1000;
		}
		/* Renew while a drain runs or jobs are held (a shutdown may
		 * outlive the drain's registration). */
		/* (an early report is not retried faster than that either,
		 * while Redis cannot be reached) */
		if ((now >= next_renew && (w->draining || w->nrunning || w->nready)) ||
		    (now - last_renew >= REPORT_AFTER_US && unreported(w, now))) {
			last_renew = now;
			pthread_mutex_unlock(&w->mu);
			if (!hq)
				hq = queue_connect(&w->qopts, &e);
			if (hq)
				renew(w, hq, &lim);
			pthread_mutex_lock(&w->mu);
			next_renew = now + w->hb_interval_ms * 1000;
		} else if (!w->draining && !w->nrunning && !w->nready) {
			next_renew = 0; /* held jobs of the next drain: at once */
		}
		clock_cond_wait_us(&w->hb_cv, &w->mu, TICK_US);
	}
	pthread_mutex_unlock(&w->mu);
	queue_free(hq);
	return NULL;
}
