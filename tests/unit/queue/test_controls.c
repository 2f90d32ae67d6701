/* Unit tests of the queue controls (docs/QUEUE.md "Controls") against the
 * real redis-server that tests/run.sh starts (UNIT_REDIS_URL). Each test
 * uses its own queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "base/clock.h"
#include "base/uuid.h"
#include "queue/queue.h"

#define QNAME_PREFIX "c"
#include "testqueue.h"
#include "../unit.h"

/* Enqueues one job of `s` (type noop when unset); returns created. */
static int enq_spec(struct job_spec *s, char id[UUID_STR_LEN], int *live)
{
	struct queue_enqueued out;
	struct err e;

	if (!s->type)
		s->type = "noop";
	if (queue_enqueue(Q, qname, s, 1, &out, live, &e) < 0)
		fail_msg("enqueue: %s", e.msg);
	if (id)
		memcpy(id, out.id, UUID_STR_LEN);
	return out.created;
}

static void enq(char id[UUID_STR_LEN], int *live)
{
	struct job_spec s = { 0 };

	assert_true(enq_spec(&s, id, live));
}

/* One take of up to max jobs (settling `settle` first); *t is left with
 * the answer. Returns how many were taken. */
static size_t take_t(struct queue_take *t, struct queue_job *jobs, size_t max,
		     struct queue_settle *settle, size_t nsettle)
{
	struct err e;

	memset(t, 0, sizeof(*t));
	t->worker = "w1";
	t->lease_ms = 30000;
	t->max = max;
	t->jobs = jobs;
	t->settle = settle;
	t->nsettle = nsettle;
	if (queue_take(Q, qname, t, &e) < 0)
		fail_msg("take: %s", e.msg);
	return t->njobs;
}

static size_t take(struct queue_job *jobs, size_t max)
{
	struct queue_take t;

	return take_t(&t, jobs, max, NULL, 0);
}

static void done(struct queue_job *j)
{
	struct queue_settle s = { 0 };
	struct queue_take t;

	s.id = j->id;
	s.token = j->token;
	s.outcome = QUEUE_DONE;
	take_t(&t, NULL, 0, &s, 1);
	assert_false(s.stale);
	queue_job_release(j);
}

static void release_all(struct queue_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		queue_job_release(&jobs[i]);
}

/* ---- pause / resume -------------------------------------------------------- */

static void test_pause(void **state)
{
	struct queue_job jobs[4], run;
	struct queue_resumed r;
	struct queue_counts c;
	struct queue_take t;
	struct err e;
	int live = -1, retired = -1;

	(void)state;
	assert_int_equal(queue_register(Q, qname, "w1", 5000, &e), 0);
	enq(NULL, NULL);
	assert_int_equal(take(&run, 1), 1); /* running when the pause comes */
	assert_int_equal(queue_pause(Q, qname, 1, &r, &e), 0);
	assert_int_equal(r.due, 0);
	/* a paused queue still accepts jobs, and reports itself served:
	 * nobody is to be woken for work that cannot run */
	assert_int_equal(queue_retire(Q, qname, "w1", 1, &retired, &e), 0);
	enq(NULL, &live);
	assert_int_equal(live, 1);
	enq(NULL, NULL);
	assert_int_equal(queue_register(Q, qname, "w1", 5000, &e), 0);
	/* take leases nothing and says why; settles still apply */
	assert_int_equal(take_t(&t, jobs, 4, NULL, 0), 0);
	assert_int_equal(t.paused, 1);
	assert_int_equal(t.next_due_ms, 0);
	done(&run);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.paused, 1);
	assert_int_equal(c.n[JOB_QUEUED], 2);
	assert_int_equal(c.n[JOB_DONE], 1);
	/* the worker may leave: none of that work is due */
	assert_int_equal(queue_retire(Q, qname, "w1", 0, &retired, &e), 0);
	assert_int_equal(retired, 1);
	/* resume: the due work is reported, with no live worker */
	assert_int_equal(queue_pause(Q, qname, 0, &r, &e), 0);
	assert_int_equal(r.due, 2);
	assert_int_equal(r.live, 0);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.paused, 0);
	assert_int_equal(take_t(&t, jobs, 4, NULL, 0), 2);
	assert_int_equal(t.paused, 0);
	release_all(jobs, 2);
	enq(NULL, &live);
	assert_int_equal(live, 0); /* unpaused again: the truth */
}

