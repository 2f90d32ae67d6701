/* wakeq: the operator CLI over Redis (and the API, for enqueue). This file
 * holds the command table and the dispatch; args.c parses a command line
 * against it, the other files run the commands. */
#include "cli.h"

#include "base/version.h"
#include "config/config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define STATES "queued scheduled active retrying done failed cancelled"

/* ---- options ------------------------------------------------------------- */

static const struct cli_opt
	o_queue = { "queue", "Q", "the queue (default: the first of QUEUES, else default)", NULL },
	o_queue_any = { "queue", "Q", "only this queue (default: every queue in Redis)", NULL },
	o_queues = { "queue", "Q,...", "the queues to drain (default: QUEUES)", NULL },
	o_payload = { "payload", "JSON", "the payload, a JSON object ({})", NULL },
	o_priority = { "priority", "0-9", "0 runs first (0)", NULL },
	o_delay = { "delay", "S", "run after S seconds: the job is scheduled", NULL },
	o_max_attempts = { "max-attempts", "N",
			   "attempts before the dead letter, 1 to " CONFIG_TEXT(JOB_MAX_ATTEMPTS_MAX)
			   " (" CONFIG_TEXT(JOB_MAX_ATTEMPTS_DEFAULT) ")", NULL },
	o_job_timeout = { "timeout", "S", "the job's time limit (default: the worker's JOB_TIMEOUT)", NULL },
	o_idem = { "idempotency-key", "K", "the same key on the same queue gives the same job", NULL },
	o_unique = { "unique-key", "K",
		     "while a job with key K is queued, scheduled, retrying or running, "
		     "give that job", NULL },
	o_group = { "group", "G",
		    "the job's group (a tenant, an API key): the queue's group limits "
		    "apply to it, groups take turns", NULL },
	o_callback = { "callback-url", "URL", "a signed webhook to URL when the job ends", NULL },
	o_depends = { "depends-on", "ID,...",
		      "run after these jobs of the queue have ended (it waits meanwhile)", NULL },
	o_depfail = { "on-dependency-failure", "P",
		      "when a dependency fails or is cancelled: fail, cancel or ignore (fail)",
		      "fail cancel ignore" },
	o_count = { "count", "N", "enqueue N such jobs (1)", NULL },
	o_watch_job = { "watch", NULL,
			"follow the job until it ends (a progress bar on a terminal); "
			"exit 0 done, 5 failed, 6 cancelled", NULL },
	o_json = { "json", NULL, "JSON, even on a terminal", NULL },
	o_table = { "table", NULL, "a table, even when not on a terminal", NULL },
	o_state = { "state", "S", "only jobs in this state (default: all)", STATES },
	o_type = { "type", "T", "only jobs of this type", CLI_CHOICES_TYPES },
	o_limit_jobs = { "limit", "N", "at most N jobs (50)", NULL },
	o_limit_dead = { "limit", "N", "at most N jobs (100)", NULL },
	o_watch_stats = { "watch", NULL, "redraw every --interval until interrupted (Ctrl-C)", NULL },
	o_interval = { "interval", "S", "seconds between redraws with --watch (1)", NULL },
	o_all = { "all", NULL, "every dead job of the queue (of --type T only, with it)", NULL },
	o_token = { "token", "T", "bearer token (default: WAKE_TOKEN)", NULL },
	o_wake_timeout = { "timeout", "S",
			   "longest wait for the answer (3600); a wake still held then "
			   "counts as woken", NULL },
	o_min_age = { "min-age", "S", "only rows at least S seconds old (10)", NULL },
	o_tz = { "tz", "ZONE", "the cron's time zone, IANA (UTC)", NULL },
	o_overlap = { "overlap", "P", "skip: no job while the last one runs (default); allow",
		      "skip allow" },
	o_catchup = { "catch-up", "P", "after a downtime: one job (default), all missed, or skip",
		      "one all skip" },
	o_catchup_max = { "catch-up-max", "N", "with --catch-up all: at most N (1)", NULL },
	o_paused = { "paused", NULL, "create it paused", NULL };

