/* routes.c - the route table of wakeq-api and the dispatch of a request to
 * its handler (the httpd handler of the API).
 *
 * A route is a method, a path pattern, a handler and whether it needs the
 * bearer token. A pattern is literal segments and at most one parameter
 * segment: {id}, a job id (a UUID, else 400 invalid_id; the handler gets
 * it lowercased), or {queue} or {name}, a queue or schedule name (1 to
 * QUEUE_NAME_MAX characters, else 404; whether it is served or exists is
 * the handler's to say).
 *
 * The dashboard's routes are listed under /dashboard and answer at
 * DASHBOARD_PATH instead (dashboard.c maps one onto the other).
 *
 * Dispatch, in order: CORS first (CORS_ORIGINS): a request from an
 * allowed Origin gets Access-Control-Allow-Origin on whatever it is
 * answered, and its preflight (OPTIONS with Access-Control-Request-Method)
 * is answered 204 here, before the token, which preflights never carry.
 * Then the first route whose pattern fits the path decides (whatever its
 * method); when none does, 404, except that a path under /v1/ asks for
 * the token first, so a client without it learns nothing of the routes.
 * Then the token, when the route needs it (401): the Authorization
 * header, or, on routes a browser's EventSource opens (it cannot send
 * headers), for GET and HEAD only, the `access_token` query parameter
 * (RFC 6750 2.3) or the API_TOKEN_COOKIE cookie. Then the parameter; then
 * the method: when no route of that pattern takes it, 405 with an Allow
 * header listing the ones that do. HEAD is served by every GET route: the
 * GET handler answers, and libmicrohttpd sends the status and headers of
 * that answer without its body.
 */
#include "api/priv.h"

#include "base/uuid.h"

#include <stdio.h>
#include <string.h>

typedef void (*api_route_fn)(struct api *a, struct httpd_request *req,
			     const char *arg);

enum route_auth {         /* (0 and 1 in the table) */
	AUTH_NONE,
	AUTH_BEARER,          /* the Authorization header */
	AUTH_BROWSER          /* that, or for GET/HEAD the access_token query
			       * parameter or the API_TOKEN_COOKIE cookie */
};

struct route {
	const char *method;   /* GET also serves HEAD */
	const char *pattern;  /* "/v1/jobs/{id}/events" */
	api_route_fn fn;      /* gets the parameter, or NULL when none */
	enum route_auth auth;
};

static void upload(struct api *a, struct httpd_request *req, const char *arg)
{
	(void)arg;
	api_upload_post(a, req);
}

