/* bench_handlers - load generator and baselines for tests/bench/handlers.sh:
 *
 *   bench_handlers enqueue URL QUEUE TYPE N IDS_FILE
 *       enqueues N jobs of TYPE with payloads {"n":I} (I = 0..N-1), 1,000
 *       per round trip, through the real queue API; writes their ids, one
 *       a line, to IDS_FILE.
 *   bench_handlers span URL QUEUE IDS_FILE
 *       reads every job of IDS_FILE and prints
 *       "done=D span_s=S tput=J run_us_p50=R run_us_p90=R90": D jobs done,
 *       S seconds from the first job's started to the last one's finished
 *       (Redis TIME stamps), J = D / S, and the per-job started->finished
 *       time. Exit 1 unless every job is done.
 * (The bare fork+exec baseline is tests/bench/spawnloop.c: a process this
 * size, linked with the FFmpeg libraries, forks slower than the worker.)
 *
 * Exit 0 on success, 1 on a failure (message on stderr), 2 on bad usage.
 */
#include "base/clock.h"
#include "benchstat.h"
#include "job/job.h"
#include "queue/queue.h"
#include "toolqueue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_enqueue(const char *url, const char *queue, const char *type, long n,
		       const char *ids_file)
{
	enum { BATCH = 1000 };
	struct job_spec specs[BATCH];
	struct queue_enqueued out[BATCH];
	char payloads[BATCH][32];
	struct job_defaults d = { 0 };
	struct queue *q;
	struct err e;
	FILE *f;
	long done = 0, i;

	if (n < 1)
		return 2;
	f = fopen(ids_file, "w");
	if (!f) {
		fprintf(stderr, "bench_handlers: cannot write '%s': %s\n", ids_file,
			strerror(errno));
		return 1;
	}
	q = tool_queue_connect("bench_handlers", url);
	while (done < n) {
		long k = n - done < BATCH ? n - done : BATCH;

		for (i = 0; i < k; i++) {
			memset(&specs[i], 0, sizeof(specs[i]));
			snprintf(payloads[i], sizeof(payloads[i]), "{\"n\":%ld}", done + i);
			specs[i].type = type;
			specs[i].payload = payloads[i];
			specs[i].max_attempts = 1;
			job_spec_resolve(&specs[i], &d, clock_now_us());
		}
		if (queue_enqueue(q, queue, specs, (size_t)k, out, NULL, &e) < 0) {
			fprintf(stderr, "bench_handlers: enqueue: %s\n", e.msg);
			return 1;
		}
		for (i = 0; i < k; i++)
			fprintf(f, "%s\n", out[i].id);
		done += k;
	}
	queue_free(q);
	return fclose(f) == 0 ? 0 : 1;
}

static int cmd_span(const char *url, const char *queue, const char *ids_file)
{
	char line[128];
	int64_t first = INT64_MAX, last = 0, *runs = NULL;
	size_t n = 0, cap = 0, done = 0;
	struct queue *q;
	FILE *f = fopen(ids_file, "r");

	if (!f) {
		fprintf(stderr, "bench_handlers: cannot read '%s': %s\n", ids_file,
			strerror(errno));
		return 1;
	}
	q = tool_queue_connect("bench_handlers", url);
	while (fgets(line, sizeof(line), f)) {
		struct job_info j;
		struct err e;

		line[strcspn(line, "\n")] = '\0';
		if (!*line)
			continue;
		n++;
		if (queue_job_get(q, queue, line, &j, &e) < 0) {
			fprintf(stderr, "bench_handlers: job %s: %s\n", line, e.msg);
			continue;
		}
		if (j.status == JOB_DONE && j.started_at && j.finished_at) {
			done++;
			if (j.started_at < first)
				first = j.started_at;
			if (j.finished_at > last)
				last = j.finished_at;
			if (done > cap) {
				cap = cap ? cap * 2 : 1024;
				runs = realloc(runs, cap * sizeof(*runs));
				if (!runs)
					abort();
			}
			runs[done - 1] = j.finished_at - j.started_at;
		}
		job_info_release(&j);
	}
	fclose(f);
	queue_free(q);
	if (!done || done != n) {
		fprintf(stderr, "bench_handlers: %zu of %zu jobs done\n", done, n);
		free(runs);
		return 1;
	}
	stat_sort(runs, done);
	printf("done=%zu span_s=%.6f tput=%.1f run_us_p50=%lld run_us_p90=%lld\n", done,
	       (double)(last - first) / 1e6, (double)done * 1e6 / (double)(last - first),
	       (long long)stat_pct(runs, done, 50), (long long)stat_pct(runs, done, 90));
	free(runs);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && !strcmp(argv[1], "enqueue"))
		return cmd_enqueue(argv[2], argv[3], argv[4], atol(argv[5]), argv[6]);
	if (argc == 5 && !strcmp(argv[1], "span"))
		return cmd_span(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: bench_handlers enqueue URL QUEUE TYPE N IDS_FILE\n"
		"       bench_handlers span URL QUEUE IDS_FILE\n");
	return 2;
}
