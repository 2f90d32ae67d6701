/* Unit tests of the job record: status names, the one JSON document, and
 * the Redis hash layout of the fields a client sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "job/job.h"
#include "../unit.h"

static void test_status_names(void **state)
{
	enum job_status st = JOB_DONE;
	struct err e;
	int i;

	(void)state;
	for (i = 0; i < JOB_NSTATUS; i++) {
		const char *name = job_status_name((enum job_status)i);

		assert_int_equal(job_status_parse(name, &st, &e), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(job_status_name(JOB_RETRYING), "retrying");
	assert_string_equal(job_status_name((enum job_status)99), "unknown");
	st = JOB_DONE;
	assert_fails(job_status_parse("finished", &st, &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "'finished'"));
	assert_int_equal(st, JOB_DONE);
	assert_int_equal(job_status_parse(NULL, &st, &e), -1);
	assert_true(job_status_final(JOB_DONE));
	assert_true(job_status_final(JOB_FAILED));
	assert_true(job_status_final(JOB_CANCELLED));
	assert_false(job_status_final(JOB_ACTIVE));
	assert_false(job_status_final(JOB_RETRYING));
	assert_false(job_status_final(JOB_QUEUED));
	assert_false(job_status_final(JOB_SCHEDULED));
	assert_false(job_status_final(JOB_WAITING));
	assert_string_equal(job_status_name(JOB_WAITING), "waiting");
}

/* A job with dependencies read back from its hash: the fields the scripts
 * keep, the document, and the batch document of a batch's callback. */
static void test_deps_doc(void **state)
{
	static const char *const f[] = {
		"type", "status", "deps", "depfail", "batch", "dep_done", "dep_failed",
		"dep_cancelled", "created"
	};
	static const char *const v[] = {
		"noop", "waiting", "[\"01890a5d-ac96-774b-bcce-b302099a8057\",\"01890a5d-ac96-774b-bcce-b302099a8058\",\"01890a5d-ac96-774b-bcce-b302099a8059\"]",
		"ignore", "01890a5d-ac96-774b-bcce-b302099a8060", "1", "1", "0", "1700000000000000"
	};
	struct job_info j, d[2];
	json_t *doc;

	(void)state;
	job_info_from_hash(&j, "01890a5d-ac96-774b-bcce-b302099a8060", "q", f, v, 9);
	assert_int_equal(j.status, JOB_WAITING);
	assert_int_equal(j.dep_policy, JOB_DEP_IGNORE);
	doc = job_info_to_json(&j);
	assert_int_equal(json_array_size(json_object_get(doc, "depends_on")), 3);
	assert_string_equal(json_string_value(json_object_get(doc, "on_dependency_failure")), "ignore");
	assert_string_equal(json_string_value(json_object_get(doc, "batch")), j.id);
	json_decref(doc);
	doc = job_batch_to_json(&j);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "running");
	assert_int_equal(json_integer_value(json_object_get(doc, "total")), 3);
	assert_int_equal(json_integer_value(json_object_get(doc, "done")), 1);
	assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 1);
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 1);
	json_decref(doc);
	j.status = JOB_CANCELLED;
	doc = job_batch_to_json(&j);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "cancelled");
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 1);
	json_decref(doc);
	j.deps_cancelled = 1;
	j.status = JOB_DONE;
	doc = job_batch_to_json(&j);
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "finished");
	assert_int_equal(json_integer_value(json_object_get(doc, "pending")), 0);
	json_decref(doc);
	job_info_release(&j);

	/* a job without dependencies shows none of those fields */
	job_info_from_hash(&j, "01890a5d-ac96-774b-bcce-b302099a8057", "q", f, v, 2);
	doc = job_info_to_json(&j);
	assert_null(json_object_get(doc, "depends_on"));
	assert_null(json_object_get(doc, "batch"));
	json_decref(doc);
	job_info_release(&j);

	/* the dependencies' list: a done one with its result, a gone one */
	memset(d, 0, sizeof(d));
	snprintf(d[0].id, sizeof(d[0].id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	d[0].status = JOB_DONE;
	d[0].result = xstrdup("{\"n\":1}");
	snprintf(d[1].id, sizeof(d[1].id), "%s", "01890a5d-ac96-774b-bcce-b302099a8058");
	d[1].status = JOB_NSTATUS;
	doc = job_deps_to_json(d, 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(doc, 0),
									    "result"), "n")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "status")),
			    "unknown");
	json_decref(doc);
	job_info_release(&d[0]);
}

