/* Unit tests of internal/fetch's S3 side against fakes on loopback
 * (testserver.h) that speak the real protocols: keys sent as given
 * ("." and ".." kept), S3 error codes in messages, the endpoint and region
 * settings, and every credential provider (S3_* and AWS_* variables,
 * shared profile files, the container provider, IMDSv2) with the cache
 * of temporary keys; plus the parsers of their answers on malformed
 * input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch/fetch.h"
#include "fetch/priv.h"
#include "job/job.h"
#include "testfetch.h"
#include "testserver.h"
#include "../unit.h"

static char base[80]; /* http://127.0.0.1:PORT */

/* Every variable the S3 side reads, cleared before each test. */
static const char *const vars[] = {
	"S3_ENDPOINT", "S3_PATH_STYLE", "S3_REGION", "S3_ACCESS_KEY_ID",
	"S3_SECRET_ACCESS_KEY", "S3_SESSION_TOKEN", "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "AWS_METADATA_SERVICE_TIMEOUT",
	"AWS_METADATA_SERVICE_NUM_ATTEMPTS",
};

/* RFC 3339 UTC, `from_now` seconds ahead. */
static const char *iso(long from_now, char out[32])
{
	time_t t = time(NULL) + from_now;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static char exp1h[32];
static char nohome[PATH_MAX + 16];

/* A clean slate: no settings, the fake S3 as endpoint, HOME without
 * ~/.aws, no IMDS, empty credential cache, the fakes' defaults. */
static int reset(void **state)
{
	char endpoint[120];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", nohome, 1); /* no ~/.aws */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	snprintf(endpoint, sizeof(endpoint), "%s/s3", base);
	setenv("S3_ENDPOINT", endpoint, 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	fetch_aws_creds_forget();
	fetch_container_base = base;
	ts.s3_key = "testkey";
	ts.s3_secret = "testsecret";
	ts.s3_token = NULL;
	ts.s3_expired_token = NULL;
	ts.creds_key = "testkey";
	ts.creds_secret = "testsecret";
	ts.creds_token = "session-token-1";
	ts.creds_expiration = iso(3600, exp1h);
	ts.creds_body = NULL;
	ts.imds_token = "imds-session-token";
	ts.imds_role = "wakeq-role";
	ts.imds_token_status = 0;
	ts.imds_delay_ms = 0;
	ts.container_auth = NULL;
	return 0;
}

static int setup(void **state)
{
	(void)state;
	if (testfetch_setup("fetch-s3") < 0)
		return -1;
	snprintf(nohome, sizeof(nohome), "%s/nohome", tmp);
	if (ts_start() < 0)
		return -1;
	snprintf(base, sizeof(base), "%s", ts_url(""));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ts_stop();
	return unit_rmtree(tmp);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* PUTs `body` to `url`; 0 or -1 with *e. */
static int s3_put(const char *url, const char *body, struct err *e)
{
	struct fetch_output out = { .path = "" };
	int rc;

	if (fetch_output_prepare(url, &out, e) < 0)
		return -1;
	write_file(out.path, body);
	rc = fetch_output_commit(&out, NULL, e);
	fetch_output_release(&out);
	return rc;
}

/* GETs `url` into a static buffer; NULL with *e on failure. */
static const char *s3_get(const char *url, struct err *e)
{
	static char b[4096];
	struct fetch_input in = { .path = "" };
	FILE *f;
	size_t n;

	if (fetch_input_open(url, &in, NULL, e) < 0)
		return NULL;
	f = fopen(in.path, "rb");
	assert_non_null(f);
	n = fread(b, 1, sizeof(b) - 1, f);
	b[n] = 0;
	fclose(f);
	fetch_input_release(&in);
	return b;
}

/* ---- keys as given ---------------------------------------------------- */

static void test_literal_keys(void **state)
{
	static const struct { const char *key, *wire; } keys[] = {
		{ "a/./b/../c.bin", "media/a/./b/../c.bin" },
		{ "../up.bin", "media/../up.bin" },
		{ "./here.bin", "media/./here.bin" },
		{ "x/..", "media/x/.." },
		{ "d//e/.", "media/d//e/." },
		{ "sp ace+%/ü.bin", "media/sp%20ace%2B%25/%C3%BC.bin" },
	};
	char url[300], body[300];
	struct err e = { 0 };
	const char *got;
	size_t i;
	int before;

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(url, sizeof(url), "s3://media/%s", keys[i].key);
		snprintf(body, sizeof(body), "object %zu", i);
		before = ts.s3_verified;
		if (s3_put(url, body, &e) < 0)
			fail_msg("put %s: %s", url, e.msg);
		/* the server saw the literal key, and the signature over it */
		assert_string_equal(ts.s3_last_key, keys[i].wire);
		assert_int_equal(ts.s3_verified, before + 1);
	}
	/* each reads back as its own object: nothing was folded together */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(url, sizeof(url), "s3://media/%s", keys[i].key);
		snprintf(body, sizeof(body), "object %zu", i);
		got = s3_get(url, &e);
		if (!got)
			fail_msg("get %s: %s", url, e.msg);
		assert_string_equal(got, body);
		assert_string_equal(ts.s3_last_key, keys[i].wire);
	}
	/* "c.bin" itself was never written */
	assert_fails_null(s3_get("s3://media/a/c.bin", &e), &e, ERR_NOTFOUND);
}

/* ---- S3 error codes --------------------------------------------------- */

static void test_error_codes(void **state)
{
	struct err e = { 0 };

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	assert_fails_null(s3_get("s3://media/missing.bin", &e), &e, ERR_NOTFOUND);
	assert_string_equal(e.msg, "s3 get 's3://media/missing.bin' failed: 404 "
			    "NoSuchKey: The specified key does not exist.");

	setenv("AWS_SECRET_ACCESS_KEY", "wrong", 1);
	assert_fails_null(s3_get("s3://media/missing.bin", &e), &e, ERR_AUTH);
	assert_string_equal(e.msg, "s3 get 's3://media/missing.bin' failed: 403 "
			    "SignatureDoesNotMatch: The request signature we "
			    "calculated does not match the signature you provided. "
			    "Check your key and signing method.");
	assert_fails(s3_put("s3://media/new.bin", "x", &e), &e, ERR_AUTH);
	assert_non_null(strstr(e.msg, "s3 put 's3://media/new.bin' failed: 403 "
			       "SignatureDoesNotMatch: "));
	assert_null(strstr(e.msg, "wrong")); /* no secret in messages */

	setenv("AWS_ACCESS_KEY_ID", "nobody", 1);
	assert_fails(s3_put("s3://media/new.bin", "x", &e), &e, ERR_AUTH);
	assert_non_null(strstr(e.msg, "403 InvalidAccessKeyId: The AWS Access Key "
			       "Id you provided does not exist"));

	/* entities decoded, controls folded, unknown entities kept */
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	assert_fails_null(s3_get("s3://media/entities", &e), &e, ERR_INVALID);
	assert_string_equal(e.msg, "s3 get 's3://media/entities' failed: 400 "
			    "InvalidArgument: a <b> & \"c' d&bogus;");

	/* a plain status without an S3 document */
	snprintf(e.msg, sizeof(e.msg), "-");
	{
		char ep[120];

		snprintf(ep, sizeof(ep), "%s/status", base);
		setenv("S3_ENDPOINT", ep, 1);
	}
	assert_fails_null(s3_get("s3://503/x", &e), &e, ERR_UNAVAILABLE);
	assert_string_equal(e.msg, "s3 get 's3://503/x' failed: http status 503");
}

/* ---- endpoint and region settings ------------------------------------- */

static void expect_url(const char *s3url, const char *want)
{
	struct err e = { 0 };
	char *u = NULL;

	if (fetch_s3_url(s3url, &u, &e) < 0)
		fail_msg("%s: %s", s3url, e.msg);
	if (strcmp(u, want))
		fail_msg("%s: want %s, got %s", s3url, want, u);
	free(u);
}

/* Each step sets `var` to `value` (NULL: unsets it), after which
 * s3://media/k is at `want`. */
struct url_step {
	const char *var, *value, *want;
};

static void expect_urls(const struct url_step *steps, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (steps[i].value)
			setenv(steps[i].var, steps[i].value, 1);
		else
			unsetenv(steps[i].var);
		expect_url("s3://media/k", steps[i].want);
	}
}

