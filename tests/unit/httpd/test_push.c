/* Unit tests of httpd's pushed streams (httpd_respond_push, the API's
 * event streams), in pool mode and thread-per-connection mode, over
 * loopback with a raw socket client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/clock.h"
#include "httpd/httpd.h"
#include "testhttpd.h"
#include "../unit.h"

static _Atomic(struct httpd_push *) pushed;

static void handle(struct httpd_request *req, void *ctx)
{
	(void)ctx;
	atomic_store(&pushed, httpd_respond_push(req, 200, "text/event-stream"));
}

/* Reads from `fd` until `want` has arrived (5 s at most); 1 when it did. */
static int read_until(int fd, const char *want)
{
	struct timeval tv = { 5, 0 };
	char got[4096];
	size_t n = 0;
	ssize_t r;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (n < sizeof(got) - 1 && (r = recv(fd, got + n, sizeof(got) - 1 - n, 0)) > 0) {
		n += (size_t)r;
		got[n] = '\0';
		if (strstr(got, want))
			return 1;
	}
	return 0;
}

/* A write reaches the client; once the client has gone, writes fail
 * (-1) within seconds: the API's event hub drops a stream's watcher on
 * that alone, at its next ping or message. */
static void test_push_gone(void **state)
{
	struct httpd_opts o = { .allow_push = 1 };
	struct httpd *h = start_httpd(&o, tpc_of(state), handle);
	struct httpd_push *p = NULL;
	int fd, i, rc = 0;

	atomic_store(&pushed, NULL);
	fd = dial(httpd_port(h), 1);
	say(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
	for (i = 0; i < 500 && !(p = atomic_load(&pushed)); i++)
		clock_sleep_us(10000);
	assert_non_null(p);
	assert_int_equal(httpd_push_write(p, "one\n", 4), 0);
	assert_true(read_until(fd, "one\n"));
	close(fd);
	for (i = 0; i < 500 && (rc = httpd_push_write(p, "two\n", 4)) == 0; i++)
		clock_sleep_us(10000);
	assert_int_equal(rc, -1);
	httpd_push_end(p);
	httpd_stop(h);
}

UNIT_MAIN(
		BOTH_MODES(test_push_gone),
)
