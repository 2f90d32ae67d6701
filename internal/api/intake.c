/* intake.c - POST /v1/jobs, group-committed.
 *
 * A pool thread checks the request (415, 400 answered at once, nothing
 * touched), then defers its answer and queues it here. An intake thread
 * takes whatever has gathered (while it was busy with the previous batch)
 * and sends it as one Postgres INSERT and one enqueue script per queue,
 * then answers each request with its own outcome. One bad job never
 * fails its batch-mates: a batch INSERT refused for bad input is redone
 * row by row, and each request gets its own answer. A failed Redis
 * enqueue takes back the rows it had inserted, so a refused request
 * still changes nothing. An enqueue whose outcome is unknown (sent, no
 * answer within REDIS_TIMEOUT) is accepted when its row is written (the
 * row is kept; the script's deadline means Redis has the job or never
 * will, and reconcile enqueues it then), else answered 504: never 503,
 * which promises the job will not run.
 */
#include "api/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "base/thread.h"
#include "base/uuid.h"
#include "job/job.h"
#include "log/log.h"
#include "log/trace.h"
#include "store/store.h"
#include "wake/wake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	enum job_status status;       /* as enqueued (waiting, queued, ...) */
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
	/* the row as it is (NULL: no finals copy here, on the thread that
	 * answers the whole batch, and q may have just failed) */
	if ((q && api_find_job(a, q, id, &qi, &job, NULL) == 0) ||
	    api_store_job(a, NULL, id, &job, NULL) == 0) {
		status = job.status;
		job_info_release(&job);
	}
	body = accepted_body(id, job_status_name(status));
	json_object_set_new(body, "duplicate", json_true());
	return api_reply_json(a, req, 200, body);
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
	if (it->err.code == ERR_NOTFOUND && !strcmp(what, "redis"))
		api_reply_error(a, it->req, 400, "unknown_dependency", "%s", it->err.msg);
	else if (it->err.code == ERR_INVALID && !strcmp(what, "postgres"))
		api_reply_error(a, it->req, 400, "invalid_field", "%s", it->err.msg);
	else
		api_reply_backend(a, it->req, &it->err, what);
	it->state = IN_DONE;
}

static void reply_accepted(struct api *a, struct api_intake *it)
{
	char body[160];
	int len;

	len = snprintf(body, sizeof(body),
		       "{\"id\":\"%s\",\"status\":\"%s\",\"status_url\":\"/v1/jobs/%s\"}",
		       it->spec.id, job_status_name(it->status), it->spec.id);
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
	size_t i, nundo = 0, nnow = 0;
	int64_t due = 0;
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

		if (!out[i].created && out[i].missing[0]) {
			/* a dependency that names no job: refused, and
			 * nothing of it stays */
			if (it->state == IN_INSERTED)
				undo[nundo++] = it;
			err_set(&e, ERR_NOTFOUND,
				"field 'depends_on': no job '%s' in queue '%s' (a job "
				"depends on jobs of its own queue only)", out[i].missing, queue);
			intake_fail(it, &e);
			continue;
		}
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
		/* a waiting job is not due: the settle of its last
		 * dependency queues it, in a worker already awake */
		it->status = out[i].status;
		if (it->status == JOB_SCHEDULED) {
			if (!due || it->spec.run_at_us < due)
				due = it->spec.run_at_us;
		} else if (it->status != JOB_WAITING) {
			nnow++;
		}
	}
	/* Waking is done for the whole batch, and before anyone is answered:
	 * on Cloud Run the API has no CPU once its requests are answered, so
	 * the wake (a Cloud Tasks task, or the hand-off of an HTTP wake) must
	 * be out by then. The earliest scheduled job is enough: the drain it
	 * starts arranges the next one when it ends. */
	if (due)
		wake_at(a->wake, due);
	if (nnow)
		wake_notify(a->wake, live);
	else if (due && live)
		wake_notify(a->wake, 1);
	for (i = 0; i < n; i++)
		if (out[i].created)
			reply_accepted(a, its[i]);
	goto out;
failed:
	/* nothing enqueued: take back the rows, answer 503. Unless the
	 * script went out and no answer came (ERR_UNKNOWN): then the jobs
	 * are queued or never will be (its deadline), and a job with a row
	 * is accepted: the row stays, and reconcile enqueues it if Redis
	 * never ran the script. Without a row, the answer is 504. */
	for (i = 0; i < n; i++) {
		if (e.code == ERR_UNKNOWN && its[i]->state == IN_INSERTED) {
			log_warn("enqueue unanswered; the row stays, reconcile enqueues it if redis has not",
				 "job_id", its[i]->spec.id, "error", e.msg);
			its[i]->status = job_spec_status(&its[i]->spec, clock_now_us());
			if (its[i]->status == JOB_QUEUED)
				nnow++;
			reply_accepted(a, its[i]);
			continue;
		}
		if (its[i]->state == IN_INSERTED)
			undo[nundo++] = its[i];
		intake_fail(its[i], &e);
	}
	if (nnow)
		wake_notify(a->wake, 0);
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

int api_intake_start(struct api *a)
{
	int k, n = a->cfg.intake_threads > 0 ? a->cfg.intake_threads : 1;

	if (n > API_INTAKE_THREADS_MAX)
		n = API_INTAKE_THREADS_MAX;
	for (k = 0; k < n; k++) {
		if (pthread_create(&a->in_threads[k], NULL, intake_main, a) != 0)
			break;
		a->in_nthreads++;
	}
	return a->in_nthreads;
}

void api_intake_stop(struct api *a)
{
	thread_stop(&a->in_lock, &a->in_cond, &a->in_stop, a->in_threads,
		    (size_t)a->in_nthreads);
	a->in_nthreads = 0;
}

void api_post_job(struct api *a, struct httpd_request *req, const char *arg)
{
	const char *body, *code = "invalid_field", *hkey;
	struct api_intake *it;
	int64_t now_us;
	struct err e;
	size_t len;

	(void)arg;
	if (api_require_json(a, req) < 0)
		return;
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
	/* the same key meets the same shard, so its rules hold as for one queue */
	it->spec.queue = api_route_queue(a, req, it->spec.queue,
					 it->spec.idempotency_key ? it->spec.idempotency_key :
					 it->spec.unique_key);
	if (!it->spec.queue)
		goto refused;
	now_us = clock_now_us();
	job_spec_resolve(&it->spec, &a->defaults, now_us);
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
