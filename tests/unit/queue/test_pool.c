/* Unit tests of the queue module's connection pool (queue_pool_*): many
 * threads borrowing at once against the redis-server of tests/run.sh
 * (UNIT_REDIS_URL), and, against a redis-server this test starts and
 * stops itself (stopped by pid on exit), the fail-fast window while Redis
 * is unreachable and the reconnect after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "queue/queue.h"
#include "../../tools/loopback.h"
#include "../unit.h"

/* ---- a redis-server of our own ------------------------------------------ */

static pid_t srv_pid = -1;
static int srv_port;
static char srv_dir[] = "/tmp/wakeq-pool-XXXXXX";

static void srv_opts(struct queue_opts *o)
{
	char url[64];
	struct err e;

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", srv_port);
	assert_int_equal(queue_opts_init(o, url, &e), 0);
}

/* Starts redis-server on srv_port and waits until it answers. */
static void srv_start(void)
{
	char port[16];
	struct queue_opts o;
	struct queue *q = NULL;
	int i;

	snprintf(port, sizeof(port), "%d", srv_port);
	srv_pid = fork();
	assert_true(srv_pid >= 0);
	if (srv_pid == 0) {
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--dir", srv_dir, "--save", "", "--appendonly", "no",
		       "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	srv_opts(&o);
	for (i = 0; i < 250 && !q; i++) {
		q = queue_connect(&o, NULL);
		if (!q)
			clock_sleep_us(20000);
	}
	assert_non_null(q);
	queue_free(q);
	queue_opts_release(&o);
}

static void srv_stop(void)
{
	if (srv_pid <= 0)
		return;
	kill(srv_pid, SIGCONT);
	kill(srv_pid, SIGTERM);
	waitpid(srv_pid, NULL, 0);
	srv_pid = -1;
}

static int srv_setup(void **state)
{
	(void)state;
	if (!mkdtemp(srv_dir))
		return -1;
	srv_port = loopback_free_port();
	return srv_port > 0 ? 0 : -1;
}

static int srv_teardown(void **state)
{
	(void)state;
	srv_stop();
	rmdir(srv_dir);
	strcpy(srv_dir, "/tmp/wakeq-pool-XXXXXX");
	return 0;
}

/* ---- many threads, one pool ------------------------------------------------ */

#define NTHREADS 8
#define ROUNDS 200

struct shared {
	struct queue_pool *pool;
	pthread_mutex_t lock;
	struct queue *seen[NTHREADS * ROUNDS];
	size_t nseen;
	int errors;
	char why[ERR_MSG_MAX];
};

static void *borrower(void *arg)
{
	struct shared *s = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		struct err e;
		struct queue *q = queue_pool_get(s->pool, &e);
		size_t k;

		if (q && queue_ping(q, &e) < 0) {
			queue_pool_put(s->pool, q);
			q = NULL;
		}
		pthread_mutex_lock(&s->lock);
		if (!q) {
			s->errors++;
			snprintf(s->why, sizeof(s->why), "%s", e.msg);
		} else {
			for (k = 0; k < s->nseen && s->seen[k] != q; k++)
				;
			if (k == s->nseen)
				s->seen[s->nseen++] = q;
		}
		pthread_mutex_unlock(&s->lock);
		queue_pool_put(s->pool, q);
	}
	return NULL;
}

static void test_pool_threads(void **state)
{
	const char *url = getenv("UNIT_REDIS_URL");
	static struct shared s;
	pthread_t t[NTHREADS];
	struct queue_opts o;
	struct err e;
	int i;

	(void)state;
	assert_non_null(url);
	assert_int_equal(queue_opts_init(&o, url, &e), 0);
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	s.pool = queue_pool_new(&o, 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, borrower, &s), 0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	if (s.errors)
		fprintf(stderr, "%d errors, last: %s\n", s.errors, s.why);
	assert_int_equal(s.errors, 0);
	/* connections are reused: never more than the threads that borrowed
	 * at the same time */
	assert_true(s.nseen >= 1);
	assert_true(s.nseen <= NTHREADS);
	queue_pool_free(s.pool);
	pthread_mutex_destroy(&s.lock);
	queue_opts_release(&o);
}

/* A pool that keeps one idle connection frees the rest on put, and the
 * one it keeps is the next one handed out. */
static void test_pool_max_idle(void **state)
{
	const char *url = getenv("UNIT_REDIS_URL");
	struct queue_pool *p;
	struct queue_opts o;
	struct queue *a, *b;
	struct err e;

	(void)state;
	assert_non_null(url);
	assert_int_equal(queue_opts_init(&o, url, &e), 0);
	p = queue_pool_new(&o, 1);
	queue_opts_release(&o); /* the pool keeps its own copy */
	a = queue_pool_get(p, &e);
	b = queue_pool_get(p, &e);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	queue_pool_put(p, a);
	queue_pool_put(p, b); /* over max_idle: freed */
	queue_pool_put(p, NULL);
	b = queue_pool_get(p, &e);
	assert_ptr_equal(b, a);
	assert_int_equal(queue_ping(b, &e), 0);
	queue_pool_put(p, b);
	queue_pool_free(p);
	queue_pool_free(NULL);
}

