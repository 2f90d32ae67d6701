/* priv.h - what the files of the api module share (not public). */
#ifndef WAKEQ_API_PRIV_H
#define WAKEQ_API_PRIV_H

#include "api/api.h"
#include "httpd/httpd.h"
#include "metrics/metrics.h"
#include "queue/queue.h"

#include <pthread.h>
#include <stdatomic.h>

struct api_hub;
struct api_intake;

#define API_INTAKE_THREADS_MAX 8

struct api {
	struct api_config cfg;
	struct job_defaults defaults; /* queue = queues[0], MAX_ATTEMPTS */
	atomic_int finals_on;         /* finals logs enabled (with a store) */
	char **queues;               /* served queues (a sharded one's
				      * shards NAME#K) */
	size_t nqueues;
	struct api_shards {          /* QUEUES entries NAME*N, in order */
		char name[QUEUE_NAME_MAX + 1];
		size_t first;        /* NAME#0 is queues[first] */
		int n;
	} *shards;
	size_t nshards;
	atomic_uint shard_rr;        /* round robin over a shard set */
	char **tokens;               /* NULL-terminated; NULL when no_auth */
	char **cors;                 /* CORS_ORIGINS, NULL-terminated; NULL = none */
	int cors_any;                /* "*" among them */
	struct queue_opts qopts;     /* REDIS_URL, parsed once at start */
	struct store *store;         /* NULL: Redis only */
	struct wake *wake;           /* NULL: no WAKE_URL */
	struct queue *wake_q;        /* the waker thread's own connection */
	struct httpd *http;
	struct api_hub *hub;

	struct queue_pool *pool;     /* Redis connections for request threads */

	/* POST /v1/jobs group commit: requests wait here (their connections
	 * suspended) for an intake thread, which sends whatever has gathered
	 * as one Postgres INSERT and one enqueue script per queue */
	pthread_mutex_t in_lock;
	pthread_cond_t in_cond;
	struct api_intake *in_head, *in_tail; /* FIFO */
	pthread_t in_threads[API_INTAKE_THREADS_MAX];
	int in_nthreads;
	int in_stop;

	/* reconcile timer */
	pthread_t rec_thread;
	int rec_running;
	pthread_mutex_t rec_lock;
	pthread_cond_t rec_cond;
	int rec_stop;

	/* metrics */
	atomic_uint_least64_t m_requests[6];  /* 2xx 3xx 4xx 5xx, 401, 503 */
	atomic_uint_least64_t m_enqueued, m_duplicates, m_reconciled;
	atomic_uint_least64_t m_batches;     /* intake batches sent */
	struct metrics_hist m_enqueue_latency;
};

/* ---- wiring (api.c) ------------------------------------------------------ */

/* Borrows a Redis connection from a->pool (queue_pool_get). Returns NULL
 * with err (ERR_UNAVAILABLE) when Redis cannot be reached. */
struct queue *api_qget(struct api *a, struct err *err);
/* Returns a borrowed connection. */
void api_qput(struct api *a, struct queue *q);

/* The index of `queue` in a->queues, or -1 when it is not served. */
int api_served_index(struct api *a, const char *queue);

/* The served queue that work posted to `queue` goes to: the one home of
 * that choice for every route that creates work (jobs, flows, batches,
 * schedules). `queue` NULL means none named: QUEUES' first entry. A
 * sharded NAME (a QUEUES entry NAME*N) becomes one of its shards: CRC16
 * of `key` modulo N when key is not NULL (the same key always meets the
 * same shard), else the next in turn; any other served queue, a shard
 * named explicitly among them, is itself. Returns it (borrowed from
 * a->queues for the API's life), or NULL once `req` is answered 400
 * invalid_field naming the queue. Never blocks. */
const char *api_route_queue(struct api *a, struct httpd_request *req,
			    const char *queue, const char *key);
/* The name work posted to no queue goes to: QUEUES' first entry, which is
 * the shard set's name when that entry is NAME*N (api_route_queue then
 * picks the shard). */
const char *api_route_default(const struct api *a);
/* api_route_queue for the member "queue" of a request body (absent or
 * null: none named); a value that is not a string is answered 400. */
const char *api_body_queue(struct api *a, struct httpd_request *req, const json_t *body,
			   const char *key);

/* api_qget for a request: NULL once `req` is answered 503. */
struct queue *api_qget_req(struct api *a, struct httpd_request *req);
/* api_qget_req for a route on `queue`: NULL once `req` is answered (404
 * when the queue is not served here, 503 when Redis is down). */
struct queue *api_qget_served(struct api *a, struct httpd_request *req,
			      const char *queue);

/* ---- routes (routes.c) ---------------------------------------------------- */

/* The cookie a browser may hold the API token in (routes that take it:
 * the event stream, which EventSource opens without headers). */
#define API_TOKEN_COOKIE "wakeq_token"

/* The httpd handler of the API: finds the route of the request in the
 * table, checks the token, the path parameter and the method, and calls
 * the route's handler. */
