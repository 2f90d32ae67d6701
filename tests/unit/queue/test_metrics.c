/* Unit tests of the queue's metrics hash and batched events against the
 * real redis-server of tests/run.sh (UNIT_REDIS_URL): counters by type and
 * outcome, wait and run histograms, wakes by trigger, the age of the
 * oldest due job, one PUBLISH and a few HINCRBY a script run whatever the
 * batch size, `active` events, and the bucket bounds of C and Lua. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/uuid.h"
#include "queue/queue.h"

#define QNAME_PREFIX "m"
#include "testqueue.h"
#include "queue/scripts.h"
#include "../unit.h"

/* calls of a Redis command so far (INFO commandstats), through redis-cli */
static long calls(const char *cmd)
{
	char line[512], want[64];
	long n = 0;
	FILE *p;

	snprintf(line, sizeof(line), "redis-cli -u '%s' info commandstats", getenv("UNIT_REDIS_URL"));
	p = popen(line, "r");
	assert_non_null(p);
	snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
	while (fgets(line, sizeof(line), p))
		if (!strncmp(line, want, strlen(want)))
			n = strtol(line + strlen(want), NULL, 10);
	pclose(p);
	return n;
}

static void enqueue_n(const char *type, size_t n, int64_t delay_ms)
{
	struct job_spec specs[200];
	struct queue_enqueued out[200];
	struct err e;
	size_t i;

	assert_true(n <= 200);
	memset(specs, 0, sizeof(specs));
	for (i = 0; i < n; i++) {
		specs[i].type = type;
		specs[i].delay_ms = delay_ms;
	}
	assert_int_equal(queue_enqueue(Q, qname, specs, n, out, NULL, &e), 0);
}

static size_t take(struct queue_job *jobs, size_t max, struct queue_settle *st, size_t ns)
{
	struct queue_take t = { 0 };
	struct err e;

	t.worker = "w1";
	t.lease_ms = 30000;
	t.max = max;
	t.jobs = jobs;
	t.settle = st;
	t.nsettle = ns;
	if (queue_take(Q, qname, &t, &e) < 0)
		fail_msg("take: %s", e.msg);
	return t.njobs;
}

static int64_t outcome(const struct queue_stats *s, const char *type, const char *name)
{
	size_t i;

	for (i = 0; i < s->noutcomes; i++)
		if (!strcmp(s->outcomes[i].type, type) && !strcmp(s->outcomes[i].name, name))
			return s->outcomes[i].n;
	return 0;
}

static const struct queue_type_hist *hist(const struct queue_stats *s, const char *type)
{
	size_t i;

	for (i = 0; i < s->nhists; i++)
		if (!strcmp(s->hists[i].type, type))
			return &s->hists[i];
	fail_msg("no histogram for type '%s'", type);
	return NULL;
}

static int64_t total(const struct queue_hist *h)
{
	int64_t n = 0;
	int i;

	for (i = 0; i <= QUEUE_HIST_BUCKETS; i++)
		n += h->count[i];
	return n;
}

/* The bounds of _lib.lua's HIST_MS, as the scripts run them, are the C
 * array's (the layout rule). */
static void test_bounds_agree(void **state)
{
	const char *p = strstr(queue_lua_take, "HIST_MS = {");
	int i;

	(void)state;
	assert_non_null(p);
	p += strlen("HIST_MS = {");
	for (i = 0; i < QUEUE_HIST_BUCKETS; i++) {
		char *end;
		long long v;

		while (*p == ' ' || *p == ',' || *p == '\n')
			p++;
		v = strtoll(p, &end, 10);
		assert_true(end != p);
		assert_int_equal(v, queue_hist_bounds_ms[i]);
		p = end;
	}
	while (*p == ' ' || *p == '\n')
		p++;
	assert_int_equal(*p, '}');
	for (i = 1; i < QUEUE_HIST_BUCKETS; i++)
		assert_true(queue_hist_bounds_ms[i] > queue_hist_bounds_ms[i - 1]);
	assert_int_equal(queue_hist_bounds_ms[QUEUE_HIST_BUCKETS - 1], 3600000);
}

/* 150 jobs of two types settled in one call: counters and histograms by
 * type, and a handful of HINCRBY for the whole batch. */
