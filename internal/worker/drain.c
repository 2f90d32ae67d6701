/* drain.c - the drain thread: settles finished jobs and takes new ones in
 * batches (one round trip per queue per cycle), keeps the slots fed, and
 * when nothing is due blocks on the queues' wake markers (no polling)
 * until an enqueue, the next delayed job, or the idle timeout.
 *
 * Two Redis connections: `q` for scripts, `bq` for the blocking BLPOP, so
 * completions can be settled while a wait is outstanding. A wait is never
 * left outstanding while every slot is busy: it would swallow a wake
 * marker meant for another, idle worker.
 *
 * `q` is kept from one drain to the next (w->dq), and the registration
 * and the wake counts ride on the first take of each queue, so a wake
 * that finds nothing due is one take and one retire per queue (Redis
 * billed per command: docs/CLOUDRUN.md). The worker is live to the API
 * from that take on, as it was from a register script sent just before.
 */
#include "worker/worker_int.h"

#include "base/clock.h"
#include "base/mem.h"
#include "log/log.h"
#include "log/trace.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The drain thread's state; only the drain thread touches it. The
 * fields under "snapshot" are copied from struct worker under mu at the
 * top of every turn of the loop (drain_collect). */
struct drain {
	struct worker *w;
	const struct worker_config *c;
	struct queue *q, *bq;
	int waiting;              /* BLPOP outstanding on bq */
	int registered;
	/* per queue, for its next take: register; wakes to count */
	unsigned char reg_due[WORKER_MAX_QUEUES];
	int64_t wakes_due[WORKER_MAX_QUEUES][QUEUE_NTRIGGERS];
	int retired;              /* left every queue's registry: do not again */
	int after_cut;            /* a /wake of this drain was a retried
				   * dispatch (w->wake_retried) */
	int look;                 /* a take is worth a round trip */
	int first_taken;          /* a take has succeeded in this drain */
	int empty;                /* the first take found nothing due, and
				   * nothing was taken since (drain_decide) */
	uint64_t seen_seq;        /* w->wake_seq last seen */
	const char *qnames[WORKER_MAX_QUEUES];
	struct queue_job *jobs;   /* take buffer */
	struct queue_settle *settle;
	struct task **settled;    /* tasks behind settle[] */
	struct task *done;        /* finished tasks taken from w->done, not
				   * settled yet (kept when Redis fails) */
	int64_t t0;               /* monotonic µs: the drain's start */
	int64_t wake_max_at;      /* monotonic µs: t0 + WAKE_MAX */
	int64_t idle_us;          /* IDLE_TIMEOUT */
	int64_t idle_since;       /* monotonic µs: last sign of work */
	int64_t progress_due;     /* µs until held-back progress is due, 0 */
	int64_t next_due_ms;      /* earliest delayed job / lease expiry */
	int64_t server_skew_ms;   /* redis clock - our wall clock */
	int64_t backoff_until;    /* monotonic: Redis down, wait before retry */
	int64_t bq_retry_at;      /* monotonic: after a failed marker wait */
	int64_t bq_backoff;       /* its growing delay, µs */
	unsigned char paused[WORKER_MAX_QUEUES]; /* the last take said paused */
	/* snapshot */
	int stopping, abandon, past_max;
	size_t cap;               /* CONCURRENCY + prefetch */
	size_t want;              /* room for this many more jobs */
};

static struct queue *connect_q(struct worker *w, struct err *e)
{
	return queue_connect(&w->qopts, e);
}

/* Logs a failed Redis call of the drain. While Redis is unreachable the
 * drain retries every 200 ms: the first warning is written, then one
 * every 10 to 60 s with how many were held back (w->drain_redis_warn). */
static void warn_redis(struct drain *d, const char *msg, const char *queue,
		       const struct err *e)
{
	unsigned long held = 0;
	char n[24];

	if (e->code != ERR_UNAVAILABLE && e->code != ERR_TIMEOUT) {
		log_warn(msg, "queue", queue, "error", e->msg);
		return;
	}
	if (!log_limit_due(&d->w->drain_redis_warn, &held))
		return;
	snprintf(n, sizeof(n), "%lu", held);
	log_warn(msg, "queue", queue, "error", e->msg, "repeated", held ? n : NULL);
}

/* Redis answered: says so once after an outage. */
static void redis_back(struct drain *d)
{
	unsigned long held;
	double secs;
	char s[32], n[24];

	if (!log_limit_clear(&d->w->drain_redis_warn, &secs, &held))
		return;
	snprintf(s, sizeof(s), "%.1f", secs);
	snprintf(n, sizeof(n), "%lu", held);
	log_info("redis reachable again", "after_s", s, "repeated", held ? n : NULL);
}

