/* job.c - the http.request job type.
 *
 * Payload: {url, method="GET", headers={name: value}, body (a string, or
 * any other JSON value sent as JSON), timeout_s=30, expect_status?,
 * auth?: {oidc_audience}}.
 *
 * auth.oidc_audience sends the worker's OIDC identity token for that
 * audience (fetch_gcp_id_token: a private Cloud Run service checks it).
 * The token is a credential for the service it names, so it only goes to
 * that service: the audience must be a URL of the same origin (scheme,
 * host, port) as `url`, and redirects are not followed.
 * Result: {status, headers: {lowercase name: value}, body (UTF-8 text) or
 * body_base64 (other bytes), truncated} with the body capped at
 * fetch_limits.max_response_bytes.
 *
 * Outcome: an answer with expect_status (when given) or any 1xx-3xx (when
 * not) succeeds. 5xx, 408, 429 and network errors/timeouts fail
 * retryably, honouring Retry-After; everything else fails for good. A
 * 429 with Retry-After pushes back the job's group (rate_limit_group:
 * the group waits that long, the attempt does not count).
 */
#include "fetch/fetch.h"

#include "base/mem.h"
#include "crypto/crypto.h"
#include "job/job.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_MAX 86400.0

/* Parses header lines into {lowercase name: value}, joining repeats with
 * ", " as RFC 9110 allows. */
static json_t *headers_json(const struct buf *h)
{
	json_t *obj = json_object();
	const char *p = h->data, *end = h->data + h->len, *eol, *colon;
	char name[128];
	size_t n, i;

	for (; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p || (size_t)(colon - p) >= sizeof(name))
			continue;
		n = (size_t)(colon - p);
		for (i = 0; i < n; i++)
			name[i] = (char)tolower((unsigned char)p[i]);
		name[n] = 0;
		for (colon++; colon < eol && (*colon == ' ' || *colon == '\t'); colon++)
			;
		n = (size_t)(eol - colon);
		while (n && isspace((unsigned char)colon[n - 1]))
			n--;
		json_t *old = json_object_get(obj, name), *v;

		if (old && json_is_string(old)) {
			char *joined = xasprintf("%s, %.*s", json_string_value(old),
						 (int)n, colon);

			v = json_string(joined);
			free(joined);
		} else {
			v = json_stringn(colon, n);
		}
		if (v)
			json_object_set_new(obj, name, v);
	}
	return obj;
}

static json_t *body_json(const struct buf *b, const char **key)
{
	json_t *s = json_stringn(b->data, b->len);
	char *enc;
	size_t n;

	*key = "body";
	if (s)
		return s;
	/* not UTF-8: base64 */
	*key = "body_base64";
	enc = xmalloc(CRYPTO_BASE64_LEN(b->len));
	n = crypto_base64_encode(b->data, b->len, enc);
	s = json_stringn(enc, n);
	free(enc);
	return s;
}

/* A short printable excerpt of an error answer for the message. */
static void excerpt(const struct buf *b, char out[128])
{
	size_t i, n = 0;

	for (i = 0; i < b->len && n < 100; i++) {
		unsigned char c = (unsigned char)b->data[i];

		out[n++] = (char)(c >= 0x20 && c < 0x7f ? c : ' ');
	}
	out[n] = 0;
}

/* Whether two http(s) URLs have the same origin (scheme, host, port;
 * default ports filled in, case ignored). */
static int same_origin(const char *a, const char *b)
{
	CURLU *u[2] = { curl_url(), curl_url() };
	char *p[2][3] = { { NULL } };
	const CURLUPart parts[3] = { CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT };
	const char *url[2] = { a, b };
	int i, k, same = 1;

	for (i = 0; i < 2; i++) {
		if (!u[i] || curl_url_set(u[i], CURLUPART_URL, url[i], 0) != CURLUE_OK) {
			same = 0;
			continue;
		}
		for (k = 0; k < 3; k++)
			if (curl_url_get(u[i], parts[k], &p[i][k], CURLU_DEFAULT_PORT) != CURLUE_OK)
				same = 0;
	}
	for (k = 0; same && k < 3; k++)
		same = p[0][k] && p[1][k] && !strcasecmp(p[0][k], p[1][k]);
	for (i = 0; i < 2; i++) {
		for (k = 0; k < 3; k++)
			curl_free(p[i][k]);
		curl_url_cleanup(u[i]);
	}
	return same;
}

