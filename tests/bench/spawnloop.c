/* spawnloop - the bare fork+exec baseline of tests/bench/handlers.sh:
 *
 *   spawnloop N PAYLOAD PROG [ARG...]
 *
 * N times, one after the other: forks, execs PROG with PAYLOAD and a
 * newline on a stdin pipe, reads its stdout to the end and waits for it.
 * That is what an exec handler needs at the least, without a queue, pipes
 * for stderr and progress, a process group, rlimits or a working
 * directory. Prints "n=N per_us_mean=M per_us_p50=P". Linked with libc
 * alone (a process's size changes the cost of its fork). Exit 0, 1 when a
 * run failed, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tools/benchstat.h"

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One bare run: fork, exec, payload in, stdout drained, wait. */
static int spawn_once(const char *payload, char **argv)
{
	int in[2], out[2], status;
	char buf[4096];
	pid_t pid;
	size_t len = strlen(payload);

	if (pipe(in) < 0 || pipe(out) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	/* a payload this small fits the pipe: no need to poll */
	if (write(in[1], payload, len) < 0 || write(in[1], "\n", 1) < 0) {
		/* the program may not read its stdin (/bin/true): fine */
	}
	close(in[1]);
	while (read(out[0], buf, sizeof(buf)) > 0)
		;
	close(out[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int run_loop(long n, const char *payload, char **argv)
{
	int64_t *t, sum = 0;
	long i;

	if (n < 1)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	t = calloc((size_t)n, sizeof(*t));
	if (!t)
		abort();
	for (i = 0; i < n; i++) {
		int64_t t0 = mono_us();

		if (spawn_once(payload, argv) < 0) {
			fprintf(stderr, "spawnloop: '%s' failed\n", argv[0]);
			free(t);
			return 1;
		}
		t[i] = mono_us() - t0;
		sum += t[i];
	}
	stat_sort(t, (size_t)n);
	printf("n=%ld per_us_mean=%.1f per_us_p50=%lld\n", n, (double)sum / (double)n,
	       (long long)stat_pct(t, (size_t)n, 50));
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: spawnloop N PAYLOAD PROG [ARG...]\n");
		return 2;
	}
	return run_loop(atol(argv[1]), argv[2], argv + 3);
}
