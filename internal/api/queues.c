/* queues.c - the queues as a whole: GET /v1/queues (counts by state and
 * live workers per served queue), GET /v1/queues/{queue} (one queue with
 * its backlog, for dashboards and autoscalers: KEDA's metrics-api scaler
 * reads `backlog`), pause and resume, the settings (GET and PUT
 * /v1/queues/{queue}/settings), POST /v1/queues/{queue}/purge-dead, POST
 * /v1/wake (a wake now, through the API's waker) and reconcile between
 * Postgres and Redis (POST /v1/reconcile; the timer in api.c runs the
 * same pass). */
#include "api/priv.h"

#include "job/job.h"
#include "log/log.h"
#include "reconcile/reconcile.h"
#include "wake/wake.h"

#include <string.h>
#include <strings.h>

static json_t *counts_json(const struct queue_counts *c)
{
	json_t *o = json_object();
	int s;

	for (s = 0; s < JOB_NSTATUS; s++)
		json_object_set_new(o, job_status_name((enum job_status)s), json_integer(c->n[s]));
	json_object_set_new(o, "workers", json_integer(c->workers));
	json_object_set_new(o, "paused", json_boolean(c->paused));
	json_object_set_new(o, "done_total", json_integer(c->done_total));
	json_object_set_new(o, "failed_total", json_integer(c->failed_total));
	return o;
}

int64_t api_backlog(const struct queue_counts *c, const struct queue_stats *s)
{
	/* c->due: the queued jobs a worker could lease now (none while
	 * paused; those held by a rate limit or a concurrency cap not) */
	return c->paused ? 0 : c->due + s->due;
}

double api_oldest_due_age_s(const struct queue_stats *s)
{
	if (!s->oldest_due_ms || s->now_ms < s->oldest_due_ms)
		return 0;
	return (double)(s->now_ms - s->oldest_due_ms) / 1000;
}

void api_get_queue(struct api *a, struct httpd_request *req, const char *queue)
{
	struct queue_counts c;
	struct queue_stats s;
	struct queue *q;
	struct err e;
	json_t *o;

	if (!(q = api_qget_served(a, req, queue)))
		return;
	if (queue_counts(q, queue, &c, &e) < 0 || queue_stats_read(q, queue, &s, &e) < 0) {
		api_qput(a, q);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	o = counts_json(&c);
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "backlog", json_integer(api_backlog(&c, &s)));
	json_object_set_new(o, "oldest_due_age_s", json_real(api_oldest_due_age_s(&s)));
	queue_stats_release(&s);
	api_reply_json(a, req, 200, o);
}

static void pause_or_resume(struct api *a, struct httpd_request *req,
			    const char *queue, int paused)
{
	struct queue_resumed r;
	struct queue *q;
	struct err e;

	if (!(q = api_qget_served(a, req, queue)))
		return;
	if (queue_pause(q, queue, paused, &r, &e) < 0) {
		api_qput(a, q);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	/* resumed work with no worker to run it: wake one (the markers the
	 * script pushed reach the live ones) */
	if (r.due > 0)
		wake_notify(a->wake, r.live > 0);
	if (r.next_due_ms > 0)
		wake_at(a->wake, r.next_due_ms * 1000);
	log_info(paused ? "queue paused" : "queue resumed", "queue", queue);
	api_reply_json(a, req, 200, json_pack("{s:s,s:b}", "queue", queue, "paused", paused));
}

/* ---- settings ---------------------------------------------------------------- */

/* The body of PUT .../settings into *out (replacing all: what it does
 * not name is not set). Returns 0, or -1 once answered 400. */
static int settings_parse(struct api *a, struct httpd_request *req,
			  struct queue_settings *out)
{
	const char *body, *code = "invalid_json";
	json_error_t je;
	json_t *root;
	struct err e;
	size_t len;

	memset(out, 0, sizeof(*out));
	body = httpd_body(req, &len);
	root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!root) {
		api_reply_error(a, req, 400, "invalid_json", "body: expected a JSON object of settings");
		return -1;
	}
	if (queue_settings_from_json(root, out, &code, &e) < 0) {
		json_decref(root);
		api_reply_error(a, req, 400, code, "%s", e.msg);
		return -1;
	}
	json_decref(root);
	return 0;
}

