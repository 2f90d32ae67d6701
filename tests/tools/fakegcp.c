/* fakegcp - the Google services wakeq talks to, faked on loopback and
 * speaking their real protocols, for the integration tests: the
 * metadata server (identity and access tokens, the project), Cloud
 * Tasks (REST v2: tasks.create and tasks.get, and the dispatch of HTTP
 * tasks as Cloud Tasks does it) and Cloud Storage (the JSON API's media
 * download and upload, and V4 HMAC signed URLs on the XML API).
 *
 *   fakegcp [--port N] [--token-ttl S] [--max-dispatches N]
 *           [--min-backoff S] [--max-backoff S] [--max-attempts N]
 *           [--paused 1] [--bucket B]... [--deny-bucket B]...
 *           [--hmac-id ID --hmac-secret S]
 *
 * Prints the port on the first line of stdout, then serves until killed:
 *
 *   GET /computeMetadata/v1/instance/service-accounts/default/identity
 *       ?audience=A[&format=full]   a JWT {aud, email, exp = now + ttl}
 *   GET /computeMetadata/v1/instance/service-accounts/default/token
 *       [?scopes=S]                 {access_token, expires_in, token_type}
 *   GET /computeMetadata/v1/project/project-id      "fake-project"
 *       (all three want "Metadata-Flavor: Google": 403 otherwise)
 *
 *   POST /v2/projects/P/locations/L/queues/Q/tasks  tasks.create
 *       Needs "Authorization: Bearer T" with an access token handed out
 *       above and not expired (401 UNAUTHENTICATED), a task with an
 *       httpRequest (url, httpMethod, oidcToken.serviceAccountEmail), a
 *       dispatchDeadline of 15s..1800s, a scheduleTime in RFC 3339 and a
 *       name under the URL's queue (400 INVALID_ARGUMENT); a name in use
 *       or used before (completed tasks keep theirs) answers 409
 *       ALREADY_EXISTS. Answers the Task.
 *   GET /v2/projects/P/locations/L/queues/Q/tasks/ID  tasks.get: the
 *       Task (dispatchCount, responseCount; proto3 leaves zeros out), or
 *       404 NOT_FOUND once it completed.
 *
 *   Dispatch: a task due (scheduleTime passed) is POSTed to its url with
 *   its body and headers, "Authorization: Bearer" an OIDC JWT {aud =
 *   oidcToken.audience, email = serviceAccountEmail} and the
 *   X-CloudTasks-* headers, holding the request for up to the dispatch
 *   deadline; at most --max-dispatches (100) at once. A 2xx answer
 *   completes the task; anything else (or no answer) is retried after
 *   min-backoff (0.1 s) doubling to max-backoff (10 s), up to
 *   --max-attempts (100) dispatches, then the task is dropped.
 *
 *   GET /fake/tasks     every task ever created, with its life:
 *       {tasks: [{id, state (pending, dispatching, done, dropped),
 *       created, schedule, dispatches, responses, statuses [..],
 *       first_dispatch, last_end (epoch s), url, audience, email,
 *       deadline_s, auth_aud (the aud of the last token sent)}],
 *       creates, conflicts, gets, refused}
 *   Cloud Storage (buckets from --bucket; objects kept in memory, 64 MiB
 *   a request at most). JSON API calls need "Authorization: Bearer" an
 *   access token handed out above (401 authError otherwise); errors are
 *   {error: {code, message, errors: [{reason, message, domain}]}}:
 *   GET /storage/v1/b/B/o/O?alt=media   the object's bytes (404 notFound
 *       for a missing object or bucket; 403 forbidden for a
 *       --deny-bucket); without alt=media its metadata
 *   POST /upload/storage/v1/b/B/o?uploadType=media&name=O   stores the
 *       body (Content-Type kept), answers the object resource
 *   PUT|GET /B/O?X-Goog-Algorithm=GOOG4-HMAC-SHA256&X-Goog-Credential=...
 *       a V4 signed URL (XML API): the signature is checked with the
 *       --hmac-id/--hmac-secret key (host and any signed content-type;
 *       UNSIGNED-PAYLOAD), expiry and date too; XML errors 403
 *       SignatureDoesNotMatch / 400 ExpiredToken... as Cloud Storage.
 *   GET /fake/objects   {objects: [{bucket, name, size, sha256,
 *       content_type, via}], signed_ok, signed_refused, downloads,
 *       uploads}
 *
 *   GET /fake/metadata  {id_asks, access_asks, audiences: [...]}
 *   POST /fake/resume   starts dispatching when started with --paused
 *       (as a Cloud Tasks queue paused, then resumed: tasks wait)
 */
#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"
#include "httpd/httpd.h"
#include "fakeserve.h"
#include "toolargs.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum state { PENDING, DISPATCHING, DONE, DROPPED };
static const char *const state_names[] = { "pending", "dispatching", "done", "dropped" };