static void test_settings(void **state)
{
	/* the region: each setting wins over those before it */
	static const struct url_step regions[] = {
		{ "AWS_PROFILE", "other", "https://media.s3.sa-east-1.amazonaws.com/k" },
		{ "AWS_DEFAULT_REGION", "eu-north-1", "https://media.s3.eu-north-1.amazonaws.com/k" },
		{ "AWS_REGION", "eu-west-3", "https://media.s3.eu-west-3.amazonaws.com/k" },
		{ "S3_REGION", "us-west-2", "https://media.s3.us-west-2.amazonaws.com/k" },
	};
	/* endpoints: S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL */
	static const struct url_step endpoints[] = {
		{ "AWS_ENDPOINT_URL", "http://all.example", "http://all.example/media/k" },
		{ "AWS_ENDPOINT_URL_S3", "https://s3.example/", "https://s3.example/media/k" },
		{ "S3_ENDPOINT", "http://mine.example", "http://mine.example/media/k" },
		{ "S3_PATH_STYLE", "false", "http://media.mine.example/k" },
		{ "S3_PATH_STYLE", NULL, "http://mine.example/media/k" },
		{ "S3_ENDPOINT", NULL, "https://s3.example/media/k" },
		{ "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true",
		  "https://media.s3.eu-west-3.amazonaws.com/k" },
		{ "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", NULL, "https://s3.example/media/k" },
	};
	char conf[PATH_MAX + 16];
	struct err e = { 0 };
	char *u = NULL;

	(void)state;
	unsetenv("S3_ENDPOINT");
	unsetenv("AWS_REGION");
	expect_url("s3://media/k", "https://media.s3.us-east-1.amazonaws.com/k");
	snprintf(conf, sizeof(conf), "%s/config", tmp);
	write_file(conf, "[default]\nregion = ap-south-1\n"
		   "[profile other]\nregion=sa-east-1\n");
	setenv("AWS_CONFIG_FILE", conf, 1);
	expect_url("s3://media/k", "https://media.s3.ap-south-1.amazonaws.com/k");
	expect_urls(regions, sizeof(regions) / sizeof(regions[0]));
	setenv("S3_REGION", "us-west-2:evil", 1);
	assert_int_equal(fetch_s3_url("s3://media/k", &u, &e), -1);
	assert_non_null(strstr(e.msg, "S3_REGION"));
	assert_int_equal(fetch_check_settings(&e), -1);
	unsetenv("S3_REGION");

	expect_urls(endpoints, sizeof(endpoints) / sizeof(endpoints[0]));
	setenv("AWS_ENDPOINT_URL_S3", "ftp://x", 1);
	assert_int_equal(fetch_s3_url("s3://media/k", &u, &e), -1);
	assert_string_equal(e.msg, "AWS_ENDPOINT_URL_S3 must start with http:// "
			    "or https://");
	assert_int_equal(fetch_check_settings(&e), -1);
	assert_non_null(strstr(e.msg, "AWS_ENDPOINT_URL_S3"));
	unsetenv("AWS_ENDPOINT_URL_S3");
	assert_int_equal(fetch_check_settings(&e), 0);
}

