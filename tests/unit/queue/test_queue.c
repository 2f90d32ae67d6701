/* Unit tests of internal/queue against the real redis-server that
 * tests/run.sh starts (UNIT_REDIS_URL). Each test uses its own queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/uuid.h"
#include "queue/queue.h"

#define QNAME_PREFIX "t"
#include "testqueue.h"
#include "../unit.h"

static void enq(const char *type, const char *payload, int prio, int64_t delay_ms,
		int max_attempts, char id[UUID_STR_LEN], int *live)
{
	struct job_spec s = { 0 };
	struct queue_enqueued out;
	struct err e;

	s.type = type;
	s.payload = payload;
	s.priority = prio;
	s.delay_ms = delay_ms;
	s.max_attempts = max_attempts;
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &out, live, &e), 0);
	assert_true(out.created);
	if (id)
		memcpy(id, out.id, UUID_STR_LEN);
}

/* Takes up to max jobs, settling `settle` first. Returns how many. */
static size_t take(struct queue_job *jobs, size_t max, struct queue_settle *settle,
		   size_t nsettle, int64_t lease_ms)
{
	struct queue_take t = { 0 };
	struct err e;

	t.worker = "w1";
	t.lease_ms = lease_ms ? lease_ms : 30000;
	t.max = max;
	t.jobs = jobs;
	t.settle = settle;
	t.nsettle = nsettle;
	if (queue_take(Q, qname, &t, &e) < 0)
		fail_msg("take: %s", e.msg);
	return t.njobs;
}

static void settle1(struct queue_job *j, enum queue_outcome o, const char *res,
		    int64_t delay, int *stale)
{
	struct queue_settle s = { 0 };

	s.id = j->id;
	s.token = j->token;
	s.outcome = o;
	s.result = res;
	s.error = o == QUEUE_DONE ? NULL : "boom";
	s.delay_ms = delay;
	take(NULL, 0, &s, 1, 0);
	if (stale)
		*stale = s.stale;
}

static char *field(const char *id, const char *name)
{
	struct err e;
	struct job_info job;
	json_t *o, *v;
	char *out;

	if (queue_job_get(Q, qname, id, &job, &e) < 0)
		return NULL;
	o = job_info_to_json(&job);
	job_info_release(&job);
	v = json_object_get(o, name);
	if (json_is_string(v))
		out = strdup(json_string_value(v));
	else
		out = json_dumps(v, JSON_ENCODE_ANY);
	json_decref(o);
	return out;
}

static void assert_status(const char *id, const char *want)
{
	char *st = field(id, "status");

	assert_non_null(st);
	assert_string_equal(st, want);
	free(st);
}

static void test_url_parse(void **state)
{
	static const struct {
		const char *url;
		struct queue_url want;
	} good[] = {
		{ "redis://h:1234/2", { .host = "h", .port = 1234, .db = 2 } },
		{ "redis://:p%40ss@127.0.0.1",
		  { .host = "127.0.0.1", .port = 6379, .password = "p@ss" } },
		{ "redis://user:pw@[::1]:7000",
		  { .host = "::1", .port = 7000, .user = "user", .password = "pw" } },
		{ "rediss://x", { .host = "x", .port = 6379, .tls = 1 } },
		{ "unix:///run/redis.sock?db=3",
		  { .host = "/run/redis.sock", .port = 6379, .unix_socket = 1, .db = 3 } },
		{ "unix:///s?password=a%26b&db=2&user=me",
		  { .host = "/s", .port = 6379, .unix_socket = 1, .db = 2, .user = "me",
		    .password = "a&b" } },
		{ "redis://", { .host = "127.0.0.1", .port = 6379 } },
	};
	static const char *const bad[] = {
		"unix:///s?db=", "unix:///s?foo=1", "http://x", "redis://h:0",
		"redis://h:70000", "redis://h:12x", "redis://h/db", "redis://h/-1",
		"redis://[::1", "redis://:%zz@h", "redis://:%00@h", "unix://relative", "", NULL,
	};
	struct queue_url u;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct queue_url *w = &good[i].want;

		if (queue_url_parse(good[i].url, &u, &e) < 0)
			fail_msg("%s: %s", good[i].url, e.msg);
		assert_string_equal(u.host, w->host);
		assert_int_equal(u.port, w->port);
		assert_int_equal(u.unix_socket, w->unix_socket);
		assert_int_equal(u.tls, w->tls);
		assert_int_equal(u.db, w->db);
		assert_string_equal(u.user, w->user);
		assert_string_equal(u.password, w->password);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (queue_url_parse(bad[i], &u, &e) != -1)
			fail_msg("'%s' taken", bad[i] ? bad[i] : "(null)");
	assert_int_equal(queue_url_parse("http://x", &u, &e), -1);
	assert_non_null(strstr(e.msg, "bad redis url"));
}

static void test_connect_errors(void **state)
{
	struct queue_opts o = { 0 };
	struct err e;

	(void)state;
	assert_int_equal(queue_opts_init(&o, "redis://127.0.0.1:1", &e), 0);
	o.connect_timeout_s = 0.5;
	assert_fails_null(queue_connect(&o, &e), &e, ERR_UNAVAILABLE);
	assert_int_equal(queue_name_check("ok-name_1.x", &e), 0);
	assert_int_equal(queue_name_check("bad name", &e), -1);
	assert_int_equal(queue_name_check("a{b}", &e), -1);
	assert_int_equal(queue_name_check("", &e), -1);
}

