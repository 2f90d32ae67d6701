/* Unit tests of internal/job: the type registry, payload checks of the
 * core types, and running them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "job/job.h"
#include "../unit.h"

static void test_checks(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(job_check("noop", NULL, &e), 0);
	assert_int_equal(job_check("sleep", "{\"ms\":5}", &e), 0);
	assert_int_equal(job_check("sleep", "{}", &e), -1);
	assert_string_equal(e.msg, "payload field 'ms' is required");
	assert_int_equal(job_check("sleep", "{\"ms\":\"5\"}", &e), -1);
	assert_string_equal(e.msg, "payload field 'ms' must be a number, not a string");
	assert_int_equal(job_check("sleep", "{\"ms\":-1}", &e), -1);
	assert_int_equal(job_check("fail", "{\"retryable\":1}", &e), -1);
	assert_string_equal(e.msg, "payload field 'retryable' must be true or false, not a number");
	assert_int_equal(job_check("fail", "{\"retryable\":null}", &e), 0);
	assert_int_equal(job_check("nope", "{}", &e), -1);
	assert_non_null(strstr(e.msg, "unknown job type 'nope'"));
	assert_int_equal(job_check("noop", "{bad", &e), -1);
	assert_non_null(strstr(e.msg, "payload is not JSON"));
	assert_int_equal(job_check("fail", "[1]", &e), -1);
	assert_non_null(strstr(e.msg, "must be a JSON object"));
	assert_int_equal(job_check("noop", "{\"a\":1,\"a\":2}", &e), -1);
	assert_non_null(job_find("media.transcode"));
	assert_null(job_find(NULL));
}

/* file:// inputs and outputs of media jobs stay inside DATA_DIR, judged by
 * their text (the worker resolves symlinks later). */
static void test_file_urls(void **state)
{
	static const char *const ok[] = {
		"file://a.mp4", "file://uploads/a.mp4", "file://./in/a.mp4",
		"file:///data/dir/a.mp4", "file:///data/dir//x/./a.mp4",
		"file:///data/dir/%61.mp4", "file://a..b.mp4", NULL
	};
	static const char *const bad[] = {
		"file:///etc/passwd", "file:///data/dirx/a.mp4", "file:///data/a.mp4",
		"file://../a.mp4", "file://in/../../a.mp4", "file://%2e%2e/a.mp4",
		"file:///data/dir/../x", "file:///data/dir", "file://./",
		"file://a.mp4?x=1", "file://a%00b", "file://a%zz", NULL
	};
	const char *saved = job_settings.data_dir;
	char payload[256];
	struct err e;
	size_t i;

	(void)state;
	job_settings.data_dir = "/data/dir/";
	for (i = 0; ok[i]; i++) {
		snprintf(payload, sizeof(payload), "{\"input\":\"%s\"}", ok[i]);
		if (job_check("media.probe", payload, &e) != 0)
			fail_msg("%s refused: %s", ok[i], e.msg);
	}
	for (i = 0; bad[i]; i++) {
		snprintf(payload, sizeof(payload), "{\"input\":\"%s\"}", bad[i]);
		if (job_check("media.probe", payload, &e) != -1)
			fail_msg("%s accepted", bad[i]);
	}
	snprintf(payload, sizeof(payload),
		 "{\"input\":\"file://a.mp4\",\"output\":\"file:///tmp/t.png\"}");
	assert_int_equal(job_check("media.thumbnail", payload, &e), -1);
	assert_non_null(strstr(e.msg, "'output'"));
	assert_non_null(strstr(e.msg, "outside DATA_DIR"));
	/* as resolved: "/" resolves to itself, so any absolute path is in */
	job_settings.data_dir = "/";
	assert_int_equal(job_check("media.probe", "{\"input\":\"file:///etc/x\"}", &e), 0);
	/* no DATA_DIR: no such check */
	job_settings.data_dir = NULL;
	assert_int_equal(job_check("media.probe", "{\"input\":\"file:///etc/x\"}", &e), 0);
	job_settings.data_dir = saved;
}

static void run(const char *type, const char *payload, atomic_int *cancel,
		struct job_outcome *out, int *rc)
{
	struct job_run r;

	memset(&r, 0, sizeof(r));
	memset(out, 0, sizeof(*out));
	r.id = "j";
	r.type = type;
	r.payload = json_loads(payload, 0, NULL);
	r.cancel = cancel;
	*rc = job_execute(&r, out);
	json_decref(r.payload);
}

static void test_execute(void **state)
{
	struct job_outcome out;
	atomic_int cancel;
	int rc;

	(void)state;
	atomic_init(&cancel, 0);
	run("noop", "{}", &cancel, &out, &rc);
	assert_int_equal(rc, -1); /* not bound yet */
	assert_non_null(strstr(out.error, "no handler"));
	job_bind_core();
	run("noop", "{}", &cancel, &out, &rc);
	assert_int_equal(rc, 0);
	run("fail", "{\"retryable\":true,\"message\":\"flaky\"}", &cancel, &out, &rc);
	assert_int_equal(rc, -1);
	assert_true(out.retryable);
	assert_string_equal(out.error, "flaky");
	run("sleep", "{\"ms\":5}", &cancel, &out, &rc);
	assert_int_equal(rc, 0);
	assert_true(json_number_value(json_object_get(out.result, "slept_ms")) == 5);
	job_outcome_release(&out);
	atomic_store(&cancel, 1);
	run("sleep", "{\"ms\":60000}", &cancel, &out, &rc); /* returns at once */
	assert_int_equal(rc, -1);
	assert_string_equal(out.error, "cancelled");
	run("sleep", "{}", &cancel, &out, &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(out.error, "bad payload"));
}

UNIT_MAIN(
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_file_urls),
		cmocka_unit_test(test_execute),
)
