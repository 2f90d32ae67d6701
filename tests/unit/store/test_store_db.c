/* test_store_db - internal/store against a real Postgres (cmocka).
 *
 *   test_store_db              runs the tests; needs DATABASE_URL (a
 *                              database nobody migrated yet),
 *                              STORE_TEST_FRESH_URL (another one, for the
 *                              concurrent migration), STORE_PG_STOP and
 *                              STORE_PG_START (shell commands that stop
 *                              and start that server)
 *   test_store_db migrate URL  migrates URL, prints the count applied
 *   test_store_db bench URL JOBS THREADS CONNS
 *                              insert rate (one row per job, as the API)
 *
 * Built with the unit tests; run by tests/integration/30_store.sh, which
 * starts the server (tests/run.sh leaves it out of the unit run: a unit
 * test named *_db needs Postgres). The unit tests that need no server
 * are test_store.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/uuid.h"
#include "store/store.h"
#include "../unit.h"

static const char *db_url;

static const char *env_or_fail(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		fail_msg("%s is not set (run tests/integration/30_store.sh)", name);
	return v;
}

static struct store *open_db(int conns)
{
	struct err e;
	struct store *s = store_open(db_url, conns, &e);

	if (!s)
		fail_msg("store_open: %s", e.msg);
	return s;
}

/* A queue name of its own per test, so tests never see each other's rows. */
static void unique_queue(char out[48], const char *prefix)
{
	char id[UUID_STR_LEN];

	uuid7_new(id);
	snprintf(out, 48, "%s-%s", prefix, id + 24);
}

/* A fresh job id, in `id` and in `nj`. */
static void new_id(struct job_spec *nj, char id[UUID_STR_LEN])
{
	uuid7_new(id);
	snprintf(nj->id, sizeof(nj->id), "%s", id);
}

static void must(int rc, const struct err *e, const char *what)
{
	if (rc < 0)
		fail_msg("%s: [%s] %s", what, err_code_name(e->code), e->msg);
}

/* ---- migrations --------------------------------------------------------- */

static void test_migrate_idempotent(void **state)
{
	struct store *s = open_db(1);
	struct err e;

	(void)state;
	assert_int_equal(store_migrate(s, &e), store_schema_version());
	assert_int_equal(store_migrate(s, &e), 0);
	assert_int_equal(store_migrate(s, &e), 0);
	assert_int_equal(store_ping(s, &e), 0);
	store_free(s);
}

struct mig_arg {
	const char *url;
	int rc;
	struct err e;
	pthread_barrier_t *go;
};

static void *mig_thread(void *p)
{
	struct mig_arg *a = p;
	struct store *s = store_open(a->url, 1, &a->e);

	if (!s) {
		a->rc = -2;
		return NULL;
	}
	/* connect first, so the migrations really start together */
	if (store_ping(s, &a->e) < 0) {
		a->rc = -3;
	} else {
		pthread_barrier_wait(a->go);
		a->rc = store_migrate(s, &a->e);
	}
	store_free(s);
	return NULL;
}

static void test_migrate_concurrent(void **state)
{
	enum { N = 6 };
	pthread_t th[N];
	struct mig_arg args[N];
	pthread_barrier_t go;
	int i, total = 0;

	(void)state;
	pthread_barrier_init(&go, NULL, N);
	for (i = 0; i < N; i++) {
		args[i] = (struct mig_arg){ env_or_fail("STORE_TEST_FRESH_URL"),
					    0, { 0, "" }, &go };
		assert_int_equal(pthread_create(&th[i], NULL, mig_thread,
						&args[i]), 0);
	}
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < N; i++) {
		if (args[i].rc < 0)
			fail_msg("migrator %d: %d %s", i, args[i].rc,
				 args[i].e.msg);
		total += args[i].rc;
	}
	/* every migration applied exactly once among all of them */
	assert_int_equal(total, store_schema_version());
}

/* ---- rows --------------------------------------------------------------- */

