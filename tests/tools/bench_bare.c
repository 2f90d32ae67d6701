/* bench_bare - the bare-Redis limit of tests/bench/core.sh (issue 14):
 * the same number of jobs moved through the cheapest Redis structure
 * that still keeps one record per job, from one C client, pipelined. It
 * speaks to Redis through hiredis itself, on purpose not through wakeq's
 * queue module: it measures what Redis can do, not what wakeq does.
 *
 *   bench_bare drain PORT N BATCH
 *       on 127.0.0.1:PORT (flushed first), key prefix bare:
 *       enqueue: per BATCH jobs one pipeline of an HSET bare:job:I
 *       (type, payload, status queued) a job and one RPUSH bare:pending
 *       of their ids; drain: one pipeline a batch of an HSET a job of the
 *       batch before (status done, result, finished) and LPOP
 *       bare:pending BATCH, so a round trip settles one batch and takes
 *       the next, as wakeq's take does. Per job: one write at enqueue,
 *       one at settle; per batch: one RPUSH and one pop. Prints
 *       "bare n=N batch=B enqueue_rate=… drain_rate=…
 *       enqueue_redis_us_job=… drain_redis_us_job=… drain_cmds_job=…"
 *       (Redis CPU: used_cpu_sys + used_cpu_user of INFO cpu).
 *   bench_bare ping PORT N
 *       N PINGs one at a time on one connection (each waits for its
 *       answer): the round-trip bound of one-at-a-time enqueue. Prints
 *       "ping n=N rate=… p50_us=…".
 *
 * Exit 0 on success, 1 on a failure (message on stderr), 2 on bad usage.
 */
#include "base/clock.h"
#include "benchstat.h"

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static redisContext *connect_or_die(int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);

	if (!c || c->err) {
		fprintf(stderr, "bench_bare: cannot connect to port %d: %s\n", port,
			c ? c->errstr : "out of memory");
		exit(1);
	}
	return c;
}

/* Reads one pipelined reply; exits on an error reply or I/O error. */
static redisReply *reply_or_die(redisContext *c)
{
	void *r = NULL;

	if (redisGetReply(c, &r) != REDIS_OK || !r) {
		fprintf(stderr, "bench_bare: redis: %s\n", c->errstr);
		exit(1);
	}
	if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "bench_bare: redis: %s\n", ((redisReply *)r)->str);
		exit(1);
	}
	return r;
}

/* used_cpu_sys + used_cpu_user of the server, seconds. */
static double redis_cpu(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO cpu");
	double s = 0, v;
	const char *p;

	if (!r || r->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "bench_bare: INFO cpu failed\n");
		exit(1);
	}
	for (p = r->str; (p = strstr(p, "used_cpu_")); p++)
		if ((!strncmp(p, "used_cpu_sys:", 13) && sscanf(p + 13, "%lf", &v) == 1) ||
		    (!strncmp(p, "used_cpu_user:", 14) && sscanf(p + 14, "%lf", &v) == 1))
			s += v;
	freeReplyObject(r);
	return s;
}

/* Commands the server ran since CONFIG RESETSTAT (INFO commandstats),
 * INFO and CONFIG left out. */
static long long redis_calls(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO commandstats");
	long long n = 0, v;
	const char *p;

	if (!r || r->type != REDIS_REPLY_STRING) {
		fprintf(stderr, "bench_bare: INFO commandstats failed\n");
		exit(1);
	}
	for (p = r->str; (p = strstr(p, "cmdstat_")); p++) {
		const char *q = strstr(p, ":calls=");

		if (!q || !strncmp(p, "cmdstat_info:", 13) || !strncmp(p, "cmdstat_config", 14))
			continue;
		if (sscanf(q + 7, "%lld", &v) == 1)
			n += v;
	}
	freeReplyObject(r);
	return n;
}

static void command_or_die(redisContext *c, const char *cmd)
{
	redisReply *r = redisCommand(c, cmd);

	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "bench_bare: %s failed\n", cmd);
		exit(1);
	}
	freeReplyObject(r);
}

