/* bench_core - load generator and probes for tests/bench/core.sh, through
 * the real queue API (internal/queue):
 *
 *   bench_core enqueue URL QUEUE N BATCH [GROUPS]
 *       enqueues N noop jobs, BATCH (1..1000) per queue_enqueue call, from
 *       one connection; prints "N SECONDS JOBS_PER_S". With GROUPS > 0 the
 *       jobs take the groups g0 … g(GROUPS-1) in turn (job i: g(i % GROUPS)).
 *   bench_core latency URL QUEUE N PACE_US
 *       for an idle awake worker: enqueues N noop jobs one at a time,
 *       PACE_US apart; the client clock is read just before each
 *       queue_enqueue. Once all are done, reads each job's started and
 *       finished (Redis TIME, same machine clock) and prints percentiles
 *       of started - enqueue ("start") and finished - enqueue ("done"),
 *       and of the enqueue round trip itself, in microseconds.
 *   bench_core first URL QUEUE ID TIMEOUT_MS
 *       polls job ID every 0.5 ms (HGETALL) until it has started, then
 *       prints its started time (epoch µs): the drain's first job, read
 *       before the done-set cap deletes its hash. Exit 1 on timeout.
 *   bench_core cold URL QUEUE RUNS WORKER_BIN
 *       RUNS times: enqueues one noop job, reads the clock, spawns
 *       WORKER_BIN (PORT free, IDLE_TIMEOUT=0.2, EXIT_ON_IDLE=true), POSTs
 *       /wake as soon as connect succeeds (retried every 0.2 ms), waits for
 *       the process to exit, then reads the job's started time. Prints per
 *       run: launch->listening, launch->handler start (started_at),
 *       launch->/wake answered, in microseconds.
 *   bench_core coldstart URL QUEUE RUNS WORKER_BIN BARE_BIN
 *       RUNS rounds, interleaved: BARE_BIN (e.g. /bin/true) spawned the same
 *       way and waited for (the bare launch: exec, loader, libc, exit);
 *       the cold start above (IDLE_TIMEOUT=0.05); and one with ONCE=true
 *       (drains at start, no HTTP). Prints per round, then p50/p90/p99/max
 *       of bare_exit_us, wake_listen_us, wake_start_us, once_start_us and
 *       once_exit_us (launch -> the worker exited).
 *
 * Exit 0 on success, 1 on a failure (message on stderr), 2 on bad usage.
 */
#include "base/clock.h"
#include "benchstat.h"
#include "loopback.h"
#include "queue/queue.h"
#include "toolqueue.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Prints the distribution of v[0..n) as one line named `name`, then frees v. */
static void print_dist(const char *name, int64_t *v, size_t n)
{
	stat_sort(v, n);
	printf("%s n=%zu p50=%lld p90=%lld p99=%lld max=%lld\n", name, n,
	       (long long)stat_pct(v, n, 50), (long long)stat_pct(v, n, 90),
	       (long long)stat_pct(v, n, 99), (long long)v[n - 1]);
	free(v);
}

static int cmd_enqueue(const char *url, const char *queue, long n, long batch,
		       long groups)
{
	struct job_spec *specs;
	struct queue_enqueued *out;
	struct queue *q;
	struct err e;
	int64_t t0, t1;
	long done = 0, i;
	char (*gname)[16] = NULL;

	if (n < 1 || batch < 1 || batch > QUEUE_MAX_BATCH || groups < 0 || groups > 100000)
		return 2;
	if (groups > 0) {
		gname = calloc((size_t)groups, sizeof(*gname));
		if (!gname)
			abort();
		for (i = 0; i < groups; i++)
			snprintf(gname[i], sizeof(gname[i]), "g%ld", i);
	}
	q = tool_queue_connect("bench_core", url);
	specs = calloc((size_t)batch, sizeof(*specs));
	out = calloc((size_t)batch, sizeof(*out));
	if (!specs || !out)
		abort();
	for (i = 0; i < batch; i++)
		specs[i].type = "noop";
	t0 = clock_mono_us();
	while (done < n) {
		long k = n - done < batch ? n - done : batch;

		for (i = 0; gname && i < k; i++)
			specs[i].group = gname[(done + i) % groups];
		if (queue_enqueue(q, queue, specs, (size_t)k, out, NULL, &e) < 0) {
			fprintf(stderr, "bench_core: enqueue: %s\n", e.msg);
			return 1;
		}
		done += k;
	}
	t1 = clock_mono_us();
	printf("%ld %.6f %.0f\n", n, (double)(t1 - t0) / 1e6,
	       (double)n * 1e6 / (double)(t1 - t0));
	free(specs);
	free(out);
	free(gname);
	queue_free(q);
	return 0;
}