static void test_insert_get_roundtrip(void **state)
{
	struct store *s = open_db(2);
	char q[48], id[UUID_STR_LEN], existing[UUID_STR_LEN] = "";
	struct job_spec nj = { 0 };
	struct job_info j;
	int64_t run_at = 4102444800000001;
	struct err e;
	json_t *o, *p;

	(void)state;
	unique_queue(q, "rt");
	new_id(&nj, id);
	nj.queue = q;
	nj.type = "media.thumbnail";
	nj.payload = "{\"input\":\"file://a.mp4\",\"at\":1.25,\"tags\":[\"x\"],"
		     "\"u\":\"caf\xc3\xa9 \\\"q\\\"\"}";
	nj.priority = -7;
	nj.max_attempts = 9;
	nj.timeout_s = 12.5;
	nj.idempotency_key = "idem-1";
	nj.callback_url = "https://example.test/hook?a=1&b=2";
	nj.run_at_us = run_at; /* due later: scheduled */
	nj.labels = "{\"team\":\"red\"}";
	must(store_insert(s, &nj, existing, &e), &e, "insert");
	assert_int_equal(store_insert(s, &nj, existing, &e), 0);
	assert_string_equal(existing, ""); /* a repeat is not a conflict */

	memset(&j, 0, sizeof(j));
	must(store_get(s, id, &j, &e), &e, "get");
	assert_string_equal(j.id, id);
	assert_string_equal(j.queue, q);
	assert_string_equal(j.type, "media.thumbnail");
	assert_int_equal(j.status, JOB_SCHEDULED);
	assert_int_equal(j.priority, -7);
	assert_int_equal(j.attempts, 0);
	assert_int_equal(j.max_attempts, 9);
	assert_true(j.progress == 0);
	assert_null(j.stage);
	assert_null(j.result);
	assert_null(j.error);
	assert_string_equal(j.idempotency_key, "idem-1");
	assert_string_equal(j.callback_url, "https://example.test/hook?a=1&b=2");
	assert_true(j.timeout_s == 12.5);
	assert_true(llabs(j.created_at - clock_now_us()) < 60000000);
	assert_int_equal(j.run_at, run_at); /* microseconds survive */
	assert_non_null(j.labels);
	assert_non_null(strstr(j.labels, "red"));
	assert_int_equal(j.started_at, 0);
	assert_int_equal(j.finished_at, 0);
	assert_true(j.updated_at > clock_now_us() - 60000000);
	/* payload comes back as the same JSON value */
	o = job_info_to_json(&j);
	p = json_object_get(o, "payload");
	assert_true(json_is_object(p));
	assert_json_str(p, "input", "file://a.mp4");
	assert_true(json_real_value(json_object_get(p, "at")) == 1.25);
	assert_json_str(p, "u", "caf\xc3\xa9 \"q\"");
	assert_json_str(o, "run_at", "2100-01-01T00:00:00.000001Z");
	assert_json_str(o, "status", "scheduled");
	json_decref(o);
	job_info_release(&j);

	/* defaults: no payload → {}, created_at → now */
	uuid7_new(id);
	memset(&nj, 0, sizeof(nj));
	snprintf(nj.id, sizeof(nj.id), "%s", id);
	nj.queue = q;
	nj.type = "noop";
	must(store_insert(s, &nj, NULL, &e), &e, "insert minimal");
	must(store_get(s, id, &j, &e), &e, "get minimal");
	assert_string_equal(j.payload, "{}");
	assert_int_equal(j.status, JOB_QUEUED);
	assert_null(j.idempotency_key);
	assert_int_equal(j.run_at, 0);
	assert_true(llabs(j.created_at - clock_now_us()) < 60000000);
	job_info_release(&j);
	store_free(s);
}

