/* tasks.c - wakes as Cloud Tasks HTTP tasks (REST v2): the naming and
 * timing rules are in wake.h ("Cloud Tasks").
 *
 * Every call goes through fetch_http with the address policy "all": the
 * endpoint is the operator's (Google's API, or a fake on loopback in
 * tests), never a job's. The access token comes from the one cache of
 * the process (fetch_gcp_access_token), so the API's intake threads, the
 * worker's chained wakes and http handlers share one metadata ask.
 */
#include "wake/wake.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "fetch/fetch.h"
#include "log/log.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENDPOINT_DEFAULT "https://cloudtasks.googleapis.com"
#define DEADLINE_MIN_S 15.0    /* Cloud Tasks' bounds of dispatchDeadline */
#define DEADLINE_MAX_S 1800.0
#define NAMES_MAX 8            /* -r1 .. -r7 after the plain name */
/* A name taken by a task whose dispatch is under way: its worker is
 * either starting (it will take our jobs) or ending its drain (it may not
 * see them). The wake that follows under the next name is put off this
 * long, so a cold start is not answered by a storm of instances, and a
 * drain that ended misses the jobs by that much at most. */
#define FOLLOWUP_US 2000000
#define ANSWER_MAX (64 * 1024)

struct wake_tasks {
	char *endpoint, *project, *location, *queue, *url, *service_account,
		*audience;
	int64_t bucket_ms;
	double deadline_s, timeout_s;
	pthread_mutex_t lock;   /* guards project (asked lazily) */
	char meta_project[128];
	atomic_uint_least64_t calls;
};

static int id_ok(const char *s, size_t max, const char *extra)
{
	size_t n = s ? strlen(s) : 0, i;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return 0;
	return 1;
}

static int http_url(const char *u)
{
	return u && (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8)) &&
	       !strpbrk(u, " \t\r\n\"\\");
}

struct wake_tasks *wake_tasks_new(const struct wake_tasks_opts *o, struct err *err)
{
	struct wake_tasks *t;
	const char *ep = o->endpoint && *o->endpoint ? o->endpoint : ENDPOINT_DEFAULT;
	double dl = o->dispatch_deadline_s > 0 ? o->dispatch_deadline_s : DEADLINE_MAX_S;

