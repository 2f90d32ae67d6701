/* http.c - http handlers: the job pushed to a URL, as Cloud Tasks pushes
 * a task (docs/HANDLERS.md "http handlers").
 *
 * One POST per run: the body is the request a persistent handler gets
 * ({id, type, queue, attempt, max_attempts, deadline, trace, payload}),
 * with the job's id, type, queue and attempt also as X-Wakeq-* headers
 * and its trace as X-Cloud-Trace-Context and traceparent. A 2xx answer's
 * body (JSON; empty = null) is the result, at most result_max bytes. 408,
 * 429, 5xx, timeouts and network errors are retryable (Retry-After
 * honoured; a 429 with it pushes back the job's group: rate_limit_group);
 * any other answer fails the job for good. Redirects are not
 * followed: a push goes to the configured URL or nowhere.
 *
 * Auth: an OIDC identity token for oidc_audience from the metadata server
 * (fetch_gcp_id_token: cached for the process, renewed before it
 * expires), or a static bearer read once at start-up from the variable
 * bearer_env names. The address policy (ALLOW_PRIVATE_NETWORKS) applies
 * to the URL's address unless the entry says allow_private, which lets
 * it be loopback, private or link-local (never the metadata server).
 */
#include "handler/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "fetch/fetch.h"
#include "log/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RETRY_AFTER_MAX_S 86400.0
/* Networks an entry with allow_private may reach, on top of the worker's
 * ALLOW_PRIVATE_NETWORKS; "metadata" is left out on purpose. */
#define ENTRY_PRIVATE "loopback,private,link-local"


