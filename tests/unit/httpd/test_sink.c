/* Unit tests of httpd's streamed bodies (httpd_sink), in pool mode (the
 * API) and thread-per-connection mode (the worker), over loopback with a
 * raw socket client so Content-Length, chunked bodies and early closes are
 * exactly what each case needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/clock.h"
#include "httpd/httpd.h"
#include "testhttpd.h"
#include "../unit.h"

#define CAP 200000

struct sinkctx {
	uint64_t sum, bytes;
};

static atomic_int released, handled, writes;
static atomic_int fail_after;               /* write fails once past this; 0 = never */
static enum httpd_sink_result last_res;
static uint64_t last_bytes, last_sum;
static size_t last_buffered;

static int sink_write(void *ctx, const char *data, size_t len)
{
	struct sinkctx *s = ctx;
	size_t i;

	atomic_fetch_add(&writes, 1);
	if (atomic_load(&fail_after) && s->bytes + len > (uint64_t)atomic_load(&fail_after))
		return -1;
	for (i = 0; i < len; i++)
		s->sum += (unsigned char)data[i];
	s->bytes += len;
	return 0;
}

static void sink_release(void *ctx)
{
	free(ctx);
	atomic_fetch_add(&released, 1);
}

static int sink_for(struct httpd_request *req, void *ctx, struct httpd_sink *sink)
{
	(void)ctx;
	if (!strcmp(httpd_path(req), "/refuse")) {
		httpd_error(req, 401, "unauthorized", "no");
		return 0;
	}
	if (strcmp(httpd_path(req), "/sink"))
		return 0;
	sink->write = sink_write;
	sink->release = sink_release;
	sink->ctx = calloc(1, sizeof(struct sinkctx));
	sink->max = CAP;
	return 1;
}

static void handle(struct httpd_request *req, void *ctx)
{
	void *sc = NULL;

	(void)ctx;
	atomic_fetch_add(&handled, 1);
	last_res = httpd_sink_result(req, &last_bytes, &sc);
	last_sum = sc ? ((struct sinkctx *)sc)->sum : 0;
	httpd_body(req, &last_buffered);
	if (last_res == HTTPD_SINK_TOO_LARGE) {
		httpd_error(req, 413, "too_large", "over");
		return;
	}
	if (last_res == HTTPD_SINK_FAILED) {
		httpd_error(req, 507, "full", "no room");
		return;
	}
	httpd_respond(req, 201, "text/plain", "ok", 2);
}

static struct httpd *start(int tpc)
{
	struct httpd_opts o = { .allow_push = !tpc, .sink_for = sink_for };
	struct httpd *h = start_httpd(&o, tpc, handle);

	atomic_store(&released, 0);
	atomic_store(&handled, 0);
	atomic_store(&writes, 0);
	atomic_store(&fail_after, 0);
	return h;
}

/* Sends `head`, then `n` bytes of body (pattern byte i%251), chunked in
 * 8 KiB chunks when `chunked`; reads the answer's status (0 when the
 * connection closed without one). */
static int exchange(int port, const char *head, size_t n, int chunked)
{
	struct timeval tv = { 5, 0 };
	char buf[8192 + 32], resp[512];
	size_t off = 0, got = 0;
	int fd = dial(port, 1), status = 0;
	ssize_t r;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, head, strlen(head), MSG_NOSIGNAL) < 0)
		goto read;
	while (off < n) {
		size_t k = n - off < 8192 ? n - off : 8192, i, h = 0;

		if (chunked)
			h = (size_t)snprintf(buf, sizeof(buf), "%zx\r\n", k);
		for (i = 0; i < k; i++)
			buf[h + i] = (char)((off + i) % 251);
		if (chunked) {
			memcpy(buf + h + k, "\r\n", 2);
			k += 2;
		}
		if (send(fd, buf, h + k, MSG_NOSIGNAL) < 0)
			goto read;
		off += k - (chunked ? 2 : 0);
	}
	if (chunked && send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL) < 0)
		goto read;
