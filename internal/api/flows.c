/* flows.c - jobs created together, linked by their dependencies:
 * POST /v1/flows (a parent that runs after its children, BullMQ's
 * FlowProducer; children may have children, a tree to any depth), POST
 * /v1/batches and GET /v1/batches/{id} (Sidekiq Pro's batches: a callback
 * job once every job of the batch has ended).
 *
 * Both are parsed and linked by job.h's job_flow_parse / job_batch_parse
 * (the CLI's too), then written here as one Postgres INSERT and one
 * enqueue script: the script stores
 * the jobs in order, so the parent (or the callback) that depends on the
 * ones before it is linked to them in the same atomic run, and no worker
 * can finish a child before its parent knows it (docs/QUEUE.md
 * "Dependencies"). Nothing here waits on the intake threads: a flow is
 * one request with its own batch.
 *
 * A batch is its callback job (internal/job/linked.c); without a
 * callback in the request the callback is a noop (a webhook with the
 * counts when callback_url is given).
 */
#include "api/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "job/job.h"
#include "log/log.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The request body as a JSON object. Returns it (caller owns), or NULL
 * with the answer given. */
static json_t *body_object(struct api *a, struct httpd_request *req)
{
	const char *ct = httpd_header(req, "Content-Type");
	json_error_t je;
	const char *body;
	json_t *o;
	size_t len;

	if (!ct || strncasecmp(ct, "application/json", 16) ||
	    (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
		api_reply_error(a, req, 415, "unsupported_media_type",
				"content type must be application/json");
		return NULL;
	}
	body = httpd_body(req, &len);
	o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!json_is_object(o)) {
		api_reply_error(a, req, 400, "invalid_json", "body: expected a JSON object");
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The members parsed by `parse` (job_flow_parse, job_batch_parse) from
 * the body, on a queue served here: linked jobs share one queue, so a
 * sharded one's members all go to one shard, the next in turn
 * (api_route_queue; a flow or batch has no key). Returns 0, or -1 with
 * the answer given (400). */
static int linked_parse(struct api *a, struct httpd_request *req, json_t *body,
			job_linked_parse_fn parse,
			struct job_linked *l)
{
	struct job_defaults d = a->defaults;
	const char *code = "invalid_field", *q;
	struct err e;
	size_t i;

	d.queue = api_route_default(a); /* a sharded set's name: its members may name it */
	if (parse(body, &d, QUEUE_MAX_BATCH, clock_now_us(), l, &code, &e) < 0) {
		api_reply_error(a, req, 400, code, "%s", e.msg);
		return -1;
	}
	if (!(q = api_route_queue(a, req, l->queue, NULL))) {
		job_linked_release(l);
		return -1;
	}
	l->queue = q;
	for (i = 0; i <= l->n; i++)
		l->specs[i].queue = q;
	return 0;
}

/* Writes the members (Postgres first, then one enqueue script) and wakes
 * a worker for the ones due. Returns 0 with out[] filled, or -1 with the
 * answer given (nothing stays written). An enqueue that went out
 * unanswered (ERR_UNKNOWN) with the rows written is accepted, as intake
 * does for one job: Redis may have run it (deleting the rows would let a
 * retry make the flow twice), and reconcile enqueues the rows if not. */
static int create_linked(struct api *a, struct httpd_request *req, struct job_linked *l,
			 struct queue_enqueued *out)
{
	size_t i, n = l->n + 1, nnow = 0;
	struct queue *q = NULL;
	int64_t due = 0;
	int live = 1, inserted = 0, rc = -1;
	struct err e;

	if (a->store) {
		int *st = xmalloc(n * sizeof(*st));

		if (store_insert_many(a->store, l->specs, n, st, NULL, NULL, &e) < 0) {
			free(st);
			if (e.code == ERR_INVALID)
				api_reply_error(a, req, 400, "invalid_field", "%s", e.msg);
			else
				api_reply_backend(a, req, &e, "postgres");
			return -1;
		}
		free(st);
		inserted = 1;
	}
	q = api_qget(a, &e);
	if (!q || queue_enqueue(q, l->queue, l->specs, n, out, &live, &e) < 0) {
		int64_t now = clock_now_us();

		if (!inserted || e.code != ERR_UNKNOWN) {
			api_reply_backend(a, req, &e, "redis");
			goto out;
		}
		log_warn("enqueue of linked jobs unanswered; the rows stay, reconcile enqueues "
			 "them if redis has not", "job_id", l->specs[n - 1].id, "error", e.msg);
		memset(out, 0, n * sizeof(*out));
		for (i = 0; i < n; i++) {
			memcpy(out[i].id, l->specs[i].id, UUID_STR_LEN);
			out[i].created = 1;
			out[i].status = job_spec_status(&l->specs[i], now);
		}
		live = 0;
	}
	if (queue_enqueued_due(out, l->specs, n, &due, &nnow, &e) < 0) {
		api_reply_backend(a, req, &e, "redis");
		goto out;
	}
	atomic_fetch_add(&a->m_enqueued, n);
	if (due)
		wake_at(a->wake, due);
	if (nnow)
		wake_notify(a->wake, live);
	rc = 0;
out:
	api_qput(a, q);
	if (rc < 0 && inserted) {
		const char **ids = xmalloc(n * sizeof(*ids));

		for (i = 0; i < n; i++)
			ids[i] = l->specs[i].id;
		if (store_delete_many(a->store, ids, n, &e) < 0)
			log_warn("cannot undo the rows of a flow; reconcile will enqueue them",
				 "error", e.msg);
		free(ids);
	}
	return rc;
}

/* POST /v1/flows and POST /v1/batches: the members `parse` reads from
 * the body, written, answered 202 with the flow's document (`flow`: with
 * each member's status) or the batch's. */
static void post_linked(struct api *a, struct httpd_request *req,
			job_linked_parse_fn parse, int flow)
{
	struct queue_enqueued *out = NULL;
	enum job_status *st = NULL;
	struct job_linked l = { 0 };
	json_t *body;
	size_t i;

	if (!(body = body_object(a, req)))
		return;
	if (linked_parse(a, req, body, parse, &l) < 0)
		goto out;
	out = xmalloc((l.n + 1) * sizeof(*out));
	if (create_linked(a, req, &l, out) < 0)
		goto out;
	st = xmalloc((l.n + 1) * sizeof(*st));
	for (i = 0; i <= l.n; i++)
		st[i] = out[i].status;
	api_reply_json(a, req, 202, flow ? job_flow_doc(&l, st) : job_batch_doc(&l));
out:
	free(st);
	free(out);
	job_linked_release(&l);
	json_decref(body);
}

/* POST /v1/flows {queue?, parent: job, children: [job...]}: the parent
 * depends on every child (on_dependency_failure?, default fail), and a
 * child with children of its own on them, to any depth (a tree of at
 * most QUEUE_MAX_BATCH jobs). */
void api_post_flow(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	post_linked(a, req, job_flow_parse, 1);
}

/* POST /v1/batches {queue?, jobs: [job...], callback?: job,
 * callback_url?}: the callback (a noop when none) is the batch. */
void api_post_batch(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	post_linked(a, req, job_batch_parse, 0);
}

/* GET /v1/batches/{id}: the batch's counts, from its callback job. */
void api_get_batch(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct job_info job;
	struct err e;
	size_t qi;

	if (!q) {
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	if (api_find_job(a, q, id, &qi, &job, &e) < 0) {
		api_qput(a, q);
		if (e.code == ERR_NOTFOUND)
			api_reply_error(a, req, 404, "not_found", "no batch '%s'", id);
		else
			api_reply_backend(a, req, &e, "redis");
		return;
	}
	api_qput(a, q);
	if (!job.batch || strcmp(job.batch, job.id))
		api_reply_error(a, req, 404, "not_found", "no batch '%s'", id);
	else
		api_reply_json(a, req, 200, job_batch_to_json(&job));
	job_info_release(&job);
}