/* ---- Redis unreachable ------------------------------------------------------ */

static double since(int64_t t0)
{
	return (double)(clock_mono_us() - t0) / 1e6;
}

/* Nothing listens: the first get tries and fails, the gets after it within
 * QUEUE_POOL_RETRY_MS fail without trying; then it tries again. */
static void test_pool_fail_fast_refused(void **state)
{
	struct queue_pool *p;
	struct queue_opts o;
	struct err e;

	(void)state;
	srv_opts(&o); /* srv_port: nothing started on it */
	p = queue_pool_new(&o, 0);
	assert_fails_null(queue_pool_get(p, &e), &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "cannot connect"));
	assert_fails_null(queue_pool_get(p, &e), &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "redis is unavailable"));
	clock_sleep_us((QUEUE_POOL_RETRY_MS + 100) * 1000);
	assert_null(queue_pool_get(p, &e));
	assert_non_null(strstr(e.msg, "cannot connect"));
	queue_pool_free(p);
}

/* A frozen server (SIGSTOP: connects are accepted, nothing answers) costs
 * one command timeout; the gets after it fail at once instead of each
 * waiting it out (idle connections included), a reconnect past that
 * window costs one more and opens the connect window, and all is well
 * once the server runs again. */
static void test_pool_fail_fast_frozen(void **state)
{
	struct queue_pool *p;
	struct queue_opts o;
	struct queue *q, *q2;
	struct err e;
	int64_t t0;
	int i;

	(void)state;
	srv_start();
	srv_opts(&o);
	o.connect_timeout_s = 0.5;
	o.command_timeout_s = 0.3;
	p = queue_pool_new(&o, 0);
	q = queue_pool_get(p, &e);
	q2 = queue_pool_get(p, &e);
	assert_non_null(q);
	assert_non_null(q2);
	queue_pool_put(p, q);
	queue_pool_put(p, q2);

	assert_int_equal(kill(srv_pid, SIGSTOP), 0);
	/* the idle connection is handed out and times out once */
	q = queue_pool_get(p, &e);
	assert_non_null(q);
	t0 = clock_mono_us();
	assert_int_equal(queue_ping(q, &e), -1);
	assert_true(since(t0) >= 0.25);
	queue_pool_put(p, q);
	/* unanswered: no get asks the server for a while, not even with the
	 * other idle connection, which looks alive */
	t0 = clock_mono_us();
	assert_null(queue_pool_get(p, &e));
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "did not answer"));
	assert_true(since(t0) < 0.1);
	/* past the window, one get probes with that connection */
	clock_sleep_us((QUEUE_POOL_RETRY_MS + 50) * 1000);
	q = queue_pool_get(p, &e);
	assert_non_null(q);
	assert_int_equal(queue_ping(q, &e), -1);
	queue_pool_put(p, q);
	clock_sleep_us((QUEUE_POOL_RETRY_MS + 50) * 1000);
	/* the next get reconnects, which times out too, and opens the window */
	t0 = clock_mono_us();
	assert_fails_null(queue_pool_get(p, &e), &e, ERR_UNAVAILABLE);
	assert_true(since(t0) >= 0.25);
	/* inside the window: no network, no waiting */
	for (i = 0; i < 20; i++) {
		t0 = clock_mono_us();
		assert_fails_null(queue_pool_get(p, &e), &e, ERR_UNAVAILABLE);
		assert_non_null(strstr(e.msg, "redis is unavailable"));
		assert_true(since(t0) < 0.1);
	}
	assert_int_equal(kill(srv_pid, SIGCONT), 0);
	clock_sleep_us((QUEUE_POOL_RETRY_MS + 100) * 1000);
	q = queue_pool_get(p, &e);
	assert_non_null(q);
	assert_int_equal(queue_ping(q, &e), 0);
	queue_pool_put(p, q);
	queue_pool_free(p);
	queue_opts_release(&o);
	srv_stop();
}

/* After a restart the stale idle connection fails one request at most;
 * the pool reconnects it and carries on. */
static void test_pool_restart(void **state)
{
	struct queue_pool *p;
	struct queue_opts o;
	struct queue *q;
	struct err e;
	int failures = 0, ok = 0, i;

	(void)state;
	srv_start();
	srv_opts(&o);
	p = queue_pool_new(&o, 0);
	q = queue_pool_get(p, &e);
	assert_non_null(q);
	assert_int_equal(queue_ping(q, &e), 0);
	queue_pool_put(p, q);

	srv_stop();
	srv_start();
	for (i = 0; i < 100 && !ok; i++) {
		q = queue_pool_get(p, &e);
		if (q && queue_ping(q, &e) == 0)
			ok = 1;
		else
			failures++;
		queue_pool_put(p, q);
		if (!ok)
			clock_sleep_us(30000);
	}
	assert_true(ok);
	assert_true(failures <= 1);
	queue_pool_free(p);
	queue_opts_release(&o);
	srv_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_threads),
		cmocka_unit_test(test_pool_max_idle),
		cmocka_unit_test_setup_teardown(test_pool_fail_fast_refused, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_pool_fail_fast_frozen, srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_pool_restart, srv_setup, srv_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