static void test_insert_idempotency(void **state)
{
	struct store *s = open_db(2);
	char q[48], q2[48], a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];
	char existing[UUID_STR_LEN] = "";
	struct job_spec nj = { 0 };
	struct job_info j;
	struct err e;

	(void)state;
	unique_queue(q, "idem");
	unique_queue(q2, "idem2");
	uuid7_new(a);
	uuid7_new(b);
	uuid7_new(c);
	nj.queue = q;
	nj.type = "noop";
	nj.idempotency_key = "order-42";
	snprintf(nj.id, sizeof(nj.id), "%s", a);
	assert_int_equal(store_insert(s, &nj, existing, &e), 0);
	snprintf(nj.id, sizeof(nj.id), "%s", b);
	assert_int_equal(store_insert(s, &nj, existing, &e), 1);
	assert_string_equal(existing, a);
	assert_int_equal(store_get(s, b, &j, &e), -1); /* nothing inserted */
	assert_int_equal(e.code, ERR_NOTFOUND);
	/* the key is unique per queue only */
	nj.queue = q2;
	snprintf(nj.id, sizeof(nj.id), "%s", c);
	assert_int_equal(store_insert(s, &nj, existing, &e), 0);
	/* jobs without a key never conflict */
	nj.idempotency_key = NULL;
	snprintf(nj.id, sizeof(nj.id), "%s", b);
	assert_int_equal(store_insert(s, &nj, existing, &e), 0);
	store_free(s);
}

static void test_bad_input(void **state)
{
	struct store *s = open_db(1);
	char q[48], id[UUID_STR_LEN];
	struct job_spec nj = { 0 };
	struct job_info j;
	struct job_info f = { 0 };
	struct err e;

	(void)state;
	unique_queue(q, "bad");
	new_id(&nj, id);
	nj.queue = q;
	nj.type = "noop";
	nj.payload = "{\"a\":";
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_INVALID);
	nj.payload = NULL;
	snprintf(nj.id, sizeof(nj.id), "%s", "12345");
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_INVALID);
	snprintf(nj.id, sizeof(nj.id), "%s", id);
	nj.type = NULL;
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_INVALID);
	/* a payload Postgres refuses though jansson takes it: \u0000 */
	nj.type = "noop";
	nj.payload = "{\"a\":\"x\\u0000y\"}";
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_INVALID);
	assert_int_equal(store_get(s, id, &j, &e), -1); /* nothing written */
	assert_int_equal(e.code, ERR_NOTFOUND);
	assert_fails(store_get(s, "not-a-uuid", &j, &e), &e, ERR_NOTFOUND);
	assert_fails(store_finish(s, id, JOB_DONE, NULL, NULL, 0, 0, &e), &e, ERR_NOTFOUND);
	assert_fails(store_set_status(s, id, JOB_QUEUED, NULL, 0, &e), &e, ERR_NOTFOUND);
	assert_fails(store_set_status(s, id, JOB_ACTIVE, NULL, 0, &e), &e, ERR_INVALID);
	assert_int_equal(store_mark_started(s, id, 1, 0, &e), 0); /* no row */
	assert_int_equal(store_progress(s, id, 5, NULL, &e), 0);
	assert_int_equal(store_delete(s, id, &e), 0);
	assert_fails(store_list(s, q, JOB_QUEUED, 0, NULL, NULL, &e), &e, ERR_INVALID);
	snprintf(f.id, sizeof(f.id), "%s", id);
	f.status = JOB_ACTIVE;
	assert_fails(store_apply_finals(s, &f, 1, &e), &e, ERR_INVALID);
	store_free(s);
}

