/* wakeq: the operator CLI over Redis. */
#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/parse.h"
#include "config/config.h"
#include "handler/handler.h"
#include "job/job.h"
#include "queue/queue.h"
#include "reconcile/reconcile.h"
#include "store/store.h"
#include "wake/wake.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit codes: 0 ok, 1 operation failed (Redis down, ...), 2 usage,
 * 3 not found, 4 conflict. */
enum { EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOTFOUND, EXIT_CONFLICT };

static const char *const usage_text =
	"usage: wakeq COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  enqueue TYPE [--payload JSON] [--queue Q] [--priority 0-9] [--delay S]\n"
	"          [--max-attempts 1-" CONFIG_TEXT(JOB_MAX_ATTEMPTS_MAX) "] [--timeout S]\n"
	"          [--idempotency-key K] [--callback-url URL] [--count N]\n"
	"                                         enqueue, print the ids\n"
	"  status ID [--queue Q]                  the job as JSON\n"
	"  cancel ID [--queue Q]                  cancel a queued or running job\n"
	"  stats [--json] [--queue Q]             counts by state, per queue\n"
	"  dead list [--queue Q] [--limit N]      dead-letter ids\n"
	"  dead retry ID [--queue Q]              move a dead job back to queued\n"
	"  dead purge [--queue Q]                 delete every dead job\n"
	"  drain [--queue Q,...]                  run jobs in this process until\n"
	"                                         idle, then exit (cron mode);\n"
	"                                         runs wakeq-worker --once\n"
	"  wake URL [--token T] [--timeout S]     POST URL (a worker's /wake) and\n"
	"                                         print its answer: after a held\n"
	"                                         wake, the drain summary; still\n"
	"                                         draining after S (3600) is woken\n"
	"  reconcile [--min-age S]                with DATABASE_URL: re-enqueue\n"
	"                                         rows Redis lost, copy final\n"
	"                                         states back to Postgres\n"
	"  handlers [--json]                      the job types: built in, and\n"
	"                                         your own from HANDLERS_FILE and\n"
	"                                         WAKEQ_HANDLER_* with settings\n"
	"\n"
	"Environment: REDIS_URL (redis://127.0.0.1:6379), QUEUES (default),\n"
	"DATABASE_URL (reconcile), HANDLERS_FILE (enqueue, handlers),\n"
	"WAKE_TOKEN, RESULT_TTL (86400: seconds a cancelled job's record\n"
	"stays in Redis, as the worker's).\n"
	"Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 conflict.\n";

/* Settings read from the environment only (the commands take flags). */
struct settings {
	int64_t result_ttl;
};

static const struct config_var env_vars[] = {
	{ "RESULT_TTL", CONFIG_INT, offsetof(struct settings, result_ttl),
	  QUEUE_RESULT_TTL_MIN, QUEUE_RESULT_TTL_MAX, CONFIG_TEXT(QUEUE_RESULT_TTL_DEFAULT),
	  "seconds a finished or cancelled job's record stays in Redis", 0, NULL },
	CONFIG_END
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wakeq: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see wakeq --help)\n");
	return EXIT_USAGE;
}

static struct queue *connect_or_die(void)
{
	static struct queue_opts o; /* REDIS_URL, parsed on first use */
	static int parsed;
	struct queue *q;
	struct err e;

	if (!parsed) {
		if (queue_opts_init(&o, getenv("REDIS_URL"), &e) < 0) {
			fprintf(stderr, "wakeq: bad REDIS_URL: %s\n", e.msg);
			exit(EXIT_USAGE);
		}
		o.connect_timeout_s = 5;
		parsed = 1;
	}
	q = queue_connect(&o, &e);
	if (!q) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		exit(EXIT_FAIL);
	}
	return q;
}

static int exit_for(const struct err *e)
{
	fprintf(stderr, "wakeq: %s\n", e->msg);
	switch (e->code) {
	case ERR_NOTFOUND: return EXIT_NOTFOUND;
	case ERR_CONFLICT: return EXIT_CONFLICT;
	case ERR_INVALID: return EXIT_USAGE;
	default: return EXIT_FAIL;
	}
}

static const char *default_queue(void)
{
	const char *q = getenv("QUEUES");
	static char first[QUEUE_NAME_MAX + 1];

	if (!q || !*q)
		return "default";
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(q, ","), q);
	return first;
}