static void test_priority_fifo(void **state)
{
	char ids[6][UUID_STR_LEN];
	struct queue_job jobs[10];
	int prio[6] = { 5, 0, 5, 9, 0, 5 };
	int want[6] = { 1, 4, 0, 2, 5, 3 };
	size_t i, n;
	int live = -1;

	(void)state;
	for (i = 0; i < 6; i++)
		enq("noop", NULL, prio[i], 0, 0, ids[i], &live);
	assert_int_equal(live, 0); /* nobody registered */
	n = take(jobs, 10, NULL, 0, 0);
	assert_int_equal(n, 6);
	/* one fencing token for the batch (docs/QUEUE.md "Numbers and the
	 * order of a batch"); a later lease gets another (test_fencing,
	 * test_fencing_batch) */
	assert_true(jobs[0].token > 0);
	for (i = 0; i < n; i++) {
		assert_string_equal(jobs[i].id, ids[want[i]]);
		assert_int_equal(jobs[i].attempts, 1);
		assert_int_equal(jobs[i].token, jobs[0].token);
	}
	for (i = 0; i < n; i++)
		queue_job_release(&jobs[i]);
}

static void test_batch_and_ack(void **state)
{
	struct job_spec specs[100];
	struct queue_enqueued out[100];
	struct queue_job jobs[100];
	struct queue_settle st[100];
	struct queue_counts c;
	struct err e;
	size_t i, n;
	int64_t t0 = clock_now_us() / 1000;

	(void)state;
	memset(specs, 0, sizeof(specs));
	for (i = 0; i < 100; i++) {
		specs[i].type = "noop";
		specs[i].payload = "{\"n\":1}";
	}
	assert_int_equal(queue_enqueue(Q, qname, specs, 100, out, NULL, &e), 0);
	for (i = 1; i < 100; i++)
		assert_true(strcmp(out[i - 1].id, out[i].id) < 0);
	n = take(jobs, 100, NULL, 0, 0);
	assert_int_equal(n, 100);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_ACTIVE], 100);
	assert_int_equal(c.n[JOB_QUEUED], 0);
	/* the first lease to run out: the take's 30 s from now */
	assert_true(c.lease_ms >= t0 + 30000 && c.lease_ms <= clock_now_us() / 1000 + 30000);
	memset(st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		st[i].id = jobs[i].id;
		st[i].token = jobs[i].token;
		st[i].outcome = QUEUE_DONE;
		st[i].result = "{\"ok\":true}";
	}
	assert_int_equal(take(NULL, 0, st, n, 0), 0);
	for (i = 0; i < n; i++) {
		assert_false(st[i].stale);
		assert_true(st[i].final);
	}
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_ACTIVE], 0);
	assert_int_equal(c.n[JOB_DONE], 100);
	assert_int_equal(c.lease_ms, 0);
	assert_status(jobs[7].id, "done");
	{
		char *res = field(jobs[7].id, "result");

		assert_string_equal(res, "{\"ok\": true}");
		free(res);
	}
	for (i = 0; i < n; i++)
		queue_job_release(&jobs[i]);
}

static void test_delay_and_next_due(void **state)
{
	struct queue_job jobs[2];
	struct queue_take t = { 0 };
	struct err e;
	char id[UUID_STR_LEN];
	int64_t t0 = clock_now_us() / 1000;

	(void)state;
	enq("noop", NULL, 0, 300, 0, id, NULL);
	assert_status(id, "scheduled");
	t.worker = "w";
	t.lease_ms = 1000;
	t.max = 2;
	t.jobs = jobs;
	assert_int_equal(queue_take(Q, qname, &t, &e), 0);
	assert_int_equal(t.njobs, 0);
	assert_true(t.next_due_ms >= t0 + 250 && t.next_due_ms <= t0 + 1000);
	clock_sleep_us(350000);
	assert_int_equal(take(jobs, 2, NULL, 0, 0), 1);
	assert_string_equal(jobs[0].id, id);
	queue_job_release(&jobs[0]);
}

static void test_retry_then_dead(void **state)
{
	struct job_info job;
	struct queue_job j;
	struct queue_counts c;
	struct err e;
	char id[UUID_STR_LEN];
	int stale, k;

	(void)state;
	enq("fail", NULL, 0, 0, 3, id, NULL);
	for (k = 1; k <= 3; k++) {
		assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
		assert_int_equal(j.attempts, k);
		settle1(&j, QUEUE_RETRY, NULL, 1, &stale);
		assert_false(stale);
		queue_job_release(&j);
		if (k < 3) {
			assert_status(id, "retrying");
			assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
			assert_int_equal(c.n[JOB_RETRYING], 1);
			clock_sleep_us(5000);
		}
	}
	assert_status(id, "failed");
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_FAILED], 1);
	assert_int_equal(c.n[JOB_RETRYING], 0);
	/* retry from dead, then purge */
	assert_int_equal(queue_retry_dead(Q, qname, id, &e), 0);
	assert_status(id, "queued");
	assert_fails(queue_retry_dead(Q, qname, id, &e), &e, ERR_CONFLICT);
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	assert_int_equal(j.attempts, 1);
	settle1(&j, QUEUE_FAIL, NULL, 0, NULL);
	queue_job_release(&j);
	assert_int_equal(queue_purge_dead(Q, qname, &e), 1);
	assert_fails(queue_job_get(Q, qname, id, &job, &e), &e, ERR_NOTFOUND);
}

