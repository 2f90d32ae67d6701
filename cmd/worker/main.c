/* wakeq-worker: drains the queues when woken over HTTP, exits when idle. */
#include "base/err.h"
#include "base/version.h"
#include "config/config.h"
#include "config/shared_vars.h"
#include "fetch/fetch.h"
#include "handler/handler.h"
#include "job/job.h"
#include "log/log.h"
#include "log/trace.h"
#include "queue/queue.h"
#include "wake/wake.h"
#include "webhook/webhook.h"
#include "worker/worker.h"

#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define F(field) offsetof(struct worker_config, field)

static const struct config_var vars[] = {
	{ "PORT", CONFIG_INT, F(port), 0, 65535, "8080", "HTTP port", 0, NULL },
	{ "HOST", CONFIG_STRING, F(host), 0, 0, "", "bind address (empty: all)", 0, NULL },
	{ "REDIS_URL", CONFIG_STRING, F(redis_url), 0, 0, "redis://127.0.0.1:6379",
	  "redis://[:pass@]host:port/db, rediss://, unix:///path, redis+cluster://node:port", CONFIG_SECRET, NULL },
	{ "DATABASE_URL", CONFIG_STRING, F(database_url), 0, 0, "",
	  "Postgres for job records (empty: Redis only)", CONFIG_SECRET, NULL },
	{ "QUEUES", CONFIG_STRING, F(queues), 0, 0, "default",
	  "queues to drain, comma-separated, most urgent first", 0, NULL },
	{ "CONCURRENCY", CONFIG_INT, F(concurrency), 1, 1024, "1", "jobs run at once", 0, NULL },
	{ "BATCH", CONFIG_INT, F(batch), 1, 1000, "64", "jobs taken or settled per round trip", 0, NULL },
	{ "IDLE_TIMEOUT", CONFIG_SECONDS, F(idle_timeout), 0.001, 86400, "30",
	  "a drain ends, then the process exits, after this long with nothing due", 0, NULL },
	{ "EMPTY_WAKE_LINGER", CONFIG_SECONDS, F(empty_wake_linger), 0, 86400, "0",
	  "a wake that finds nothing due (none within IDLE_TIMEOUT) answers after this", 0, NULL },
	{ "REDIS_IDLE_MAX", CONFIG_SECONDS, F(redis_idle_max), 0, 86400, "60",
	  "a drain reconnects when the last one's connection was idle longer (0: never)", 0, NULL },
	{ "EXIT_ON_IDLE", CONFIG_BOOL, F(exit_on_idle), 0, 0, "true",
	  "exit 0 when idle (scale to zero)", 0, NULL },
	{ "LEASE", CONFIG_SECONDS, F(lease), 0.1, 86400, "60",
	  "lease of a running job; renewed three times per lease", 0, NULL },
	{ "JOB_TIMEOUT", CONFIG_SECONDS, F(job_timeout), 0, 604800, "3600",
	  "default job timeout (0: none); a job's timeout_s wins", 0, NULL },
	{ "SHUTDOWN_GRACE", CONFIG_SECONDS, F(shutdown_grace), 0.1, 3600, "9",
	  "on SIGTERM, time for in-flight jobs before they are re-queued", 0, NULL },
	{ "WAKE_MAX", CONFIG_SECONDS, F(wake_max), 1, 86400, "3540",
	  "a drain ends before this (the platform's request deadline)", 0, NULL },
	{ "WAKE_TOKEN", CONFIG_STRING, F(wake_token), 0, 0, "",
	  "bearer token required on /wake and /status (empty: none)",
	  CONFIG_SECRET | CONFIG_TOKEN, NULL },
	{ "MAX_CONNECTIONS", CONFIG_INT, F(max_connections), 2, 100000, "256",
	  "open HTTP connections at most (a thread each)", 0, NULL },
	CONFIG_VARS_HTTP_LIMITS("64", "16"),
	{ "BODY_TIMEOUT", CONFIG_SECONDS, F(body_timeout), 0.1, 3600, "30",
	  "a request body must arrive whole within this of its headers", 0, NULL },
	{ "BACKOFF_BASE", CONFIG_SECONDS, F(backoff_base), 0.001, 86400, "1",
	  "first retry delay; doubles each attempt, with jitter", 0, NULL },
	{ "BACKOFF_CAP", CONFIG_SECONDS, F(backoff_cap), 0.001, 604800, "600",
	  "longest retry delay", 0, NULL },
	{ "RESULT_TTL", CONFIG_INT, F(result_ttl), QUEUE_RESULT_TTL_MIN, QUEUE_RESULT_TTL_MAX,
	  CONFIG_TEXT(QUEUE_RESULT_TTL_DEFAULT),
	  "seconds a finished or cancelled job's record stays in Redis", 0, NULL },
	{ "WORKER_ID", CONFIG_STRING, F(worker_id), 0, 0, "", "worker id (empty: host-pid-random)", 0, NULL },
	{ "DATA_DIR", CONFIG_STRING, F(data_dir), 0, 0, "/tmp/wakeq",
	  "root of file:// inputs and outputs", 0, NULL },
	{ "ALLOW_PRIVATE_NETWORKS", CONFIG_STRING, F(allow_private), 0, 0, "",
	  "outbound to private addresses: '' none, loopback, all, or CIDRs", 0, NULL },
	{ "MAX_INPUT_BYTES", CONFIG_SIZE, F(max_input_bytes), 1, 1099511627776.0, "2G",
	  "cap on downloaded inputs (http, s3, gs: held in TMPDIR, memory on Cloud Run)", 0, NULL },
	{ "WEBHOOK_SECRET", CONFIG_STRING, F(webhook_secret), 0, 0, "",
	  "HMAC-SHA256 key of webhook signatures (whsec_BASE64 for Standard Webhooks)",
	  CONFIG_SECRET, NULL },
	{ "WEBHOOK_SECRET_PREVIOUS", CONFIG_STRING, F(webhook_secret_previous), 0, 0, "",
	  "the secret being rotated out: webhooks carry both signatures", CONFIG_SECRET, NULL },
	{ "HANDLERS_FILE", CONFIG_STRING, F(handlers_file), 0, 0, "",
	  "your own job types (docs/HANDLERS.md); also WAKEQ_HANDLER_<TYPE>", 0, NULL },
	{ "WAKE_VIA", CONFIG_ENUM, F(wake_via), 0, 0, "http",
	  "cloudtasks: arrange the next wake as a Cloud Tasks task before a drain answers",
	  0, wake_via_choices },
	{ "WAKE_URL", CONFIG_STRING, F(wake_url), 0, 0, "",
	  "cloudtasks: this worker's /wake URL (empty = the URL the last /wake came to)", 0, NULL },
	{ "WAKE_AUDIENCE", CONFIG_STRING, F(wake_audience), 0, 0, "",
	  "cloudtasks: audience of the tasks' OIDC tokens (empty = origin of the URL)", 0, NULL },
	CONFIG_VARS_CLOUD_TASKS,
	{ "ONCE", CONFIG_BOOL, F(once), 0, 0, "false",
	  "drain at start without HTTP until idle, then exit (cron mode)", 0, NULL },
	{ "LOG_FORMAT", CONFIG_ENUM, F(log_format), 0, 0, "text",
	  "json: one object a line for Cloud Logging; text for people", 0, log_format_choices },
	{ "LOG_LEVEL", CONFIG_ENUM, F(log_level), 0, 0, "info",
	  "lowest level logged", 0, log_level_choices },
	CONFIG_END
};