static void test_state_updates(void **state)
{
	struct store *s = open_db(2);
	char q[48], id[UUID_STR_LEN];
	struct job_spec nj = { 0 };
	struct job_info j;
	int64_t started = 1600000000000001, finished = 1600000005500002;
	struct err e;

	(void)state;
	unique_queue(q, "upd");
	new_id(&nj, id);
	nj.queue = q;
	nj.type = "sleep";
	nj.max_attempts = 3;
	must(store_insert(s, &nj, NULL, &e), &e, "insert");

	assert_int_equal(store_mark_started(s, id, 1, started, &e), 1);
	assert_int_equal(store_mark_started(s, id, 1, started, &e), 1);
	assert_int_equal(store_progress(s, id, 42.5, "decode", &e), 1);
	assert_int_equal(store_progress(s, id, 250, NULL, &e), 1);
	must(store_get(s, id, &j, &e), &e, "get active");
	assert_int_equal(j.status, JOB_ACTIVE);
	assert_int_equal(j.attempts, 1);
	assert_int_equal(j.started_at, started);
	assert_true(j.progress == 100); /* clamped */
	assert_string_equal(j.stage, "decode"); /* NULL kept it */
	job_info_release(&j);

	/* attempt 1 fails, waits out its backoff, then runs again */
	must(store_set_status(s, id, JOB_RETRYING, "timeout after 30 s",
			      1800000010000000, &e), &e, "retrying");
	must(store_get(s, id, &j, &e), &e, "get retrying");
	assert_int_equal(j.status, JOB_RETRYING);
	assert_string_equal(j.error, "timeout after 30 s");
	assert_int_equal(j.run_at, 1800000010000000);
	job_info_release(&j);
	assert_int_equal(store_progress(s, id, 10, "x", &e), 0); /* not active */
	assert_int_equal(store_mark_started(s, id, 2, 0, &e), 1);
	must(store_finish(s, id, JOB_DONE, "{\"frames\": 12}", NULL, finished,
			  2, &e), &e, "finish");
	must(store_get(s, id, &j, &e), &e, "get done");
	assert_int_equal(j.status, JOB_DONE);
	assert_int_equal(j.attempts, 2);
	assert_true(j.progress == 100);
	assert_string_equal(j.result, "{\"frames\": 12}");
	assert_int_equal(j.finished_at, finished);
	assert_true(j.started_at > started); /* now(), not the old start */
	job_info_release(&j);
	/* a late progress or start from a stale worker changes nothing */
	assert_int_equal(store_progress(s, id, 1, "late", &e), 0);
	assert_int_equal(store_mark_started(s, id, 3, 0, &e), 0);
	must(store_get(s, id, &j, &e), &e, "get still done");
	assert_int_equal(j.status, JOB_DONE);
	assert_int_equal(j.attempts, 2);
	job_info_release(&j);

	/* dead → queued (retry from the dead letter) clears the outcome */
	must(store_finish(s, id, JOB_FAILED, NULL, "exit 1", 0, 3, &e), &e,
	     "fail");
	must(store_get(s, id, &j, &e), &e, "get failed");
	assert_int_equal(j.status, JOB_FAILED);
	assert_string_equal(j.error, "exit 1");
	assert_null(j.result);
	assert_true(llabs(j.finished_at - clock_now_us()) < 60000000);
	job_info_release(&j);
	must(store_set_status(s, id, JOB_QUEUED, NULL, 0, &e), &e, "requeue");
	must(store_get(s, id, &j, &e), &e, "get requeued");
	assert_int_equal(j.status, JOB_QUEUED);
	assert_null(j.error);
	assert_null(j.result);
	assert_null(j.stage);
	assert_int_equal(j.finished_at, 0);
	assert_true(j.progress == 0);
	job_info_release(&j);
	must(store_set_status(s, id, JOB_CANCELLED, NULL, 0, &e), &e, "cancel");
	must(store_get(s, id, &j, &e), &e, "get cancelled");
	assert_int_equal(j.status, JOB_CANCELLED);
	assert_true(j.finished_at != 0);
	job_info_release(&j);
	assert_int_equal(store_delete(s, id, &e), 1);
	assert_fails(store_get(s, id, &j, &e), &e, ERR_NOTFOUND);
	store_free(s);
}