static int ensure_conn(struct drain *d)
{
	struct err e;

	if (d->q)
		return 0;
	d->q = connect_q(d->w, &e);
	if (!d->q) {
		warn_redis(d, "redis unavailable, retrying", NULL, &e);
		return -1;
	}
	return 0;
}

/* Moves the wakes this process got into every served queue's count,
 * for its next take to add to the queue's metrics in Redis. */
static void collect_wakes(struct drain *d)
{
	struct worker *w = d->w;
	size_t i;
	int t;

	for (t = 0; t < QUEUE_NTRIGGERS; t++) {
		uint64_t n = atomic_exchange(&w->wakes_unsent[t], 0);

		for (i = 0; n && i < w->nqueues; i++)
			d->wakes_due[i][t] += (int64_t)n;
	}
}

static int wakes_pending(const struct drain *d, size_t qi)
{
	int t;

	for (t = 0; t < QUEUE_NTRIGGERS; t++)
		if (d->wakes_due[qi][t])
			return 1;
	return 0;
}

/* What no take carried (a queue not taken from this round: every slot
 * busy): registrations and wake counts, one command each. A failed
 * registration is tried again next round; a failed count too. */
static void send_due(struct drain *d)
{
	struct worker *w = d->w;
	struct err e;
	size_t i;
	int t;

	for (i = 0; d->q && i < w->nqueues; i++) {
		if (d->reg_due[i]) {
			if (queue_register(d->q, w->queue_names[i], w->id, w->worker_ttl_ms,
					   &e) < 0) {
				warn_redis(d, "cannot register worker", w->queue_names[i], &e);
				d->registered = 0;
				return;
			}
			d->reg_due[i] = 0;
		}
		for (t = 0; t < QUEUE_NTRIGGERS; t++) {
			if (!d->wakes_due[i][t])
				continue;
			if (queue_count_wake(d->q, w->queue_names[i], (enum queue_trigger)t,
					     d->wakes_due[i][t], &e) < 0) {
				log_debug("wake not counted", "error", e.msg);
				return;
			}
			d->wakes_due[i][t] = 0;
		}
	}
}

static void do_register(struct drain *d)
{
	struct worker *w = d->w;
	struct err e;
	size_t i;

	for (i = 0; i < w->nqueues; i++)
		if (queue_register(d->q, w->queue_names[i], w->id, w->worker_ttl_ms, &e) < 0) {
			warn_redis(d, "cannot register worker", w->queue_names[i], &e);
			return;
		}
	d->registered = 1;
	redis_back(d);
}

/* Retires from every queue. Returns 1 when retired from all, 0 when some
 * queue still has due work (then the worker stays registered on all). */
static int do_retire(struct drain *d, int force)
{
	struct worker *w = d->w;
	struct err e;
	size_t i;
	int retired, all = 1;

	if (ensure_conn(d) < 0)
		return force; /* Redis is down: registrations expire on their own */
	for (i = 0; i < w->nqueues; i++) {
		if (queue_retire(d->q, w->queue_names[i], w->id, force, &retired, &e) < 0) {
			warn_redis(d, "cannot retire", w->queue_names[i], &e);
			return force;
		}
		all &= retired;
	}
	redis_back(d);
	if (!all)
		do_register(d);
	return all;
}

/* Moves taken jobs into the ready list. */
static void add_ready(struct worker *w, size_t qi, struct queue_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		tasks_push_ready(w, task_new(&jobs[i], (int)qi));
	if (n == 1)
		pthread_cond_signal(&w->slot_cv);
	else if (n > 1)
		pthread_cond_broadcast(&w->slot_cv);
}

static void count_settled(struct worker *w, const struct queue_settle *s)
{
	if (s->stale) {
		w->cur.stale++;
		atomic_fetch_add(&w->m_stale, 1);
		return;
	}
	switch (s->outcome) {
	case QUEUE_DONE:
		w->cur.done++;
		atomic_fetch_add(&w->m_done, 1);
		break;
	case QUEUE_RETRY:
		if (s->final) {
			w->cur.failed++;
			atomic_fetch_add(&w->m_failed, 1);
		} else {
			w->cur.retried++;
			atomic_fetch_add(&w->m_retried, 1);
		}
		break;
	case QUEUE_FAIL:
		w->cur.failed++;
		atomic_fetch_add(&w->m_failed, 1);
		break;
	case QUEUE_CANCELLED:
		w->cur.cancelled++;
		atomic_fetch_add(&w->m_cancelled, 1);
		break;
	case QUEUE_REQUEUE:
	case QUEUE_PUSHBACK:
		w->cur.requeued++;
		atomic_fetch_add(&w->m_requeued, 1);
		break;
	}
}