static void test_counters_batched(void **state)
{
	static struct queue_job jobs[200];
	static struct queue_settle st[200];
	struct queue_stats s;
	struct err e;
	long h0, h1;
	size_t i, n;

	(void)state;
	enqueue_n("noop", 140, 0);
	enqueue_n("sleep", 10, 0);
	h0 = calls("hincrby");
	n = take(jobs, 200, NULL, 0);
	h1 = calls("hincrby");
	assert_int_equal(n, 150);
	/* wait: a bucket or two and a sum per type */
	assert_true(h1 - h0 <= 6);
	memset(st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		st[i].id = jobs[i].id;
		st[i].token = jobs[i].token;
		if (i < 100) {
			st[i].outcome = QUEUE_DONE;
			st[i].run_us = 3000;          /* <= 5 ms: bucket 0 */
		} else if (i < 130) {
			st[i].outcome = QUEUE_RETRY;  /* attempts left: retried */
			st[i].error = "later";
			st[i].delay_ms = 60000;
			st[i].run_us = 7000000;       /* 7 s: bucket 10 (<= 10 s) */
		} else if (i < 140) {
			st[i].outcome = QUEUE_FAIL;
			st[i].error = "no";
			st[i].run_us = 4000000000LL;  /* past the last bound */
		} else {
			st[i].outcome = QUEUE_DONE;   /* the sleep jobs */
			st[i].run_us = 20000;         /* bucket 2 (<= 25 ms) */
		}
	}
	h0 = calls("hincrby");
	assert_int_equal(take(NULL, 0, st, n), 0);
	h1 = calls("hincrby");
	/* 3 outcomes + 3 buckets + 1 sum (noop), 1 + 1 + 1 (sleep); the
	 * `retrying` gauge and the all-time `failed` total of the stats hash */
	assert_true(h1 - h0 <= 12);
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(outcome(&s, "noop", "done"), 100);
	assert_int_equal(outcome(&s, "noop", "retried"), 30);
	assert_int_equal(outcome(&s, "noop", "failed"), 10);
	assert_int_equal(outcome(&s, "sleep", "done"), 10);
	assert_int_equal(hist(&s, "noop")->run.count[0], 100);
	assert_int_equal(hist(&s, "noop")->run.count[10], 30);
	assert_int_equal(hist(&s, "noop")->run.count[QUEUE_HIST_BUCKETS], 10);
	assert_int_equal(hist(&s, "noop")->run.sum_us,
			 100 * 3000LL + 30 * 7000000LL + 10 * 4000000000LL);
	assert_int_equal(hist(&s, "sleep")->run.count[2], 10);
	assert_int_equal(total(&hist(&s, "noop")->wait), 140);
	assert_int_equal(total(&hist(&s, "sleep")->wait), 10);
	/* they were leased right after the enqueue: well under a minute */
	assert_true(hist(&s, "noop")->wait.sum_us < 140 * 60000000LL);
	queue_stats_release(&s);
	for (i = 0; i < n; i++)
		queue_job_release(&jobs[i]);
}

/* The wait of a retry counts from when it came due again, not from the
 * enqueue; a cancel of a queued job counts as cancelled. */
static void test_retry_wait_and_cancel(void **state)
{
	struct queue_job j;
	struct queue_settle st = { 0 };
	struct queue_stats s;
	struct queue_enqueued out;
	struct job_spec spec = { 0 };
	struct err e;

	(void)state;
	enqueue_n("noop", 1, 0);
	clock_sleep_us(300000); /* waits 300 ms: bucket 6 (<= 500 ms) */
	assert_int_equal(take(&j, 1, NULL, 0), 1);
	st.id = j.id;
	st.token = j.token;
	st.outcome = QUEUE_RETRY;
	st.error = "again";
	st.delay_ms = 0;
	st.run_us = -1; /* not measured: not counted */
	assert_int_equal(take(NULL, 0, &st, 1), 0);
	queue_job_release(&j);
	assert_int_equal(take(&j, 1, NULL, 0), 1); /* due at once: waits ~0 */
	queue_job_release(&j);
	spec.type = "noop";
	assert_int_equal(queue_enqueue(Q, qname, &spec, 1, &out, NULL, &e), 0);
	assert_int_equal(queue_cancel(Q, qname, out.id, &e), 0);
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(hist(&s, "noop")->wait.count[6], 1);
	assert_int_equal(hist(&s, "noop")->wait.count[0], 1);
	assert_int_equal(total(&hist(&s, "noop")->run), 0);
	assert_int_equal(outcome(&s, "noop", "retried"), 1);
	assert_int_equal(outcome(&s, "noop", "cancelled"), 1);
	queue_stats_release(&s);
}

/* The age of the oldest due job: the head of pending, or a delayed job
 * whose time has come; none when nothing is due. Wakes by trigger. */