static int run_http_request(const struct job_run *run, struct job_outcome *out)
{
	struct fetch_request req = { 0 };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	const json_t *hdrs, *body, *v;
	const char *key, *bkey, **lines = NULL, *aud = NULL;
	char *body_text = NULL, *auth = NULL, ex[128];
	double timeout = 30, expect = 0;
	size_t n = 0, i = 0;
	struct err e;
	int rc = -1, has_ct = 0;

	job_get_string(run->payload, "url", 1, &req.url, NULL);
	job_get_string(run->payload, "method", 0, &req.method, NULL);
	job_get_number(run->payload, "timeout_s", 0, 0.001, 86400, &timeout, NULL);
	job_get_number(run->payload, "expect_status", 0, 100, 599, &expect, NULL);
	v = json_object_get(run->payload, "auth");
	if (json_is_object(v))
		job_get_string(v, "oidc_audience", 0, &aud, NULL);
	if (aud) {
		char *tok;

		if (!same_origin(aud, req.url)) {
			rc = job_fail(out, 0, "auth.oidc_audience '%.200s' is not the origin of "
				      "url '%.200s': an identity token only goes to the service "
				      "it is minted for", aud, req.url);
			goto out;
		}
		tok = fetch_gcp_id_token(aud, &e);
		if (!tok) {
			rc = job_fail(out, fetch_retryable(e.code), "%s", e.msg);
			goto out;
		}
		auth = xasprintf("Authorization: Bearer %s", tok);
		memset(tok, 0, strlen(tok));
		free(tok);
		req.no_follow = 1;
	}
	hdrs = json_object_get(run->payload, "headers");
	if (json_is_object(hdrs)) {
		lines = xcalloc(json_object_size(hdrs) + 3, sizeof(*lines));
		json_object_foreach((json_t *)hdrs, key, v) {
			if (!json_is_string(v))
				continue;
			if (!strcasecmp(key, "content-type"))
				has_ct = 1;
			/* "Name;" sends an empty header, "Name:" would drop it */
			lines[n++] = *json_string_value(v) ?
				xasprintf("%s: %s", key, json_string_value(v)) :
				xasprintf("%s;", key);
		}
	}
	body = json_object_get(run->payload, "body");
	if (json_is_string(body)) {
		req.body = json_string_value(body);
		req.body_len = json_string_length(body);
	} else if (body && !json_is_null(body)) {
		body_text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		req.body = body_text;
		req.body_len = body_text ? strlen(body_text) : 0;
		if (!has_ct) {
			if (!lines)
				lines = xcalloc(3, sizeof(*lines));
			lines[n++] = xstrdup("Content-Type: application/json");
		}
	}
	if (auth) {
		/* not from the headers object: the check refuses both */
		if (!lines)
			lines = xcalloc(2, sizeof(*lines));
		lines[n++] = auth;
		auth = NULL;
	}
	req.headers = lines;
	req.timeout_s = timeout;
	req.cancel = run->cancel;
	job_progress(run, 0, "request");
	if (fetch_http(&req, &resp, &e) < 0) {
		rc = job_fail(out, e.code != ERR_CANCELLED && fetch_retryable(e.code),
			       "%s", e.msg);
		goto out;
	}
	if (expect ? resp.status != (long)expect :
	    resp.status < 100 || resp.status >= 400) {
		int retry = resp.status >= 500 || resp.status == 429 ||
			    resp.status == 408;

		excerpt(&resp.body, ex);
		rc = job_fail(out, retry, "%s %s: http status %ld",
			       req.method ? req.method : "GET", req.url, resp.status);
		if (expect) {
			size_t l = strlen(out->error);

			snprintf(out->error + l, sizeof(out->error) - l,
				 " (expected %d)", (int)expect);
		}
		if (ex[0]) {
			size_t l = strlen(out->error);

			snprintf(out->error + l, sizeof(out->error) - l, ": %s", ex);
		}
		if (retry && resp.retry_after_s > 0)
			out->retry_after_s = resp.retry_after_s > RETRY_AFTER_MAX ?
				RETRY_AFTER_MAX : resp.retry_after_s;
		/* rate limited, and told until when: the group waits */
		out->rate_limit_group = resp.status == 429 && out->retry_after_s > 0;
		goto out;
	}
	out->result = json_object();
	json_object_set_new(out->result, "status", json_integer(resp.status));
	json_object_set_new(out->result, "headers", headers_json(&resp.headers));
	v = body_json(&resp.body, &bkey);
	json_object_set_new(out->result, bkey, (json_t *)v);
	json_object_set_new(out->result, "truncated", json_boolean(resp.truncated));
	job_progress(run, 100, NULL);
	rc = 0;
out:
	for (i = 0; i < n; i++) {
		memset((void *)lines[i], 0, strlen(lines[i])); /* maybe a token */
		free((void *)lines[i]);
	}
	free(auth);
	free(lines);
	free(body_text);
	fetch_response_release(&resp);
	return rc;
}

void fetch_bind_jobs(void)
{
	job_bind("http.request", run_http_request);
}
