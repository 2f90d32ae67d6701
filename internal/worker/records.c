/* records.c - keeps the Postgres job rows in step with what the worker
 * does (started, progress milestones, final state), when DATABASE_URL is
 * set. Writes happen on a thread of their own, so a slow or stopped
 * Postgres never slows or stops the drain.
 *
 * Two sources. Started, progress, retrying and re-queued come from an
 * in-memory queue: they wait and are retried with backoff, and past
 * RECORDS_MAX waiting events the oldest are dropped (they are not final:
 * the next event or reconcile corrects the row). Final states come from
 * each queue's finals log in Redis, written by the same script that ended
 * the job: a FINAL event only says "the log has news"; the thread copies
 * the log into Postgres and deletes what it wrote (reconcile_finals). A
 * SIGKILL or a Postgres outage longer than this process loses no final
 * state: the drain's takes turn each log on before they settle anything
 * (queue_take's record). Until the log is known to be on (queue_finals_enable succeeded),
 * a FINAL event is also written from memory.
 */
#include "worker/records.h"

#include "base/clock.h"
#include "base/mem.h"
#include "log/log.h"
#include "reconcile/reconcile.h"
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORDS_MAX 200000
#define RECORDS_BATCH 500

struct event {
	char id[UUID_STR_LEN];
	enum records_kind kind;
	int attempt;
	int64_t at_us;
	double progress;
	char *stage, *result, *error;
	enum job_status status;
	uint64_t seq;
};

struct records {
	struct store *store;
	const struct queue_opts *qopts;
	char *const *queues;
	size_t nqueues;
	struct queue *q;   /* the writer's own connection (lazy) */
	int log_on;        /* finals logs enabled on every queue */
	int pump;          /* guarded by mu: the finals logs have news */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct event *ev;
	size_t n, cap;
	uint64_t seq;
	int quit;
	int busy;          /* the writer holds a batch */
	uint64_t dropped;
	pthread_t thread;
};

static void event_release(struct event *e)
{
	free(e->stage);
	free(e->result);
	free(e->error);
}