static void test_idempotency(void **state)
{
	struct job_spec s = { 0 };
	struct queue_enqueued a, b;
	struct err e;

	(void)state;
	s.type = "noop";
	s.idempotency_key = "order-42";
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &a, NULL, &e), 0);
	assert_true(a.created);
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &b, NULL, &e), 0);
	assert_false(b.created);
	assert_string_equal(a.id, b.id);
}

/* A job leased ahead and lost with its worker before it ran gets its
 * attempt back; one that keeps vanishing unseen is buried eventually. */
static void test_unstarted_not_counted(void **state)
{
	struct queue_job j;
	struct err e;
	char id[UUID_STR_LEN];
	char *st;
	int i;

	(void)state;
	enq("noop", NULL, 0, 0, 1, id, NULL); /* max_attempts 1 */
	for (i = 0; i < 3; i++) {
		assert_int_equal(take(&j, 1, NULL, 0, 20), 1);
		assert_string_equal(j.id, id);
		assert_int_equal(j.attempts, 1); /* never more: none started */
		queue_job_release(&j);
		clock_sleep_us(40000);
	}
	for (i = 0; i < 25; i++) {
		if (take(&j, 1, NULL, 0, 1) == 0)
			break;
		queue_job_release(&j);
		clock_sleep_us(5000);
	}
	st = field(id, "status");
	assert_string_equal(st, "failed");
	free(st);
	st = field(id, "error");
	assert_non_null(strstr(st, "before it was seen running"));
	free(st);
	(void)e;
}

static void test_fencing(void **state)
{
	struct queue_job j1, j2;
	struct queue_lease l;
	struct err e;
	char id[UUID_STR_LEN];
	int stale;

	(void)state;
	enq("noop", NULL, 0, 0, 5, id, NULL);
	assert_int_equal(take(&j1, 1, NULL, 0, 50), 1); /* 50 ms lease */
	/* the heartbeat reports the run begun: the expiry counts an attempt */
	l.id = id;
	l.token = j1.token;
	l.running = 1;
	assert_int_equal(queue_renew(Q, qname, "w1", 50, 1000, &l, 1, &e), 0);
	clock_sleep_us(80000);
	/* The lease expired: the next take reclaims and leases it again. */
	assert_int_equal(take(&j2, 1, NULL, 0, 0), 1);
	assert_string_equal(j2.id, j1.id);
	assert_int_equal(j2.attempts, 2);
	assert_true(j2.token != j1.token);
	/* The stale holder is refused everywhere. */
	assert_fails(queue_progress(Q, qname, id, j1.token, 50, "x", &e), &e, ERR_STALE);
	l.id = id;
	l.token = j1.token;
	assert_int_equal(queue_renew(Q, qname, "w1", 1000, 1000, &l, 1, &e), 0);
	assert_true(l.lost);
	settle1(&j1, QUEUE_DONE, "1", 0, &stale);
	assert_true(stale);
	assert_status(id, "active");
	/* The new holder is fine. */
	assert_int_equal(queue_progress(Q, qname, id, j2.token, 50, "encode", &e), 0);
	settle1(&j2, QUEUE_DONE, "2", 0, &stale);
	assert_false(stale);
	assert_status(id, "done");
	{
		struct queue_counts c;

		assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
		assert_int_equal(c.stale, 1);
	}
	queue_job_release(&j1);
	queue_job_release(&j2);
}

/* One token for a leased batch: when one of its jobs is reclaimed and
 * leased again, the old holder is refused for that job alone; the other
 * job of the batch, still held, settles with the batch's token. */
static void test_fencing_batch(void **state)
{
	struct queue_job old[2], again;
	struct queue_lease l = { 0 };
	struct err e;
	char ids[2][UUID_STR_LEN];
	int stale;

	(void)state;
	enq("noop", NULL, 0, 0, 5, ids[0], NULL);
	enq("noop", NULL, 0, 0, 5, ids[1], NULL);
	assert_int_equal(take(old, 2, NULL, 0, 50), 2); /* 50 ms leases */
	assert_int_equal(old[0].token, old[1].token);
	/* the second job's lease is renewed, the first one's runs out */
	l.id = old[1].id;
	l.token = old[1].token;
	l.running = 1;
	assert_int_equal(queue_renew(Q, qname, "w1", 5000, 1000, &l, 1, &e), 0);
	assert_false(l.lost);
	clock_sleep_us(80000);
	assert_int_equal(take(&again, 2, NULL, 0, 0), 1);
	assert_string_equal(again.id, old[0].id);
	assert_true(again.token != old[0].token);
	settle1(&old[0], QUEUE_DONE, "1", 0, &stale);
	assert_true(stale);
	assert_status(old[0].id, "active");
	settle1(&old[1], QUEUE_DONE, "2", 0, &stale);
	assert_false(stale);
	assert_status(old[1].id, "done");
	settle1(&again, QUEUE_DONE, "3", 0, &stale);
	assert_false(stale);
	assert_status(again.id, "done");
	queue_job_release(&old[0]);
	queue_job_release(&old[1]);
	queue_job_release(&again);
}

