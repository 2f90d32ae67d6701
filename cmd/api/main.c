/* wakeq-api - the thin HTTP API: reads its settings, starts internal/api
 * and waits for SIGTERM/SIGINT. `wakeq-api migrate` applies the Postgres
 * migrations and exits. */
#include "api/api.h"
#include "base/version.h"
#include "config/config.h"
#include "config/shared_vars.h"
#include "fetch/fetch.h"
#include "handler/handler.h"
#include "job/job.h"
#include "log/log.h"
#include "log/trace.h"
#include "queue/queue.h"
#include "store/store.h"
#include "wake/wake.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct settings {
	int64_t port;
	char *host;
	char *redis_url;
	char *database_url;
	char *queues;
	char *api_token;
	int no_auth;
	int64_t max_body;
	int64_t threads;
	int64_t intake_threads;
	int64_t intake_max;
	int64_t max_connections;
	double conn_timeout;
	int64_t per_ip_connections;
	int64_t conn_reserve;
	double header_timeout;
	double body_timeout;
	int wake_via;
	int timers;
	char *wake_url;
	char *wake_token;
	int wake_auth;
	char *wake_audience;
	int64_t wake_fanout_max;
	int64_t worker_concurrency;
	int64_t wake_backlog;
	int64_t max_attempts;
	int64_t result_ttl;
	double wake_hold;
	double wake_max;
	char *tasks_project;
	char *tasks_location;
	char *tasks_queue;
	char *tasks_service_account;
	char *tasks_endpoint;
	double tasks_bucket;
	double reconcile_interval;
	double reconcile_min_age;
	int64_t pg_conns;
	double pg_timeout;
	double redis_timeout;
	int migrate;
	char *data_dir;
	int64_t max_upload;
	const char *upload_target;
	double upload_url_ttl;
	char *cors_origins;
	char *handlers_file;
	char *dashboard_path;
	int log_format;
	int log_level;
};

#define F(x) offsetof(struct settings, x)