/* Mirrors an applied settle into the Postgres row. */
static void record_settled(struct worker *w, const struct queue_settle *s, int attempts)
{
	if (!w->rec || s->stale)
		return;
	switch (s->outcome) {
	case QUEUE_DONE:
		records_add(w->rec, RECORDS_FINAL, s->id, attempts, 100, NULL, s->result, NULL,
			    JOB_DONE);
		break;
	case QUEUE_RETRY:
	case QUEUE_FAIL:
		if (s->final)
			records_add(w->rec, RECORDS_FINAL, s->id, attempts, 0, NULL, NULL, s->error,
				    JOB_FAILED);
		else
			records_add(w->rec, RECORDS_RETRYING, s->id, attempts, 0, NULL, NULL,
				    s->error, JOB_RETRYING);
		break;
	case QUEUE_CANCELLED:
		records_add(w->rec, RECORDS_FINAL, s->id, attempts, 0, NULL, NULL, s->error,
			    JOB_CANCELLED);
		break;
	case QUEUE_REQUEUE:
	case QUEUE_PUSHBACK:
		records_add(w->rec, RECORDS_QUEUED, s->id, 0, 0, NULL, NULL, NULL, JOB_QUEUED);
		break;
	}
}

/* One cycle over every queue: settle what finished there and take up to
 * `want` jobs in queue order. Returns jobs taken, or -1 when Redis failed
 * (finished tasks are kept for the next cycle). */
static int cycle(struct drain *d, size_t want)
{
	struct worker *w = d->w;
	size_t qi, taken = 0, batch = (size_t)w->cfg->batch;
	int64_t next_due = 0;

	for (qi = 0; qi < w->nqueues; qi++) {
		struct queue_take t;
		struct task **pp, *tk;
		size_t ns = 0, i;
		struct err e;

		do {
			/* Settle up to a batch of this queue's finished tasks. */
			ns = 0;
			for (pp = &d->done; *pp && ns < batch;) {
				tk = *pp;
				if ((size_t)tk->qi != qi) {
					pp = &tk->next;
					continue;
				}
				*pp = tk->next;
				tk->next = NULL;
				d->settled[ns] = tk;
				memset(&d->settle[ns], 0, sizeof(d->settle[ns]));
				d->settle[ns].id = tk->job.id;
				d->settle[ns].token = tk->job.token;
				d->settle[ns].outcome = tk->outcome;
				d->settle[ns].result = tk->result;
				d->settle[ns].error = tk->error;
				d->settle[ns].delay_ms = tk->delay_ms;
				d->settle[ns].run_us = tk->started_mono ? tk->run_us : -1;
				ns++;
			}
			memset(&t, 0, sizeof(t));
			t.worker = w->id;
			t.lease_ms = (int64_t)(w->cfg->lease * 1000);
			t.max = want - taken < batch ? want - taken : batch;
			t.settle = d->settle;
			t.nsettle = ns;
			t.jobs = d->jobs;
			if (t.max == 0 && ns == 0)
				break;
			t.register_ttl_ms = d->reg_due[qi] ? w->worker_ttl_ms : 0;
			t.record = w->rec != NULL;
			t.wakes = wakes_pending(d, qi) ? d->wakes_due[qi] : NULL;
			if (queue_take(d->q, w->queue_names[qi], &t, &e) < 0) {
				/* Put the tasks back for the next try. */
				for (i = ns; i-- > 0;) {
					d->settled[i]->next = d->done;
					d->done = d->settled[i];
				}
				warn_redis(d, "take failed", w->queue_names[qi], &e);
				if (e.code == ERR_UNAVAILABLE) {
					queue_free(d->q);
					d->q = NULL;
					d->registered = 0;
				}
				return -1;
			}
			d->server_skew_ms = t.server_now_ms - clock_now_us() / 1000;
			redis_back(d);
			d->reg_due[qi] = 0;
			memset(d->wakes_due[qi], 0, sizeof(d->wakes_due[qi]));
			/* final states another process left in the log */
			if (t.finals > 0)
				records_pump(w->rec);
			d->paused[qi] = (unsigned char)t.paused;
			/* a cron schedule ran low on fire times computed ahead */
			if (t.refill && queue_schedule_refill(d->q, w->queue_names[qi], &e) < 0)
				log_warn("cannot compute fire times", "queue", w->queue_names[qi],
					 "error", e.msg);
			for (i = 0; i < t.njobs; i++)
				records_add(w->rec, RECORDS_STARTED, t.jobs[i].id, t.jobs[i].attempts,
					    0, NULL, NULL, NULL, JOB_ACTIVE);
			for (i = 0; i < ns; i++)
				record_settled(w, &d->settle[i], d->settled[i]->job.attempts);
			pthread_mutex_lock(&w->mu);
			for (i = 0; i < ns; i++)
				count_settled(w, &d->settle[i]);
			add_ready(w, qi, t.jobs, t.njobs);
			w->cur.jobs += (int64_t)t.njobs;
			pthread_mutex_unlock(&w->mu);
			for (i = 0; i < ns; i++)
				task_free(d->settled[i]);
			taken += t.njobs;
			/* (with jobs taken, a rate limit's next token) */
			if (t.next_due_ms && (next_due == 0 || t.next_due_ms < next_due))
				next_due = t.next_due_ms;
			/* Keep going on this queue while it fills whole batches. */
		} while (ns == batch || (t.njobs == t.max && t.max > 0 && taken < want));
	}
	d->next_due_ms = next_due;
	return (int)taken;
}