static void test_requeue_not_counted(void **state)
{
	struct queue_job j;
	char id[UUID_STR_LEN];

	(void)state;
	enq("noop", NULL, 3, 0, 1, id, NULL);
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	settle1(&j, QUEUE_REQUEUE, NULL, 0, NULL);
	queue_job_release(&j);
	assert_status(id, "queued");
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	assert_int_equal(j.attempts, 1); /* max_attempts 1 and still runs */
	queue_job_release(&j);
}

static void test_cancel(void **state)
{
	struct queue_job j;
	struct queue_lease l;
	struct err e;
	char a[UUID_STR_LEN], b[UUID_STR_LEN];

	(void)state;
	enq("noop", NULL, 0, 0, 0, a, NULL);
	enq("noop", NULL, 0, 0, 0, b, NULL);
	assert_int_equal(queue_cancel(Q, qname, a, &e), 0);
	assert_status(a, "cancelled");
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	assert_string_equal(j.id, b);
	assert_int_equal(queue_cancel(Q, qname, b, &e), 1); /* requested */
	l.id = b;
	l.token = j.token;
	assert_int_equal(queue_renew(Q, qname, "w1", 1000, 1000, &l, 1, &e), 0);
	assert_true(l.cancel);
	assert_false(l.lost);
	settle1(&j, QUEUE_CANCELLED, NULL, 0, NULL);
	assert_status(b, "cancelled");
	assert_fails(queue_cancel(Q, qname, b, &e), &e, ERR_CONFLICT);
	assert_fails(queue_cancel(Q, qname, "01234567-89ab-7def-8123-456789abcdef", &e),
	             &e, ERR_NOTFOUND);
	queue_job_release(&j);
}

static void test_registry_retire(void **state)
{
	struct queue_job j;
	struct err e;
	int live = -1, retired = -1;

	(void)state;
	assert_int_equal(queue_register(Q, qname, "w1", 5000, &e), 0);
	assert_int_equal(queue_live_workers(Q, qname, &e), 1);
	enq("noop", NULL, 0, 0, 0, NULL, &live);
	assert_int_equal(live, 1);
	assert_int_equal(queue_retire(Q, qname, "w1", 0, &retired, &e), 0);
	assert_int_equal(retired, 0); /* work is due */
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	settle1(&j, QUEUE_DONE, NULL, 0, NULL);
	queue_job_release(&j);
	assert_int_equal(queue_retire(Q, qname, "w1", 0, &retired, &e), 0);
	assert_int_equal(retired, 1);
	assert_int_equal(queue_live_workers(Q, qname, &e), 0);
	enq("noop", NULL, 0, 0, 0, NULL, &live);
	assert_int_equal(live, 0);
	/* an expired registration is not live */
	assert_int_equal(queue_register(Q, qname, "w2", 20, &e), 0);
	clock_sleep_us(40000);
	enq("noop", NULL, 0, 0, 0, NULL, &live);
	assert_int_equal(live, 0);
}

static void test_webhook_job(void **state)
{
	struct job_spec s = { 0 };
	struct queue_enqueued out;
	struct queue_job j, w;
	struct err e;
	json_t *p;

	(void)state;
	s.type = "noop";
	s.callback_url = "http://127.0.0.1:9/hook";
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &out, NULL, &e), 0);
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	assert_string_equal(j.callback_url, "http://127.0.0.1:9/hook");
	settle1(&j, QUEUE_DONE, "{\"frames\":3}", 0, NULL);
	assert_int_equal(take(&w, 1, NULL, 0, 0), 1);
	assert_string_equal(w.type, "webhook.deliver");
	assert_true(uuid_valid(w.id));
	p = json_loads(w.payload, 0, NULL);
	assert_non_null(p);
	assert_json_str(p, "url", "http://127.0.0.1:9/hook");
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "body"), "id")), out.id);
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "body"), "status")), "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(p, "body"), "result"), "frames")), 3);
	assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(p, "body"), "finished_at"))), 27);
	json_decref(p);
	queue_job_release(&j);
	queue_job_release(&w);
}

/* A result too deep for cjson to re-encode must not break the settle
 * (scripts are not rolled back): the job is done, the webhook carries null. */
static void test_webhook_deep_result(void **state)
{
	struct job_spec s = { 0 };
	struct queue_enqueued out;
	struct queue_job j, w;
	struct err e;
	char *deep = malloc(2 * 1000 + 2);
	int i, stale;
	json_t *p;

	(void)state;
	for (i = 0; i < 999; i++)
		deep[i] = '[';
	for (i = 0; i < 999; i++)
		deep[999 + i] = ']';
	deep[1998] = '\0';
	s.type = "noop";
	s.callback_url = "http://127.0.0.1:9/hook";
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &out, NULL, &e), 0);
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	settle1(&j, QUEUE_DONE, deep, 0, &stale);
	assert_false(stale);
	assert_status(out.id, "done");
	assert_int_equal(take(&w, 1, NULL, 0, 0), 1);
	assert_string_equal(w.type, "webhook.deliver");
	p = json_loads(w.payload, 0, NULL);
	assert_true(json_is_null(json_object_get(json_object_get(p, "body"), "result")));
	json_decref(p);
	queue_job_release(&j);
	queue_job_release(&w);
	free(deep);
}

