/* Unit tests of internal/webhook: signature known answers (computed with
 * `openssl dgst -sha256 -hmac`, Python's hmac module and the Standard
 * Webhooks test vector), rotation, verification, the start-up check, the
 * callback document and the webhook.deliver job against a real server on
 * loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "fetch/fetch.h"
#include "job/job.h"
#include "webhook/webhook.h"
#include "../fetch/testserver.h"
#include "../unit.h"

static const char kat_body[] = "{\"id\":\"j1\",\"status\":\"done\"}";
/* printf '%s' '1700000000.{"id":"j1","status":"done"}' |
 *   openssl dgst -sha256 -hmac whsec_test */
static const char kat_sig[] = "t=1700000000,v1="
	"53406800bef091f19a5510edf85726cae89f89f95ee64cbe74c489161258786e";

static int setup(void **state)
{
	(void)state;
	job_settings.allow_private = "loopback";
	job_settings.webhook_secret = "whsec_test";
	fetch_limits.connect_timeout_s = 2;
	webhook_bind_jobs();
	return ts_start();
}

static int teardown(void **state)
{
	(void)state;
	ts_stop();
	return 0;
}

static void test_sign_known_answer(void **state)
{
	char sig[WEBHOOK_SIG_MAX];

	(void)state;
	assert_int_equal(webhook_sign("whsec_test", NULL, 1700000000, kat_body,
				      strlen(kat_body), sig), 0);
	assert_string_equal(sig, kat_sig);
	assert_int_equal(webhook_sign("whsec_test", "", 1700000000, kat_body,
				      strlen(kat_body), sig), 0);
	assert_string_equal(sig, kat_sig);
	/* empty body: printf '1700000000.' | openssl dgst -sha256 -hmac k */
	assert_int_equal(webhook_sign("k", NULL, 1700000000, "", 0, sig), 0);
	assert_string_equal(sig, "t=1700000000,v1=5c2999a43333a6877f49c8003f235c4f"
			    "6de40f85b1b7414b70bd470a8db53d97");
	assert_int_equal(webhook_sign("", NULL, 1, "x", 1, sig), -1);
	assert_int_equal(webhook_sign(NULL, NULL, 1, "x", 1, sig), -1);
	/* no current secret: unsigned, even with a previous one */
	assert_int_equal(webhook_sign("", "old", 1, "x", 1, sig), -1);
}

/* During a rotation the header carries the current secret's v1 first,
 * then the previous one's; each verifies with its own secret alone. */
static void test_sign_rotation(void **state)
{
	char sig[WEBHOOK_SIG_MAX];
	struct err e;
	size_t n = strlen(kat_body);

	(void)state;
	/* printf '%s' '1700000000.{"id":"j1","status":"done"}' |
	 *   openssl dgst -sha256 -hmac old */
	assert_int_equal(webhook_sign("whsec_test", "old", 1700000000, kat_body,
				      n, sig), 0);
	assert_string_equal(sig, "t=1700000000,v1=53406800bef091f19a5510edf85726ca"
			    "e89f89f95ee64cbe74c489161258786e,v1=82ed9c92cf04"
			    "8314de9b4514c8148fe58ae4d550bd8479f1ab99b9d450cade3f");
	assert_int_equal(webhook_verify("whsec_test", sig, kat_body, n, 1700000000,
					300, &e), 0);
	assert_int_equal(webhook_verify("old", sig, kat_body, n, 1700000000, 300,
					&e), 0);
	assert_fails(webhook_verify("neither", sig, kat_body, n, 1700000000, 300, &e),
	             &e, ERR_AUTH);
	/* the longest header fits: a 20-digit time and two entries */
	assert_int_equal(webhook_sign("a", "b", INT64_MIN, "", 0, sig), 0);
	assert_int_equal(strlen(sig), 2 + 20 + 2 * (4 + 64));
}