struct task {
	struct task *next;
	char *name;              /* projects/P/locations/L/queues/Q/tasks/ID */
	char *url, *method, *audience, *email, *body;
	json_t *headers;         /* httpRequest.headers */
	double deadline_s;
	int64_t created_us, schedule_us, first_dispatch_us, last_dispatch_us, last_end_us;
	long last_status;        /* of the last ended attempt, 0 = no answer */
	int dispatches, responses;
	json_t *statuses;        /* the status of each dispatch (0 = none) */
	char auth_aud[512];
	enum state state;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct task *tasks, **tail = &tasks;
static int in_flight, paused;
static int max_dispatches = 100, max_attempts = 100;
static double min_backoff = 0.1, max_backoff = 10;
static int64_t ttl_s = 3600;
static int creates, conflicts, gets, refused, id_asks, access_asks;
static json_t *audiences;
static struct {
	char token[64];
	int64_t exp_us;
} issued[256];
static int naccess;

/* ---- small helpers ------------------------------------------------------- */

static char *jwt(const char *aud, const char *email, int64_t exp_s, int n)
{
	char *payload, *tok;

	payload = xasprintf("{\"aud\":\"%.400s\",\"azp\":\"fake\",\"email\":\"%.200s\","
			    "\"email_verified\":true,\"exp\":%lld,\"iat\":%lld,"
			    "\"iss\":\"https://accounts.google.com\",\"n\":%d}",
			    aud, email, (long long)exp_s, (long long)(clock_now_us() / 1000000), n);
	tok = fake_jwt(payload, "ZmFrZXNpZ25hdHVyZQ");
	free(payload);
	return tok;
}

static void google_error(struct httpd_request *req, unsigned code, const char *status,
			 const char *msg)
{
	httpd_respond_json(req, code, json_pack("{s:{s:i,s:s,s:s}}", "error", "code", (int)code,
						"message", msg, "status", status));
}

static json_t *task_json(const struct task *t)
{
	char c[CLOCK_RFC3339_LEN], s[CLOCK_RFC3339_LEN], d[32];
	json_t *o;

	clock_rfc3339(t->created_us, c);
	clock_rfc3339(t->schedule_us, s);
	snprintf(d, sizeof(d), "%gs", t->deadline_s);
	o = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s}", "name", t->name, "createTime", c,
		      "scheduleTime", s, "dispatchDeadline", d, "httpRequest", "url", t->url,
		      "httpMethod", t->method, "view", "BASIC");
	/* proto3 JSON leaves out zero values */
	if (t->dispatches)
		json_object_set_new(o, "dispatchCount", json_integer(t->dispatches));
	if (t->responses)
		json_object_set_new(o, "responseCount", json_integer(t->responses));
	if (t->first_dispatch_us) {
		json_t *last;

		clock_rfc3339(t->first_dispatch_us, c);
		json_object_set_new(o, "firstAttempt", json_pack("{s:s}", "dispatchTime", c));
		clock_rfc3339(t->last_dispatch_us, c);
		last = json_pack("{s:s}", "dispatchTime", c);
		if (t->last_end_us >= t->last_dispatch_us) {
			/* google.rpc.Status of the attempt */
			int code = t->last_status >= 200 && t->last_status <= 299 ? 0 :
				   t->last_status == 0 ? 14 : t->last_status == 404 ? 5 :
				   t->last_status >= 500 ? 13 : 9;

			clock_rfc3339(t->last_end_us, c);
			json_object_set_new(last, "responseTime", json_string(c));
			json_object_set_new(last, "responseStatus",
					    json_pack("{s:i,s:s}", "code", code, "message",
						      code ? "attempt failed" : "OK"));
		}
		json_object_set_new(o, "lastAttempt", last);
	}
	return o;
}

static struct task *find(const char *name)
{
	struct task *t;