static void test_list_and_discover(void **state)
{
	char **ids, **names;
	struct err e;
	int n, i, found = 0;

	(void)state;
	enq("noop", NULL, 0, 0, 0, NULL, NULL);
	enq("noop", NULL, 0, 0, 0, NULL, NULL);
	n = queue_list(Q, qname, JOB_QUEUED, 0, 10, &ids, &e);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	n = queue_discover(Q, &names, &e);
	assert_true(n >= 1);
	for (i = 0; i < n; i++) {
		found |= !strcmp(names[i], qname);
		free(names[i]);
	}
	free(names);
	assert_true(found);
}

static void test_done_cap(void **state)
{
	char ids[8][UUID_STR_LEN];
	struct job_info job;
	struct queue_job j;
	struct queue_counts c;
	struct err e;
	int64_t saved = queue_limits.done_max;
	int i;

	(void)state;
	queue_limits.done_max = 5;
	for (i = 0; i < 8; i++) {
		enq("noop", NULL, 0, 0, 0, ids[i], NULL);
		assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
		settle1(&j, QUEUE_DONE, "1", 0, NULL);
		queue_job_release(&j);
	}
	queue_limits.done_max = saved;
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_DONE], 5);
	/* the oldest three went, hashes and all; the newest stay */
	assert_fails(queue_job_get(Q, qname, ids[0], &job, &e), &e, ERR_NOTFOUND);
	assert_int_equal(queue_job_get(Q, qname, ids[2], &job, &e), -1);
	assert_status(ids[3], "done");
	assert_status(ids[7], "done");
}

/* A raw connection to the test's Redis, for what the queue module never
 * does itself (here: keeping the server busy). */