static void test_sign_standard(void **state)
{
	static const char std_body[] = "{\"test\": 2432232314}";
	char sig[WEBHOOK_STD_SIG_MAX];
	struct err e;
	size_t n = strlen(kat_body);

	(void)state;
	/* The Standard Webhooks test vector (its libraries' test suites). */
	assert_int_equal(webhook_sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
					       NULL, "msg_p5jXN8AQM9LWM0D4loKWxJek",
					       1614265330, std_body,
					       strlen(std_body), sig, &e), 0);
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* A secret without the prefix is the key as written: python3 -c
	 * "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
	 * b'raw secret', b'msg_1.1700000000.' + BODY, hashlib.sha256)
	 * .digest()))" */
	assert_int_equal(webhook_sign_standard("raw secret", "", "msg_1",
					       1700000000, kat_body, n, sig,
					       &e), 0);
	assert_string_equal(sig, "v1,YQBNwcu9gjTR5BLFrRylORQxIb8YCpC01bbKowCB/mM=");
	/* rotation: the current secret first, space-separated */
	assert_int_equal(webhook_sign_standard("raw secret",
					       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
					       "msg_1", 1700000000, kat_body, n,
					       sig, &e), 0);
	assert_int_equal(strncmp(sig, "v1,YQBNwcu9gjTR5BLFrRylORQxIb8YCpC01bbKowCB/mM= v1,",
				 51), 0);
	assert_int_equal(strlen(sig), 2 * 47 + 1);
	/* "whsec_" promises base64: anything else is refused, naming the
	 * setting and never the secret */
	strcpy(sig, "untouched");
	assert_fails(webhook_sign_standard("whsec_not base64!", NULL, "m", 1, "", 0, sig, &e),
	             &e, ERR_INVALID);
	assert_non_null(strstr(e.msg, "WEBHOOK_SECRET"));
	assert_null(strstr(e.msg, "not base64!"));
	assert_string_equal(sig, "untouched");
	assert_int_equal(webhook_sign_standard("whsec_", NULL, "m", 1, "", 0, sig,
					       &e), -1);
	assert_int_equal(webhook_sign_standard("whsec_abc", NULL, "m", 1, "", 0,
					       sig, &e), -1);
	assert_int_equal(webhook_sign_standard("good", "whsec_abc", "m", 1, "", 0,
					       sig, &e), -1);
	assert_non_null(strstr(e.msg, "WEBHOOK_SECRET_PREVIOUS"));
	assert_int_equal(webhook_sign_standard("", NULL, "m", 1, "", 0, sig, &e),
			 -1);
}

static void test_check_settings(void **state)
{
	struct err e;

	(void)state;
	assert_int_equal(webhook_check_settings(&e), 0); /* whsec_test */
	job_settings.webhook_secret_previous = "old";
	assert_int_equal(webhook_check_settings(&e), 0);
	job_settings.webhook_secret = "";
	assert_int_equal(webhook_check_settings(&e), -1);
	assert_non_null(strstr(e.msg, "WEBHOOK_SECRET_PREVIOUS"));
	job_settings.webhook_secret_previous = "";
	assert_int_equal(webhook_check_settings(&e), 0); /* unsigned */
	job_settings.webhook_secret = "whsec_!";
	assert_int_equal(webhook_check_settings(&e), -1);
	assert_non_null(strstr(e.msg, "bad WEBHOOK_SECRET:"));
	job_settings.webhook_secret = "whsec_test";
	job_settings.webhook_secret_previous = "whsec_x";
	assert_int_equal(webhook_check_settings(&e), -1);
	assert_non_null(strstr(e.msg, "bad WEBHOOK_SECRET_PREVIOUS:"));
	job_settings.webhook_secret_previous = NULL;
}

