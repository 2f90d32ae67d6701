/* testhttpd.h - what the httpd unit tests share: each case runs in both
 * ways httpd serves, a thread pool (the API) and a thread per connection
 * (the worker), and talks to the server over loopback through a raw
 * socket, so that every byte and every close is the case's own.
 * Header-only, each test program includes it once. */
#ifndef WAKEQ_TESTHTTPD_H
#define WAKEQ_TESTHTTPD_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "httpd/httpd.h"

static int testhttpd_tpc[2] = { 0, 1 };

/* The two cmocka tests of F: NAME_pool and NAME_thread_per_connection. F
 * reads its mode with tpc_of(state). */
#define BOTH_MODES(f)                                                          \
	{ .name = #f "_pool", .test_func = f, .initial_state = &testhttpd_tpc[0] }, \
	{ .name = #f "_thread_per_connection", .test_func = f,                 \
	  .initial_state = &testhttpd_tpc[1] }

/* 1 in thread-per-connection mode, 0 in pool mode. */
static int tpc_of(void **state)
{
	return *(int *)*state;
}

/* Starts httpd on 127.0.0.1 in mode `tpc`, with `handle` and the rest of
 * `o` (2 threads and bodies of 1000 bytes unless it says otherwise). */
static struct httpd *start_httpd(struct httpd_opts *o, int tpc, httpd_handler handle)
{
	struct httpd *h;
	struct err e;

	o->host = "127.0.0.1";
	o->thread_per_connection = tpc;
	if (!o->threads)
		o->threads = 2;
	if (!o->max_body)
		o->max_body = 1000;
	h = httpd_start(o, handle, NULL, &e);
	if (!h)
		fail_msg("%s", e.msg);
	return h;
}

/* A connection to the server on `port` from 127.0.0.`from`. */
static int dial(int port, int from)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)from);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Sends all of `s`. */
static void say(int fd, const char *s)
{
	assert_true(send(fd, s, strlen(s), MSG_NOSIGNAL) == (ssize_t)strlen(s));
}

#endif
