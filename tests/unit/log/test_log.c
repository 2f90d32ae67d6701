/* Unit tests of internal/log: JSON lines as Cloud Logging reads them, text
 * lines, level filtering before formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "httpd/httpd.h"
#include "log/log.h"
#include "fetch/fetch.h"
#include "log/trace.h"
#include "../unit.h"

#include <stdatomic.h>
#include <stdio.h>

static int fds[2];

static char *read_all(void)
{
	static char buf[8192];
	ssize_t n;

	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int calls;
static const char *counted(void)
{
	calls++;
	return "x";
}

static void test_json(void **state)
{
	json_t *o;
	char *line;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	log_init(LOG_JSON, LOG_INFO, fds[1]);
	log_info("job done", "job_id", "abc", "note", "quote \" and\nnewline", "skipped", NULL);
	line = read_all();
	assert_int_equal(line[strlen(line) - 1], '\n');
	o = json_loads(line, 0, NULL);
	assert_non_null(o);
	assert_json_str(o, "severity", "INFO");
	assert_json_str(o, "message", "job done");
	assert_json_str(o, "job_id", "abc");
	assert_json_str(o, "note", "quote \" and\nnewline");
	assert_null(json_object_get(o, "skipped"));
	assert_non_null(json_object_get(o, "time"));
	json_decref(o);

	/* Below the level: nothing written, arguments not even evaluated. */
	calls = 0;
	log_debug("hidden", "k", counted());
	assert_int_equal(calls, 0);
	log_warn("shown", "k", counted());
	assert_int_equal(calls, 1);
	line = read_all();
	assert_non_null(strstr(line, "\"severity\":\"WARNING\""));
	close(fds[0]);
	close(fds[1]);
}

static void test_text_and_thread_fields(void **state)
{
	const char *fields[] = { "job_id", "j1", NULL };
	char *line;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	log_init(LOG_TEXT, LOG_DEBUG, fds[1]);
	log_thread_fields(fields);
	log_error("cannot open", "path", "a b");
	log_thread_fields(NULL);
	line = read_all();
	assert_non_null(strstr(line, " ERROR cannot open path=\"a b\" job_id=j1\n"));
	close(fds[0]);
	close(fds[1]);
	log_init(LOG_TEXT, LOG_INFO, 2);
}