/* Publishes coalesced progress of running tasks (at most every 250 ms a
 * job). Returns the microseconds until a held-back update is due, or 0. */
static int64_t flush_progress(struct drain *d)
{
	struct worker *w = d->w;
	struct {
		char id[UUID_STR_LEN];
		int64_t token;
		int qi;
		double pct;
		char stage[32];
	} out[64];
	size_t n = 0, i;
	int64_t now = clock_mono_us(), again = 0;
	struct err e;

	pthread_mutex_lock(&w->mu);
	for (i = 0; i < (size_t)w->cfg->concurrency && n < 64; i++) {
		struct task *t = w->running[i];

		if (!t || !t->progress_dirty)
			continue;
		if (now - t->progress_sent_mono < 250000) {
			int64_t left = 250000 - (now - t->progress_sent_mono);

			if (!again || left < again)
				again = left;
			continue;
		}
		memcpy(out[n].id, t->job.id, UUID_STR_LEN);
		out[n].token = t->job.token;
		out[n].qi = t->qi;
		out[n].pct = t->progress;
		memcpy(out[n].stage, t->stage, sizeof(out[n].stage));
		/* Postgres gets milestones only: a new stage or 10 points more. */
		if (strcmp(t->stage, t->rec_stage) || t->progress >= t->rec_progress + 10) {
			records_add(w->rec, RECORDS_PROGRESS, t->job.id, 0, t->progress, t->stage,
				    NULL, NULL, JOB_ACTIVE);
			t->rec_progress = t->progress;
			memcpy(t->rec_stage, t->stage, sizeof(t->rec_stage));
		}
		t->progress_dirty = 0;
		t->progress_sent_mono = now;
		n++;
	}
	pthread_mutex_unlock(&w->mu);
	for (i = 0; i < n && d->q; i++)
		if (queue_progress(d->q, w->queue_names[out[i].qi], out[i].id, out[i].token,
				   out[i].pct, out[i].stage, &e) < 0 && e.code != ERR_STALE)
			log_debug("progress not recorded", "job_id", out[i].id, "error", e.msg);
	return again;
}

/* ---- the loop, in steps ------------------------------------------------ */

static void drain_init(struct drain *d, struct worker *w)
{
	const struct worker_config *c = w->cfg;
	size_t i;

	memset(d, 0, sizeof(*d));
	d->w = w;
	d->c = c;
	d->jobs = xcalloc((size_t)c->batch, sizeof(*d->jobs));
	d->settle = xcalloc((size_t)c->batch, sizeof(*d->settle));
	d->settled = xcalloc((size_t)c->batch, sizeof(*d->settled));
	for (i = 0; i < w->nqueues; i++)
		d->qnames[i] = w->queue_names[i];
	d->t0 = clock_mono_us();
	d->idle_since = d->t0;
	d->wake_max_at = d->t0 + (int64_t)(c->wake_max * 1e6);
	d->idle_us = (int64_t)(c->idle_timeout * 1e6);
	d->look = 1;
	/* the last drain's connection, unless the server closed it since or
	 * it idled past REDIS_IDLE_MAX: a NAT or VPC connector may have
	 * dropped its flow without a word while the instance slept, and a
	 * take on it would wait out the command timeout. Reconnecting costs
	 * one TIME, within an idle tick's 3 commands (docs/CLOUDRUN.md). */
	pthread_mutex_lock(&w->mu);
	d->q = w->dq;
	w->dq = NULL;
	pthread_mutex_unlock(&w->mu);
	if (d->q)
		queue_check(d->q, (int64_t)(c->redis_idle_max * 1000));
	{
		static _Thread_local char trace[160];
		static _Thread_local const char *fields[3];

		pthread_mutex_lock(&w->mu);
		fields[0] = LOG_TRACE_FIELD;
		fields[1] = log_trace_resource(w->drain_trace, trace, sizeof(trace));
		fields[2] = NULL;
		pthread_mutex_unlock(&w->mu);
		log_thread_fields(fields);
	}
	log_info("drain started", "queues", c->queues, "worker", w->id);
	pthread_mutex_lock(&w->mu);
	d->seen_seq = w->wake_seq;
	pthread_mutex_unlock(&w->mu);
}