static const struct cli_opt *const enqueue_opts[] = {
	&o_payload, &o_queue, &o_priority, &o_delay, &o_max_attempts, &o_job_timeout,
	&o_idem, &o_unique, &o_group, &o_callback, &o_depends, &o_depfail, &o_count, NULL
};
static const struct cli_opt *const status_opts[] = { &o_queue, &o_watch_job, NULL };
static const struct cli_opt *const queue_only_opts[] = { &o_queue, NULL };
static const struct cli_opt *const jobs_opts[] = {
	&o_queue_any, &o_state, &o_type, &o_limit_jobs, &o_json, &o_table, NULL
};
static const struct cli_opt *const stats_opts[] = {
	&o_queue_any, &o_json, &o_watch_stats, &o_interval, NULL
};
static const struct cli_opt *const dead_list_opts[] = {
	&o_queue, &o_type, &o_limit_dead, &o_json, &o_table, NULL
};
static const struct cli_opt *const dead_retry_opts[] = { &o_queue, &o_all, &o_type, NULL };
static const struct cli_opt *const drain_opts[] = { &o_queues, NULL };
static const struct cli_opt *const wake_opts[] = { &o_token, &o_wake_timeout, NULL };
static const struct cli_opt *const reconcile_opts[] = { &o_min_age, NULL };
static const struct cli_opt *const no_opts[] = { NULL };
static const struct cli_opt *const handlers_opts[] = { &o_json, NULL };
static const struct cli_opt *const sched_add_opts[] = {
	&o_queue, &o_tz, &o_payload, &o_priority, &o_max_attempts, &o_job_timeout, &o_group,
	&o_unique, &o_overlap, &o_catchup, &o_catchup_max, &o_paused, NULL
};
static const struct cli_opt *const sched_list_opts[] = { &o_queue_any, NULL };

/* ---- commands ------------------------------------------------------------ */

