/* jobs.c - one job and lists of jobs: GET and DELETE (cancel)
 * /v1/jobs/{id}, POST /v1/jobs/{id}/retry, the entry of GET
 * /v1/jobs/{id}/events (the streams themselves are events.c), GET
 * /v1/queues/{queue}/jobs (pages of queue_find, filtered by type, part of
 * the id and a label), and the lookups they share: a job from Redis (any
 * served queue), else from Postgres once Redis has let it go. */
#include "api/priv.h"

#include "base/buf.h"
#include "base/mem.h"
#include "job/job.h"
#include "log/log.h"
#include "reconcile/reconcile.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdlib.h>
#include <string.h>

#define LIST_MAX 1000

int api_find_job(struct api *a, struct queue *q, const char *id, size_t *qi,
		 struct job_info *out, struct err *err)
{
	size_t i;

	for (i = 0; i < a->nqueues; i++) {
		struct err e;

		if (queue_job_get(q, a->queues[i], id, out, &e) == 0) {
			*qi = i;
			return 0;
		}
		if (e.code != ERR_NOTFOUND) {
			if (err)
				*err = e;
			return -1;
		}
	}
	return err_set(err, ERR_NOTFOUND, "no job '%s'", id);
}

/* A row that is not final, for a job Redis does not hold, may be a
 * completion still waiting in its queue's finals log: the worker that
 * would have written it was killed (or Postgres was down), and the done
 * cap then evicted the job's hash. Rather than look the id up in the log
 * (a stream is keyed by entry id: a lookup is a scan of the log all the
 * same), the log of the row's queue is copied into Postgres, by the one
 * copy that the records writer and reconcile run (reconcile_finals), and
 * the row read again. That settles the row for every reader (cancel,
 * events, reconcile), not only this answer, and is the work reconcile
 * would do next anyway; on a system at zero nothing else may do it for
 * long. The answer waits for the copy (~25 µs an entry), so it copies
 * FINALS_BATCHES_ASKED batches of the oldest entries at the most (2,048:
 * ~50 ms; a completion whose hash the done cap evicted is among the
 * oldest), leaving a longer log to the records writer and reconcile.
 * Copies running at once are harmless: the update is idempotent
 * and deleting an entry already deleted does nothing. When the copy
 * fails (Redis or Postgres down), the row is answered as read. */
#define FINALS_BATCHES_ASKED 8

int api_store_job(struct api *a, struct queue *q, const char *id,
		  struct job_info *out, struct err *err)
{
	struct job_info row;

	if (!a->store)
		return err_set(err, ERR_NOTFOUND, "no job '%s'", id);
	if (store_get(a->store, id, &row, err) < 0)
		return -1;
	if (q && row.queue && !job_status_final(row.status) &&
	    reconcile_finals(q, a->store, row.queue, FINALS_BATCHES_ASKED, NULL, NULL) == 0) {
		struct job_info now;

		if (store_get(a->store, id, &now, NULL) == 0) {
			job_info_release(&row);
			row = now;
		}
	}
	*out = row;
	return 0;
}

void api_get_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct job_info job;
	struct err e;
	size_t qi;
	int rc = -1;

	json_t *deps = NULL;

	err_set(&e, ERR_UNAVAILABLE, "redis is unavailable");
	if (q) {
		rc = api_find_job(a, q, id, &qi, &job, &e);
		if (rc == 0 && job.depends_on)
			queue_job_deps(q, a->queues[qi], &job, &deps, NULL);
	}
	if (rc < 0 && a->store && (e.code == ERR_NOTFOUND || e.code == ERR_UNAVAILABLE)) {
		struct err e2;

		/* the finals log is read only when Redis answered */
		rc = api_store_job(a, e.code == ERR_NOTFOUND ? q : NULL, id, &job, &e2);
		if (rc < 0 && e.code == ERR_NOTFOUND)
			e = e2;
	}
	if (q)
		api_qput(a, q);
	if (rc == 0) {
		json_t *doc = job_info_to_json(&job);

		if (deps)
			json_object_set_new(doc, "dependencies", deps);
		api_reply_json(a, req, 200, doc);
		job_info_release(&job);
		return;
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else
		api_reply_backend(a, req, &e, e.code == ERR_UNAVAILABLE && !q ? "redis" : "backend");
}