/* Under mu: takes the finished tasks, re-queues unstarted ones at
 * shutdown, notices a /wake, and snapshots the flags and the room for
 * more jobs. */
static void drain_collect(struct drain *d)
{
	struct worker *w = d->w;
	size_t busy;
	int64_t now;

	pthread_mutex_lock(&w->mu);
	/* Appended to any kept from a failed try. */
	if (w->done) {
		task_list_append(&d->done, tasks_take_done(w));
		d->look = 1;
	}
	d->stopping = w->stopping;
	d->abandon = w->abandon;
	/* At shutdown, jobs not started yet go back at once (the ones still
	 * running past the grace are re-queued by worker_shutdown). */
	if (d->stopping)
		tasks_requeue_ready(w, &d->done);
	if (w->wake_retried) {
		d->after_cut = 1;
		w->wake_retried = 0;
	}
	if (w->wake_seq != d->seen_seq) {
		/* A /wake came: its caller saw no live worker here, so our
		 * registration may have lapsed; and there may be work. */
		d->seen_seq = w->wake_seq;
		d->registered = 0;
		d->look = 1;
	}
	now = clock_mono_us();
	busy = w->nready + w->nrunning;
	d->cap = (size_t)d->c->concurrency + (size_t)w->prefetch;
	d->past_max = now >= d->wake_max_at;
	d->want = d->stopping || d->past_max || busy >= d->cap ? 0 : d->cap - busy;
	pthread_mutex_unlock(&w->mu);
	if (d->done)
		d->idle_since = now;
}

/* One round with Redis: (re)connect and register, settle what finished
 * and take what fits, publish progress. Returns the jobs taken. */
static int drain_step(struct drain *d)
{
	int64_t now = clock_mono_us();
	int took = 0;

	if (now >= d->backoff_until && ensure_conn(d) == 0) {
		if (!d->registered && !d->stopping && !d->past_max) {
			/* on the next take of each queue (send_due: the rest) */
			memset(d->reg_due, 1, sizeof(d->reg_due));
			d->registered = 1;
		}
		collect_wakes(d);
		if (d->done || (d->want && d->look)) {
			size_t asked = d->look ? d->want : 0;

			int settling = d->done != NULL;

			took = cycle(d, asked);
			if (took < 0) {
				d->backoff_until = clock_mono_us() + 100000;
				took = 0;
				d->empty = 0; /* Redis failing: no short cut */
			} else if (asked) {
				/* A short take means nothing else is due: wait for
				 * a marker, a due time or a completion. */
				d->look = (size_t)took == asked;
				if (!d->first_taken)
					d->empty = took == 0 && !settling;
				d->first_taken = 1;
			}
			if (took > 0)
				d->empty = 0;
		}
		send_due(d);
	} else if (!d->q && now >= d->backoff_until) {
		d->backoff_until = clock_mono_us() + 200000;
	}
	d->progress_due = d->q ? flush_progress(d) : 0;
	return took;
}

/* What drain_decide needs. Anything held restarts the idle clock.
 *
 * The counts are read in one critical section, shared done list
 * included: a slot moves a task from running to w->done under mu, so a
 * task finished since drain_collect is seen either as busy or as
 * unsettled, never as neither (which ended drains with jobs left active
 * in Redis). */
static void drain_facts(struct drain *d, struct drain_facts *f)
{
	struct worker *w = d->w;
	size_t i;

	memset(f, 0, sizeof(*f));
	f->now_us = clock_mono_us();
	pthread_mutex_lock(&w->mu);
	f->stopping = d->stopping;
	f->abandon = d->abandon;
	f->busy = w->nready + w->nrunning;
	f->nearly = w->nearly;
	f->unsettled = w->ndone + task_list_len(d->done);
	pthread_mutex_unlock(&w->mu);
	if (f->busy > 0)
		d->idle_since = f->now_us;
	f->wake_max_at = d->wake_max_at;
	f->idle_since = d->idle_since;
	f->idle_us = d->idle_us;
	f->empty = d->empty;
	f->empty_linger_us = (int64_t)(d->c->empty_wake_linger * 1e6);
	f->due_in_us = INT64_MAX;
	f->paused = 1;
	for (i = 0; i < w->nqueues; i++)
		f->paused &= d->paused[i];
	if (d->next_due_ms)
		f->due_in_us = (d->next_due_ms - d->server_skew_ms) * 1000 - clock_now_us();
}

