/* slots.c - CONCURRENCY threads that run handlers, one job at a time each.
 *
 * A slot pops a task from the ready list, runs it without the lock, and
 * pushes it to the done list for the drain thread to settle. The drain
 * thread is woken only when the ready list runs low or the done list
 * fills a batch, so short jobs flow without a wake-up per job.
 */
#include "worker/worker_int.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/thread.h"
#include "job/job.h"
#include "log/log.h"
#include "log/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slot_arg {
	struct worker *w;
	size_t index;
};

/* Progress from a handler: coalesced on the task, published by the drain
 * thread at most every PROGRESS_EVERY_US per job. */
#define PROGRESS_EVERY_US 250000

struct progress_ctx {
	struct worker *w;
	struct task *t;
};

static void on_progress(void *opaque, double percent, const char *stage)
{
	struct progress_ctx *pc = opaque;
	struct worker *w = pc->w;
	struct task *t = pc->t;
	int64_t now = clock_mono_us();

	pthread_mutex_lock(&w->mu);
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	t->progress = percent;
	if (stage && strcmp(stage, t->stage)) {
		snprintf(t->stage, sizeof(t->stage), "%s", stage);
		t->progress_sent_mono = 0; /* a new stage goes out at once */
	}
	t->progress_dirty = 1;
	if (now - t->progress_sent_mono >= PROGRESS_EVERY_US)
		worker_notify(w);
	pthread_mutex_unlock(&w->mu);
}

/* One line per run that ended (the thread's fields name the job, queue,
 * type and trace): INFO when done or cancelled, WARNING for a failure
 * that will be retried, ERROR for one that goes to the dead letters. The
 * settle may still be refused (a lost lease): "lease lost" says so. */
static void log_finished(const struct task *t)
{
	char att[16], dur[32], delay[32];

	snprintf(att, sizeof(att), "%d", t->job.attempts);
	snprintf(dur, sizeof(dur), "%.6f", (double)t->run_us / 1e6);
	switch (t->outcome) {
	case QUEUE_DONE:
		log_info("job done", "attempt", att, "duration_s", dur);
		break;
	case QUEUE_RETRY:
	case QUEUE_FAIL:
		if (t->outcome == QUEUE_RETRY && t->job.attempts < t->job.max_attempts) {
			snprintf(delay, sizeof(delay), "%.3f", (double)t->delay_ms / 1000);
			log_warn("job failed", "attempt", att, "duration_s", dur, "error", t->error,
				 "retry", "yes", "retry_in_s", delay);
		} else {
			log_error("job dead-lettered", "attempt", att, "duration_s", dur,
				  "error", t->error, "retry", "no");
		}
		break;
	case QUEUE_CANCELLED:
		log_info("job cancelled", "attempt", att, "duration_s", dur);
		break;
	case QUEUE_REQUEUE:
		log_info("job requeued at shutdown", "attempt", att, "duration_s", dur);
		break;
	case QUEUE_PUSHBACK:
		snprintf(delay, sizeof(delay), "%.3f", (double)t->delay_ms / 1000);
		log_warn("job pushed back: its group waits", "attempt", att, "duration_s", dur,
			 "error", t->error, "retry_in_s", delay);
		break;
	}
}