/* Routes of one pattern are listed together (the order of Allow). */
static const struct route routes[] = {
	{ "GET", "/healthz", api_healthz, 0 },
	{ "GET", "/readyz", api_readyz, 0 },
	{ "GET", "/metrics", api_metrics, 0 },
	{ "GET", "/openapi.yaml", api_openapi, 0 },
	/* under API_DASHBOARD_ROUTE; they answer at DASHBOARD_PATH */
	{ "GET", "/dashboard", api_dashboard_page, 0 },
	{ "GET", "/dashboard/app.js", api_dashboard_js, 0 },
	{ "GET", "/dashboard/style.css", api_dashboard_css, 0 },
	{ "POST", "/v1/jobs", api_post_job, 1 },
	{ "GET", "/v1/jobs/{id}", api_get_job, 1 },
	{ "DELETE", "/v1/jobs/{id}", api_cancel_job, 1 },
	{ "GET", "/v1/jobs/{id}/events", api_job_events, AUTH_BROWSER },
	{ "POST", "/v1/jobs/{id}/retry", api_retry_job, 1 },
	{ "POST", "/v1/flows", api_post_flow, 1 },
	{ "POST", "/v1/batches", api_post_batch, 1 },
	{ "GET", "/v1/batches/{id}", api_get_batch, 1 },
	{ "GET", "/v1/queues", api_get_queues, 1 },
	{ "GET", "/v1/queues/{queue}", api_get_queue, 1 },
	{ "GET", "/v1/queues/{queue}/jobs", api_list_jobs, 1 },
	{ "POST", "/v1/queues/{queue}/purge-dead", api_purge_dead, 1 },
	{ "POST", "/v1/queues/{queue}/pause", api_pause_queue, 1 },
	{ "POST", "/v1/queues/{queue}/resume", api_resume_queue, 1 },
	{ "GET", "/v1/queues/{queue}/settings", api_get_settings, 1 },
	{ "PUT", "/v1/queues/{queue}/settings", api_put_settings, 1 },
	{ "POST", "/v1/schedules", api_post_schedule, 1 },
	{ "GET", "/v1/schedules", api_list_schedules, 1 },
	{ "GET", "/v1/schedules/{name}", api_get_schedule, 1 },
	{ "DELETE", "/v1/schedules/{name}", api_delete_schedule, 1 },
	{ "POST", "/v1/schedules/{name}/pause", api_pause_schedule, 1 },
	{ "POST", "/v1/schedules/{name}/resume", api_resume_schedule, 1 },
	{ "POST", "/v1/reconcile", api_post_reconcile, 1 },
	{ "POST", "/v1/wake", api_post_wake, 1 },
	{ "POST", "/v1/uploads", upload, 1 },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

enum param_kind { PARAM_NONE, PARAM_ID, PARAM_QUEUE };

struct param {
	enum param_kind kind;
	const char *s;        /* the segment in the path (not terminated) */
	size_t n;
};

/* Whether `path` has the shape of `pattern`, segment by segment; a
 * parameter segment takes any segment, even an empty one (the check comes
 * later), and is noted in *pm. */
static int match(const char *pattern, const char *path, struct param *pm)
{
	pm->kind = PARAM_NONE;
	for (;;) {
		size_t pn, sn;

		if (*pattern != '/' || *path != '/')
			return *pattern == *path; /* both at their end */
		pattern++;
		path++;
		pn = strcspn(pattern, "/");
		sn = strcspn(path, "/");
		if (*pattern == '{') {
			/* {queue} and {name} are checked alike */
			pm->kind = !strncmp(pattern, "{id}", 4) ? PARAM_ID : PARAM_QUEUE;
			pm->s = path;
			pm->n = sn;
		} else if (pn != sn || memcmp(pattern, path, pn)) {
			return 0;
		}
		pattern += pn;
		path += sn;
	}
}

/* Checks the parameter and copies it to arg (NUL-terminated). Returns 0,
 * or -1 once it has answered. */
static int param_check(struct api *a, struct httpd_request *req,
		       const struct param *pm, char *arg)
{
	size_t i;

	switch (pm->kind) {
	case PARAM_NONE:
		return 0;
	case PARAM_ID:
		if (pm->n == 0 || pm->n >= UUID_STR_LEN)
			goto bad_id;
		memcpy(arg, pm->s, pm->n);
		arg[pm->n] = '\0';
		if (!uuid_valid(arg))
			goto bad_id;
		for (i = 0; arg[i]; i++)
			if (arg[i] >= 'A' && arg[i] <= 'F')
				arg[i] = (char)(arg[i] - 'A' + 'a');
		return 0;
	case PARAM_QUEUE:
		if (pm->n == 0 || pm->n > QUEUE_NAME_MAX) {
			api_reply_error(a, req, 404, "not_found", "no route '%.100s'",
					httpd_path(req));
			return -1;
		}
		memcpy(arg, pm->s, pm->n);
		arg[pm->n] = '\0';
		return 0;
	}
bad_id:
	api_reply_error(a, req, 400, "invalid_id", "job id must be a UUID");
	return -1;
}

int api_route_taken(const char *prefix)
{
	size_t n = strlen(prefix), dn = strlen(API_DASHBOARD_ROUTE);
	const struct route *r;

	for (r = routes; r < routes + NROUTES; r++) {
		if (!strncmp(r->pattern, API_DASHBOARD_ROUTE, dn) &&
		    (r->pattern[dn] == '\0' || r->pattern[dn] == '/'))
			continue;
		if (!strncmp(r->pattern, prefix, n) &&
		    (r->pattern[n] == '\0' || r->pattern[n] == '/'))
			return 1;
	}
	return 0;
}

/* CORS: marks the answer for an allowed Origin. Returns 1 when the
 * request was a preflight and has been answered. */
static int cors(struct api *a, struct httpd_request *req)
{
	const char *origin = httpd_header(req, "Origin");
	int ok = 0;
	char **o;

	if (!a->cors)
		return 0;
	httpd_add_header(req, "Vary", "Origin");
	for (o = a->cors; origin && *o && !ok; o++)
		ok = !strcmp(*o, "*") || !strcmp(*o, origin);
	if (!ok)
		return 0;
	httpd_add_header(req, "Access-Control-Allow-Origin", a->cors_any ? "*" : origin);
	if (!a->cors_any)
		httpd_add_header(req, "Access-Control-Allow-Credentials", "true");
	httpd_add_header(req, "Access-Control-Expose-Headers", "Retry-After, Allow");
	if (strcmp(httpd_method(req), "OPTIONS") ||
	    !httpd_header(req, "Access-Control-Request-Method"))
		return 0;
	httpd_add_header(req, "Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE");
	httpd_add_header(req, "Access-Control-Allow-Headers",
			 "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
	httpd_add_header(req, "Access-Control-Max-Age", "600");
	api_count_status(a, 204);
	httpd_respond(req, 204, NULL, "", 0);
	return 1;
}

/* Whether the request carries one of the tokens, as `auth` allows. */
static int token_ok(struct api *a, struct httpd_request *req, enum route_auth auth)
{
	const char *const *tokens = (const char *const *)a->tokens;
	const char *m = httpd_method(req);

	if (httpd_bearer_ok(req, tokens))
		return 1;
	if (auth != AUTH_BROWSER || (strcmp(m, "GET") && strcmp(m, "HEAD")))
		return 0;
	return httpd_token_ok(httpd_query(req, "access_token"), tokens) ||
	       httpd_token_ok(httpd_cookie(req, API_TOKEN_COOKIE), tokens);
}

void api_dispatch(struct httpd_request *req, void *ctx)
{
	struct api *a = ctx;
	const char *path = httpd_path(req), *method = httpd_method(req), *rpath;
	const struct route *r, *found = NULL;
	char arg[QUEUE_NAME_MAX + UUID_STR_LEN], allow[64], mapped[256];
	struct param pm;
	size_t len = 0;
	enum route_auth auth;

	if (cors(a, req))
		return;
	/* the dashboard's routes answer at DASHBOARD_PATH (dashboard.c) */
	rpath = api_dashboard_route(a, path, mapped, sizeof(mapped));
	for (r = routes; rpath && r < routes + NROUTES && !found; r++)
		if (match(r->pattern, rpath, &pm))
			found = r;
	auth = found ? found->auth : !strncmp(path, "/v1/", 4) ? AUTH_BEARER : AUTH_NONE;
	if (auth != AUTH_NONE && a->tokens && !token_ok(a, req, auth)) {
		api_reply_error(a, req, 401, "unauthorized",
				httpd_header(req, "Authorization") ? "bad bearer token"
								   : "missing bearer token");
		return;
	}
	if (!found) {
		api_reply_error(a, req, 404, "not_found", "no route '%.100s'", path);
		return;
	}
	if (param_check(a, req, &pm, arg) < 0)
		return;
	if (!strcmp(method, "HEAD"))
		method = "GET";
	allow[0] = '\0';
	for (r = found; r < routes + NROUTES && !strcmp(r->pattern, found->pattern); r++) {
		if (!strcmp(r->method, method)) {
			r->fn(a, req, pm.kind == PARAM_NONE ? NULL : arg);
			return;
		}
		len += (size_t)snprintf(allow + len, sizeof(allow) - len, "%s%s%s",
					len ? ", " : "", r->method,
					!strcmp(r->method, "GET") ? ", HEAD" : "");
	}
	httpd_add_header(req, "Allow", allow);
	api_reply_error(a, req, 405, "method_not_allowed",
			"method %s not allowed here (allowed: %s)", httpd_method(req), allow);
}
