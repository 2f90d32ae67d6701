/* Unit tests of internal/fetch: file:// inputs and outputs confined to
 * DATA_DIR (.., absolute escapes, symlinks out, folders swapped for links
 * while the fetch runs, no racy fallback without openat2), commit and
 * release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "job/job.h"
#include "../unit.h"

static char top[PATH_MAX];   /* temp folder of this run */
static char data[PATH_MAX];  /* top/data = DATA_DIR */
static char outside[PATH_MAX]; /* top/outside: must stay unreachable */
static char fpath[PATH_MAX + 16]; /* outside/f.txt */

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

/* Whether this process can call openat2: valgrind 3.19 cannot (it
 * answers ENOSYS), and under it the file:// tests are skipped. */
static int have_openat2(void)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

#define NEED_OPENAT2()                                                   \
	do {                                                             \
		if (!have_openat2()) {                                   \
			print_message("openat2 unavailable here "        \
				      "(valgrind?): skipped\n");        \
			skip();                                          \
		}                                                        \
	} while (0)

static int setup(void **state)
{
	char p[PATH_MAX + 64];

	(void)state;
	if (unit_tmpdir(top, "fetch-file") < 0)
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
	/* absolute links (out, and even in), a ../ link to a folder out */
	snprintf(p, sizeof(p), "%s/abs-out.txt", data);
	snprintf(fpath, sizeof(fpath), "%s/secret.txt", outside);
	if (symlink(fpath, p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/abs-in.txt", data);
	snprintf(fpath, sizeof(fpath), "%s/in.txt", data);
	if (symlink(fpath, p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/sub/up-out", data);
	if (symlink("../../outside", p) < 0)
		return -1;
	job_settings.data_dir = data;
	job_settings.tmp_dir = top;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return unit_rmtree(top);
}

static void test_input_relative_and_absolute(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;
	char url[PATH_MAX + 32];

	(void)state;
	NEED_OPENAT2();
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

	/* a relative link that stays inside is fine; path names the file
	 * it leads to */
	assert_int_equal(fetch_input_open("file://link-in.txt", &in, NULL, &e), 0);
	assert_string_equal(slurp(in.path), "deep");
	assert_null(strstr(in.path, "link-in"));
	assert_non_null(strstr(in.path, "/deep.txt"));
	fetch_input_release(&in);
}

static void test_input_fd(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;
	char b[16], link[PATH_MAX];
	struct stat st;

	(void)state;
	NEED_OPENAT2();
	assert_int_equal(fetch_input_open("file://sub/deep.txt", &in, NULL, &e), 0);
	assert_true(in.fd > 2);
	assert_int_equal(pread(in.fd, b, sizeof(b), 0), 4);
	assert_memory_equal(b, "deep", 4);
	/* path is ours, outside DATA_DIR, and goes away on release */
	assert_true(strncmp(in.path, data, strlen(data)) != 0);
	memcpy(link, in.path, sizeof(link));
	fetch_input_release(&in);
	assert_int_equal(in.fd, 0);
	assert_int_not_equal(lstat(link, &st), 0);
	*strrchr(link, '/') = 0;
	assert_int_not_equal(lstat(link, &st), 0);
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
	NEED_OPENAT2();
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
	expect_refused("file://link-out.txt", ERR_INVALID);    /* ../ link */
	expect_refused("file://abs-out.txt", ERR_INVALID);     /* absolute */
	expect_refused("file://abs-in.txt", ERR_INVALID);      /* absolute, even in */
	expect_refused("file://dir-out/secret.txt", ERR_INVALID); /* parent, abs */
	expect_refused("file://sub/up-out/secret.txt", ERR_INVALID); /* parent, ../ */
	expect_refused("file://in.txt%00.mp4", ERR_INVALID);
	expect_refused("file://", ERR_INVALID);
	expect_refused("file://sub", ERR_INVALID);     /* a folder */
	expect_refused("file://missing.txt", ERR_NOTFOUND);
	expect_refused("ftp://example.com/a", ERR_INVALID);
	expect_refused("/etc/passwd", ERR_INVALID);
}

static int count_entries(const char *dir);

static void test_output_commit(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char target[PATH_MAX + 64], dir[PATH_MAX + 64];
	struct stat st;

	(void)state;
	NEED_OPENAT2();
	assert_int_equal(fetch_output_prepare("file://out/new/a.mp4", &out, &e), 0);
	snprintf(target, sizeof(target), "%s/out/new/a.mp4", data);
	assert_string_equal(out.final, target);
	/* path is a link named like the target; the temp file it leads to
	 * lies beside the target; the target is not there yet */
	assert_non_null(strstr(out.path, "/a.mp4"));
	snprintf(dir, sizeof(dir), "%s/out/new", data);
	assert_int_equal(count_entries(dir), 1);
	assert_int_not_equal(stat(target, &st), 0);
	put(out.path, "video");
	assert_int_equal(fetch_output_commit(&out, NULL, &e), 0);
	assert_string_equal(slurp(target), "video");
	fetch_output_release(&out);
	assert_string_equal(slurp(target), "video"); /* committed: kept */
	assert_int_equal(count_entries(dir), 1);     /* no temp left */
	assert_null(out.url);
}

static void test_output_release_removes_partial(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char tmp[PATH_MAX], target[PATH_MAX + 64];
	struct stat st;

	(void)state;
	NEED_OPENAT2();
	assert_int_equal(fetch_output_prepare("file://partial.webm", &out, &e), 0);
	memcpy(tmp, out.path, sizeof(tmp));
	put(tmp, "half");
	fetch_output_release(&out);
	assert_int_not_equal(stat(tmp, &st), 0);
	snprintf(target, sizeof(target), "%s/partial.webm", data);
	assert_int_not_equal(stat(target, &st), 0);
	/* the temp file beside the target is gone too */
	for (DIR *d = opendir(data); d; d = NULL) {
		struct dirent *de;

		while ((de = readdir(d)))
			if (strstr(de->d_name, "partial.webm"))
				fail_msg("left behind: %s", de->d_name);
		closedir(d);
	}
	fetch_output_release(&out); /* twice is fine */
}

static void test_output_escapes(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e;
	char p[PATH_MAX + 64];
	struct stat st;

	(void)state;
	NEED_OPENAT2();
	assert_fails(fetch_output_prepare("file://../outside/x.mp4", &out, &e),
	             &e, ERR_INVALID);
	assert_int_equal(fetch_output_prepare("file:///tmp/x.mp4", &out, &e), -1);
	assert_fails(fetch_output_prepare("file://dir-out/x.mp4", &out, &e), &e, ERR_INVALID);
	assert_int_equal(fetch_output_prepare("file://dir-out/made/x.mp4", &out, &e), -1);
	assert_fails(fetch_output_prepare("file://sub/up-out/made/x.mp4", &out, &e),
	             &e, ERR_INVALID);
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

/* ---- races: a path component flipped between a folder and a link ---- */

struct flipper {
	char a[PATH_MAX + 32], b[PATH_MAX + 32];
	atomic_int stop;
	atomic_long flipsa;
};

/* Swaps `a` and `b` (one a folder, the other a symlink out of DATA_DIR)
 * atomically, as fast as it can, until told to stop. */
static void *flip(void *opaque)
{
	struct flipper *f = opaque;

	while (!atomic_load(&f->stop))
		if (renameat2(AT_FDCWD, f->a, AT_FDCWD, f->b, RENAME_EXCHANGE) == 0)
			atomic_fetch_add(&f->flipsa, 1);
	return NULL;
}

/* DATA_DIR/NAME is a folder holding f.txt ("inside") and DATA_DIR/NAME-alt
 * a symlink to `target` (holding f.txt "secret"); a thread exchanges the
 * two. */
static void flip_start(struct flipper *f, pthread_t *t, const char *name,
		       const char *target)
{
	char p[PATH_MAX + 64];

	memset(f, 0, sizeof(*f));
	snprintf(f->a, sizeof(f->a), "%s/%s", data, name);
	snprintf(f->b, sizeof(f->b), "%s/%s-alt", data, name);
	assert_int_equal(mkdir(f->a, 0755), 0);
	snprintf(p, sizeof(p), "%s/f.txt", f->a);
	put(p, "inside");
	assert_int_equal(symlink(target, f->b), 0);
	assert_int_equal(pthread_create(t, NULL, flip, f), 0);
}

static void flip_stop(struct flipper *f, pthread_t t)
{
	atomic_store(&f->stop, 1);
	pthread_join(t, NULL);
}

/* Whether a race loop has run long enough: at least `min` tries, and
 * until both outcomes were seen often (the flipper thread may get little
 * CPU on a busy machine), at most 20 s. */
static int race_more(int i, int min, int a, int b, const struct flipper *f,
		     time_t start)
{
	if (i < min)
		return 1;
	if (a >= 20 && b >= 20 && atomic_load(&f->flipsa) > 100)
		return 0;
	return time(NULL) - start < 20;
}

static void test_input_race(void **state)
{
	struct fetch_input in = { .path = "" };
	struct flipper f;
	pthread_t t;
	struct err e;
	const char *got;
	int i, ok = 0, refused = 0;
	time_t start = time(NULL);

	(void)state;
	NEED_OPENAT2();
	snprintf(fpath, sizeof(fpath), "%s/f.txt", outside);
	put(fpath, "secret");
	flip_start(&f, &t, "flip", outside);
	for (i = 0; race_more(i, 3000, ok, refused, &f, start); i++) {
		if (fetch_input_open("file://flip/f.txt", &in, NULL, &e) < 0) {
			if (e.code != ERR_INVALID && e.code != ERR_NOTFOUND &&
			    e.code != ERR_UNAVAILABLE)
				fail_msg("unexpected error: %s", e.msg);
			refused++;
			continue;
		}
		/* read what the fetch handed over, the way a consumer would */
		got = slurp(in.path);
		if (got && strcmp(got, "inside"))
			fail_msg("read '%s' from outside DATA_DIR (try %d)", got, i);
		ok++;
		fetch_input_release(&in);
	}
	flip_stop(&f, t);
	/* the race was on: both outcomes happened */
	if (ok < 20 || refused < 20 || f.flipsa < 100)
		fail_msg("race not exercised: %d read, %d refused, %ld flips", ok,
			 refused, (long)f.flipsa);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_output_race(void **state)
{
	struct fetch_output out = { .path = "" };
	struct flipper f;
	pthread_t t;
	struct err e;
	FILE *fp;
	int i, ok = 0, refused = 0, before;
	time_t start = time(NULL);

	(void)state;
	NEED_OPENAT2();
	before = count_entries(outside);
	flip_start(&f, &t, "flipo", outside);
	for (i = 0; race_more(i, 1000, ok, refused, &f, start); i++) {
		if (fetch_output_prepare("file://flipo/new.txt", &out, &e) < 0) {
			refused++;
			continue;
		}
		fp = fopen(out.path, "w");
		if (fp) {
			fputs("written", fp);
			fclose(fp);
		}
		if (fetch_output_commit(&out, NULL, &e) == 0)
			ok++;
		fetch_output_release(&out);
	}
	flip_stop(&f, t);
	if (ok < 20 || refused < 20 || f.flipsa < 100)
		fail_msg("race not exercised: %d written, %d refused, %ld flips", ok,
			 refused, (long)f.flipsa);
	/* nothing created, renamed or written outside DATA_DIR */
	if (count_entries(outside) != before)
		fail_msg("%d files appeared outside DATA_DIR",
			 count_entries(outside) - before);
	assert_string_equal(slurp(fpath), "secret");
}

/* Runs `fn` in a child whose openat2 fails with `e` (a seccomp filter:
 * ENOSYS as on an old kernel, EPERM as under an old container profile)
 * and returns what the child reports: "RC CODE MESSAGE". */
static void without_openat2(int e, int (*fn)(struct err *), char *out,
			    size_t cap)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)e),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = { 0 };
		int rc;

		close(pfd[0]);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(3);
		rc = fn(&e);
		dprintf(pfd[1], "%d %s %s", rc, err_code_name(e.code), e.msg);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], out, cap - 1);
	out[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int open_in(struct err *e)
{
	struct fetch_input in = { .path = "" };
	int rc = fetch_input_open("file://in.txt", &in, NULL, e);

	fetch_input_release(&in);
	return rc;
}

static int prepare_out(struct err *e)
{
	struct fetch_output out = { .path = "" };
	int rc = fetch_output_prepare("file://nosys/x.mp4", &out, e);

	fetch_output_release(&out);
	return rc;
}

static void test_no_openat2(void **state)
{
	char got[700];

	(void)state;
	NEED_OPENAT2(); /* valgrind: no seccomp filters either */
	without_openat2(ENOSYS, open_in, got, sizeof(got));
	assert_string_equal(got, "-1 internal cannot open input 'file://in.txt': "
			    "openat2 unavailable (kernel < 5.6)");
	without_openat2(ENOSYS, prepare_out, got, sizeof(got));
	if (strncmp(got, "-1 internal ", 12) ||
	    !strstr(got, "openat2 unavailable (kernel < 5.6)"))
		fail_msg("got '%s'", got);
	without_openat2(EPERM, open_in, got, sizeof(got));
	assert_string_equal(got, "-1 internal cannot open input 'file://in.txt': "
			    "openat2 blocked (by a seccomp profile?)");
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
		cmocka_unit_test(test_input_fd),
		cmocka_unit_test(test_input_escapes),
		cmocka_unit_test(test_output_commit),
		cmocka_unit_test(test_output_release_removes_partial),
		cmocka_unit_test(test_output_escapes),
		cmocka_unit_test(test_input_race),
		cmocka_unit_test(test_output_race),
		cmocka_unit_test(test_no_openat2),
		cmocka_unit_test(test_zeroed_release),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