static struct job_info sample_job(void)
{
	struct job_info j;

	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	j.queue = xstrdup("media");
	j.type = xstrdup("media.probe");
	j.payload = xstrdup("{\"input\": \"file://a.mp4\", \"n\": [1, 2]}");
	j.status = JOB_DONE;
	j.priority = 5;
	j.attempts = 2;
	j.max_attempts = 3;
	j.progress = 100;
	j.stage = xstrdup("encode");
	j.result = xstrdup("{\"duration\": 1.5}");
	j.idempotency_key = xstrdup("k1");
	j.created_at = 1700000000123456;   /* 2023-11-14T22:13:20.123456Z */
	j.started_at = 1700000001000001;
	j.finished_at = 1700000002999999;
	j.run_at = 0;
	return j;
}

static void test_job_to_json(void **state)
{
	static const char *const keys[] = {
		"id", "queue", "type", "status", "priority", "attempts",
		"max_attempts", "progress", "stage", "payload", "result",
		"error", "labels", "unique_key", "group", "cancel_requested", "created_at", "started_at",
		"finished_at", "run_at"
	};
	struct job_info j = sample_job();
	json_t *o = job_info_to_json(&j), *v;
	size_t i;

	(void)state;
	assert_non_null(o);
	/* exactly the DESIGN field set, and cancel_requested */
	assert_int_equal(json_object_size(o), sizeof(keys) / sizeof(keys[0]));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_non_null(json_object_get(o, keys[i]));
	assert_json_str(o, "id", j.id);
	assert_json_str(o, "status", "done");
	assert_json_int(o, "priority", 5);
	assert_json_int(o, "attempts", 2);
	assert_json_int(o, "max_attempts", 3);
	assert_true(json_real_value(json_object_get(o, "progress")) == 100.0);
	/* payload and result are values, not strings */
	v = json_object_get(o, "payload");
	assert_true(json_is_object(v));
	assert_json_str(v, "input", "file://a.mp4");
	assert_int_equal(json_array_size(json_object_get(v, "n")), 2);
	v = json_object_get(o, "result");
	assert_true(json_is_object(v));
	assert_true(json_real_value(json_object_get(v, "duration")) == 1.5);
	assert_true(json_is_null(json_object_get(o, "error")));
	assert_json_str(o, "created_at", "2023-11-14T22:13:20.123456Z");
	assert_json_str(o, "started_at", "2023-11-14T22:13:21.000001Z");
	assert_json_str(o, "finished_at", "2023-11-14T22:13:22.999999Z");
	assert_true(json_is_null(json_object_get(o, "run_at")));
	json_decref(o);
	job_info_release(&j);
	assert_null(j.queue);
	assert_null(j.payload);
}

static void test_job_to_json_nulls(void **state)
{
	struct job_info j;
	json_t *o;

	(void)state;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	j.queue = xstrdup("q");
	j.type = xstrdup("noop");
	j.status = JOB_FAILED;
	j.error = xstrdup("boom");
	j.result = xstrdup("not json"); /* kept as a string, not lost */
	j.payload = xstrdup("[1,2,3]"); /* any JSON value */
	o = job_info_to_json(&j);
	assert_true(json_is_array(json_object_get(o, "payload")));
	assert_json_str(o, "result", "not json");
	assert_json_str(o, "error", "boom");
	assert_json_str(o, "status", "failed");
	assert_true(json_is_null(json_object_get(o, "stage")));
	assert_true(json_is_null(json_object_get(o, "created_at")));
	assert_true(json_is_null(json_object_get(o, "started_at")));
	json_decref(o);
	free(j.payload);
	j.payload = NULL; /* no payload: {} */
	o = job_info_to_json(&j);
	assert_true(json_is_object(json_object_get(o, "payload")));
	assert_int_equal(json_object_size(json_object_get(o, "payload")), 0);
	json_decref(o);
	job_info_release(&j);
	job_info_release(NULL);
}


/* A packed spec that is not one is refused whole. */
static void test_spec_unpack_bad(void **state)
{
	static const char *const bad[] = {
		"", "@", "@noop", "@noop\t3", "@noop\t3\t", "@\t3\t0", "?noop\t3\t0",
		"anoop\t3\t0", "@noop\tx\t0", "@noop\t-1\t0", "@noop\t3\t-1",
		"@noop\t3\t0x", "@noop\t99999999999\t0", "@noop\t3\t0\t1",
		"@noop\t 3\t0", "@noop\t3\t-0", "@noop\t3\tinf",
	};
	static const char nul[] = "@no\0p\t3\t0"; /* a NUL inside */
	size_t i;
	unsigned fl;
	char *t = NULL;
	int m;
	double to;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(job_spec_unpack(bad[i], strlen(bad[i]), &fl, &t, &m, &to), -1);
		assert_null(t);
	}
	assert_int_equal(job_spec_unpack(nul, sizeof(nul) - 1, &fl, &t, &m, &to), -1);
	assert_null(t);
	assert_int_equal(job_spec_unpack("@noop\t3\t0", 9, &fl, &t, &m, &to), 0);
	assert_string_equal(t, "noop");
	free(t);
}