/* A resume tells when scheduled work comes due, for a timed wake. */
static void test_resume_next_due(void **state)
{
	struct job_spec s = { 0 };
	struct queue_resumed r;
	struct err e;
	int64_t t0 = clock_now_us() / 1000;

	(void)state;
	assert_int_equal(queue_pause(Q, qname, 1, NULL, &e), 0);
	s.delay_ms = 60000;
	assert_true(enq_spec(&s, NULL, NULL));
	assert_int_equal(queue_pause(Q, qname, 0, &r, &e), 0);
	assert_int_equal(r.due, 0);
	assert_true(r.next_due_ms >= t0 + 59000 && r.next_due_ms <= t0 + 61000);
}

/* ---- unique while active ------------------------------------------------------ */

static int enq_unique(const char *key, int64_t delay_ms, char id[UUID_STR_LEN])
{
	struct job_spec s = { 0 };

	s.unique_key = key;
	s.delay_ms = delay_ms;
	return enq_spec(&s, id, NULL);
}

static void settle_as(struct queue_job *j, enum queue_outcome o)
{
	struct queue_settle s = { 0 };
	struct queue_take t;

	s.id = j->id;
	s.token = j->token;
	s.outcome = o;
	s.error = "boom";
	take_t(&t, NULL, 0, &s, 1);
	assert_false(s.stale);
	queue_job_release(j);
}

static void test_unique(void **state)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];
	struct queue_job j;
	struct err e;

	(void)state;
	/* queued: the live job is the answer */
	assert_true(enq_unique("u1", 0, a));
	assert_false(enq_unique("u1", 0, b));
	assert_string_equal(a, b);
	assert_true(enq_unique("u2", 0, c)); /* another key is another job */
	assert_string_not_equal(a, c);
	/* active: still held */
	assert_int_equal(take(&j, 1), 1);
	assert_string_equal(j.id, a);
	assert_false(enq_unique("u1", 0, b));
	assert_string_equal(a, b);
	/* done: released */
	done(&j);
	assert_true(enq_unique("u1", 0, b));
	assert_string_not_equal(a, b);
	/* cancelled while queued: released */
	assert_int_equal(queue_cancel(Q, qname, b, &e), 0);
	assert_true(enq_unique("u1", 0, a));
	/* scheduled: held; failed for good: released */
	assert_int_equal(queue_cancel(Q, qname, a, &e), 0);
	assert_true(enq_unique("u3", 60000, a));
	assert_false(enq_unique("u3", 0, b));
	assert_string_equal(a, b);
	assert_int_equal(queue_cancel(Q, qname, a, &e), 0);
	assert_int_equal(queue_cancel(Q, qname, c, &e), 0);
	assert_true(enq_unique("u4", 0, a));
	assert_int_equal(take(&j, 1), 1);
	assert_string_equal(j.id, a);
	settle_as(&j, QUEUE_FAIL);
	assert_true(enq_unique("u4", 0, b));
	/* the dead job cannot run again while another holds its key ... */
	assert_fails(queue_retry_dead(Q, qname, a, &e), &e, ERR_CONFLICT);
	/* ... and can once that one ended, taking the key back */
	assert_int_equal(queue_cancel(Q, qname, b, &e), 0);
	assert_int_equal(queue_retry_dead(Q, qname, a, &e), 0);
	assert_false(enq_unique("u4", 0, b));
	assert_string_equal(a, b);
}

/* An idempotency key and a unique key together: either one known gives
 * the existing job, and a refused enqueue claims neither key. */
