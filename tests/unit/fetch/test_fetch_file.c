/* Unit tests of internal/fetch: file:// inputs and outputs confined to
 * DATA_DIR (.., absolute escapes, symlinks out), commit and release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "job/job.h"

static char top[PATH_MAX];   /* temp folder of this run */
static char data[PATH_MAX];  /* top/data = DATA_DIR */
static char outside[PATH_MAX]; /* top/outside: must stay unreachable */

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *slurp(const char *path)
{
	static char b[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	b[n] = 0;
	return b;
}

static int setup(void **state)
{
	char p[PATH_MAX + 64];

	(void)state;
	snprintf(top, sizeof(top), "/tmp/wakeq-fetch-file.XXXXXX");
	if (!mkdtemp(top))
		return -1;
	snprintf(data, sizeof(data), "%s/data", top);
	snprintf(outside, sizeof(outside), "%s/outside", top);
	mkdir(data, 0755);
	mkdir(outside, 0755);
	snprintf(p, sizeof(p), "%s/in.txt", data);
	put(p, "hello");
	snprintf(p, sizeof(p), "%s/secret.txt", outside);
	put(p, "secret");
	snprintf(p, sizeof(p), "%s/sub", data);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sub/deep.txt", data);
	put(p, "deep");
	/* a link out of DATA_DIR, a link to a folder out, a link inside */
	snprintf(p, sizeof(p), "%s/link-out.txt", data);
	if (symlink("../outside/secret.txt", p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/dir-out", data);
	if (symlink(outside, p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/link-in.txt", data);
	if (symlink("sub/deep.txt", p) < 0)
		return -1;
	job_settings.data_dir = data;
	job_settings.tmp_dir = top;
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_input_relative_and_absolute(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;
	char url[PATH_MAX + 32];

	(void)state;
	assert_int_equal(fetch_input_open("file://in.txt", &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "hello");
	assert_int_equal(in.bytes, 5);
	assert_int_equal(in.temp, 0);
	fetch_input_release(&in);
	snprintf(url, sizeof(url), "%s/in.txt", data);
	assert_string_equal(slurp(url), "hello"); /* not ours: not removed */

	assert_int_equal(fetch_input_open("file://sub/./deep.txt", &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "deep");
	fetch_input_release(&in);

	snprintf(url, sizeof(url), "file://%s/sub/deep.txt", data);
	assert_int_equal(fetch_input_open(url, &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "deep");
	fetch_input_release(&in);

	/* percent escapes are decoded */
	assert_int_equal(fetch_input_open("file://%69n.txt", &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "hello");
	fetch_input_release(&in);

	/* a link that stays inside is fine, and resolved */
	assert_int_equal(fetch_input_open("file://link-in.txt", &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "deep");
	assert_null(strstr(in.path, "link-in"));
	fetch_input_release(&in);
}

static void expect_refused(const char *url, enum err_code code)
{
	struct fetch_input in = { .path = "untouched" };
	struct err e = { 0 };

	assert_int_equal(fetch_input_open(url, &in, NULL, &e), -1);
	if (e.code != code)
		fail_msg("%s: want code %s, got %s (%s)", url, err_code_name(code),
			 err_code_name(e.code), e.msg);
	assert_string_equal(in.path, "untouched");
	assert_true(e.msg[0] != 0);
}

static void test_input_escapes(void **state)
{
	char url[PATH_MAX + 64];

	(void)state;
	expect_refused("file://../outside/secret.txt", ERR_INVALID);
	expect_refused("file://sub/../../outside/secret.txt", ERR_INVALID);
	expect_refused("file://%2e%2e/outside/secret.txt", ERR_INVALID);
	expect_refused("file://sub/..", ERR_INVALID);
	expect_refused("file:///etc/passwd", ERR_INVALID);
	snprintf(url, sizeof(url), "file://%s/secret.txt", outside);
	expect_refused(url, ERR_INVALID);
	/* a sibling whose name starts like DATA_DIR is not inside it */
	snprintf(url, sizeof(url), "file://%s-x/a", data);
	expect_refused(url, ERR_INVALID);
	expect_refused("file://link-out.txt", ERR_INVALID);
	expect_refused("file://dir-out/secret.txt", ERR_INVALID);
	expect_refused("file://in.txt%00.mp4", ERR_INVALID);
	expect_refused("file://", ERR_INVALID);
	expect_refused("file://sub", ERR_INVALID);     /* a folder */
	expect_refused("file://missing.txt", ERR_NOTFOUND);
	expect_refused("ftp://example.com/a", ERR_INVALID);
	expect_refused("/etc/passwd", ERR_INVALID);
}

static void test_output_commit(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char target[PATH_MAX + 64];
	struct stat st;

	(void)state;
	assert_int_equal(fetch_output_prepare("file://out/new/a.mp4", &out, &e), 0);
	snprintf(target, sizeof(target), "%s/out/new/a.mp4", data);
	assert_string_equal(out.final, target);
	/* temp beside the target, same extension, not yet the target */
	assert_true(strncmp(out.path, target, strlen(data)) == 0);
	assert_non_null(strstr(out.path, ".mp4"));
	assert_int_not_equal(stat(target, &st), 0);
	put(out.path, "video");
	assert_int_equal(fetch_output_commit(&out, NULL, &e), 0);
	assert_string_equal(slurp(target), "video");
	fetch_output_release(&out);
	assert_string_equal(slurp(target), "video"); /* committed: kept */
	assert_null(out.url);
}

static void test_output_release_removes_partial(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char tmp[PATH_MAX], target[PATH_MAX + 64];
	struct stat st;

	(void)state;
	assert_int_equal(fetch_output_prepare("file://partial.webm", &out, &e), 0);
	memcpy(tmp, out.path, sizeof(tmp));
	put(tmp, "half");
	fetch_output_release(&out);
	assert_int_not_equal(stat(tmp, &st), 0);
	snprintf(target, sizeof(target), "%s/partial.webm", data);
	assert_int_not_equal(stat(target, &st), 0);
	fetch_output_release(&out); /* twice is fine */
}

static void test_output_escapes(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char p[PATH_MAX + 64];
	struct stat st;

	(void)state;
	assert_int_equal(fetch_output_prepare("file://../outside/x.mp4", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(fetch_output_prepare("file:///tmp/x.mp4", &out, &e), -1);
	assert_int_equal(fetch_output_prepare("file://dir-out/x.mp4", &out, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_int_equal(fetch_output_prepare("file://dir-out/made/x.mp4", &out, &e), -1);
	snprintf(p, sizeof(p), "%s/made", outside);
	assert_int_not_equal(stat(p, &st), 0); /* nothing created outside */
	assert_int_equal(fetch_output_prepare("file://sub", &out, &e), -1);
	assert_int_equal(fetch_output_prepare("file://in.txt/x", &out, &e), -1);
	assert_null(out.url);
	/* a link as the target is replaced, never written through */
	assert_int_equal(fetch_output_prepare("file://link-out.txt", &out, &e), 0);
	put(out.path, "new");
	assert_int_equal(fetch_output_commit(&out, NULL, &e), 0);
	fetch_output_release(&out);
	snprintf(p, sizeof(p), "%s/secret.txt", outside);
	assert_string_equal(slurp(p), "secret");
	snprintf(p, sizeof(p), "%s/link-out.txt", data);
	assert_string_equal(slurp(p), "new");
}

static void test_zeroed_release(void **state)
{
	struct fetch_input in;
	struct fetch_output out;

	(void)state;
	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	fetch_input_release(&in);
	fetch_output_release(&out);
	fetch_input_release(NULL);
	fetch_output_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_input_relative_and_absolute),
		cmocka_unit_test(test_input_escapes),
		cmocka_unit_test(test_output_commit),
		cmocka_unit_test(test_output_release_removes_partial),
		cmocka_unit_test(test_output_escapes),
		cmocka_unit_test(test_zeroed_release),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