enum drain_verdict drain_decide(const struct drain_facts *f)
{
	int past_max = f->now_us >= f->wake_max_at;
	/* A wake that found nothing due (every cron tick on an idle queue,
	 * a wake whose job another worker took) answers at once: lingering
	 * would hold the request, and on Cloud Run bill it, for nothing.
	 * After real work the drain waits IDLE_TIMEOUT for more. */
	int64_t window = f->empty ? f->empty_linger_us : f->idle_us;

	if (f->abandon)
		return DRAIN_END_SHUTDOWN;
	if (f->stopping || past_max) {
		/* Every job held is settled, or re-queued early by the
		 * shutdown (its slot drops whatever it returns later). */
		if (f->busy <= f->nearly && f->unsettled == 0)
			return f->stopping ? DRAIN_END_SHUTDOWN : DRAIN_END_WAKE_MAX;
		/* Redis has been gone for a minute past the deadline: give
		 * up; the leases expire and the jobs run again. */
		if (!f->stopping && f->now_us - f->wake_max_at > DRAIN_WAKE_MAX_OVERRUN_US)
			return DRAIN_END_WAKE_MAX;
		return DRAIN_CONTINUE;
	}
	/* Every queue paused: nothing can come due until a resume, which
	 * wakes a worker when it must. */
	if (f->paused && f->busy == 0 && f->unsettled == 0)
		return DRAIN_END_IDLE;
	if (f->busy > 0 || f->unsettled > 0 || f->now_us - f->idle_since < window)
		return DRAIN_CONTINUE;
	/* Something due within the idle window: wait for it here rather
	 * than leave it to the next wake or cron tick. */
	if (f->due_in_us < f->idle_us)
		return DRAIN_HOLD;
	return DRAIN_END_IDLE;
}

const char *drain_verdict_name(enum drain_verdict v)
{
	switch (v) {
	case DRAIN_END_IDLE:
		return "idle";
	case DRAIN_END_WAKE_MAX:
		return "wake_max";
	case DRAIN_END_SHUTDOWN:
		return "shutdown";
	case DRAIN_CONTINUE:
	case DRAIN_HOLD:
		break;
	}
	return "running";
}

/* Idle: retires, unless a /wake arrived meanwhile (its job was enqueued
 * after the retire, and the caller counts on this drain, or a new one, to
 * run it). Returns 1 when the drain is to end. */
static int drain_retire(struct drain *d, int64_t now)
{
	struct worker *w = d->w;
	uint64_t seq0;
	int end = 0;

	pthread_mutex_lock(&w->mu);
	seq0 = w->wake_seq;
	pthread_mutex_unlock(&w->mu);
	if (do_retire(d, 0)) {
		pthread_mutex_lock(&w->mu);
		if (w->wake_seq == seq0)
			end = w->ending = 1;
		pthread_mutex_unlock(&w->mu);
		if (end) {
			d->retired = 1;
			return 1;
		}
		do_register(d);
	}
	/* Refused (due work, or Redis failing): linger as after work, so
	 * that a queue the take and the retire disagree on is never a hot
	 * loop of round trips. */
	d->empty = 0;
	d->idle_since = now;
	d->look = 1;
	return 0;
}

/* Blocks until something may have changed: wake-ups normally come from
 * the eventfd (completions, /wake, shutdown) or the marker wait; the
 * timeout only covers due times, the idle deadline, held-back progress
 * and retries after errors. */
