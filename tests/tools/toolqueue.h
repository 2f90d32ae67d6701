/* toolqueue.h - the queue connection of the test and benchmark tools that
 * drive internal/queue directly (bench_core, bench_handlers, qdrive,
 * race). Header-only, each tool includes it once. */
#ifndef WAKEQ_TOOLQUEUE_H
#define WAKEQ_TOOLQUEUE_H

#include <stdio.h>
#include <stdlib.h>

#include "queue/queue.h"

/* Connects to the Redis at `url`; on failure prints "PROG: why" and exits
 * with status 1. The caller owns the queue (queue_free). */
static struct queue *tool_queue_connect(const char *prog, const char *url)
{
	struct queue_opts o;
	struct queue *q;
	struct err e;

	if (queue_opts_init(&o, url, &e) < 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(1);
	}
	q = queue_connect(&o, &e);
	queue_opts_release(&o);
	if (!q) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		exit(1);
	}
	return q;
}

#endif