/* Reads started and finished (epoch µs) of a job; 0 when not there yet. */
static int job_times(struct queue *q, const char *queue, const char *id,
		     int64_t *started, int64_t *finished)
{
	struct job_info job;
	struct err e;

	if (queue_job_get(q, queue, id, &job, &e) < 0) {
		fprintf(stderr, "bench_core: job %s: %s\n", id, e.msg);
		return -1;
	}
	*started = job.started_at ? job.started_at : -1;
	*finished = job.finished_at ? job.finished_at : -1;
	job_info_release(&job);
	return 0;
}

static int cmd_latency(const char *url, const char *queue, long n, long pace_us)
{
	struct queue *q;
	struct job_spec s = { 0 };
	struct queue_enqueued *ids;
	int64_t *t_enq, *start, *done, *rtt, next;
	struct queue_counts c;
	struct err e;
	long i;
	int live = 0, tries;

	if (n < 1 || pace_us < 0)
		return 2;
	q = tool_queue_connect("bench_core", url);
	ids = calloc((size_t)n, sizeof(*ids));
	t_enq = calloc((size_t)n, sizeof(*t_enq));
	start = calloc((size_t)n, sizeof(*start));
	done = calloc((size_t)n, sizeof(*done));
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!ids || !t_enq || !start || !done || !rtt)
		abort();
	s.type = "noop";
	next = clock_mono_us();
	for (i = 0; i < n; i++) {
		int64_t m0;

		m0 = clock_mono_us();
		if (m0 < next)
			clock_sleep_us(next - m0);
		next += pace_us;
		m0 = clock_mono_us();
		t_enq[i] = clock_now_us();
		if (queue_enqueue(q, queue, &s, 1, &ids[i], &live, &e) < 0) {
			fprintf(stderr, "bench_core: enqueue: %s\n", e.msg);
			return 1;
		}
		rtt[i] = clock_mono_us() - m0;
		if (!live) {
			fprintf(stderr, "bench_core: no live worker on '%s'\n", queue);
			return 1;
		}
	}
	/* Wait (up to 10 s) until none is queued or active. */
	for (tries = 0; tries < 1000; tries++) {
		if (queue_counts(q, queue, &c, &e) < 0) {
			fprintf(stderr, "bench_core: counts: %s\n", e.msg);
			return 1;
		}
		if (c.n[JOB_QUEUED] == 0 && c.n[JOB_ACTIVE] == 0)
			break;
		clock_sleep_us(10000);
	}
	for (i = 0; i < n; i++) {
		if (job_times(q, queue, ids[i].id, &start[i], &done[i]) < 0)
			return 1;
		if (start[i] < 0 || done[i] < 0) {
			fprintf(stderr, "bench_core: job %s not finished\n", ids[i].id);
			return 1;
		}
		start[i] -= t_enq[i];
		done[i] -= t_enq[i];
	}
	print_dist("start_us", start, (size_t)n);
	print_dist("done_us", done, (size_t)n);
	print_dist("enqueue_rtt_us", rtt, (size_t)n);
	free(ids);
	free(t_enq);
	queue_free(q);
	return 0;
}

