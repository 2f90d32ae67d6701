/* race - hammers the retire/enqueue race: N times, enqueue one job and,
 * when the enqueue script saw no live worker, POST /wake?wait=0 (as the
 * API does). The worker under test runs with a tiny IDLE_TIMEOUT, so it
 * retires between almost every job. Then waits until every job is done
 * and prints how many are not: a stranded job shows up here.
 *
 *   race REDIS_URL WAKE_URL N TIMEOUT_S      exit 0 when all N are done
 */
#include "base/clock.h"
#include "queue/queue.h"
#include "toolqueue.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

int main(int argc, char **argv)
{
	struct queue_counts c;
	struct queue *q;
	struct err e;
	int i, n, wakes = 0, live_hits = 0;
	double limit;
	int64_t end;
	CURL *curl;

	if (argc != 5)
		return 2;
	n = atoi(argv[3]);
	limit = atof(argv[4]);
	q = tool_queue_connect("race", argv[1]);
	curl = curl_easy_init();
	curl_easy_setopt(curl, CURLOPT_URL, argv[2]);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 5L);
	for (i = 0; i < n; i++) {
		struct job_spec s = { 0 };
		struct queue_enqueued out;
		int live = 0;

		s.type = "noop";
		if (queue_enqueue(q, "race", &s, 1, &out, &live, &e) < 0) {
			fprintf(stderr, "enqueue: %s\n", e.msg);
			return 1;
		}
		if (live) {
			live_hits++;
		} else {
			wakes++;
			if (curl_easy_perform(curl) != CURLE_OK)
				fprintf(stderr, "wake failed\n");
		}
		/* Vary the phase against the worker's idle timer. */
		if (i % 2 == 0)
			clock_sleep_us(i % 11 * 500);
	}
	end = clock_mono_us() + (int64_t)(limit * 1e6);
	for (;;) {
		if (queue_counts(q, "race", &c, &e) < 0) {
			fprintf(stderr, "counts: %s\n", e.msg);
			return 1;
		}
		if (c.n[JOB_DONE] >= n || clock_mono_us() > end)
			break;
		clock_sleep_us(20000);
	}
	printf("jobs=%d done=%lld queued=%lld active=%lld wakes=%d live=%d\n", n,
	       (long long)c.n[JOB_DONE], (long long)c.n[JOB_QUEUED],
	       (long long)c.n[JOB_ACTIVE], wakes, live_hits);
	curl_easy_cleanup(curl);
	queue_free(q);
	return c.n[JOB_DONE] == n ? 0 : 1;
}