static void run_task(struct worker *w, struct task *t)
{
	const struct worker_config *c = w->cfg;
	struct job_outcome out;
	struct progress_ctx pc = { w, t };
	struct job_run run;
	json_error_t jerr;
	json_t *payload;
	int rc, reason;
	char trace[160];
	const char *fields[] = { "job_id", t->job.id, "queue", w->queue_names[t->qi],
				 "type", t->job.type,
				 LOG_TRACE_FIELD, log_trace_resource(t->job.trace, trace, sizeof(trace)),
				 NULL };

	memset(&out, 0, sizeof(out));
	log_thread_fields(fields);
	payload = json_loads(t->job.payload, JSON_DECODE_ANY, &jerr);
	if (!payload) {
		rc = job_fail(&out, 0, "payload is not JSON: %s", jerr.text);
	} else {
		memset(&run, 0, sizeof(run));
		run.id = t->job.id;
		run.queue = w->queue_names[t->qi];
		run.type = t->job.type;
		run.trace = t->job.trace;
		run.payload = payload;
		run.dependencies = t->job.dependencies ?
				   json_loads(t->job.dependencies, 0, NULL) : NULL;
		run.dependencies_cut = t->job.dependencies_cut;
		run.attempt = t->job.attempts;
		run.max_attempts = t->job.max_attempts;
		run.timeout_s = t->job.timeout_s > 0 ? t->job.timeout_s : c->job_timeout;
		run.cancel = &t->cancel;
		run.progress = on_progress;
		run.opaque = &pc;
		if (log_min_level <= LOG_DEBUG) {
			char att[16];

			snprintf(att, sizeof(att), "%d", t->job.attempts);
			log_debug("job started", "attempt", att);
		}
		rc = job_execute(&run, &out);
		json_decref(payload);
		json_decref(run.dependencies);
	}

	pthread_mutex_lock(&w->mu);
	reason = t->reason;
	pthread_mutex_unlock(&w->mu);
	if (rc == 0) {
		t->outcome = QUEUE_DONE;
		t->result = out.result ? json_dumps(out.result, JSON_COMPACT | JSON_ENCODE_ANY)
				       : xstrdup("null");
	} else if (reason == STOP_CANCEL) {
		t->outcome = QUEUE_CANCELLED;
		t->error = xstrdup("cancelled");
	} else if (reason == STOP_TIMEOUT) {
		t->outcome = QUEUE_RETRY;
		t->error = xasprintf("timed out after %gs", run.timeout_s);
	} else if (reason == STOP_SHUTDOWN) {
		t->outcome = QUEUE_REQUEUE;
	} else if (out.retryable && out.rate_limit_group && out.retry_after_s > 0) {
		/* the service is rate limited: the group waits, no attempt lost */
		t->outcome = QUEUE_PUSHBACK;
		t->error = xstrdup(out.error[0] ? out.error : "rate limited");
		t->delay_ms = (int64_t)(out.retry_after_s * 1000);
	} else {
		t->outcome = out.retryable ? QUEUE_RETRY : QUEUE_FAIL;
		t->error = xstrdup(out.error[0] ? out.error : "failed");
	}
	if (t->outcome == QUEUE_RETRY) {
		int64_t d = queue_backoff_ms(t->job.attempts, (int64_t)(c->backoff_base * 1000),
					     (int64_t)(c->backoff_cap * 1000));

		if (out.retry_after_s * 1000 > (double)d)
			d = (int64_t)(out.retry_after_s * 1000);
		t->delay_ms = d;
	}
	t->run_us = clock_mono_us() - t->started_mono;
	log_finished(t);
	log_thread_fields(NULL);
	job_outcome_release(&out);
}

static void *slot_main(void *arg)
{
	struct slot_arg *sa = arg;
	struct worker *w = sa->w;
	size_t i = sa->index;
	struct task *t;

	free(sa);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->ready && !w->quit_slots)
			pthread_cond_wait(&w->slot_cv, &w->mu);
		if (w->quit_slots)
			break;
		t = tasks_pop_ready(w);
		if (t->reason == STOP_LOST) {
			task_free(t);
			continue;
		}
		w->running[i] = t;
		w->nrunning++;
		t->started_mono = clock_mono_us();
		{
			double to = t->job.timeout_s > 0 ? t->job.timeout_s : w->cfg->job_timeout;

			t->deadline_mono = to > 0 ? t->started_mono + (int64_t)(to * 1e6) : 0;
		}
		pthread_mutex_unlock(&w->mu);

		run_task(w, t);

		pthread_mutex_lock(&w->mu);
		{
			double secs = (double)t->run_us / 1e6;

			metrics_hist_observe(&w->m_job_seconds, secs);
			w->ewma_job_s = w->ewma_job_s < 0 ? secs : w->ewma_job_s * 0.8 + secs * 0.2;
			/* Hold a batch ahead only while jobs are short: long jobs
			 * would sit leased here while other workers idle. */
			w->prefetch = w->ewma_job_s < 0.005 ? (int)w->cfg->batch : 0;
		}
		w->running[i] = NULL;
		w->nrunning--;
		if (t->settled_early) {
			w->nearly--;
			task_free(t);
		} else if (t->reason == STOP_LOST) {
			atomic_fetch_add(&w->m_lost, 1);
			task_free(t);
		} else {
			tasks_push_done(w, t);
		}
		if (w->nready <= (size_t)w->prefetch / 2 || w->ndone >= (size_t)w->cfg->batch ||
		    w->stopping)
			worker_notify(w);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int slots_start(struct worker *w)
{
	size_t i, n = (size_t)w->cfg->concurrency;

	w->running = xcalloc(n, sizeof(*w->running));
	w->slot_threads = xcalloc(n, sizeof(*w->slot_threads));
	for (i = 0; i < n; i++) {
		struct slot_arg *sa = xmalloc(sizeof(*sa));

		sa->w = w;
		sa->index = i;
		if (pthread_create(&w->slot_threads[i], NULL, slot_main, sa)) {
			free(sa);
			return -1; /* slots_stop joins the ones started */
		}
		w->nslots++;
	}
	return 0;
}

void slots_stop(struct worker *w)
{
	thread_stop(&w->mu, &w->slot_cv, &w->quit_slots, w->slot_threads,
		    w->nslots);
	free(w->slot_threads);
	free(w->running);
	w->slot_threads = NULL;
	w->running = NULL;
	w->nslots = 0;
}
