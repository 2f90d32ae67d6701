/* worker.h - the wakeq worker: POST /wake starts (or joins) a drain of
 * every due job; the process exits once idle (DESIGN.md "The worker").
 *
 *   struct worker *w = worker_start(&cfg, &err);
 *   ... wait for signals; worker_idle_exit_due(w) says when to exit ...
 *   worker_shutdown(w);   (SIGTERM: finish or re-queue in-flight jobs)
 *   worker_free(w);
 *
 * Threads: the HTTP server (one per connection, /wake requests are held),
 * one drain thread that takes and settles jobs in batches and blocks on
 * the wake markers when idle, CONCURRENCY slot threads that run handlers,
 * and one heartbeat thread that renews every lease and the registration.
 */
#ifndef WAKEQ_WORKER_H
#define WAKEQ_WORKER_H

#include "base/err.h"

#include <stdint.h>

struct worker_config {
	char *host;             /* HOST: bind address, "" = all */
	int64_t port;           /* PORT */
	char *redis_url;        /* REDIS_URL */
	char *database_url;     /* DATABASE_URL ("" = none) */
	char *queues;           /* QUEUES: comma list, first = most urgent */
	int64_t concurrency;    /* CONCURRENCY: slots */
	int64_t batch;          /* BATCH: jobs a take/settle round trip */
	double idle_timeout;    /* IDLE_TIMEOUT s: drain end and process exit */
	double empty_wake_linger; /* EMPTY_WAKE_LINGER s: how long a drain whose
				 * first take found nothing due waits for
				 * work, instead of IDLE_TIMEOUT */
	double redis_idle_max;  /* REDIS_IDLE_MAX s: the kept drain
				 * connection is not reused after idling
				 * longer (a NAT may have dropped it); 0 =
				 * always reused */
	int exit_on_idle;       /* EXIT_ON_IDLE */
	double lease;           /* LEASE s */
	double job_timeout;     /* JOB_TIMEOUT s, 0 = none */
	double shutdown_grace;  /* SHUTDOWN_GRACE s */
	double wake_max;        /* WAKE_MAX s: a drain ends before this */
	char *wake_token;       /* WAKE_TOKEN ("" = open) */
	int64_t max_connections;    /* MAX_CONNECTIONS: HTTP, one thread each */
	int64_t per_ip_connections; /* PER_IP_CONNECTIONS, 0 = no limit */
	int64_t conn_reserve;       /* CONN_RESERVE (httpd.h) */
	double header_timeout;      /* HEADER_TIMEOUT s */
	double body_timeout;        /* BODY_TIMEOUT s */
	double backoff_base;    /* BACKOFF_BASE s */
	double backoff_cap;     /* BACKOFF_CAP s */
	int64_t result_ttl;     /* RESULT_TTL s */
	char *worker_id;        /* WORKER_ID ("" = host-pid-random) */
	char *data_dir;         /* DATA_DIR */
	char *allow_private;    /* ALLOW_PRIVATE_NETWORKS */
	int64_t max_input_bytes;/* MAX_INPUT_BYTES */
	char *webhook_secret;   /* WEBHOOK_SECRET */
	char *webhook_secret_previous; /* WEBHOOK_SECRET_PREVIOUS */
	int log_format;         /* LOG_FORMAT: enum log_format */
	int log_level;          /* LOG_LEVEL: enum log_level */
	int once;               /* ONCE: drain at start without HTTP, then exit
				 * (wakeq drain, cron on plain VMs) */
	char *handlers_file;    /* HANDLERS_FILE: read by main (internal/handler) */
	/* Cloud Tasks (WAKE_VIA=cloudtasks): before a drain answers its
	 * /wake, it arranges the next wake when work is left (WAKE_MAX, a
	 * SIGTERM) or comes due later (retries, scheduled jobs) and no
	 * other worker is live. */
	int wake_via;           /* WAKE_VIA: enum wake_via */
	char *wake_url;         /* WAKE_URL: this worker's /wake ("" = the URL
				 * the last /wake came to: Host and
				 * X-Forwarded-Proto) */
	char *wake_audience;    /* WAKE_AUDIENCE ("" = origin of the URL) */
	char *tasks_project;    /* TASKS_PROJECT ("" = the metadata server's) */
	char *tasks_location;   /* TASKS_LOCATION */
	char *tasks_queue;      /* TASKS_QUEUE */
	char *tasks_service_account; /* TASKS_SERVICE_ACCOUNT */
	char *tasks_endpoint;   /* TASKS_ENDPOINT ("" = Google's) */
	double tasks_bucket;    /* TASKS_BUCKET s */
};

struct worker;

/* Validates cfg (queue names...), connects to Redis (an unreachable Redis
 * is not fatal: the drain retries), starts the HTTP server. Returns the
 * worker, or NULL with err (bad setting, port taken). cfg is borrowed for
 * the life of the worker. */
struct worker *worker_start(const struct worker_config *cfg, struct err *err);

/* The HTTP port bound (useful with PORT=0); 0 in once mode. */
int worker_port(const struct worker *w);

/* Whether the process should exit now: EXIT_ON_IDLE is on, no drain runs,
 * no request is open, and nothing happened for IDLE_TIMEOUT; in once mode,
 * as soon as the drain has ended. Call it every 100 ms: a gap of over
 * 250 ms between calls means the process was stopped (request-based CPU)
 * and restarts the idle time, so a process thawed for a request serves
 * it instead of exiting under it. */
int worker_idle_exit_due(struct worker *w);

/* SIGTERM: stop taking, let in-flight jobs finish within SHUTDOWN_GRACE,
 * re-queue the rest without counting an attempt, answer held /wake
 * requests, deregister. Blocks until done. */
void worker_shutdown(struct worker *w);

/* Stops the HTTP server and threads, frees. Accepts NULL. */
void worker_free(struct worker *w);

/* Binds media.probe, media.thumbnail and media.transcode to loaders of the
 * wakeq-media.so plugin (WAKEQ_MEDIA_PLUGIN, else beside the executable),
 * loaded on the first media job; without it those jobs fail with a clear
 * error. Call before worker_start. */
void worker_bind_media(void);

#endif