static int cmd_first(const char *url, const char *queue, const char *id, long timeout_ms)
{
	struct queue *q = tool_queue_connect("bench_core", url);
	int64_t until = clock_mono_us() + timeout_ms * 1000, started = -1, finished;

	while (clock_mono_us() < until) {
		if (job_times(q, queue, id, &started, &finished) < 0)
			break;
		if (started > 0)
			break;
		clock_sleep_us(500);
	}
	queue_free(q);
	if (started <= 0) {
		fprintf(stderr, "bench_core: job %s did not start\n", id);
		return 1;
	}
	printf("%lld\n", (long long)started);
	return 0;
}

/* One cold start of WORKER_BIN with one noop job queued. `idle`: its
 * IDLE_TIMEOUT. `once`: ONCE=true (drains at start, no HTTP; listen_us and
 * answer_us are then the exit), else POST /wake as soon as it listens. */
static int cold_once(const char *url, const char *queue, const char *bin,
		     const char *idle, int once,
		     int64_t *listen_us, int64_t *start_us, int64_t *answer_us)
{
	struct queue *q = tool_queue_connect("bench_core", url);
	struct job_spec s = { 0 };
	struct queue_enqueued id;
	struct err e;
	char port_s[16], req[256], buf[4096];
	char *argv[2];
	int64_t t0, t_listen = 0, t_answer = 0, started, finished;
	int port, fd = -1, status, rc = -1;
	pid_t pid;
	size_t got = 0;

	s.type = "noop";
	if (queue_enqueue(q, queue, &s, 1, &id, NULL, &e) < 0) {
		fprintf(stderr, "bench_core: enqueue: %s\n", e.msg);
		goto out;
	}
	port = loopback_free_port();
	snprintf(port_s, sizeof(port_s), "%d", port);
	setenv("PORT", port_s, 1);
	setenv("HOST", "127.0.0.1", 1);
	setenv("REDIS_URL", url, 1);
	setenv("QUEUES", queue, 1);
	setenv("IDLE_TIMEOUT", idle, 1);
	setenv("EXIT_ON_IDLE", "true", 1);
	setenv("ONCE", once ? "true" : "false", 1);
	setenv("LOG_LEVEL", "warn", 1);
	unsetenv("DATABASE_URL");
	argv[0] = (char *)bin;
	argv[1] = NULL;
	/* posix_spawn (vfork-like): the launch does not pay for copying this
	 * tool's own address space, as a fork would. */
	t0 = clock_now_us();
	if (posix_spawn(&pid, bin, NULL, NULL, argv, environ) != 0) {
		fprintf(stderr, "bench_core: cannot start '%s'\n", bin);
		goto out;
	}
	if (once) {
		waitpid(pid, &status, 0);
		t_listen = t_answer = clock_now_us();
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "bench_core: worker status %d\n", status);
			goto out;
		}
		goto times;
	}
	while ((fd = loopback_dial(port)) < 0) {
		if (clock_now_us() - t0 > 10000000 || waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "bench_core: worker did not listen\n");
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			goto out;
		}
		clock_sleep_us(200);
	}
	t_listen = clock_now_us();
	snprintf(req, sizeof(req), "POST /wake HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		 "Content-Length: 0\r\nConnection: close\r\n\r\n", port);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		fprintf(stderr, "bench_core: cannot send /wake\n");
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			break;
		if (!t_answer)
			t_answer = clock_now_us();
		got += (size_t)r;
		if (got >= sizeof(buf) - 1)
			break;
	}
	buf[got] = '\0';
	waitpid(pid, &status, 0);
	if (strncmp(buf, "HTTP/1.1 200", 12) || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_core: /wake answered '%.40s', worker status %d\n",
			buf, status);
		goto out;
	}
times:
	if (job_times(q, queue, id.id, &started, &finished) < 0 || started < 0) {
		fprintf(stderr, "bench_core: job %s did not start\n", id.id);
		goto out;
	}
	*listen_us = t_listen - t0;
	*start_us = started - t0;
	*answer_us = t_answer - t0;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	queue_free(q);
	return rc;
}

