/* controls.c - the queue controls: pause and resume. */
#include "cli.h"

#include <stdio.h>

static int pause_or_resume(struct cli *c, int paused)
{
	const char *queue = c->args[0];
	struct queue_resumed r;
	struct queue *q;
	struct err e;

	if (queue_name_check(queue, &e) < 0)
		return cli_exit_for(&e);
	q = cli_connect();
	if (queue_pause(q, queue, paused, &r, &e) < 0) {
		queue_free(q);
		return cli_exit_for(&e);
	}
	printf("%s %s\n", queue, paused ? "paused" : "resumed");
	/* due work and nobody to run it: wake a worker, as enqueue does
	 * (work due later is left to its wake: the API's timer, cron) */
	if (!paused && r.due > 0)
		cli_wake_if_idle(q, queue, r.live > 0);
	queue_free(q);
	return EXIT_OK;
}

int cmd_pause(struct cli *c)
{
	return pause_or_resume(c, 1);
}

int cmd_resume(struct cli *c)
{
	return pause_or_resume(c, 0);
}