/* A short printable excerpt of an answer for the job's error. */
static void excerpt(const struct buf *b, char out[160])
{
	size_t i, n = 0;

	for (i = 0; i < b->len && n < 150; i++) {
		unsigned char c = (unsigned char)b->data[i];

		out[n++] = (char)(c >= 0x20 && c < 0x7f ? c : ' ');
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static int run_http(const struct job_run *run, struct job_outcome *out)
{
	const struct job_type *t = job_find(run->type);
	const struct handler *h = t ? t->data : NULL;
	struct handler_rt *rt = h ? h->rt : NULL;
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct fetch_request req;
	const char *headers[12];
	char *lines[12], *body = NULL, *policy = NULL, *token = NULL, ex[160];
	size_t nl = 0, i;
	struct err e;
	int rc = -1, entered = 0;

	if (!rt)
		return job_fail(out, 0, "no handler for job type '%s' in this worker", run->type);
	if (gate_enter(rt, run) < 0)
		return job_fail(out, 0, "cancelled");
	entered = 1;
	lines[nl++] = xstrdup("Content-Type: application/json");
	lines[nl++] = xstrdup("Accept: application/json");
	lines[nl++] = xasprintf("X-Wakeq-Job-Id: %s", run->id);
	lines[nl++] = xasprintf("X-Wakeq-Job-Type: %s", run->type);
	lines[nl++] = xasprintf("X-Wakeq-Attempt: %d", run->attempt);
	if (run->queue)
		lines[nl++] = xasprintf("X-Wakeq-Queue: %s", run->queue);
	if (run->trace && strlen(run->trace) == 32) {
		unsigned char span[8] = { 0 };
		unsigned long long sid;

		if (getrandom(span, sizeof(span), 0) != (ssize_t)sizeof(span))
			span[0] = 1;
		span[0] |= 1; /* never all zero */
		memcpy(&sid, span, sizeof(sid));
		sid &= 0x7fffffffffffffffULL;
		lines[nl++] = xasprintf("X-Cloud-Trace-Context: %s/%llu;o=1", run->trace, sid);
		lines[nl++] = xasprintf("traceparent: 00-%s-%016llx-01", run->trace, sid);
	}
	if (h->oidc_audience) {
		token = fetch_gcp_id_token(h->oidc_audience, &e);
		if (!token) {
			rc = job_fail(out, fetch_retryable(e.code), "handler '%s': %s", h->type,
				      e.msg);
			goto out;
		}
		lines[nl++] = xasprintf("Authorization: Bearer %s", token);
	} else if (rt->bearer) {
		lines[nl++] = xasprintf("Authorization: Bearer %s", rt->bearer);
	}
	for (i = 0; i < nl; i++)
		headers[i] = lines[i];
	headers[nl] = NULL;
	body = handler_request_json(run);
	if (h->allow_private)
		policy = xasprintf("%s,%s", job_settings.allow_private ? job_settings.allow_private
								   : "", ENTRY_PRIVATE);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = h->url;
	req.headers = headers;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_s = run->timeout_s;
	req.no_follow = 1;
	req.cancel = run->cancel;
	req.allow_private = policy;
	req.max_response_bytes = h->result_max + 1;
	if (fetch_http(&req, &resp, &e) < 0) {
		rc = job_fail(out, e.code != ERR_CANCELLED && fetch_retryable(e.code),
			      "handler '%s': %s", h->type, e.msg);
		goto out;
	}
	if (resp.status >= 200 && resp.status <= 299) {
		json_error_t je;
		size_t k = 0;

		if (resp.truncated) {
			rc = job_fail(out, 0, "handler '%s' answered a result larger than %lld "
				      "bytes (result_max)", h->type, (long long)h->result_max);
			goto out;
		}
		while (k < resp.body.len && strchr(" \t\r\n", resp.body.data[k]))
			k++;
		if (k == resp.body.len) {
			out->result = NULL; /* no body: null */
			rc = 0;
			goto out;
		}
		out->result = json_loadb(resp.body.data, resp.body.len,
					 JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!out->result) {
			rc = job_fail(out, 0, "handler '%s' answered %ld with invalid JSON: %s "
				      "(line %d, column %d)", h->type, resp.status, je.text,
				      je.line, je.column);
			goto out;
		}
		rc = 0;
		goto out;
	}
	excerpt(&resp.body, ex);
	if (resp.status == 408 || resp.status == 429 || resp.status >= 500) {
		rc = job_fail(out, 1, "handler '%s' answered %ld%s%s", h->type, resp.status,
			      ex[0] ? ": " : "", ex);
		if (resp.retry_after_s > 0)
			out->retry_after_s = resp.retry_after_s > RETRY_AFTER_MAX_S ?
				RETRY_AFTER_MAX_S : resp.retry_after_s;
		out->rate_limit_group = resp.status == 429 && out->retry_after_s > 0;
		goto out;
	}
	rc = job_fail(out, 0, "handler '%s' answered %ld%s%s%s", h->type, resp.status,
		      resp.status >= 300 && resp.status < 400 ? " (redirects are not followed)" : "",
		      ex[0] ? ": " : "", ex);
out:
	for (i = 0; i < nl; i++) {
		memset(lines[i], 0, strlen(lines[i])); /* one of them is a credential */
		free(lines[i]);
	}
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	free(body);
	free(policy);
	fetch_response_release(&resp);
	if (entered)
		gate_leave(rt);
	return rc;
}

int http_bind(struct handler *h, const struct handler_opts *o, struct err *err)
{
	struct handler_rt *rt;
	const char *secret = NULL;

	if (h->bearer_env) {
		secret = getenv(h->bearer_env);
		if (!secret || !*secret)
			return err_set(err, ERR_INVALID, "handler '%s' (%s): bearer_env '%s' is not "
				       "set in the worker's environment", h->type, h->origin,
				       h->bearer_env);
		if (strpbrk(secret, "\r\n"))
			return err_set(err, ERR_INVALID, "handler '%s' (%s): bearer_env '%s' holds "
				       "a line break", h->type, h->origin, h->bearer_env);
	}
	rt = xcalloc(1, sizeof(*rt));
	rt->h = h;
	rt->o = o;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_cond_init(&rt->cv, NULL);
	rt->bearer = secret ? xstrdup(secret) : NULL;
	h->rt = rt;
	job_bind(h->type, run_http);
	return 0;
}