/* A spec written to a hash and read back is the same job. */
static void test_hash_round_trip(void **state)
{
	const char *names[JOB_HASH_SPEC_MAX], *values[JOB_HASH_SPEC_MAX];
	struct job_hash_buf buf;
	struct job_spec s;
	struct job_info j;
	json_t *doc;
	size_t n;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.type = "sleep";
	s.payload = "{\"ms\":5}";
	s.max_attempts = 7;
	s.timeout_s = 2.5;
	s.idempotency_key = "k-1";
	s.callback_url = "https://x.example/cb";
	s.trace = "0af7651916cd43dd8448eb211c80319c";
	s.labels = "{\"team\":\"red\"}";
	s.unique_key = "report:42";
	job_spec_resolve(&s, NULL, 1000000);
	assert_string_equal(s.queue, "default");
	assert_int_equal(s.max_attempts, 7);
	assert_true(s.id[0] != 0);
	n = job_spec_hash(&s, names, values, &buf);
	assert_true(n <= JOB_HASH_SPEC_MAX);
	{ /* the packed spec: flags, type, max_attempts, timeout */
		size_t k;
		unsigned fl;
		char *t;
		int m;
		double to;

		for (k = 0; k < n && strcmp(names[k], "s"); k++)
			;
		assert_true(k < n);
		assert_string_equal(values[k], "Ksleep\t7\t2.5");
		assert_int_equal(job_spec_unpack(values[k], strlen(values[k]), &fl, &t, &m, &to), 0);
		assert_int_equal(fl, JOB_SPEC_HAS_CALLBACK | JOB_SPEC_HAS_UNIQUE | JOB_SPEC_HAS_TRACE);
		assert_string_equal(t, "sleep");
		assert_int_equal(m, 7);
		assert_true(to == 2.5);
		free(t);
	}
	job_info_from_hash(&j, s.id, "q1", names, values, n);
	assert_string_equal(j.type, "sleep");
	assert_string_equal(j.payload, "{\"ms\":5}");
	assert_int_equal(j.max_attempts, 7);
	assert_true(j.timeout_s == 2.5);
	assert_string_equal(j.idempotency_key, "k-1");
	assert_string_equal(j.callback_url, "https://x.example/cb");
	assert_string_equal(j.trace, s.trace);
	assert_string_equal(j.labels, s.labels);
	assert_string_equal(j.unique_key, "report:42");
	assert_string_equal(j.queue, "q1");
	assert_int_equal(j.status, JOB_QUEUED);
	doc = job_info_to_json(&j);
	assert_false(json_is_true(json_object_get(doc, "cancel_requested")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "labels"),
							      "team")), "red");
	{
		json_t *want = json_pack("{s:s}", "team", "red");

		assert_true(job_info_has_labels(&j, want));
		json_object_set_new(want, "team", json_string("blue"));
		assert_false(job_info_has_labels(&j, want));
		assert_true(job_info_has_labels(&j, NULL));
		json_decref(want);
	}
	json_decref(doc);
	job_info_release(&j);
}

/* Defaults are resolved once: a delay becomes an absolute due time. */
static void test_resolve(void **state)
{
	struct job_defaults d = { .queue = "media", .max_attempts = 5 };
	struct job_spec s;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.type = "noop";
	s.delay_ms = 1500;
	job_spec_resolve(&s, &d, 10000000);
	assert_string_equal(s.queue, "media");
	assert_int_equal(s.max_attempts, 5);
	assert_string_equal(s.payload, "{}");
	assert_true(s.run_at_us == 11500000);
	assert_int_equal(job_spec_status(&s, 10000000), JOB_SCHEDULED);
	memset(&s, 0, sizeof(s));
	s.type = "noop";
	job_spec_resolve(&s, &d, 10000000);
	assert_int_equal(job_spec_status(&s, 10000000), JOB_QUEUED);
	assert_int_equal(s.idempotency_ttl_s, JOB_IDEM_TTL_DEFAULT_S);
}

UNIT_MAIN(
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_deps_doc),
		cmocka_unit_test(test_job_to_json),
		cmocka_unit_test(test_job_to_json_nulls),
		cmocka_unit_test(test_hash_round_trip),
		cmocka_unit_test(test_spec_unpack_bad),
		cmocka_unit_test(test_resolve),
)
