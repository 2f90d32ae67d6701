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
/* Longest delivery id sent (and signed): job ids are 36-byte UUIDs. */
#define ID_MAX 128

/* HMAC-SHA256 under `key` of `prefix` followed by `len` bytes of body. */
static void mac(const void *key, size_t keylen, const char *prefix,
		const char *body, size_t len, unsigned char md[CRYPTO_SHA256_LEN])
{
	struct buf m = BUF_INIT;

	buf_add(&m, prefix, strlen(prefix));
	buf_add(&m, body, len);
	crypto_hmac_sha256(key, keylen, m.data, m.len, md);
	buf_release(&m);
}

/* HEX(HMAC-SHA256(secret, "T." + body)) into hex. */
static void mac_hex(const char *secret, int64_t t, const char *body,
		    size_t len, char hex[CRYPTO_SHA256_HEX_LEN])
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
	mac(secret, strlen(secret), prefix, body, len, md);
	crypto_hex(md, sizeof(md), hex);
}

static int has_secret(const char *s)
{
	return s && *s;
}

int webhook_sign(const char *secret, const char *previous, int64_t unix_time,
		 const char *body, size_t len, char out[WEBHOOK_SIG_MAX])
{
	char hex[CRYPTO_SHA256_HEX_LEN], prev[CRYPTO_SHA256_HEX_LEN];

	if (!has_secret(secret))
		return -1;
	if (!body)
		len = 0;
	mac_hex(secret, unix_time, body ? body : "", len, hex);
	if (!has_secret(previous)) {
		snprintf(out, WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=%s", unix_time,
			 hex);
		return 0;
	}
	mac_hex(previous, unix_time, body ? body : "", len, prev);
	snprintf(out, WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=%s,v1=%s", unix_time,
		 hex, prev);
	return 0;
}

/* The Standard Webhooks key of `secret` into `key` (strlen(secret)
 * bytes): the base64 after "whsec_", or the secret as written. `name` is
 * the setting, for the message. Returns 0, or -1 with err. */
static int std_key(const char *secret, const char *name, unsigned char *key,
		   size_t *keylen, struct err *err)
{
	size_t n = strlen(WEBHOOK_STD_PREFIX);

	if (strncmp(secret, WEBHOOK_STD_PREFIX, n)) {
		*keylen = strlen(secret);
		memcpy(key, secret, *keylen);
		return 0;
	}
	if (crypto_base64_decode(secret + n, strlen(secret + n), key, keylen) < 0
	    || *keylen == 0)
		return err_set(err, ERR_INVALID, "bad %s: a secret that starts "
			       "with '" WEBHOOK_STD_PREFIX "' must go on with "
			       "its key in padded base64", name);
	return 0;
}

/* Appends " v1,BASE64(HMAC(key of secret, id.t.body))" (no space when
 * `out` is empty). */
static int std_entry(const char *secret, const char *name, const char *id,
		     int64_t t, const char *body, size_t len, char *out,
		     size_t cap, struct err *err)
{
	unsigned char *key = xmalloc(strlen(secret) + 1);
	unsigned char md[CRYPTO_SHA256_LEN];
	char b64[CRYPTO_BASE64_LEN(CRYPTO_SHA256_LEN)], *prefix = NULL;
	size_t keylen, used = strlen(out);
	int rc = -1;

	if (std_key(secret, name, key, &keylen, err) < 0)
		goto out;
	prefix = xasprintf("%s.%" PRId64 ".", id, t);
	mac(key, keylen, prefix, body, len, md);
	crypto_base64_encode(md, sizeof(md), b64);
	snprintf(out + used, cap - used, "%sv1,%s", used ? " " : "", b64);
	rc = 0;
out:
	free(prefix);
	memset(key, 0, strlen(secret) + 1);
	free(key);
	return rc;
}