/* ---- credentials: settings and profile files --------------------------- */

static void test_creds_settings(void **state)
{
	struct err e = { 0 };

	(void)state;
	/* nothing anywhere: a message naming where it looked */
	assert_fails_null(s3_get("s3://media/k", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "s3 get 's3://media/k' failed: no s3 "
			       "credentials"));
	assert_non_null(strstr(e.msg, "AWS_ACCESS_KEY_ID"));
	assert_non_null(strstr(e.msg, "AWS_EC2_METADATA_DISABLED"));

	/* S3_* beats AWS_* */
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wrong", 1);
	setenv("S3_ACCESS_KEY_ID", "testkey", 1);
	setenv("S3_SECRET_ACCESS_KEY", "testsecret", 1);
	assert_int_equal(s3_put("s3://media/c1", "one", &e), 0);
	unsetenv("S3_SECRET_ACCESS_KEY");
	assert_fails(s3_put("s3://media/c1", "one", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "S3_ACCESS_KEY_ID is set but "
			       "S3_SECRET_ACCESS_KEY is not"));
	unsetenv("S3_ACCESS_KEY_ID");
	assert_int_equal(s3_put("s3://media/c1", "one", &e), -1);
	assert_non_null(strstr(e.msg, "SignatureDoesNotMatch"));

	/* session tokens are sent and signed */
	ts.s3_token = "tok-env";
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	assert_int_equal(s3_put("s3://media/c1", "one", &e), -1);
	assert_non_null(strstr(e.msg, "InvalidToken"));
	setenv("AWS_SESSION_TOKEN", "tok-env", 1);
	assert_int_equal(s3_put("s3://media/c1", "one", &e), 0);
	setenv("AWS_SESSION_TOKEN", "tok\r\nX-Evil: 1", 1);
	assert_fails(s3_put("s3://media/c1", "one", &e), &e, ERR_INVALID);
}

