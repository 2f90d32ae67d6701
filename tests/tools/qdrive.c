/* qdrive - plays one worker step through the real queue scripts, for the
 * API's tests before (and besides) the real worker:
 *
 *   qdrive REDIS_URL QUEUE run [STEPS [STEP_MS]]
 *
 * takes one due job (lease 30 s), reports progress STEPS times (stage
 * "step-N") with STEP_MS between, renewing the lease each step, and
 * settles it done ({"ok":true}) or cancelled when a cancel was requested.
 * Prints "ID done|cancelled|none". */
#include "base/clock.h"
#include "queue/queue.h"
#include "toolqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct queue *q;
	struct queue_take t;
	struct queue_job job;
	struct queue_settle s;
	struct err e;
	int steps, step_ms, i, cancelled = 0;

	if (argc < 4 || strcmp(argv[3], "run")) {
		fprintf(stderr, "usage: qdrive REDIS_URL QUEUE run [STEPS [STEP_MS]]\n");
		return 2;
	}
	steps = argc > 4 ? atoi(argv[4]) : 3;
	step_ms = argc > 5 ? atoi(argv[5]) : 100;
	q = tool_queue_connect("qdrive", argv[1]);
	memset(&t, 0, sizeof(t));
	t.worker = "qdrive";
	t.lease_ms = 30000;
	t.max = 1;
	t.jobs = &job;
	if (queue_take(q, argv[2], &t, &e) < 0) {
		fprintf(stderr, "qdrive: %s\n", e.msg);
		return 1;
	}
	if (t.njobs == 0) {
		printf("- none\n");
		queue_free(q);
		return 0;
	}
	for (i = 1; i <= steps && !cancelled; i++) {
		struct queue_lease l = { .id = job.id, .token = job.token, .running = 1 };
		char stage[32];

		snprintf(stage, sizeof(stage), "step-%d", i);
		queue_progress(q, argv[2], job.id, job.token, 100.0 * i / (steps + 1), stage, NULL);
		clock_sleep_us((int64_t)step_ms * 1000);
		if (queue_renew(q, argv[2], "qdrive", 30000, 30000, &l, 1, &e) == 0 && (l.cancel || l.lost))
			cancelled = 1;
	}
	memset(&s, 0, sizeof(s));
	s.id = job.id;
	s.token = job.token;
	s.outcome = cancelled ? QUEUE_CANCELLED : QUEUE_DONE;
	s.result = cancelled ? NULL : "{\"ok\":true}";
	s.error = cancelled ? "cancelled by request" : NULL;
	memset(&t, 0, sizeof(t));
	t.worker = "qdrive";
	t.lease_ms = 30000;
	t.settle = &s;
	t.nsettle = 1;
	if (queue_take(q, argv[2], &t, &e) < 0) {
		fprintf(stderr, "qdrive: settle: %s\n", e.msg);
		return 1;
	}
	printf("%s %s\n", job.id, cancelled ? "cancelled" : "done");
	queue_job_release(&job);
	queue_free(q);
	return 0;
}