static void test_unique_and_idempotency(void **state)
{
	struct job_spec s = { 0 };
	char a[UUID_STR_LEN], b[UUID_STR_LEN];
	struct queue_job j;

	(void)state;
	s.unique_key = "k";
	s.idempotency_key = "i1";
	assert_true(enq_spec(&s, a, NULL));
	s.idempotency_key = "i2"; /* a new request, the same unique key */
	assert_false(enq_spec(&s, b, NULL));
	assert_string_equal(a, b);
	assert_int_equal(take(&j, 1), 1);
	done(&j);
	/* i2 was not claimed by the refused request: a new job now */
	assert_true(enq_spec(&s, b, NULL));
	assert_string_not_equal(a, b);
	s.unique_key = NULL;
	s.idempotency_key = "i1"; /* still the first job's key */
	assert_false(enq_spec(&s, b, NULL));
	assert_string_equal(a, b);
}

/* ---- retention --------------------------------------------------------------- */

static void set_settings(const char *json)
{
	struct queue_settings st;
	const char *code;
	json_t *o = json_loads(json, 0, NULL);
	struct err e;

	assert_non_null(o);
	memset(&st, 0, sizeof(st));
	if (queue_settings_from_json(o, &st, &code, &e) < 0)
		fail_msg("settings: %s", e.msg);
	json_decref(o);
	assert_int_equal(queue_settings_set(Q, qname, &st, &e), 0);
}

static void test_settings(void **state)
{
	struct queue_settings st, st2;
	const char *code;
	json_t *o, *doc;
	struct err e;

	(void)state;
	assert_int_equal(queue_settings_get(Q, qname, &st, &e), 0);
	assert_int_equal(st.v[QUEUE_SET_DONE_MAX], 0);
	set_settings("{\"done_max\":7,\"result_ttl_s\":60}");
	assert_int_equal(queue_settings_get(Q, qname, &st, &e), 0);
	assert_int_equal(st.v[QUEUE_SET_DONE_MAX], 7);
	assert_int_equal(st.v[QUEUE_SET_RESULT_TTL], 60);
	assert_int_equal(st.v[QUEUE_SET_DEAD_MAX], 0);
	doc = queue_settings_to_json(qname, &st);
	assert_json_int(doc, "done_max", 7);
	assert_true(json_is_null(json_object_get(doc, "dead_max")));
	json_decref(doc);
	/* merging: null clears, the rest stays; bad values change nothing */
	o = json_loads("{\"done_max\":null}", 0, NULL);
	assert_int_equal(queue_settings_from_json(o, &st, &code, &e), 0);
	json_decref(o);
	assert_int_equal(st.v[QUEUE_SET_DONE_MAX], 0);
	assert_int_equal(st.v[QUEUE_SET_RESULT_TTL], 60);
	st2 = st;
	o = json_loads("{\"done_max\":1.5}", 0, NULL);
	assert_int_equal(queue_settings_from_json(o, &st2, &code, &e), -1);
	assert_string_equal(code, "invalid_field");
	json_decref(o);
	o = json_loads("{\"dead_max\":3,\"colour\":1}", 0, NULL);
	assert_int_equal(queue_settings_from_json(o, &st2, &code, &e), -1);
	assert_string_equal(code, "unknown_field");
	assert_int_equal(st2.v[QUEUE_SET_DEAD_MAX], 0);
	json_decref(o);
	o = json_loads("{\"result_ttl_s\":0}", 0, NULL);
	assert_int_equal(queue_settings_from_json(o, &st2, &code, &e), -1);
	json_decref(o);
	st2.v[QUEUE_SET_DONE_MAX] = -1;
	assert_fails(queue_settings_set(Q, qname, &st2, &e), &e, ERR_INVALID);
}

/* The queue's caps win over the process's, and the totals count every
 * job ever finished whatever was trimmed. */
static void test_retention_caps(void **state)
{
	char ids[6][UUID_STR_LEN];
	struct queue_counts c;
	struct job_info job;
	struct queue_job j;
	struct err e;
	int i;

	(void)state;
	set_settings("{\"done_max\":3,\"dead_max\":2}");
	for (i = 0; i < 6; i++) {
		enq(ids[i], NULL);
		assert_int_equal(take(&j, 1), 1);
		done(&j);
	}
	for (i = 0; i < 4; i++) {
		enq(NULL, NULL);
		assert_int_equal(take(&j, 1), 1);
		settle_as(&j, QUEUE_FAIL);
	}
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_DONE], 3);
	assert_int_equal(c.n[JOB_FAILED], 2);
	assert_int_equal(c.done_total, 6);
	assert_int_equal(c.failed_total, 4);
	assert_int_equal(queue_job_get(Q, qname, ids[2], &job, &e), -1);
	assert_int_equal(queue_job_get(Q, qname, ids[3], &job, &e), 0);
	job_info_release(&job);
	/* a purge empties the dead letter, not the total */
	assert_int_equal(queue_purge_dead(Q, qname, &e), 2);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.failed_total, 4);
}

