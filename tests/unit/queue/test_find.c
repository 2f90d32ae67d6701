/* Unit tests of queue_find (internal/queue/find.c) against the real
 * redis-server that tests/run.sh starts (UNIT_REDIS_URL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "queue/queue.h"

#define QNAME_PREFIX "f"
#include "testqueue.h"
#include "../unit.h"

static void enq(const char *type, int64_t delay_ms, char id[UUID_STR_LEN])
{
	struct job_spec s = { 0 };
	struct queue_enqueued out;
	struct err e;

	s.type = type;
	s.payload = !strcmp(type, "sleep") ? "{\"ms\":1}" : "{}";
	s.delay_ms = delay_ms;
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &out, NULL, &e), 0);
	if (id)
		memcpy(id, out.id, UUID_STR_LEN);
}

static void release(struct queue_find *f)
{
	size_t i;

	for (i = 0; i < f->njobs; i++)
		job_info_release(&f->jobs[i]);
}

/* A search of the jobs in `state`, a page of `max` into `jobs`. */
static void find_init(struct queue_find *f, enum job_status state, size_t max,
		      struct job_info *jobs)
{
	memset(f, 0, sizeof(*f));
	f->state = state;
	f->max = max;
	f->jobs = jobs;
}

static void test_type_and_pages(void **state)
{
	struct job_info jobs[4];
	struct queue_find f;
	char sleeps[3][UUID_STR_LEN];
	struct err e;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		enq("noop", 0, NULL);
		enq("sleep", 0, sleeps[i]);
	}
	find_init(&f, JOB_QUEUED, 2, jobs);
	f.type = "sleep";
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 2);
	assert_string_equal(jobs[0].id, sleeps[0]);
	assert_string_equal(jobs[1].id, sleeps[1]);
	assert_string_equal(jobs[1].type, "sleep");
	assert_int_equal(f.next_offset, 4); /* noop sleep noop sleep */
	assert_true(f.more);
	release(&f);
	f.offset = f.next_offset;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 1);
	assert_string_equal(jobs[0].id, sleeps[2]);
	assert_false(f.more);
	release(&f);

	/* no filter: exactly the page, in queue order */
	find_init(&f, JOB_QUEUED, 4, jobs);
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 4);
	assert_int_equal(f.next_offset, 4);
	assert_string_equal(jobs[1].id, sleeps[0]);
	release(&f);

	/* a part of an id */
	find_init(&f, JOB_QUEUED, 4, jobs);
	f.id_part = sleeps[2] + 24;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 1);
	assert_string_equal(jobs[0].id, sleeps[2]);
	release(&f);

	/* the scan cap stops early and says where to resume */
	find_init(&f, JOB_QUEUED, 4, jobs);
	f.type = "sleep";
	f.scan_max = 3;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 1);
	assert_int_equal(f.next_offset, 3);
	release(&f);
}

static void test_states(void **state)
{
	struct job_info jobs[4];
	struct queue_find f;
	char sched[UUID_STR_LEN];
	struct err e;

	(void)state;
	enq("noop", 0, NULL);
	enq("noop", 600000, sched);
	find_init(&f, JOB_SCHEDULED, 4, jobs);
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 1);
	assert_string_equal(jobs[0].id, sched);
	assert_int_equal(jobs[0].status, JOB_SCHEDULED);
	release(&f);
	/* retrying shares the delayed set: the scheduled job is not one */
	f.state = JOB_RETRYING;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 0);
	assert_false(f.more);
	f.state = JOB_FAILED;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 0);
	f.state = JOB_CANCELLED;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 0);
	assert_false(f.more);
	/* a job that expired between list and read is skipped */
	assert_int_equal(queue_cancel(Q, qname, sched, &e), 0);
	f.state = JOB_SCHEDULED;
	assert_int_equal(queue_find(Q, qname, &f, &e), 0);
	assert_int_equal(f.njobs, 0);
	/* a bad queue name is an error, with nothing kept */
	assert_int_equal(queue_find(Q, "a b", &f, &e), -1);
	assert_int_equal(f.njobs, 0);
}

UNIT_MAIN(
		cmocka_unit_test_setup_teardown(test_type_and_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
)