static int cmd_drain(int port, long n, long batch)
{
	redisContext *c = connect_or_die(port);
	char (*ids)[24], (*prev)[24];
	long i, done = 0, nprev = 0, taken = 0;
	int64_t t0, t1, t2;
	double c0, c1, c2;
	long long k0, k1;
	char now[24];

	if (n < 1 || batch < 1 || batch > 100000)
		return 2;
	ids = calloc((size_t)batch, sizeof(*ids));
	prev = calloc((size_t)batch, sizeof(*prev));
	if (!ids || !prev)
		abort();
	command_or_die(c, "FLUSHALL");
	c0 = redis_cpu(c);
	t0 = clock_mono_us();
	while (done < n) {
		long k = n - done < batch ? n - done : batch;
		const char **argv = malloc(sizeof(*argv) * (size_t)(k + 2));

		if (!argv)
			abort();
		argv[0] = "RPUSH";
		argv[1] = "bare:pending";
		for (i = 0; i < k; i++) {
			snprintf(ids[i], sizeof(ids[i]), "%ld", done + i);
			redisAppendCommand(c, "HSET bare:job:%s type noop payload {} status queued",
					   ids[i]);
			argv[i + 2] = ids[i];
		}
		redisAppendCommandArgv(c, (int)k + 2, argv, NULL);
		for (i = 0; i <= k; i++)
			freeReplyObject(reply_or_die(c));
		free(argv);
		done += k;
	}
	t1 = clock_mono_us();
	c1 = redis_cpu(c);
	command_or_die(c, "CONFIG RESETSTAT");
	k0 = redis_calls(c);
	/* drain: settle the batch before, pop the next, one round trip */
	for (;;) {
		redisReply *r;

		snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
		for (i = 0; i < nprev; i++)
			redisAppendCommand(c, "HSET bare:job:%s status done result null finished %s",
					   prev[i], now);
		redisAppendCommand(c, "LPOP bare:pending %ld", batch);
		for (i = 0; i < nprev; i++)
			freeReplyObject(reply_or_die(c));
		r = reply_or_die(c);
		nprev = 0;
		if (r->type == REDIS_REPLY_ARRAY) {
			for (i = 0; i < (long)r->elements; i++)
				snprintf(prev[nprev++], sizeof(prev[0]), "%s", r->element[i]->str);
		}
		freeReplyObject(r);
		taken += nprev;
		if (nprev == 0)
			break;
	}
	t2 = clock_mono_us();
	k1 = redis_calls(c);
	c2 = redis_cpu(c);
	if (taken != n) {
		fprintf(stderr, "bench_bare: drained %ld of %ld jobs\n", taken, n);
		return 1;
	}
	printf("bare n=%ld batch=%ld enqueue_rate=%.0f drain_rate=%.0f "
	       "enqueue_redis_us_job=%.2f drain_redis_us_job=%.2f drain_cmds_job=%.3f\n",
	       n, batch, (double)n * 1e6 / (double)(t1 - t0),
	       (double)n * 1e6 / (double)(t2 - t1), (c1 - c0) * 1e6 / (double)n,
	       (c2 - c1) * 1e6 / (double)n, (double)(k1 - k0) / (double)n);
	command_or_die(c, "FLUSHALL");
	free(ids);
	free(prev);
	redisFree(c);
	return 0;
}

static int cmd_ping(int port, long n)
{
	redisContext *c = connect_or_die(port);
	int64_t t0, t1, *rtt;
	long i;

	if (n < 1)
		return 2;
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt)
		abort();
	t0 = clock_mono_us();
	for (i = 0; i < n; i++) {
		int64_t s = clock_mono_us();

		redisAppendCommand(c, "PING");
		freeReplyObject(reply_or_die(c));
		rtt[i] = clock_mono_us() - s;
	}
	t1 = clock_mono_us();
	stat_sort(rtt, (size_t)n);
	printf("ping n=%ld rate=%.0f p50_us=%lld\n", n, (double)n * 1e6 / (double)(t1 - t0),
	       (long long)rtt[n / 2]);
	free(rtt);
	redisFree(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "drain"))
		return cmd_drain(atoi(argv[2]), atol(argv[3]), atol(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "ping"))
		return cmd_ping(atoi(argv[2]), atol(argv[3]));
	fprintf(stderr, "usage: bench_bare drain PORT N BATCH | ping PORT N\n");
	return 2;
}