/* Orders by id, then arrival, so the last of each id is its newest. */
static int by_id(const void *a, const void *b)
{
	const struct event *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int write_batch(struct records *r, struct event *ev, size_t n, struct err *err)
{
	/* the strings of finals[] are borrowed from ev[]: never released */
	struct job_info *finals = xcalloc(n, sizeof(*finals));
	size_t i, nf = 0;
	int rc = 0;

	qsort(ev, n, sizeof(*ev), by_id);
	for (i = 0; i < n && rc == 0; i++) {
		struct event *e = &ev[i];
		int64_t started = 0;
		size_t j;

		if (i + 1 < n && !strcmp(ev[i + 1].id, e->id))
			continue; /* a newer event of this job follows */
		for (j = i; j-- > 0 && !strcmp(ev[j].id, e->id);)
			if (ev[j].kind == RECORDS_STARTED)
				started = ev[j].at_us;
		switch (e->kind) {
		case RECORDS_STARTED:
			if (store_mark_started(r->store, e->id, e->attempt, e->at_us, err) < 0)
				rc = -1;
			break;
		case RECORDS_PROGRESS:
			if (store_progress(r->store, e->id, e->progress, e->stage, err) < 0)
				rc = -1;
			break;
		case RECORDS_RETRYING:
			if (store_set_status(r->store, e->id, JOB_RETRYING, e->error, 0, err) < 0 &&
			    err->code != ERR_NOTFOUND)
				rc = -1;
			break;
		case RECORDS_QUEUED:
			if (store_set_status(r->store, e->id, JOB_QUEUED, NULL, 0, err) < 0 &&
			    err->code != ERR_NOTFOUND)
				rc = -1;
			break;
		case RECORDS_FINAL:
			if (r->log_on)
				break; /* from the log, see pump() */
			snprintf(finals[nf].id, sizeof(finals[nf].id), "%s", e->id);
			finals[nf].status = e->status;
			finals[nf].result = (char *)e->result;
			finals[nf].error = (char *)e->error;
			finals[nf].attempts = e->attempt;
			finals[nf].started_at = started;
			finals[nf].finished_at = e->at_us;
			nf++;
			break;
		}
	}
	if (rc == 0 && nf && store_apply_finals(r->store, finals, nf, err) < 0)
		rc = -1;
	free(finals);
	return rc;
}

/* Connects and turns the finals logs on (once). */
static int log_ready(struct records *r, struct err *err)
{
	size_t i;

	if (!r->q && !(r->q = queue_connect(r->qopts, err)))
		return -1;
	for (i = 0; !r->log_on && i < r->nqueues; i++)
		if (queue_finals_enable(r->q, r->queues[i], err) < 0)
			return -1;
	r->log_on = 1;
	return 0;
}

/* Copies every queue's finals log into Postgres. Returns 0 or -1. */
static int pump(struct records *r, struct err *err)
{
	size_t i;

	if (log_ready(r, err) < 0)
		return -1;
	for (i = 0; i < r->nqueues; i++)
		if (reconcile_finals(r->q, r->store, r->queues[i], 0, NULL, err) < 0)
			return -1;
	return 0;
}

/* The writer holds nothing any more: wakes records_flush. mu held. */
static void writer_idle(struct records *r)
{
	r->busy = 0;
	pthread_cond_broadcast(&r->cv);
}

/* After a failed write: waits out *backoff (100 ms doubling to 5 s). */
static void back_off(int64_t *backoff)
{
	clock_sleep_us(*backoff);
	*backoff = *backoff * 2 > 5000000 ? 5000000 : *backoff * 2;
}

static void *writer(void *arg)
{
	struct records *r = arg;
	int64_t backoff = 100000;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct event *batch;
		size_t n;
		struct err e;

		while (!r->n && !r->pump && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->n && r->pump && !r->quit) {
			int ok;

			r->pump = 0;
			r->busy = 1;
			pthread_mutex_unlock(&r->mu);
			ok = pump(r, &e) == 0;
			if (!ok)
				log_warn("final states not copied to postgres yet, will retry",
					 "error", e.msg);
			pthread_mutex_lock(&r->mu);
			if (!ok)
				r->pump = !r->quit;
			writer_idle(r);
			pthread_mutex_unlock(&r->mu);
			if (ok)
				backoff = 100000;
			else
				back_off(&backoff);
			pthread_mutex_lock(&r->mu);
			continue;
		}
		if (!r->n)
			break;
		n = r->n < RECORDS_BATCH ? r->n : RECORDS_BATCH;
		batch = xmalloc(n * sizeof(*batch));
		memcpy(batch, r->ev, n * sizeof(*batch));
		memmove(r->ev, r->ev + n, (r->n - n) * sizeof(*r->ev));
		r->n -= n;
		r->busy = 1;
		pthread_mutex_unlock(&r->mu);

		if (write_batch(r, batch, n, &e) < 0) {
			size_t i;

			log_warn("job records not written, will retry", "error", e.msg);
			pthread_mutex_lock(&r->mu);
			/* Put the batch back in front, if there is room. */
			if (r->n + n <= RECORDS_MAX && !r->quit) {
				if (r->n + n > r->cap) {
					r->cap = r->n + n;
					r->ev = xrealloc(r->ev, r->cap * sizeof(*r->ev));
				}
				memmove(r->ev + n, r->ev, r->n * sizeof(*r->ev));
				memcpy(r->ev, batch, n * sizeof(*batch));
				r->n += n;
			} else {
				for (i = 0; i < n; i++)
					event_release(&batch[i]);
				r->dropped += n;
			}
			writer_idle(r);
			pthread_mutex_unlock(&r->mu);
			back_off(&backoff);
		} else {
			size_t i;

			for (i = 0; i < n; i++)
				event_release(&batch[i]);
			backoff = 100000;
			pthread_mutex_lock(&r->mu);
			writer_idle(r);
			pthread_mutex_unlock(&r->mu);
		}
		free(batch);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct records *records_new(const char *url, const struct queue_opts *qopts,
			    char *const *queues, size_t n, struct err *err)
{
	struct records *r;

	if (!url || !*url)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->qopts = qopts;
	r->queues = queues;
	r->nqueues = n;
	/* a log written while this process was away is copied when the
	 * first take reports it (records_pump), not at start: an idle
	 * wake's process never connects here */
	r->store = store_open(url, 2, err);
	if (!r->store) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	clock_cond_init(&r->cv);
	if (pthread_create(&r->thread, NULL, writer, r)) {
		store_free(r->store);
		free(r);
		err_set(err, ERR_INTERNAL, "cannot start the records thread");
		return NULL;
	}
	return r;
}

void records_add(struct records *r, enum records_kind kind, const char *id,
		 int attempt, double progress, const char *stage,
		 const char *result, const char *error, enum job_status status)
{
	struct event *e;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	if (kind == RECORDS_FINAL)
		r->pump = 1;
	if (r->n == RECORDS_MAX) {
		/* Postgres has been away long: drop (reconcile copies final
		 * states from Redis later), at O(1) under the caller's locks. */
		r->dropped++;
		pthread_mutex_unlock(&r->mu);
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->ev = xrealloc(r->ev, r->cap * sizeof(*r->ev));
	}
	e = &r->ev[r->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->kind = kind;
	e->attempt = attempt;
	e->at_us = clock_now_us();
	e->progress = progress;
	e->stage = stage && *stage ? xstrdup(stage) : NULL;
	e->result = result ? xstrdup(result) : NULL;
	e->error = error ? xstrdup(error) : NULL;
	e->status = status;
	e->seq = ++r->seq;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void records_pump(struct records *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	if (!r->pump) {
		r->pump = 1;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

void records_flush(struct records *r, double max_s)
{
	int64_t until = clock_mono_us() + (int64_t)(max_s * 1e6);

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	while ((r->n || r->busy) && clock_mono_us() < until)
		clock_cond_wait_us(&r->cv, &r->mu, 20000);
	pthread_mutex_unlock(&r->mu);
}

void records_free(struct records *r)
{
	size_t i;

	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->quit = 1;
	for (i = 0; i < r->n; i++)
		event_release(&r->ev[i]);
	r->n = 0;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	queue_free(r->q);
	store_free(r->store);
	free(r->ev);
	free(r);
}