static const struct config_var vars[] = {
	{ "PORT", CONFIG_INT, F(port), 0, 65535, "8080", "TCP port to listen on", 0, NULL },
	{ "HOST", CONFIG_STRING, F(host), 0, 0, "0.0.0.0", "address to listen on", 0, NULL },
	{ "REDIS_URL", CONFIG_STRING, F(redis_url), 0, 0, "redis://127.0.0.1:6379",
	  "Redis: redis://[[user]:pass@]host[:port][/db], unix:///path, redis+cluster://node:port", CONFIG_SECRET, NULL },
	{ "DATABASE_URL", CONFIG_STRING, F(database_url), 0, 0, "",
	  "Postgres for durable job records (empty = Redis only)", CONFIG_SECRET, NULL },
	{ "QUEUES", CONFIG_STRING, F(queues), 0, 0, "default",
	  "comma-separated queues this API accepts jobs for (first = default)", 0, NULL },
	{ "API_TOKEN", CONFIG_STRING, F(api_token), 0, 0, NULL,
	  "bearer token(s) clients must send, comma-separated for rotation",
	  CONFIG_SECRET | CONFIG_TOKEN_LIST, NULL },
	{ "NO_AUTH", CONFIG_BOOL, F(no_auth), 0, 0, "false",
	  "run without API_TOKEN (local development only)", 0, NULL },
	{ "MAX_BODY", CONFIG_SIZE, F(max_body), 1024, 64 << 20, "1M",
	  "largest request body accepted (413 above)", 0, NULL },
	{ "HTTP_THREADS", CONFIG_INT, F(threads), 0, 256, "0",
	  "HTTP worker threads (0 = 2 per CPU)", 0, NULL },
	{ "INTAKE_THREADS", CONFIG_INT, F(intake_threads), 1, 8, "1",
	  "threads that write POST /v1/jobs to Postgres and Redis in batches", 0, NULL },
	{ "INTAKE_BATCH", CONFIG_INT, F(intake_max), 1, 1000, "256",
	  "jobs per batch at most (one INSERT and one enqueue script each)", 0, NULL },
	{ "MAX_CONNECTIONS", CONFIG_INT, F(max_connections), 1, 100000, "1024",
	  "open client connections at most", 0, NULL },
	{ "CONN_TIMEOUT", CONFIG_SECONDS, F(conn_timeout), 1, 3600, "30",
	  "idle client connections are closed after this", 0, NULL },
	CONFIG_VARS_HTTP_LIMITS("256", "64"),
	{ "BODY_TIMEOUT", CONFIG_SECONDS, F(body_timeout), 0.1, 3600, "30",
	  "a request body must arrive whole within this of its headers (not uploads)", 0, NULL },
	{ "WAKE_URL", CONFIG_STRING, F(wake_url), 0, 0, "",
	  "the worker's /wake URL, called when no worker is alive (empty = never)", 0, NULL },
	{ "WAKE_VIA", CONFIG_ENUM, F(wake_via), 0, 0, "http",
	  "http: POST WAKE_URL and hold it; cloudtasks: a Cloud Tasks task does (TASKS_*)", 0,
	  wake_via_choices },
	{ "API_TIMERS", CONFIG_BOOL, F(timers), 0, 0, "true",
	  "in-process timers: reconcile, wakes for scheduled jobs (off on Cloud Run)", 0, NULL },
	{ "WAKE_TOKEN", CONFIG_STRING, F(wake_token), 0, 0, "",
	  "bearer token for the wake call", CONFIG_SECRET | CONFIG_TOKEN, NULL },
	{ "WAKE_AUTH", CONFIG_ENUM, F(wake_auth), 0, 0, "token",
	  "wake call auth: WAKE_TOKEN, a Google OIDC identity token, or none", 0,
	  wake_auth_choices },
	{ "WAKE_AUDIENCE", CONFIG_STRING, F(wake_audience), 0, 0, "",
	  "audience of Google identity tokens (empty = origin of WAKE_URL)", 0, NULL },
	{ "WAKE_FANOUT_MAX", CONFIG_INT, F(wake_fanout_max), 1, 64, "1",
	  "concurrent wake calls at most, for backlog-driven scale-out", 0, NULL },
	{ "WORKER_CONCURRENCY", CONFIG_INT, F(worker_concurrency), 1, 1024, "1",
	  "the worker's CONCURRENCY, for scale-out decisions", 0, NULL },
	{ "MAX_ATTEMPTS", CONFIG_INT, F(max_attempts), 1, JOB_MAX_ATTEMPTS_MAX, "3",
	  "attempts of a job that does not say (max_attempts)", 0, NULL },
	{ "RESULT_TTL", CONFIG_INT, F(result_ttl), QUEUE_RESULT_TTL_MIN, QUEUE_RESULT_TTL_MAX,
	  CONFIG_TEXT(QUEUE_RESULT_TTL_DEFAULT),
	  "seconds a cancelled job's record stays in Redis (the worker's RESULT_TTL)", 0, NULL },
	{ "WAKE_BACKLOG", CONFIG_INT, F(wake_backlog), 1, 1000000, "10",
	  "pending jobs per worker slot before another wake is sent", 0, NULL },
	{ "WAKE_HOLD", CONFIG_SECONDS, F(wake_hold), 1, 86400, "3600",
	  "longest a wake call is held open while the worker drains", 0, NULL },
	{ "WAKE_MAX", CONFIG_SECONDS, F(wake_max), 1, 86400, "1740",
	  "the worker's WAKE_MAX: a Cloud Tasks wake is held for it + 60 s (1800 s at most)",
	  0, NULL },
	CONFIG_VARS_CLOUD_TASKS,
	{ "RECONCILE_INTERVAL", CONFIG_SECONDS, F(reconcile_interval), 0, 86400, "60",
	  "seconds between reconcile passes with Postgres (0 = off; API_TIMERS=off: none)", 0, NULL },
	{ "RECONCILE_MIN_AGE", CONFIG_SECONDS, F(reconcile_min_age), 0.001, 86400, "10",
	  "rows younger than this are left alone by reconcile", 0, NULL },
	{ "PG_CONNS", CONFIG_INT, F(pg_conns), 0, 64, "0",
	  "Postgres connections (0 = one per HTTP thread)", 0, NULL },
	{ "PG_TIMEOUT", CONFIG_SECONDS, F(pg_timeout), 0, 60, "2",
	  "longest a Postgres statement may take before the request answers 503 (0 = wait)", 0, NULL },
	{ "REDIS_TIMEOUT", CONFIG_SECONDS, F(redis_timeout), 0.1, 60, "5",
	  "longest a Redis command may take; an enqueue unanswered this long answers 202 with a row kept (Postgres), else 504", 0, NULL },
	{ "MIGRATE", CONFIG_BOOL, F(migrate), 0, 0, "true",
	  "apply database migrations at start-up", 0, NULL },
	{ "DATA_DIR", CONFIG_STRING, F(data_dir), 0, 0, "/tmp/wakeq",
	  "POST /v1/uploads stores files in DATA_DIR/uploads (the worker's DATA_DIR)", 0, NULL },
	{ "MAX_UPLOAD", CONFIG_SIZE, F(max_upload), 1, 1099511627776.0, "2G",
	  "largest file POST /v1/uploads accepts (413 above)", 0, NULL },
	{ "UPLOAD_TARGET", CONFIG_STRING, F(upload_target), 0, 0, "",
	  "s3://bucket/prefix/ or gs://bucket/prefix/: POST /v1/uploads?presign=1 answers a "
	  "presigned PUT there (empty = off)", 0, NULL },
	{ "UPLOAD_URL_TTL", CONFIG_SECONDS, F(upload_url_ttl), 1, 604800, "900",
	  "seconds a presigned upload URL stays valid", 0, NULL },
	{ "CORS_ORIGINS", CONFIG_STRING, F(cors_origins), 0, 0, "",
	  "browser origins allowed to call the API (CORS), comma-separated; * = any (empty = none)",
	  0, NULL },
	{ "HANDLERS_FILE", CONFIG_STRING, F(handlers_file), 0, 0, "",
	  "your own job types, the worker's file (docs/HANDLERS.md); also WAKEQ_HANDLER_<TYPE>",
	  0, NULL },
	{ "DASHBOARD_PATH", CONFIG_STRING, F(dashboard_path), 0, 0, "/dashboard",
	  "where the dashboard page answers (empty = no dashboard; it asks for API_TOKEN)",
	  0, NULL },
	{ "LOG_FORMAT", CONFIG_ENUM, F(log_format), 0, 0, "text",
	  "json: one object a line for Cloud Logging; text for people", 0, log_format_choices },
	{ "LOG_LEVEL", CONFIG_ENUM, F(log_level), 0, 0, "info",
	  "lowest level logged", 0, log_level_choices },
	CONFIG_END
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: wakeq-api [--flag VALUE ...] [migrate]\n"
		"\n"
		"The wakeq HTTP API: POST /v1/jobs and friends (docs/API.md).\n"
		"`migrate` applies the Postgres migrations and exits.\n"
		"Every flag has an environment variable; flags win.\n"
		"--version prints the version.\n\n");
	config_usage(out, vars);
}

