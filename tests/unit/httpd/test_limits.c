/* Unit tests of httpd's connection limits (httpd.h, "Floods"), in pool mode
 * (the API) and thread-per-connection mode (the worker), over loopback
 * with raw sockets: the header and body deadlines are not extended by
 * trickled bytes, a request in its handler is never cut, a keep-alive
 * connection waits header_timeout at most, waiting connections past
 * max_connections - reserve are closed oldest first while a new client is
 * served, one address holds per_ip_connections at most, and a streamed
 * body (sink) is not bound by the body deadline. Peers other than
 * 127.0.0.1 are other loopback addresses (127.0.0.2 ...). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "httpd/httpd.h"
#include "testhttpd.h"
#include "../unit.h"

static atomic_int handled;

static int sink_write(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

static int sink_for(struct httpd_request *req, void *ctx, struct httpd_sink *sink)
{
	(void)ctx;
	if (strcmp(httpd_path(req), "/sink"))
		return 0;
	memset(sink, 0, sizeof(*sink));
	sink->write = sink_write;
	return 1;
}

static void handle(struct httpd_request *req, void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&handled, 1);
	if (!strcmp(httpd_path(req), "/slow"))
		clock_sleep_us(1200000); /* longer than both deadlines */
	httpd_respond(req, 200, "text/plain", "ok", 2);
}

/* Deadlines of 0.5 s, or 10 s when `patient` (tests of other limits). */
static struct httpd *start(int tpc, unsigned max, unsigned reserve, unsigned per_ip,
			   int patient)
{
	struct httpd_opts o = {
		.max_connections = max,
		.reserve = reserve,
		.per_ip_connections = per_ip,
		.header_timeout_s = patient ? 10 : 0.5,
		.body_timeout_s = patient ? 10 : 0.5,
		.sink_for = sink_for,
	};
	struct httpd *h = start_httpd(&o, tpc, handle);

	atomic_store(&handled, 0);
	return h;
}

/* Whether the server has closed `fd` (EOF or reset) within `ms`; an answer
 * read on the way is dropped. */
static int closed_within(int fd, int ms)
{
	int64_t end = clock_mono_us() + (int64_t)ms * 1000;
	char buf[512];

	for (;;) {
		int64_t left = (end - clock_mono_us()) / 1000;
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		if (left < 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r <= 0)
			return 1;
	}
}

/* Reads one answer on `fd` (within 2 s); returns its status or 0. */
static int answer(int fd)
{
	char buf[1024];
	size_t got = 0;
	int64_t end = clock_mono_us() + 2000000;

	while (got < sizeof(buf) - 1 && clock_mono_us() < end) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\nok"))
			break;
	}
	buf[got] = '\0';
	return got > 12 && !strncmp(buf, "HTTP/1.1 ", 9) ? atoi(buf + 9) : 0;
}

/* Trickles `s` one byte each `every_ms`; returns the ms until the server
 * closed the connection, or -1 when the whole of `s` went out first. */
static int trickle(int fd, const char *s, int every_ms)
{
	int64_t t0 = clock_mono_us();

	for (; *s; s++) {
		if (send(fd, s, 1, MSG_NOSIGNAL) < 0 ||
		    (s[1] && closed_within(fd, every_ms)))
			return (int)((clock_mono_us() - t0) / 1000);
	}
	return -1;
}

static void test_deadlines(void **state)
{
	int tpc = tpc_of(state);
	struct httpd *h = start(tpc, 64, 4, 0, 0);
	int port = httpd_port(h), fd, ms;

	/* headers trickled a byte every 100 ms: closed at the deadline
	 * (0.5 s), not kept alive by each byte */
	fd = dial(port, 1);
	ms = trickle(fd, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 100);
	assert_true(ms >= 400 && ms <= 1000);
	close(fd);

	/* an idle connection: the same deadline */
	fd = dial(port, 1);
	assert_false(closed_within(fd, 350));
	assert_true(closed_within(fd, 650));
	close(fd);

	/* a body trickled: closed at the body deadline, no handler */
	fd = dial(port, 1);
	say(fd, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
	ms = trickle(fd, "0123456789012345678901234567890123456789", 100);
	assert_true(ms >= 400 && ms <= 1000);
	assert_int_equal(atomic_load(&handled), 0);
	close(fd);

	/* a request in its handler is never cut by the deadlines */
	fd = dial(port, 1);
	say(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(answer(fd), 200);
	/* keep-alive: the next request is due within the header deadline
	 * from the answer, then the connection is closed */
	say(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(answer(fd), 200);
	assert_false(closed_within(fd, 350));
	assert_true(closed_within(fd, 650));
	close(fd);

	/* a streamed body (sink) is bound by its cap and the idle timeout,
	 * not by the body deadline */
	fd = dial(port, 1);
	say(fd, "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
	assert_int_equal(trickle(fd, "0123456789", 100), -1);
	assert_int_equal(answer(fd), 200);
	close(fd);
	httpd_stop(h);
}

static void test_reserve(void **state)
{
	int tpc = tpc_of(state);
	/* 20 connections, 4 reserved: 16 may wait for their request */
	struct httpd *h = start(tpc, 20, 4, 0, 1);
	int port = httpd_port(h), fds[40], i, closed = 0, fd;

	for (i = 0; i < 40; i++) {
		fds[i] = dial(port, 2 + i % 8);
		clock_sleep_us(2000); /* accepted in this order */
	}
	clock_sleep_us(100000);
	/* 16 are kept, the oldest closed (the newest 8 surely kept: accepts
	 * by two threads may swap neighbours) */
	for (i = 0; i < 40; i++) {
		int c = closed_within(fds[i], 100);

		closed += c;
		if (i >= 32)
			assert_false(c);
	}
	assert_int_equal(closed, 24);
	/* a new client is served at once, every time */
	for (i = 0; i < 5; i++) {
		fd = dial(port, 1);
		say(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
		assert_int_equal(answer(fd), 200);
		close(fd);
	}
	for (i = 0; i < 40; i++)
		close(fds[i]);
	httpd_stop(h);
}

static void test_per_ip(void **state)
{
	int tpc = tpc_of(state);
	struct httpd *h = start(tpc, 64, 4, 5, 1);
	int port = httpd_port(h), fds[10], i, closed = 0, fd;

	for (i = 0; i < 10; i++)
		fds[i] = dial(port, 2);
	for (i = 0; i < 10; i++)
		closed += closed_within(fds[i], 200);
	assert_int_equal(closed, 5);
	fd = dial(port, 1);
	say(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(answer(fd), 200);
	close(fd);
	for (i = 0; i < 10; i++)
		close(fds[i]);
	httpd_stop(h);
}

UNIT_MAIN(
		BOTH_MODES(test_deadlines),
		BOTH_MODES(test_reserve),
		BOTH_MODES(test_per_ip),
)