const struct cli_cmd cli_cmds[] = {
	{ "enqueue", "TYPE", CLI_CHOICES_TYPES, "enqueue a job, print its id",
	  "With WAKEQ_API_URL set, the job goes through the API (POST /v1/jobs,\n"
	  "bearer token WAKEQ_API_TOKEN, else API_TOKEN): it gets its Postgres\n"
	  "record, and the API wakes a worker when none is live. Otherwise it\n"
	  "goes straight into Redis (REDIS_URL), and when no worker is live on\n"
	  "the queue, WAKE_URL (with WAKE_TOKEN) is woken. Which of these\n"
	  "happened is said on stderr; stdout has one id a line.",
	  enqueue_opts, 1, 1, cmd_enqueue },
	{ "status", "ID", NULL, "a job as JSON; --watch follows it to the end",
	  "Without --queue the job is looked for in every queue. A job with\n"
	  "depends_on also lists its dependencies with their states and results.",
	  status_opts, 1, 1, cmd_status },
	{ "cancel", "ID", NULL, "cancel a queued or running job", NULL, queue_only_opts, 1, 1, cmd_cancel },
	{ "batch", "ID", NULL, "a batch as JSON: counts of its jobs by how they ended",
	  "ID is the batch's id (its callback job's, as POST /v1/batches and\n"
	  "wakeq batch create answer).\n"
	  "Without --queue the batch is looked for in every queue.",
	  queue_only_opts, 1, 1, cmd_batch },
	{ "batch create", "FILE|-", NULL, "create a batch from a JSON file, print its ids",
	  "FILE (- for stdin) is the body of POST /v1/batches: {\"jobs\": [job...],\n"
	  "\"callback\": job, \"callback_url\": URL, \"queue\": Q}, each job as enqueue's\n"
	  "(type, payload, priority, ...). The callback (a noop when none) runs once\n"
	  "every job has ended; its id is the batch's (wakeq batch ID). It goes\n"
	  "through the API or straight into Redis as enqueue does; stdout has the\n"
	  "answer, {id, queue, jobs: [ids]}, on one line. Example:\n"
	  "  echo '{\"jobs\":[{\"type\":\"noop\"},{\"type\":\"noop\"}]}' | wakeq batch create -",
	  queue_only_opts, 1, 1, cmd_batch_create },
	{ "flow", "FILE|-", NULL, "create a flow from a JSON file: a parent run after its children",
	  "FILE (- for stdin) is the body of POST /v1/flows: {\"parent\": job,\n"
	  "\"children\": [job...], \"on_dependency_failure\": fail|cancel|ignore,\n"
	  "\"queue\": Q}, each job as enqueue's; a child may have \"children\" of its\n"
	  "own. The parent runs once its children have ended (and reads their\n"
	  "results). It goes through the API or straight into Redis as enqueue\n"
	  "does; stdout has the answer, {id, status, children: [...], queue}, on one\n"
	  "line. Example:\n"
	  "  echo '{\"parent\":{\"type\":\"noop\"},\"children\":[{\"type\":\"noop\"}]}' |\n"
	  "    wakeq flow -",
	  queue_only_opts, 1, 1, cmd_flow },
	{ "jobs", "", NULL, "list jobs: a table on a terminal, JSON otherwise",
	  "Newest first for done and failed, in run order otherwise; states in\n"
	  "the order active, queued, scheduled, retrying, failed, done. No set\n"
	  "holds cancelled jobs: --state cancelled lists none (status ID shows one).",
	  jobs_opts, 0, 0, cmd_jobs },
	{ "stats", "", NULL, "counts by state, per queue",
	  "With --watch the table is redrawn like `rq info --interval`.",
	  stats_opts, 0, 0, cmd_stats },
	{ "dead list", "", NULL, "dead-letter jobs: id, type, attempts, age, error",
	  "A table on a terminal, JSON otherwise.", dead_list_opts, 0, 0, cmd_dead_list },
	{ "dead retry", "[ID]", NULL, "move dead jobs back to queued: one ID, or --all",
	  "A worker is woken afterwards as for enqueue (WAKE_URL) when none is\n"
	  "live. With --all, a progress bar on a terminal.",
	  dead_retry_opts, 0, 1, cmd_dead_retry },
	{ "dead purge", "", NULL, "delete every dead job of the queue", NULL, queue_only_opts, 0, 0,
	  cmd_dead_purge },
	{ "pause", "QUEUE", NULL, "pause a queue: it takes jobs, no worker runs them",
	  "Jobs already running finish; workers lease nothing more from QUEUE and\n"
	  "a worker whose queues are all paused ends its drain. Enqueues go on.",
	  no_opts, 1, 1, cmd_pause },
	{ "resume", "QUEUE", NULL, "resume a paused queue, waking a worker for its due work",
	  "Idle workers look at once; when none is live and work is due, WAKE_URL\n"
	  "(with WAKE_TOKEN) is woken as for enqueue.", no_opts, 1, 1, cmd_resume },
	{ "settings", "QUEUE [NAME=VALUE...]", NULL,
	  "show or change a queue's settings: retention, rate limits, concurrency",
	  "Each NAME=VALUE sets one (a number; null clears it, back to the default);\n"
	  "the others stay. Settings live in Redis: every worker and API follows\n"
	  "them at once. Names, as in PUT /v1/queues/{q}/settings:\n"
	  "  result_ttl_s         seconds a done or cancelled job stays (RESULT_TTL)\n"
	  "  done_max             done jobs kept, at most (10000)\n"
	  "  dead_max             failed jobs kept in the dead letter, at most (10000)\n"
	  "  dead_ttl_s           seconds a failed job stays (until the cap)\n"
	  "  rate_max             jobs started per rate_period_s, at most (no limit)\n"
	  "  rate_period_s        seconds (fractions allowed)\n"
	  "  concurrency          jobs running at once across all workers (no limit)\n"
	  "  group_rate_max       jobs of one group (enqueue --group) per group_rate_period_s\n"
	  "  group_rate_period_s  seconds\n"
	  "  group_concurrency    jobs of one group running at once\n"
	  "A rate and its period go together. Rate-limited jobs wait (not failed).",
	  no_opts, 1, CLI_ARGS_MAX, cmd_settings },
	{ "schedules list", "", NULL, "cron schedules, as JSON",
	  "Every queue's in Redis, or --queue's.", sched_list_opts, 0, 0, cmd_schedules_list },
	{ "schedules get", "NAME", NULL, "one cron schedule, as JSON",
	  "Its cron, zone, policies, job template, next fire time and what it did\n"
	  "(fired, skipped), as GET /v1/schedules/{name}: in --queue, else in the\n"
	  "first queue in Redis (by name) that has it. Not found: exit 3.",
	  queue_only_opts, 1, 1, cmd_schedules_get },
	{ "schedules add", "NAME CRON TYPE", NULL, "create or replace a cron schedule",
	  "CRON has 5 fields (minute hour day month weekday) or 6 (a second first),\n"
	  "or @hourly, @daily, @weekly, @monthly, @yearly; in --tz's local time (a\n"
	  "skipped local time fires when the clocks jump, a repeated one once).\n"
	  "At each fire time a job of TYPE is made on the queue, once, whichever\n"
	  "worker is there (the API wakes one for it). Example:\n"
	  "  wakeq schedules add nightly '0 3 * * *' http.request --tz Europe/Paris \\\n"
	  "    --payload '{\"url\":\"https://example.com/report\"}'",
	  sched_add_opts, 3, 3, cmd_schedules_add },
	{ "schedules delete", "NAME", NULL, "delete a schedule (its jobs stay)", NULL,
	  queue_only_opts, 1, 1, cmd_schedules_delete },
	{ "schedules pause", "NAME", NULL, "pause a schedule: no jobs until resumed", NULL,
	  queue_only_opts, 1, 1, cmd_schedules_pause },
	{ "schedules resume", "NAME", NULL, "resume a schedule from now (missed times not made)",
	  NULL, queue_only_opts, 1, 1, cmd_schedules_resume },
	{ "drain", "", NULL, "run due jobs in this process until idle, then exit",
	  "The cron mode: runs wakeq-worker --once (beside wakeq, else from PATH).",
	  drain_opts, 0, 0, cmd_drain },
	{ "wake", "URL", NULL, "POST a worker's /wake URL and print its answer",
	  "A held wake (the worker's default) answers when its drain ends: its\n"
	  "summary is printed. A wake still held after --timeout was received\n"
	  "and is being served: woken too.",
	  wake_opts, 1, 1, cmd_wake },
	{ "reconcile", "", NULL, "with DATABASE_URL: re-enqueue rows Redis lost, copy final states back",
	  NULL, reconcile_opts, 0, 0, cmd_reconcile },
	{ "handlers", "", NULL, "the job types: built in, and yours from HANDLERS_FILE",
	  "Your own types come from HANDLERS_FILE and WAKEQ_HANDLER_* (docs/HANDLERS.md),\n"
	  "each with its settings; --json for a machine.", handlers_opts, 0, 0, cmd_handlers },
	{ "completion", "bash|zsh", "bash zsh", "print a shell completion script",
	  "bash:  source <(wakeq completion bash)       (in ~/.bashrc)\n"
	  "zsh:   wakeq completion zsh > \"${fpath[1]}/_wakeq\"   (then compinit),\n"
	  "       or source <(wakeq completion zsh) after compinit",
	  no_opts, 1, 1, cmd_completion },
	{ NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL },
};

