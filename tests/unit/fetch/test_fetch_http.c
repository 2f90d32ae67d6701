/* Unit tests of internal/fetch over HTTP against a real server on
 * loopback (testserver.h): downloads, size cap, status classification,
 * redirects, the address policy, PUT and S3 uploads (SigV4 checked by the
 * server), cancel, the allow-list parser and the http.request job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "job/job.h"
#include "testfetch.h"
#include "testserver.h"
#include "../unit.h"


static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int setup(void **state)
{
	(void)state;
	if (testfetch_setup("fetch-http") < 0)
		return -1;
	/* no ~/.aws, no instance metadata: s3:// keys come from the test */
	setenv("HOME", tmp, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	fetch_bind_jobs();
	return ts_start();
}

static int teardown(void **state)
{
	(void)state;
	ts_stop();
	return unit_rmtree(tmp);
}

static void test_download(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e = { 0 };
	char *b;
	FILE *f;
	int i;

	(void)state;
	if (fetch_input_open(ts_url("/file/100000"), &in, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(in.temp, 1);
	assert_int_equal(in.bytes, 100000);
	assert_true(!strncmp(in.path, tmp, strlen(tmp)));
	b = malloc(100001);
	f = fopen(in.path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(b, 1, 100001, f), 100000);
	fclose(f);
	for (i = 0; i < 100000; i++)
		if (b[i] != ts_pattern((size_t)i))
			fail_msg("byte %d differs", i);
	free(b);
	fetch_input_release(&in);
	assert_int_equal(count_files(tmp), 0); /* temp removed */

	/* chunked, no length up front */
	assert_int_equal(fetch_input_open(ts_url("/chunked/5000"), &in, NULL, &e), 0);
	assert_int_equal(in.bytes, 5000);
	fetch_input_release(&in);
}

static void expect_input_error(const char *path, enum err_code code,
			       const char *needle)
{
	struct fetch_input in = { .path = "untouched" };
	struct err e = { 0 };

	assert_int_equal(fetch_input_open(ts_url(path), &in, NULL, &e), -1);
	if (e.code != code || (needle && !strstr(e.msg, needle)))
		fail_msg("%s: want %s '%s', got %s '%s'", path, err_code_name(code),
			 needle ? needle : "", err_code_name(e.code), e.msg);
	assert_string_equal(in.path, "untouched");
	assert_int_equal(count_files(tmp), 0); /* no temp left behind */
}

static void test_size_cap(void **state)
{
	(void)state;
	job_settings.max_input_bytes = 1000;
	expect_input_error("/file/5000", ERR_TOOLARGE, "larger than 1000");
	expect_input_error("/chunked/5000", ERR_TOOLARGE, "larger than 1000");
	job_settings.max_input_bytes = 1 << 20;
}

static void test_status_classes(void **state)
{
	struct err e;

	(void)state;
	expect_input_error("/status/404", ERR_NOTFOUND, "404");
	expect_input_error("/status/403", ERR_AUTH, "403");
	expect_input_error("/status/503", ERR_UNAVAILABLE, "503");
	expect_input_error("/status/500", ERR_UNAVAILABLE, "500");
	assert_false(fetch_retryable(ERR_NOTFOUND));
	assert_true(fetch_retryable(ERR_UNAVAILABLE));
	assert_true(fetch_retryable(ERR_TIMEOUT));
	assert_int_equal(fetch_status_error(204, "x", &e), 0);
	assert_fails(fetch_status_error(429, "x", &e), &e, ERR_UNAVAILABLE);
	assert_fails(fetch_status_error(400, "x", &e), &e, ERR_INVALID);
}

static void test_redirects(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;

	(void)state;
	fetch_limits.max_redirects = 3;
	assert_int_equal(fetch_input_open(ts_url("/redirect/3"), &in, NULL, &e), 0);
	assert_int_equal(in.bytes, 7); /* "arrived" */
	fetch_input_release(&in);
	expect_input_error("/redirect/4", ERR_INVALID, "redirects");
	fetch_limits.max_redirects = 5;
}

static void test_timeout_and_unreachable(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;
	char url[64];
	int port;

	(void)state;
	fetch_limits.timeout_s = 0.3;
	expect_input_error("/slow", ERR_TIMEOUT, "timed out");
	fetch_limits.timeout_s = 10;
	/* a port nobody listens on (ours, after closing): connection refused */
	port = ts.port == 65535 ? 65534 : ts.port + 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	if (fetch_input_open(url, &in, NULL, &e) == 0)
		skip(); /* something else happens to listen there */
	assert_int_equal(e.code, ERR_UNAVAILABLE);
}

static void test_ssrf(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e = { 0 };
	char url[80];

	(void)state;
	job_settings.allow_private = "";
	expect_input_error("/file/10", ERR_INVALID, "refused address 127.0.0.1");
	/* by name too: localhost resolves to loopback */
	snprintf(url, sizeof(url), "http://localhost:%d/file/10", ts.port);
	assert_fails(fetch_input_open(url, &in, NULL, &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "refused address"));
	/* an allow list without loopback refuses it too */
	job_settings.allow_private = "10.0.0.0/8";
	expect_input_error("/file/10", ERR_INVALID, "refused address");
	assert_int_equal(fetch_input_open("http://metadata.google.internal/x", &in,
					  NULL, &e), -1);
	assert_non_null(strstr(e.msg, "metadata"));
	job_settings.allow_private = "127.0.0.1/32";
	assert_int_equal(fetch_input_open(ts_url("/file/10"), &in, NULL, &e), 0);
	fetch_input_release(&in);
	job_settings.allow_private = "loopback";
	assert_int_equal(fetch_input_open(ts_url("/file/10"), &in, NULL, &e), 0);
	fetch_input_release(&in);
	/* a bad policy refuses everything with a clear message */
	job_settings.allow_private = "loopbak";
	assert_int_equal(fetch_input_open(ts_url("/file/10"), &in, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "ALLOW_PRIVATE_NETWORKS"));
	assert_int_equal(fetch_check_settings(&e), -1);
	job_settings.allow_private = "loopback";
	assert_int_equal(fetch_check_settings(&e), 0);
}

/* A request's own policy (the CLI's call to an API URL the operator gave)
 * replaces the jobs' one for that request only. */
static void test_request_policy(void **state)
{
	struct fetch_request req = { 0 };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct err e = { 0 };

	(void)state;
	job_settings.allow_private = "";
	req.url = ts_url("/file/10");
	assert_int_equal(fetch_http(&req, &resp, &e), -1);
	assert_non_null(strstr(e.msg, "refused address 127.0.0.1"));
	req.allow_private = "all";
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.body.len, 10);
	/* the jobs' policy is untouched */
	req.allow_private = NULL;
	assert_int_equal(fetch_http(&req, &resp, &e), -1);
	req.allow_private = "loopbak";
	assert_int_equal(fetch_http(&req, &resp, &e), -1);
	assert_non_null(strstr(e.msg, "loopbak"));
	fetch_response_release(&resp);
	job_settings.allow_private = "loopback";
}

static void test_cancel(void **state)
{
	struct fetch_input in = { .path = "" };
	struct err e;
	atomic_int cancel = 1;

	(void)state;
	assert_fails(fetch_input_open(ts_url("/slow"), &in, &cancel, &e), &e, ERR_CANCELLED);
	assert_int_equal(count_files(tmp), 0);
}

static void test_put_upload(void **state)
{
	struct fetch_output out = { .path = "" };
	struct err e = { 0 };
	char *data = malloc(300000);
	FILE *f;
	int i;

	(void)state;
	for (i = 0; i < 300000; i++)
		data[i] = (char)(rand() & 0xff);
	assert_int_equal(fetch_output_prepare(ts_url("/put/out.mp4?X-Sig=secret"),
					      &out, &e), 0);
	assert_null(strstr(out.path, "?"));
	assert_non_null(strstr(out.path, ".mp4"));
	f = fopen(out.path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, 300000, f), 300000);
	fclose(f);
	if (fetch_output_commit(&out, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(ts.last_method, "PUT");
	assert_int_equal(ts.put.len, 300000);
	assert_memory_equal(ts.put.data, data, 300000);
	fetch_output_release(&out);
	assert_int_equal(count_files(tmp), 0);

	/* a refused upload keeps nothing and hides the presigned query */
	assert_int_equal(fetch_output_prepare(ts_url("/status/403?X-Sig=secret"),
					      &out, &e), 0);
	assert_fails(fetch_output_commit(&out, NULL, &e), &e, ERR_AUTH);
	assert_null(strstr(e.msg, "secret"));
	fetch_output_release(&out);
	assert_int_equal(count_files(tmp), 0);
	free(data);
}

static void test_s3_sigv4(void **state)
{
	struct fetch_output out = { .path = "" };
	struct fetch_input in = { .path = "" };
	struct err e = { 0 };
	char endpoint[80], *u = NULL;
	const char data[] = "s3 object body \x01\x02\xff";
	FILE *f;
	int before;

	(void)state;
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/s3", ts.port);
	setenv("S3_ENDPOINT", endpoint, 1);
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	ts.s3_secret = "testsecret";
	assert_int_equal(fetch_s3_url("s3://media/dir/obj.bin", &u, &e), 0);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/s3/media/dir/obj.bin",
		 ts.port);
	assert_string_equal(u, endpoint);
	free(u);

	before = ts.s3_verified;
	assert_int_equal(fetch_output_prepare("s3://media/dir/obj.bin", &out, &e), 0);
	f = fopen(out.path, "wb");
	fwrite(data, 1, sizeof(data) - 1, f);
	fclose(f);
	if (fetch_output_commit(&out, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	fetch_output_release(&out);
	assert_int_equal(ts.s3_verified, before + 1);
	assert_int_equal(ts.s3obj.len, sizeof(data) - 1);
	assert_memory_equal(ts.s3obj.data, data, sizeof(data) - 1);

	/* read it back through s3:// */
	if (fetch_input_open("s3://media/dir/obj.bin", &in, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(in.bytes, sizeof(data) - 1);
	fetch_input_release(&in);
	assert_int_equal(ts.s3_verified, before + 2);

	/* a wrong secret is refused by the server's signature check */
	setenv("AWS_SECRET_ACCESS_KEY", "wrong", 1);
	assert_fails(fetch_input_open("s3://media/dir/obj.bin", &in, NULL, &e), &e, ERR_AUTH);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);

	/* virtual-hosted style and the AWS default endpoint */
	setenv("S3_PATH_STYLE", "0", 1);
	assert_int_equal(fetch_s3_url("s3://media/a%b", &u, &e), 0);
	snprintf(endpoint, sizeof(endpoint), "http://media.127.0.0.1:%d/s3/a%%25b",
		 ts.port);
	assert_string_equal(u, endpoint);
	free(u);
	unsetenv("S3_ENDPOINT");
	assert_int_equal(fetch_s3_url("s3://media/k", &u, &e), 0);
	assert_string_equal(u, "https://media.s3.eu-west-3.amazonaws.com/k");
	free(u);
	unsetenv("S3_PATH_STYLE");
	assert_int_equal(fetch_s3_url("s3://Bad_Bucket/k", &u, &e), -1);
	assert_int_equal(fetch_s3_url("s3://media", &u, &e), -1);
	assert_int_equal(fetch_s3_url("s3://media/", &u, &e), -1);
	unsetenv("AWS_ACCESS_KEY_ID");
	assert_int_equal(fetch_input_open("s3://media/k", &in, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "AWS_ACCESS_KEY_ID"));
	assert_int_equal(count_files(tmp), 0);
}

/* ---- the allow-list parser and address check ------------------------ */

static int allowed(const char *spec, const char *ip)
{
	struct fetch_allow a;
	struct sockaddr_in s4 = { 0 };
	struct sockaddr_in6 s6 = { 0 };

	if (fetch_allow_parse(spec, &a, NULL) < 0)
		fail_msg("bad spec '%s'", spec);
	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		return fetch_addr_allowed(&a, (struct sockaddr *)&s4, sizeof(s4));
	}
	assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
	s6.sin6_family = AF_INET6;
	return fetch_addr_allowed(&a, (struct sockaddr *)&s6, sizeof(s6));
}

static void test_allow_list(void **state)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "169.254.1.1", "0.0.0.0",
		"100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::",
		"fd00:ec2::254", "fc00::1", "fe80::1", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1",
		"2002:7f00:1::1", "::127.0.0.1",
	};
	static const char *const public_ok[] = {
		"8.8.8.8", "1.1.1.1", "172.32.0.1", "192.169.0.1", "2001:4860::8888",
		"::ffff:8.8.8.8", "64:ff9b::808:808",
	};
	/* ALLOW_PRIVATE_NETWORKS settings: what each lets through */
	static const struct {
		const char *setting, *addr;
		int allowed;
	} cases[] = {
		{ "loopback", "127.0.0.1", 1 },
		{ "loopback", "::1", 1 },
		{ "loopback", "::ffff:127.0.0.1", 1 },
		{ "loopback", "10.0.0.1", 0 },
		{ " private , loopback", "10.0.0.1", 1 },
		{ "private", "fd12::1", 1 },
		{ "private", "fd00:ec2::254", 0 }, /* metadata */
		{ "link-local", "169.254.169.254", 0 },
		{ "link-local", "169.254.1.1", 1 },
		{ "metadata", "169.254.169.254", 1 },
		{ "169.254.0.0/16", "169.254.169.254", 1 },
		{ "10.1.0.0/16", "10.1.200.3", 1 },
		{ "10.1.0.0/16", "10.2.0.1", 0 },
		{ "10.1.2.3", "10.1.2.3", 1 },
		{ "10.1.2.3", "10.1.2.4", 0 },
		{ "fd12:3456::/32", "fd12:3456:1::1", 1 },
		{ "all", "169.254.169.254", 1 },
		{ "none", "8.8.8.8", 1 },
		{ "none", "127.0.0.1", 0 },
	};
	static const char *const bad[] = {
		"10.0.0.0/33", "loopbak", "1.2.3.4/", "/8", "1.2.3.4/-1", "::1/129",
	};
	struct fetch_allow a;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (allowed("", refused[i]))
			fail_msg("%s allowed by default", refused[i]);
	for (i = 0; i < sizeof(public_ok) / sizeof(public_ok[0]); i++)
		if (!allowed("", public_ok[i]))
			fail_msg("%s refused by default", public_ok[i]);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!allowed(cases[i].setting, cases[i].addr) != !cases[i].allowed)
			fail_msg("'%s' %s %s", cases[i].setting,
				 cases[i].allowed ? "refuses" : "allows", cases[i].addr);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (fetch_allow_parse(bad[i], &a, &e) != -1)
			fail_msg("'%s' taken", bad[i]);
		assert_non_null(strstr(e.msg, bad[i]));
	}
	assert_int_equal(fetch_allow_parse("", &a, &e), 0);
	assert_int_equal(fetch_allow_parse(NULL, &a, &e), 0);
	assert_int_equal(fetch_allow_parse(",,", &a, &e), 0);
}