static void test_creds_profile(void **state)
{
	char cred[PATH_MAX + 16], conf[PATH_MAX + 16];
	struct err e = { 0 };

	(void)state;
	setenv("HOME", tmp, 1);
	snprintf(cred, sizeof(cred), "%s/.aws", tmp);
	mkdir(cred, 0700);
	/* ~/.aws/credentials by default */
	snprintf(cred, sizeof(cred), "%s/.aws/credentials", tmp);
	write_file(cred, "# keys\n[default]\naws_access_key_id = testkey\n"
		   "aws_secret_access_key = testsecret ; rotated 2024\n"
		   "[media]\r\nAWS_ACCESS_KEY_ID=testkey\r\n"
		   "aws_secret_access_key=testsecret\r\n"
		   "aws_session_token = tok-profile\r\n"
		   "s3 =\n  max_concurrent_requests = 20\n");
	assert_int_equal(s3_put("s3://media/p1", "one", &e), 0);
	ts.s3_token = "tok-profile";
	assert_int_equal(s3_put("s3://media/p1", "one", &e), -1);
	setenv("AWS_PROFILE", "media", 1);
	if (s3_put("s3://media/p1", "one", &e) < 0)
		fail_msg("%s", e.msg);

	/* the config file holds keys too, in [profile NAME]; and a region,
	 * used when no variable names one */
	snprintf(conf, sizeof(conf), "%s/cfg", tmp);
	write_file(conf, "[profile cfg]\nregion = ca-central-1\n"
		   "aws_access_key_id = testkey\naws_secret_access_key = testsecret\n"
		   "aws_session_token = tok-profile\n");
	setenv("AWS_CONFIG_FILE", conf, 1);
	setenv("AWS_PROFILE", "cfg", 1);
	unsetenv("AWS_REGION");
	if (s3_put("s3://media/p2", "two", &e) < 0)
		fail_msg("%s", e.msg);
	assert_string_equal(ts.s3_region, "ca-central-1");

	/* AWS_SHARED_CREDENTIALS_FILE moves the credentials file */
	snprintf(cred, sizeof(cred), "%s/elsewhere", tmp);
	write_file(cred, "[cfg]\naws_access_key_id = testkey\n"
		   "aws_secret_access_key = wrong\naws_session_token = tok-profile\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	assert_int_equal(s3_put("s3://media/p2", "two", &e), -1);
	assert_non_null(strstr(e.msg, "SignatureDoesNotMatch"));

	/* a profile asked for by name must exist */
	setenv("AWS_PROFILE", "nope", 1);
	assert_fails(s3_put("s3://media/p2", "two", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "aws profile 'nope' not found"));
}

/* ---- credentials: container provider ----------------------------------- */

static void test_creds_container(void **state)
{
	char url[160], file[PATH_MAX + 16];
	struct err e = { 0 };
	int gets;

	(void)state;
	ts.s3_token = "session-token-1";
	ts.container_auth = "Bearer abc";
	snprintf(url, sizeof(url), "%s/ecs/creds", base);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	assert_fails(s3_put("s3://media/k1", "one", &e), &e, ERR_AUTH);
	assert_non_null(strstr(e.msg, "container credentials provider answered "
			       "http status 403"));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc", 1);
	gets = ts.creds_gets;
	if (s3_put("s3://media/k1", "one", &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(ts.creds_gets, gets + 1);
	/* cached until shortly before Expiration */
	assert_string_equal(s3_get("s3://media/k1", &e), "one");
	assert_int_equal(ts.creds_gets, gets + 1);

	/* the relative URI, resolved against the ECS address (here the
	 * fake), and a token file (EKS pod identity) */
	fetch_aws_creds_forget();
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/1234", 1);
	snprintf(file, sizeof(file), "%s/token", tmp);
	write_file(file, "Bearer abc\n");
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file, 1);
	gets = ts.creds_gets;
	assert_string_equal(s3_get("s3://media/k1", &e), "one");
	assert_int_equal(ts.creds_gets, gets + 1);

	/* keys expiring within the refresh margin are fetched every time */
	fetch_aws_creds_forget();
	{
		char soon[32];

		ts.creds_expiration = iso(120, soon);
		gets = ts.creds_gets;
		assert_string_equal(s3_get("s3://media/k1", &e), "one");
		assert_string_equal(s3_get("s3://media/k1", &e), "one");
		assert_int_equal(ts.creds_gets, gets + 2);
		ts.creds_expiration = exp1h;
	}

	/* plain http only to loopback or the container addresses */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds", 1);
	assert_fails(s3_put("s3://media/k1", "one", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));

	/* a malformed answer is a protocol error, not keys */
	fetch_aws_creds_forget();
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	ts.creds_body = "{\"AccessKeyId\":\"testkey\",\"SecretAccessKey\":";
	assert_fails(s3_put("s3://media/k1", "one", &e), &e, ERR_PROTOCOL);
	assert_non_null(strstr(e.msg, "container credentials provider"));
}

/* ---- credentials: instance metadata (IMDSv2) --------------------------- */

static void test_creds_imds(void **state)
{
	struct err e = { 0 };
	int puts, gets;

	(void)state;
	ts.s3_token = "session-token-1";
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base, 1);
	puts = ts.imds_token_puts;
	gets = ts.creds_gets;
	if (s3_put("s3://media/i1", "imds", &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(ts.imds_token_puts, puts + 1);
	assert_int_equal(ts.creds_gets, gets + 1);
	/* cached */
	assert_string_equal(s3_get("s3://media/i1", &e), "imds");
	assert_int_equal(ts.imds_token_puts, puts + 1);
	assert_int_equal(ts.creds_gets, gets + 1);

	/* S3 says the token expired: dropped, retryable, fetched anew */
	ts.s3_expired_token = "session-token-1";
	ts.s3_token = "session-token-2";
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "400 ExpiredToken"));
	ts.creds_token = "session-token-2";
	assert_string_equal(s3_get("s3://media/i1", &e), "imds");
	assert_int_equal(ts.imds_token_puts, puts + 2);
	ts.s3_expired_token = NULL;

	/* disabled: IMDS is not asked */
	fetch_aws_creds_forget();
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	puts = ts.imds_token_puts;
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_INVALID);
	assert_int_equal(ts.imds_token_puts, puts);
	unsetenv("AWS_EC2_METADATA_DISABLED");

	/* no instance role: no credentials, said so */
	ts.imds_role = NULL;
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "no instance role"));
	ts.imds_role = "wakeq-role";

	/* an IMDS refusing tokens (IMDSv1-only or off) ends the chain too */
	ts.imds_token_status = 403;
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "refused a token"));
	ts.imds_token_status = 500;
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_UNAVAILABLE);
	ts.imds_token_status = 0;

	/* IMDS's answer with Code other than Success */
	ts.creds_body = "{\"Code\":\"AssumeRoleUnauthorizedAccess\","
		"\"Message\":\"no\",\"LastUpdated\":\"2024-05-01T10:00:00Z\"}";
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_PROTOCOL);
	ts.creds_body = NULL;

	/* a slow IMDS (AWS_METADATA_SERVICE_TIMEOUT): retry later */
	setenv("AWS_METADATA_SERVICE_TIMEOUT", "0.2", 1);
	ts.imds_delay_ms = 700;
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_TIMEOUT);
	assert_non_null(strstr(e.msg, "instance metadata service"));
	ts.imds_delay_ms = 0;
	unsetenv("AWS_METADATA_SERVICE_TIMEOUT");

	/* nothing listening at the endpoint: no IMDS here */
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
	assert_fails_null(s3_get("s3://media/i1", &e), &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "instance metadata unreachable"));

	/* container provider comes before IMDS */
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base, 1);
	{
		char url[160];

		snprintf(url, sizeof(url), "%s/ecs/creds", base);
		setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	}
	puts = ts.imds_token_puts;
	assert_string_equal(s3_get("s3://media/i1", &e), "imds");
	assert_int_equal(ts.imds_token_puts, puts);
}