int webhook_sign_standard(const char *secret, const char *previous,
			  const char *id, int64_t unix_time, const char *body,
			  size_t len, char out[WEBHOOK_STD_SIG_MAX],
			  struct err *err)
{
	char sig[WEBHOOK_STD_SIG_MAX] = "";

	if (!has_secret(secret))
		return err_set(err, ERR_INVALID, "no webhook secret to sign with");
	if (!body)
		len = 0;
	if (std_entry(secret, "WEBHOOK_SECRET", id ? id : "", unix_time,
		      body ? body : "", len, sig, sizeof(sig), err) < 0)
		return -1;
	if (has_secret(previous) &&
	    std_entry(previous, "WEBHOOK_SECRET_PREVIOUS", id ? id : "",
		      unix_time, body ? body : "", len, sig, sizeof(sig), err) < 0)
		return -1;
	memcpy(out, sig, sizeof(sig));
	return 0;
}

int webhook_check_settings(struct err *err)
{
	const char *cur = job_settings.webhook_secret;
	const char *prev = job_settings.webhook_secret_previous;
	char sig[WEBHOOK_STD_SIG_MAX];

	if (has_secret(prev) && !has_secret(cur))
		return err_set(err, ERR_INVALID, "WEBHOOK_SECRET_PREVIOUS is set "
			       "but WEBHOOK_SECRET is empty: set the new secret "
			       "in WEBHOOK_SECRET");
	if (!has_secret(cur))
		return 0;
	/* Signing once checks both keys the way every delivery will. */
	return webhook_sign_standard(cur, prev, "check", 0, "", 0, sig, err);
}

int webhook_verify(const char *secret, const char *header, const char *body,
		   size_t len, int64_t now, int64_t tolerance_s,
		   struct err *err)
{
	char want[CRYPTO_SHA256_HEX_LEN], got[CRYPTO_SHA256_HEX_LEN];
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
	const char *previous = job_settings.webhook_secret_previous;
	const char *headers[9];
	char sig[WEBHOOK_SIG_MAX], sigline[WEBHOOK_SIG_MAX + 32];
	char std[WEBHOOK_STD_SIG_MAX], stdline[WEBHOOK_STD_SIG_MAX + 32];
	char id[ID_MAX + 1], delivery[ID_MAX + 32], stdid[ID_MAX + 32];
	char stdtime[64];
	char *text = NULL;
	int64_t now = clock_now_us() / 1000000;
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
	/* One id and one time for both header sets, and what is sent is
	 * exactly what is signed. */
	snprintf(id, sizeof(id), "%s", run->id ? run->id : "");
	headers[h++] = "Content-Type: application/json";
	headers[h++] = "Expect:"; /* no 100-continue round trip */
	if (has_secret(secret)) {
		webhook_sign(secret, previous, now, text, strlen(text), sig);
		snprintf(sigline, sizeof(sigline), WEBHOOK_HEADER ": %s", sig);
		headers[h++] = sigline;
	}
	/* The Standard Webhooks signature covers the id: none without one
	 * (the queue always gives one). */
	if (has_secret(secret) && id[0]) {
		if (webhook_sign_standard(secret, previous, id, now, text,
					  strlen(text), std, &e) < 0) {
			rc = job_fail(out, 0, "cannot sign webhook: %s", e.msg);
			goto out;
		}
		snprintf(stdline, sizeof(stdline), WEBHOOK_STD_SIGNATURE ": %s", std);
		headers[h++] = stdline;
	}
	if (id[0]) {
		snprintf(delivery, sizeof(delivery), "X-Wakeq-Delivery: %s", id);
		headers[h++] = delivery;
		snprintf(stdid, sizeof(stdid), WEBHOOK_STD_ID ": %s", id);
		headers[h++] = stdid;
	}
	snprintf(stdtime, sizeof(stdtime), WEBHOOK_STD_TIMESTAMP ": %" PRId64, now);
	headers[h++] = stdtime;
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
