/* worker.c - start, idle exit and shutdown of the worker process. */
#include "worker/worker_int.h"

#include "base/clock.h"
#include "base/fd.h"
#include "base/mem.h"
#include "base/thread.h"
#include "fetch/fetch.h"
#include "httpd/httpd.h"
#include "job/job.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

static int split_queues(struct worker *w, const char *list, struct err *err)
{
	char *copy = xstrdup(list), *save = NULL, *tok;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char name[QUEUE_NAME_MAX + 1];
		int n, k;

		while (*tok == ' ')
			tok++;
		if (!*tok)
			continue;
		/* NAME*N: the N shards NAME#0 … NAME#(N-1), each a queue */
		if (queue_shard_spec(tok, name, &n, err) < 0) {
			free(copy);
			return err_wrap(err, "bad QUEUES");
		}
		for (k = 0; k < n; k++) {
			if (w->nqueues == WORKER_MAX_QUEUES) {
				free(copy);
				return err_set(err, ERR_INVALID, "bad QUEUES: at most %d queues (shards count)",
					       WORKER_MAX_QUEUES);
			}
			w->queue_names[w->nqueues++] = queue_shard_name(name, k, n);
		}
	}
	free(copy);
	if (!w->nqueues)
		return err_set(err, ERR_INVALID, "bad QUEUES '%s': no queue named", list);
	return 0;
}

static void make_id(struct worker *w)
{
	char host[64] = "worker";
	unsigned short rnd = 0;

	if (w->cfg->worker_id && *w->cfg->worker_id) {
		snprintf(w->id, sizeof(w->id), "%s", w->cfg->worker_id);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned short)getpid();
	snprintf(w->id, sizeof(w->id), "%s-%d-%04x", host, (int)getpid(), rnd);
}

/* Removes the partial outputs a killed worker left in DATA_DIR (fetch.h),
 * on a thread of its own: walking a large DATA_DIR must not delay /wake. */
static void *sweep_parts_main(void *arg)
{
	struct worker *w = arg;
	char count[24], age[24];
	struct err e;
	long n = fetch_sweep_parts(FETCH_PART_STALE_S, &w->parts_stop, &e);

	snprintf(count, sizeof(count), "%ld", n);
	snprintf(age, sizeof(age), "%d", FETCH_PART_STALE_S);
	if (n > 0)
		log_info("removed stale partial outputs", "count", count,
			 "untouched_s", age, "data_dir", job_settings.data_dir);
	else if (n < 0)
		log_debug("no sweep of partial outputs", "error", e.msg);
	return NULL;
}

/* Joins every thread started and frees everything: on a worker that
 * failed half-way through worker_start, or that worker_free found idle
 * (no drain running, no job held, HTTP stopped). */
static void destroy(struct worker *w)
{
	size_t i;

	if (w->parts_started) {
		atomic_store(&w->parts_stop, 1);
		pthread_join(w->parts_thread, NULL);
	}
	if (w->hb_started)
		thread_stop(&w->mu, &w->hb_cv, &w->hb_quit, &w->hb_thread, 1);
	if (w->drain_joinable)
		pthread_join(w->drain_thread, NULL);
	slots_stop(w);
	records_free(w->rec);
	wake_tasks_free(w->tasks);
	task_list_free(w->ready);
	task_list_free(w->done); /* left past the grace: their leases expire */
	queue_free(w->sq);
	queue_free(w->dq);
	for (i = 0; i < w->nqueues; i++)
		free(w->queue_names[i]);
	fd_close(&w->wake_fd);
	pthread_cond_destroy(&w->hb_cv);
	pthread_cond_destroy(&w->slot_cv);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->sq_mu);
	pthread_mutex_destroy(&w->mu);
	queue_opts_release(&w->qopts);
	free(w);
}