static int migrate(const struct settings *s)
{
	struct store *st;
	struct err e;
	int n;

	if (!s->database_url || !*s->database_url) {
		fprintf(stderr, "wakeq-api: migrate needs DATABASE_URL\n");
		return 2;
	}
	st = store_open(s->database_url, 1, &e);
	if (!st) {
		fprintf(stderr, "wakeq-api: %s\n", e.msg);
		return 1;
	}
	n = store_migrate(st, &e);
	store_free(st);
	if (n < 0) {
		fprintf(stderr, "wakeq-api: cannot migrate: %s\n", e.msg);
		return 1;
	}
	printf("applied %d migration(s); schema version %d\n", n, store_schema_version());
	return 0;
}

int main(int argc, char **argv)
{
	struct settings s;
	struct api_config c;
	struct api *a = NULL;
	struct handler_registry reg;
	struct sigaction sa;
	sigset_t mask, old;
	struct err e;
	int argi = argc, rc = 1;
	char port[16];

	if (version_asked(argc, argv)) {
		printf("wakeq-api %s\n", version_string());
		return 0;
	}
	memset(&s, 0, sizeof(s));
	handler_registry_init(&reg);
	switch (config_load(vars, &s, argc, argv, &argi, &e)) {
	case 1:
		usage(stdout);
		rc = 0;
		goto out;
	case -1:
		fprintf(stderr, "wakeq-api: %s\n", e.msg);
		rc = 2;
		goto out;
	}
	if (s.conn_reserve >= s.max_connections) {
		fprintf(stderr, "wakeq-api: bad CONN_RESERVE '%lld': must be below "
			"MAX_CONNECTIONS (%lld)\n", (long long)s.conn_reserve,
			(long long)s.max_connections);
		rc = 2;
		goto out;
	}
	log_init((enum log_format)s.log_format, (enum log_level)s.log_level, 2);
	log_trace_set_project_fn(fetch_gcp_project);
	queue_limits.result_ttl_s = s.result_ttl;
	if (argi < argc) {
		if (!strcmp(argv[argi], "migrate") && argi + 1 == argc) {
			rc = migrate(&s);
			goto out;
		}
		fprintf(stderr, "wakeq-api: unknown command '%s' (see --help)\n", argv[argi]);
		rc = 2;
		goto out;
	}

	/* The user's own types, so intake knows them (and their schemas). */
	if (handler_registry_load(&reg, s.handlers_file, environ, &e) < 0 ||
	    handler_registry_add_types(&reg, &e) < 0) {
		fprintf(stderr, "wakeq-api: %s\n", e.msg);
		rc = 2;
		goto out;
	}

	memset(&c, 0, sizeof(c));
	c.host = s.host;
	c.port = (int)s.port;
	c.redis_url = s.redis_url;
	c.database_url = s.database_url;
	c.queues = s.queues;
	c.api_tokens = s.api_token;
	c.no_auth = s.no_auth;
	c.max_body = (size_t)s.max_body;
	c.threads = (int)s.threads;
	c.intake_threads = (int)s.intake_threads;
	c.intake_max = (int)s.intake_max;
	c.max_connections = (unsigned)s.max_connections;
	c.conn_timeout_s = (unsigned)(s.conn_timeout + 0.5);
	c.per_ip_connections = (unsigned)s.per_ip_connections;
	c.conn_reserve = (unsigned)s.conn_reserve;
	c.header_timeout_s = s.header_timeout;
	c.body_timeout_s = s.body_timeout;
	c.wake_via = (enum wake_via)s.wake_via;
	c.timers = s.timers;
	c.wake_url = s.wake_url;
	c.wake_max_s = s.wake_max;
	c.tasks_project = s.tasks_project;
	c.tasks_location = s.tasks_location;
	c.tasks_queue = s.tasks_queue;
	c.tasks_service_account = s.tasks_service_account;
	c.tasks_endpoint = s.tasks_endpoint;
	c.tasks_bucket_s = s.tasks_bucket;
	c.wake_token = s.wake_token;
	c.wake_auth = (enum wake_auth)s.wake_auth;
	c.wake_audience = s.wake_audience;
	c.wake_fanout_max = (int)s.wake_fanout_max;
	c.worker_concurrency = (int)s.worker_concurrency;
	c.wake_backlog = (int)s.wake_backlog;
	c.max_attempts = (int)s.max_attempts;
	c.wake_hold_s = s.wake_hold;
	c.reconcile_interval_s = s.reconcile_interval;
	c.reconcile_min_age_s = s.reconcile_min_age;
	c.store_conns = (int)s.pg_conns;
	c.store_timeout_s = s.pg_timeout;
	c.redis_timeout_s = s.redis_timeout;
	c.migrate = s.migrate;
	c.data_dir = s.data_dir;
	/* the media checks refuse file:// paths outside it at the door */
	job_settings.data_dir = s.data_dir;
	c.max_upload = (uint64_t)s.max_upload;
	c.upload_target = s.upload_target;
	c.upload_url_ttl_s = s.upload_url_ttl;
	c.dashboard_path = s.dashboard_path;
	c.cors_origins = s.cors_origins;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Blocked in every thread; only sigsuspend below takes them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, &old);

	a = api_start(&c, &e);
	if (!a) {
		fprintf(stderr, "wakeq-api: %s\n", e.msg);
		rc = e.code == ERR_INVALID ? 2 : 1;
		goto out;
	}
	snprintf(port, sizeof(port), "%d", api_port(a));
	log_info("wakeq-api listening", "port", port, "queues", s.queues,
		 "postgres", s.database_url && *s.database_url ? "on" : "off",
		 "wake", !s.wake_url || !*s.wake_url ? "off" :
			 s.wake_via == WAKE_VIA_CLOUDTASKS ? "cloudtasks" : "http",
		 "timers", s.timers ? "on" : "off",
		 "auth", s.no_auth ? "off" : "bearer");
	while (!stop_signal)
		sigsuspend(&old);
	log_info("wakeq-api stopping");
	api_stop(a);
	rc = 0;
out:
	job_unregister_all();
	handler_registry_release(&reg);
	config_release(vars, &s);
	return rc;
}