	for (t = tasks; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

/* ---- metadata ------------------------------------------------------------- */

static void metadata(struct httpd_request *req, const char *path)
{
	const char *flavor = httpd_header(req, "Metadata-Flavor");
	char body[512];
	int n;

	if (!flavor || strcmp(flavor, "Google")) {
		httpd_respond(req, 403, "text/html", "Missing Metadata-Flavor:Google header.", 38);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/project/project-id")) {
		httpd_respond(req, 200, "application/text", "fake-project", 12);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/identity")) {
		const char *aud = httpd_query(req, "audience");
		char *tok;

		if (!aud || !*aud) {
			httpd_respond(req, 400, "text/html", "non-empty audience parameter required", 37);
			return;
		}
		pthread_mutex_lock(&mu);
		n = ++id_asks;
		json_array_append_new(audiences, json_string(aud));
		pthread_mutex_unlock(&mu);
		tok = jwt(aud, "default@fake-project.iam.gserviceaccount.com",
			  clock_now_us() / 1000000 + ttl_s, n);
		httpd_respond(req, 200, "text/html", tok, strlen(tok));
		free(tok);
		return;
	}
	if (!strcmp(path, "/computeMetadata/v1/instance/service-accounts/default/token")) {
		pthread_mutex_lock(&mu);
		n = ++access_asks;
		if (naccess == (int)(sizeof(issued) / sizeof(issued[0])))
			naccess = 0; /* the oldest are forgotten */
		snprintf(issued[naccess].token, sizeof(issued[naccess].token),
			 "ya29.fake-%d-%lld", n, (long long)clock_now_us());
		issued[naccess].exp_us = clock_now_us() + ttl_s * 1000000;
		n = snprintf(body, sizeof(body), "{\"access_token\":\"%s\",\"expires_in\":%lld,"
			     "\"token_type\":\"Bearer\"}", issued[naccess].token, (long long)ttl_s);
		naccess++;
		pthread_mutex_unlock(&mu);
		httpd_respond(req, 200, "application/json", body, (size_t)n);
		return;
	}
	httpd_respond(req, 404, "text/html", "not found", 9);
}

/* ---- Cloud Tasks ------------------------------------------------------------ */

static int authorized(struct httpd_request *req)
{
	const char *a = httpd_header(req, "Authorization");
	int64_t now = clock_now_us();
	int i, ok = 0;

	if (!a || strncmp(a, "Bearer ", 7))
		return 0;
	pthread_mutex_lock(&mu);
	for (i = 0; i < (int)(sizeof(issued) / sizeof(issued[0])); i++)
		if (issued[i].token[0] && !strcmp(issued[i].token, a + 7) && now < issued[i].exp_us)
			ok = 1;
	pthread_mutex_unlock(&mu);
	return ok;
}

static int id_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 500)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

static void create(struct httpd_request *req, const char *parent)
{
	size_t len;
	const char *raw = httpd_body(req, &len);
	json_t *root = json_loadb(raw ? raw : "", raw ? len : 0, 0, NULL);
	json_t *task = json_object_get(root, "task"), *hr = json_object_get(task, "httpRequest");
	json_t *oidc = json_object_get(hr, "oidcToken");
	const char *name = json_string_value(json_object_get(task, "name"));
	const char *url = json_string_value(json_object_get(hr, "url"));
	const char *method = json_string_value(json_object_get(hr, "httpMethod"));
	const char *email = json_string_value(json_object_get(oidc, "serviceAccountEmail"));
	const char *aud = json_string_value(json_object_get(oidc, "audience"));
	const char *dl = json_string_value(json_object_get(task, "dispatchDeadline"));
	const char *st = json_string_value(json_object_get(task, "scheduleTime"));
	const char *b64 = json_string_value(json_object_get(hr, "body"));
	char prefix[600], *end = NULL;
	unsigned char *body = NULL;
	size_t blen = 0;
	double deadline = 600;
	int64_t when = clock_now_us();
	struct task *t;

	if (!authorized(req)) {
		pthread_mutex_lock(&mu);
		refused++;
		pthread_mutex_unlock(&mu);
		google_error(req, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
		goto out;
	}
	snprintf(prefix, sizeof(prefix), "%s/tasks/", parent);
	if (!json_is_object(task) || !json_is_object(hr) || !url ||
	    (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) ||
	    (method && strcmp(method, "POST") && strcmp(method, "GET")) ||
	    !json_is_object(oidc) || !email || !*email) {
		google_error(req, 400, "INVALID_ARGUMENT",
			     "task.httpRequest needs url, httpMethod and oidcToken.serviceAccountEmail");
		goto out;
	}
	if (!name || strncmp(name, prefix, strlen(prefix)) || !id_ok(name + strlen(prefix))) {
		google_error(req, 400, "INVALID_ARGUMENT", "Task name is invalid or not in this queue");
		goto out;
	}
	if (dl) {
		deadline = strtod(dl, &end);
		if (!end || strcmp(end, "s") || deadline < 15 || deadline > 1800) {
			google_error(req, 400, "INVALID_ARGUMENT",
				     "dispatchDeadline must be between 15s and 1800s");
			goto out;
		}
	}
	if (st && clock_parse_rfc3339(st, &when) < 0) {
		google_error(req, 400, "INVALID_ARGUMENT", "scheduleTime is not RFC 3339");
		goto out;
	}
	if (b64) {
		body = xmalloc(strlen(b64) + 1);
		if (crypto_base64_decode(b64, strlen(b64), body, &blen) < 0) {
			google_error(req, 400, "INVALID_ARGUMENT", "body is not base64");
			goto out;
		}
	}
	pthread_mutex_lock(&mu);
	if (find(name)) {
		conflicts++;
		pthread_mutex_unlock(&mu);
		google_error(req, 409, "ALREADY_EXISTS", "Requested entity already exists");
		goto out;
	}
	creates++;
	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	t->url = xstrdup(url);
	t->method = xstrdup(method ? method : "POST");
	t->email = xstrdup(email);
	t->audience = xstrdup(aud && *aud ? aud : url);
	t->body = xstrndup(body ? (char *)body : "", blen);
	t->headers = json_incref(json_object_get(hr, "headers"));
	t->deadline_s = deadline;
	t->created_us = clock_now_us();
	t->schedule_us = when;
	t->statuses = json_array();
	t->state = PENDING;
	*tail = t;
	tail = &t->next;
	pthread_cond_broadcast(&cv);
	httpd_respond_json(req, 200, task_json(t));
	pthread_mutex_unlock(&mu);
out:
	free(body);
	json_decref(root);
}

static void get(struct httpd_request *req, const char *name)
{
	struct task *t;

	if (!authorized(req)) {
		google_error(req, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
		return;
	}
	pthread_mutex_lock(&mu);
	gets++;
	t = find(name);
	if (!t || t->state == DONE || t->state == DROPPED)
		google_error(req, 404, "NOT_FOUND", "Requested entity was not found.");
	else
		httpd_respond_json(req, 200, task_json(t));
	pthread_mutex_unlock(&mu);
}

/* ---- dispatch ------------------------------------------------------------------ */

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

static void *dispatch(void *arg)
{
	struct task *t = arg;
	struct curl_slist *h = NULL;
	char *line, *tok, eta[CLOCK_RFC3339_LEN];
	const char *k, *id = strrchr(t->name, '/') + 1;
	json_t *v;
	long status = 0;
	CURL *c = curl_easy_init();
	int n;

	pthread_mutex_lock(&mu);
	n = t->dispatches;
	json_object_foreach(t->headers, k, v)
		if (json_is_string(v)) {
			line = xasprintf("%s: %s", k, json_string_value(v));
			h = curl_slist_append(h, line);
			free(line);
		}
	tok = jwt(t->audience, t->email, clock_now_us() / 1000000 + 3600, n);
	snprintf(t->auth_aud, sizeof(t->auth_aud), "%s", t->audience);
	clock_rfc3339(t->schedule_us, eta);
	pthread_mutex_unlock(&mu);
	line = xasprintf("Authorization: Bearer %s", tok);
	h = curl_slist_append(h, line);
	free(line);
	free(tok);
	line = xasprintf("X-CloudTasks-TaskName: %s", id);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("X-CloudTasks-TaskRetryCount: %d", n - 1);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("X-CloudTasks-TaskExecutionCount: %d", n - 1);
	h = curl_slist_append(h, line);
	free(line);
	line = xasprintf("X-CloudTasks-TaskETA: %s", eta);
	h = curl_slist_append(h, line);
	free(line);
	h = curl_slist_append(h, "X-CloudTasks-QueueName: fake");
	h = curl_slist_append(h, "User-Agent: Google-Cloud-Tasks");
	curl_easy_setopt(c, CURLOPT_URL, t->url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, t->method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, t->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(t->body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(t->deadline_s * 1000));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);

	pthread_mutex_lock(&mu);
	in_flight--;
	t->last_end_us = clock_now_us();
	t->last_status = status;
	json_array_append_new(t->statuses, json_integer(status));
	if (status)
		t->responses++;
	if (status >= 200 && status <= 299) {
		t->state = DONE;
	} else if (t->dispatches >= max_attempts) {
		t->state = DROPPED;
	} else {
		double b = min_backoff;
		int i;

		for (i = 1; i < t->dispatches && b < max_backoff; i++)
			b *= 2;
		if (b > max_backoff)
			b = max_backoff;
		t->schedule_us = clock_now_us() + (int64_t)(b * 1e6);
		t->state = PENDING;
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *dispatcher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		int64_t now = clock_now_us(), next = now + 1000000;
		struct task *t;

		for (t = paused ? NULL : tasks; t; t = t->next) {
			pthread_t th;

			if (t->state != PENDING)
				continue;
			if (t->schedule_us > now) {
				if (t->schedule_us < next)
					next = t->schedule_us;
				continue;
			}
			if (in_flight >= max_dispatches)
				break;
			t->state = DISPATCHING;
			t->dispatches++;
			if (!t->first_dispatch_us)
				t->first_dispatch_us = now;
			t->last_dispatch_us = now;
			in_flight++;
			if (pthread_create(&th, NULL, dispatch, t) == 0) {
				pthread_detach(th);
			} else {
				in_flight--;
				t->dispatches--;
				t->state = PENDING;
			}
		}
		clock_cond_wait_us(&cv, &mu, next - now > 0 ? next - now : 1000);
	}
	return NULL;
}


/* ---- Cloud Storage ------------------------------------------------------------ */

#define GCS_MAX_BUCKETS 8

struct object {
	struct object *next;
	char *bucket, *name, *content_type;
	const char *via;         /* "json" or "signed" */
	struct buf data;
};

static struct object *objects;
static const char *buckets[GCS_MAX_BUCKETS], *denied[GCS_MAX_BUCKETS];
static int nbuckets, ndenied;
static const char *hmac_id, *hmac_secret;
static int signed_ok, signed_refused, downloads, uploads;

static int in_list(const char *const *list, int n, const char *b)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(list[i], b))
			return 1;
	return 0;
}

static void gcs_error(struct httpd_request *req, unsigned code, const char *reason,
		      const char *msg)
{
	httpd_respond_json(req, code, json_pack("{s:{s:i,s:s,s:[{s:s,s:s,s:s}]}}", "error",
						"code", (int)code, "message", msg, "errors",
						"message", msg, "domain", "global",
						"reason", reason));
}

static void xml_error(struct httpd_request *req, unsigned code, const char *ecode,
		      const char *msg)
{
	char *x = xasprintf("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
			    "<Message>%s</Message></Error>", ecode, msg);

	httpd_respond(req, code, "application/xml; charset=UTF-8", x, strlen(x));
	free(x);
}

static struct object *object_find(const char *bucket, const char *name)
{
	struct object *o;