static void test_verify(void **state)
{
	const int64_t t = 1700000000;
	size_t n = strlen(kat_body);
	char tampered[sizeof(kat_body)], upper[sizeof(kat_sig)], two[256];
	struct err e;
	size_t i;

	(void)state;
	assert_int_equal(webhook_verify("whsec_test", kat_sig, kat_body, n, t, 300,
					&e), 0);
	assert_int_equal(webhook_verify("whsec_test", kat_sig, kat_body, n,
					t + 300, 300, &e), 0);
	/* too old, or from the future */
	assert_fails(webhook_verify("whsec_test", kat_sig, kat_body, n, t + 301, 300, &e),
	             &e, ERR_AUTH);
	assert_int_equal(webhook_verify("whsec_test", kat_sig, kat_body, n,
					t - 301, 300, &e), -1);
	/* another body, another secret, another time */
	memcpy(tampered, kat_body, sizeof(kat_body));
	tampered[8] = 'X';
	assert_fails(webhook_verify("whsec_test", kat_sig, tampered, n, t, 300, &e),
	             &e, ERR_AUTH);
	assert_int_equal(webhook_verify("whsec_other", kat_sig, kat_body, n, t, 300,
					&e), -1);
	assert_fails(webhook_verify("whsec_test", "t=1700000001,v1=53406800bef0"
				    "91f19a5510edf85726cae89f89f95ee64cbe74c489161258786e",
				    kat_body, n, t, 300, &e),
	             &e, ERR_AUTH);
	/* upper-case hex and a rotated extra v1 entry are accepted */
	memcpy(upper, kat_sig, sizeof(kat_sig));
	for (i = 16; upper[i]; i++)
		upper[i] = (char)toupper((unsigned char)upper[i]);
	assert_int_equal(webhook_verify("whsec_test", upper, kat_body, n, t, 300,
					&e), 0);
	snprintf(two, sizeof(two), "t=1700000000,v1=%064d,%s", 0, kat_sig + 13);
	assert_int_equal(webhook_verify("whsec_test", two, kat_body, n, t, 300, &e),
			 0);
	/* malformed */
	assert_fails(webhook_verify("whsec_test", "v1=abc", kat_body, n, t, 300, &e),
	             &e, ERR_INVALID);
	assert_int_equal(webhook_verify("whsec_test", "t=1700000000", kat_body, n, t,
					300, &e), -1);
	assert_int_equal(webhook_verify("whsec_test", "t=-5,v1=00", kat_body, n, t,
					300, &e), -1);
	assert_int_equal(webhook_verify("whsec_test", "t=1700000000,v1=5340", kat_body,
					n, t, 300, &e), -1);
	assert_int_equal(webhook_verify("whsec_test", NULL, kat_body, n, t, 300, &e),
			 -1);
	assert_int_equal(webhook_verify("", kat_sig, kat_body, n, t, 300, &e), -1);
}

static void test_build(void **state)
{
	json_t *res = json_pack("{s:i}", "bytes", 42);
	json_t *b = webhook_build_body("id1", "media.probe", "done", res, NULL, 2,
				       1700000000123456LL);
	json_t *p;
	json_error_t jerr;
	char *text;

	(void)state;
	assert_json_str(b, "id", "id1");
	assert_json_str(b, "status", "done");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(b,
		"result"), "bytes")), 42);
	assert_null(json_object_get(b, "error"));
	assert_json_int(b, "attempts", 2);
	assert_json_str(b, "finished_at", "2023-11-14T22:13:20.123456Z");
	text = webhook_build_payload("https://example.com/cb", b);
	/* a payload the queue makes fits the type, which no client may use */
	assert_int_equal(job_check("webhook.deliver", text, NULL), -1);
	p = json_loads(text, 0, &jerr);
	assert_non_null(p);
	assert_int_equal(job_find("webhook.deliver")->check(p, NULL), 0);
	assert_json_str(p, "url", "https://example.com/cb");
	assert_true(json_equal(json_object_get(p, "body"), b));
	json_decref(p);
	free(text);
	json_decref(b);
	json_decref(res);

	b = webhook_build_body("id2", "fail", "failed", NULL, "boom", 3, 0);
	assert_json_str(b, "error", "boom");
	assert_null(json_object_get(b, "result"));
	json_decref(b);
	assert_int_equal(job_check("webhook.deliver", "{\"url\":\"file:///x\","
				    "\"body\":{}}", NULL), -1);
	assert_int_equal(job_check("webhook.deliver", "{\"url\":\"http://a/\"}",
				    NULL), -1);
}

static int deliver(const char *path, struct job_outcome *out)
{
	json_t *body = webhook_build_body("job-9", "noop", "done", NULL, NULL, 1,
					  clock_now_us());
	char *text = webhook_build_payload(ts_url(path), body);
	int rc = ts_run_job("webhook.deliver", "delivery-1", text, 5, out);

	json_decref(body);
	free(text);
	return rc;
}

/* The delivery to `path` fails, retryably or for good as `retryable`
 * says; *out holds the outcome. */
