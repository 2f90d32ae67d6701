/* Unit tests of the service account tokens in internal/fetch/gcp.c,
 * against a fake metadata server speaking the real protocol on loopback
 * (the httpd module): identity tokens per audience, access tokens per
 * scope list, both cached and renewed before they expire. */
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
#include "crypto/crypto.h"
#include "fetch/fetch.h"
#include "httpd/httpd.h"
#include "../unit.h"

static atomic_int id_asks, access_asks;
static int64_t ttl_s = 3600;     /* lifetime of the tokens handed out */
static int fail_status;          /* answer this instead, 0 = none */
static char last_aud[512], last_scopes[512];

static void b64url(const char *in, char *out)
{
	char std[1024];
	size_t n = crypto_base64_encode(in, strlen(in), std), i, o = 0;

	for (i = 0; i < n; i++) {
		if (std[i] == '=')
			break;
		out[o++] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];
	}
	out[o] = '\0';
}

/* GET .../identity?audience=A&format=full: a JWT {aud, exp}; GET
 * .../token?scopes=S: {"access_token","expires_in","token_type"}; both
 * want "Metadata-Flavor: Google" (403 otherwise, as Google's does). */
static void fake_metadata(struct httpd_request *req, void *ctx)
{
	const char *path = httpd_path(req), *f = httpd_header(req, "Metadata-Flavor");
	char payload[1024], seg[1500], body[2048];
	int n;

	(void)ctx;
	if (!f || strcmp(f, "Google")) {
		httpd_respond(req, 403, "text/html", "Missing Metadata-Flavor:Google header.", 38);
		return;
	}
	if (fail_status) {
		httpd_respond(req, (unsigned)fail_status, "text/plain", "no", 2);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/identity")) {
		const char *aud = httpd_query(req, "audience");

		snprintf(last_aud, sizeof(last_aud), "%s", aud ? aud : "");
		n = atomic_fetch_add(&id_asks, 1) + 1;
		snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"exp\":%lld,\"n\":%d}",
			 last_aud, (long long)(clock_now_us() / 1000000 + ttl_s), n);
		b64url(payload, seg);
		n = snprintf(body, sizeof(body), "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", seg);
		httpd_respond(req, 200, "text/html", body, (size_t)n);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/token")) {
		const char *sc = httpd_query(req, "scopes");

		snprintf(last_scopes, sizeof(last_scopes), "%s", sc ? sc : "");
		n = atomic_fetch_add(&access_asks, 1) + 1;
		n = snprintf(body, sizeof(body), "{\"access_token\":\"ya29.fake-%d\","
			     "\"expires_in\":%lld,\"token_type\":\"Bearer\"}", n, (long long)ttl_s);
		httpd_respond(req, 200, "application/json", body, (size_t)n);
		return;
	}
	httpd_respond(req, 404, "text/plain", "not found", 9);
}

static struct httpd *srv;