static redisContext *raw_connect(void)
{
	struct queue_url u;
	struct err e;
	redisContext *c;

	assert_int_equal(queue_url_parse(getenv("UNIT_REDIS_URL"), &u, &e), 0);
	c = redisConnect(u.host, u.port);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static void raw_ok(redisContext *c, const char *cmd)
{
	redisReply *r = redisCommand(c, cmd);

	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

/* A server that cannot serve now but will (BUSY with a script past its
 * time limit here; LOADING after a restart, which the chaos test
 * 03_redis_kill meets, is the same kind) is ERR_UNAVAILABLE: a 503 from
 * the API and a retry in the worker, where it used to be a protocol error
 * (a 500 "internal"). */
static void test_busy_is_unavailable(void **state)
{
	redisContext *admin = raw_connect(), *busy = raw_connect();
	struct queue_counts c;
	struct err e;
	int done = 0, i, rc = -1;

	*state = admin;
	raw_ok(admin, "CONFIG SET busy-reply-threshold 50");
	assert_int_equal(redisAppendCommand(busy, "EVAL %s 0", "while true do end"), REDIS_OK);
	while (!done)
		assert_int_equal(redisBufferWrite(busy, &done), REDIS_OK);
	usleep(300000); /* past the threshold */
	rc = queue_counts(Q, qname, &c, &e);
	raw_ok(admin, "SCRIPT KILL");
	redisFree(busy);
	assert_fails(rc, &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "BUSY"));
	for (i = 0, rc = -1; i < 100 && rc < 0; i++) {
		rc = queue_counts(Q, qname, &c, &e);
		if (rc < 0)
			usleep(20000);
	}
	assert_int_equal(rc, 0);
}

/* Whatever the test did: no script left running, the threshold back. */
static int teardown_busy(void **state)
{
	redisContext *admin = *state;
	redisReply *r;

	if (admin) {
		r = redisCommand(admin, "SCRIPT KILL");
		freeReplyObject(r);
		r = redisCommand(admin, "CONFIG SET busy-reply-threshold 5000");
		freeReplyObject(r);
		redisFree(admin);
	}
	return teardown(state);
}

/* What rides on a take (the worker's idle wake is one take and one
 * retire): the registration, the finals log turned on before the settles
 * of that very take, the wake counts; and the log's backlog reported. */
static void test_take_carries(void **state)
{
	redisContext *raw = raw_connect();
	struct queue_take t = { 0 };
	struct queue_settle st = { 0 };
	struct queue_stats s;
	struct queue_job j;
	char cmd[160];
	int64_t wakes[QUEUE_NTRIGGERS] = { 0 };
	redisReply *r;
	struct err e;
	int live = -1;

	(void)state;
	snprintf(cmd, sizeof(cmd), "DEL wakeq:{%s}:record", qname);
	raw_ok(raw, cmd);
	enq("noop", NULL, 0, 0, 0, NULL, &live);
	assert_int_equal(live, 0);
	t.worker = "w1";
	t.lease_ms = 30000;
	t.max = 1;
	t.jobs = &j;
	t.register_ttl_ms = 5000;
	t.record = 1;
	wakes[QUEUE_TRIGGER_API] = 2;
	wakes[QUEUE_TRIGGER_CRON] = 1;
	t.wakes = wakes;
	assert_int_equal(queue_take(Q, qname, &t, &e), 0);
	assert_int_equal(t.njobs, 1);
	assert_int_equal(t.finals, 0);
	assert_int_equal(queue_live_workers(Q, qname, &e), 1);
	enq("noop", NULL, 0, 0, 0, NULL, &live);
	assert_int_equal(live, 1);
	/* the log is on: the settle of the next take is in it */
	st.id = j.id;
	st.token = j.token;
	st.outcome = QUEUE_DONE;
	memset(&t, 0, sizeof(t));
	t.worker = "w1";
	t.lease_ms = 30000;
	t.settle = &st;
	t.nsettle = 1;
	t.record = 1;
	assert_int_equal(queue_take(Q, qname, &t, &e), 0);
	assert_int_equal(t.finals, 1);
	snprintf(cmd, sizeof(cmd), "XLEN wakeq:{%s}:finals", qname);
	r = redisCommand(raw, cmd);
	assert_non_null(r);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	queue_job_release(&j);
	/* without record: no backlog reported, nothing registered */
	memset(&t, 0, sizeof(t));
	t.worker = "w2";
	t.lease_ms = 30000;
	assert_int_equal(queue_take(Q, qname, &t, &e), 0);
	assert_int_equal(t.finals, 0);
	assert_int_equal(queue_live_workers(Q, qname, &e), 1);
	assert_int_equal(queue_stats_read(Q, qname, &s, &e), 0);
	assert_int_equal(s.nwakes, 2);
	assert_string_equal(s.wakes[0].name, "api");
	assert_int_equal(s.wakes[0].n, 2);
	assert_string_equal(s.wakes[1].name, "cron");
	assert_int_equal(s.wakes[1].n, 1);
	queue_stats_release(&s);
	redisFree(raw);
}

/* A kept connection the server closed meanwhile is dropped without a
 * command, and the next command connects afresh; a live one is kept. */
static void test_check_drops_closed(void **state)
{
	redisContext *raw = raw_connect();
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct queue_counts c;
	char cmd[96];
	struct err e;

	(void)state;
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(queue_check(Q, 0), 1);
	assert_int_equal(getsockname(queue_fd(Q), (struct sockaddr *)&a, &alen), 0);
	snprintf(cmd, sizeof(cmd), "CLIENT KILL ADDR 127.0.0.1:%d", ntohs(a.sin_port));
	raw_ok(raw, cmd);
	redisFree(raw);
	usleep(20000);
	assert_int_equal(queue_check(Q, 0), 0);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(queue_check(Q, 0), 1);
}

/* A kept connection idle past the bound is dropped (a NAT may have
 * forgotten it) and the next command connects afresh; queue connections
 * have TCP keepalive on. */
static void test_check_drops_idle(void **state)
{
	struct queue_counts c;
	struct err e;
	int on = 0;
	socklen_t len = sizeof(on);

	(void)state;
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(getsockopt(queue_fd(Q), SOL_SOCKET, SO_KEEPALIVE, &on, &len), 0);
	assert_int_equal(on, 1);
	assert_int_equal(queue_check(Q, 1000), 1);
	usleep(60000);
	assert_int_equal(queue_check(Q, 1000), 1);
	assert_int_equal(queue_check(Q, 40), 0);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(queue_check(Q, 40), 1);
}

/* depends_on: the dependent waits (not leased), the done settle of its
 * dependency queues it, and its lease carries the dependency's result;
 * an unknown id refuses the job alone. */
static void test_dependencies(void **state)
{
	struct queue_job jobs[4];
	struct job_spec s = { 0 };
	struct queue_enqueued out[2];
	struct err e;
	char a[UUID_STR_LEN], deps[64], want[128];

	(void)state;
	enq("noop", NULL, 0, 0, 3, a, NULL);
	snprintf(deps, sizeof(deps), "[\"%s\"]", a);
	s.type = "noop";
	s.depends_on = deps;
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, out, NULL, &e), 0);
	assert_true(out[0].created);
	assert_int_equal(out[0].status, JOB_WAITING);
	assert_status(out[0].id, "waiting");
	assert_int_equal(take(jobs, 4, NULL, 0, 0), 1);
	assert_string_equal(jobs[0].id, a);
	assert_null(jobs[0].dependencies);
	settle1(&jobs[0], QUEUE_DONE, "{\"n\":7}", 0, NULL);
	queue_job_release(&jobs[0]);
	assert_status(out[0].id, "queued");
	assert_int_equal(take(jobs, 4, NULL, 0, 0), 1);
	assert_string_equal(jobs[0].id, out[0].id);
	snprintf(want, sizeof(want), "{\"%s\":{\"n\":7}}", a);
	assert_non_null(jobs[0].dependencies);
	assert_string_equal(jobs[0].dependencies, want);
	queue_job_release(&jobs[0]);

	/* an unknown id: that job alone is refused, its batch-mate made */
	s.depends_on = "[\"01890a5d-ac96-774b-bcce-b302099a8057\"]";
	{
		struct job_spec two[2];

		memset(two, 0, sizeof(two));
		two[0] = s;
		two[1].type = "noop";
		assert_int_equal(queue_enqueue(Q, qname, two, 2, out, NULL, &e), 0);
	}
	assert_false(out[0].created);
	assert_string_equal(out[0].missing, "01890a5d-ac96-774b-bcce-b302099a8057");
	assert_true(out[1].created);
	assert_string_equal(out[1].missing, "");
	assert_null(field(out[0].id, "status"));
}

/* A dependency's result reaches its dependent though the dependency's
 * record is trimmed (done_max 1) before the dependent runs: the settle
 * copied it (dres:ID). */