/* The queue's TTLs: cancelled jobs after result_ttl_s, failed ones after
 * dead_ttl_s (and out of the dead letter), done ones at the first take
 * after result_ttl_s (bulk retention, no TTL a record). */
static void test_retention_ttls(void **state)
{
	char a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];
	struct queue_counts k;
	struct job_info job;
	struct queue_job j;
	struct err e;

	(void)state;
	set_settings("{\"result_ttl_s\":1,\"dead_ttl_s\":1}");
	enq(a, NULL);
	assert_int_equal(take(&j, 1), 1);
	done(&j);
	enq(b, NULL);
	assert_int_equal(queue_cancel(Q, qname, b, &e), 0);
	enq(c, NULL);
	assert_int_equal(take(&j, 1), 1);
	settle_as(&j, QUEUE_FAIL);
	assert_int_equal(queue_job_get(Q, qname, c, &job, &e), 0);
	job_info_release(&job);
	clock_sleep_us(1200000);
	assert_int_equal(queue_job_get(Q, qname, b, &job, &e), -1);
	assert_int_equal(queue_job_get(Q, qname, c, &job, &e), -1);
	/* the next burial drops the expired one from the dead letter */
	enq(NULL, NULL);
	assert_int_equal(take(&j, 1), 1);
	settle_as(&j, QUEUE_FAIL);
	assert_int_equal(queue_counts(Q, qname, &k, &e), 0);
	assert_int_equal(k.n[JOB_FAILED], 1);
	assert_int_equal(k.failed_total, 2);
	/* that take aged out the done one: record and done-set entry */
	assert_int_equal(queue_job_get(Q, qname, a, &job, &e), -1);
	assert_int_equal(k.n[JOB_DONE], 0);
	assert_int_equal(k.done_total, 1);
}

/* ---- rate limits, concurrency caps, groups ----------------------------------- */

static void enq_group(const char *group, int n)
{
	struct job_spec s = { 0 };
	int i;

	s.group = group;
	for (i = 0; i < n; i++)
		assert_true(enq_spec(&s, NULL, NULL));
}

/* The group of a leased job, "" for none. */
static char *group_of(const struct queue_job *j)
{
	struct job_info info;
	struct err e;
	char *g;

	assert_int_equal(queue_job_get(Q, qname, j->id, &info, &e), 0);
	g = strdup(info.group ? info.group : "");
	job_info_release(&info);
	return g;
}

static void test_rate_limit(void **state)
{
	struct queue_job jobs[10];
	struct queue_counts c;
	struct queue_take t;
	struct err e;
	int64_t t0;
	int retired = -1, i;

	(void)state;
	set_settings("{\"rate_max\":3,\"rate_period_s\":1}");
	for (i = 0; i < 10; i++)
		enq(NULL, NULL);
	t0 = clock_now_us() / 1000;
	/* a burst of 3, and when the next token comes (1 s / 3) */
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 3);
	release_all(jobs, 3);
	assert_true(t.next_due_ms >= t0 + 300 && t.next_due_ms <= t0 + 400);
	/* held work is not due: a worker may leave, a waker waits */
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 0);
	assert_true(t.next_due_ms >= t0 + 300 && t.next_due_ms <= t0 + 400);
	assert_int_equal(queue_register(Q, qname, "w1", 5000, &e), 0);
	assert_int_equal(queue_retire(Q, qname, "w1", 0, &retired, &e), 0);
	assert_int_equal(retired, 1);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_QUEUED], 7);
	assert_int_equal(c.due, 0);
	assert_int_equal(c.held, 7);
	assert_true(c.wake_at_ms >= t0 + 300 && c.wake_at_ms <= t0 + 400);
	/* the next token: one job */
	clock_sleep_us((uint64_t)(t.next_due_ms - clock_now_us() / 1000 + 20) * 1000);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 1);
	release_all(jobs, 1);
	/* over 1.1 s more, about 3 more: never more than the rate */
	clock_sleep_us(1100000);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 3);
	release_all(jobs, 3);
}