static void drain_sleep(struct drain *d, const struct drain_facts *f)
{
	struct worker *w = d->w;
	int64_t now = f->now_us, timeout_us = 1000000;
	struct pollfd pfd[2];
	int nfd, want;

	if (!d->stopping && !d->past_max) {
		if (d->wake_max_at - now < timeout_us)
			timeout_us = d->wake_max_at - now;
		if (f->busy == 0 && d->idle_since + d->idle_us - now < timeout_us)
			timeout_us = d->idle_since + d->idle_us - now;
		if (f->busy < d->cap && f->due_in_us < timeout_us)
			timeout_us = f->due_in_us;
	}
	if (d->progress_due && d->progress_due < timeout_us)
		timeout_us = d->progress_due;
	if (d->backoff_until > now && d->backoff_until - now < timeout_us)
		timeout_us = d->backoff_until - now;
	if (d->stopping && timeout_us > 20000)
		timeout_us = 20000;
	if (timeout_us < 0)
		timeout_us = 0;

	/* Block on the markers only while there is room for work. */
	want = !d->stopping && !d->past_max && f->busy < d->cap;
	if (want && !d->waiting && d->q && now >= d->backoff_until && now >= d->bq_retry_at) {
		struct err e;

		if (!d->bq)
			d->bq = connect_q(w, &e);
		if (d->bq && queue_wait_begin(d->bq, d->qnames, w->nqueues,
					      d->idle_us / 1000 + 1, &e) == 0)
			d->waiting = 1;
	} else if (!want && d->bq) {
		/* also a cluster's BLPOPs left over from a wait that ended:
		 * without a wait this is no I/O at all */
		queue_wait_cancel(d->bq);
		d->waiting = 0;
	}
	pfd[0].fd = w->wake_fd;
	pfd[0].events = POLLIN;
	nfd = 1;
	if (d->waiting) {
		pfd[1].fd = queue_fd(d->bq);
		pfd[1].events = POLLIN;
		nfd = 2;
	}
	if (poll(pfd, (nfds_t)nfd, (int)((timeout_us + 999) / 1000)) > 0) {
		if (pfd[0].revents) {
			uint64_t v;

			if (read(w->wake_fd, &v, sizeof(v)) < 0) {
				/* nothing pending: fine */
			}
			pthread_mutex_lock(&w->mu);
			w->notified = 0;
			pthread_mutex_unlock(&w->mu);
		}
		if (nfd == 2 && pfd[1].revents) {
			struct err e;
			int r = queue_wait_poll(d->bq, &e);

			if (r != 2) {
				d->waiting = 0;
				d->look = 1; /* a marker, or the wait ran out */
			}
			if (r < 0) {
				/* An error reply (ACL, say) must not become a
				 * hot loop. */
				log_warn("waiting for work failed", "error", e.msg);
				queue_free(d->bq);
				d->bq = NULL;
				d->bq_backoff = d->bq_backoff ? d->bq_backoff * 2 : 500000;
				if (d->bq_backoff > 5000000)
					d->bq_backoff = 5000000;
				d->bq_retry_at = clock_mono_us() + d->bq_backoff;
			} else if (r != 2) {
				d->bq_backoff = 0;
			}
		}
	}
	if (d->next_due_ms && (d->next_due_ms - d->server_skew_ms) * 1000 <= clock_now_us())
		d->look = 1; /* a delayed job or a lease came due */
}

/* With Cloud Tasks: after the drain has left the registry and before it
 * answers, arranges the next wake when no other worker is live and work
 * is left (WAKE_MAX, SIGTERM: at once) or comes due later (a retry, a
 * scheduled job: at that time). An enqueue after the retire sees no live
 * worker and arranges its own wake; one before it is counted here.
 *
 * Jobs leased by a worker that died (SIGKILL, out of memory, its
 * instance shut down mid-drain) come due when their leases run out,
 * which no enqueue announces. With no live worker, nobody renews them:
 * the wake is arranged for the first to expire. After a retried dispatch
 * (the drain it started was cut), that worker may still look live: its
 * registration lapses with its leases. Then the wake is arranged for the
 * first lease to expire whoever looks live; a live holder will have
 * renewed it, and that wake finds nothing and arranges nothing more. */
static void drain_arrange(struct drain *d, const char *reason)
{
	struct worker *w = d->w;
	int64_t pending = 0, workers = 0, next_ms = 0, lease_ms = 0, at;
	char url[512], n1[24];
	struct err e;
	size_t i;
	int rc;

	if (!w->tasks || d->abandon)
		return;
	/* A wake that found nothing and settled nothing, whose take saw
	 * nothing coming due (no delayed job, lease, limit or schedule),
	 * leaves nothing to arrange: an enqueue since then saw this worker
	 * live and the retire refused, or saw none and woke its own. So an
	 * idle cron tick stays one take and one retire. */
	if (!strcmp(reason, "idle") && d->empty && d->next_due_ms == 0)
		return;
	if (ensure_conn(d) < 0)
		return;
	for (i = 0; i < w->nqueues; i++) {
		struct queue_counts c;

		if (queue_counts(d->q, w->queue_names[i], &c, &e) < 0) {
			log_warn("cannot count what is left; the cron's tick will serve it",
				 "error", e.msg);
			return;
		}
		if (c.workers > workers)
			workers = c.workers;
		if (c.paused)
			continue; /* its resume wakes a worker when it must */
		/* c.due: what a worker could lease now (not what a rate limit
		 * or a concurrency cap holds back); c.wake_at_ms: when held
		 * work (a rate limit's token, a cron fire time) may go */
		pending += c.due;
		if (c.next_due_ms && (!next_ms || c.next_due_ms < next_ms))
			next_ms = c.next_due_ms;
		if (c.wake_at_ms && (!next_ms || c.wake_at_ms < next_ms))
			next_ms = c.wake_at_ms;
		if (c.lease_ms && (!lease_ms || c.lease_ms < lease_ms))
			lease_ms = c.lease_ms;
	}
	if (workers > 0 && !(d->after_cut && lease_ms))
		return; /* a live worker serves it */
	if (workers > 0)
		pending = next_ms = 0; /* the rest is a live worker's, if any */
	if (lease_ms && (!next_ms || lease_ms < next_ms))
		next_ms = lease_ms;
	else
		lease_ms = 0;
	if (!pending && !next_ms)
		return; /* nothing to serve */
	at = pending ? 0 : (next_ms - d->server_skew_ms) * 1000;
	pthread_mutex_lock(&w->mu);
	snprintf(url, sizeof(url), "%s", w->wake_url_seen);
	pthread_mutex_unlock(&w->mu);
	rc = wake_tasks_arrange(w->tasks, url[0] ? url : NULL, at, 0, &e);
	snprintf(n1, sizeof(n1), "%lld", (long long)pending);
	if (rc < 0)
		log_warn("cannot arrange the next wake; the cron's tick will serve it",
			 "reason", reason, "pending", n1, "error", e.msg);
	else
		log_info(pending ? "next wake arranged: work is left" :
			 lease_ms ? "next wake arranged: leases of a lost worker run out" :
			 "next wake arranged: work comes due later", "reason", reason,
			 "pending", n1, "task", rc ? "created" : "pending already");
}