static void test_dependency_result_kept(void **state)
{
	struct queue_job jobs[4];
	struct job_spec s = { 0 };
	struct queue_enqueued out;
	redisContext *raw = raw_connect();
	struct err e;
	char a[UUID_STR_LEN], b[UUID_STR_LEN], deps[64], want[128], cmd[160];
	size_t i, n;
	char *st;

	(void)state;
	enq("noop", NULL, 0, 0, 3, a, NULL);
	snprintf(deps, sizeof(deps), "[\"%s\"]", a);
	s.type = "noop";
	s.depends_on = deps;
	assert_int_equal(queue_enqueue(Q, qname, &s, 1, &out, NULL, &e), 0);
	enq("noop", NULL, 0, 0, 3, b, NULL);
	snprintf(cmd, sizeof(cmd), "HSET wakeq:{%s}:config done_max 1", qname);
	raw_ok(raw, cmd);
	redisFree(raw);
	n = take(jobs, 4, NULL, 0, 0);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		if (!strcmp(jobs[i].id, a))
			settle1(&jobs[i], QUEUE_DONE, "{\"n\":7}", 0, NULL);
	for (i = 0; i < n; i++) {
		if (strcmp(jobs[i].id, a))
			settle1(&jobs[i], QUEUE_DONE, "1", 0, NULL);
		queue_job_release(&jobs[i]);
	}
	st = field(a, "status");
	assert_null(st);         /* trimmed: the done cap is 1 */
	assert_int_equal(take(jobs, 4, NULL, 0, 0), 1);
	assert_string_equal(jobs[0].id, out.id);
	snprintf(want, sizeof(want), "{\"%s\":{\"n\":7}}", a);
	assert_non_null(jobs[0].dependencies);
	assert_string_equal(jobs[0].dependencies, want);
	queue_job_release(&jobs[0]);
}

/* A cancel's cascade buries the dependents under the process's dead cap
 * (queue_limits.dead_max, DEAD_MAX), as take does, not the default. */
static void test_dependency_cancel_dead_max(void **state)
{
	enum { N = 5 };
	struct job_spec s[N + 1];
	struct queue_enqueued out[N + 1];
	struct queue_counts c;
	int64_t keep = queue_limits.dead_max;
	char deps[64];
	struct err e;
	int i;

	(void)state;
	memset(s, 0, sizeof(s));
	for (i = 0; i <= N; i++) {
		s[i].type = "noop";
		uuid7_new(s[i].id);
		s[i].depends_on = i ? deps : NULL;
	}
	snprintf(deps, sizeof(deps), "[\"%s\"]", s[0].id);
	assert_int_equal(queue_enqueue(Q, qname, s, N + 1, out, NULL, &e), 0);
	queue_limits.dead_max = 2;
	assert_true(queue_cancel(Q, qname, s[0].id, &e) >= 0);
	queue_limits.dead_max = keep;
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_WAITING], 0);
	assert_int_equal(c.n[JOB_FAILED], 2);
}

/* The dependencies' results a take hands out are bounded (16 MiB): 17
 * results of 1 MiB give 15 and 2 nulls, and the job is told (cut). */
static void test_dependency_results_bounded(void **state)
{
	enum { N = 17, MIB = 1024 * 1024 };
	struct job_spec s[N + 1];
	struct queue_enqueued out[N + 1];
	struct queue_job jobs[N];
	char *big = malloc(MIB + 3), *deps = malloc(N * 48 + 4), *p;
	size_t i, n, nnull = 0;
	struct err e;

	(void)state;
	big[0] = '"';
	memset(big + 1, 'x', MIB);
	big[MIB + 1] = '"';
	big[MIB + 2] = '\0';
	memset(s, 0, sizeof(s));
	p = deps;
	*p++ = '[';
	for (i = 0; i <= N; i++) {
		s[i].type = "noop";
		uuid7_new(s[i].id);
		if (i < N)
			p += sprintf(p, "%s\"%s\"", i ? "," : "", s[i].id);
	}
	strcpy(p, "]");
	s[N].depends_on = deps;
	assert_int_equal(queue_enqueue(Q, qname, s, N + 1, out, NULL, &e), 0);
	n = take(jobs, N, NULL, 0, 0);
	assert_int_equal(n, N);
	for (i = 0; i < n; i++) {
		settle1(&jobs[i], QUEUE_DONE, big, 0, NULL);
		queue_job_release(&jobs[i]);
	}
	assert_int_equal(take(jobs, 1, NULL, 0, 0), 1);
	assert_string_equal(jobs[0].id, s[N].id);
	assert_non_null(jobs[0].dependencies);
	assert_true(strlen(jobs[0].dependencies) <= 16 * MIB + N * 48);
	for (p = jobs[0].dependencies; (p = strstr(p, ":null")); p++)
		nnull++;
	assert_int_equal(nnull, 2);
	assert_int_equal(jobs[0].dependencies_cut, 1);
	queue_job_release(&jobs[0]);
	free(big);
	free(deps);
}

/* queue_job_deps reads the dependencies in one round trip (jobs_get): 300
 * of them, and an id whose record is gone comes back with its id alone. */