	for (o = objects; o; o = o->next)
		if (!strcmp(o->bucket, bucket) && !strcmp(o->name, name))
			return o;
	return NULL;
}

/* Stores (or replaces) an object; mu held. */
static struct object *object_put(const char *bucket, const char *name, const char *ct,
				 const char *via, const char *data, size_t len)
{
	struct object *o = object_find(bucket, name);

	if (!o) {
		o = xcalloc(1, sizeof(*o));
		o->bucket = xstrdup(bucket);
		o->name = xstrdup(name);
		buf_init(&o->data);
		o->next = objects;
		objects = o;
	}
	free(o->content_type);
	o->content_type = xstrdup(ct && *ct ? ct : "application/octet-stream");
	o->via = via;
	buf_reset(&o->data);
	buf_add(&o->data, data, len);
	return o;
}

static json_t *object_json(const struct object *o)
{
	char size[24];

	snprintf(size, sizeof(size), "%zu", o->data.len);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kind", "storage#object", "id", o->name,
			 "name", o->name, "bucket", o->bucket, "size", size,
			 "contentType", o->content_type);
}

/* Checks the bucket of a JSON API call; answers and returns -1 when the
 * call cannot go on. */
static int bucket_check(struct httpd_request *req, const char *bucket, const char *perm,
			const char *name)
{
	char msg[600];

	if (!in_list(buckets, nbuckets, bucket) && !in_list(denied, ndenied, bucket)) {
		gcs_error(req, 404, "notFound", "The specified bucket does not exist.");
		return -1;
	}
	if (in_list(denied, ndenied, bucket)) {
		snprintf(msg, sizeof(msg), "default@fake-project.iam.gserviceaccount.com does "
			 "not have %s access to the Google Cloud Storage object. Permission "
			 "'%s' denied on resource (or it may not exist).", perm, perm);
		(void)name;
		gcs_error(req, 403, "forbidden", msg);
		return -1;
	}
	return 0;
}

