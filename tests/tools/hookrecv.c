/* hookrecv - a webhook receiver on loopback for the tests: verifies the
 * X-Wakeq-Signature of every POST with the shared secret, the way a
 * customer's endpoint would (docs/WEBHOOKS.md), and reports what it got.
 *
 *   hookrecv SECRET [FAIL_FIRST]
 *
 * Prints its port on the first line, then serves:
 *   POST /hook   answers 503 to the first FAIL_FIRST deliveries, 200 after
 *   GET  /last   {"count":N,"verified":V,"body":{...last body...}}
 * Runs until killed. */
#include "base/clock.h"
#include "httpd/httpd.h"
#include "fakeserve.h"
#include "webhook/webhook.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *secret;
static int fail_first, count, verified;
static json_t *last;

static void handle(struct httpd_request *req, void *ctx)
{
	(void)ctx;
	if (!strcmp(httpd_path(req), "/hook") && !strcmp(httpd_method(req), "POST")) {
		size_t len;
		const char *body = httpd_body(req, &len);
		const char *sig = httpd_header(req, "X-Wakeq-Signature");
		struct err e;
		int ok, n;

		ok = sig && webhook_verify(secret, sig, body, len, clock_now_us() / 1000000, 300, &e) == 0;
		pthread_mutex_lock(&lock);
		n = ++count;
		verified += ok;
		json_decref(last);
		last = json_loadb(body, len, 0, NULL);
		pthread_mutex_unlock(&lock);
		if (n <= fail_first)
			httpd_error(req, 503, "unavailable", "try again");
		else
			httpd_respond_json(req, ok ? 200 : 401, json_pack("{s:b}", "ok", ok));
		return;
	}
	if (!strcmp(httpd_path(req), "/last")) {
		pthread_mutex_lock(&lock);
		httpd_respond_json(req, 200, json_pack("{s:i,s:i,s:O}", "count", count,
						       "verified", verified, "body",
						       last ? last : json_null()));
		pthread_mutex_unlock(&lock);
		return;
	}
	httpd_error(req, 404, "not_found", "no route");
}

int main(int argc, char **argv)
{
	struct httpd_opts o = { 0 };

	if (argc < 2)
		return 2;
	secret = argv[1];
	fail_first = argc > 2 ? atoi(argv[2]) : 0;
	o.threads = 1;
	return fake_serve("hookrecv", &o, handle);
}
