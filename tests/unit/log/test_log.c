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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_text_and_thread_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
