/* testqueue.h - the queue every queue unit test starts from: a connection
 * to the real redis-server that tests/run.sh starts (UNIT_REDIS_URL) and a
 * queue name no other test uses. Header-only, each test program includes
 * it once.
 *
 *   Q, Qopts   the connection and the options it was made with
 *   qname      this test's queue: QNAME_PREFIX, the time, a counter
 *   setup / teardown   cmocka fixtures that connect and free them
 */
#ifndef WAKEQ_TESTQUEUE_H
#define WAKEQ_TESTQUEUE_H

#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "queue/queue.h"

#ifndef QNAME_PREFIX
#define QNAME_PREFIX "t"
#endif

static struct queue *Q;
static struct queue_opts Qopts;
static char qname[64];

static int setup(void **state)
{
	static int n;
	const char *url = getenv("UNIT_REDIS_URL");
	struct err e;

	(void)state;
	if (!url) {
		fprintf(stderr, "UNIT_REDIS_URL is not set (run through tests/run.sh)\n");
		return -1;
	}
	if (queue_opts_init(&Qopts, url, &e) < 0 || !(Q = queue_connect(&Qopts, &e))) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	snprintf(qname, sizeof(qname), QNAME_PREFIX "%lld-%d",
		 (long long)(clock_now_us() % 100000000), n++);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	queue_free(Q);
	queue_opts_release(&Qopts);
	Q = NULL;
	return 0;
}

#endif