static void test_concurrency_cap(void **state)
{
	struct queue_job jobs[5];
	struct queue_counts c;
	struct err e;
	int retired = -1;

	(void)state;
	set_settings("{\"concurrency\":2}");
	enq(NULL, NULL);
	enq(NULL, NULL);
	enq(NULL, NULL);
	assert_int_equal(take(jobs, 5), 2);
	assert_int_equal(take(&jobs[2], 5), 0);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.due, 0); /* waits for a settle, not a wake */
	assert_int_equal(queue_register(Q, qname, "w2", 5000, &e), 0);
	assert_int_equal(queue_retire(Q, qname, "w2", 0, &retired, &e), 0);
	assert_int_equal(retired, 1);
	done(&jobs[0]);
	assert_int_equal(take(&jobs[0], 5), 1);
	release_all(jobs, 2);
}

/* Groups take turns, the ungrouped jobs one turn a round; a group at its
 * cap waits for one of its jobs to end, without holding up the others. */
static void test_group_cap_and_rotation(void **state)
{
	struct queue_job jobs[10];
	struct queue_counts c;
	struct err e;
	char *g[10] = { 0 };
	size_t i, n;

	(void)state;
	set_settings("{\"group_concurrency\":1}");
	enq_group("A", 3);
	enq_group("B", 3);
	enq(NULL, NULL);
	enq(NULL, NULL);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_QUEUED], 8);
	n = take(jobs, 10);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++)
		g[i] = group_of(&jobs[i]);
	/* one of each group, and both ungrouped */
	assert_string_equal(g[0], "");
	assert_string_equal(g[1], "A");
	assert_string_equal(g[2], "");
	assert_string_equal(g[3], "B");
	for (i = 0; i < n; i++)
		free(g[i]);
	assert_int_equal(take(&jobs[4], 5), 0);
	/* A's job ends: A may go again, B may not */
	done(&jobs[1]);
	assert_int_equal(take(&jobs[1], 5), 1);
	g[0] = group_of(&jobs[1]);
	assert_string_equal(g[0], "A");
	free(g[0]);
	release_all(jobs, 4);
}

static void test_group_fairness(void **state)
{
	struct queue_job jobs[8];
	char *g;
	size_t i, n;
	int a = 0, b = 0;

	(void)state;
	enq_group("big", 20); /* a big tenant first ... */
	enq_group("small", 3); /* ... does not starve a small one */
	n = take(jobs, 6);
	assert_int_equal(n, 6);
	for (i = 0; i < n; i++) {
		g = group_of(&jobs[i]);
		a += !strcmp(g, "big");
		b += !strcmp(g, "small");
		free(g);
	}
	assert_int_equal(b, 3);
	assert_int_equal(a, 3);
	release_all(jobs, n);
}

static void test_group_rate(void **state)
{
	struct queue_job jobs[10];
	struct queue_counts c;
	struct queue_take t;
	struct err e;
	int64_t t0;
	char id[UUID_STR_LEN];
	struct job_spec s = { 0 };

	(void)state;
	set_settings("{\"group_rate_max\":2,\"group_rate_period_s\":1}");
	enq_group("A", 5);
	enq_group("B", 5);
	t0 = clock_now_us() / 1000;
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 4); /* 2 of each */
	release_all(jobs, 4);
	assert_true(t.next_due_ms >= t0 + 450 && t.next_due_ms <= t0 + 600);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 0);
	assert_true(t.next_due_ms >= t0 + 450 && t.next_due_ms <= t0 + 600);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.due, 0);
	assert_int_equal(c.held, 6);
	/* a grouped job can be cancelled while it waits */
	s.group = "C";
	assert_true(enq_spec(&s, id, NULL));
	assert_int_equal(queue_cancel(Q, qname, id, &e), 0);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 0);
	clock_sleep_us((uint64_t)(t.next_due_ms - clock_now_us() / 1000 + 20) * 1000);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 2); /* one token each */
	release_all(jobs, 2);
}