enum {
	O_PAYLOAD = 256, O_QUEUE, O_PRIORITY, O_DELAY, O_MAX_ATTEMPTS, O_TIMEOUT,
	O_IDEM, O_CALLBACK, O_COUNT, O_JSON, O_LIMIT, O_TOKEN
};

static const struct option long_opts[] = {
	{ "payload", required_argument, NULL, O_PAYLOAD },
	{ "queue", required_argument, NULL, O_QUEUE },
	{ "priority", required_argument, NULL, O_PRIORITY },
	{ "delay", required_argument, NULL, O_DELAY },
	{ "max-attempts", required_argument, NULL, O_MAX_ATTEMPTS },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "idempotency-key", required_argument, NULL, O_IDEM },
	{ "callback-url", required_argument, NULL, O_CALLBACK },
	{ "count", required_argument, NULL, O_COUNT },
	{ "json", no_argument, NULL, O_JSON },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "token", required_argument, NULL, O_TOKEN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct opts {
	const char *payload, *queue, *idem, *callback, *token;
	int64_t priority, max_attempts, count, limit;
	double delay, timeout;
	int json;
};

/* Parses options after the command word; positional args are left in
 * argv[optind..]. Returns 0 or an exit code. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->count = 1;
	o->limit = 100;
	o->queue = default_queue();
	o->token = getenv("WAKE_TOKEN");
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case O_PAYLOAD: o->payload = optarg; break;
		case O_QUEUE: o->queue = optarg; break;
		case O_IDEM: o->idem = optarg; break;
		case O_CALLBACK: o->callback = optarg; break;
		case O_TOKEN: o->token = optarg; break;
		case O_JSON: o->json = 1; break;
		case O_PRIORITY:
			if (parse_int64(optarg, 0, JOB_PRIORITY_MAX, &o->priority) < 0)
				return usage_error("bad --priority '%s': expected 0 to 9", optarg);
			break;
		case O_MAX_ATTEMPTS:
			if (parse_int64(optarg, 1, JOB_MAX_ATTEMPTS_MAX, &o->max_attempts) < 0)
				return usage_error("bad --max-attempts '%s': expected an integer from 1 to %d",
						   optarg, JOB_MAX_ATTEMPTS_MAX);
			break;
		case O_COUNT:
			if (parse_int64(optarg, 1, 10000000, &o->count) < 0)
				return usage_error("bad --count '%s': expected 1 to 10000000", optarg);
			break;
		case O_LIMIT:
			if (parse_int64(optarg, 1, 100000, &o->limit) < 0)
				return usage_error("bad --limit '%s': expected 1 to 100000", optarg);
			break;
		case O_DELAY:
			if (parse_seconds(optarg, 0, 31536000, &o->delay) < 0)
				return usage_error("bad --delay '%s': expected seconds", optarg);
			break;
		case O_TIMEOUT:
			if (parse_seconds(optarg, 0, 604800, &o->timeout) < 0)
				return usage_error("bad --timeout '%s': expected seconds", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(EXIT_OK);
		default:
			return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	return 0;
}

/* The handler registry (HANDLERS_FILE, WAKEQ_HANDLER_*), registered as
 * job types for the process's life. Returns 0 or an exit code. */
static struct handler_registry registry;

static int load_handlers(void)
{
	struct err e;

	handler_registry_init(&registry);
	if (handler_registry_load(&registry, getenv("HANDLERS_FILE"), environ, &e) < 0 ||
	    handler_registry_add_types(&registry, &e) < 0) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		return EXIT_USAGE;
	}
	return 0;
}

