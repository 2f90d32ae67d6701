/* Unit tests of internal/wake against an in-process HTTP server (the
 * httpd module on loopback) playing the worker's /wake and the GCE
 * metadata server's identity endpoint (the tokens themselves are
 * fetch's: tests/unit/fetch/test_fetch_gcp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "httpd/httpd.h"
#include "wake/wake.h"
#include "../unit.h"

static atomic_int wakes, meta;
static int wake_status = 200;
static double hold_s;
static char last_auth[2048];
static char last_aud[512];

/* header {"alg":"none"}, payload {"aud":"a","exp":4102444800} (2100-01-01) */
#define JWT "eyJhbGciOiJub25lIn0.eyJhdWQiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln"

static void handle(struct httpd_request *req, void *ctx)
{
	const char *path = httpd_path(req);

	(void)ctx;
	if (!strcmp(path, "/wake")) {
		const char *a = httpd_header(req, "Authorization");

		snprintf(last_auth, sizeof(last_auth), "%s", a ? a : "");
		atomic_fetch_add(&wakes, 1);
		if (hold_s > 0)
			clock_sleep_us((int64_t)(hold_s * 1e6));
		httpd_respond(req, (unsigned)wake_status, "application/json",
			      "{\"drain\":{\"done\":1}}", 20);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/identity")) {
		const char *f = httpd_header(req, "Metadata-Flavor");
		const char *aud = httpd_query(req, "audience");

		if (!f || strcmp(f, "Google")) {
			httpd_respond(req, 403, "text/plain", "no flavor", 9);
			return;
		}
		snprintf(last_aud, sizeof(last_aud), "%s", aud ? aud : "");
		atomic_fetch_add(&meta, 1);
		httpd_respond(req, 200, "text/plain", JWT "\n", sizeof(JWT));
		return;
	}
	httpd_error(req, 404, "not_found", "no");
}

static struct httpd *srv;
static char base[64];

static int setup(void **state)
{
	struct httpd_opts o = { 0 };
	struct err e;

	(void)state;
	o.host = "127.0.0.1";
	o.thread_per_connection = 1;
	srv = httpd_start(&o, handle, NULL, &e);
	if (!srv)
		return -1;
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", httpd_port(srv));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	httpd_stop(srv);
	return 0;
}

static void test_once(void **state)
{
	char url[128], *body = (char *)"untouched";
	struct err e;
	int st;

	(void)state;
	snprintf(url, sizeof(url), "%s/wake", base);
	wake_status = 200;
	hold_s = 0;
	assert_int_equal(wake_once(url, "tok", 5, &st, NULL, &e), 0);
	assert_int_equal(st, 200);
	assert_string_equal(last_auth, "Bearer tok");
	/* a held wake that ends: its answer (the drain summary) comes back */
	hold_s = 0.3;
	assert_int_equal(wake_once(url, NULL, 5, &st, &body, &e), 0);
	assert_int_equal(st, 200);
	assert_string_equal(body, "{\"drain\":{\"done\":1}}");
	free(body);
	body = (char *)"untouched";
	wake_status = 401;
	hold_s = 0;
	assert_fails(wake_once(url, NULL, 5, &st, &body, &e), &e, ERR_AUTH);
	assert_string_equal(body, "untouched");
	wake_status = 200;
	/* held open by a draining worker: sent, then timed out = woken */
	hold_s = 1.5;
	assert_int_equal(wake_once(url, NULL, 0.5, &st, &body, &e), 0);
	assert_int_equal(st, 0);
	assert_null(body);
	hold_s = 0;
	assert_fails(wake_once("http://127.0.0.1:1/wake", NULL, 2, &st, NULL, &e),
	             &e, ERR_UNAVAILABLE);
	assert_fails(wake_once("ftp://x/wake", NULL, 2, &st, NULL, &e), &e, ERR_INVALID);
}

static void test_waker(void **state)
{
	struct wake_opts o;
	struct wake_stats st;
	struct wake *w;
	char url[128];
	struct err e;
	int before = atomic_load(&wakes), m0 = atomic_load(&meta), i;

	(void)state;
	snprintf(url, sizeof(url), "%s/wake", base);
	memset(&o, 0, sizeof(o));
	o.url = url;
	o.auth = WAKE_AUTH_GOOGLE;
	setenv("GCE_METADATA_HOST", base + 7, 1); /* fetch_gcp_id_token asks it */
	wake_status = 200;
	hold_s = 1;
	w = wake_new(&o, &e);
	assert_non_null(w);
	for (i = 0; i < 10; i++)
		wake_notify(w, 0); /* one in flight: the rest only leave a note */
	wake_notify(w, 1);         /* a live worker: nothing */
	clock_sleep_us(500000);
	assert_int_equal(atomic_load(&wakes) - before, 1);
	wake_get_stats(w, &st);
	assert_true(st.sent == 1);
	assert_int_equal(st.in_flight, 1);
	assert_string_equal(last_auth, "Bearer " JWT);
	assert_int_equal(atomic_load(&meta) - m0, 1);
	assert_string_equal(last_aud, base); /* the origin of the URL */
	wake_free(w); /* drops the held transfer */
	hold_s = 0;
	assert_fails_null(wake_new(&(struct wake_opts){ .url = "nope" }, &e), &e, ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once),
		cmocka_unit_test(test_waker),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
