/* http.c - the worker's endpoints: POST /wake, GET /healthz, /readyz,
 * /metrics, /status. */
#include "worker/worker_int.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/parse.h"
#include "httpd/httpd.h"
#include "log/log.h"
#include "log/trace.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Starts a drain unless one runs; returns its generation. mu held. */
static int start_drain(struct worker *w, uint64_t *gen)
{
	if (!w->draining) {
		if (w->drain_joinable) {
			/* The last drain has ended (draining is 0) and touches
			 * nothing after that: joining it here cannot block. */
			pthread_join(w->drain_thread, NULL);
			w->drain_joinable = 0;
		}
		memset(&w->cur, 0, sizeof(w->cur));
		w->drain_gen++;
		w->draining = 1;
		if (pthread_create(&w->drain_thread, NULL, drain_main, w)) {
			w->draining = 0;
			w->drains_done = w->drain_gen;
			return -1;
		}
		w->drain_joinable = 1;
	}
	*gen = w->drain_gen;
	return 0;
}

/* 503 while SIGTERM is being handled: the caller retries elsewhere. */
static void refuse_stopping(struct httpd_request *req)
{
	httpd_add_header(req, "Retry-After", "1");
	httpd_error(req, 503, "shutting_down", "worker is shutting down");
}

static json_t *summary_json(const struct worker *w, const struct drain_summary *s)
{
	return json_pack("{s:s,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:s}}",
			 "worker", w->id, "drain",
			 "jobs", (json_int_t)s->jobs, "done", (json_int_t)s->done,
			 "failed", (json_int_t)s->failed, "retried", (json_int_t)s->retried,
			 "cancelled", (json_int_t)s->cancelled,
			 "requeued", (json_int_t)s->requeued, "stale", (json_int_t)s->stale,
			 "seconds", s->seconds, "reason", s->reason ? s->reason : "idle");
}

/* Whether `req` may use a guarded route (/wake, /status): WAKE_TOKEN is
 * unset, or sent as the bearer token. Otherwise answers 401 itself.
 * /healthz, /readyz and /metrics stay open: probes and scrapers carry no
 * token, and they show no job ids (docs/WORKER.md, HTTP). */
static int authorized(struct worker *w, struct httpd_request *req)
{
	const char *tokens[2] = { w->cfg->wake_token, NULL };

	if (!w->cfg->wake_token[0] || httpd_bearer_ok(req, tokens))
		return 1;
	httpd_add_header(req, "WWW-Authenticate", "Bearer");
	httpd_error(req, 401, "unauthorized", "missing or bad bearer token");
	return 0;
}

/* Remembers the URL this /wake came to (mu held): with Cloud Tasks and
 * no WAKE_URL, the next wake is aimed there (drain_arrange). Cloud Run passes the
 * service's host and X-Forwarded-Proto: https. */
static void note_url(struct worker *w, struct httpd_request *req)
{
	const char *host = httpd_header(req, "Host");
	const char *proto = httpd_header(req, "X-Forwarded-Proto");
	size_t i, n = host ? strlen(host) : 0;

	if (!w->tasks || (w->cfg->wake_url && *w->cfg->wake_url) || n == 0 || n > 255)
		return; /* WAKE_URL set: that one */
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)host[i]) && !strchr(".-:[]", host[i]))
			return;
	snprintf(w->wake_url_seen, sizeof(w->wake_url_seen), "%s://%s/wake",
		 proto && !strcmp(proto, "https") ? "https" : "http", host);
}

/* Whether this /wake is Cloud Tasks retrying a dispatch that got no 2xx
 * answer: the drain that one started may have died with its instance,
 * its jobs leased until their leases run out (drain_arrange). */
static int tasks_retry(struct httpd_request *req)
{
	const char *v = httpd_header(req, WAKE_TASKS_RETRY_HEADER);
	int64_t n;

	return v && parse_int64(v, 0, INT32_MAX, &n) == 0 && n > 0;
}

