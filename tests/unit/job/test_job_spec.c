/* Unit tests of the job spec parser (the POST /v1/jobs body) and the RFC
 * 3339 parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/clock.h"
#include "job/job.h"
#include "../unit.h"

static int parse(const char *body, struct job_spec *r, const char **code)
{
	struct err e;

	*code = "";
	return job_spec_parse(body, strlen(body), r, code, &e);
}

static void test_good(void **state)
{
	struct job_spec r;
	const char *code;

	(void)state;
	assert_int_equal(parse("{\"type\":\"sleep\",\"payload\":{\"ms\":5},\"queue\":\"q1\","
			       "\"priority\":9,\"max_attempts\":7,\"timeout_s\":2.5,"
			       "\"delay_s\":1.5,\"idempotency_key\":\"k-1\","
			       "\"callback_url\":\"https://x.example/cb\"}", &r, &code), 0);
	assert_string_equal(r.type, "sleep");
	assert_string_equal(r.payload, "{\"ms\":5}");
	assert_string_equal(r.queue, "q1");
	assert_int_equal(r.priority, 9);
	assert_int_equal(r.max_attempts, 7);
	assert_true(r.timeout_s == 2.5);
	assert_int_equal(r.delay_ms, 1500);
	assert_string_equal(r.idempotency_key, "k-1");
	assert_string_equal(r.callback_url, "https://x.example/cb");
	job_spec_release(&r);

	/* labels: kept as compact JSON with sorted keys */
	assert_int_equal(parse("{\"type\":\"noop\",\"labels\":{\"z\":\"1\",\"team\":\"red\"}}",
			       &r, &code), 0);
	assert_string_equal(r.labels, "{\"team\":\"red\",\"z\":\"1\"}");
	job_spec_release(&r);

	assert_int_equal(parse("{\"type\":\"noop\",\"unique_key\":\"report:42\"}", &r, &code), 0);
	assert_string_equal(r.unique_key, "report:42");
	job_spec_release(&r);

	assert_int_equal(parse("{\"type\":\"noop\"}", &r, &code), 0);
	assert_null(r.labels);
	assert_string_equal(r.payload, "{}");
	assert_null(r.queue);
	job_spec_release(&r);

	assert_int_equal(parse("{\"type\":\"noop\",\"payload\":null,\"run_at\":\"2030-01-02T03:04:05.5+01:00\"}",
			       &r, &code), 0);
	assert_true(r.run_at_us == (int64_t)1893549845 * 1000000 + 500000);
	job_spec_release(&r);
}

