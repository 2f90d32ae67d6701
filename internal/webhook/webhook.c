/* webhook.c - HMAC-SHA256 signatures (internal/crypto) and the
 * webhook.deliver job. The HTTP side goes through internal/fetch, so
 * deliveries obey the same address policy, timeouts and redirect rules as
 * every other outbound request. */
#include "webhook/webhook.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "fetch/fetch.h"
#include "job/job.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVER_TIMEOUT_S 30.0
#define RETRY_AFTER_MAX 86400.0

/* HEX(HMAC-SHA256(secret, "T." + body)) into hex (65 bytes). */
static void mac_hex(const char *secret, int64_t t, const char *body,
		    size_t len, char hex[65])
{
	unsigned char md[CRYPTO_SHA256_LEN];
	struct buf m = BUF_INIT;

	buf_printf(&m, "%" PRId64 ".", t);
	buf_add(&m, body, len);
	crypto_hmac_sha256(secret, strlen(secret), m.data, m.len, md);
	crypto_hex(md, sizeof(md), hex);
	buf_release(&m);
}

int webhook_sign(const char *secret, int64_t unix_time, const char *body,
		 size_t len, char out[WEBHOOK_SIG_MAX])
{
	char hex[65];

	if (!secret || !*secret)
		return -1;
	mac_hex(secret, unix_time, body ? body : "", body ? len : 0, hex);
	snprintf(out, WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=%s", unix_time, hex);
	return 0;
}

int webhook_verify(const char *secret, const char *header, const char *body,
		   size_t len, int64_t now, int64_t tolerance_s,
		   struct err *err)
{
	char want[65], got[65];
	const char *p, *end;
	int64_t t = 0;
	int have_t = 0, match = 0, n_v1 = 0;
	size_t n, i;

	if (!secret || !*secret)
		return err_set(err, ERR_INVALID, "no webhook secret to verify with");
	if (!header)
		return err_set(err, ERR_INVALID, "missing " WEBHOOK_HEADER);
	/* first pass: the timestamp */
	for (p = header; *p; p = *end ? end + 1 : end) {
		end = p + strcspn(p, ",");
		while (p < end && *p == ' ')
			p++;
		if (end - p > 2 && p[0] == 't' && p[1] == '=') {
			char *stop;
			long long v;

			if (!isdigit((unsigned char)p[2]))
				return err_set(err, ERR_INVALID, "bad timestamp in "
					       WEBHOOK_HEADER);
			v = strtoll(p + 2, &stop, 10);
			if (stop != end || end - p > 22)
				return err_set(err, ERR_INVALID, "bad timestamp in "
					       WEBHOOK_HEADER);
			t = v;
			have_t = 1;
		}
	}
	if (!have_t)
		return err_set(err, ERR_INVALID, "no timestamp in " WEBHOOK_HEADER);
	mac_hex(secret, t, body ? body : "", body ? len : 0, want);
	/* second pass: every v1= candidate, each compared in full */
	for (p = header; *p; p = *end ? end + 1 : end) {
		end = p + strcspn(p, ",");
		while (p < end && *p == ' ')
			p++;
		if (end - p < 3 || strncmp(p, "v1=", 3))
			continue;
		n_v1++;
		n = (size_t)(end - p - 3);
		if (n != 64)
			continue;
		for (i = 0; i < 64; i++)
			got[i] = (char)tolower((unsigned char)p[3 + i]);
		got[64] = 0;
		match |= crypto_equal(got, 64, want, 64);
	}
	if (!n_v1)
		return err_set(err, ERR_INVALID, "no v1 signature in " WEBHOOK_HEADER);
	if (!match)
		return err_set(err, ERR_AUTH, "webhook signature mismatch");
	if (t > now + tolerance_s || t < now - tolerance_s)
		return err_set(err, ERR_AUTH, "webhook timestamp %" PRId64
			       " outside tolerance (%" PRId64 " s)", t, tolerance_s);
	return 0;
}

json_t *webhook_build_body(const char *id, const char *type,
			   const char *status, const json_t *result,
			   const char *error, int attempts,
			   int64_t finished_at_us)
{
	char when[CLOCK_RFC3339_LEN];
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(id ? id : ""));
	json_object_set_new(o, "type", json_string(type ? type : ""));
	json_object_set_new(o, "status", json_string(status ? status : ""));
	if (status && !strcmp(status, "done"))
		json_object_set_new(o, "result", result ?
				    json_deep_copy(result) : json_null());
	else
		json_object_set_new(o, "error", error ? json_string(error) :
				    json_null());
	json_object_set_new(o, "attempts", json_integer(attempts));
	json_object_set_new(o, "finished_at",
			    json_string(clock_rfc3339(finished_at_us, when)));
	return o;
}

char *webhook_build_payload(const char *url, const json_t *body)
{
	json_t *p = json_object();
	char *text;

	json_object_set_new(p, "url", json_string(url ? url : ""));
	json_object_set_new(p, "body", body ? json_deep_copy(body) : json_object());
	text = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	if (!text)
		abort(); /* only on allocation failure: strings are valid */
	return text;
}

static int run_deliver(const struct job_run *run, struct job_outcome *out)
{
	struct fetch_request req = { 0 };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	const json_t *body;
	const char *url = NULL, *secret = job_settings.webhook_secret;
	const char *headers[5];
	char sig[WEBHOOK_SIG_MAX], sigline[WEBHOOK_SIG_MAX + 32];
	char delivery[160];
	char *text = NULL;
	struct err e;
	int rc = -1, h = 0, retry;

	job_get_string(run->payload, "url", 1, &url, NULL);
	body = json_object_get(run->payload, "body");
	if (json_is_string(body))
		text = xstrdup(json_string_value(body));
	else
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text || !url) {
		rc = job_fail(out, 0, "bad webhook payload");
		goto out;
	}
	headers[h++] = "Content-Type: application/json";
	headers[h++] = "Expect:"; /* no 100-continue round trip */
	if (secret && *secret) {
		webhook_sign(secret, clock_now_us() / 1000000, text, strlen(text), sig);
		snprintf(sigline, sizeof(sigline), WEBHOOK_HEADER ": %s", sig);
		headers[h++] = sigline;
	}
	if (run->id) {
		snprintf(delivery, sizeof(delivery), "X-Wakeq-Delivery: %.128s",
			 run->id);
		headers[h++] = delivery;
	}
	headers[h] = NULL;
	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.body = text;
	req.body_len = strlen(text);
	req.timeout_s = run->timeout_s > 0 && run->timeout_s < DELIVER_TIMEOUT_S ?
		run->timeout_s : DELIVER_TIMEOUT_S;
	req.no_follow = 1;
	req.cancel = run->cancel;
	if (fetch_http(&req, &resp, &e) < 0) {
		rc = job_fail(out, e.code != ERR_CANCELLED && fetch_retryable(e.code),
			       "webhook %s", e.msg);
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		retry = resp.status >= 500 || resp.status == 429 || resp.status == 408;
		rc = job_fail(out, retry, "webhook POST to '%.200s': http status %ld",
			       url, resp.status);
		if (retry && resp.retry_after_s > 0)
			out->retry_after_s = resp.retry_after_s > RETRY_AFTER_MAX ?
				RETRY_AFTER_MAX : resp.retry_after_s;
		goto out;
	}
	out->result = json_pack("{s:i}", "status", (json_int_t)resp.status);
	rc = 0;
out:
	free(text);
	fetch_response_release(&resp);
	return rc;
}

void webhook_bind_jobs(void)
{
	job_bind("webhook.deliver", run_deliver);
}