static void test_oldest_due_and_wakes(void **state)
{
	struct queue_stats s;
	struct err e;
	int64_t t0 = clock_now_us() / 1000;

	(void)state;
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(s.oldest_due_ms, 0);
	assert_int_equal(s.due, 0);
	assert_int_equal(s.noutcomes + s.nhists + s.nwakes, 0);
	queue_stats_release(&s);
	enqueue_n("noop", 1, 3600000); /* not due: not counted */
	enqueue_n("noop", 1, 100);
	clock_sleep_us(250000);
	enqueue_n("noop", 2, 0);
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(s.due, 1);
	/* the delayed job came due ~100 ms after t0, before the pending ones */
	assert_true(s.oldest_due_ms >= t0 + 50 && s.oldest_due_ms <= t0 + 200);
	assert_true(s.now_ms - s.oldest_due_ms >= 100);
	queue_stats_release(&s);

	assert_int_equal(queue_count_wake(Q, qname, QUEUE_TRIGGER_API, 2, &e), 0);
	assert_int_equal(queue_count_wake(Q, qname, queue_trigger_parse(NULL), 1, &e), 0);
	assert_int_equal(queue_count_wake(Q, qname, queue_trigger_parse("fanout"), 1, &e), 0);
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(s.nwakes, 3);
	assert_string_equal(s.wakes[0].name, "api");
	assert_int_equal(s.wakes[0].n, 2);
	assert_string_equal(s.wakes[1].name, "cron");
	assert_string_equal(s.wakes[2].name, "fanout");
	queue_stats_release(&s);
	assert_int_equal(queue_trigger_parse("bogus"), QUEUE_TRIGGER_CRON);
	assert_string_equal(queue_trigger_name(QUEUE_TRIGGER_CLI), "cli");
}

/* A take that leases 20 jobs publishes once, a line each: `active`, with
 * the time of the change; the subscriber hands them out one by one. */
static void test_events_batched(void **state)
{
	struct queue_job jobs[20];
	struct queue_settle st[20];
	struct queue_event ev;
	struct queue_sub *sub;
	struct err e;
	int64_t until, t0 = clock_now_us();
	long p0, p1;
	size_t i, n;
	int got = 0, done = 0, rc;

	(void)state;
	sub = queue_sub_connect(&Qopts, &e);
	assert_non_null(sub);
	assert_int_equal(queue_sub_subscribe(sub, qname, &e), 0);
	until = clock_mono_us() + 2000000;
	while (clock_mono_us() < until) {
		struct pollfd p = { .fd = queue_sub_fd(sub), .events = POLLIN };

		if (poll(&p, 1, 100) > 0)
			break;
	}
	assert_int_equal(queue_sub_read(sub, &ev, &e), 0); /* the confirmation */
	enqueue_n("noop", 20, 0);
	p0 = calls("publish");
	n = take(jobs, 20, NULL, 0);
	assert_int_equal(n, 20);
	memset(st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		st[i].id = jobs[i].id;
		st[i].token = jobs[i].token;
		st[i].outcome = QUEUE_DONE;
	}
	assert_int_equal(take(NULL, 0, st, n), 0);
	p1 = calls("publish");
	assert_int_equal(p1 - p0, 2); /* one for the take, one for the settle */
	until = clock_mono_us() + 3000000;
	while (done < 20 && clock_mono_us() < until) {
		struct pollfd p = { .fd = queue_sub_fd(sub), .events = POLLIN };

		if (poll(&p, 1, 100) <= 0)
			continue;
		while ((rc = queue_sub_read(sub, &ev, &e)) == 1) {
			assert_string_equal(ev.queue, qname);
			assert_true(ev.time_us >= t0 - 5000000 && ev.time_us <= t0 + 60000000);
			if (!strcmp(ev.status, "active")) {
				/* in the order taken, before any done */
				assert_int_equal(done, 0);
				assert_string_equal(ev.id, jobs[got].id);
				got++;
			} else if (!strcmp(ev.status, "done")) {
				assert_true(ev.progress == 100);
				done++;
			}
		}
		assert_int_not_equal(rc, -1);
	}
	assert_int_equal(got, 20);
	assert_int_equal(done, 20);
	queue_sub_free(sub);
	for (i = 0; i < n; i++)
		queue_job_release(&jobs[i]);
}

UNIT_MAIN(
		cmocka_unit_test(test_bounds_agree),
		cmocka_unit_test_setup_teardown(test_counters_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_wait_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oldest_due_and_wakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_batched, setup, teardown),
)