static int setup(void **state)
{
	struct httpd_opts o = { .host = "127.0.0.1", .thread_per_connection = 1 };
	char host[64];
	struct err e;

	(void)state;
	srv = httpd_start(&o, fake_metadata, NULL, &e);
	if (!srv)
		return -1;
	snprintf(host, sizeof(host), "127.0.0.1:%d", httpd_port(srv));
	setenv("GCE_METADATA_HOST", host, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	httpd_stop(srv);
	unsetenv("GCE_METADATA_HOST");
	return 0;
}

/* The aud claim of a token made by the fake. */
static void aud_of(const char *jwt, char *out, size_t n)
{
	const char *a = strchr(jwt, '.') + 1, *b = strchr(a, '.');
	char std[1500], dec[1200];
	size_t len = (size_t)(b - a), i, got = 0;
	const char *p;

	for (i = 0; i < len; i++)
		std[i] = a[i] == '-' ? '+' : a[i] == '_' ? '/' : a[i];
	while (i % 4)
		std[i++] = '=';
	assert_int_equal(crypto_base64_decode(std, i, (unsigned char *)dec, &got), 0);
	dec[got] = '\0';
	p = strstr(dec, "\"aud\":\"");
	assert_non_null(p);
	p += 7;
	snprintf(out, n, "%.*s", (int)strcspn(p, "\""), p);
}

static void test_identity(void **state)
{
	char *t1, *t2, *t3, aud[256];
	struct err e;
	int64_t exp;

	(void)state;
	fetch_gcp_tokens_forget();
	ttl_s = 3600;
	t1 = fetch_gcp_id_token("https://svc-a.example", &e);
	assert_non_null(t1);
	aud_of(t1, aud, sizeof(aud));
	assert_string_equal(aud, "https://svc-a.example");
	assert_string_equal(last_aud, "https://svc-a.example");
	exp = fetch_jwt_exp(t1);
	assert_true(exp > clock_now_us() / 1000000 + 3500);
	/* cached: the same token, no second ask */
	t2 = fetch_gcp_id_token("https://svc-a.example", &e);
	assert_string_equal(t1, t2);
	assert_int_equal(atomic_load(&id_asks), 1);
	/* another audience is another token */
	t3 = fetch_gcp_id_token("https://svc-b.example/x?y=1&z", &e);
	assert_non_null(t3);
	assert_string_equal(last_aud, "https://svc-b.example/x?y=1&z");
	aud_of(t3, aud, sizeof(aud));
	assert_string_equal(aud, "https://svc-b.example/x?y=1&z");
	assert_int_equal(atomic_load(&id_asks), 2);
	free(t1);
	free(t2);
	free(t3);
	assert_fails_null(fetch_gcp_id_token("", &e), &e, ERR_INVALID);
}

static void test_identity_renewed(void **state)
{
	char *t1, *t2, *t3;
	struct err e;
	int n0;

	(void)state;
	fetch_gcp_tokens_forget();
	/* a 2 s token is renewed after half its life (1 s), not at 5 min */
	ttl_s = 2;
	n0 = atomic_load(&id_asks);
	t1 = fetch_gcp_id_token("https://short.example", &e);
	assert_non_null(t1);
	t2 = fetch_gcp_id_token("https://short.example", &e);
	assert_string_equal(t1, t2);
	assert_int_equal(atomic_load(&id_asks) - n0, 1);
	clock_sleep_us(1200000);
	t3 = fetch_gcp_id_token("https://short.example", &e);
	assert_non_null(t3);
	assert_string_not_equal(t1, t3);
	assert_int_equal(atomic_load(&id_asks) - n0, 2);
	free(t1);
	free(t2);
	free(t3);
	ttl_s = 3600;
}

static void test_access(void **state)
{
	char *a1, *a2, *a3;
	struct err e;
	int n0;

	(void)state;
	fetch_gcp_tokens_forget();
	ttl_s = 3599;
	n0 = atomic_load(&access_asks);
	a1 = fetch_gcp_access_token(NULL, &e);
	assert_non_null(a1);
	assert_true(!strncmp(a1, "ya29.fake-", 10));
	assert_string_equal(last_scopes, FETCH_GCP_SCOPE_CLOUD);
	a2 = fetch_gcp_access_token(NULL, &e);
	assert_string_equal(a1, a2);
	assert_int_equal(atomic_load(&access_asks) - n0, 1);
	/* renewed before it expires: a token with 4 s left lasts 2 s here */
	ttl_s = 4;
	a3 = fetch_gcp_access_token("https://www.googleapis.com/auth/cloud-tasks", &e);
	assert_non_null(a3);
	assert_string_equal(last_scopes, "https://www.googleapis.com/auth/cloud-tasks");
	free(a3);
	clock_sleep_us(2100000);
	a3 = fetch_gcp_access_token("https://www.googleapis.com/auth/cloud-tasks", &e);
	assert_int_equal(atomic_load(&access_asks) - n0, 3);
	free(a1);
	free(a2);
	free(a3);
	ttl_s = 3600;
}

static void test_errors(void **state)
{
	char *t, *keep;
	struct err e;

	(void)state;
	fetch_gcp_tokens_forget();
	fail_status = 404;
	assert_fails_null(fetch_gcp_id_token("https://x.example", &e), &e, ERR_AUTH);
	assert_non_null(strstr(e.msg, "http status 404"));
	fail_status = 503;
	assert_fails_null(fetch_gcp_access_token(NULL, &e), &e, ERR_UNAVAILABLE);
	fail_status = 0;
	/* a cached token still valid outlives a metadata hiccup at renewal:
	 * 4 s of life, renewed after 2 s, kept until 1 s before it expires */
	ttl_s = 4;
	keep = fetch_gcp_id_token("https://x.example", &e);
	assert_non_null(keep);
	clock_sleep_us(2200000);
	fail_status = 503;
	t = fetch_gcp_id_token("https://x.example", &e);
	assert_non_null(t);
	assert_string_equal(t, keep);
	free(t);
	clock_sleep_us(1000000);
	assert_fails_null(fetch_gcp_id_token("https://x.example", &e), &e, ERR_UNAVAILABLE);
	fail_status = 0;
	ttl_s = 3600;
	/* no metadata server at all */
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	t = fetch_gcp_id_token("https://y.example", &e);
	assert_null(t);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	free(keep);
	{
		char host[64];

		snprintf(host, sizeof(host), "127.0.0.1:%d", httpd_port(srv));
		setenv("GCE_METADATA_HOST", host, 1);
	}
	/* not a JWT */
	assert_int_equal(fetch_jwt_exp("abc"), -1);
	assert_int_equal(fetch_jwt_exp("a.b.c"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_identity_renewed),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