	if (!http_url(ep)) {
		err_set(err, ERR_INVALID, "bad TASKS_ENDPOINT '%s': expected http:// or https://", ep);
		return NULL;
	}
	if (o->project && *o->project && !id_ok(o->project, 100, "-.:"))
		return err_set(err, ERR_INVALID, "bad TASKS_PROJECT '%s'", o->project), NULL;
	if (!id_ok(o->location, 64, "-"))
		return err_set(err, ERR_INVALID, "bad TASKS_LOCATION '%s': expected a region "
			       "such as us-central1", o->location ? o->location : ""), NULL;
	if (!id_ok(o->queue, 100, "-"))
		return err_set(err, ERR_INVALID, "bad TASKS_QUEUE '%s': expected 1 to 100 of "
			       "[A-Za-z0-9-]", o->queue ? o->queue : ""), NULL;
	if (!o->service_account || !*o->service_account || !strchr(o->service_account, '@') ||
	    strpbrk(o->service_account, " \t\r\n\"\\"))
		return err_set(err, ERR_INVALID, "bad TASKS_SERVICE_ACCOUNT '%s': expected the "
			       "email of the service account whose OIDC token the tasks carry",
			       o->service_account ? o->service_account : ""), NULL;
	if (o->url && *o->url && !http_url(o->url))
		return err_set(err, ERR_INVALID, "bad WAKE_URL '%s': expected http:// or https://",
			       o->url), NULL;
	if (o->audience && strpbrk(o->audience, "\"\\\r\n"))
		return err_set(err, ERR_INVALID, "bad WAKE_AUDIENCE '%s'", o->audience), NULL;
	if (dl < DEADLINE_MIN_S || dl > DEADLINE_MAX_S)
		return err_set(err, ERR_INVALID, "Cloud Tasks holds a wake for %g s to %g s, not "
			       "%g s (WAKE_MAX + 60 s)", DEADLINE_MIN_S, DEADLINE_MAX_S, dl), NULL;
	if (o->bucket_s < 0 || o->bucket_s > 3600)
		return err_set(err, ERR_INVALID, "bad TASKS_BUCKET %g: expected 0.001 to 3600 s",
			       o->bucket_s), NULL;
	t = xcalloc(1, sizeof(*t));
	t->endpoint = xstrndup(ep, strlen(ep) - (ep[strlen(ep) - 1] == '/'));
	t->project = o->project && *o->project ? xstrdup(o->project) : NULL;
	t->location = xstrdup(o->location);
	t->queue = xstrdup(o->queue);
	t->url = o->url && *o->url ? xstrdup(o->url) : NULL;
	t->service_account = xstrdup(o->service_account);
	t->audience = o->audience && *o->audience ? xstrdup(o->audience) : NULL;
	t->bucket_ms = o->bucket_s > 0 ? (int64_t)ceil(o->bucket_s * 1000) : 1000;
	t->deadline_s = dl;
	t->timeout_s = o->timeout_s > 0 ? o->timeout_s : 10;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

/* the strings wake_tasks_new copies */
static const size_t owned[] = {
	offsetof(struct wake_tasks, endpoint), offsetof(struct wake_tasks, project),
	offsetof(struct wake_tasks, location), offsetof(struct wake_tasks, queue),
	offsetof(struct wake_tasks, url), offsetof(struct wake_tasks, service_account),
	offsetof(struct wake_tasks, audience),
};

void wake_tasks_free(struct wake_tasks *t)
{
	if (!t)
		return;
	mem_free_strings(t, owned, sizeof(owned) / sizeof(owned[0]));
	pthread_mutex_destroy(&t->lock);
	free(t);
}

uint64_t wake_tasks_calls(struct wake_tasks *t)
{
	return t ? atomic_load(&t->calls) : 0;
}

/* The project: the setting, else the metadata server's (asked once). */
static int project(struct wake_tasks *t, char out[128], struct err *err)
{
	int rc = 0;

	if (t->project) {
		snprintf(out, 128, "%s", t->project);
		return 0;
	}
	pthread_mutex_lock(&t->lock);
	if (!t->meta_project[0] && fetch_gcp_project(t->meta_project, sizeof(t->meta_project)) < 0) {
		t->meta_project[0] = '\0';
		rc = err_set(err, ERR_INVALID, "TASKS_PROJECT is not set and no metadata server "
			     "names the project");
	}
	snprintf(out, 128, "%s", t->meta_project);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* One call to Cloud Tasks. Returns the HTTP status (the body in resp), or
 * -1 with err when no answer came. */
static long call(struct wake_tasks *t, const char *method, const char *url,
		 const char *body, struct fetch_response *resp, struct err *err)
{
	const char *headers[3];
	struct fetch_request req;
	char *token, *auth;
	long rc = -1;

	token = fetch_gcp_access_token(NULL, err);
	if (!token)
		return err_wrap(err, "cannot call Cloud Tasks");
	auth = xasprintf("Authorization: Bearer %s", token);
	headers[0] = auth;
	headers[1] = "Content-Type: application/json";
	headers[2] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.timeout_s = t->timeout_s;
	req.no_follow = 1;
	req.allow_private = "all"; /* the operator's endpoint */
	req.max_response_bytes = ANSWER_MAX;
	atomic_fetch_add(&t->calls, 1);
	if (fetch_http(&req, resp, err) == 0)
		rc = resp->status;
	else
		err_wrap(err, "cannot reach Cloud Tasks");
	memset(token, 0, strlen(token));
	memset(auth, 0, strlen(auth));
	free(token);
	free(auth);
	return rc;
}

/* The error of a Cloud Tasks answer: {"error":{"code","message","status"}}. */
static int answer_error(const char *what, long status, const struct buf *body,
			struct err *err)
{
	json_t *j = json_loadb(body->data, body->len, 0, NULL);
	json_t *e = json_object_get(j, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *st = json_string_value(json_object_get(e, "status"));
	enum err_code code = ERR_INVALID;

	if (status >= 500 || status == 429 || status == 408)
		code = ERR_UNAVAILABLE;
	else if (status == 401 || status == 403)
		code = ERR_AUTH;
	err_set(err, code, "Cloud Tasks %s failed: http status %ld%s%s%s%.200s", what, status,
		st ? " " : "", st ? st : "", msg ? ": " : "", msg ? msg : "");
	json_decref(j);
	return -1;
}

/* An int32 field of a task (absent = 0; proto3 JSON writes it as a
 * number, some write it as a string), or -1 when unreadable. */
static int64_t count_field(const json_t *task, const char *name)
{
	const json_t *v = json_object_get(task, name);

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return -1;
}

/* Whether a dispatch of the task is under way: its last attempt was
 * dispatched and has no response time yet (without lastAttempt: it was
 * dispatched more often than answered). A task that exists with none
 * under way waits for its (next) dispatch: completed tasks and those out
 * of attempts are gone. */
static int in_flight(const struct buf *body)
{
	json_t *j = json_loadb(body->data, body->len, 0, NULL);
	json_t *last = json_object_get(j, "lastAttempt");
	int64_t d = count_field(j, "dispatchCount"), r = count_field(j, "responseCount");
	int busy;

	if (json_is_object(last))
		busy = json_object_get(last, "dispatchTime") &&
		       !json_object_get(last, "responseTime");
	else
		busy = d < 0 || r < 0 || d > r; /* unreadable: as if under way */
	json_decref(j);
	return busy;
}

static char *task_body(const struct wake_tasks *t, const char *name, const char *url,
		       const char *audience, int64_t when_us)
{
	char stamp[CLOCK_RFC3339_LEN], deadline[32];
	json_t *body;
	char *s;

	snprintf(deadline, sizeof(deadline), "%.3fs", t->deadline_s);
	body = json_pack("{s:{s:s,s:s,s:s,s:{s:s,s:s,s:{s:s},s:s,s:{s:s,s:s}}},s:s}",
			 "task",
			 "name", name,
			 "scheduleTime", clock_rfc3339(when_us, stamp),
			 "dispatchDeadline", deadline,
			 "httpRequest",
			 "url", url,
			 "httpMethod", "POST",
			 "headers", "Content-Type", "application/json",
			 "body", "e30=", /* base64 of {} */
			 "oidcToken",
			 "serviceAccountEmail", t->service_account,
			 "audience", audience,
			 "responseView", "BASIC");
	if (!body)
		abort();
	s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		abort();
	return s;
}

int wake_tasks_arrange(struct wake_tasks *t, const char *url, int64_t at_us,
		       int slot, struct err *err)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char hex[CRYPTO_SHA256_HEX_LEN], proj[128], base[96], slotpart[16];
	char *parent = NULL, *aud = NULL;
	int64_t now = clock_now_us(), bucket, start_us, when;
	int r, rc = -1;

	url = url && *url ? url : t->url;
	if (!url || !http_url(url))
		return err_set(err, ERR_INVALID, "no /wake URL to aim the task at (WAKE_URL)");
	if (project(t, proj, err) < 0)
		return -1;
	if (at_us <= 0 || at_us < now)
		at_us = now;
	bucket = at_us / 1000 / t->bucket_ms;
	start_us = bucket * t->bucket_ms * 1000;
	/* A bucket ahead: at its start (the drain holds for the rest). One
	 * under way: at the wanted time, so a wake that came early and ended
	 * is not repeated at once until the job is due. */
	when = start_us > now ? start_us : at_us;
	crypto_sha256(url, strlen(url), md);
	crypto_hex(md, 4, hex);
	slotpart[0] = '\0';
	if (slot > 0)
		snprintf(slotpart, sizeof(slotpart), "-%d", slot);
	snprintf(base, sizeof(base), "wake-%s-%lld%s", hex, (long long)bucket, slotpart);
	parent = xasprintf("projects/%s/locations/%s/queues/%s", proj, t->location, t->queue);
	aud = t->audience ? xstrdup(t->audience) : fetch_gcp_audience(url);
	for (r = 0; r < NAMES_MAX; r++) {
		struct fetch_response resp = FETCH_RESPONSE_INIT;
		char name[512], *body, *u;
		long st;
		int busy;

		if (r == 0)
			snprintf(name, sizeof(name), "%s/tasks/%s", parent, base);
		else
			snprintf(name, sizeof(name), "%s/tasks/%s-r%d", parent, base, r);
		body = task_body(t, name, url, aud, when);
		u = xasprintf("%s/v2/%s/tasks", t->endpoint, parent);
		st = call(t, "POST", u, body, &resp, err);
		free(u);
		free(body);
		if (st == 200) {
			log_debug("wake task created", "task", strrchr(name, '/') + 1);
			fetch_response_release(&resp);
			rc = 1;
			goto out;
		}
		if (st != 409) {
			if (st > 0)
				answer_error("tasks.create", st, &resp.body, err);
			fetch_response_release(&resp);
			goto out;
		}
		/* The name is taken: by a task still to come, or by one that
		 * ran (or runs) already and may have missed our jobs. */
		u = xasprintf("%s/v2/%s", t->endpoint, name);
		st = call(t, "GET", u, NULL, &resp, err);
		free(u);
		busy = st == 200 && in_flight(&resp.body);
		if (st == 200 && !busy) {
			log_debug("wake task pending already", "task", strrchr(name, '/') + 1);
			fetch_response_release(&resp);
			rc = 0;
			goto out;
		}
		if (st != 200 && st != 404) {
			if (st > 0)
				answer_error("tasks.get", st, &resp.body, err);
			fetch_response_release(&resp);
			goto out;
		}
		fetch_response_release(&resp);
		if (busy && when < clock_now_us() + FOLLOWUP_US)
			when = clock_now_us() + FOLLOWUP_US;
	}
	err_set(err, ERR_CONFLICT, "Cloud Tasks: %d wakes of '%s' were taken in one bucket "
		"of %lld ms already", NAMES_MAX, base, (long long)t->bucket_ms);
out:
	free(parent);
	free(aud);
	return rc;
}
