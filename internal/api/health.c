/* health.c - the unauthenticated probes: GET /healthz (the process is
 * alive), GET /readyz (Redis and Postgres answer; 503 otherwise) and
 * GET /metrics (Prometheus text: requests by status class, intake,
 * event streams, reconcile and wake counters of this process; then, read
 * from Redis at each scrape, the figures of every served queue that
 * outlive the worker: jobs by state, backlog, oldest due job, runs by
 * type and outcome, wait and run time histograms, wakes by trigger). */
#include "api/priv.h"

#include "api/docs.h"

#include "base/buf.h"
#include "base/mem.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void api_healthz(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	api_reply_json(a, req, 200, json_pack("{s:s}", "status", "ok"));
}

/* The API's contract, docs/openapi.yaml as built in. */
void api_openapi(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	api_count_status(a, 200);
	httpd_respond(req, 200, "application/yaml", api_doc_openapi_yaml,
		      sizeof(api_doc_openapi_yaml) - 1);
}

void api_readyz(struct api *a, struct httpd_request *req, const char *arg)
{
	struct queue *q = api_qget(a, NULL);
	struct err e;
	int redis_ok = 0, pg_ok = 1;
	json_t *body;

	(void)arg;
	if (q) {
		redis_ok = queue_ping(q, &e) == 0;
		api_qput(a, q);
	}
	if (a->store)
		pg_ok = store_ping(a->store, &e) == 0;
	body = json_pack("{s:s,s:s}", "redis", redis_ok ? "ok" : "down", "postgres",
			 a->store ? (pg_ok ? "ok" : "down") : "off");
	if (redis_ok && pg_ok) {
		api_reply_json(a, req, 200, body);
	} else {
		api_count_status(a, 503);
		httpd_add_header(req, "Retry-After", "1");
		json_object_set_new(body, "error",
				    json_pack("{s:s,s:s}", "code", "unavailable", "message",
					      !redis_ok ? "redis is unavailable" : "postgres is unavailable"));
		httpd_respond_json(req, 503, body);
	}
}

/* Labels queue="Q" (and type="T" when type is not NULL) into *l. */
static const char *labels(struct buf *l, const char *queue, const char *type)
{
	buf_reset(l);
	metrics_label(l, "queue", queue);
	if (type)
		metrics_label(l, "type", type);
	return l->data;
}

/* The histogram family `name` of every readable queue and job type: the
 * queue_hist at `off` in each struct queue_type_hist. */
static void hists(struct buf *b, struct api *a, const struct queue_stats *s, const int *ok,
		  const char *name, const char *help, size_t off)
{
	double bounds[QUEUE_HIST_BUCKETS];
	struct buf l = BUF_INIT;
	size_t i, k;

	for (i = 0; i < QUEUE_HIST_BUCKETS; i++)
		bounds[i] = (double)queue_hist_bounds_ms[i] / 1000;
	metrics_family(b, name, "histogram", help);
	for (i = 0; i < a->nqueues; i++)
		for (k = 0; ok[i] && k < s[i].nhists; k++) {
			const struct queue_hist *h =
				(const void *)((const char *)&s[i].hists[k] + off);

			metrics_hist_render_counts(b, name, labels(&l, a->queues[i],
								   s[i].hists[k].type),
						   bounds, QUEUE_HIST_BUCKETS, h->count,
						   (double)h->sum_us / 1e6);
		}
	buf_release(&l);
}

/* The figures of the served queues, from Redis: two script runs a queue
 * (counts, metrics). A queue that cannot be read is left out, and
 * wakeq_redis_up says 0. */