/* HANDLERS_FILE as --help sees it: the flag, else the environment. */
static const char *handlers_file_arg(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--handlers-file") && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], "--handlers-file=", 16))
			return argv[i] + 16;
	}
	return getenv("HANDLERS_FILE");
}

static void usage(int argc, char **argv)
{
	struct handler_registry reg;
	const struct job_type *t;
	struct err e;
	char line[512];
	size_t i;

	printf("usage: wakeq-worker [--FLAG VALUE]...\n\n"
	       "Drains wakeq queues when POST /wake arrives and exits when idle,\n"
	       "so the platform can scale it to zero. Every setting is an\n"
	       "environment variable, or the flag beside it (--version prints\n"
	       "the version):\n\n");
	config_usage(stdout, vars);
	printf("\nEndpoints: POST /wake[?wait=0], GET /healthz, /readyz, /metrics, /status\n");
	printf("\nJob types:\n");
	for (i = 0; (t = job_type_at(i)); i++)
		if (!t->internal)
			printf("  %-22s built in\n", t->name);
	handler_registry_init(&reg);
	if (handler_registry_load(&reg, handlers_file_arg(argc, argv), environ, &e) < 0) {
		printf("  (handler registry not loaded: %s)\n", e.msg);
	} else {
		for (i = 0; i < reg.n; i++) {
			handler_summary(&reg.items[i], line, sizeof(line));
			printf("  %-22s %s\n", reg.items[i].type, line);
		}
	}
	handler_registry_release(&reg);
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	struct worker_config cfg;
	struct handler_registry reg;
	struct handler_opts hopts;
	struct worker *w;
	struct err e;
	sigset_t set;
	int argi, r, rc = 2;

	/* Slot threads allocate little and briefly: two malloc arenas instead
	 * of one per thread keep the resident size down (~1 MiB at 32 slots). */
	mallopt(M_ARENA_MAX, 2);
	if (version_asked(argc, argv)) {
		printf("wakeq-worker %s\n", version_string());
		return 0;
	}
	memset(&cfg, 0, sizeof(cfg));
	r = config_load(vars, &cfg, argc, argv, &argi, &e);
	if (r == 1) {
		usage(argc, argv);
		rc = 0;
		goto out;
	}
	if (r < 0 || argi < argc) {
		fprintf(stderr, "wakeq-worker: %s\n",
			r < 0 ? e.msg : "unexpected argument (see --help)");
		goto out;
	}
	if (cfg.conn_reserve >= cfg.max_connections) {
		fprintf(stderr, "wakeq-worker: bad CONN_RESERVE '%lld': must be below "
			"MAX_CONNECTIONS (%lld)\n", (long long)cfg.conn_reserve,
			(long long)cfg.max_connections);
		goto out;
	}
	log_init((enum log_format)cfg.log_format, (enum log_level)cfg.log_level, 2);
	log_trace_set_project_fn(fetch_gcp_project);

	job_settings.data_dir = cfg.data_dir;
	job_settings.allow_private = cfg.allow_private;
	job_settings.max_input_bytes = cfg.max_input_bytes;
	/* downloads of inputs and outputs before upload go where handlers'
	 * work folders go: TMPDIR (on Cloud Run, /tmp is memory) */
	if (tmp && *tmp)
		job_settings.tmp_dir = tmp;
	job_settings.webhook_secret = cfg.webhook_secret;
	job_settings.webhook_secret_previous = cfg.webhook_secret_previous;
	if (fetch_check_settings(&e) < 0 || webhook_check_settings(&e) < 0) {
		fprintf(stderr, "wakeq-worker: %s\n", e.msg);
		goto out;
	}
	job_bind_core();
	fetch_bind_jobs();
	webhook_bind_jobs();
	worker_bind_media();
	/* The user's own types: a bad entry stops start-up with one line. */
	handler_registry_init(&reg);
	memset(&hopts, 0, sizeof(hopts));
	hopts.tmp_root = tmp;
	hopts.idle_s = cfg.idle_timeout;
	if (handler_registry_load(&reg, cfg.handlers_file, environ, &e) < 0 ||
	    handler_registry_add_types(&reg, &e) < 0 || handler_bind(&reg, &hopts, &e) < 0) {
		fprintf(stderr, "wakeq-worker: %s\n", e.msg);
		goto out;
	}
	if (reg.n) {
		char n[16];

		snprintf(n, sizeof(n), "%zu", reg.n);
		log_info("handlers registered", "count", n, "types", job_type_names());
	}

	/* Signals go to the main thread only: every thread inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	w = worker_start(&cfg, &e);
	if (!w) {
		fprintf(stderr, "wakeq-worker: %s\n", e.msg);
		rc = 1;
		goto out;
	}
	if (cfg.once) {
		log_info("draining once", "queues", cfg.queues);
	} else {
		char port[16];

		snprintf(port, sizeof(port), "%d", worker_port(w));
		log_info("worker listening", "port", port, "queues", cfg.queues);
	}
	for (;;) {
		struct timespec ts = { 0, 100000000 };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			worker_shutdown(w);
			log_info("stopped", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		if (worker_idle_exit_due(w)) {
			log_info("idle, exiting");
			break;
		}
	}
	/* Persistent handlers (gracefully: their slot threads still live),
	 * and process groups of jobs that outlived the shutdown grace. The
	 * registry stays: a stuck slot may still read it until the exit. */
	handler_stop();
	worker_free(w);
	rc = 0;
out:
	config_release(vars, &cfg);
	return rc;
}
