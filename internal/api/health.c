/* health.c - the unauthenticated probes: GET /healthz (the process is
 * alive), GET /readyz (Redis and Postgres answer; 503 otherwise) and
 * GET /metrics (Prometheus text: requests by status class, intake,
 * event streams, reconcile and wake counters). */
#include "api/priv.h"

#include "api/docs.h"

#include "base/buf.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>

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
	metrics_family(&b, "wakeq_api_unauthorized_total", "counter", "requests refused with 401");
	metrics_sample(&b, "wakeq_api_unauthorized_total", NULL, (double)atomic_load(&a->m_requests[4]));
	metrics_family(&b, "wakeq_api_unavailable_total", "counter", "requests answered 503");
	metrics_sample(&b, "wakeq_api_unavailable_total", NULL, (double)atomic_load(&a->m_requests[5]));
	metrics_family(&b, "wakeq_api_enqueued_total", "counter", "jobs accepted");
	metrics_sample(&b, "wakeq_api_enqueued_total", NULL, (double)atomic_load(&a->m_enqueued));
	metrics_family(&b, "wakeq_api_duplicates_total", "counter", "idempotent repeats answered with the existing job");
	metrics_sample(&b, "wakeq_api_duplicates_total", NULL, (double)atomic_load(&a->m_duplicates));
	metrics_family(&b, "wakeq_api_intake_batches_total", "counter",
		       "batches of POST /v1/jobs sent (one INSERT, one enqueue script per queue)");
	metrics_sample(&b, "wakeq_api_intake_batches_total", NULL, (double)atomic_load(&a->m_batches));
	metrics_family(&b, "wakeq_api_enqueue_seconds", "histogram", "time to accept a job");
	metrics_hist_render(&b, "wakeq_api_enqueue_seconds", NULL, &a->m_enqueue_latency);
	metrics_family(&b, "wakeq_api_event_streams", "gauge", "open event streams");
	metrics_sample(&b, "wakeq_api_event_streams", NULL, a->hub ? api_hub_streams(a->hub) : 0);
	metrics_family(&b, "wakeq_api_reconciled_total", "counter", "jobs requeued or finals copied by reconcile");
	metrics_sample(&b, "wakeq_api_reconciled_total", NULL, (double)atomic_load(&a->m_reconciled));
	wake_get_stats(a->wake, &ws);
	metrics_family(&b, "wakeq_api_wakes_total", "counter", "wake calls by outcome");
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"sent\"", (double)ws.sent);
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"failed\"", (double)ws.failed);
	metrics_sample(&b, "wakeq_api_wakes_total", "outcome=\"completed\"", (double)ws.completed);
	metrics_family(&b, "wakeq_api_wakes_requested_total", "counter", "enqueues that found no live worker");
	metrics_sample(&b, "wakeq_api_wakes_requested_total", NULL, (double)ws.requested);
	api_count_status(a, 200);
	httpd_respond(req, 200, "text/plain; version=0.0.4", b.data, b.len);
	buf_release(&b);
}
