/* Unit tests of the partial outputs of internal/fetch (fetch.h): the names
 * fetch_file_output makes are the ones fetch_is_part_name knows, and
 * fetch_sweep_parts removes stale ones from DATA_DIR and its folders and
 * nothing else (fresh ones, the API's uploads, other names, anything
 * behind a symlink). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "job/job.h"
#include "../unit.h"

static char top[PATH_MAX];   /* temp folder of this run */
static char data[PATH_MAX];  /* top/data = DATA_DIR */

/* Creates top/REL with mtime `age_s` seconds ago. */
static void put(const char *rel, int age_s)
{
	char p[PATH_MAX * 2];
	struct timespec ts[2];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age_s;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static int there(const char *rel)
{
	char p[PATH_MAX * 2];

	snprintf(p, sizeof(p), "%s/%s", top, rel);
	return access(p, F_OK) == 0;
}

static void test_names(void **state)
{
	struct fetch_output fo;
	struct err e;

	(void)state;
	/* what a file:// output is written to, with and without an extension */
	memset(&fo, 0, sizeof(fo));
	assert_int_equal(fetch_output_prepare("file://out/thumb.png", &fo, &e), 0);
	assert_true(fetch_is_part_name(fo.part)); /* the temp file beside the target */
	fetch_output_release(&fo);
	memset(&fo, 0, sizeof(fo));
	assert_int_equal(fetch_output_prepare("file://out/noext", &fo, &e), 0);
	assert_true(fetch_is_part_name(fo.part)); /* the temp file beside the target */
	fetch_output_release(&fo);

	assert_true(fetch_is_part_name(".a.mp4.part-Ab12Cd.mp4"));
	assert_true(fetch_is_part_name(".a.part-x.part-abcdef"));
	assert_false(fetch_is_part_name("a.mp4.part-Ab12Cd.mp4"));  /* no dot first */
	assert_false(fetch_is_part_name(".a.mp4.part"));            /* the API's uploads */
	assert_false(fetch_is_part_name(".a.mp4.part-Ab12C"));      /* 5 letters */
	assert_false(fetch_is_part_name(".a.mp4.part-Ab12Cd.toolongext"));
	assert_false(fetch_is_part_name(".a.mp4.part-Ab12Cd-mp4"));
	assert_false(fetch_is_part_name(".part-Ab12Cd"));           /* no NAME */
	assert_false(fetch_is_part_name("."));
	assert_false(fetch_is_part_name(""));
}

static void test_sweep(void **state)
{
	char p[PATH_MAX * 2], q[PATH_MAX * 2];
	atomic_int stop = 1;
	struct err e;

	(void)state;
	snprintf(p, sizeof(p), "%s/data/a", top);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/a/b", top);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/outside", top);
	mkdir(p, 0755);
	snprintf(q, sizeof(q), "%s/data/link", top);
	assert_int_equal(symlink(p, q), 0);

	put("data/.old.png.part-Ab12Cd.png", 700);
	put("data/a/b/.deep.mp4.part-zzzzzz.mp4", 700);
	put("data/.fresh.png.part-Ab12Cd.png", 10);       /* being written */
	put("data/a/.upload.bin.part", 7000);            /* the API's upload */
	put("data/a/notes.part-abcdef", 7000);           /* a user's file */
	put("outside/.far.png.part-Ab12Cd.png", 7000);   /* behind data/link */

	/* asked to stop before it starts: nothing removed */
	assert_int_equal(fetch_sweep_parts(FETCH_PART_STALE_S, &stop, &e), 0);
	assert_true(there("data/.old.png.part-Ab12Cd.png"));

	assert_int_equal(fetch_sweep_parts(FETCH_PART_STALE_S, NULL, &e), 2);
	assert_false(there("data/.old.png.part-Ab12Cd.png"));
	assert_false(there("data/a/b/.deep.mp4.part-zzzzzz.mp4"));
	assert_true(there("data/.fresh.png.part-Ab12Cd.png"));
	assert_true(there("data/a/.upload.bin.part"));
	assert_true(there("data/a/notes.part-abcdef"));
	assert_true(there("outside/.far.png.part-Ab12Cd.png"));
	assert_int_equal(fetch_sweep_parts(FETCH_PART_STALE_S, NULL, &e), 0);

	/* no DATA_DIR: an error, nothing else */
	job_settings.data_dir = "/nonexistent/wakeq-data";
	assert_int_equal(fetch_sweep_parts(FETCH_PART_STALE_S, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "DATA_DIR"));
	job_settings.data_dir = data;
}

static int setup(void **state)
{
	(void)state;
	if (unit_tmpdir(top, "fetch-parts") < 0)
		return -1;
	snprintf(data, sizeof(data), "%s/data", top);
	mkdir(data, 0755);
	job_settings.data_dir = data;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unit_rmtree(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sweep),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