/* s: a push-back of j's run by delay_ms (a 429 with Retry-After) */
static void pushback_of(struct queue_settle *s, const struct queue_job *j, int64_t delay_ms)
{
	memset(s, 0, sizeof(*s));
	s->id = j->id;
	s->token = j->token;
	s->outcome = QUEUE_PUSHBACK;
	s->error = "http status 429";
	s->delay_ms = delay_ms;
}

/* A 429 with Retry-After pushes back the whole group: the job is queued
 * again without its attempt, the group's other jobs wait until the time,
 * other groups go on; an ungrouped job alone waits. */
static void test_pushback(void **state)
{
	struct queue_job jobs[10];
	struct queue_settle s = { 0 };
	struct queue_counts c;
	struct queue_take t;
	struct job_info info;
	struct err e;
	char *g, id[UUID_STR_LEN];
	int64_t t0;
	size_t i, n;
	int retired = -1;

	(void)state;
	enq_group("A", 3);
	enq_group("B", 3);
	assert_int_equal(take(jobs, 1), 1);
	g = group_of(&jobs[0]);
	assert_string_equal(g, "A");
	free(g);
	memcpy(id, jobs[0].id, UUID_STR_LEN);
	pushback_of(&s, &jobs[0], 600);
	t0 = clock_now_us() / 1000;
	n = take_t(&t, &jobs[1], 10, &s, 1);
	assert_false(s.stale);
	assert_false(s.final);
	queue_job_release(&jobs[0]);
	/* only B's jobs go; A waits until the Retry-After time */
	assert_int_equal(n, 3);
	for (i = 1; i <= n; i++) {
		g = group_of(&jobs[i]);
		assert_string_equal(g, "B");
		free(g);
	}
	release_all(&jobs[1], n);
	assert_true(t.next_due_ms >= t0 + 550 && t.next_due_ms <= t0 + 700);
	assert_int_equal(queue_job_get(Q, qname, id, &info, &e), 0);
	assert_int_equal(info.status, JOB_QUEUED);
	assert_int_equal(info.attempts, 0); /* the attempt did not count */
	job_info_release(&info);
	/* held, not due: a worker may leave and a waker wakes at the time */
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.due, 0);
	assert_int_equal(c.held, 3);
	assert_true(c.wake_at_ms >= t0 + 550 && c.wake_at_ms <= t0 + 700);
	assert_int_equal(queue_register(Q, qname, "w1", 5000, &e), 0);
	assert_int_equal(queue_retire(Q, qname, "w1", 0, &retired, &e), 0);
	assert_int_equal(retired, 1);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 0);
	clock_sleep_us((uint64_t)(t.next_due_ms - clock_now_us() / 1000 + 20) * 1000);
	/* then A's three, the pushed-back one first, on its first attempt */
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 3);
	assert_string_equal(jobs[0].id, id);
	assert_int_equal(jobs[0].attempts, 1);
	release_all(jobs, 3);

	/* an ungrouped job waits alone, as a delayed job */
	enq(NULL, NULL);
	enq(NULL, NULL);
	assert_int_equal(take(jobs, 1), 1);
	memcpy(id, jobs[0].id, UUID_STR_LEN);
	pushback_of(&s, &jobs[0], 400);
	n = take_t(&t, &jobs[1], 10, &s, 1);
	queue_job_release(&jobs[0]);
	assert_int_equal(n, 1); /* the other one */
	assert_string_not_equal(jobs[1].id, id);
	release_all(&jobs[1], 1);
	assert_int_equal(queue_job_get(Q, qname, id, &info, &e), 0);
	assert_int_equal(info.status, JOB_SCHEDULED);
	assert_int_equal(info.attempts, 0);
	job_info_release(&info);
	clock_sleep_us(450000);
	assert_int_equal(take_t(&t, jobs, 10, NULL, 0), 1);
	assert_string_equal(jobs[0].id, id);
	assert_int_equal(jobs[0].attempts, 1);
	release_all(jobs, 1);
}