/* ---- parsers on malformed input ---------------------------------------- */

static void test_parse_creds_json(void **state)
{
	static const char *const bad[] = {
		"", "null", "[]", "\"x\"", "{", "{}",
		"{\"AccessKeyId\":\"A\"}",
		"{\"AccessKeyId\":1,\"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"\"}",
		"{\"AccessKeyId\":\"A B\",\"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":7}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"a\\r\\nb\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"soon\"}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":5}",
		"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Code\":\"Failure\"}",
		"{\"AccessKeyId\":\"A\",\"AccessKeyId\":\"B\",\"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"A\\u0000B\",\"SecretAccessKey\":\"S\"}",
	};
	static const char good[] = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		"\"S\",\"Token\":\"T\",\"Expiration\":\"1970-01-02T00:00:00Z\","
		"\"Code\":\"Success\"}";
	static const char bare[] = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
		"\"S\"}";
	struct fetch_aws_creds c;
	struct err e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		if (fetch_aws_creds_parse(bad[i], strlen(bad[i]), &c, &e) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(e.code, ERR_PROTOCOL);
		assert_null(c.key_id);
	}
	assert_int_equal(fetch_aws_creds_parse(good, strlen(good), &c, &e), 0);
	assert_string_equal(c.key_id, "A");
	assert_string_equal(c.secret, "S");
	assert_string_equal(c.token, "T");
	assert_int_equal(c.expires, 86400);
	fetch_aws_creds_release(&c);
	/* no token, no expiration: static keys */
	assert_int_equal(fetch_aws_creds_parse(bare, strlen(bare), &c, &e), 0);
	assert_null(c.token);
	assert_int_equal(c.expires, 0);
	fetch_aws_creds_release(&c);
}