static void queue_metrics(struct api *a, struct buf *b)
{
	struct queue *q = api_qget(a, NULL);
	struct queue_counts *c = xcalloc(a->nqueues, sizeof(*c));
	struct queue_stats *s = xcalloc(a->nqueues, sizeof(*s));
	int *ok = xcalloc(a->nqueues, sizeof(*ok));
	struct buf l = BUF_INIT;
	size_t i, k;
	int st, up = q != NULL;

	for (i = 0; q && i < a->nqueues; i++) {
		ok[i] = queue_counts(q, a->queues[i], &c[i], NULL) == 0 &&
			queue_stats_read(q, a->queues[i], &s[i], NULL) == 0;
		up &= ok[i];
	}
	api_qput(a, q);
	metrics_one(b, "wakeq_redis_up", "gauge", "1 when every served queue could be read from Redis for this scrape",
		    up);
	metrics_family(b, "wakeq_queue_jobs", "gauge",
		       "jobs by queue and state (done and failed: the retained sets; cancelled: a running total)");
	for (i = 0; i < a->nqueues; i++)
		for (st = 0; ok[i] && st < JOB_NSTATUS; st++) {
			labels(&l, a->queues[i], NULL);
			metrics_label(&l, "state", job_status_name((enum job_status)st));
			metrics_sample(b, "wakeq_queue_jobs", l.data, (double)c[i].n[st]);
		}
	metrics_family(b, "wakeq_queue_backlog", "gauge",
		       "jobs due and not running: queued, and scheduled or retrying ones whose time has come");
	for (i = 0; i < a->nqueues; i++)
		if (ok[i])
			metrics_sample(b, "wakeq_queue_backlog", labels(&l, a->queues[i], NULL),
				       (double)api_backlog(&c[i], &s[i]));
	metrics_family(b, "wakeq_queue_oldest_due_age_seconds", "gauge",
		       "how long the longest-waiting due job has been due (0 when none is)");
	for (i = 0; i < a->nqueues; i++)
		if (ok[i])
			metrics_sample(b, "wakeq_queue_oldest_due_age_seconds",
				       labels(&l, a->queues[i], NULL), api_oldest_due_age_s(&s[i]));
	metrics_family(b, "wakeq_queue_workers", "gauge", "live workers registered on the queue");
	for (i = 0; i < a->nqueues; i++)
		if (ok[i])
			metrics_sample(b, "wakeq_queue_workers", labels(&l, a->queues[i], NULL),
				       (double)c[i].workers);
	metrics_family(b, "wakeq_jobs_total", "counter",
		       "runs that ended, by queue, type and outcome (done, retried, failed, cancelled, requeued, expired, throttled), all processes");
	for (i = 0; i < a->nqueues; i++)
		for (k = 0; ok[i] && k < s[i].noutcomes; k++) {
			labels(&l, a->queues[i], s[i].outcomes[k].type);
			metrics_label(&l, "outcome", s[i].outcomes[k].name);
			metrics_sample(b, "wakeq_jobs_total", l.data, (double)s[i].outcomes[k].n);
		}
	hists(b, a, s, ok, "wakeq_job_wait_seconds",
	      "time from due (or enqueued) to started, by queue and type",
	      offsetof(struct queue_type_hist, wait));
	hists(b, a, s, ok, "wakeq_job_run_seconds", "handler run time, by queue and type",
	      offsetof(struct queue_type_hist, run));
	metrics_family(b, "wakeq_queue_wakes_total", "counter",
		       "wakes received by the workers of the queue, by trigger (api, fanout, cli, cron)");
	for (i = 0; i < a->nqueues; i++)
		for (st = 0; ok[i] && st < QUEUE_NTRIGGERS; st++) {
			const char *name = queue_trigger_name((enum queue_trigger)st);
			int64_t n = 0;

			for (k = 0; k < s[i].nwakes; k++)
				if (!strcmp(s[i].wakes[k].name, name))
					n += s[i].wakes[k].n;
			labels(&l, a->queues[i], NULL);
			metrics_label(&l, "trigger", name);
			metrics_sample(b, "wakeq_queue_wakes_total", l.data, (double)n);
		}
	for (i = 0; i < a->nqueues; i++)
		queue_stats_release(&s[i]);
	buf_release(&l);
	free(c);
	free(s);
	free(ok);
}

void api_metrics(struct api *a, struct httpd_request *req, const char *arg)
{
	static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx" };
	struct buf b = BUF_INIT;
	struct wake_stats ws;
	char lab[32];
	int i;

	(void)arg;
	metrics_family(&b, "wakeq_api_requests_total", "counter", "HTTP requests answered, by status class");
	for (i = 0; i < 4; i++) {
		snprintf(lab, sizeof(lab), "class=\"%s\"", classes[i]);
		metrics_sample(&b, "wakeq_api_requests_total", lab,
			       (double)atomic_load(&a->m_requests[i]));
	}
	metrics_one(&b, "wakeq_api_unauthorized_total", "counter", "requests refused with 401",
		    (double)atomic_load(&a->m_requests[4]));
	metrics_one(&b, "wakeq_api_unavailable_total", "counter", "requests answered 503",
		    (double)atomic_load(&a->m_requests[5]));
	metrics_one(&b, "wakeq_api_enqueued_total", "counter", "jobs accepted",
		    (double)atomic_load(&a->m_enqueued));
	metrics_one(&b, "wakeq_api_duplicates_total", "counter", "idempotent repeats answered with the existing job",
		    (double)atomic_load(&a->m_duplicates));
	metrics_one(&b, "wakeq_api_intake_batches_total", "counter", "batches of POST /v1/jobs sent (one INSERT, one enqueue script per queue)",
		    (double)atomic_load(&a->m_batches));
	metrics_hist_one(&b, "wakeq_api_enqueue_seconds", "time to accept a job",
			 &a->m_enqueue_latency);
	metrics_one(&b, "wakeq_api_event_streams", "gauge", "open event streams",
		    a->hub ? api_hub_streams(a->hub) : 0);
	metrics_one(&b, "wakeq_api_reconciled_total", "counter", "jobs requeued or finals copied by reconcile",
		    (double)atomic_load(&a->m_reconciled));
	wake_get_stats(a->wake, &ws);
	metrics_family(&b, "wakeq_api_wakes_total", "counter", "wake calls by outcome");
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"sent\"", (double)ws.sent);
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"failed\"", (double)ws.failed);
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"completed\"", (double)ws.completed);
	metrics_one(&b, "wakeq_api_wakes_requested_total", "counter", "enqueues that found no live worker",
		    (double)ws.requested);
	queue_metrics(a, &b);
	api_count_status(a, 200);
	httpd_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len);
	buf_release(&b);
}