static void test_list(void **state)
{
	struct store *s = open_db(2);
	char q[48], ids[7][UUID_STR_LEN];
	struct job_spec nj = { 0 };
	struct store_job_list l = { 0 };
	struct err e;
	int i;

	(void)state;
	unique_queue(q, "list");
	nj.queue = q;
	nj.type = "noop";
	for (i = 0; i < 7; i++) {
		uuid7_new(ids[i]);
		snprintf(nj.id, sizeof(nj.id), "%s", ids[i]);
		must(store_insert(s, &nj, NULL, &e), &e, "insert");
	}
	must(store_finish(s, ids[6], JOB_DONE, "1", NULL, 0, 1, &e), &e,
	     "finish");
	/* newest first, 6 queued, in pages of 4 */
	assert_int_equal(store_list(s, q, JOB_QUEUED, 4, NULL, &l, &e), 4);
	assert_string_equal(l.items[0].id, ids[5]);
	assert_string_equal(l.items[3].id, ids[2]);
	assert_string_equal(l.items[0].queue, q);
	store_job_list_release(&l);
	assert_int_equal(store_list(s, q, JOB_QUEUED, 4, ids[2], &l, &e), 2);
	assert_string_equal(l.items[0].id, ids[1]);
	assert_string_equal(l.items[1].id, ids[0]);
	store_job_list_release(&l);
	assert_int_equal(store_list(s, q, JOB_DONE, 10, NULL, &l, &e), 1);
	assert_string_equal(l.items[0].id, ids[6]);
	assert_string_equal(l.items[0].result, "1");
	store_job_list_release(&l);
	assert_int_equal(store_list(s, q, JOB_FAILED, 10, NULL, &l, &e), 0);
	assert_null(l.items);
	store_job_list_release(&l);
	store_free(s);
}

