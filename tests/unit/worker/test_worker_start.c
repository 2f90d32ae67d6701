/* Unit tests of worker_start/worker_free (internal/worker/worker.c): a
 * start that fails half-way (the port is taken after the slot and
 * heartbeat threads run) joins what it started and frees nothing still in
 * use. Needs no Redis: a worker connects only when a drain runs. Run it
 * under `make SANITIZE=1` as well, where a use after free aborts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "worker/worker.h"
#include "../unit.h"

static struct worker_config config(int port)
{
	struct worker_config c;

	memset(&c, 0, sizeof(c));
	c.host = (char *)"127.0.0.1";
	c.port = port;
	c.redis_url = (char *)"redis://127.0.0.1:1";
	c.database_url = (char *)"";
	c.queues = (char *)"default";
	c.concurrency = 4;
	c.batch = 8;
	c.idle_timeout = 1;
	c.exit_on_idle = 1;
	c.lease = 1;
	c.job_timeout = 10;
	c.shutdown_grace = 1;
	c.wake_max = 10;
	c.wake_token = (char *)"";
	c.backoff_base = 1;
	c.backoff_cap = 10;
	c.result_ttl = 60;
	c.worker_id = (char *)"";
	return c;
}

/* Threads of this process, from /proc/self/status. */
static int threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Whether the thread count comes back to n within a second (a joined
 * thread may linger in /proc for a moment). */
static int threads_back_to(int n)
{
	int64_t until = clock_mono_us() + 1000000;

	while (threads() != n) {
		if (clock_mono_us() > until)
			return 0;
		clock_sleep_us(10000);
	}
	return 1;
}

static void test_port_taken(void **state)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	struct worker_config c;
	struct worker *w;
	struct err e;
	int fd, n0;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);

	n0 = threads();
	c = config(ntohs(a.sin_port));
	err_clear(&e);
	w = worker_start(&c, &e);
	assert_null(w);
	assert_non_null(strstr(e.msg, "cannot listen"));
	/* The slot and heartbeat threads it had started are gone. */
	assert_true(threads_back_to(n0));
	/* And nothing runs on in freed memory meanwhile (ASan would stop
	 * here: the heartbeat ticks every 100 ms). */
	clock_sleep_us(250000);
	assert_int_equal(threads(), n0);
	close(fd);
}

static void test_start_free(void **state)
{
	struct worker_config c = config(0);
	struct worker *w;
	struct err e;
	int n0 = threads();

	(void)state;
	w = worker_start(&c, &e);
	assert_non_null(w);
	assert_true(worker_port(w) > 0);
	assert_true(threads() > n0);
	worker_free(w);
	assert_true(threads_back_to(n0));
}

static void test_bad_config(void **state)
{
	struct worker_config c = config(0);
	struct err e;
	int n0 = threads();

	(void)state;
	c.queues = (char *)"a b";
	assert_null(worker_start(&c, &e));
	assert_non_null(strstr(e.msg, "bad QUEUES"));
	assert_int_equal(threads(), n0);
}

UNIT_MAIN(
		cmocka_unit_test(test_port_taken),
		cmocka_unit_test(test_start_free),
		cmocka_unit_test(test_bad_config),
)