/* Settings read from the environment only (the commands take options). */
struct settings {
	int64_t result_ttl;
};

static const struct config_var env_vars[] = {
	{ "RESULT_TTL", CONFIG_INT, offsetof(struct settings, result_ttl),
	  QUEUE_RESULT_TTL_MIN, QUEUE_RESULT_TTL_MAX, CONFIG_TEXT(QUEUE_RESULT_TTL_DEFAULT),
	  "seconds a finished or cancelled job's record stays in Redis", 0, NULL },
	CONFIG_END
};

/* The command named by argv[1] (and argv[2] for a group such as "dead");
 * *words says how many words its name took. NULL when none. Two words
 * first: "batch create" is a command, "batch ID" another. */
static const struct cli_cmd *find_cmd(int argc, char **argv, int *words)
{
	const struct cli_cmd *k;
	size_t n = strlen(argv[1]);

	for (k = cli_cmds; argc > 2 && k->name; k++) {
		if (!strncmp(k->name, argv[1], n) && k->name[n] == ' ' &&
		    !strcmp(k->name + n + 1, argv[2])) {
			*words = 2;
			return k;
		}
	}
	for (k = cli_cmds; k->name; k++) {
		if (!strcmp(k->name, argv[1])) {
			*words = 1;
			return k;
		}
	}
	return NULL;
}