static int cmd_handlers(int argc, char **argv)
{
	const struct job_type *t;
	struct opts o;
	char line[512];
	size_t i;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	if (optind != argc)
		return usage_error("handlers takes only --json");
	rc = load_handlers();
	if (rc)
		return rc;
	if (o.json) {
		json_t *all = json_array();
		char *text;

		for (i = 0; (t = job_type_at(i)); i++) {
			const struct handler *h = handler_find(&registry, t->name);

			if (t->internal)
				continue;
			if (h) {
				json_array_append_new(all, handler_to_json(h));
			} else {
				json_t *b = json_object();

				json_object_set_new(b, "type", json_string(t->name));
				json_object_set_new(b, "kind", json_string("built-in"));
				json_array_append_new(all, b);
			}
		}
		text = json_dumps(all, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(all);
		return EXIT_OK;
	}
	printf("%-24s %s\n", "TYPE", "SETTINGS");
	for (i = 0; (t = job_type_at(i)); i++) {
		const struct handler *h = handler_find(&registry, t->name);

		if (t->internal)
			continue;
		if (h)
			handler_summary(h, line, sizeof(line));
		else
			snprintf(line, sizeof(line), "built in");
		printf("%-24s %s\n", t->name, line);
		if (h)
			printf("%-24s   from %s\n", "", h->origin);
	}
	return EXIT_OK;
}

static int cmd_enqueue(int argc, char **argv)
{
	struct job_spec *specs;
	struct queue_enqueued *out;
	struct opts o;
	struct queue *q;
	struct err e;
	const char *type;
	int64_t done = 0;
	size_t i;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	if (optind != argc - 1)
		return usage_error("enqueue takes one job TYPE");
	type = argv[optind];
	rc = load_handlers();
	if (rc)
		return rc;
	if (job_check(type, o.payload, &e) < 0)
		return exit_for(&e);
	if (queue_name_check(o.queue, &e) < 0)
		return exit_for(&e);
	if (o.idem && o.count > 1)
		return usage_error("--idempotency-key and --count > 1 do not mix");
	specs = xcalloc(QUEUE_MAX_BATCH, sizeof(*specs));
	out = xcalloc(QUEUE_MAX_BATCH, sizeof(*out));
	for (i = 0; i < QUEUE_MAX_BATCH; i++) {
		specs[i].queue = o.queue;
		specs[i].type = type;
		specs[i].payload = o.payload;
		specs[i].priority = (int)o.priority;
		specs[i].delay_ms = (int64_t)(o.delay * 1000);
		specs[i].max_attempts = (int)o.max_attempts;
		specs[i].timeout_s = o.timeout;
		specs[i].idempotency_key = o.idem;
		specs[i].callback_url = o.callback;
		job_spec_type_defaults(&specs[i]);
	}
	q = connect_or_die();
	while (done < o.count) {
		size_t n = o.count - done > QUEUE_MAX_BATCH ? QUEUE_MAX_BATCH : (size_t)(o.count - done);

		if (queue_enqueue(q, o.queue, specs, n, out, NULL, &e) < 0) {
			rc = exit_for(&e);
			break;
		}
		for (i = 0; i < n; i++)
			printf("%s\n", out[i].id);
		done += (int64_t)n;
	}
	queue_free(q);
	free(specs);
	free(out);
	return rc;
}

/* Reads the job `id` from the --queue given, else from every queue in
 * Redis. Returns 0 with *out filled (release it), or -1 with e. */
static int job_anywhere(struct queue *q, const struct opts *o, int explicit_queue,
			const char *id, struct job_info *out, struct err *e)
{
	char **names;
	int n, i, rc;

	rc = queue_job_get(q, o->queue, id, out, e);
	if (rc == 0 || explicit_queue || e->code != ERR_NOTFOUND)
		return rc;
	n = queue_discover(q, &names, e);
	for (i = 0; i < n; i++) {
		if (rc < 0)
			rc = queue_job_get(q, names[i], id, out, e);
		free(names[i]);
	}
	free(names);
	if (rc < 0 && n >= 0)
		err_set(e, ERR_NOTFOUND, "no job '%s' in any queue", id);
	return rc;
}

static int explicit_queue(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--queue", 7))
			return 1;
	return 0;
}

static int cmd_status(int argc, char **argv)
{
	struct opts o;
	struct job_info job;
	struct queue *q;
	struct err e;
	json_t *doc;
	char *text;
	int rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	if (optind != argc - 1)
		return usage_error("status takes one job ID");
	q = connect_or_die();
	rc = job_anywhere(q, &o, explicit_queue(argc, argv), argv[optind], &job, &e);
	queue_free(q);
	if (rc < 0)
		return exit_for(&e);
	doc = job_info_to_json(&job);
	text = json_dumps(doc, JSON_COMPACT);
	printf("%s\n", text);
	free(text);
	json_decref(doc);
	job_info_release(&job);
	return EXIT_OK;
}

static int cmd_cancel(int argc, char **argv)
{
	struct opts o;
	struct queue *q;
	struct err e;
	int r, rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	if (optind != argc - 1)
		return usage_error("cancel takes one job ID");
	q = connect_or_die();
	r = queue_cancel(q, o.queue, argv[optind], &e);
	queue_free(q);
	if (r < 0)
		return exit_for(&e);
	printf("%s\n", r == 1 ? "cancel requested" :
	       r == QUEUE_CANCELLED_DELIVERY ? "cancelled (its webhook waits for a worker)" :
	       "cancelled");
	return EXIT_OK;
}

static int cmd_stats(int argc, char **argv)
{
	struct opts o;
	struct queue *q;
	struct err e;
	char **names = NULL;
	json_t *all = json_object();
	int n, i, s, rc = parse_opts(argc, argv, &o);

	if (rc)
		return rc;
	q = connect_or_die();
	if (explicit_queue(argc, argv)) {
		names = xcalloc(1, sizeof(*names));
		names[0] = xstrdup(o.queue);
		n = 1;
	} else {
		n = queue_discover(q, &names, &e);
		if (n < 0) {
			queue_free(q);
			return exit_for(&e);
		}
	}
	if (!o.json)
		printf("%-20s %8s %9s %8s %8s %10s %8s %9s %7s\n", "QUEUE", "queued",
		       "scheduled", "active", "retrying", "done", "failed", "cancelled",
		       "workers");
	for (i = 0; i < n; i++) {
		struct queue_counts c;

		if (queue_counts(q, names[i], &c, &e) < 0) {
			rc = exit_for(&e);
		} else if (o.json) {
			json_t *one = json_object();

			for (s = 0; s < JOB_NSTATUS; s++)
				json_object_set_new(one, job_status_name((enum job_status)s),
						    json_integer(c.n[s]));
			json_object_set_new(one, "workers", json_integer(c.workers));
			json_object_set_new(one, "stale_refused", json_integer(c.stale));
			json_object_set_new(all, names[i], one);
		} else {
			printf("%-20s %8lld %9lld %8lld %8lld %10lld %8lld %9lld %7lld\n", names[i],
			       (long long)c.n[JOB_QUEUED], (long long)c.n[JOB_SCHEDULED],
			       (long long)c.n[JOB_ACTIVE], (long long)c.n[JOB_RETRYING],
			       (long long)c.n[JOB_DONE], (long long)c.n[JOB_FAILED],
			       (long long)c.n[JOB_CANCELLED], (long long)c.workers);
		}
		free(names[i]);
	}
	free(names);
	if (o.json) {
		char *text = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);

		printf("%s\n", text);
		free(text);
	}
	json_decref(all);
	queue_free(q);
	return rc;
}