void api_dispatch(struct httpd_request *req, void *ctx);

/* Route handlers have one shape: `arg` is the path parameter (a job id,
 * checked and lowercased, or a queue name) or NULL for routes without one.
 * Each answers exactly once (or defers, intake.c); HEAD gets the GET
 * handler. */

/* ---- replies (reply.c) ----------------------------------------------------- */

/* Counts an answer in the request metrics by status class. */
void api_count_status(struct api *a, unsigned status);

/* Answers {"error":{code,message}} with `status`, counted, with
 * Retry-After on 503 and WWW-Authenticate on 401. Returns as httpd_error. */
int api_reply_error(struct api *a, struct httpd_request *req, unsigned status,
		    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Answers a Redis or Postgres failure `e` of the backend named `what`:
 * 503 when it is unavailable or timed out, 504 "unconfirmed" when the
 * outcome is unknown (ERR_UNKNOWN), else 500 (logged). */
int api_reply_backend(struct api *a, struct httpd_request *req,
		      const struct err *e, const char *what);

/* 0 when `req` says its body is JSON; else -1 once answered 415. */
int api_require_json(struct api *a, struct httpd_request *req);

/* Answers `body` (ownership taken) with `status`, counted. */
int api_reply_json(struct api *a, struct httpd_request *req, unsigned status,
		   json_t *body);

/* ---- POST /v1/jobs (intake.c) --------------------------------------------- */

/* Starts the intake threads (cfg.intake_threads, at most
 * API_INTAKE_THREADS_MAX). Returns how many started; with none, each
 * request is sent as a batch of one on its own pool thread. */
int api_intake_start(struct api *a);
/* Stops the intake threads once every queued request is answered. */
void api_intake_stop(struct api *a);
void api_post_job(struct api *a, struct httpd_request *req, const char *arg);

/* ---- jobs (jobs.c) -------------------------------------------------------- */

/* Reads the job from Redis, trying each served queue. Returns 0 with *out
 * filled (release it) and the queue's index in *qi, or -1 with err
 * ERR_NOTFOUND / ERR_UNAVAILABLE. */
int api_find_job(struct api *a, struct queue *q, const char *id, size_t *qi,
		 struct job_info *out, struct err *err);
/* The job from Postgres, for a job Redis does not hold. With q (a Redis
 * connection that answered; NULL: none), a row that is not final is first
 * settled against its queue's finals log (reconcile_finals: a completion
 * Redis recorded but Postgres has not yet) and read again. Returns 0 with
 * *out filled (release it), or -1 with err (ERR_NOTFOUND when no row or no
 * store). Blocks for the round trips. */
int api_store_job(struct api *a, struct queue *q, const char *id,
		  struct job_info *out, struct err *err);
void api_get_job(struct api *a, struct httpd_request *req, const char *id);
void api_cancel_job(struct api *a, struct httpd_request *req, const char *id);
void api_retry_job(struct api *a, struct httpd_request *req, const char *id);
void api_job_events(struct api *a, struct httpd_request *req, const char *id);
void api_list_jobs(struct api *a, struct httpd_request *req, const char *queue);

/* ---- flows and batches (flows.c) ------------------------------------------ */

/* POST /v1/flows: a parent job and its children, created in one
 * enqueue; the parent depends on them. Answers 202 {id, status, queue,
 * children: [{id, status}]}. */
void api_post_flow(struct api *a, struct httpd_request *req, const char *arg);
/* POST /v1/batches: jobs and the callback job that runs once they have
 * all ended. Answers 202 {id, queue, status_url, jobs: [id]}. */
void api_post_batch(struct api *a, struct httpd_request *req, const char *arg);
/* GET /v1/batches/{id}: job_batch_to_json of the batch's callback. */
void api_get_batch(struct api *a, struct httpd_request *req, const char *id);

/* ---- queues (queues.c) ---------------------------------------------------- */

struct reconcile_stats;

/* One reconcile pass (the timer's and POST /v1/reconcile's): counted in
 * the metrics, and a wake when jobs came back. Returns as reconcile_run. */
int api_reconcile(struct api *a, struct reconcile_stats *st, struct err *err);
void api_get_queues(struct api *a, struct httpd_request *req, const char *arg);
void api_get_queue(struct api *a, struct httpd_request *req, const char *queue);
/* Jobs due and not running: queued, and delayed ones whose time has come
 * (not promoted yet). The one definition of a queue's backlog (GET
 * /v1/queues/{queue}, /metrics). */
int64_t api_backlog(const struct queue_counts *c, const struct queue_stats *s);
/* Seconds since the longest-waiting due job became due; 0 when none. */
double api_oldest_due_age_s(const struct queue_stats *s);
/* POST /v1/queues/{queue}/pause and /resume (a resume wakes a worker when
 * due work has none). */
void api_pause_queue(struct api *a, struct httpd_request *req, const char *queue);
void api_resume_queue(struct api *a, struct httpd_request *req, const char *queue);
/* GET and PUT /v1/queues/{queue}/settings (PUT replaces them all). */
void api_get_settings(struct api *a, struct httpd_request *req, const char *queue);
void api_put_settings(struct api *a, struct httpd_request *req, const char *queue);
void api_post_reconcile(struct api *a, struct httpd_request *req,
			const char *arg);
/* POST /v1/queues/{queue}/purge-dead: deletes the queue's dead jobs. */
void api_purge_dead(struct api *a, struct httpd_request *req,
		    const char *queue);
/* POST /v1/wake: asks the waker for a wake now (409 without WAKE_URL). */
void api_post_wake(struct api *a, struct httpd_request *req, const char *arg);

/* ---- cron schedules (schedules.c) ------------------------------------------- */

void api_post_schedule(struct api *a, struct httpd_request *req, const char *arg);
void api_list_schedules(struct api *a, struct httpd_request *req, const char *arg);
void api_get_schedule(struct api *a, struct httpd_request *req, const char *name);
void api_delete_schedule(struct api *a, struct httpd_request *req, const char *name);
void api_pause_schedule(struct api *a, struct httpd_request *req, const char *name);
void api_resume_schedule(struct api *a, struct httpd_request *req, const char *name);

/* ---- health and metrics (health.c) ---------------------------------------- */

void api_healthz(struct api *a, struct httpd_request *req, const char *arg);
void api_openapi(struct api *a, struct httpd_request *req, const char *arg);
void api_readyz(struct api *a, struct httpd_request *req, const char *arg);
void api_metrics(struct api *a, struct httpd_request *req, const char *arg);

/* ---- the dashboard (dashboard.c) ------------------------------------- */

/* The route table lists the dashboard's files under this path (keep the
 * table's literals in step); they answer at cfg.dashboard_path. */
#define API_DASHBOARD_ROUTE "/dashboard"

/* Checks cfg.dashboard_path (NULL becomes API_DASHBOARD_ROUTE). Returns 0,
 * or -1 with err ERR_INVALID naming DASHBOARD_PATH. */
int api_dashboard_init(struct api *a, struct err *err);
/* The path to look up in the route table for the request path `path`:
 * `path` itself, or for a path at or under DASHBOARD_PATH the same under
 * API_DASHBOARD_ROUTE (written to buf), or NULL when no route may answer
 * it (API_DASHBOARD_ROUTE itself while the dashboard answers elsewhere or
 * nowhere, or a mapped path longer than size). */
const char *api_dashboard_route(struct api *a, const char *path, char *buf,
				size_t size);
void api_dashboard_page(struct api *a, struct httpd_request *req,
			const char *arg);
void api_dashboard_js(struct api *a, struct httpd_request *req,
		      const char *arg);
void api_dashboard_css(struct api *a, struct httpd_request *req,
		       const char *arg);

/* Whether a route of the table other than the dashboard's is `prefix` or
 * lies under prefix + "/" (routes.c). */
int api_route_taken(const char *prefix);

/* ---- server-sent events (events.c) ---------------------------------- */

struct api_hub *api_hub_new(struct api *a, struct err *err);
void api_hub_free(struct api_hub *h);
/* Serves GET /v1/jobs/{id}/events for a job known to be in `queue`. */
void api_hub_serve(struct api_hub *h, struct httpd_request *req,
		   const char *queue, const char *id);
/* Answers the events of a job that has ended: 204 when the request's
 * Last-Event-ID shows the client has seen the end (EventSource then
 * stops reconnecting), else a stream of one `end` event. */
void api_events_final(struct api *a, struct httpd_request *req,
		      const struct job_info *job);
/* Number of open streams. */
int api_hub_streams(struct api_hub *h);


/* ---- uploads (uploads.c) ------------------------------------------------ */

/* The httpd sink_for of the API: for POST /v1/uploads, checks the bearer
 * token and the content type (answering 401/415 itself, no body read)
 * and opens a temp file in DATA_DIR/uploads (503 when it cannot); returns
 * 1 with *sink writing to it, else 0. Blocks on mkdir/open only. */
int api_upload_sink(struct httpd_request *req, void *ctx,
		    struct httpd_sink *sink);

/* The handler of /v1/uploads once the body is in (or stopped): renames the
 * temp file into place and answers 201 {url, bytes, sha256}, or answers
 * 413/507/500 (the temp file is removed by the sink's release), or 405
 * for other methods. With ?presign=1 (no body) it answers 201 {url,
 * upload_url, method, headers, expires_at, expires_in}: a presigned PUT
 * into UPLOAD_TARGET (400 not_configured without one). Blocks on
 * fsync/rename, or on the AWS credential providers when presigning. */
void api_upload_post(struct api *a, struct httpd_request *req);

/* Checks UPLOAD_TARGET and UPLOAD_URL_TTL of `cfg` (start-up). Returns 0
 * or -1 with err (ERR_INVALID) naming the setting. */
int api_upload_check(const struct api_config *cfg, struct err *err);

#endif
