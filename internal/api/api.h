/* api.h - the thin HTTP API of wakeq (DESIGN.md "The API", docs/API.md):
 * job intake into Redis (and Postgres when configured), reads, cancel,
 * retry, queue counts, server-sent progress events, wake calls when no
 * worker is alive, reconcile between Postgres and Redis, and a dashboard
 * page for operators (GET /dashboard) that uses all of these.
 *
 * The server runs on libmicrohttpd's thread pool; each request thread
 * borrows a Redis connection from a small pool (a `struct queue` is not
 * thread-safe) and the Postgres store is shared (it pools by itself).
 * POST /v1/jobs is group-committed: pool threads check each request and
 * defer its answer, and intake threads send whatever gathered meanwhile
 * as one Postgres INSERT and one enqueue script per queue, then answer
 * every request with its own outcome.
 * A Redis or Postgres outage never stops the API: requests that need the
 * missing server answer 503 with Retry-After, and it reconnects by itself.
 */
#ifndef WAKEQ_API_H
#define WAKEQ_API_H

#include "base/err.h"
#include "wake/wake.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct queue;
struct store;

/* Settings, filled by cmd/api from its config table. Strings are borrowed
 * for the life of the server. */
struct api_config {
	const char *host;             /* bind address; NULL = 0.0.0.0 */
	int port;                     /* 0 = any free port (see api_port) */
	const char *redis_url;
	const char *database_url;     /* NULL or "" = Redis only */
	const char *queues;           /* comma list served; NULL = "default" */
	const char *api_tokens;       /* comma list (rotation); NULL = none */
	int no_auth;                  /* allow running without a token */
	size_t max_body;              /* 0 = 1 MiB */
	int threads;                  /* HTTP pool threads; 0 = 2 × CPUs */
	int intake_threads;           /* threads that send POST /v1/jobs in
				       * batches; 0 = 1 (one batch in flight
				       * at a time: Postgres inserts do not
				       * contend on the same index pages) */
	int intake_max;               /* jobs per batch at most; 0 = 256 */
	unsigned max_connections;     /* 0 = 1024 */
	unsigned conn_timeout_s;      /* idle connection timeout; 0 = 30 */
	/* flood limits (httpd.h): 0 = httpd's defaults, except
	 * per_ip_connections (0 = no limit) */
	unsigned per_ip_connections;
	unsigned conn_reserve;
	double header_timeout_s;
	double body_timeout_s;
	/* waking */
	enum wake_via wake_via;       /* WAKE_VIA: http, or cloudtasks */
	int timers;                   /* API_TIMERS: in-process timers (the
				       * reconcile timer, wakes at scheduled
				       * jobs' due times, the held wake's
				       * follow-ups); 0 on Cloud Run, where
				       * nothing runs outside a request */
	const char *wake_url;         /* NULL or "" = never wake */
	const char *wake_token;
	enum wake_auth wake_auth;     /* TOKEN sends wake_token (none if
				       * empty), GOOGLE an identity token */
	const char *wake_audience;    /* google: NULL = origin of wake_url */
	int wake_fanout_max;          /* 0 = 1 */
	int worker_concurrency;       /* the worker's CONCURRENCY; 0 = 1 */
	int wake_backlog;             /* target jobs per worker slot; 0 = 10 */
	double wake_hold_s;           /* longest a wake is held open; 0 = 3600 */
	double wake_max_s;            /* the worker's WAKE_MAX: Cloud Tasks
				       * holds a wake for it + 60 s */
	const char *tasks_project;    /* cloudtasks: "" = the metadata server's */
	const char *tasks_location;
	const char *tasks_queue;
	const char *tasks_service_account; /* the tasks' OIDC identity */
	const char *tasks_endpoint;   /* "" = Google's */
	double tasks_bucket_s;        /* time bucket of task names; 0 = 1 s */
	/* reconcile */
	double reconcile_interval_s;  /* 0 = no timer */
	double reconcile_min_age_s;   /* rows younger than this are left; 0 = 10 */
	int store_conns;              /* Postgres pool; 0 = threads */
	double store_timeout_s;       /* longest a Postgres call may take before
				       * its request answers 503; 0 = wait */
	double redis_timeout_s;       /* Redis command timeout; 0 = 5 */
	int max_attempts;             /* default attempts of a job; 0 = 3 */
	int migrate;                  /* apply migrations at start-up */
	/* uploads (POST /v1/uploads, uploads.c) */
	const char *data_dir;         /* NULL or "" = /tmp/wakeq; files go to
				       * DATA_DIR/uploads */
	uint64_t max_upload;          /* bytes; 0 = 2 GiB */
	const char *upload_target;    /* "s3://bucket/prefix/" or
				       * "gs://bucket/prefix/": POST
				       * /v1/uploads?presign=1 answers a
				       * presigned PUT into it; NULL or "" =
				       * none */
	double upload_url_ttl_s;      /* life of those URLs; 0 = 900 */
	/* the operator's page (dashboard.c) */
	const char *dashboard_path;   /* where it answers; NULL = /dashboard,
				       * "" = no dashboard */
	/* browsers on other origins (CORS): comma list of origins
	 * ("https://app.example.com"), "*" for any (then without cookies);
	 * NULL or "" = none */
	const char *cors_origins;
};

struct api;

/* Checks the settings, applies migrations when configured (needs Postgres
 * up then; ERR_UNAVAILABLE otherwise), starts the waker, the event hub,
 * the reconcile timer (with timers) and the HTTP server. Redis may be down at start.
 * Returns the server (stop with api_stop), or NULL with err: ERR_INVALID
 * for a bad setting (e.g. no API_TOKEN without no_auth, a dashboard_path
 * that is not a clean absolute path or that would hide a route of the
 * API), ERR_UNAVAILABLE
 * when the port is taken. */
struct api *api_start(const struct api_config *cfg, struct err *err);

/* The port bound. */
int api_port(const struct api *a);

/* Stops serving, ends event streams, stops the threads. Accepts NULL. */
void api_stop(struct api *a);

#endif
