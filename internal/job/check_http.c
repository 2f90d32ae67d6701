/* check_http.c - payload checks of http.request and webhook.deliver.
 *
 * Shape only: the address policy (ALLOW_PRIVATE_NETWORKS) is enforced by
 * the worker on the address actually connected, not here; so is the rule
 * that an identity token (auth.oidc_audience) only goes to the origin it
 * is minted for (fetch/job.c).
 */
#include "job/checks.h"

#include <string.h>
#include <strings.h>

#define URL_MAX 8192

static int check_url(const json_t *payload, const char *field, struct err *err)
{
	const char *url = NULL;
	const char *host;
	size_t i, n;

	if (job_get_string(payload, field, 1, &url, err) < 0)
		return -1;
	n = strlen(url);
	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
		return err_set(err, ERR_INVALID,
			       "payload field '%s' must be an http:// or https:// url",
			       field);
	if (n > URL_MAX)
		return err_set(err, ERR_INVALID, "payload field '%s' is too long", field);
	for (i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return err_set(err, ERR_INVALID,
				       "payload field '%s' must not contain spaces or "
				       "control characters", field);
	host = strstr(url, "://") + 3;
	if (!*host || strchr("/?#", *host))
		return err_set(err, ERR_INVALID, "payload field '%s' has no host", field);
	return 0;
}

/* RFC 9110 token characters. */
static int token(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (!n || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!(((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("!#$%&'*+-.^_`|~", s[i])))
			return 0;
	return 1;
}

int job_check_http_request(const json_t *payload, struct err *err)
{
	const char *method = NULL, *key;
	const json_t *h, *v;
	double d;

	if (check_url(payload, "url", err) < 0)
		return -1;
	if (job_get_string(payload, "method", 0, &method, err) < 0)
		return -1;
	if (method && !token(method, 32))
		return err_set(err, ERR_INVALID, "payload field 'method' is not an "
			       "http method");
	h = json_object_get(payload, "headers");
	if (h && !json_is_null(h)) {
		if (!json_is_object(h))
			return err_set(err, ERR_INVALID,
				       "payload field 'headers' must be an object of strings");
		json_object_foreach((json_t *)h, key, v) {
			if (!token(key, 256))
				return err_set(err, ERR_INVALID, "bad header name '%.64s'",
					       key);
			if (!json_is_string(v))
				return err_set(err, ERR_INVALID,
					       "header '%.64s' must be a string", key);
			if (strpbrk(json_string_value(v), "\r\n") ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return err_set(err, ERR_INVALID,
					       "header '%.64s' must be one line", key);
		}
	}
	if (job_get_number(payload, "timeout_s", 0, 0.001, 86400, &d, err) < 0)
		return -1;
	if (job_get_number(payload, "expect_status", 0, 100, 599, &d, err) < 0)
		return -1;
	h = json_object_get(payload, "auth");
	if (h && !json_is_null(h)) {
		const char *aud = NULL;

		if (!json_is_object(h))
			return err_set(err, ERR_INVALID, "payload field 'auth' must be an object "
				       "{\"oidc_audience\": \"https://...\"}");
		json_object_foreach((json_t *)h, key, v)
			if (strcmp(key, "oidc_audience"))
				return err_set(err, ERR_INVALID, "payload field 'auth.%.64s' is "
					       "unknown (known: oidc_audience)", key);
		if (job_get_string(h, "oidc_audience", 1, &aud, err) < 0)
			return err_wrap(err, "payload field 'auth'");
		if (!*aud || strlen(aud) > 2048 || strpbrk(aud, "\r\n"))
			return err_set(err, ERR_INVALID, "payload field 'auth.oidc_audience' must "
				       "be one line of 1 to 2048 characters");
		json_object_foreach(json_object_get(payload, "headers"), key, v)
			if (!strcasecmp(key, "authorization"))
				return err_set(err, ERR_INVALID, "payload field 'auth' and an "
					       "Authorization header exclude each other");
	}
	return 0;
}

int job_check_webhook_deliver(const json_t *payload, struct err *err)
{
	const json_t *body;

	if (check_url(payload, "url", err) < 0)
		return -1;
	body = json_object_get(payload, "body");
	if (!body || json_is_null(body))
		return err_set(err, ERR_INVALID, "payload field 'body' is required");
	return 0;
}