/* ---- the http.request job ------------------------------------------- */

static int run_job(const char *payload, struct job_outcome *out)
{
	return ts_run_job("http.request", "job-1", payload, 3, out);
}

static char *payload(const char *path, const char *extra)
{
	static char p[1024];

	snprintf(p, sizeof(p), "{\"url\":\"%s\"%s%s}", ts_url(path),
		 extra ? "," : "", extra ? extra : "");
	return p;
}

static void test_job_http_request(void **state)
{
	struct job_outcome out;
	const char *body;

	(void)state;
	assert_int_equal(run_job(payload("/echo", "\"method\":\"POST\","
		"\"headers\":{\"X-Test\":\"yes\"},\"body\":{\"a\":1}"), &out), 0);
	assert_json_int(out.result, "status", 200);
	body = json_string_value(json_object_get(out.result, "body"));
	assert_non_null(body);
	assert_string_equal(body, "POST|application/json|yes|{\"a\":1}");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(out.result, "headers"), "x-echo")), "1");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(out.result, "headers"), "set-cookie")), "a=1, b=2");
	assert_true(json_is_false(json_object_get(out.result, "truncated")));
	job_outcome_release(&out);

	/* the body is capped, and says so */
	fetch_limits.max_response_bytes = 100;
	assert_int_equal(run_job(payload("/file/5000", NULL), &out), 0);
	assert_int_equal(json_string_length(json_object_get(out.result, "body")), 100);
	assert_true(json_is_true(json_object_get(out.result, "truncated")));
	job_outcome_release(&out);
	fetch_limits.max_response_bytes = 1 << 20;

	/* 404: final */
	assert_int_equal(run_job(payload("/status/404", NULL), &out), -1);
	assert_int_equal(out.retryable, 0);
	assert_non_null(strstr(out.error, "404"));
	/* 503 and 429: retry, after Retry-After; a 429 with it pushes back
	 * the job's group (rate_limit_group), a 503 does not */
	assert_int_equal(run_job(payload("/status/503", NULL), &out), -1);
	assert_int_equal(out.retryable, 1);
	assert_true(out.retry_after_s == 7);
	assert_int_equal(out.rate_limit_group, 0);
	assert_int_equal(run_job(payload("/status/429", NULL), &out), -1);
	assert_int_equal(out.retryable, 1);
	assert_true(out.retry_after_s == 7);
	assert_int_equal(out.rate_limit_group, 1);
	assert_int_equal(run_job(payload("/status/500", NULL), &out), -1);
	assert_int_equal(out.retryable, 1);
	assert_true(out.retry_after_s == 0);
	/* expect_status */
	assert_int_equal(run_job(payload("/status/201", "\"expect_status\":201"),
				 &out), 0);
	job_outcome_release(&out);
	assert_int_equal(run_job(payload("/echo", "\"expect_status\":201"), &out), -1);
	assert_int_equal(out.retryable, 0);
	assert_non_null(strstr(out.error, "expected 201"));
	/* a timeout retries */
	assert_int_equal(run_job(payload("/slow", "\"timeout_s\":0.3"), &out), -1);
	assert_int_equal(out.retryable, 1);
	/* a refused address does not */
	job_settings.allow_private = "";
	assert_int_equal(run_job(payload("/echo", NULL), &out), -1);
	assert_int_equal(out.retryable, 0);
	assert_non_null(strstr(out.error, "refused address"));
	job_settings.allow_private = "loopback";
	/* bad payloads are refused before anything is sent */
	assert_int_equal(run_job("{\"url\":\"ftp://x/y\"}", &out), -1);
	assert_int_equal(out.retryable, 0);
	assert_int_equal(run_job(payload("/echo", "\"headers\":{\"X\":\"a\\r\\nB: c\"}"),
				 &out), -1);
	assert_int_equal(run_job(payload("/echo", "\"method\":\"GE T\""), &out), -1);
	assert_int_equal(job_check("http.request", "{\"url\":\"http://\"}", NULL), -1);
	assert_int_equal(job_check("http.request",
				    "{\"url\":\"https://example.com/a\"}", NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_download),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_status_classes),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_timeout_and_unreachable),
		cmocka_unit_test(test_ssrf),
		cmocka_unit_test(test_request_policy),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_put_upload),
		cmocka_unit_test(test_s3_sigv4),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_job_http_request),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