/* Frees what drain_init allocated and what the loop leaves: the marker
 * connection and the finished tasks not settled. */
static void drain_release(struct drain *d)
{
	queue_free(d->bq);
	free(d->jobs);
	free(d->settle);
	free(d->settled);
	task_list_free(d->done);
}

/* Leaves the registry (unless retired already), arranges the next wake
 * (Cloud Tasks), frees the drain's state and publishes the summary; HTTP
 * waiters are woken. */
static void drain_finish(struct drain *d, const char *reason)
{
	struct worker *w = d->w;

	/* From here a new /wake waits for this drain to end and starts its
	 * own, rather than joining one that is over (the wake arranged below
	 * may reach this very process before the answer). */
	pthread_mutex_lock(&w->mu);
	w->ending = 1;
	/* a retried /wake that joined this drain after its last look */
	if (w->wake_retried) {
		d->after_cut = 1;
		w->wake_retried = 0;
	}
	pthread_mutex_unlock(&w->mu);
	if (d->waiting)
		queue_wait_cancel(d->bq);
	if (!d->retired)
		do_retire(d, 1);
	drain_arrange(d, reason);
	/* wakes no take counted: now, or never (metrics only); never a
	 * registration, which would undo the retire */
	memset(d->reg_due, 0, sizeof(d->reg_due));
	if (d->q)
		send_due(d);
	drain_release(d);

	pthread_mutex_lock(&w->mu);
	w->cur.seconds = (double)(clock_mono_us() - d->t0) / 1e6;
	w->cur.reason = reason;
	w->summary = w->cur;
	metrics_hist_observe(&w->m_drain_seconds, w->cur.seconds);
	atomic_fetch_add(&w->m_drains, 1);
	{
		char jobs[24], secs[24];

		snprintf(jobs, sizeof(jobs), "%lld", (long long)w->cur.jobs);
		snprintf(secs, sizeof(secs), "%.3f", w->cur.seconds);
		log_info("drain ended", "reason", reason, "jobs", jobs, "seconds", secs);
	}
	/* kept for the next drain: no connect, no TIME on its first take */
	w->dq = d->q;
	w->draining = 0;
	w->ending = 0;
	w->drains_done = w->drain_gen;
	w->last_activity_mono = clock_mono_us();
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void *drain_main(void *arg)
{
	struct drain d;
	struct drain_facts f;
	enum drain_verdict v;

	drain_init(&d, arg);
	for (;;) {
		drain_collect(&d);
		if (d.abandon) {
			/* Past the grace: not one more round trip. */
			v = DRAIN_END_SHUTDOWN;
			break;
		}
		if (drain_step(&d) > 0)
			continue; /* more may be due right now */
		drain_facts(&d, &f);
		v = drain_decide(&f);
		if (v == DRAIN_END_IDLE) {
			if (drain_retire(&d, f.now_us))
				break;
			continue;
		}
		if (v != DRAIN_CONTINUE && v != DRAIN_HOLD)
			break;
		if (v == DRAIN_HOLD)
			d.idle_since = f.now_us;
		drain_sleep(&d, &f);
	}
	drain_finish(&d, drain_verdict_name(v));
	return NULL;
}