static void test_job_deps_one_trip(void **state)
{
	enum { N = 300 };
	struct job_spec *s = calloc(N, sizeof(*s));
	struct queue_enqueued *out = calloc(N, sizeof(*out));
	char *deps = malloc((N + 1) * 40 + 4), *p = deps;
	struct job_info j = { 0 };
	json_t *v = NULL;
	struct err e;
	size_t i;

	(void)state;
	*p++ = '[';
	for (i = 0; i < N; i++) {
		s[i].type = "noop";
		uuid7_new(s[i].id);
		p += sprintf(p, "\"%s\",", s[i].id);
	}
	strcpy(p, "\"01890a5d-ac96-774b-bcce-b302099a8057\"]");
	assert_int_equal(queue_enqueue(Q, qname, s, N, out, NULL, &e), 0);
	j.depends_on = deps;
	assert_int_equal(queue_job_deps(Q, qname, &j, &v, &e), 0);
	assert_true(json_is_array(v));
	assert_int_equal(json_array_size(v), N + 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, 7), "id")),
			    s[7].id);
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, 7), "status")),
			    "queued");
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, N), "id")),
			    "01890a5d-ac96-774b-bcce-b302099a8057");
	json_decref(v);
	free(deps);
	free(s);
	free(out);
}

/* Takes (nothing to lease) until no job of the queue waits; returns how
 * many takes it needed, at most max + 1. */
static int takes_until_none_waits(int max)
{
	struct queue_counts c;
	struct queue_job j;
	struct err e;
	int n;

	for (n = 1; n <= max; n++) {
		assert_int_equal(take(&j, 1, NULL, 0, 0), 0);
		assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
		if (c.n[JOB_WAITING] == 0)
			return n;
	}
	return max + 1;
}

/* A failure's cascade is bounded a script run (deps_settle: 1000
 * dependents) and carried on by the next takes: a chain of 20000 jobs,
 * each depending on the one before (a Lua stack overflow by recursion
 * once), and a fan-out of 2500 dependents of one job. The failed job
 * itself leaves `active` with the settle; nothing stays waiting. */
static void test_dependency_cascade(void **state)
{
	enum { N = 20000, FAN = 2500, CHUNK = 1000 };
	struct job_spec *s = calloc(N, sizeof(*s));
	struct queue_enqueued *out = calloc(CHUNK, sizeof(*out));
	char (*deps)[64] = calloc(N, sizeof(*deps));
	struct queue_counts c;
	struct queue_job j;
	struct err e;
	char *err;
	size_t i;

	(void)state;
	for (i = 0; i < N; i++) {
		s[i].type = i ? "noop" : "fail";
		s[i].max_attempts = 1;
		uuid7_new(s[i].id);
		if (i) {
			snprintf(deps[i], sizeof(deps[i]), "[\"%s\"]", s[i - 1].id);
			s[i].depends_on = deps[i];
		}
	}
	for (i = 0; i < N; i += CHUNK)
		assert_int_equal(queue_enqueue(Q, qname, s + i, CHUNK, out, NULL, &e), 0);
	assert_int_equal(take(&j, 1, NULL, 0, 0), 1);
	assert_string_equal(j.id, s[0].id);
	settle1(&j, QUEUE_FAIL, NULL, 0, NULL);
	queue_job_release(&j);
	assert_status(s[0].id, "failed");
	/* bounded: the settle's run ended at most its cap of the chain */
	assert_status(s[1001].id, "waiting");
	assert_true(takes_until_none_waits(25) <= 25);
	assert_status(s[N - 1].id, "failed");
	err = field(s[N - 1].id, "error");
	assert_non_null(strstr(err, s[N - 2].id));
	free(err);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_int_equal(c.n[JOB_ACTIVE], 0);

	/* fan-out: FAN dependents of one job, cancelled */
	memset(s, 0, N * sizeof(*s));
	for (i = 0; i <= FAN; i++) {
		s[i].type = "noop";
		uuid7_new(s[i].id);
		if (i) {
			snprintf(deps[i], sizeof(deps[i]), "[\"%s\"]", s[0].id);
			s[i].depends_on = deps[i];
		}
	}
	assert_int_equal(queue_enqueue(Q, qname, s, 1, out, NULL, &e), 0);
	for (i = 1; i <= FAN; i += CHUNK) {
		size_t n = FAN + 1 - i < CHUNK ? FAN + 1 - i : CHUNK;

		assert_int_equal(queue_enqueue(Q, qname, s + i, n, out, NULL, &e), 0);
	}
	assert_int_equal(queue_cancel(Q, qname, s[0].id, &e), 2);
	assert_int_equal(queue_counts(Q, qname, &c, &e), 0);
	assert_true(c.n[JOB_WAITING] >= FAN - 1000);
	assert_true(takes_until_none_waits(5) <= 5);
	for (i = 1; i <= FAN; i += 97)
		assert_status(s[i].id, "failed");
	free(s);
	free(out);
	free(deps);
}

static void test_backoff(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		int64_t b1 = queue_backoff_ms(1, 1000, 60000);
		int64_t b3 = queue_backoff_ms(3, 1000, 60000);
		int64_t b20 = queue_backoff_ms(20, 1000, 60000);

		assert_true(b1 >= 500 && b1 <= 1000);
		assert_true(b3 >= 2000 && b3 <= 4000);
		assert_true(b20 >= 30000 && b20 <= 60000);
	}
}

UNIT_MAIN(
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test_setup_teardown(test_connect_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_priority_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fencing_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_and_next_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_then_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unstarted_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_retire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_and_discover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_done_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_deep_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependencies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependency_cascade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependency_result_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependency_cancel_dead_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dependency_results_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_deps_one_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_is_unavailable, setup, teardown_busy),
		cmocka_unit_test_setup_teardown(test_take_carries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_drops_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_drops_closed, setup, teardown),
)
