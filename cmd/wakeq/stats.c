/* stats.c - counts by state per queue, once or redrawn (--watch). */
#include "cli.h"

#include "base/clock.h"
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

/* One round of stats: the table or the JSON document on stdout. */
static int stats_once(const struct cli *c, struct queue *q, int json, int compact)
{
	char **names = NULL;
	json_t *all = json_object();
	struct err e;
	int n, i, s, rc = EXIT_OK;

	n = cli_queue_names(c, q, &names, &e);
	if (n < 0) {
		json_decref(all);
		return cli_exit_for(&e);
	}
	if (!json)
		printf("%-20s %8s %9s %8s %8s %8s %10s %8s %9s %7s\n", "QUEUE", "queued",
		       "scheduled", "active", "retrying", "waiting", "done", "failed",
		       "cancelled", "workers");
	for (i = 0; i < n; i++) {
		struct queue_counts k;

		if (queue_counts(q, names[i], &k, &e) < 0) {
			rc = cli_exit_for(&e);
		} else if (json) {
			json_t *one = json_object();

			for (s = 0; s < JOB_NSTATUS; s++)
				json_object_set_new(one, job_status_name((enum job_status)s),
						    json_integer(k.n[s]));
			json_object_set_new(one, "workers", json_integer(k.workers));
			json_object_set_new(one, "stale_refused", json_integer(k.stale));
			json_object_set_new(one, "paused", json_boolean(k.paused));
			json_object_set_new(one, "done_total", json_integer(k.done_total));
			json_object_set_new(one, "failed_total", json_integer(k.failed_total));
			json_object_set_new(all, names[i], one);
		} else {
			printf("%-20s %8lld %9lld %8lld %8lld %8lld %10lld %8lld %9lld %7lld%s\n", names[i],
			       (long long)k.n[JOB_QUEUED], (long long)k.n[JOB_SCHEDULED],
			       (long long)k.n[JOB_ACTIVE], (long long)k.n[JOB_RETRYING],
			       (long long)k.n[JOB_WAITING], (long long)k.n[JOB_DONE], (long long)k.n[JOB_FAILED],
			       (long long)k.n[JOB_CANCELLED], (long long)k.workers,
			       k.paused ? "  paused" : "");
		}
		free(names[i]);
	}
	free(names);
	if (json)
		cli_print_json(all, (compact ? JSON_COMPACT : JSON_INDENT(2)) | JSON_SORT_KEYS);
	else
		json_decref(all);
	return rc;
}

int cmd_stats(struct cli *c)
{
	int json = cli_get(c, "json") != NULL;
	double interval = 1;
	struct queue *q;
	struct err e;
	int rc;

	if ((rc = cli_seconds(c, "interval", 0.1, 86400, &interval)) != 0)
		return rc;
	if (cli_get(c, "interval") && !cli_get(c, "watch"))
		return cli_usage_error(c, "--interval goes with --watch");
	if (cli_get(c, "queue") && queue_name_check(cli_get(c, "queue"), &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	if (!cli_get(c, "watch")) {
		rc = stats_once(c, q, json, 0);
		queue_free(q);
		return rc;
	}
	/* like `rq info --interval`: on a terminal the screen is redrawn,
	 * otherwise each round follows the last (JSON: one line a round) */
	term_catch_signals();
	while (!term_interrupted()) {
		char now[CLOCK_RFC3339_LEN];
		int64_t end = clock_mono_us() + (int64_t)(interval * 1e6);

		if (term_tty())
			printf("\033[H\033[2J");
		if (!json)
			printf("every %gs: %s\n", interval, clock_rfc3339(clock_now_us(), now));
		stats_once(c, q, json, 1);
		if (!json && !term_tty())
			printf("\n");
		fflush(stdout);
		while (!term_interrupted() && clock_mono_us() < end)
			clock_sleep_us(end - clock_mono_us() < 50000 ? end - clock_mono_us() : 50000);
	}
	queue_free(q);
	return EXIT_OK;
}
