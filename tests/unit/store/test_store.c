/* Unit tests of internal/store that need no database: status names, the
 * JSON view of a row, URL checks, and the behaviour against a loopback
 * port where nothing listens (what a stopped Postgres looks like). The
 * tests against a real Postgres are test_store_db.c, run by
 * tests/integration/30_store.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "store/store.h"

static void test_status_names(void **state)
{
	enum store_status st = STORE_DONE;
	struct err e;
	int i;

	(void)state;
	for (i = 0; i < STORE_NSTATUS; i++) {
		const char *name = store_status_name((enum store_status)i);

		assert_int_equal(store_status_parse(name, &st, &e), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(store_status_name(STORE_RETRYING), "retrying");
	assert_string_equal(store_status_name((enum store_status)99), "unknown");
	st = STORE_DONE;
	assert_int_equal(store_status_parse("finished", &st, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "'finished'"));
	assert_int_equal(st, STORE_DONE);
	assert_int_equal(store_status_parse(NULL, &st, &e), -1);
	assert_true(store_status_final(STORE_DONE));
	assert_true(store_status_final(STORE_FAILED));
	assert_true(store_status_final(STORE_CANCELLED));
	assert_false(store_status_final(STORE_ACTIVE));
	assert_false(store_status_final(STORE_RETRYING));
	assert_false(store_status_final(STORE_QUEUED));
	assert_false(store_status_final(STORE_SCHEDULED));
}

static struct store_job sample_job(void)
{
	struct store_job j;

	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	j.queue = xstrdup("media");
	j.type = xstrdup("media.probe");
	j.payload = xstrdup("{\"input\": \"file://a.mp4\", \"n\": [1, 2]}");
	j.status = STORE_DONE;
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
		"error", "created_at", "started_at", "finished_at", "run_at"
	};
	struct store_job j = sample_job();
	json_t *o = store_job_to_json(&j), *v;
	size_t i;

	(void)state;
	assert_non_null(o);
	/* exactly the DESIGN field set */
	assert_int_equal(json_object_size(o), sizeof(keys) / sizeof(keys[0]));
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_non_null(json_object_get(o, keys[i]));
	assert_string_equal(json_string_value(json_object_get(o, "id")), j.id);
	assert_string_equal(json_string_value(json_object_get(o, "status")),
			    "done");
	assert_int_equal(json_integer_value(json_object_get(o, "priority")), 5);
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "max_attempts")),
			 3);
	assert_true(json_real_value(json_object_get(o, "progress")) == 100.0);
	/* payload and result are values, not strings */
	v = json_object_get(o, "payload");
	assert_true(json_is_object(v));
	assert_string_equal(json_string_value(json_object_get(v, "input")),
			    "file://a.mp4");
	assert_int_equal(json_array_size(json_object_get(v, "n")), 2);
	v = json_object_get(o, "result");
	assert_true(json_is_object(v));
	assert_true(json_real_value(json_object_get(v, "duration")) == 1.5);
	assert_true(json_is_null(json_object_get(o, "error")));
	assert_string_equal(json_string_value(json_object_get(o, "created_at")),
			    "2023-11-14T22:13:20.123456Z");
	assert_string_equal(json_string_value(json_object_get(o, "started_at")),
			    "2023-11-14T22:13:21.000001Z");
	assert_string_equal(json_string_value(json_object_get(o, "finished_at")),
			    "2023-11-14T22:13:22.999999Z");
	assert_true(json_is_null(json_object_get(o, "run_at")));
	json_decref(o);
	store_job_release(&j);
	assert_null(j.queue);
	assert_null(j.payload);
}