static void test_reconcile(void **state)
{
	struct store *s = open_db(2);
	char q[48], ids[5][UUID_STR_LEN], other[48], oid[UUID_STR_LEN];
	struct job_spec nj = { 0 };
	struct store_job_list l = { 0 };
	struct job_info f[3];
	struct job_info j;
	struct err e;
	int i;

	(void)state;
	unique_queue(q, "rec");
	unique_queue(other, "rec-other");
	nj.queue = q;
	nj.type = "noop";
	for (i = 0; i < 5; i++) {
		uuid7_new(ids[i]);
		snprintf(nj.id, sizeof(nj.id), "%s", ids[i]);
		nj.run_at_us = i == 1 ? clock_now_us() + 3600000000 : 0; /* scheduled */
		must(store_insert(s, &nj, NULL, &e), &e, "insert");
	}
	uuid7_new(oid);
	snprintf(nj.id, sizeof(nj.id), "%s", oid);
	nj.queue = other;
	must(store_insert(s, &nj, NULL, &e), &e, "insert other");
	assert_int_equal(store_mark_started(s, ids[2], 1, 0, &e), 1);
	must(store_set_status(s, ids[3], JOB_RETRYING, "x", 0, &e), &e, "r");
	must(store_finish(s, ids[4], JOB_DONE, NULL, NULL, 0, 1, &e), &e, "f");

	/* fresh rows are left alone while their enqueue may be in flight */
	assert_int_equal(store_list_unfinished(s, q, 3600, NULL, 100, &l, &e),
			 0);
	store_job_list_release(&l);
	clock_sleep_us(30000);
	/* queued, scheduled, active, retrying: not the done one; by id */
	assert_int_equal(store_list_unfinished(s, q, 0.01, NULL, 3, &l, &e), 3);
	assert_string_equal(l.items[0].id, ids[0]);
	assert_string_equal(l.items[1].id, ids[1]);
	assert_int_equal(l.items[1].status, JOB_SCHEDULED);
	assert_string_equal(l.items[2].id, ids[2]);
	assert_int_equal(l.items[2].status, JOB_ACTIVE);
	store_job_list_release(&l);
	assert_int_equal(store_list_unfinished(s, q, 0.01, ids[2], 3, &l, &e), 1);
	assert_string_equal(l.items[0].id, ids[3]);
	store_job_list_release(&l);
	/* every queue: at least ours and the other queue's row */
	{
		int found = 0, n;
		const char *after = NULL;
		char last[UUID_STR_LEN];

		do {
			n = store_list_unfinished(s, NULL, 0, after, 2, &l, &e);
			must(n, &e, "list all");
			for (i = 0; i < n; i++)
				if (strcmp(l.items[i].id, oid) == 0 ||
				    strcmp(l.items[i].id, ids[0]) == 0)
					found++;
			if (n > 0) {
				snprintf(last, sizeof(last), "%s",
					 l.items[n - 1].id);
				after = last;
			}
			store_job_list_release(&l);
		} while (n == 2);
		assert_int_equal(found, 2);
	}

	/* final states copied back from Redis after an outage */
	memset(f, 0, sizeof(f));
	snprintf(f[0].id, sizeof(f[0].id), "%s", ids[2]);
	f[0].status = JOB_DONE;
	f[0].result = (char *)"{\"ok\":true}";
	f[0].attempts = 1;
	f[0].finished_at = 1800000000000007;
	snprintf(f[1].id, sizeof(f[1].id), "%s", ids[3]);
	f[1].status = JOB_FAILED;
	f[1].error = (char *)"gave up";
	f[1].attempts = 3;
	f[1].started_at = 1799999999000000;
	snprintf(f[2].id, sizeof(f[2].id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057"); /* no such row */
	f[2].status = JOB_CANCELLED;
	assert_int_equal(store_apply_finals(s, f, 3, &e), 2);
	must(store_get(s, ids[2], &j, &e), &e, "get");
	assert_int_equal(j.status, JOB_DONE);
	assert_string_equal(j.result, "{\"ok\": true}");
	assert_int_equal(j.finished_at, 1800000000000007);
	assert_true(j.progress == 100);
	job_info_release(&j);
	must(store_get(s, ids[3], &j, &e), &e, "get");
	assert_int_equal(j.status, JOB_FAILED);
	assert_string_equal(j.error, "gave up");
	assert_null(j.result);
	assert_int_equal(j.attempts, 3);
	assert_int_equal(j.started_at, 1799999999000000);
	job_info_release(&j);
	/* again: already equal for the one with a time; nothing changes */
	f[1].finished_at = 1800000000000009;
	assert_int_equal(store_apply_finals(s, f, 3, &e), 1);
	assert_int_equal(store_apply_finals(s, f, 3, &e), 0);
	assert_int_equal(store_apply_finals(s, f, 0, &e), 0);
	/* a bad entry refuses the whole batch */
	f[0].status = JOB_FAILED;
	f[1].result = (char *)"{nope";
	assert_fails(store_apply_finals(s, f, 2, &e), &e, ERR_INVALID);
	must(store_get(s, ids[2], &j, &e), &e, "get");
	assert_int_equal(j.status, JOB_DONE);
	job_info_release(&j);
	assert_int_equal(store_list_unfinished(s, q, 0, NULL, 10, &l, &e), 2);
	store_job_list_release(&l);
	store_free(s);
}

/* ---- many threads, one store -------------------------------------------- */

struct ins_arg {
	struct store *s;
	const char *queue;
	int n, failed;
	char msg[ERR_MSG_MAX];
};

static void *ins_thread(void *p)
{
	struct ins_arg *a = p;
	struct job_spec nj = { 0 };
	char id[UUID_STR_LEN];
	struct err e;
	int i;

	nj.queue = a->queue;
	nj.type = "noop";
	nj.payload = "{\"n\":1}";
	for (i = 0; i < a->n; i++) {
		new_id(&nj, id);
		if (store_insert(a->s, &nj, NULL, &e) != 0 ||
		    store_mark_started(a->s, id, 1, 0, &e) != 1 ||
		    store_finish(a->s, id, JOB_DONE, "{}", NULL, 0, 1, &e) != 0) {
			a->failed++;
			snprintf(a->msg, sizeof(a->msg), "%s", e.msg);
		}
	}
	return NULL;
}

static void test_threads_share_store(void **state)
{
	enum { T = 8, N = 150 };
	struct store *s = open_db(4);
	pthread_t th[T];
	struct ins_arg args[T];
	struct store_job_list l = { 0 };
	char q[48], last[UUID_STR_LEN];
	const char *before = NULL;
	struct err e;
	int64_t t0;
	int i, total = 0, n;

	(void)state;
	unique_queue(q, "thr");
	t0 = clock_mono_us();
	for (i = 0; i < T; i++) {
		args[i] = (struct ins_arg){ s, q, N, 0, "" };
		assert_int_equal(pthread_create(&th[i], NULL, ins_thread,
						&args[i]), 0);
	}
	for (i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < T; i++)
		if (args[i].failed)
			fail_msg("thread %d: %d failed: %s", i, args[i].failed,
				 args[i].msg);
	printf("# %d jobs x (insert + start + finish) with 8 threads, 4 "
	       "connections: %.0f jobs/s\n", T * N,
	       T * N / ((clock_mono_us() - t0) / 1e6));
	do {
		n = store_list(s, q, JOB_DONE, 500, before, &l, &e);
		must(n, &e, "list");
		total += n;
		if (n > 0) {
			snprintf(last, sizeof(last), "%s", l.items[n - 1].id);
			before = last;
		}
		store_job_list_release(&l);
	} while (n > 0);
	assert_int_equal(total, T * N);
	store_free(s);
}

/* ---- outage ------------------------------------------------------------- */

static void run_cmd(const char *env)
{
	const char *cmd = env_or_fail(env);

	if (system(cmd) != 0)
		fail_msg("%s failed: %s", env, cmd);
}

/* Calls store_get until it succeeds (the store waits STORE_RETRY_MS
 * between connects after a failure); returns the milliseconds it took. */
static int64_t wait_back(struct store *s, const char *id)
{
	int64_t t0 = clock_mono_us();
	struct job_info j;
	struct err e;

	for (;;) {
		if (store_get(s, id, &j, &e) == 0) {
			job_info_release(&j);
			return (clock_mono_us() - t0) / 1000;
		}
		assert_int_equal(e.code, ERR_UNAVAILABLE);
		if (clock_mono_us() - t0 > 15000000)
			fail_msg("store did not reconnect: %s", e.msg);
		clock_sleep_us(50000);
	}
}

static void test_outage(void **state)
{
	struct store *s = open_db(2);
	char q[48], id[UUID_STR_LEN], id2[UUID_STR_LEN];
	struct job_spec nj = { 0 };
	struct job_info j;
	struct err e;
	int64_t t0;
	int i;

	(void)state;
	unique_queue(q, "out");
	new_id(&nj, id);
	nj.queue = q;
	nj.type = "noop";
	must(store_insert(s, &nj, NULL, &e), &e, "insert");

	/* Postgres restarts between two calls: the next call finds its
	 * connection broken, resets it and succeeds without the caller
	 * seeing anything. */
	run_cmd("STORE_PG_STOP");
	run_cmd("STORE_PG_START");
	must(store_get(s, id, &j, &e), &e, "get after restart");
	job_info_release(&j);

	/* Postgres down: every call fails fast with ERR_UNAVAILABLE */
	run_cmd("STORE_PG_STOP");
	t0 = clock_mono_us();
	for (i = 0; i < 20; i++) {
		assert_fails(store_get(s, id, &j, &e), &e, ERR_UNAVAILABLE);
	}
	uuid7_new(id2);
	snprintf(nj.id, sizeof(nj.id), "%s", id2);
	assert_fails(store_insert(s, &nj, NULL, &e), &e, ERR_UNAVAILABLE);
	assert_fails(store_progress(s, id, 5, "x", &e), &e, ERR_UNAVAILABLE);
	assert_fails(store_finish(s, id, JOB_DONE, NULL, NULL, 0, 0, &e), &e, ERR_UNAVAILABLE);
	assert_fails(store_ping(s, &e), &e, ERR_UNAVAILABLE);
	assert_fails(store_migrate(s, &e), &e, ERR_UNAVAILABLE);
	printf("# 26 calls during the outage took %.1f ms\n",
	       (clock_mono_us() - t0) / 1000.0);
	assert_true(clock_mono_us() - t0 < 3000000);

	/* back: the store reconnects by itself; the insert refused during
	 * the outage was not half-written */
	run_cmd("STORE_PG_START");
	printf("# reconnected %lld ms after postgres was back\n",
	       (long long)wait_back(s, id));
	assert_fails(store_get(s, id2, &j, &e), &e, ERR_NOTFOUND);
	must(store_insert(s, &nj, NULL, &e), &e, "insert after outage");
	must(store_finish(s, id, JOB_DONE, NULL, NULL, 0, 1, &e), &e,
	     "finish after outage");
	must(store_get(s, id, &j, &e), &e, "get after outage");
	assert_int_equal(j.status, JOB_DONE);
	job_info_release(&j);
	store_free(s);
}

struct bench_arg {
	struct store *s;
	int n, failed;
};

static void *bench_thread(void *p)
{
	struct bench_arg *a = p;
	struct job_spec nj = { 0 };
	char id[UUID_STR_LEN];
	struct err e;
	int i;

	nj.queue = "bench";
	nj.type = "noop";
	nj.payload = "{\"ms\":1}";
	for (i = 0; i < a->n; i++) {
		new_id(&nj, id);
		if (store_insert(a->s, &nj, NULL, &e) != 0)
			a->failed++;
	}
	return NULL;
}

/* bench URL JOBS THREADS CONNS: insert-only rate, as the API does it. */
static int bench(char **argv)
{
	int n = atoi(argv[3]), t = atoi(argv[4]), conns = atoi(argv[5]), i;
	struct err e;
	struct store *s = store_open(argv[2], conns, &e);
	struct bench_arg *args;
	pthread_t *th;
	int64_t t0;
	int failed = 0;

	if (!s || store_migrate(s, &e) < 0 || n < 1 || t < 1) {
		fprintf(stderr, "test_store_db: %s\n", s ? e.msg : "bad args");
		store_free(s);
		return 1;
	}
	args = calloc((size_t)t, sizeof(*args));
	th = calloc((size_t)t, sizeof(*th));
	t0 = clock_mono_us();
	for (i = 0; i < t; i++) {
		args[i] = (struct bench_arg){ s, n / t, 0 };
		pthread_create(&th[i], NULL, bench_thread, &args[i]);
	}
	for (i = 0; i < t; i++) {
		pthread_join(th[i], NULL);
		failed += args[i].failed;
	}
	printf("%d inserts, %d threads, %d connections: %.0f inserts/s, "
	       "%d failed\n", n / t * t, t, conns,
	       n / t * t / ((clock_mono_us() - t0) / 1e6), failed);
	free(args);
	free(th);
	store_free(s);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_idempotent),
		cmocka_unit_test(test_migrate_concurrent),
		cmocka_unit_test(test_insert_get_roundtrip),
		cmocka_unit_test(test_insert_idempotency),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_state_updates),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_reconcile),
		cmocka_unit_test(test_threads_share_store),
		cmocka_unit_test(test_outage),
	};

	if (argc == 6 && strcmp(argv[1], "bench") == 0)
		return bench(argv);
	if (argc == 3 && strcmp(argv[1], "migrate") == 0) {
		struct err e;
		struct store *s = store_open(argv[2], 1, &e);
		int n = s ? store_migrate(s, &e) : -1;

		store_free(s);
		if (n < 0) {
			fprintf(stderr, "test_store_db: %s\n", e.msg);
			return 1;
		}
		printf("%d\n", n);
		return 0;
	}
	db_url = getenv("DATABASE_URL");
	if (!db_url || !*db_url) {
		fprintf(stderr, "test_store_db: DATABASE_URL is not set\n");
		return 2;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