/* Whether `word` is a group of commands ("dead"); prints its commands. */
static int group(FILE *out, const char *word)
{
	const struct cli_cmd *k;
	size_t n = strlen(word);
	int found = 0;

	for (k = cli_cmds; k->name; k++) {
		if (!strncmp(k->name, word, n) && k->name[n] == ' ') {
			if (out) {
				if (!found)
					fprintf(out, "usage: wakeq %s COMMAND [options]\n\n", word);
				fprintf(out, "  wakeq %-22s %s\n", k->name, k->summary);
			}
			found = 1;
		}
	}
	if (found && out)
		fprintf(out, "\nwakeq %s COMMAND --help gives the options of each.\n", word);
	return found;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	struct settings s;
	struct cli c;
	struct err e;
	int words = 1, rc;

	if (argc < 2) {
		cli_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			cmd = find_cmd(argc - 1, argv + 1, &words);
			if (cmd) {
				cli_help_cmd(stdout, cmd);
				return EXIT_OK;
			}
			if (group(stdout, argv[2]))
				return EXIT_OK;
			fprintf(stderr, "wakeq: unknown command '%s' (see wakeq --help)\n", argv[2]);
			return EXIT_USAGE;
		}
		cli_help(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("wakeq %s\n", version_string());
		return EXIT_OK;
	}
	cmd = find_cmd(argc, argv, &words);
	if (!cmd) {
		if (group(NULL, argv[1])) {
			if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
				group(stdout, argv[1]);
				return EXIT_OK;
			}
			group(stderr, argv[1]);
			if (argc > 2)
				fprintf(stderr, "wakeq: unknown command '%s %s'\n", argv[1], argv[2]);
			return EXIT_USAGE;
		}
		fprintf(stderr, "wakeq: unknown command '%s' (see wakeq --help)\n", argv[1]);
		return EXIT_USAGE;
	}
	rc = cli_parse(cmd, argc - 1 - words, argv + 1 + words, &c);
	if (!c.cmd)
		return rc; /* the help, or a usage error */
	/* the environment only; a bad value stops every command */
	if (config_load(env_vars, &s, 1, argv, NULL, &e) < 0) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		return EXIT_USAGE;
	}
	queue_limits.result_ttl_s = s.result_ttl;
	/* the user's job types, so that enqueue knows them too */
	if (cli_handlers_load(&e) < 0) {
		fprintf(stderr, "wakeq: %s\n", e.msg);
		return EXIT_USAGE;
	}
	rc = cmd->run(&c);
	cli_handlers_release();
	return rc;
}
