/* unit.h - small helpers several unit tests share. Header-only, include
 * it after <cmocka.h>. */
#ifndef WAKEQ_UNIT_H
#define WAKEQ_UNIT_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* Makes a scratch folder /tmp/wakeq-NAME.XXXXXX into dir (PATH_MAX bytes)
 * for one test program; 0, or -1 with errno set. */
static inline int unit_tmpdir(char *dir, const char *name)
{
	snprintf(dir, PATH_MAX, "/tmp/wakeq-%s.XXXXXX", name);
	return mkdtemp(dir) ? 0 : -1;
}

/* Defines main() running the cmocka tests given, in order, as one group
 * without group fixtures; a trailing comma is fine:
 *   UNIT_MAIN(
 *		cmocka_unit_test(test_a),
 *		cmocka_unit_test_setup_teardown(test_b, setup, teardown),
 *   )
 */
#define UNIT_MAIN(...)                                                   \
	int main(void)                                                   \
	{                                                                \
		const struct CMUnitTest tests[] = { __VA_ARGS__ };       \
		return cmocka_run_group_tests(tests, NULL, NULL);        \
	}

/* The string / integer member `key` of JSON object `obj` is `want` (a
 * missing member fails the first as NULL, the second as 0). */
#define assert_json_str(obj, key, want) \
	assert_string_equal(json_string_value(json_object_get((obj), (key))), (want))
#define assert_json_int(obj, key, want) \
	assert_int_equal(json_integer_value(json_object_get((obj), (key))), (want))

/* `call` failed: it returned -1 with the code `want` in *err. */
#define assert_fails(call, err, want)                      \
	do {                                               \
		assert_int_equal((call), -1);              \
		assert_int_equal((err)->code, (want));     \
	} while (0)

/* The same for a call that fails by returning NULL. */
#define assert_fails_null(call, err, want)                 \
	do {                                               \
		assert_null(call);                         \
		assert_int_equal((err)->code, (want));     \
	} while (0)

/* Removes `dir` and everything below it; 0, or -1. */
static inline int unit_rmtree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