static void test_parse_time(void **state)
{
	static const char *const bad[] = {
		"", "2024", "2024-05-01", "2024-05-01T12:00:00", "2024-13-01T00:00:00Z",
		"2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-05-01T24:00:00Z",
		"2024-05-01T12:60:00Z", "2024-05-01T12:00:00Zjunk", "2024-05-01T12:00:00+1",
		"2024-05-01T12:00:00+01:60", "x024-05-01T12:00:00Z", "2024-05-01X12:00:00Z",
		"2024-05-01T12:00:00.Zz",
	};
	int64_t t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (fetch_aws_time_parse(bad[i], &t) == 0)
			fail_msg("accepted: '%s'", bad[i]);
	assert_int_equal(fetch_aws_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(fetch_aws_time_parse("2024-02-29T12:34:56Z", &t), 0);
	assert_int_equal(t, 1709210096);
	assert_int_equal(fetch_aws_time_parse("2024-02-29T12:34:56.789Z", &t), 0);
	assert_int_equal(t, 1709210096);
	assert_int_equal(fetch_aws_time_parse("2024-02-29T14:34:56+02:00", &t), 0);
	assert_int_equal(t, 1709210096);
	assert_int_equal(fetch_aws_time_parse("2024-02-29T10:04:56-02:30", &t), 0);
	assert_int_equal(t, 1709210096);
}

static void test_parse_ini(void **state)
{
	static const char text[] =
		"; comment\n"
		"[default]\n"
		"region=us-east-2\n"
		"[ profile  spaced ]\n"
		"region = eu-west-1 # inline comment\n"
		"key#hash = v#1\n"
		"[profile dup]\n"
		"region = first\n"
		"[profile dup]\n"
		"region = second\n"
		"[broken\n"
		"region = nowhere\n"
		"[profile nested]\n"
		"s3 =\n"
		"  region = nested-value\n"
		"region =\n"
		"=x\n"
		"novalue\n"
		"[last]\n"
		"region = no-newline";
	/* section, key: the value found */
	static const char *const found[][3] = {
		{ "default", "region", "us-east-2" },
		{ "profile spaced", "REGION", "eu-west-1" },
		{ "profile spaced", "key#hash", "v#1" },
		{ "profile dup", "region", "second" },
		{ "profile nested", "region", "" },
		{ "last", "region", "no-newline" },
	};
	char v[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(found) / sizeof(found[0]); i++) {
		if (fetch_aws_ini_get(text, strlen(text), found[i][0], found[i][1], v,
				      sizeof(v)) != 1)
			fail_msg("[%s] %s not found", found[i][0], found[i][1]);
		assert_string_equal(v, found[i][2]);
	}
	assert_int_equal(fetch_aws_ini_get(text, strlen(text), "broken", "region",
					   v, sizeof(v)), 0);
	assert_int_equal(fetch_aws_ini_get(text, strlen(text), "profile missing",
					   NULL, NULL, 0), 0);
	assert_int_equal(fetch_aws_ini_get(text, strlen(text), "profile nested",
					   NULL, NULL, 0), 1);
	/* truncation, not overflow */
	assert_int_equal(fetch_aws_ini_get(text, strlen(text), "default", "region",
					   v, 4), 1);
	assert_string_equal(v, "us-");
	assert_int_equal(fetch_aws_ini_get("", 0, "default", "region", v, 8), 0);
	assert_int_equal(fetch_aws_ini_get("[default", 8, "default", NULL, NULL, 0),
			 0);
}

static void test_parse_s3_error(void **state)
{
	char code[64], msg[256], big[2000];

	(void)state;
	assert_int_equal(fetch_s3_error_parse(NULL, 0, code, msg), 0);
	assert_int_equal(fetch_s3_error_parse("", 0, code, msg), 0);
	assert_int_equal(fetch_s3_error_parse("status 404", 10, code, msg), 0);
	assert_int_equal(fetch_s3_error_parse("<Code>", 6, code, msg), 0);
	assert_int_equal(fetch_s3_error_parse("<Code></Code>", 13, code, msg), 0);
	assert_int_equal(fetch_s3_error_parse("<Code>   </Code>", 16, code, msg), 0);
	/* the body may stop anywhere: no NUL, no closing tags */
	assert_int_equal(fetch_s3_error_parse("<Error><Code>NoSuchKey</Code><Mess",
					      34, code, msg), 1);
	assert_string_equal(code, "NoSuchKey");
	assert_string_equal(msg, "");
	assert_int_equal(fetch_s3_error_parse("<Code>A</Code>XYZ", 14, code, msg), 1);
	assert_string_equal(code, "A");
	{
		static const char cdata[] = "<Code><![CDATA[Slow]]></Code><Message>"
			"x&#0;y&#99999999999;z&#xZZ;&</Message>";

		assert_int_equal(fetch_s3_error_parse(cdata, strlen(cdata), code,
						      msg), 1);
	}
	assert_string_equal(code, "Slow");
	assert_string_equal(msg, "x?y&#99999999999;z&#xZZ;&");
	/* long texts are cut to the buffers */
	memset(big, 'a', sizeof(big));
	memcpy(big, "<Code>", 6);
	memcpy(big + 1000, "</Code><Message>", 16);
	memcpy(big + sizeof(big) - 10, "</Message>", 10);
	assert_int_equal(fetch_s3_error_parse(big, sizeof(big), code, msg), 1);
	assert_int_equal(strlen(code), 63);
	assert_int_equal(strlen(msg), 255);
	/* bytes outside ASCII do not pass */
	assert_int_equal(fetch_s3_error_parse("<Code>\xff\x01" "X</Code>", 16, code,
					      msg), 1);
	assert_string_equal(code, "? X");
}


/* ---- presigned URLs ----------------------------------------------------- */

/* AWS's published example of a presigned URL (S3 API reference,
 * "Authenticating Requests: Using Query Parameters", the GET of
 * examplebucket/test.txt on 2013-05-24, valid 86400 s): the whole URL,
 * signature included, must come out as documented. */
static void test_presign_aws_vector(void **state)
{
	struct fetch_presign_req r = { 0 };
	struct fetch_presigned p = { 0 };
	struct err e;

	(void)state;
	setenv("S3_ENDPOINT", "https://s3.amazonaws.com", 1);
	setenv("S3_PATH_STYLE", "false", 1);
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1);
	r.url = "s3://examplebucket/test.txt";
	r.method = "GET";
	r.expires_s = 86400;
	r.now = 1369353600; /* 2013-05-24T00:00:00Z */
	assert_int_equal(fetch_presign(&r, &p, &e), 0);
	assert_string_equal(p.url, "https://examplebucket.s3.amazonaws.com/test.txt"
		"?X-Amz-Algorithm=AWS4-HMAC-SHA256"
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	assert_string_equal(p.method, "GET");
	assert_null(p.content_type);
	assert_int_equal(p.expires_at, 1369353600 + 86400);
	fetch_presigned_release(&p);
	/* bounds */
	r.expires_s = 0;
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "bad expiry"));
	r.expires_s = 604801;
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	r.expires_s = 60;
	r.method = "DELETE";
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "'DELETE'"));
	r.method = NULL;
	r.url = "ftp://x/y";
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	r.url = "s3://examplebucket/k";
	r.content_type = "video/mp4\r\nX-Evil: 1";
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "bad content type"));
	r.content_type = "video";
	assert_int_equal(fetch_presign(&r, &p, &e), -1);
	assert_non_null(strstr(e.msg, "bad content type"));
	r.content_type = NULL;
	/* "." and ".." segments: clients fold them, the signature would not
	 * match; a dot inside a name is fine */
	{
		static const char *const bad[] = {
			"s3://examplebucket/a/../k", "s3://examplebucket/./k",
			"gs://examplebucket/a/..", "gs://examplebucket/a/./b",
			"S3://examplebucket/..",
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r.url = bad[i];
			assert_int_equal(fetch_presign(&r, &p, &e), -1);
			assert_int_equal(e.code, ERR_INVALID);
			assert_non_null(strstr(e.msg, "bad object key '"));
		}
		r.url = "s3://examplebucket/a/..k/.b./c.mp4";
		assert_int_equal(fetch_presign(&r, &p, &e), 0);
		fetch_presigned_release(&p);
	}
}