/* GET /storage/v1/b/B/o/O[?alt=media] */
static void gcs_get(struct httpd_request *req, const char *rest)
{
	const char *o_at = strstr(rest, "/o/"), *alt = httpd_query(req, "alt");
	char *bucket, msg[1200];
	struct object *o;

	if (!authorized(req)) {
		gcs_error(req, 401, "authError", "Invalid Credentials");
		return;
	}
	if (!o_at || !o_at[3]) {
		gcs_error(req, 404, "notFound", "Not Found");
		return;
	}
	bucket = xstrndup(rest, (size_t)(o_at - rest));
	if (bucket_check(req, bucket, "storage.objects.get", o_at + 3) < 0)
		goto out;
	pthread_mutex_lock(&mu);
	o = object_find(bucket, o_at + 3);
	if (!o) {
		pthread_mutex_unlock(&mu);
		snprintf(msg, sizeof(msg), "No such object: %s/%.1024s", bucket, o_at + 3);
		gcs_error(req, 404, "notFound", msg);
		goto out;
	}
	if (alt && !strcmp(alt, "media")) {
		downloads++;
		httpd_respond(req, 200, o->content_type, o->data.data ? o->data.data : "",
			      o->data.len);
	} else {
		httpd_respond_json(req, 200, object_json(o));
	}
	pthread_mutex_unlock(&mu);
out:
	free(bucket);
}