static void handle_wake(struct worker *w, struct httpd_request *req)
{
	const char *wait = httpd_query(req, "wait");
	struct drain_summary s;
	uint64_t gen;

	if (strcmp(httpd_method(req), "POST") && strcmp(httpd_method(req), "GET")) {
		httpd_add_header(req, "Allow", "POST");
		httpd_error(req, 405, "method_not_allowed", "use POST /wake");
		return;
	}
	if (!authorized(w, req))
		return;
	pthread_mutex_lock(&w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		refuse_stopping(req);
		return;
	}
	atomic_fetch_add(&w->m_wakes, 1);
	/* counted in Redis by the drain thread (send_wakes) */
	atomic_fetch_add(&w->wakes_unsent[queue_trigger_parse(
		httpd_header(req, QUEUE_TRIGGER_HEADER))], 1);
	w->wake_seq++;
	note_url(w, req);
	if (tasks_retry(req))
		w->wake_retried = 1;
	while (w->draining && w->ending && !w->abandon)
		pthread_cond_wait(&w->cv, &w->mu);
	if (w->stopping || w->abandon) {
		pthread_mutex_unlock(&w->mu);
		refuse_stopping(req);
		return;
	}
	if (!w->draining &&
	    log_trace_parse(httpd_header(req, "X-Cloud-Trace-Context"),
			    httpd_header(req, "traceparent"), w->drain_trace) < 0)
		w->drain_trace[0] = '\0';
	if (w->draining)
		worker_notify(w); /* a drain blocked on its markers looks again now */
	if (start_drain(w, &gen) < 0) {
		pthread_mutex_unlock(&w->mu);
		httpd_error(req, 500, "internal", "cannot start a drain thread");
		return;
	}
	if (wait && !strcmp(wait, "0")) {
		w->last_activity_mono = clock_mono_us();
		pthread_mutex_unlock(&w->mu);
		httpd_respond_json(req, 202, json_pack("{s:s,s:s}", "status", "draining",
						       "worker", w->id));
		return;
	}
	/* Hold the request until this drain ends: on Cloud Run the instance
	 * has CPU only while a request is open. */
	w->open_requests++;
	while (w->drains_done < gen && !w->abandon)
		pthread_cond_wait(&w->cv, &w->mu);
	s = w->summary;
	if (w->drains_done < gen) {
		pthread_mutex_unlock(&w->mu);
		refuse_stopping(req);
	} else {
		pthread_mutex_unlock(&w->mu);
		httpd_respond_json(req, 200, summary_json(w, &s));
	}
	/* Counted open until the answer is queued, so shutdown waits for it. */
	pthread_mutex_lock(&w->mu);
	w->open_requests--;
	w->last_activity_mono = clock_mono_us();
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void handle_readyz(struct worker *w, struct httpd_request *req)
{
	struct err e;
	int ok;

	pthread_mutex_lock(&w->sq_mu);
	if (!w->sq) {
		struct queue_opts o = w->qopts;

		o.connect_timeout_s = 2;
		w->sq = queue_connect(&o, &e);
		queue_opts_release(&o);
		ok = w->sq != NULL;
	} else {
		ok = queue_ping(w->sq, &e) == 0;
	}
	pthread_mutex_unlock(&w->sq_mu);
	if (ok)
		httpd_respond_json(req, 200, json_pack("{s:s,s:s}", "status", "ready", "redis", "ok"));
	else
		httpd_respond_json(req, 503, json_pack("{s:s,s:s}", "status", "unavailable",
						       "redis", e.msg));
}

static void handle_status(struct worker *w, struct httpd_request *req)
{
	json_t *o, *inflight = json_array();
	char stamp[CLOCK_RFC3339_LEN];
	int64_t now_mono = clock_mono_us(), now = clock_now_us();
	size_t i;

	if (!authorized(w, req)) { /* it lists job ids and types */
		json_decref(inflight);
		return;
	}
	pthread_mutex_lock(&w->mu);
	for (i = 0; i < (size_t)w->cfg->concurrency; i++) {
		struct task *t = w->running[i];

		if (!t)
			continue;
		json_array_append_new(inflight, json_pack(
			"{s:s,s:s,s:s,s:i,s:s,s:f,s:s?}", "id", t->job.id,
			"queue", w->queue_names[t->qi], "type", t->job.type,
			"attempt", t->job.attempts,
			"started_at", clock_rfc3339(now - (now_mono - t->started_mono), stamp),
			"progress", t->progress, "stage", t->stage[0] ? t->stage : NULL));
	}
	o = json_pack("{s:s,s:f,s:b,s:i,s:I,s:I,s:o,s:I,s:I}",
		      "worker", w->id,
		      "uptime_s", (double)(now_mono - w->started_mono) / 1e6,
		      "draining", w->draining, "open_wakes", w->open_requests,
		      "ready", (json_int_t)w->nready, "running", (json_int_t)w->nrunning,
		      "in_flight", inflight,
		      "processed", (json_int_t)(atomic_load(&w->m_done) + atomic_load(&w->m_failed) +
						atomic_load(&w->m_retried) + atomic_load(&w->m_cancelled)),
		      "drains", (json_int_t)atomic_load(&w->m_drains));
	pthread_mutex_unlock(&w->mu);
	httpd_respond_json(req, 200, o);
}

/* The counter of `w` at `off` (offsetof(struct worker, m_...)). */
static double counter_at(const struct worker *w, size_t off)
{
	return (double)atomic_load((const atomic_uint_least64_t *)((const char *)w + off));
}

static void handle_metrics(struct worker *w, struct httpd_request *req)
{
	static const struct { const char *outcome; size_t off; } outcomes[] = {
		{ "done", offsetof(struct worker, m_done) },
		{ "failed", offsetof(struct worker, m_failed) },
		{ "retried", offsetof(struct worker, m_retried) },
		{ "cancelled", offsetof(struct worker, m_cancelled) },
		{ "requeued", offsetof(struct worker, m_requeued) },
	};
	/* the counters of one sample each */
	static const struct { const char *name, *help; size_t off; } counters[] = {
		{ "wakeq_fencing_refused_total",
		  "Settles refused because the lease had been reassigned.",
		  offsetof(struct worker, m_stale) },
		{ "wakeq_leases_lost_total", "Jobs stopped because their lease was lost.",
		  offsetof(struct worker, m_lost) },
		{ "wakeq_job_timeouts_total", "Jobs stopped by their timeout.",
		  offsetof(struct worker, m_timeouts) },
		{ "wakeq_wakes_total", "POST /wake requests accepted.",
		  offsetof(struct worker, m_wakes) },
		{ "wakeq_drains_total", "Drains finished.", offsetof(struct worker, m_drains) },
	};
	struct buf b = BUF_INIT;
	char labels[128];
	size_t i;
	int inflight, draining;

	metrics_family(&b, "wakeq_jobs_total", "counter", "Jobs settled by this process, by outcome.");
	for (i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcomes[i].outcome);
		metrics_sample(&b, "wakeq_jobs_total", labels, counter_at(w, outcomes[i].off));
	}
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		metrics_one(&b, counters[i].name, "counter", counters[i].help,
			    counter_at(w, counters[i].off));
	metrics_hist_one(&b, "wakeq_job_duration_seconds", "Handler run time.",
			 &w->m_job_seconds);
	metrics_hist_one(&b, "wakeq_drain_duration_seconds", "Drain length.",
			 &w->m_drain_seconds);
	pthread_mutex_lock(&w->mu);
	inflight = (int)w->nrunning;
	draining = w->draining;
	pthread_mutex_unlock(&w->mu);
	metrics_one(&b, "wakeq_inflight_jobs", "gauge", "Jobs running now.",
		    inflight);
	metrics_one(&b, "wakeq_draining", "gauge", "1 while a drain runs.",
		    draining);
	metrics_one(&b, "wakeq_uptime_seconds", "gauge", "Seconds since start.",
		    (double)(clock_mono_us() - w->started_mono) / 1e6);
	/* Queue depth is read from Redis only when scraped. */
	metrics_family(&b, "wakeq_queue_depth", "gauge", "Jobs by queue and state.");
	pthread_mutex_lock(&w->sq_mu);
	if (!w->sq) {
		struct queue_opts o = w->qopts;

		o.connect_timeout_s = 2;
		w->sq = queue_connect(&o, NULL);
		queue_opts_release(&o);
	}
	for (i = 0; w->sq && i < w->nqueues; i++) {
		struct queue_counts c;
		int s;

		if (queue_counts(w->sq, w->queue_names[i], &c, NULL) < 0)
			break;
		for (s = 0; s < JOB_NSTATUS; s++) {
			snprintf(labels, sizeof(labels), "queue=\"%s\",state=\"%s\"",
				 w->queue_names[i], job_status_name((enum job_status)s));
			metrics_sample(&b, "wakeq_queue_depth", labels, (double)c.n[s]);
		}
	}
	pthread_mutex_unlock(&w->sq_mu);
	httpd_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len);
	buf_release(&b);
}

void worker_http(struct httpd_request *req, void *ctx)
{
	struct worker *w = ctx;
	const char *path = httpd_path(req);

	if (!strcmp(path, "/wake")) {
		handle_wake(w, req);
	} else if (!strcmp(path, "/healthz")) {
		httpd_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
	} else if (!strcmp(path, "/readyz")) {
		handle_readyz(w, req);
	} else if (!strcmp(path, "/status")) {
		handle_status(w, req);
	} else if (!strcmp(path, "/metrics")) {
		handle_metrics(w, req);
	} else {
		httpd_error(req, 404, "not_found", "no route for '%s'", path);
	}
}