read:
	while (got < sizeof(resp) - 1 && (r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
		got += (size_t)r;
	resp[got] = '\0';
	close(fd);
	if (got > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
		status = atoi(resp + 9);
	return status;
}

static uint64_t pattern_sum(size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += (unsigned char)(i % 251);
	return s;
}

static void wait_released(int want)
{
	int i;

	for (i = 0; i < 200 && atomic_load(&released) < want; i++)
		clock_sleep_us(10000);
	assert_int_equal(atomic_load(&released), want);
}

static void test_sink(void **state)
{
	int tpc = tpc_of(state);
	struct httpd *h = start(tpc);
	int port = httpd_port(h), st;
	char head[256];

	/* whole body with a length: streamed, not buffered (max_body is 1000) */
	snprintf(head, sizeof(head),
		 "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		 150000);
	st = exchange(port, head, 150000, 0);
	assert_int_equal(st, 201);
	assert_int_equal(last_res, HTTPD_SINK_OK);
	assert_int_equal(last_bytes, 150000);
	assert_true(last_sum == pattern_sum(150000));
	assert_int_equal(last_buffered, 0);
	wait_released(1);

	/* chunked, under the cap */
	st = exchange(port, "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n", 120000, 1);
	assert_int_equal(st, 201);
	assert_int_equal(last_bytes, 120000);
	assert_true(last_sum == pattern_sum(120000));
	wait_released(2);

	/* Content-Length over the cap: 413 before any byte is written */
	atomic_store(&writes, 0);
	snprintf(head, sizeof(head),
		 "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		 CAP + 1);
	st = exchange(port, head, 0, 0);
	assert_int_equal(st, 413);
	assert_int_equal(last_res, HTTPD_SINK_TOO_LARGE);
	assert_int_equal(atomic_load(&writes), 0);
	wait_released(3);

	/* chunked over the cap: stopped there, never a success */
	atomic_store(&handled, 0);
	st = exchange(port, "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n", 3 * CAP, 1);
	assert_int_not_equal(st, 201);
	wait_released(4);
	assert_int_equal(atomic_load(&handled), 1);
	assert_int_equal(last_res, HTTPD_SINK_TOO_LARGE);
	assert_true(last_bytes <= CAP);

	/* a failing sink */
	atomic_store(&fail_after, 50000);
	snprintf(head, sizeof(head),
		 "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		 100000);
	st = exchange(port, head, 100000, 0);
	assert_int_not_equal(st, 201);
	wait_released(5);
	assert_int_equal(last_res, HTTPD_SINK_FAILED);
	assert_true(last_bytes <= 50000);
	atomic_store(&fail_after, 0);

	/* refused by sink_for: answered, no handler, no sink */
	atomic_store(&handled, 0);
	st = exchange(port, "POST /refuse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			    "Content-Length: 10\r\n\r\n", 10, 0);
	assert_int_equal(st, 401);
	assert_int_equal(atomic_load(&handled), 0);

	/* other routes buffer as before */
	st = exchange(port, "POST /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			    "Content-Length: 500\r\n\r\n", 500, 0);
	assert_int_equal(st, 201);
	assert_int_equal(last_res, HTTPD_SINK_NONE);
	assert_int_equal(last_buffered, 500);
	st = exchange(port, "POST /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			    "Content-Length: 5000\r\n\r\n", 0, 0);
	assert_int_equal(st, 413);

	/* client gone mid-body: no handler, the sink is released */
	atomic_store(&handled, 0);
	snprintf(head, sizeof(head),
		 "POST /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		 100000);
	{
		int fd = dial(port, 1);
		char part[4096];

		memset(part, 'x', sizeof(part));
		say(fd, head);
		assert_true(send(fd, part, sizeof(part), MSG_NOSIGNAL) > 0);
		clock_sleep_us(100000);
		close(fd);
	}
	wait_released(6);
	assert_int_equal(atomic_load(&handled), 0);
	httpd_stop(h);
}

UNIT_MAIN(
		BOTH_MODES(test_sink),
)