/* POST /upload/storage/v1/b/B/o?uploadType=media&name=O */
static void gcs_upload(struct httpd_request *req, const char *rest)
{
	const char *type = httpd_query(req, "uploadType"), *name = httpd_query(req, "name");
	size_t n = strlen(rest), len;
	const char *body = httpd_body(req, &len);
	char *bucket;
	struct object *o;

	if (!authorized(req)) {
		gcs_error(req, 401, "authError", "Invalid Credentials");
		return;
	}
	if (n < 3 || strcmp(rest + n - 2, "/o")) {
		gcs_error(req, 404, "notFound", "Not Found");
		return;
	}
	if (!type || strcmp(type, "media")) {
		gcs_error(req, 400, "invalid", "Upload requests must include an uploadType URL "
			  "parameter and a URL path beginning with /upload/");
		return;
	}
	if (!name || !*name) {
		gcs_error(req, 400, "required", "Required");
		return;
	}
	bucket = xstrndup(rest, n - 2);
	if (bucket_check(req, bucket, "storage.objects.create", name) == 0) {
		pthread_mutex_lock(&mu);
		uploads++;
		o = object_put(bucket, name, httpd_header(req, "Content-Type"), "json",
			       body ? body : "", body ? len : 0);
		httpd_respond_json(req, 200, object_json(o));
		pthread_mutex_unlock(&mu);
	}
	free(bucket);
}

static void escape_into(struct buf *b, const char *s, int keep_slash)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~", c) || (keep_slash && c == '/'))
			buf_addc(b, (char)c);
		else
			buf_printf(b, "%%%02X", c);
	}
}

static void hmac_step(const unsigned char *key, size_t klen, const char *msg,
		      unsigned char out[CRYPTO_SHA256_LEN])
{
	crypto_hmac_sha256(key, klen, msg, strlen(msg), out);
}

/* Checks a V4 signed URL as Cloud Storage does: 1 good, 0 refused with
 * the answer sent. Independent of wakeq's signer: the canonical request
 * is rebuilt from what arrived (decoded path and query re-encoded). */
