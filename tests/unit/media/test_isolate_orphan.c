/* Unit tests of media_isolate when the worker dies: a process standing in
 * for the worker runs a decoder child that hangs, and is SIGKILLed; the
 * child must die with it at once (PR_SET_PDEATHSIG), not live on until its
 * next write to the pipe. While the child ran, the partial output's mtime
 * was kept fresh (fetch.h, FETCH_PART_TOUCH_S), and the file stays behind
 * for fetch_sweep_parts. This process is a subreaper, so the orphaned
 * child comes back to it and its death can be waited for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "media/media.h"
#include "../unit.h"

static char dir[PATH_MAX];

/* The decoder: says its pid through the file named by `arg`, then hangs. */
static int work_hang(void *arg, const struct media_ctl *ctl, json_t **out,
		     struct err *err)
{
	int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	(void)ctl; (void)out; (void)err;
	if (fd >= 0) {
		dprintf(fd, "%d\n", (int)getpid());
		close(fd);
	}
	for (;;)
		pause();
	return -1;
}

static pid_t read_pid(const char *file)
{
	int64_t end = clock_mono_us() + 10000000;

	while (clock_mono_us() < end) {
		FILE *f = fopen(file, "r");
		int pid = 0;

		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return pid;
		clock_sleep_us(10000);
	}
	return 0;
}

static void test_child_dies_with_worker(void **state)
{
	char pidfile[PATH_MAX + 16], part[PATH_MAX + 64];
	struct timespec old[2];
	struct stat st;
	pid_t worker, child;
	int64_t t0;
	int status, gone = 0, touched;

	(void)state;
	snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
	snprintf(part, sizeof(part), "%s/.t.png.part-Ab12Cd.png", dir);
	close(open(part, O_WRONLY | O_CREAT | O_TRUNC, 0644));
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= 3600;
	old[1] = old[0];
	assert_int_equal(utimensat(AT_FDCWD, part, old, 0), 0);

	worker = fork();
	assert_true(worker >= 0);
	if (worker == 0) {
		json_t *r = NULL;
		struct err e;

		media_isolate(work_hang, pidfile, part, NULL, &r, &e);
		_exit(0);
	}
	child = read_pid(pidfile);
	clock_sleep_us(200000);
	/* in use: its mtime was refreshed (checked after the kills below,
	 * so that a failure leaves no process behind) */
	touched = stat(part, &st) == 0 && st.st_mtime > old[0].tv_sec + 3000;

	kill(worker, SIGKILL);
	assert_int_equal(waitpid(worker, &status, 0), worker);
	assert_true(child > 0);
	t0 = clock_mono_us();
	while (clock_mono_us() - t0 < 1000000) {
		if (waitpid(child, &status, WNOHANG) == child) {
			gone = 1;
			break;
		}
		clock_sleep_us(5000);
	}
	if (!gone) {
		kill(child, SIGKILL); /* the old behaviour: it would live on */
		waitpid(child, &status, 0);
	}
	assert_true(gone);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_true(clock_mono_us() - t0 < 500000);
	assert_true(touched);
	/* nobody removed the partial output: the next worker's sweep will */
	assert_int_equal(access(part, F_OK), 0);
}

static int setup(void **state)
{
	(void)state;
	if (unit_tmpdir(dir, "orphan") < 0)
		return -1;
	/* orphans of our children come back to us, to be waited for */
	return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return unit_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_dies_with_worker),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