/* A push-back that re-creates the queue's only group (its last job was
 * taken, so no group was left) still tells the take when to look again:
 * the Retry-After time, not "never". */
static void test_pushback_last_group(void **state)
{
	struct queue_job jobs[2];
	struct queue_settle s;
	struct queue_take t;
	int64_t t0;

	(void)state;
	enq_group("A", 1);
	assert_int_equal(take(jobs, 1), 1);
	/* a take finds group A empty: no group left */
	assert_int_equal(take(&jobs[1], 1), 0);
	pushback_of(&s, &jobs[0], 600);
	t0 = clock_now_us() / 1000;
	assert_int_equal(take_t(&t, &jobs[1], 1, &s, 1), 0);
	queue_job_release(&jobs[0]);
	assert_true(t.next_due_ms >= t0 + 550 && t.next_due_ms <= t0 + 700);
	clock_sleep_us((uint64_t)(t.next_due_ms - clock_now_us() / 1000 + 20) * 1000);
	assert_int_equal(take_t(&t, jobs, 1, NULL, 0), 1);
	assert_int_equal(jobs[0].attempts, 1);
	release_all(jobs, 1);
}

/* A service that answers 429 for ever: past 50 push-backs the run is an
 * ordinary retry, its attempt counted. */
static void test_pushback_cap(void **state)
{
	struct queue_job j;
	struct queue_settle s = { 0 };
	struct queue_take t;
	struct job_info info;
	struct err e;
	char id[UUID_STR_LEN];
	int i;

	(void)state;
	enq(id, NULL);
	for (i = 0; i <= 50; i++) {
		while (take(&j, 1) == 0)
			clock_sleep_us(2000);
		assert_string_equal(j.id, id);
		assert_int_equal(j.attempts, 1);
		pushback_of(&s, &j, 1);
		assert_int_equal(take_t(&t, NULL, 0, &s, 1), 0);
		queue_job_release(&j);
		assert_int_equal(queue_job_get(Q, qname, id, &info, &e), 0);
		if (i < 50) {
			assert_int_equal(info.status, JOB_SCHEDULED);
			assert_int_equal(info.attempts, 0);
		} else {
			assert_int_equal(info.status, JOB_RETRYING);
			assert_int_equal(info.attempts, 1);
		}
		job_info_release(&info);
	}
}

/* ---- cron schedules -------------------------------------------------------------- */

static void put_schedule(const char *json, struct queue_schedule *out)
{
	const char *code;
	json_t *o = json_loads(json, 0, NULL);
	struct err e;
	int created = -1;

	assert_non_null(o);
	if (queue_schedule_from_json(o, out, &code, &e) < 0)
		fail_msg("schedule: %s", e.msg);
	json_decref(o);
	job_spec_resolve(&out->job, NULL, 0);
	if (queue_schedule_put(Q, qname, out, &created, &e) < 0)
		fail_msg("put: %s", e.msg);
	assert_int_equal(created, 1);
}

static void sleep_until_ms(int64_t ms)
{
	int64_t now = clock_now_us() / 1000;

	if (ms > now)
		clock_sleep_us((ms - now + 30) * 1000);
}