static void test_trace(void **state)
{
	char id[LOG_TRACE_ID_LEN], buf[128];

	(void)state;
	assert_int_equal(log_trace_parse("105445AA7843BC8BF206B12000100000/1;o=1", NULL, id), 0);
	assert_string_equal(id, "105445aa7843bc8bf206b12000100000");
	assert_int_equal(log_trace_parse(NULL, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id), 0);
	assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_int_equal(log_trace_parse("garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id), 0);
	assert_int_equal(log_trace_parse("105445aa7843bc8bf206b12000100000", NULL, id), 0);
	assert_int_equal(log_trace_parse(NULL, "00-00000000000000000000000000000000-00f067aa0ba902b7-01", id), -1);
	assert_int_equal(log_trace_parse("105445aa7843bc8bf206b1200010000", NULL, id), -1);
	assert_int_equal(log_trace_parse("105445aa7843bc8bf206b12000100000x", NULL, id), -1);
	assert_int_equal(log_trace_parse(NULL, "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id), -1);
	assert_int_equal(log_trace_parse(NULL, NULL, id), -1);
	unsetenv("PROJECT_ID");
	setenv("GOOGLE_CLOUD_PROJECT", "demo", 1);
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "projects/demo/traces/abc");
	unsetenv("GOOGLE_CLOUD_PROJECT");
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "abc");
	assert_null(log_trace_resource("", buf, sizeof(buf)));
}

/* A fake metadata server speaking the real protocol on loopback: GET
 * /computeMetadata/v1/project/project-id with "Metadata-Flavor: Google"
 * answers the project as text/plain, a request without it gets 403 as
 * from Google's. */
static atomic_int meta_asks;
static const char *meta_answer = "fake-proj-1";

static void fake_metadata(struct httpd_request *req, void *ctx)
{
	const char *flavor = httpd_header(req, "Metadata-Flavor");

	(void)ctx;
	if (strcmp(httpd_path(req), "/computeMetadata/v1/project/project-id")) {
		httpd_respond(req, 404, "text/html", "not found", 9);
		return;
	}
	if (!flavor || strcmp(flavor, "Google")) {
		httpd_respond(req, 403, "text/html", "Missing Metadata-Flavor:Google header.", 38);
		return;
	}
	atomic_fetch_add(&meta_asks, 1);
	httpd_respond(req, 200, "application/text", meta_answer, strlen(meta_answer));
}

static void test_trace_metadata(void **state)
{
	struct httpd_opts o = { .host = "127.0.0.1", .thread_per_connection = 1 };
	struct httpd *h;
	struct err e;
	char buf[256], host[64];
	int64_t t0;

	(void)state;
	log_trace_set_project_fn(fetch_gcp_project);
	unsetenv("GOOGLE_CLOUD_PROJECT");
	unsetenv("PROJECT_ID");
	unsetenv("K_SERVICE");
	unsetenv("CLOUD_RUN_JOB");
	unsetenv("GCE_METADATA_HOST");
	h = httpd_start(&o, fake_metadata, NULL, &e);
	assert_non_null(h);
	snprintf(host, sizeof(host), "127.0.0.1:%d", httpd_port(h));

	/* off Google Cloud the metadata server is not asked */
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "abc");
	assert_int_equal(atomic_load(&meta_asks), 0);

	/* asked once, with the header, then cached */
	setenv("GCE_METADATA_HOST", host, 1);
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)),
			    "projects/fake-proj-1/traces/abc");
	assert_string_equal(log_trace_resource("def", buf, sizeof(buf)),
			    "projects/fake-proj-1/traces/def");
	assert_int_equal(atomic_load(&meta_asks), 1);

	/* the environment wins, and then nothing is asked */
	setenv("GOOGLE_CLOUD_PROJECT", "env-proj", 1);
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)),
			    "projects/env-proj/traces/abc");
	unsetenv("GOOGLE_CLOUD_PROJECT");
	assert_int_equal(atomic_load(&meta_asks), 1);
	httpd_stop(h);

	/* a metadata server that is not there: the bare id, without waiting
	 * out the timeout on a refused connection, and not asked again for
	 * the next line */
	snprintf(host, sizeof(host), "127.0.0.1:%d", 1);
	setenv("GCE_METADATA_HOST", host, 1);
	t0 = clock_mono_us();
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "abc");
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "abc");
	assert_true(clock_mono_us() - t0 < 900000);

	/* an answer that is no project id (say a captive portal's page) */
	meta_answer = "<html>sign in</html>";
	h = httpd_start(&o, fake_metadata, NULL, &e);
	assert_non_null(h);
	snprintf(host, sizeof(host), "127.0.0.1:%d", httpd_port(h));
	setenv("GCE_METADATA_HOST", host, 1);
	assert_string_equal(log_trace_resource("abc", buf, sizeof(buf)), "abc");
	assert_int_equal(atomic_load(&meta_asks), 2);
	httpd_stop(h);
	unsetenv("GCE_METADATA_HOST");
}

/* A repeating warning: the first is written, the next are held back
 * until the interval has passed (10 s, doubling to 60 s), then one line
 * tells how many were held; clearing says how long it lasted. */
static void test_limit(void **state)
{
	struct log_limit l = { 0 };
	unsigned long held = 99;
	double secs = -1;
	int i;

	(void)state;
	assert_int_equal(log_limit_clear(&l, &secs, &held), 0);
	assert_int_equal(log_limit_due(&l, &held), 1);
	assert_int_equal(held, 0);
	for (i = 0; i < 50; i++) /* 10 s of retries every 200 ms */
		assert_int_equal(log_limit_due(&l, &held), 0);
	assert_true(l.next_us - clock_mono_us() > LOG_LIMIT_MIN_US - 1000000);
	l.next_us = 0; /* the interval has passed */
	assert_int_equal(log_limit_due(&l, &held), 1);
	assert_int_equal(held, 50);
	assert_true(l.next_us - clock_mono_us() > 2 * LOG_LIMIT_MIN_US - 1000000);
	for (i = 0; i < 5; i++) {
		l.next_us = 0;
		assert_int_equal(log_limit_due(&l, NULL), 1);
	}
	assert_true(l.next_us - clock_mono_us() <= LOG_LIMIT_MAX_US);
	assert_true(l.next_us - clock_mono_us() > LOG_LIMIT_MAX_US - 1000000);
	assert_int_equal(log_limit_due(&l, NULL), 0);
	assert_int_equal(log_limit_clear(&l, &secs, &held), 1);
	assert_int_equal(held, 1);
	assert_true(secs >= 0 && secs < 5);
	/* after it cleared, the next occurrence is written at once */
	assert_int_equal(log_limit_due(&l, &held), 1);
	assert_int_equal(held, 0);
}

UNIT_MAIN(
		cmocka_unit_test(test_trace),
		cmocka_unit_test(test_trace_metadata),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_text_and_thread_fields),
		cmocka_unit_test(test_limit),
)
