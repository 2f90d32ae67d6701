/* api.c - routing and handlers of wakeq-api, the Redis connection pool,
 * the waker's backlog callback and the reconcile timer. */
#include "api/priv.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/uuid.h"
#include "job/job.h"
#include "log/log.h"
#include "log/trace.h"
#include "reconcile/reconcile.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 64
#define LIST_MAX 1000

/* ---- the Redis pool ------------------------------------------------------- */

struct queue *api_qget(struct api *a, struct err *err)
{
	return queue_pool_get(a->pool, err);
}

void api_qput(struct api *a, struct queue *q)
{
	queue_pool_put(a->pool, q);
}

/* ---- helpers -------------------------------------------------------------- */

static char **split_list(const char *s, size_t *n)
{
	char **out = NULL;
	size_t k = 0;
	const char *p = s ? s : "";

	while (*p) {
		size_t len = strcspn(p, ",");
		const char *b = p, *e = p + len;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			out = xrealloc(out, (k + 2) * sizeof(*out));
			out[k++] = xstrndup(b, (size_t)(e - b));
			out[k] = NULL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*n = k;
	return out;
}

static void free_list(char **l)
{
	size_t i;

	for (i = 0; l && l[i]; i++) {
		memset(l[i], 0, strlen(l[i]));
		free(l[i]);
	}
	free(l);
}

static int served_index(struct api *a, const char *queue)
{
	size_t i;

	for (i = 0; i < a->nqueues; i++)
		if (!strcmp(a->queues[i], queue))
			return (int)i;
	return -1;
}

void api_count_status(struct api *a, unsigned status)
{
	int k = status >= 500 ? 3 : status >= 400 ? 2 : status >= 300 ? 1 : 0;

	atomic_fetch_add(&a->m_requests[k], 1);
	if (status == 401)
		atomic_fetch_add(&a->m_requests[4], 1);
	if (status == 503)
		atomic_fetch_add(&a->m_requests[5], 1);
}

int api_reply_error(struct api *a, struct httpd_request *req, unsigned status,
		       const char *code, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_count_status(a, status);
	if (status == 503)
		httpd_add_header(req, "Retry-After", "1");
	if (status == 401)
		httpd_add_header(req, "WWW-Authenticate", "Bearer");
	return httpd_error(req, status, code, "%s", msg);
}

/* Maps a Redis/Postgres failure to 503 or 500. */
static int reply_backend(struct api *a, struct httpd_request *req, const struct err *e,
			 const char *what)
{
	if (e->code == ERR_UNAVAILABLE || e->code == ERR_TIMEOUT)
		return api_reply_error(a, req, 503, "unavailable", "%s is unavailable: %s", what, e->msg);
	log_error("backend error", "backend", what, "error", e->msg);
	return api_reply_error(a, req, 500, "internal", "%s error: %s", what, e->msg);
}

static int reply_json(struct api *a, struct httpd_request *req, unsigned status, json_t *body)
{
	api_count_status(a, status);
	return httpd_respond_json(req, status, body);
}

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

/* The job from Postgres. Returns 0, or -1 with err (ERR_NOTFOUND when no
 * row or no store). */
static int store_job(struct api *a, const char *id, struct job_info *out, struct err *err)
{
	if (!a->store)
		return err_set(err, ERR_NOTFOUND, "no job '%s'", id);
	return store_get(a->store, id, out, err);
}

/* ---- POST /v1/jobs ---------------------------------------------------------- */

static json_t *accepted_body(const char *id, const char *status)
{
	char url[64];

	snprintf(url, sizeof(url), "/v1/jobs/%s", id);
	return json_pack("{s:s,s:s,s:s}", "id", id, "status", status, "status_url", url);
}

/* Answers 200 for an idempotent repeat, with the existing job's status. */
static int reply_existing(struct api *a, struct httpd_request *req, struct queue *q,
			  const char *id)
{
	enum job_status status = JOB_QUEUED;
	struct job_info job;
	json_t *body;
	size_t qi;

	atomic_fetch_add(&a->m_duplicates, 1);
	if ((q && api_find_job(a, q, id, &qi, &job, NULL) == 0) ||
	    store_job(a, id, &job, NULL) == 0) {
		status = job.status;
		job_info_release(&job);
	}
	body = accepted_body(id, job_status_name(status));
	json_object_set_new(body, "duplicate", json_true());
	return reply_json(a, req, 200, body);
}

/* ---- POST /v1/jobs: group commit ----------------------------------------------
 *
 * A pool thread checks the request (415, 400 answered at once, nothing
 * touched), then defers its answer and queues it here. An intake thread
 * takes whatever has gathered (while it was busy with the previous batch)
 * and sends it as one Postgres INSERT and one enqueue script per queue,
 * then answers each request with its own outcome. One bad job never
 * fails its batch-mates: a batch INSERT refused for bad input is redone
 * row by row, and each request gets its own answer. A failed Redis
 * enqueue takes back the rows it had inserted, so a refused request
 * still changes nothing.
 */

enum intake_state {
	IN_NEW,       /* checked, not yet written anywhere */
	IN_INSERTED,  /* its Postgres row is written */
	IN_EXISTING,  /* Postgres knew its idempotency key: `existing` */
	IN_FAILED,    /* answered with an error (`err`) */
	IN_DONE       /* answered */
};

struct api_intake {
	struct api_intake *next;
	struct httpd_request *req;    /* gone once answered */
	struct job_spec spec;         /* resolved: id, queue, run_at set */
	char *idem;                   /* the key from the header (heap) */
	char existing[UUID_STR_LEN];
	char trace[LOG_TRACE_ID_LEN];
	int scheduled;
	int64_t t0;
	enum intake_state state;
	struct err err;
};

static void intake_free(struct api_intake *it)
{
	job_spec_release(&it->spec);
	free(it->idem);
	free(it);
}

/* Records a failure to answer with later (the batch goes on). */
static void intake_fail(struct api_intake *it, const struct err *e)
{
	it->state = IN_FAILED;
	it->err = *e;
}

/* The answer of a failed request: 400 for its own bad input, else 503
 * (or 500) naming the backend. */
static void intake_reply_failed(struct api *a, struct api_intake *it, const char *what)
{
	if (it->err.code == ERR_INVALID && !strcmp(what, "postgres"))
		api_reply_error(a, it->req, 400, "invalid_field", "%s", it->err.msg);
	else
		reply_backend(a, it->req, &it->err, what);
	it->state = IN_DONE;
}

static void reply_accepted(struct api *a, struct api_intake *it)
{
	char body[160];
	int len;

	len = snprintf(body, sizeof(body),
		       "{\"id\":\"%s\",\"status\":\"%s\",\"status_url\":\"/v1/jobs/%s\"}",
		       it->spec.id, it->scheduled ? "scheduled" : "queued", it->spec.id);
	api_count_status(a, 202);
	httpd_respond(it->req, 202, "application/json", body, (size_t)len);
	it->state = IN_DONE;
}

/* Postgres first: the rows of every request of the batch in one INSERT. */
static void intake_store(struct api *a, struct api_intake **its, size_t n)
{
	struct job_spec *sn = xmalloc(n * sizeof(*sn));
	char (*existing)[UUID_STR_LEN] = xmalloc(n * sizeof(*existing));
	struct err *errs = xmalloc(n * sizeof(*errs));
	int *rc = xmalloc(n * sizeof(*rc));
	struct err e;
	size_t i;

	for (i = 0; i < n; i++)
		sn[i] = its[i]->spec;
	if (store_insert_many(a->store, sn, n, rc, existing, errs, &e) < 0) {
		if (e.code != ERR_INVALID) {
			for (i = 0; i < n; i++)
				intake_fail(its[i], &e);
			goto out;
		}
		/* some row is bad: find it (nothing was inserted) */
		for (i = 0; i < n; i++) {
			rc[i] = store_insert(a->store, &sn[i], existing[i], &errs[i]);
		}
	}
	for (i = 0; i < n; i++) {
		if (rc[i] < 0) {
			intake_fail(its[i], &errs[i]);
		} else if (rc[i] == 1) {
			its[i]->state = IN_EXISTING;
			memcpy(its[i]->existing, existing[i], UUID_STR_LEN);
		} else {
			its[i]->state = IN_INSERTED;
		}
	}
out:
	free(sn);
	free(existing);
	free(errs);
	free(rc);
}

/* Takes back the rows of requests whose enqueue failed. */
static void intake_undo(struct api *a, struct api_intake **its, size_t n)
{
	const char **ids = xmalloc(n * sizeof(*ids));
	size_t i;
	struct err e;

	for (i = 0; i < n; i++)
		ids[i] = its[i]->spec.id;
	if (store_delete_many(a->store, ids, n, &e) < 0)
		for (i = 0; i < n; i++)
			log_warn("cannot undo the job row; reconcile will enqueue it",
				 "job_id", ids[i], "error", e.msg);
	free(ids);
}

/* Redis: one enqueue script for the requests of `queue` in the batch
 * (`its` are all IN_NEW or IN_INSERTED). Answers each one. */
static void intake_enqueue(struct api *a, struct queue *q, const char *queue,
			   struct api_intake **its, size_t n, const struct err *qerr)
{
	struct job_spec *specs = xcalloc(n, sizeof(*specs));
	struct queue_enqueued *out = xmalloc(n * sizeof(*out));
	struct api_intake **undo = xmalloc(n * sizeof(*undo));
	size_t i, nundo = 0;
	struct err e;
	int live = 1;

	if (!q) {
		e = *qerr;
		goto failed;
	}
	for (i = 0; i < n; i++)
		specs[i] = its[i]->spec;
	if (queue_enqueue(q, queue, specs, n, out, &live, &e) < 0) {
		if (e.code == ERR_INVALID && n > 1) {
			/* one job Redis refuses must not fail its batch-mates:
			 * nothing was enqueued, so send them one by one */
			for (i = 0; i < n; i++)
				intake_enqueue(a, q, queue, &its[i], 1, qerr);
			goto out;
		}
		goto failed;
	}
	for (i = 0; i < n; i++) {
		struct api_intake *it = its[i];

		if (!out[i].created) {
			/* Redis knew the key (no Postgres, or a row that
			 * Postgres lost): drop our row, answer the job */
			if (it->state == IN_INSERTED)
				undo[nundo++] = it;
			it->state = IN_EXISTING;
			memcpy(it->existing, out[i].id, UUID_STR_LEN);
			continue;
		}
		atomic_fetch_add(&a->m_enqueued, 1);
		metrics_hist_observe(&a->m_enqueue_latency,
				     (double)(clock_mono_us() - it->t0) / 1e6);
		if (it->scheduled) {
			wake_at(a->wake, it->spec.run_at_us);
			if (live)
				wake_notify(a->wake, 1);
		} else {
			wake_notify(a->wake, live);
		}
		reply_accepted(a, it);
	}
	goto out;
failed:
	/* nothing enqueued: take back the rows, answer 503 */
	for (i = 0; i < n; i++) {
		if (its[i]->state == IN_INSERTED)
			undo[nundo++] = its[i];
		intake_fail(its[i], &e);
	}
out:
	if (nundo)
		intake_undo(a, undo, nundo);
	free(specs);
	free(out);
	free(undo);
}

/* Runs one batch (1..intake_max requests) and answers every request. */
static void intake_run(struct api *a, struct api_intake **its, size_t n)
{
	struct api_intake **grp = xmalloc(n * sizeof(*grp));
	struct queue *q = NULL;
	struct err qerr;
	size_t i, j, qi, ng;

	atomic_fetch_add(&a->m_batches, 1);
	if (a->store)
		intake_store(a, its, n);
	for (i = 0; i < n; i++)
		if (its[i]->state == IN_FAILED)
			intake_reply_failed(a, its[i], "postgres");
	err_clear(&qerr);
	q = api_qget(a, &qerr);
	for (qi = 0; qi < a->nqueues; qi++) {
		ng = 0;
		for (i = 0; i < n; i++)
			if ((its[i]->state == IN_NEW || its[i]->state == IN_INSERTED) &&
			    !strcmp(its[i]->spec.queue, a->queues[qi]))
				grp[ng++] = its[i];
		if (ng)
			intake_enqueue(a, q, a->queues[qi], grp, ng, &qerr);
	}
	for (i = 0; i < n; i++) {
		struct api_intake *it = its[i];

		if (it->state == IN_FAILED) {
			intake_reply_failed(a, it, "redis");
		} else if (it->state == IN_EXISTING) {
			/* a key taken by a batch-mate whose enqueue failed:
			 * that job does not exist, share its answer */
			for (j = 0; j < n; j++)
				if (j != i && !strcmp(its[j]->spec.id, it->existing))
					break;
			if (j < n && (its[j]->state == IN_FAILED ||
				      (its[j]->state == IN_DONE && its[j]->err.code))) {
				it->err = its[j]->err;
				intake_reply_failed(a, it, "redis");
			} else if (j < n && its[j]->existing[0] &&
				   strcmp(its[j]->existing, its[j]->spec.id)) {
				/* the batch-mate turned out to be a job Redis
				 * already had: answer that one */
				reply_existing(a, it->req, q, its[j]->existing);
				it->state = IN_DONE;
			} else {
				reply_existing(a, it->req, q, it->existing);
				it->state = IN_DONE;
			}
		}
	}
	api_qput(a, q);
	for (i = 0; i < n; i++)
		intake_free(its[i]);
	free(grp);
}

static void *intake_main(void *arg)
{
	struct api *a = arg;
	size_t max = a->cfg.intake_max > 0 ? (size_t)a->cfg.intake_max : 256;
	struct api_intake **its = xmalloc(max * sizeof(*its));

	if (max > QUEUE_MAX_BATCH)
		max = QUEUE_MAX_BATCH;
	pthread_mutex_lock(&a->in_lock);
	for (;;) {
		size_t n = 0;

		while (!a->in_head && !a->in_stop)
			pthread_cond_wait(&a->in_cond, &a->in_lock);
		if (!a->in_head)
			break; /* stopping, and every request answered */
		while (a->in_head && n < max) {
			its[n++] = a->in_head;
			a->in_head = a->in_head->next;
		}
		if (!a->in_head)
			a->in_tail = NULL;
		pthread_mutex_unlock(&a->in_lock);
		intake_run(a, its, n);
		pthread_mutex_lock(&a->in_lock);
	}
	pthread_mutex_unlock(&a->in_lock);
	free(its);
	return NULL;
}

static void intake_stop(struct api *a)
{
	int i;

	pthread_mutex_lock(&a->in_lock);
	a->in_stop = 1;
	pthread_cond_broadcast(&a->in_cond);
	pthread_mutex_unlock(&a->in_lock);
	for (i = 0; i < a->in_nthreads; i++)
		pthread_join(a->in_threads[i], NULL);
	a->in_nthreads = 0;
}

static void post_job(struct api *a, struct httpd_request *req)
{
	const char *ct = httpd_header(req, "Content-Type");
	const char *body, *code = "invalid_field", *hkey;
	struct api_intake *it;
	int64_t now_us;
	struct err e;
	size_t len;

	if (!ct || strncasecmp(ct, "application/json", 16) ||
	    (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
		api_reply_error(a, req, 415, "unsupported_media_type",
			    "content type must be application/json");
		return;
	}
	it = xcalloc(1, sizeof(*it));
	it->t0 = clock_mono_us();
	it->req = req;
	body = httpd_body(req, &len);
	if (job_spec_parse(body, len, &it->spec, &code, &e) < 0) {
		api_reply_error(a, req, 400, code, "%s", e.msg);
		goto refused;
	}
	hkey = httpd_header(req, "Idempotency-Key");
	if (hkey && !it->spec.idempotency_key) {
		if (!job_idem_key_ok(hkey)) {
			api_reply_error(a, req, 400, "invalid_field",
				    "header 'Idempotency-Key': expected 1 to %d printable ASCII characters",
				    JOB_IDEM_MAX);
			goto refused;
		}
		/* headers go with the request once it is answered */
		it->idem = xstrdup(hkey);
		it->spec.idempotency_key = it->idem;
	}
	if (it->spec.queue && served_index(a, it->spec.queue) < 0) {
		api_reply_error(a, req, 400, "invalid_field",
			    "field 'queue': '%s' is not served here (QUEUES=%s)", it->spec.queue,
			    a->cfg.queues ? a->cfg.queues : "default");
		goto refused;
	}
	now_us = clock_now_us();
	job_spec_resolve(&it->spec, &a->defaults, now_us);
	it->scheduled = job_spec_status(&it->spec, now_us) == JOB_SCHEDULED;
	/* the trace travels with the job into the worker's log lines */
	if (log_trace_parse(httpd_header(req, "X-Cloud-Trace-Context"),
			    httpd_header(req, "traceparent"), it->trace) == 0)
		it->spec.trace = it->trace;
	it->state = IN_NEW;
	if (httpd_defer(req) == 0) {
		pthread_mutex_lock(&a->in_lock);
		if (a->in_nthreads > 0 && !a->in_stop) {
			if (a->in_tail)
				a->in_tail->next = it;
			else
				a->in_head = it;
			a->in_tail = it;
			pthread_cond_signal(&a->in_cond);
			pthread_mutex_unlock(&a->in_lock);
			return;
		}
		pthread_mutex_unlock(&a->in_lock);
	}
	/* no intake thread (stopping): a batch of one, on this thread */
	intake_run(a, &it, 1);
	return;
refused:
	intake_free(it);
}

/* ---- job reads and operations ----------------------------------------------- */

static void get_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct job_info job;
	struct err e;
	size_t qi;
	int rc = -1;

	err_set(&e, ERR_UNAVAILABLE, "redis is unavailable");
	if (q) {
		rc = api_find_job(a, q, id, &qi, &job, &e);
		api_qput(a, q);
	}
	if (rc < 0 && a->store && (e.code == ERR_NOTFOUND || e.code == ERR_UNAVAILABLE)) {
		struct err e2;

		rc = store_job(a, id, &job, &e2);
		if (rc < 0 && e.code == ERR_NOTFOUND)
			e = e2;
	}
	if (rc == 0) {
		reply_json(a, req, 200, job_info_to_json(&job));
		job_info_release(&job);
		return;
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else
		reply_backend(a, req, &e, e.code == ERR_UNAVAILABLE && !q ? "redis" : "backend");
}

static void job_events(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct job_info job;
	struct err e;
	size_t qi = 0;
	int rc;

	if (!q) {
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	rc = api_find_job(a, q, id, &qi, &job, &e);
	api_qput(a, q);
	if (rc == 0) {
		job_info_release(&job);
		api_count_status(a, 200);
		api_hub_serve(a->hub, req, a->queues[qi], id);
		return;
	}
	if (e.code == ERR_NOTFOUND && a->store) {
		/* gone from Redis: its record is final (or about to be requeued) */
		struct buf b = BUF_INIT;
		json_t *doc;
		char *text;

		if (store_job(a, id, &job, &e) == 0) {
			doc = job_info_to_json(&job);
			job_info_release(&job);
			text = json_dumps(doc, JSON_COMPACT);
			buf_printf(&b, "event: end\ndata: %s\n\n", text ? text : "{}");
			free(text);
			json_decref(doc);
			api_count_status(a, 200);
			httpd_respond(req, 200, "text/event-stream", b.data, b.len);
			buf_release(&b);
			return;
		}
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else
		reply_backend(a, req, &e, "backend");
}

static void cancel_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct err e;
	size_t i;
	int rc = -1, live = 1;

	if (!q) {
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	/* with Postgres, the cancel also goes to the finals log, so it is
	 * recorded even if the row update below fails */
	for (i = 0; a->store && !atomic_load(&a->finals_on) && i < a->nqueues; i++)
		if (queue_finals_enable(q, a->queues[i], NULL) == 0 && i + 1 == a->nqueues)
			atomic_store(&a->finals_on, 1);
	err_set(&e, ERR_NOTFOUND, "no job '%s'", id);
	for (i = 0; i < a->nqueues; i++) {
		rc = queue_cancel(q, a->queues[i], id, &e);
		if (rc >= 0 || e.code != ERR_NOTFOUND)
			break;
	}
	/* the cancelled webhook is a job of its own: someone must run it */
	if (rc == QUEUE_CANCELLED_DELIVERY)
		live = queue_live_workers(q, a->queues[i], NULL) != 0;
	api_qput(a, q);
	if (rc == QUEUE_CANCELLED_DELIVERY) {
		wake_notify(a->wake, live);
		rc = 0;
	}
	if (rc == 0) {
		if (a->store) {
			struct err e2;

			if (store_set_status(a->store, id, JOB_CANCELLED, NULL, 0, &e2) < 0 &&
			    e2.code != ERR_NOTFOUND)
				log_warn("cannot record the cancel; reconcile will", "job_id", id,
					 "error", e2.msg);
		}
		reply_json(a, req, 200, json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
		return;
	}
	if (rc == 1) {
		reply_json(a, req, 202, json_pack("{s:s,s:s,s:b}", "id", id, "status", "active",
						  "cancel_requested", 1));
		return;
	}
	if (e.code == ERR_NOTFOUND && a->store) {
		struct job_info job;

		if (store_job(a, id, &job, &e) == 0) {
			enum job_status st = job.status;

			job_info_release(&job);
			if (job_status_final(st)) {
				api_reply_error(a, req, 409, "conflict", "job '%s' is already %s", id,
					    job_status_name(st));
				return;
			}
			/* lost from Redis: cancelling the record is enough */
			if (store_set_status(a->store, id, JOB_CANCELLED, NULL, 0, &e) == 0) {
				reply_json(a, req, 200,
					   json_pack("{s:s,s:s}", "id", id, "status", "cancelled"));
				return;
			}
		}
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else if (e.code == ERR_CONFLICT)
		api_reply_error(a, req, 409, "conflict", "%s", e.msg);
	else
		reply_backend(a, req, &e, "backend");
}

static void retry_job(struct api *a, struct httpd_request *req, const char *id)
{
	struct queue *q = api_qget(a, NULL);
	struct err e;
	size_t i;
	int rc = -1, live = 1;

	if (!q) {
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	err_set(&e, ERR_NOTFOUND, "no job '%s'", id);
	for (i = 0; i < a->nqueues; i++) {
		rc = queue_retry_dead(q, a->queues[i], id, &e);
		if (rc >= 0 || e.code != ERR_NOTFOUND)
			break;
	}
	if (rc == 0) {
		live = queue_live_workers(q, a->queues[i], NULL) != 0;
	}
	api_qput(a, q);
	if (rc == 0) {
		if (a->store) {
			struct err e2;

			if (store_set_status(a->store, id, JOB_QUEUED, NULL, 0, &e2) < 0 &&
			    e2.code != ERR_NOTFOUND)
				log_warn("cannot record the retry", "job_id", id, "error", e2.msg);
		}
		reply_json(a, req, 200, json_pack("{s:s,s:s}", "id", id, "status", "queued"));
		wake_notify(a->wake, live);
		return;
	}
	if (e.code == ERR_NOTFOUND)
		api_reply_error(a, req, 404, "not_found", "no job '%s'", id);
	else if (e.code == ERR_CONFLICT)
		api_reply_error(a, req, 409, "conflict", "job '%s' is not dead: %s", id, e.msg);
	else
		reply_backend(a, req, &e, "redis");
}

static json_t *counts_json(const struct queue_counts *c)
{
	json_t *o = json_object();
	int s;

	for (s = 0; s < JOB_NSTATUS; s++)
		json_object_set_new(o, job_status_name((enum job_status)s), json_integer(c->n[s]));
	json_object_set_new(o, "workers", json_integer(c->workers));
	return o;
}

static void get_queues(struct api *a, struct httpd_request *req)
{
	struct queue *q = api_qget(a, NULL);
	json_t *all = json_object();
	struct err e;
	size_t i;

	if (!q) {
		json_decref(all);
		api_reply_error(a, req, 503, "unavailable", "redis is unavailable");
		return;
	}
	for (i = 0; i < a->nqueues; i++) {
		struct queue_counts c;

		if (queue_counts(q, a->queues[i], &c, &e) < 0) {
			api_qput(a, q);
			json_decref(all);
			reply_backend(a, req, &e, "redis");
			return;
		}
		json_object_set_new(all, a->queues[i], counts_json(&c));
	}
	api_qput(a, q);
	reply_json(a, req, 200, json_pack("{s:o}", "queues", all));
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

#define LIST_SCAN_MAX 10000 /* ids looked at for one filtered page */

static void list_jobs(struct api *a, struct httpd_request *req, const char *queue)
{
	const char *state_s = httpd_query(req, "state");
	const char *limit_s = httpd_query(req, "limit");
	const char *offset_s = httpd_query(req, "offset");
	const char *label_s = httpd_query(req, "label");
	enum job_status st = JOB_QUEUED;
	int64_t limit = 50, offset = 0, scanned = 0;
	json_t *arr, *want = NULL, *body;
	struct queue *q;
	struct err e;
	int n, i, more = 1;

	if (served_index(a, queue) < 0) {
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
	if (label_s && !(want = label_filter(label_s))) {
		api_reply_error(a, req, 400, "invalid_query",
			    "query 'label': expected KEY:VALUE (a key of [A-Za-z0-9_./-])");
		return;
	}
	q = api_qget(a, &e);
	if (!q) {
		json_decref(want);
		reply_backend(a, req, &e, "redis");
		return;
	}
	/* Without a filter one window of `limit` ids; with one, windows until
	 * `limit` jobs match or LIST_SCAN_MAX ids were looked at.
	 * next_offset resumes the scan. */
	arr = json_array();
	while (more && (int64_t)json_array_size(arr) < limit) {
		size_t win = want ? LIST_MAX : (size_t)limit;
		char **ids = NULL;

		n = queue_list(q, queue, st, (size_t)(offset + scanned), win, &ids, &e);
		if (n < 0) {
			api_qput(a, q);
			json_decref(arr);
			json_decref(want);
			reply_backend(a, req, &e, "redis");
			return;
		}
		more = want && (size_t)n == win;
		for (i = 0; i < n; i++) {
			struct job_info job;

			if ((int64_t)json_array_size(arr) < limit) {
				scanned++;
				if (queue_job_get(q, queue, ids[i], &job, NULL) == 0) {
					if (job_info_has_labels(&job, want))
						json_array_append_new(arr, job_info_to_json(&job));
					job_info_release(&job);
				}
			}
			free(ids[i]);
		}
		free(ids);
		if (scanned >= LIST_SCAN_MAX)
			more = 0;
	}
	api_qput(a, q);
	json_decref(want);
	body = json_pack("{s:s,s:s,s:o}", "queue", queue, "state", job_status_name(st),
			 "jobs", arr);
	json_object_set_new(body, "next_offset", json_integer(offset + scanned));
	reply_json(a, req, 200, body);
}

static json_t *reconcile_json(const struct reconcile_stats *st)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "scanned", (json_int_t)st->scanned,
			 "requeued", (json_int_t)st->requeued, "finals", (json_int_t)st->finals,
			 "errors", (json_int_t)st->errors);
}

static int run_reconcile(struct api *a, struct reconcile_stats *st, struct err *err)
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

static void post_reconcile(struct api *a, struct httpd_request *req)
{
	struct reconcile_stats st;
	struct err e;

	if (!a->store) {
		api_reply_error(a, req, 409, "conflict",
			    "reconcile needs DATABASE_URL: without Postgres, Redis holds all state");
		return;
	}
	if (run_reconcile(a, &st, &e) < 0) {
		reply_backend(a, req, &e, "backend");
		return;
	}
	reply_json(a, req, 200, reconcile_json(&st));
}

/* ---- health and metrics ----------------------------------------------------- */

static void readyz(struct api *a, struct httpd_request *req)
{
	struct queue *q = api_qget(a, NULL);
	struct err e;
	int redis_ok = 0, pg_ok = 1;
	json_t *body;

	if (q) {
		redis_ok = queue_ping(q, &e) == 0;
		api_qput(a, q);
	}
	if (a->store)
		pg_ok = store_ping(a->store, &e) == 0;
	body = json_pack("{s:s,s:s}", "redis", redis_ok ? "ok" : "down", "postgres",
			 a->store ? (pg_ok ? "ok" : "down") : "off");
	if (redis_ok && pg_ok) {
		reply_json(a, req, 200, body);
	} else {
		api_count_status(a, 503);
		httpd_add_header(req, "Retry-After", "1");
		json_object_set_new(body, "error",
				    json_pack("{s:s,s:s}", "code", "unavailable", "message",
					      !redis_ok ? "redis is unavailable" : "postgres is unavailable"));
		httpd_respond_json(req, 503, body);
	}
}

static void metrics(struct api *a, struct httpd_request *req)
{
	static const char *const classes[] = { "2xx", "3xx", "4xx", "5xx" };
	struct buf b = BUF_INIT;
	struct wake_stats ws;
	char lab[32];
	int i;

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

/* ---- routing ----------------------------------------------------------------- */

static void method_not_allowed(struct api *a, struct httpd_request *req, const char *allow)
{
	httpd_add_header(req, "Allow", allow);
	api_reply_error(a, req, 405, "method_not_allowed", "method %s not allowed here (allowed: %s)",
		    httpd_method(req), allow);
}

static int is(const struct httpd_request *req, const char *m)
{
	return !strcmp(httpd_method(req), m);
}

static void handle(struct httpd_request *req, void *ctx)
{
	struct api *a = ctx;
	const char *path = httpd_path(req), *rest;
	char id[UUID_STR_LEN];
	size_t n;

	if (!strcmp(path, "/healthz")) {
		if (!is(req, "GET") && !is(req, "HEAD"))
			method_not_allowed(a, req, "GET");
		else
			reply_json(a, req, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (!strcmp(path, "/readyz")) {
		if (!is(req, "GET") && !is(req, "HEAD"))
			method_not_allowed(a, req, "GET");
		else
			readyz(a, req);
		return;
	}
	if (!strcmp(path, "/metrics")) {
		if (!is(req, "GET"))
			method_not_allowed(a, req, "GET");
		else
			metrics(a, req);
		return;
	}
	if (strncmp(path, "/v1/", 4)) {
		api_reply_error(a, req, 404, "not_found", "no route '%.100s'", path);
		return;
	}
	if (a->tokens && !httpd_bearer_ok(req, (const char *const *)a->tokens)) {
		api_reply_error(a, req, 401, "unauthorized",
			    httpd_header(req, "Authorization") ? "bad bearer token"
							       : "missing bearer token");
		return;
	}
	if (!strcmp(path, "/v1/jobs")) {
		if (!is(req, "POST"))
			method_not_allowed(a, req, "POST");
		else
			post_job(a, req);
		return;
	}
	if (!strcmp(path, "/v1/uploads")) {
		api_upload_post(a, req);
		return;
	}
	if (!strcmp(path, "/v1/queues")) {
		if (!is(req, "GET"))
			method_not_allowed(a, req, "GET");
		else
			get_queues(a, req);
		return;
	}
	if (!strcmp(path, "/v1/reconcile")) {
		if (!is(req, "POST"))
			method_not_allowed(a, req, "POST");
		else
			post_reconcile(a, req);
		return;
	}
	if (!strncmp(path, "/v1/queues/", 11)) {
		char qn[QUEUE_NAME_MAX + 1];

		rest = path + 11;
		n = strcspn(rest, "/");
		if (strcmp(rest + n, "/jobs") || n == 0 || n > QUEUE_NAME_MAX) {
			api_reply_error(a, req, 404, "not_found", "no route '%.100s'", path);
			return;
		}
		if (!is(req, "GET")) {
			method_not_allowed(a, req, "GET");
			return;
		}
		memcpy(qn, rest, n);
		qn[n] = '\0';
		list_jobs(a, req, qn);
		return;
	}
	if (!strncmp(path, "/v1/jobs/", 9)) {
		rest = path + 9;
		n = strcspn(rest, "/");
		if (n >= UUID_STR_LEN || n == 0) {
			api_reply_error(a, req, 400, "invalid_id", "job id must be a UUID");
			return;
		}
		memcpy(id, rest, n);
		id[n] = '\0';
		rest += n;
		if (!uuid_valid(id)) {
			api_reply_error(a, req, 400, "invalid_id", "job id must be a UUID");
			return;
		}
		for (n = 0; id[n]; n++)
			if (id[n] >= 'A' && id[n] <= 'F')
				id[n] = (char)(id[n] - 'A' + 'a');
		if (!*rest) {
			if (is(req, "GET") || is(req, "HEAD"))
				get_job(a, req, id);
			else if (is(req, "DELETE"))
				cancel_job(a, req, id);
			else
				method_not_allowed(a, req, "GET, DELETE");
			return;
		}
		if (!strcmp(rest, "/events")) {
			if (!is(req, "GET"))
				method_not_allowed(a, req, "GET");
			else
				job_events(a, req, id);
			return;
		}
		if (!strcmp(rest, "/retry")) {
			if (!is(req, "POST"))
				method_not_allowed(a, req, "POST");
			else
				retry_job(a, req, id);
			return;
		}
	}
	api_reply_error(a, req, 404, "not_found", "no route '%.100s'", path);
}

/* ---- waker backlog and reconcile timer ---------------------------------------- */

static int backlog_cb(void *ctx, struct wake_backlog *out)
{
	struct api *a = ctx;
	struct err e;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!a->wake_q) {
		a->wake_q = queue_connect(&a->qopts, &e);
		if (!a->wake_q)
			return -1;
	}
	for (i = 0; i < a->nqueues; i++) {
		struct queue_counts c;

		if (queue_counts(a->wake_q, a->queues[i], &c, &e) < 0)
			return -1;
		out->pending += c.n[JOB_QUEUED];
		out->waiting += c.n[JOB_SCHEDULED] + c.n[JOB_RETRYING];
		if (c.workers > out->workers)
			out->workers = c.workers;
		if (c.next_due_ms && (!out->next_due_us || c.next_due_ms * 1000 < out->next_due_us))
			out->next_due_us = c.next_due_ms * 1000;
	}
	return 0;
}

static void *reconcile_main(void *arg)
{
	struct api *a = arg;

	pthread_mutex_lock(&a->rec_lock);
	while (!a->rec_stop) {
		clock_cond_wait_us(&a->rec_cond, &a->rec_lock,
				   (int64_t)(a->cfg.reconcile_interval_s * 1e6));
		if (a->rec_stop)
			break;
		pthread_mutex_unlock(&a->rec_lock);
		{
			struct reconcile_stats st;
			struct err e;

			if (run_reconcile(a, &st, &e) < 0) {
				log_warn("reconcile failed", "error", e.msg);
			} else if (st.requeued || st.finals) {
				char rq[24], fn[24];

				snprintf(rq, sizeof(rq), "%lld", (long long)st.requeued);
				snprintf(fn, sizeof(fn), "%lld", (long long)st.finals);
				log_info("reconciled", "requeued", rq, "finals", fn);
			}
		}
		pthread_mutex_lock(&a->rec_lock);
	}
	pthread_mutex_unlock(&a->rec_lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

struct api *api_start(const struct api_config *cfg, struct err *err)
{
	struct api *a = xcalloc(1, sizeof(*a));
	struct httpd_opts ho;
	size_t i, ntok = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	a->cfg = *cfg;
	pthread_mutex_init(&a->in_lock, NULL);
	pthread_cond_init(&a->in_cond, NULL);
	pthread_mutex_init(&a->rec_lock, NULL);
	clock_cond_init(&a->rec_cond);
	a->queues = split_list(cfg->queues && *cfg->queues ? cfg->queues : "default", &a->nqueues);
	a->defaults.queue = a->queues[0];
	a->defaults.max_attempts = cfg->max_attempts;
	if (a->nqueues == 0) {
		err_set(err, ERR_INVALID, "bad QUEUES '%s': no queue named", cfg->queues);
		goto fail;
	}
	for (i = 0; i < a->nqueues; i++)
		if (queue_name_check(a->queues[i], err) < 0) {
			err_wrap(err, "bad QUEUES");
			goto fail;
		}
	a->tokens = split_list(cfg->api_tokens, &ntok);
	if (ntok == 0) {
		free_list(a->tokens);
		a->tokens = NULL;
		if (!cfg->no_auth) {
			err_set(err, ERR_INVALID,
				"API_TOKEN is not set: set it (comma-separated for rotation) or pass --no-auth explicitly");
			goto fail;
		}
	} else if (cfg->no_auth) {
		free_list(a->tokens);
		a->tokens = NULL;
	}
	if (queue_opts_init(&a->qopts, cfg->redis_url, err) < 0) {
		err_wrap(err, "bad REDIS_URL");
		goto fail;
	}
	a->qopts.connect_timeout_s = 1;
	a->qopts.command_timeout_s = 5;
	a->pool = queue_pool_new(&a->qopts, POOL_MAX);
	if (cfg->database_url && *cfg->database_url) {
		int threads = cfg->threads > 0 ? cfg->threads : (int)(ncpu > 0 ? ncpu : 1) * 2;

		a->store = store_open(cfg->database_url,
				      cfg->store_conns > 0 ? cfg->store_conns : threads, err);
		if (!a->store) {
			err_wrap(err, "bad DATABASE_URL");
			goto fail;
		}
		if (cfg->migrate) {
			int n = store_migrate(a->store, err);

			if (n < 0) {
				err_wrap(err, "cannot migrate the database");
				goto fail;
			}
		}
	}
	if (cfg->wake_url && *cfg->wake_url) {
		struct wake_opts wo;

		memset(&wo, 0, sizeof(wo));
		wo.url = cfg->wake_url;
		wo.auth = cfg->wake_auth;
		if (wo.auth == WAKE_AUTH_TOKEN) {
			wo.token = cfg->wake_token;
			if (!wo.token || !*wo.token)
				wo.auth = WAKE_AUTH_NONE; /* the default, no token set */
		}
		wo.audience = cfg->wake_audience;
		wo.hold_s = cfg->wake_hold_s;
		wo.fanout_max = cfg->wake_fanout_max;
		wo.slot_concurrency = cfg->worker_concurrency;
		wo.backlog_per_slot = cfg->wake_backlog;
		wo.backlog = backlog_cb;
		wo.backlog_ctx = a;
		a->wake = wake_new(&wo, err);
		if (!a->wake)
			goto fail;
	}
	a->hub = api_hub_new(a, err);
	if (!a->hub)
		goto fail;
	memset(&ho, 0, sizeof(ho));
	ho.host = cfg->host;
	ho.port = cfg->port;
	ho.threads = cfg->threads > 0 ? cfg->threads : (int)(ncpu > 0 ? ncpu : 1) * 2;
	ho.max_connections = cfg->max_connections;
	ho.timeout_s = cfg->conn_timeout_s ? cfg->conn_timeout_s : 30;
	ho.per_ip_connections = cfg->per_ip_connections;
	ho.reserve = cfg->conn_reserve;
	ho.header_timeout_s = cfg->header_timeout_s;
	ho.body_timeout_s = cfg->body_timeout_s;
	ho.max_body = cfg->max_body;
	ho.allow_push = 1;
	ho.sink_for = api_upload_sink;
	{
		int k, n = cfg->intake_threads > 0 ? cfg->intake_threads : 1;

		if (n > API_INTAKE_THREADS_MAX)
			n = API_INTAKE_THREADS_MAX;
		for (k = 0; k < n; k++) {
			if (pthread_create(&a->in_threads[k], NULL, intake_main, a) != 0)
				break;
			a->in_nthreads++;
		}
	}
	a->http = httpd_start(&ho, handle, a, err);
	if (!a->http)
		goto fail;
	if (cfg->reconcile_interval_s > 0 && a->store) {
		if (pthread_create(&a->rec_thread, NULL, reconcile_main, a) == 0)
			a->rec_running = 1;
	}
	return a;
fail:
	api_stop(a);
	return NULL;
}

int api_port(const struct api *a)
{
	return httpd_port(a->http);
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	if (a->rec_running) {
		pthread_mutex_lock(&a->rec_lock);
		a->rec_stop = 1;
		pthread_cond_signal(&a->rec_cond);
		pthread_mutex_unlock(&a->rec_lock);
		pthread_join(a->rec_thread, NULL);
	}
	/* every deferred POST is answered before the server stops */
	intake_stop(a);
	httpd_stop(a->http);
	api_hub_free(a->hub);
	wake_free(a->wake);
	queue_free(a->wake_q);
	store_free(a->store);
	queue_pool_free(a->pool);
	queue_opts_release(&a->qopts);
	free_list(a->queues);
	free_list(a->tokens);
	pthread_cond_destroy(&a->rec_cond);
	pthread_mutex_destroy(&a->rec_lock);
	pthread_cond_destroy(&a->in_cond);
	pthread_mutex_destroy(&a->in_lock);
	free(a);
}