/* A client PUTs to the presigned URL with nothing but the URL and the
 * signed Content-Type; the fake S3 checks the query signature on its
 * own; the object then reads back as an s3:// input. A tampered
 * signature, a different content type and an expired URL are refused. */
static void test_presign_put(void **state)
{
	static const char *const hdr[] = { "Content-Type: video/mp4", NULL };
	static const char *const wrong[] = { "Content-Type: text/plain", NULL };
	struct fetch_presign_req r = { 0 };
	struct fetch_presigned p = { 0 };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct fetch_request req;
	const char *got;
	char *bad;
	struct err e;
	int before;

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "testkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "testsecret", 1);
	r.url = "s3://media/up/clip 1.mp4";
	r.content_type = "video/mp4";
	r.expires_s = 900;
	assert_int_equal(fetch_presign(&r, &p, &e), 0);
	assert_string_equal(p.method, "PUT");
	assert_string_equal(p.content_type, "video/mp4");
	assert_non_null(strstr(p.url, "/s3/media/up/clip%201.mp4?X-Amz-Algorithm="));
	assert_non_null(strstr(p.url, "&X-Amz-SignedHeaders=content-type%3Bhost&"));
	assert_null(strstr(p.url, "testsecret"));

	memset(&req, 0, sizeof(req));
	req.method = "PUT";
	req.url = p.url;
	req.headers = hdr;
	req.body = "presigned bytes";
	req.body_len = 15;
	before = ts.s3_verified;
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	if (resp.status != 200)
		fprintf(stderr, "%s\n%.*s\n", p.url, (int)resp.body.len, resp.body.data);
	assert_int_equal(resp.status, 200);
	assert_int_equal(ts.s3_verified, before + 1);
	assert_string_equal(ts.s3_region, "eu-west-3");
	got = s3_get("s3://media/up/clip 1.mp4", &e);
	assert_non_null(got);
	assert_string_equal(got, "presigned bytes");

	/* another content type than the signed one */
	req.headers = wrong;
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	assert_int_equal(resp.status, 403);
	/* one digit of the signature changed */
	bad = strdup(p.url);
	bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
	req.headers = hdr;
	req.url = bad;
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	assert_int_equal(resp.status, 403);
	free(bad);
	fetch_presigned_release(&p);
	/* signed an hour ago for 60 s: expired */
	r.now = (int64_t)time(NULL) - 3600;
	r.expires_s = 60;
	assert_int_equal(fetch_presign(&r, &p, &e), 0);
	req.url = p.url;
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	assert_int_equal(resp.status, 403);
	assert_non_null(strstr(resp.body.data, "AccessDenied"));
	fetch_presigned_release(&p);

	/* temporary keys: the session token travels in the query, and the
	 * URL expires with the keys */
	ts.s3_token = "session-token-1";
	setenv("AWS_SESSION_TOKEN", "session-token-1", 1);
	r.now = 0;
	r.expires_s = 900;
	assert_int_equal(fetch_presign(&r, &p, &e), 0);
	assert_non_null(strstr(p.url, "&X-Amz-Security-Token=session-token-1&"));
	req.url = p.url;
	assert_int_equal(fetch_http(&req, &resp, &e), 0);
	assert_int_equal(resp.status, 200);
	fetch_presigned_release(&p);
	fetch_response_release(&resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_literal_keys, reset),
		cmocka_unit_test_setup(test_error_codes, reset),
		cmocka_unit_test_setup(test_settings, reset),
		cmocka_unit_test_setup(test_creds_settings, reset),
		cmocka_unit_test_setup(test_creds_profile, reset),
		cmocka_unit_test_setup(test_creds_container, reset),
		cmocka_unit_test_setup(test_creds_imds, reset),
		cmocka_unit_test(test_parse_creds_json),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_parse_ini),
		cmocka_unit_test(test_parse_s3_error),
		cmocka_unit_test_setup(test_presign_aws_vector, reset),
		cmocka_unit_test_setup(test_presign_put, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