static void test_schedule_fires(void **state)
{
	struct queue_schedule s, g;
	struct queue_job jobs[4];
	struct job_info info;
	struct err e;
	char **names;
	json_t *doc;
	int64_t first;
	size_t n;

	(void)state;
	put_schedule("{\"name\":\"tick\",\"cron\":\"* * * * * *\",\"overlap\":\"allow\","
		     "\"job\":{\"type\":\"noop\",\"payload\":{\"x\":1},\"priority\":3}}", &s);
	first = s.next_ms;
	assert_true(first > clock_now_us() / 1000 && first <= clock_now_us() / 1000 + 1000);
	assert_int_equal(queue_schedule_names(Q, qname, &names, &e), 1);
	assert_string_equal(names[0], "tick");
	free(names[0]);
	free(names);
	/* nothing before the fire time; at it, one job, run_at the fire time */
	assert_int_equal(take(jobs, 4), 0);
	sleep_until_ms(first);
	n = take(jobs, 4);
	assert_int_equal(n, 1);
	assert_string_equal(jobs[0].type, "noop");
	assert_string_equal(jobs[0].payload, "{\"x\":1}");
	assert_int_equal(queue_job_get(Q, qname, jobs[0].id, &info, &e), 0);
	assert_int_equal(info.priority, 3);
	assert_true(info.run_at == first * 1000);
	job_info_release(&info);
	assert_int_equal(queue_schedule_get(Q, qname, "tick", &g, &e), 0);
	assert_int_equal(g.fired, 1);
	assert_string_equal(g.last_job, jobs[0].id);
	assert_true(g.next_ms == first + 1000);
	doc = queue_schedule_to_json(qname, &g);
	assert_json_str(doc, "timezone", "UTC");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "job"),
							    "priority")), 3);
	json_decref(doc);
	queue_schedule_release(&g);
	release_all(jobs, n);
	/* paused: no jobs; resumed: from now on */
	assert_int_equal(queue_schedule_pause(Q, qname, "tick", 1, NULL, &e), 0);
	clock_sleep_us(1100000);
	assert_int_equal(take(jobs, 4), 0);
	assert_int_equal(queue_schedule_pause(Q, qname, "tick", 0, &first, &e), 0);
	assert_true(first > clock_now_us() / 1000);
	sleep_until_ms(first);
	assert_int_equal(take(jobs, 4), 1);
	release_all(jobs, 1);
	/* deleted: gone, its jobs stay */
	assert_int_equal(queue_schedule_delete(Q, qname, "tick", &e), 0);
	assert_fails(queue_schedule_get(Q, qname, "tick", &g, &e), &e, ERR_NOTFOUND);
	assert_int_equal(queue_schedule_delete(Q, qname, "tick", &e), -1);
	clock_sleep_us(1100000);
	assert_int_equal(take(jobs, 4), 0);
	queue_schedule_release(&s);
}

/* overlap skip: no job while the last one has not ended */
static void test_schedule_overlap(void **state)
{
	struct queue_schedule s, g;
	struct queue_job j, more[2];
	struct err e;

	(void)state;
	put_schedule("{\"name\":\"once\",\"cron\":\"* * * * * *\",\"job\":{\"type\":\"noop\"}}", &s);
	sleep_until_ms(s.next_ms);
	assert_int_equal(take(&j, 1), 1);
	clock_sleep_us(1100000);
	assert_int_equal(take(more, 2), 0); /* the first still runs */
	assert_int_equal(queue_schedule_get(Q, qname, "once", &g, &e), 0);
	assert_true(g.skipped >= 1);
	assert_int_equal(g.fired, 1);
	queue_schedule_release(&g);
	done(&j);
	clock_sleep_us(1100000);
	assert_int_equal(take(more, 2), 1);
	release_all(more, 1);
	queue_schedule_release(&s);
}

static void test_schedule_refused(void **state)
{
	static const char *const bad[] = {
		"{\"name\":\"x\",\"cron\":\"* * *\",\"job\":{\"type\":\"noop\"}}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\",\"timezone\":\"Nowhere/Land\",\"job\":{\"type\":\"noop\"}}",
		"{\"name\":\"x y\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"noop\"}}",
		"{\"name\":\"x\",\"cron\":\"0 0 30 2 *\",\"job\":{\"type\":\"noop\"}}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"nope\"}}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"noop\",\"delay_s\":1}}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"noop\"},\"catch_up\":\"some\"}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\",\"job\":{\"type\":\"noop\"},\"colour\":1}",
		"{\"name\":\"x\",\"cron\":\"* * * * *\"}",
	};
	struct queue_schedule s;
	const char *code;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *o = json_loads(bad[i], 0, NULL);

		assert_non_null(o);
		if (queue_schedule_from_json(o, &s, &code, &e) == 0)
			fail_msg("accepted: %s", bad[i]);
		json_decref(o);
	}
}

UNIT_MAIN(
		cmocka_unit_test_setup_teardown(test_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_next_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unique_and_idempotency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_ttls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_cap_and_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_fairness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pushback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pushback_last_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pushback_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_fires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_overlap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedule_refused, setup, teardown),
)