static int cmd_dead(int argc, char **argv)
{
	struct opts o;
	struct queue *q;
	struct err e;
	const char *sub;
	int rc;

	if (argc < 2)
		return usage_error("dead needs list, retry ID or purge");
	sub = argv[1];
	rc = parse_opts(argc - 1, argv + 1, &o);
	if (rc)
		return rc;
	q = connect_or_die();
	if (!strcmp(sub, "list") && optind == argc - 1) {
		char **ids;
		int n = queue_list(q, o.queue, JOB_FAILED, 0, (size_t)o.limit, &ids, &e), i;

		if (n < 0) {
			rc = exit_for(&e);
		} else {
			for (i = 0; i < n; i++) {
				printf("%s\n", ids[i]);
				free(ids[i]);
			}
			free(ids);
		}
	} else if (!strcmp(sub, "retry") && optind == argc - 2) {
		if (queue_retry_dead(q, o.queue, argv[optind + 1], &e) < 0)
			rc = exit_for(&e);
		else
			printf("queued %s\n", argv[optind + 1]);
	} else if (!strcmp(sub, "purge") && optind == argc - 1) {
		int64_t n = queue_purge_dead(q, o.queue, &e);

		if (n < 0)
			rc = exit_for(&e);
		else
			printf("purged %lld\n", (long long)n);
	} else {
		rc = usage_error("dead needs list, retry ID or purge (got '%s')", sub);
	}
	queue_free(q);
	return rc;
}

/* wakeq drain: the worker binary does the work (it links the handlers);
 * run it beside this one, or from PATH, in once mode. */