static int signed_check(struct httpd_request *req, const char *path)
{
	static const char *const names[] = { "X-Goog-Algorithm", "X-Goog-Credential",
					     "X-Goog-Date", "X-Goog-Expires",
					     "X-Goog-SignedHeaders" };
	const char *v[5], *sig = httpd_query(req, "X-Goog-Signature"), *p, *hv;
	char date[16], scope_region[64], *list, *save = NULL, *tok;
	unsigned char k[CRYPTO_SHA256_LEN], md[CRYPTO_SHA256_LEN];
	char hex[CRYPTO_SHA256_HEX_LEN], *kbuf;
	struct buf cr = BUF_INIT, sts = BUF_INIT;
	struct tm tm;
	int64_t t0, exp;
	size_t i;
	int ok = 0;

	for (i = 0; i < 5; i++)
		if (!(v[i] = httpd_query(req, names[i]))) {
			xml_error(req, 400, "MissingSecurityHeader",
				  "Your request was missing a required header.");
			return 0;
		}
	if (strcmp(v[0], "GOOG4-HMAC-SHA256")) {
		xml_error(req, 400, "InvalidArgument", "Invalid argument.");
		return 0;
	}
	p = strchr(v[1], '/');
	if (!hmac_id || !p || (size_t)(p - v[1]) != strlen(hmac_id) ||
	    strncmp(v[1], hmac_id, strlen(hmac_id))) {
		xml_error(req, 403, "InvalidAccessKeyId",
			  "The Google Cloud access key Id you provided does not exist in our records.");
		return 0;
	}
	if (sscanf(p + 1, "%15[^/]/%63[^/]/", date, scope_region) != 2 ||
	    !strstr(p, "/storage/goog4_request") || strncmp(v[2], date, 8)) {
		xml_error(req, 400, "AuthorizationQueryParametersError",
			  "Error parsing the X-Goog-Credential parameter.");
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if (!strptime(v[2], "%Y%m%dT%H%M%SZ", &tm)) {
		xml_error(req, 400, "AuthorizationQueryParametersError", "Invalid X-Goog-Date.");
		return 0;
	}
	t0 = (int64_t)timegm(&tm);
	exp = atoll(v[3]);
	if (exp < 1 || exp > 604800) {
		xml_error(req, 400, "AuthorizationQueryParametersError",
			  "X-Goog-Expires must be between 1 and 604800.");
		return 0;
	}
	if (clock_now_us() / 1000000 > t0 + exp) {
		xml_error(req, 400, "ExpiredToken", "Invalid argument.");
		return 0;
	}
	buf_printf(&cr, "%s\n", httpd_method(req));
	escape_into(&cr, path, 1);
	buf_addc(&cr, '\n');
	for (i = 0; i < 5; i++) {
		buf_printf(&cr, "%s%s=", i ? "&" : "", names[i]);
		escape_into(&cr, v[i], 0);
	}
	buf_addc(&cr, '\n');
	list = xstrdup(v[4]);
	for (tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		hv = httpd_header(req, tok);
		buf_printf(&cr, "%s:%s\n", tok, hv ? hv : "");
	}
	free(list);
	buf_printf(&cr, "\n%s\nUNSIGNED-PAYLOAD", v[4]);
	crypto_sha256(cr.data, cr.len, md);
	crypto_hex(md, sizeof(md), hex);
	buf_printf(&sts, "GOOG4-HMAC-SHA256\n%s\n%s\n%s", v[2], p + 1, hex);
	kbuf = xasprintf("GOOG4%s", hmac_secret ? hmac_secret : "");
	hmac_step((unsigned char *)kbuf, strlen(kbuf), date, k);
	hmac_step(k, sizeof(k), scope_region, k);
	hmac_step(k, sizeof(k), "storage", k);
	hmac_step(k, sizeof(k), "goog4_request", k);
	hmac_step(k, sizeof(k), sts.data, md);
	crypto_hex(md, sizeof(md), hex);
	free(kbuf);
	ok = sig && !strcmp(sig, hex) && strstr(v[4], "host") != NULL;
	if (!ok)
		xml_error(req, 403, "SignatureDoesNotMatch",
			  "Access denied. The request signature we calculated does not match "
			  "the signature you provided. Check your Google secret key and signing "
			  "method.");
	buf_release(&cr);
	buf_release(&sts);
	return ok;
}

/* PUT|GET /B/O with a V4 signature in the query (the XML API). */
static void gcs_signed(struct httpd_request *req, const char *path)
{
	const char *slash = strchr(path + 1, '/'), *m = httpd_method(req);
	size_t len;
	const char *body = httpd_body(req, &len);
	char *bucket;
	struct object *o;

	if (!signed_check(req, path)) {
		pthread_mutex_lock(&mu);
		signed_refused++;
		pthread_mutex_unlock(&mu);
		return;
	}
	if (!slash || !slash[1]) {
		xml_error(req, 400, "InvalidURI", "Couldn't parse the specified URI.");
		return;
	}
	bucket = xstrndup(path + 1, (size_t)(slash - path - 1));
	pthread_mutex_lock(&mu);
	signed_ok++;
	if (!in_list(buckets, nbuckets, bucket)) {
		xml_error(req, 404, "NoSuchBucket", "The specified bucket does not exist.");
	} else if (!strcmp(m, "PUT")) {
		object_put(bucket, slash + 1, httpd_header(req, "Content-Type"), "signed",
			   body ? body : "", body ? len : 0);
		httpd_respond(req, 200, "text/html", "", 0);
	} else if ((o = object_find(bucket, slash + 1))) {
		httpd_respond(req, 200, o->content_type, o->data.data ? o->data.data : "",
			      o->data.len);
	} else {
		xml_error(req, 404, "NoSuchKey", "The specified key does not exist.");
	}
	pthread_mutex_unlock(&mu);
	free(bucket);
}

static void fake_objects(struct httpd_request *req)
{
	unsigned char md[CRYPTO_SHA256_LEN];
	char hex[CRYPTO_SHA256_HEX_LEN];
	json_t *all = json_array();
	struct object *o;

	pthread_mutex_lock(&mu);
	for (o = objects; o; o = o->next) {
		crypto_sha256(o->data.data ? o->data.data : "", o->data.len, md);
		crypto_hex(md, sizeof(md), hex);
		json_array_append_new(all, json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "bucket",
						     o->bucket, "name", o->name, "size",
						     (json_int_t)o->data.len, "sha256", hex,
						     "content_type", o->content_type, "via", o->via));
	}
	httpd_respond_json(req, 200, json_pack("{s:o,s:i,s:i,s:i,s:i}", "objects", all,
					       "signed_ok", signed_ok, "signed_refused",
					       signed_refused, "downloads", downloads,
					       "uploads", uploads));
	pthread_mutex_unlock(&mu);
}

/* ---- routes --------------------------------------------------------------------- */