static void settings_reply(struct api *a, struct httpd_request *req, struct queue *q,
			   const char *queue)
{
	struct queue_settings st;
	struct err e;

	if (queue_settings_get(q, queue, &st, &e) < 0) {
		api_qput(a, q);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	api_reply_json(a, req, 200, queue_settings_to_json(queue, &st));
}

void api_get_settings(struct api *a, struct httpd_request *req, const char *queue)
{
	struct queue *q;

	if (!(q = api_qget_served(a, req, queue)))
		return;
	settings_reply(a, req, q, queue);
}

void api_put_settings(struct api *a, struct httpd_request *req, const char *queue)
{
	struct queue_settings st;
	struct queue *q;
	struct err e;

	if (api_served_index(a, queue) < 0) {
		api_reply_error(a, req, 404, "not_found", "queue '%.64s' is not served here", queue);
		return;
	}
	if (api_require_json(a, req) < 0 || settings_parse(a, req, &st) < 0)
		return;
	if (!(q = api_qget_req(a, req)))
		return;
	if (queue_settings_set(q, queue, &st, &e) < 0) {
		api_qput(a, q);
		if (e.code == ERR_INVALID)
			api_reply_error(a, req, 400, "invalid_field", "%s", e.msg);
		else
			api_reply_backend(a, req, &e, "redis");
		return;
	}
	log_info("queue settings changed", "queue", queue);
	settings_reply(a, req, q, queue);
}

void api_pause_queue(struct api *a, struct httpd_request *req, const char *queue)
{
	pause_or_resume(a, req, queue, 1);
}

void api_resume_queue(struct api *a, struct httpd_request *req, const char *queue)
{
	pause_or_resume(a, req, queue, 0);
}

void api_get_queues(struct api *a, struct httpd_request *req, const char *arg)
{
	struct queue *q = api_qget_req(a, req);
	json_t *all;
	struct err e;
	size_t i;

	(void)arg;
	if (!q)
		return;
	all = json_object();
	for (i = 0; i < a->nqueues; i++) {
		struct queue_counts c;

		if (queue_counts(q, a->queues[i], &c, &e) < 0) {
			api_qput(a, q);
			json_decref(all);
			api_reply_backend(a, req, &e, "redis");
			return;
		}
		json_object_set_new(all, a->queues[i], counts_json(&c));
	}
	api_qput(a, q);
	api_reply_json(a, req, 200, json_pack("{s:o}", "queues", all));
}

static json_t *reconcile_json(const struct reconcile_stats *st)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "scanned", (json_int_t)st->scanned,
			 "requeued", (json_int_t)st->requeued, "finals", (json_int_t)st->finals,
			 "errors", (json_int_t)st->errors);
}

int api_reconcile(struct api *a, struct reconcile_stats *st, struct err *err)
{
	struct queue *q = api_qget(a, err);
	int rc;

	if (!q)
		return -1;
	rc = reconcile_run(q, a->store, a->cfg.reconcile_min_age_s, st, err);
	api_qput(a, q);
	atomic_fetch_add(&a->m_reconciled, (uint64_t)(st->requeued + st->finals));
	if (st->requeued > 0) {
		/* jobs came back: make sure someone runs them */
		wake_notify(a->wake, 0);
	}
	return rc;
}

/* Whether the API has `backend` (a->store, a->wake); when it has not,
 * answers 409 with `why`, which names the setting it needs. */
static int have_backend(struct api *a, struct httpd_request *req, const void *backend,
			const char *why)
{
	if (!backend)
		api_reply_error(a, req, 409, "conflict", "%s", why);
	return backend != NULL;
}

void api_post_reconcile(struct api *a, struct httpd_request *req, const char *arg)
{
	struct reconcile_stats st;
	struct err e;

	(void)arg;
	if (!have_backend(a, req, a->store,
			  "reconcile needs DATABASE_URL: without Postgres, Redis holds all state"))
		return;
	if (api_reconcile(a, &st, &e) < 0) {
		api_reply_backend(a, req, &e, "backend");
		return;
	}
	api_reply_json(a, req, 200, reconcile_json(&st));
}

void api_purge_dead(struct api *a, struct httpd_request *req, const char *queue)
{
	struct queue *q;
	struct err e;
	int64_t n;

	if (!(q = api_qget_served(a, req, queue)))
		return;
	/* the Postgres rows of these jobs keep their final state (failed):
	 * the record of the failure outlives the dead letter */
	n = queue_purge_dead(q, queue, &e);
	api_qput(a, q);
	if (n < 0) {
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_reply_json(a, req, 200, json_pack("{s:s,s:I}", "queue", queue, "purged", (json_int_t)n));
}

void api_post_wake(struct api *a, struct httpd_request *req, const char *arg)
{
	struct wake_stats ws;

	(void)arg;
	if (!have_backend(a, req, a->wake, "no WAKE_URL: this API has no worker to wake"))
		return;
	/* with a wake open, the worker is draining and takes every due job;
	 * the waker then checks the backlog when that wake ends */
	wake_get_stats(a->wake, &ws);
	wake_notify(a->wake, 0);
	api_reply_json(a, req, 202, json_pack("{s:s}", "wake", ws.in_flight > 0 ? "in_flight" : "requested"));
}