static void deliver_fails(const char *path, int retryable, struct job_outcome *out)
{
	assert_int_equal(deliver(path, out), -1);
	assert_int_equal(out->retryable, retryable);
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	for (; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

/* The Standard Webhooks headers of the last delivery: id, a timestamp
 * equal to X-Wakeq-Signature's t, and the signature recomputed. */
static void check_standard(const char *secret, const char *previous)
{
	char want[WEBHOOK_STD_SIG_MAX];
	long long t = -1;
	struct err e;

	assert_string_equal(ts.last_std_id, "delivery-1");
	assert_int_equal(sscanf(ts.last_sig, "t=%lld,", &t), 1);
	assert_int_equal(atoll(ts.last_std_ts), t);
	assert_int_equal(webhook_sign_standard(secret, previous, "delivery-1", t,
					       ts.last_body.data, ts.last_body.len,
					       want, &e), 0);
	assert_string_equal(ts.last_std_sig, want);
}

static void test_deliver(void **state)
{
	struct job_outcome out;
	struct err e;
	int64_t now;

	(void)state;
	ts.hook_status = 200;
	assert_int_equal(deliver("/hook", &out), 0);
	job_outcome_release(&out);
	assert_string_equal(ts.last_method, "POST");
	assert_string_equal(ts.last_ctype, "application/json");
	assert_string_equal(ts.last_delivery, "delivery-1");
	assert_non_null(strstr(ts.last_body.data, "\"id\":\"job-9\""));
	/* what the receiver got verifies with the shared secret */
	if (webhook_verify("whsec_test", ts.last_sig, ts.last_body.data,
			   ts.last_body.len, clock_now_us() / 1000000, 300, &e) < 0)
		fail_msg("receiver cannot verify: %s (header '%s')", e.msg,
			 ts.last_sig);
	assert_int_equal(webhook_verify("wrong", ts.last_sig, ts.last_body.data,
					ts.last_body.len, clock_now_us() / 1000000,
					300, &e), -1);
	assert_int_equal(count(ts.last_sig, "v1="), 1);
	check_standard("whsec_test", NULL);

	/* rotation: both secrets sign both headers, each verifies alone */
	job_settings.webhook_secret_previous = "old-secret";
	assert_int_equal(deliver("/hook", &out), 0);
	job_outcome_release(&out);
	now = clock_now_us() / 1000000;
	assert_int_equal(webhook_verify("whsec_test", ts.last_sig,
					ts.last_body.data, ts.last_body.len, now,
					300, &e), 0);
	assert_int_equal(webhook_verify("old-secret", ts.last_sig,
					ts.last_body.data, ts.last_body.len, now,
					300, &e), 0);
	assert_int_equal(count(ts.last_sig, "v1="), 2);
	assert_int_equal(count(ts.last_std_sig, "v1,"), 2);
	check_standard("whsec_test", "old-secret");
	/* a "whsec_" secret that is not base64 fails the delivery for good
	 * (the worker refuses it at start-up already) */
	job_settings.webhook_secret_previous = "whsec_?";
	ts.requests = 0;
	deliver_fails("/hook", 0, &out);
	assert_non_null(strstr(out.error, "WEBHOOK_SECRET_PREVIOUS"));
	assert_int_equal(ts.requests, 0); /* nothing sent */
	job_settings.webhook_secret_previous = NULL;

	ts.hook_status = 500;
	deliver_fails("/hook", 1, &out);
	ts.hook_status = 429;
	deliver_fails("/hook", 1, &out);
	assert_true(out.retry_after_s == 7);
	ts.hook_status = 410;
	deliver_fails("/hook", 0, &out);
	ts.hook_status = 200;
	/* redirects are not followed: final */
	deliver_fails("/redirect/1", 0, &out);
	/* refused address: final; no secret: sent unsigned */
	job_settings.allow_private = "";
	deliver_fails("/hook", 0, &out);
	assert_non_null(strstr(out.error, "refused address"));
	job_settings.allow_private = "loopback";
	job_settings.webhook_secret = "";
	assert_int_equal(deliver("/hook", &out), 0);
	job_outcome_release(&out);
	assert_string_equal(ts.last_sig, "");
	assert_string_equal(ts.last_std_sig, "");
	/* unsigned, still identified and dated */
	assert_string_equal(ts.last_std_id, "delivery-1");
	assert_true(llabs(atoll(ts.last_std_ts) - clock_now_us() / 1000000) <= 2);
	job_settings.webhook_secret = "whsec_test";
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_known_answer),
		cmocka_unit_test(test_sign_rotation),
		cmocka_unit_test(test_sign_standard),
		cmocka_unit_test(test_check_settings),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_deliver),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