struct worker *worker_start(const struct worker_config *cfg, struct err *err)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	struct httpd_opts ho;

	w->cfg = cfg;
	w->wake_fd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->sq_mu, NULL);
	clock_cond_init(&w->cv);
	pthread_cond_init(&w->slot_cv, NULL); /* waited without a timeout */
	clock_cond_init(&w->hb_cv);
	if (split_queues(w, cfg->queues, err) < 0)
		goto fail;
	if (queue_opts_init(&w->qopts, cfg->redis_url, err) < 0) {
		err_wrap(err, "bad REDIS_URL");
		goto fail;
	}
	make_id(w);
	err_clear(err);
	w->rec = records_new(cfg->database_url, &w->qopts, w->queue_names, w->nqueues, err);
	if (!w->rec && err && err->code != ERR_OK) {
		err_wrap(err, "bad DATABASE_URL");
		goto fail;
	}
	if (cfg->wake_via == WAKE_VIA_CLOUDTASKS) {
		const struct wake_tasks_opts to = {
			.endpoint = cfg->tasks_endpoint, .project = cfg->tasks_project,
			.location = cfg->tasks_location, .queue = cfg->tasks_queue,
			.url = cfg->wake_url, .audience = cfg->wake_audience,
			.service_account = cfg->tasks_service_account,
			.bucket_s = cfg->tasks_bucket,
			.dispatch_deadline_s = cfg->wake_max + 60,
			/* a drain's answer waits for these calls: keep them short */
			.timeout_s = 3,
		};

		w->tasks = wake_tasks_new(&to, err);
		if (!w->tasks)
			goto fail;
	}
	w->started_mono = clock_mono_us();
	w->last_activity_mono = w->started_mono;
	w->idle_check_mono = w->started_mono;
	w->ewma_job_s = -1; /* no job seen: hold nothing ahead */
	/* Leases are renewed three times per lease; the registration is
	 * refreshed at most every 15 s (an idle worker costs ~4 commands a
	 * minute) and lives three refreshes. */
	w->hb_interval_ms = (int64_t)(cfg->lease * 1000 / 3);
	if (w->hb_interval_ms > 15000)
		w->hb_interval_ms = 15000;
	if (w->hb_interval_ms < 50)
		w->hb_interval_ms = 50;
	w->worker_ttl_ms = 3 * w->hb_interval_ms;
	queue_limits.result_ttl_s = cfg->result_ttl;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		err_set(err, ERR_INTERNAL, "cannot create eventfd");
		goto fail;
	}
	if (slots_start(w) < 0) {
		err_set(err, ERR_INTERNAL, "cannot start %lld slot threads",
			(long long)cfg->concurrency);
		goto fail;
	}
	if (pthread_create(&w->hb_thread, NULL, heartbeat_main, w)) {
		err_set(err, ERR_INTERNAL, "cannot start the heartbeat thread");
		goto fail;
	}
	w->hb_started = 1;
	if (job_settings.data_dir && *job_settings.data_dir &&
	    pthread_create(&w->parts_thread, NULL, sweep_parts_main, w) == 0)
		w->parts_started = 1;
	if (cfg->once) {
		uint64_t gen;

		/* a timer's drain (wakeq drain): counted as a cron wake */
		atomic_fetch_add(&w->wakes_unsent[QUEUE_TRIGGER_CRON], 1);
		pthread_mutex_lock(&w->mu);
		w->drain_gen++;
		w->draining = 1;
		gen = w->drain_gen;
		if (pthread_create(&w->drain_thread, NULL, drain_main, w)) {
			w->draining = 0;
			pthread_mutex_unlock(&w->mu);
			err_set(err, ERR_INTERNAL, "cannot start the drain thread");
			goto fail;
		}
		w->drain_joinable = 1;
		(void)gen;
		pthread_mutex_unlock(&w->mu);
		return w;
	}
	memset(&ho, 0, sizeof(ho));
	ho.host = cfg->host;
	ho.port = (int)cfg->port;
	ho.thread_per_connection = 1;
	ho.max_connections = cfg->max_connections > 0 ? (unsigned)cfg->max_connections : 256;
	ho.per_ip_connections = (unsigned)cfg->per_ip_connections;
	ho.reserve = (unsigned)cfg->conn_reserve;
	ho.header_timeout_s = cfg->header_timeout;
	ho.body_timeout_s = cfg->body_timeout;
	ho.max_body = 64 * 1024;
	/* /wake is held for up to WAKE_MAX; idle connections are closed by
	 * the header deadline */
	ho.timeout_s = (unsigned)cfg->wake_max + 60;
	w->http = httpd_start(&ho, worker_http, w, err);
	if (!w->http)
		goto fail;
	return w;
fail:
	destroy(w); /* the threads started are idle: joined at once */
	return NULL;
}

int worker_port(const struct worker *w)
{
	return w->http ? httpd_port(w->http) : 0;
}

/* Calls of worker_idle_exit_due further apart than this mean the process
 * got no CPU meanwhile: stopped (Cloud Run's request-based CPU, SIGSTOP),
 * or a suspended VM. The caller asks every 100 ms; a late call only puts
 * the exit off. */