static int cmd_cold(const char *url, const char *queue, long runs, const char *bin)
{
	int64_t *lis, *st, *ans;
	long i;

	if (runs < 1)
		return 2;
	lis = calloc((size_t)runs, sizeof(*lis));
	st = calloc((size_t)runs, sizeof(*st));
	ans = calloc((size_t)runs, sizeof(*ans));
	if (!lis || !st || !ans)
		abort();
	for (i = 0; i < runs; i++) {
		if (cold_once(url, queue, bin, "0.2", 0, &lis[i], &st[i], &ans[i]) < 0)
			return 1;
		printf("run %ld listen_us=%lld start_us=%lld answer_us=%lld\n", i + 1,
		       (long long)lis[i], (long long)st[i], (long long)ans[i]);
		fflush(stdout);
	}
	print_dist("listen_us", lis, (size_t)runs);
	print_dist("start_us", st, (size_t)runs);
	print_dist("answer_us", ans, (size_t)runs);
	return 0;
}

/* A bare launch: posix_spawn of PROG (no arguments), until it exited. */
static int bare_once(const char *prog, int64_t *us)
{
	char *argv[2] = { (char *)prog, NULL };
	int64_t t0 = clock_now_us();
	int status;
	pid_t pid;

	if (posix_spawn(&pid, prog, NULL, NULL, argv, environ) != 0 ||
	    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_core: '%s' did not run\n", prog);
		return -1;
	}
	*us = clock_now_us() - t0;
	return 0;
}

/* RUNS rounds of: a bare launch of BARE_BIN, a cold start of WORKER_BIN
 * woken by POST /wake, a cold start with ONCE=true; interleaved so the
 * machine's load falls on all three alike. */
static int cmd_coldstart(const char *url, const char *queue, long runs, const char *bin,
			 const char *bare)
{
	int64_t *v[5], l, a;
	const char *names[5] = { "bare_exit_us", "wake_listen_us", "wake_start_us",
				 "once_start_us", "once_exit_us" };
	long i;
	int k;

	if (runs < 1)
		return 2;
	for (k = 0; k < 5; k++) {
		v[k] = calloc((size_t)runs, sizeof(int64_t));
		if (!v[k])
			abort();
	}
	for (i = 0; i < runs; i++) {
		if (bare_once(bare, &v[0][i]) < 0 ||
		    cold_once(url, queue, bin, "0.05", 0, &v[1][i], &v[2][i], &a) < 0 ||
		    cold_once(url, queue, bin, "0.05", 1, &l, &v[3][i], &v[4][i]) < 0)
			return 1;
		printf("run %ld bare_exit_us=%lld wake_listen_us=%lld wake_start_us=%lld "
		       "once_start_us=%lld\n", i + 1, (long long)v[0][i], (long long)v[1][i],
		       (long long)v[2][i], (long long)v[3][i]);
		fflush(stdout);
	}
	for (k = 0; k < 5; k++)
		print_dist(names[k], v[k], (size_t)runs); /* frees v[k] */
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "enqueue"))
		rc = cmd_enqueue(argv[2], argv[3], atol(argv[4]), atol(argv[5]),
				 argc == 7 ? atol(argv[6]) : 0);
	else if (argc == 6 && !strcmp(argv[1], "latency"))
		rc = cmd_latency(argv[2], argv[3], atol(argv[4]), atol(argv[5]));
	else if (argc == 6 && !strcmp(argv[1], "first"))
		rc = cmd_first(argv[2], argv[3], argv[4], atol(argv[5]));
	else if (argc == 6 && !strcmp(argv[1], "cold"))
		rc = cmd_cold(argv[2], argv[3], atol(argv[4]), argv[5]);
	else if (argc == 7 && !strcmp(argv[1], "coldstart"))
		rc = cmd_coldstart(argv[2], argv[3], atol(argv[4]), argv[5], argv[6]);
	if (rc == 2)
		fprintf(stderr, "usage: bench_core enqueue URL QUEUE N BATCH [GROUPS]\n"
			"       bench_core latency URL QUEUE N PACE_US\n"
			"       bench_core first URL QUEUE ID TIMEOUT_MS\n"
			"       bench_core cold URL QUEUE RUNS WORKER_BIN\n"
			"       bench_core coldstart URL QUEUE RUNS WORKER_BIN BARE_BIN\n");
	return rc;
}