static void test_job_to_json_nulls(void **state)
{
	struct store_job j;
	json_t *o;

	(void)state;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", "01890a5d-ac96-774b-bcce-b302099a8057");
	j.queue = xstrdup("q");
	j.type = xstrdup("noop");
	j.status = STORE_FAILED;
	j.error = xstrdup("boom");
	j.result = xstrdup("not json"); /* kept as a string, not lost */
	j.payload = xstrdup("[1,2,3]"); /* any JSON value */
	o = store_job_to_json(&j);
	assert_true(json_is_array(json_object_get(o, "payload")));
	assert_string_equal(json_string_value(json_object_get(o, "result")),
			    "not json");
	assert_string_equal(json_string_value(json_object_get(o, "error")),
			    "boom");
	assert_string_equal(json_string_value(json_object_get(o, "status")),
			    "failed");
	assert_true(json_is_null(json_object_get(o, "stage")));
	assert_true(json_is_null(json_object_get(o, "created_at")));
	assert_true(json_is_null(json_object_get(o, "started_at")));
	json_decref(o);
	free(j.payload);
	j.payload = NULL; /* no payload: {} */
	o = store_job_to_json(&j);
	assert_true(json_is_object(json_object_get(o, "payload")));
	assert_int_equal(json_object_size(json_object_get(o, "payload")), 0);
	json_decref(o);
	store_job_release(&j);
	store_job_release(NULL);
	store_job_list_release(NULL);
}

static void expect_bad_url(const char *url, const char *fragment)
{
	struct err e;
	struct store *s;

	err_clear(&e);
	s = store_open(url, 0, &e);
	if (s) {
		store_free(s);
		fail_msg("url '%s' was accepted", url ? url : "(null)");
	}
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "invalid database url"));
	if (fragment && !strstr(e.msg, fragment))
		fail_msg("message '%s' lacks '%s'", e.msg, fragment);
	/* the password never shows */
	assert_null(strstr(e.msg, "s3cret"));
}

static void test_open_bad_urls(void **state)
{
	struct err e;

	(void)state;
	expect_bad_url("", "empty");
	expect_bad_url(NULL, "empty");
	expect_bad_url("not a url", "expected postgres://");
	expect_bad_url("mysql://u:s3cret@h/db", "expected postgres://");
	expect_bad_url("postgres://u:s3cret@h/db?nosuchparam=1", "nosuchparam");
	expect_bad_url("postgres://u:s3cret@h:99999/db", "bad port");
	expect_bad_url("postgres://u:s3cret@h:abc/db", "bad port");
	expect_bad_url("postgresql://u:s3cret@[::1/db", NULL);
	expect_bad_url("host=h password=s3cret bogus", NULL);
	assert_null(store_open("postgres://h/db", STORE_MAX_CONNS + 1, &e));
	assert_int_equal(e.code, ERR_INVALID);
}

/* A loopback port where nothing listens: bind without listen. */
static int dead_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

static void test_unreachable(void **state)
{
	char url[128], existing[UUID_STR_LEN] = "";
	struct store_new nj = { 0 };
	struct store_job job;
	struct err e;
	struct store *s;
	int64_t t0;
	int fd, port = dead_port(&fd);

	(void)state;
	snprintf(url, sizeof(url),
		 "postgresql://wakeq:s3cret@127.0.0.1:%d/postgres", port);
	s = store_open(url, 2, &e);
	assert_non_null(s); /* opening does not connect */
	t0 = clock_mono_us();
	assert_int_equal(store_ping(s, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "postgres"));
	assert_null(strstr(e.msg, "s3cret"));
	/* inside the retry pause: fails at once, without a new connect */
	assert_int_equal(store_ping(s, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "unavailable"));
	assert_int_equal(store_migrate(s, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	nj.id = "01890a5d-ac96-774b-bcce-b302099a8057";
	nj.queue = "q";
	nj.type = "noop";
	assert_int_equal(store_insert(s, &nj, existing, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_string_equal(existing, "");
	memset(&job, 0x5a, sizeof(job));
	assert_int_equal(store_get(s, nj.id, &job, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_int_equal((unsigned char)job.id[0], 0x5a); /* untouched */
	assert_true(clock_mono_us() - t0 < 2000000);
	/* input errors are found before any connection is needed */
	assert_int_equal(store_get(s, "nope", &job, &e), -1);
	assert_int_equal(e.code, ERR_NOTFOUND);
	nj.payload = "{bad";
	assert_int_equal(store_insert(s, &nj, NULL, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "payload"));
	assert_int_equal(store_finish(s, nj.id, STORE_ACTIVE, NULL, NULL, 0, 0,
				      &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	store_free(s);
	store_free(NULL);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_job_to_json),
		cmocka_unit_test(test_job_to_json_nulls),
		cmocka_unit_test(test_open_bad_urls),
		cmocka_unit_test(test_unreachable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