static void test_bad(void **state)
{
	static const struct { const char *body, *code, *field; } cases[] = {
		{ "", "invalid_json", "empty" },
		{ "{", "invalid_json", "JSON" },
		{ "42", "invalid_json", "JSON" },
		{ "[1]", "invalid_json", "JSON" },
		{ "{\"type\":\"noop\",\"type\":\"noop\"}", "invalid_json", "duplicate" },
		{ "{}", "invalid_field", "type" },
		{ "{\"type\":\"\"}", "invalid_field", "type" },
		{ "{\"type\":\"x\"}", "unknown_type", "type" },
		{ "{\"type\":\"noop\",\"x\":1}", "unknown_field", "'x'" },
		{ "{\"type\":\"noop\",\"payload\":\"s\"}", "invalid_field", "payload" },
		{ "{\"type\":\"sleep\",\"payload\":{}}", "invalid_payload", "ms" },
		{ "{\"type\":\"noop\",\"priority\":-1}", "invalid_field", "priority" },
		{ "{\"type\":\"noop\",\"priority\":\"1\"}", "invalid_field", "priority" },
		{ "{\"type\":\"noop\",\"max_attempts\":101}", "invalid_field", "max_attempts" },
		{ "{\"type\":\"noop\",\"timeout_s\":-2}", "invalid_field", "timeout_s" },
		{ "{\"type\":\"noop\",\"delay_s\":1e12}", "invalid_field", "delay_s" },
		{ "{\"type\":\"noop\",\"run_at\":5}", "invalid_field", "run_at" },
		{ "{\"type\":\"noop\",\"run_at\":\"2030-13-01T00:00:00Z\"}", "invalid_field", "run_at" },
		{ "{\"type\":\"noop\",\"queue\":\"\"}", "invalid_field", "queue" },
		{ "{\"type\":\"noop\",\"labels\":[1]}", "invalid_field", "labels" },
		{ "{\"type\":\"noop\",\"unique_key\":\"a b\"}", "invalid_field", "unique_key" },
		{ "{\"type\":\"noop\",\"unique_key\":\"\"}", "invalid_field", "unique_key" },
		{ "{\"type\":\"noop\",\"labels\":{\"a b\":\"x\"}}", "invalid_field", "'a b'" },
		{ "{\"type\":\"noop\",\"labels\":{\"team\":5}}", "invalid_field", "'team'" },
		/* only the queue makes webhook deliveries (a signing oracle) */
		{ "{\"type\":\"webhook.deliver\",\"payload\":{\"url\":\"http://x.example/\","
		  "\"body\":{}}}", "unknown_type", "webhook.deliver" },
		/* a date that does not exist is not rolled over */
		{ "{\"type\":\"noop\",\"run_at\":\"2030-02-31T00:00:00Z\"}", "invalid_field", "run_at" },
		{ "{\"type\":\"noop\",\"run_at\":\"2030-02-29T00:00:00Z\"}", "invalid_field", "run_at" },
		{ "{\"type\":\"noop\",\"run_at\":\"2030-04-31T00:00:00Z\"}", "invalid_field", "run_at" },
		{ "{\"type\":\"noop\",\"idempotency_key\":\"a b\"}", "invalid_field", "idempotency_key" },
		{ "{\"type\":\"noop\",\"callback_url\":\"http://\"}", "invalid_field", "callback_url" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct job_spec r;
		const char *code = "";
		struct err e;

		memset(&e, 0, sizeof(e));
		if (job_spec_parse(cases[i].body, strlen(cases[i].body), &r, &code, &e) != -1)
			fail_msg("accepted: %s", cases[i].body);
		if (strcmp(code, cases[i].code) || !strstr(e.msg, cases[i].field))
			fail_msg("%s: got %s '%s'", cases[i].body, code, e.msg);
	}
}

static void test_time(void **state)
{
	int64_t us;

	(void)state;
	assert_int_equal(clock_parse_rfc3339("1970-01-01T00:00:00Z", &us), 0);
	assert_true(us == 0);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T17:37:24.123456Z", &us), 0);
	assert_true(us % 1000000 == 123456);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T18:37:24+01:00", &us), 0);
	{
		int64_t z;

		assert_int_equal(clock_parse_rfc3339("2026-11-22T17:37:24Z", &z), 0);
		assert_true(us == z);
	}
	assert_int_equal(clock_parse_rfc3339("2026-11-22", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T17:37:24", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T25:00:00Z", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T17:37:24.Z", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2026-11-22T17:37:24Zx", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2028-02-29T00:00:00Z", &us), 0);
	assert_int_equal(clock_parse_rfc3339("2000-02-29T00:00:00Z", &us), 0);
	assert_int_equal(clock_parse_rfc3339("2100-02-29T00:00:00Z", &us), -1);
	assert_int_equal(clock_parse_rfc3339("2030-02-31T00:00:00Z", &us), -1);
	assert_int_equal(clock_parse_rfc3339("1970-01-01T00:00:00+01:00", &us), -1);
	assert_int_equal(job_idem_key_ok("ok-key"), 1);
	assert_int_equal(job_idem_key_ok(""), 0);
	assert_int_equal(job_idem_key_ok("tab\tkey"), 0);
}

/* depends_on and on_dependency_failure: the parser and its errors */
static void test_deps(void **state)
{
	static const struct {
		const char *body, *msg;
	} bad[] = {
		{ "{\"type\":\"noop\",\"depends_on\":\"x\"}",
		  "field 'depends_on': expected an array of job ids" },
		{ "{\"type\":\"noop\",\"depends_on\":[]}",
		  "field 'depends_on': expected 1 to 1000 job ids, not 0" },
		{ "{\"type\":\"noop\",\"depends_on\":[\"01890a5d-ac96-774b-bcce-b302099a805\"]}",
		  "field 'depends_on': entry 0: expected a job id (a UUID)" },
		{ "{\"type\":\"noop\",\"depends_on\":[\"01890a5d-ac96-774b-bcce-b302099a8057\",null]}",
		  "field 'depends_on': entry 1: expected a job id (a UUID)" },
		{ "{\"type\":\"noop\",\"depends_on\":[\"01890a5d-ac96-774b-bcce-b302099a8057\","
		  "\"01890A5D-AC96-774B-BCCE-B302099A8057\"]}",
		  "field 'depends_on': entry 1: job '01890A5D-AC96-774B-BCCE-B302099A8057' is listed twice" },
		{ "{\"type\":\"noop\",\"on_dependency_failure\":\"skip\"}",
		  "field 'on_dependency_failure': expected fail, cancel or ignore" },
		{ "{\"type\":\"noop\",\"on_dependency_failure\":1}",
		  "field 'on_dependency_failure': expected fail, cancel or ignore" },
	};
	struct job_spec r;
	struct err e;
	const char *code;
	json_t *big;
	char *text;
	size_t i;

	(void)state;
	assert_int_equal(parse("{\"type\":\"noop\",\"depends_on\":[\"01890A5D-ac96-774b-bcce-b302099a8057\","
			       "\"01890a5d-ac96-774b-bcce-b302099a8058\"],\"on_dependency_failure\":\"ignore\"}",
			       &r, &code), 0);
	assert_string_equal(r.depends_on, "[\"01890a5d-ac96-774b-bcce-b302099a8057\","
			    "\"01890a5d-ac96-774b-bcce-b302099a8058\"]");
	assert_int_equal(r.dep_policy, JOB_DEP_IGNORE);
	assert_int_equal(job_spec_status(&r, 0), JOB_WAITING);
	job_spec_release(&r);
	assert_int_equal(parse("{\"type\":\"noop\",\"depends_on\":null}", &r, &code), 0);
	assert_null(r.depends_on);
	assert_int_equal(r.dep_policy, JOB_DEP_FAIL);
	assert_int_equal(job_spec_status(&r, 0), JOB_QUEUED);
	job_spec_release(&r);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(job_spec_parse(bad[i].body, strlen(bad[i].body), &r, &code, &e), -1);
		assert_string_equal(code, "invalid_field");
		assert_string_equal(e.msg, bad[i].msg);
	}
	/* the bound: 1000 ids pass, 1001 do not */
	big = json_array();
	for (i = 0; i < JOB_DEPS_MAX + 1; i++) {
		char id[UUID_STR_LEN];

		uuid7_new(id);
		json_array_append_new(big, json_string(id));
	}
	assert_int_equal(job_deps_parse(big, &text, &e), -1);
	assert_string_equal(e.msg, "expected 1 to 1000 job ids, not 1001");
	json_array_remove(big, 0);
	assert_int_equal(job_deps_parse(big, &text, &e), 0);
	free(text);
	json_decref(big);
	assert_string_equal(job_dep_policy_name(JOB_DEP_CANCEL), "cancel");
	assert_null(job_dep_policy_name((enum job_dep_policy)9));
}

UNIT_MAIN(
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_deps),
)