void api_job_events(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget_req(a, req);
	struct job_info job;
	struct err e;
	size_t qi = 0;
	int rc;

	if (!q)
		return;
	rc = api_find_job(a, q, id, &qi, &job, &e);
	if (rc == 0) {
		int final = job_status_final(job.status);

		api_qput(a, q);
		if (final)
			api_events_final(a, req, &job);
		job_info_release(&job);
		if (final)
			return;
		api_count_status(a, 200);
		api_hub_serve(a->hub, req, a->queues[qi], id);
		return;
	}
	if (e.code == ERR_NOTFOUND && a->store) {
		/* gone from Redis: its record is final (or about to be requeued) */
		rc = api_store_job(a, q, id, &job, &e);
		api_qput(a, q);
		if (rc == 0) {
			api_events_final(a, req, &job);
			job_info_release(&job);
			return;
		}
	} else {
		api_qput(a, q);
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else
		api_reply_backend(a, req, &e, "backend");
}

/* Runs `op` (queue_cancel, queue_retry_dead) on the job `id` in each
 * served queue until one knows it. Returns what op returned (-1 with e
 * when no queue has it or Redis failed); *qi is that queue's index. */
static int on_served(struct api *a, struct queue *q, const char *id,
		     int (*op)(struct queue *, const char *, const char *, struct err *),
		     size_t *qi, struct err *e)
{
	size_t i;
	int rc = -1;

	err_set(e, ERR_NOTFOUND, "no job '%s'", id);
	for (i = 0; i < a->nqueues; i++) {
		rc = op(q, a->queues[i], id, e);
		if (rc >= 0 || e->code != ERR_NOTFOUND)
			break;
	}
	*qi = i;
	return rc;
}

/* The answer to an operation on a job that failed: 404, 409 or 503/500. */
static void reply_op_error(struct api *a, struct httpd_request *req, const struct err *e,
			   const char *id, const char *what)
{
	if (e->code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else if (e->code == ERR_CONFLICT)
		api_reply_error(a, req, 409, "conflict", "%s", e->msg);
	else
		api_reply_backend(a, req, e, what);
}

/* Records `status` of job `id` in Postgres, if there is one; a failure
 * is logged as `what` (Redis has the state; reconcile copies it). */
static void record_status(struct api *a, const char *id, enum job_status status,
			  const char *what)
{
	struct err e;

	if (a->store && store_set_status(a->store, id, status, NULL, 0, &e) < 0 &&
	    e.code != ERR_NOTFOUND)
		log_warn(what, "job_id", id, "error", e.msg);
}

void api_cancel_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget_req(a, req);
	struct err e;
	size_t i;
	int rc = -1, live = 1;

	if (!q)
		return;
	/* with Postgres, the cancel also goes to the finals log, so it is
	 * recorded even if the row update below fails */
	for (i = 0; a->store && !atomic_load(&a->finals_on) && i < a->nqueues; i++)
		if (queue_finals_enable(q, a->queues[i], NULL) == 0 && i + 1 == a->nqueues)
			atomic_store(&a->finals_on, 1);
	rc = on_served(a, q, id, queue_cancel, &i, &e);
	/* the cancelled webhook is a job of its own: someone must run it */
	if (rc == QUEUE_CANCELLED_DELIVERY)
		live = queue_live_workers(q, a->queues[i], NULL) != 0;
	api_qput(a, q);
	if (rc == QUEUE_CANCELLED_DELIVERY) {
		wake_notify(a->wake, live);
		rc = 0;
	}
	if (rc == 0) {
		record_status(a, id, JOB_CANCELLED, "cannot record the cancel; reconcile will");
		api_reply_json(a, req, 200, json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
		return;
	}
	if (rc == 1) {
		api_reply_json(a, req, 202, json_pack("{s:s,s:s,s:b}", "id", id, "status", "active",
						  "cancel_requested", 1));
		return;
	}
	if (e.code == ERR_NOTFOUND && a->store) {
		struct job_info job;

		/* a row a finished job left stale is settled first: it is not
		 * cancelled over its completion */
		q = api_qget(a, NULL);
		rc = api_store_job(a, q, id, &job, &e);
		if (q)
			api_qput(a, q);
		if (rc == 0) {
			enum job_status st = job.status;

			job_info_release(&job);
			if (job_status_final(st)) {
				api_reply_error(a, req, 409, "conflict", "job '%s' is already %s", id,
					    job_status_name(st));
				return;
			}
			/* lost from Redis: cancelling the record is enough */
			if (store_set_status(a->store, id, JOB_CANCELLED, NULL, 0, &e) == 0) {
				api_reply_json(a, req, 200,
					   json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
				return;
			}
		}
	}
	reply_op_error(a, req, &e, id, "backend");
}

void api_retry_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q;
	struct err e;
	size_t qi;
	int live;

	if (!(q = api_qget_req(a, req)))
		return;
	if (on_served(a, q, id, queue_retry_dead, &qi, &e) < 0) {
		api_qput(a, q);
		if (e.code == ERR_CONFLICT)
			api_reply_error(a, req, 409, "conflict", "job '%s' is not dead: %s", id,
					e.msg);
		else
			reply_op_error(a, req, &e, id, "redis");
		return;
	}
	live = queue_live_workers(q, a->queues[qi], NULL) != 0;
	api_qput(a, q);
	record_status(a, id, JOB_QUEUED, "cannot record the retry");
	/* the wake goes out before the answer (no CPU after it) */
	wake_notify(a->wake, live);
	api_reply_json(a, req, 200, json_pack("{s:s,s:s}", "id", id, "status", "queued"));
}

static int query_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	v = strtoll(s, &end, 10);
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ?label=KEY:VALUE as the labels object a job must include, or NULL. */
static json_t *label_filter(const char *s)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	json_t *o, *v;
	char *key;

	if (!colon)
		return NULL;
	key = xstrndup(s, (size_t)(colon - s));
	v = json_string(colon + 1);
	o = json_object();
	if (v)
		json_object_set_new(o, key, v);
	free(key);
	if (!v || job_labels_check(o, NULL) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ?type=: a job type's name, 1 to 64 of [A-Za-z0-9_.-]. */
static int type_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");

	return n >= 1 && n <= 64 && !s[n];
}

/* ?id=: part of a job id, 1 to 36 of [0-9A-Fa-f-], lowercased into out
 * (UUID_STR_LEN bytes). */
static int id_part_ok(const char *s, char *out)
{
	size_t n = strspn(s, "0123456789abcdefABCDEF-"), i;

	if (n < 1 || n >= UUID_STR_LEN || s[n])
		return 0;
	for (i = 0; i <= n; i++)
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
	return 1;
}

void api_list_jobs(struct api *a, struct httpd_request *req, const char *queue)
{
	const char *state_s = httpd_query(req, "state");
	const char *limit_s = httpd_query(req, "limit");
	const char *offset_s = httpd_query(req, "offset");
	const char *label_s = httpd_query(req, "label");
	const char *type_s = httpd_query(req, "type");
	const char *id_s = httpd_query(req, "id");
	enum job_status st = JOB_QUEUED;
	int64_t limit = 50, offset = 0;
	json_t *arr, *want = NULL, *body;
	struct queue_find f;
	char id_part[UUID_STR_LEN];
	struct queue *q;
	struct err e;
	size_t i;
	int rc;

	if (api_served_index(a, queue) < 0) {
		api_reply_error(a, req, 404, "not_found", "queue '%.64s' is not served here", queue);
		return;
	}
	if (state_s && job_status_parse(state_s, &st, NULL) < 0) {
		api_reply_error(a, req, 400, "invalid_query",
			    "query 'state': expected queued, scheduled, active, retrying, done, failed or cancelled");
		return;
	}
	if (limit_s && query_int(limit_s, 1, LIST_MAX, &limit) < 0) {
		api_reply_error(a, req, 400, "invalid_query", "query 'limit': expected 1 to %d", LIST_MAX);
		return;
	}
	if (offset_s && query_int(offset_s, 0, 1000000000, &offset) < 0) {
		api_reply_error(a, req, 400, "invalid_query", "query 'offset': expected an integer >= 0");
		return;
	}
	if (type_s && !type_ok(type_s)) {
		api_reply_error(a, req, 400, "invalid_query",
			    "query 'type': expected a job type (1 to 64 of [A-Za-z0-9_.-])");
		return;
	}
	if (id_s && !id_part_ok(id_s, id_part)) {
		api_reply_error(a, req, 400, "invalid_query",
			    "query 'id': expected part of a job id (1 to 36 of [0-9a-f-])");
		return;
	}
	if (label_s && !(want = label_filter(label_s))) {
		api_reply_error(a, req, 400, "invalid_query",
			    "query 'label': expected KEY:VALUE (a key of [A-Za-z0-9_./-])");
		return;
	}
	q = api_qget(a, &e);
	if (!q) {
		json_decref(want);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	/* Without a filter one window of `limit` ids; with one, windows until
	 * `limit` jobs match or QUEUE_FIND_SCAN ids were looked at.
	 * next_offset resumes the scan. */
	memset(&f, 0, sizeof(f));
	f.state = st;
	f.type = type_s;
	f.id_part = id_s ? id_part : NULL;
	f.labels = want;
	f.offset = (size_t)offset;
	f.max = (size_t)limit;
	f.jobs = xcalloc(f.max, sizeof(*f.jobs));
	rc = queue_find(q, queue, &f, &e);
	api_qput(a, q);
	json_decref(want);
	if (rc < 0) {
		free(f.jobs);
		api_reply_backend(a, req, &e, "redis");
		return;
	}
	arr = json_array();
	for (i = 0; i < f.njobs; i++) {
		json_array_append_new(arr, job_info_to_json(&f.jobs[i]));
		job_info_release(&f.jobs[i]);
	}
	free(f.jobs);
	body = json_pack("{s:s,s:s,s:o}", "queue", queue, "state", job_status_name(st),
			 "jobs", arr);
	json_object_set_new(body, "next_offset", json_integer((json_int_t)f.next_offset));
	api_reply_json(a, req, 200, body);
}
