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

#include "log/log.h"
#include "log/trace.h"

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
	assert_string_equal(json_string_value(json_object_get(o, "severity")), "INFO");
	assert_string_equal(json_string_value(json_object_get(o, "message")), "job done");
	assert_string_equal(json_string_value(json_object_get(o, "job_id")), "abc");
	assert_string_equal(json_string_value(json_object_get(o, "note")), "quote \" and\nnewline");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_text_and_thread_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