#define WORKER_STALL_US 250000

int worker_idle_exit_due(struct worker *w)
{
	int64_t now = clock_mono_us();
	int due;

	pthread_mutex_lock(&w->mu);
	/* Time without CPU is not idle time: a process thawed after a long
	 * freeze was thawed for a request, which may be on its way to the
	 * handler and not counted yet. Exiting now would drop it (the
	 * caller sees the connection close without an answer). */
	if (now - w->idle_check_mono > WORKER_STALL_US)
		w->last_activity_mono = now;
	w->idle_check_mono = now;
	if (w->cfg->once) {
		due = !w->draining;
		pthread_mutex_unlock(&w->mu);
		return due;
	}
	due = w->cfg->exit_on_idle && !w->draining && !w->open_requests && !w->stopping &&
	      !w->nready && !w->nrunning && !w->done &&
	      now - w->last_activity_mono >= (int64_t)(w->cfg->idle_timeout * 1e6);
	pthread_mutex_unlock(&w->mu);
	return due;
}

static void timed_wait(struct worker *w, int64_t us)
{
	clock_cond_wait_us(&w->cv, &w->mu, us);
}

void worker_shutdown(struct worker *w)
{
	int64_t t0 = clock_mono_us();
	int64_t grace = (int64_t)(w->cfg->shutdown_grace * 1e6);
	int64_t margin = grace / 4 < 1000000 ? grace / 4 : 1000000;
	size_t i;

	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	w->stopping = 1;
	log_info("shutting down", "in_flight", w->nrunning ? "yes" : "no");
	worker_notify(w);
	/* Let running jobs finish while the grace allows. */
	while (w->draining && w->nrunning > 0 && clock_mono_us() - t0 < grace - 2 * margin)
		timed_wait(w, 20000);
	/* Then ask the rest to stop; their slots re-queue them. */
	for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
		struct task *t = w->running[i];

		if (t && t->reason == STOP_NONE) {
			t->reason = STOP_SHUTDOWN;
			atomic_store(&t->cancel, 1);
		}
	}
	worker_notify(w);
	while (w->draining && w->nrunning - w->nearly > 0 && clock_mono_us() - t0 < grace - margin)
		timed_wait(w, 10000);
	/* Handlers that ignore the cancel flag: re-queue them on their
	 * behalf; whatever they return later is dropped. */
	for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
		struct task *t = w->running[i], *copy;

		if (!t || t->settled_early)
			continue;
		copy = xcalloc(1, sizeof(*copy));
		memcpy(copy->job.id, t->job.id, sizeof(copy->job.id));
		copy->job.token = t->job.token;
		copy->qi = t->qi;
		copy->outcome = QUEUE_REQUEUE;
		t->settled_early = 1;
		w->nearly++;
		tasks_push_done(w, copy);
	}
	worker_notify(w);
	while (w->draining && clock_mono_us() - t0 < grace)
		timed_wait(w, 10000);
	/* Past the grace (Redis down?): the drain gives up what it could not
	 * settle; those leases expire and the jobs run again elsewhere. */
	w->abandon = 1;
	worker_notify(w);
	pthread_cond_broadcast(&w->cv);
	{
		int64_t until = clock_mono_us() + 200000;

		while (w->draining && clock_mono_us() < until)
			timed_wait(w, 10000);
	}
	pthread_mutex_unlock(&w->mu);
	{
		double left = (double)(grace - (clock_mono_us() - t0)) / 1e6;

		records_flush(w->rec, left > 0.05 ? left : 0.05);
	}
}

void worker_free(struct worker *w)
{
	int stuck;

	if (!w)
		return;
	/* Let held /wake requests get their summary out (bounded). */
	pthread_mutex_lock(&w->mu);
	{
		int64_t until = clock_mono_us() + 1000000;

		while (w->open_requests > 0 && clock_mono_us() < until)
			timed_wait(w, 10000);
	}
	pthread_mutex_unlock(&w->mu);
	/* No handler thread may stay blocked on a drain: httpd_stop joins them. */
	pthread_mutex_lock(&w->mu);
	w->abandon = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	httpd_stop(w->http);
	pthread_mutex_lock(&w->mu);
	w->hb_quit = 1;
	pthread_cond_broadcast(&w->hb_cv);
	stuck = w->draining || w->nrunning > 0;
	pthread_mutex_unlock(&w->mu);
	if (stuck)
		return; /* a handler ignores cancel: the process exits around it */
	records_flush(w->rec, 2);
	destroy(w);
}