static void fake_tasks(struct httpd_request *req)
{
	json_t *all = json_array();
	struct task *t;

	pthread_mutex_lock(&mu);
	for (t = tasks; t; t = t->next)
		json_array_append_new(all, json_pack(
			"{s:s,s:s,s:f,s:f,s:i,s:i,s:O,s:f,s:f,s:s,s:s,s:s,s:f,s:s}",
			"id", strrchr(t->name, '/') + 1, "state", state_names[t->state],
			"created", (double)t->created_us / 1e6, "schedule",
			(double)t->schedule_us / 1e6, "dispatches", t->dispatches,
			"responses", t->responses, "statuses", t->statuses,
			"first_dispatch", (double)t->first_dispatch_us / 1e6,
			"last_end", (double)t->last_end_us / 1e6, "url", t->url,
			"audience", t->audience, "email", t->email, "deadline_s", t->deadline_s,
			"auth_aud", t->auth_aud));
	httpd_respond_json(req, 200, json_pack("{s:o,s:i,s:i,s:i,s:i}", "tasks", all,
					       "creates", creates, "conflicts", conflicts,
					       "gets", gets, "refused", refused));
	pthread_mutex_unlock(&mu);
}

static void handle(struct httpd_request *req, void *ctx)
{
	const char *path = httpd_path(req), *method = httpd_method(req), *p;

	(void)ctx;
	if (!strncmp(path, "/computeMetadata/", 17)) {
		metadata(req, path);
		return;
	}
	if (!strcmp(path, "/fake/tasks")) {
		fake_tasks(req);
		return;
	}
	if (!strcmp(path, "/fake/resume")) {
		pthread_mutex_lock(&mu);
		paused = 0;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		httpd_respond_json(req, 200, json_pack("{s:b}", "paused", 0));
		return;
	}
	if (!strcmp(path, "/fake/metadata")) {
		pthread_mutex_lock(&mu);
		httpd_respond_json(req, 200, json_pack("{s:i,s:i,s:O}", "id_asks", id_asks,
						       "access_asks", access_asks,
						       "audiences", audiences));
		pthread_mutex_unlock(&mu);
		return;
	}
	if (!strcmp(path, "/fake/objects")) {
		fake_objects(req);
		return;
	}
	if (!strncmp(path, "/storage/v1/b/", 14) && !strcmp(method, "GET")) {
		gcs_get(req, path + 14);
		return;
	}
	if (!strncmp(path, "/upload/storage/v1/b/", 21) && !strcmp(method, "POST")) {
		gcs_upload(req, path + 21);
		return;
	}
	if (httpd_query(req, "X-Goog-Signature") || httpd_query(req, "X-Goog-Algorithm")) {
		gcs_signed(req, path);
		return;
	}
	if (!strncmp(path, "/v2/projects/", 13)) {
		size_t n = strlen(path);

		if (!strcmp(method, "POST") && n > 6 && !strcmp(path + n - 6, "/tasks")) {
			char *parent = xstrndup(path + 4, n - 4 - 6);

			create(req, parent);
			free(parent);
			return;
		}
		p = strstr(path, "/tasks/");
		if (!strcmp(method, "GET") && p && strstr(path, "/queues/")) {
			get(req, path + 4);
			return;
		}
	}
	google_error(req, 404, "NOT_FOUND", "no such method");
}

int main(int argc, char **argv)
{
	/* max_body: the Cloud Storage objects the tests upload */
	struct httpd_opts o = { .thread_per_connection = 1, .max_body = 64u << 20 };
	const struct tool_arg args[] = {
		{ "--port", TOOL_INT, &o.port },
		{ "--token-ttl", TOOL_INT64, &ttl_s },
		{ "--max-dispatches", TOOL_INT, &max_dispatches },
		{ "--min-backoff", TOOL_DOUBLE, &min_backoff },
		{ "--max-backoff", TOOL_DOUBLE, &max_backoff },
		{ "--max-attempts", TOOL_INT, &max_attempts },
		{ "--paused", TOOL_INT, &paused },
		{ "--bucket", TOOL_STRING, &buckets[0] },
		{ "--deny-bucket", TOOL_STRING, &denied[0] },
		{ "--hmac-id", TOOL_STRING, &hmac_id },
		{ "--hmac-secret", TOOL_STRING, &hmac_secret },
		{ NULL, TOOL_INT, NULL },
	};
	pthread_t th;

	if (tool_args(argc, argv, 1, args) < 0) {
		fprintf(stderr, "usage: fakegcp [--port N] [--token-ttl S] [--max-dispatches N] "
			"[--min-backoff S] [--max-backoff S] [--max-attempts N] [--paused 0|1] "
			"[--bucket B] [--deny-bucket B] [--hmac-id ID] [--hmac-secret S]\n");
		return 2;
	}
	nbuckets = buckets[0] != NULL;
	ndenied = denied[0] != NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	clock_cond_init(&cv);
	audiences = json_array();
	if (pthread_create(&th, NULL, dispatcher, NULL)) {
		fprintf(stderr, "fakegcp: cannot start the dispatcher\n");
		return 1;
	}
	return fake_serve("fakegcp", &o, handle);
}