static int cmd_drain(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--queue") && i + 1 < argc) {
			setenv("QUEUES", argv[++i], 1);
		} else if (!strncmp(argv[i], "--queue=", 8)) {
			setenv("QUEUES", argv[i] + 8, 1);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else {
			return usage_error("drain takes only --queue Q,... (got '%s')", argv[i]);
		}
	}
	setenv("ONCE", "true", 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof(path), "%s/wakeq-worker", self);
			execl(path, "wakeq-worker", (char *)NULL);
		}
	}
	execlp("wakeq-worker", "wakeq-worker", (char *)NULL);
	fprintf(stderr, "wakeq: cannot run wakeq-worker: not beside wakeq nor in PATH\n");
	return EXIT_FAIL;
}

/* wakeq wake: the worker holds /wake open until its drain ends and then
 * answers the drain summary; a wake still held after --timeout was sent
 * and is being served, so it counts as woken too (wake_once). */
static int cmd_wake(int argc, char **argv)
{
	const char *url = NULL, *token = getenv("WAKE_TOKEN");
	double timeout = 3600;
	char *body = NULL;
	struct err e;
	int i, status;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--token") && i + 1 < argc) {
			token = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (parse_seconds(argv[++i], 0.001, 86400, &timeout) < 0)
				return usage_error("bad --timeout '%s': expected seconds from 0.001 to 86400",
						   argv[i]);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else if (argv[i][0] != '-' && !url) {
			url = argv[i];
		} else {
			return usage_error("wake takes URL [--token T] [--timeout S] (got '%s')", argv[i]);
		}
	}
	if (!url)
		return usage_error("wake needs the worker's /wake URL");
	if (wake_once(url, token, timeout, &status, &body, &e) < 0)
		return exit_for(&e);
	if (body && *body)
		printf("%s\n", body); /* the drain summary, or the 202 of ?wait=0 */
	else if (!status)
		printf("woken: '%s' still draining after %g s\n", url, timeout);
	else
		printf("woken: '%s' answered HTTP %d\n", url, status);
	free(body);
	return EXIT_OK;
}

static int cmd_reconcile(int argc, char **argv)
{
	const char *url = getenv("DATABASE_URL");
	struct reconcile_stats st;
	struct store *s;
	struct queue *q;
	struct err e;
	double min_age = 10;
	int rc = EXIT_OK;

	if (argc == 3 && !strcmp(argv[1], "--min-age")) {
		if (parse_seconds(argv[2], 0.001, 31536000, &min_age) < 0)
			return usage_error("bad --min-age '%s': expected seconds", argv[2]);
	} else if (argc != 1) {
		return usage_error("reconcile takes only --min-age S");
	}
	if (!url || !*url)
		return usage_error("reconcile needs DATABASE_URL");
	s = store_open(url, 1, &e);
	if (!s)
		return exit_for(&e);
	q = connect_or_die();
	memset(&st, 0, sizeof(st));
	if (reconcile_run(q, s, min_age, &st, &e) < 0)
		rc = exit_for(&e);
	else
		printf("scanned %lld, requeued %lld, finals copied %lld, errors %lld\n",
		       (long long)st.scanned, (long long)st.requeued, (long long)st.finals,
		       (long long)st.errors);
	queue_free(q);
	store_free(s);
	return rc ? rc : st.errors ? EXIT_FAIL : EXIT_OK;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	struct settings s;
	struct err e;

	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_text, cmd ? stdout : stderr);
		return cmd ? EXIT_OK : EXIT_USAGE;
	}
	/* argc 1: the environment only; a bad value stops every command */
	if (config_load(env_vars, &s, 1, argv, NULL, &e) < 0) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		return EXIT_USAGE;
	}
	queue_limits.result_ttl_s = s.result_ttl;
	argc--;
	argv++;
	if (!strcmp(cmd, "enqueue"))
		return cmd_enqueue(argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "cancel"))
		return cmd_cancel(argc, argv);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "dead"))
		return cmd_dead(argc, argv);
	if (!strcmp(cmd, "drain"))
		return cmd_drain(argc, argv);
	if (!strcmp(cmd, "wake"))
		return cmd_wake(argc, argv);
	if (!strcmp(cmd, "reconcile"))
		return cmd_reconcile(argc, argv);
	if (!strcmp(cmd, "handlers"))
		return cmd_handlers(argc, argv);
	return usage_error("unknown command '%s'", cmd);
}
