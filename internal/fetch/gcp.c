/* gcp.c - what the Google Cloud metadata server knows, in one place: the
 * project (for the trace field of log lines, log_trace_set_project_fn),
 * and the service account's identity tokens (OIDC, per audience) and
 * access tokens (OAuth 2, per scope list), cached until shortly before
 * they expire. Asked through the operator-trusted HTTP path (the metadata
 * address is link-local, which the address policy would refuse for a
 * job), never through a proxy. */
#include "fetch/priv.h"

#include "base/clock.h"
#include "base/mem.h"
#include "crypto/crypto.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed ask of the metadata server is repeated at most this often. */
#define METADATA_RETRY_US 60000000
/* The whole ask; the server answers in about a millisecond on Cloud Run. */
#define METADATA_TIMEOUT_S 1.0
/* Longer than any project id ("example.com:my-project" included). */
#define PROJECT_MAX 128

/* What the metadata server said, per host (guarded by meta_lock). */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static char meta_host[256];            /* the host asked */
static char meta_project[PROJECT_MAX]; /* its answer; "" = none yet */
static int64_t meta_asked_us;          /* mono time of the last ask, 0 = never */

/* A project id as Google Cloud spells them (letters, digits, '-', and
 * "domain.tld:" for domain-scoped ones): anything else, say a captive
 * portal's page, is not taken. */
static int project_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-.:_", *s))
			return 0;
	return 1;
}

/* Asks `host` for project/project-id into out[PROJECT_MAX]. Returns 0 or
 * -1. Blocks up to METADATA_TIMEOUT_S. */
static int ask_metadata(const char *host, char *out)
{
	static const char *const headers[] = { "Metadata-Flavor: Google", NULL };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct fetch_request req;
	char url[320];
	struct err e;
	int rc = -1;

	memset(&req, 0, sizeof(req));
	snprintf(url, sizeof(url), "http://%s/computeMetadata/v1/project/project-id", host);
	req.url = url;
	req.headers = headers;
	req.timeout_s = METADATA_TIMEOUT_S;
	req.no_follow = 1;
	if (fetch_http_trusted(&req, &resp, &e) < 0 || resp.status != 200 ||
	    resp.body.len >= PROJECT_MAX)
		goto out;
	buf_addc(&resp.body, '\0');
	resp.body.data[strcspn(resp.body.data, "\r\n ")] = '\0';
	if (!project_ok(resp.body.data))
		goto out;
	memcpy(out, resp.body.data, strlen(resp.body.data) + 1);
	rc = 0;
out:
	fetch_response_release(&resp);
	return rc;
}

int fetch_gcp_project(char *out, size_t cap)
{
	const char *host = getenv("GCE_METADATA_HOST");
	int on_gcp = (host && *host) || getenv("K_SERVICE") || getenv("CLOUD_RUN_JOB");
	int64_t now;
	int rc;

	if (!on_gcp)
		return -1;
	if (!host || !*host)
		host = "metadata.google.internal";
	pthread_mutex_lock(&meta_lock);
	if (strcmp(meta_host, host)) {
		snprintf(meta_host, sizeof(meta_host), "%s", host);
		meta_project[0] = '\0';
		meta_asked_us = 0;
	}
	now = clock_mono_us();
	if (!meta_project[0] && (!meta_asked_us || now - meta_asked_us >= METADATA_RETRY_US)) {
		meta_asked_us = now ? now : 1;
		if (ask_metadata(meta_host, meta_project) < 0)
			meta_project[0] = '\0';
	}
	rc = meta_project[0] && strlen(meta_project) < cap ? 0 : -1;
	if (rc == 0)
		memcpy(out, meta_project, strlen(meta_project) + 1);
	pthread_mutex_unlock(&meta_lock);
	return rc;
}

/* ---- service account tokens ----------------------------------------------
 *
 * One cache for the whole process: identity tokens per audience (OIDC
 * JWTs, for Cloud Run services and the waker) and access tokens per scope
 * list (OAuth 2, for Google APIs such as Cloud Tasks). A token is reused
 * until `margin` before it expires, margin = min(TOKEN_MARGIN_US, half
 * its lifetime as seen when it was fetched): a one-hour token is renewed
 * after 55 minutes, and a token the metadata server hands out with little
 * time left is not asked for again at every call.
 *
 * The lock is held while the metadata server is asked (a millisecond on
 * Google Cloud, TOKEN_TIMEOUT_S at most), so concurrent callers wanting
 * the same token wait for one ask instead of each making their own.
 */

#define TOKEN_MARGIN_US 300000000  /* renew 5 min before expiry */
#define TOKEN_TIMEOUT_S 5.0
#define TOKEN_CACHE_MAX 16
#define TOKEN_MAX (16 * 1024)      /* a JWT is about 1 KB */

enum tok_kind { TOK_IDENTITY, TOK_ACCESS };

struct tok {
	enum tok_kind kind;
	char *key;          /* audience or scopes */
	char *host;         /* the metadata server asked */
	char *token;
	int64_t exp_us;     /* wall clock */
	int64_t renew_us;   /* wall clock: ask again from then on */
	int64_t used_us;    /* monotonic, for eviction */
};

static pthread_mutex_t tok_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tok toks[TOKEN_CACHE_MAX];
static atomic_uint_least64_t tok_asks;

static const char *metadata_host(void)
{
	const char *host = getenv("GCE_METADATA_HOST");

	return host && *host ? host : "metadata.google.internal";
}

/* base64url without padding (a JWT segment) into out (cap bytes, NUL
 * terminated). Returns 0 or -1. */
static int b64url_decode(const char *in, size_t n, char *out, size_t cap)
{
	char *std;
	size_t i, m = (n + 3) / 4 * 4, got = 0;
	int rc;

	if (n == 0 || m / 4 * 3 >= cap)
		return -1;
	std = xmalloc(m + 1);
	for (i = 0; i < n; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	for (; i < m; i++)
		std[i] = '=';
	rc = crypto_base64_decode(std, m, (unsigned char *)out, &got);
	free(std);
	if (rc < 0)
		return -1;
	out[got] = '\0';
	return 0;
}

int64_t fetch_jwt_exp(const char *jwt)
{
	const char *a = strchr(jwt, '.'), *b;
	char payload[4096];
	json_t *j, *exp;
	int64_t out = -1;

	if (!a || !(b = strchr(a + 1, '.')) ||
	    b64url_decode(a + 1, (size_t)(b - a - 1), payload, sizeof(payload)) < 0)
		return -1;
	j = json_loads(payload, 0, NULL);
	exp = json_object_get(j, "exp");
	if (json_is_integer(exp))
		out = json_integer_value(exp);
	else if (json_is_real(exp))
		out = (int64_t)json_real_value(exp);
	json_decref(j);
	return out > 0 ? out : -1;
}

/* Asks the metadata server for a token. Returns 0 with *token (caller
 * frees) and *exp_us, or -1 with err. Blocks up to TOKEN_TIMEOUT_S. */
static int ask_token(const char *host, enum tok_kind kind, const char *key,
		     char **token, int64_t *exp_us, struct err *err)
{
	static const char *const headers[] = { "Metadata-Flavor: Google", NULL };
	struct fetch_response resp = FETCH_RESPONSE_INIT;
	struct fetch_request req;
	const char *what = kind == TOK_IDENTITY ? "an identity token" : "an access token";
	char *url, *esc;
	struct err e;
	int rc = -1;

	esc = fetch_url_escape(key);
	if (kind == TOK_IDENTITY)
		url = xasprintf("http://%s/computeMetadata/v1/instance/service-accounts/"
				"default/identity?audience=%s&format=full", host, esc);
	else
		url = xasprintf("http://%s/computeMetadata/v1/instance/service-accounts/"
				"default/token?scopes=%s", host, esc);
	free(esc);
	memset(&req, 0, sizeof(req));
	req.url = url;
	req.headers = headers;
	req.timeout_s = TOKEN_TIMEOUT_S;
	req.no_follow = 1;
	req.max_response_bytes = TOKEN_MAX;
	atomic_fetch_add(&tok_asks, 1);
	if (fetch_http_trusted(&req, &resp, &e) < 0) {
		err_set(err, ERR_UNAVAILABLE, "cannot get %s from the metadata server '%s': %s",
			what, host, e.msg);
		goto out;
	}
	if (resp.status != 200) {
		err_set(err, resp.status >= 500 ? ERR_UNAVAILABLE : ERR_AUTH,
			"cannot get %s from the metadata server '%s': http status %ld",
			what, host, resp.status);
		goto out;
	}
	if (resp.truncated) {
		err_set(err, ERR_PROTOCOL, "the metadata server '%s' sent %s over %d bytes",
			host, what, TOKEN_MAX);
		goto out;
	}
	buf_addc(&resp.body, '\0');
	if (kind == TOK_IDENTITY) {
		char *t = resp.body.data;
		size_t n = strcspn(t, "\r\n ");
		int64_t exp;

		t[n] = '\0';
		exp = n ? fetch_jwt_exp(t) : -1;
		if (exp < 0) {
			err_set(err, ERR_PROTOCOL, "the metadata server '%s' sent an identity "
				"token that is not a JWT", host);
			goto out;
		}
		*token = xstrdup(t);
		*exp_us = exp * 1000000;
	} else {
		json_t *j = json_loads(resp.body.data, 0, NULL);
		json_t *at = json_object_get(j, "access_token");
		json_t *ttl = json_object_get(j, "expires_in");

		if (!json_is_string(at) || !json_string_length(at) || !json_is_number(ttl) ||
		    json_number_value(ttl) <= 0 ||
		    strpbrk(json_string_value(at), " \r\n")) {
			json_decref(j);
			err_set(err, ERR_PROTOCOL, "the metadata server '%s' sent no access "
				"token (want {access_token, expires_in})", host);
			goto out;
		}
		*token = xstrdup(json_string_value(at));
		*exp_us = clock_now_us() + (int64_t)(json_number_value(ttl) * 1e6);
		json_decref(j);
	}
	rc = 0;
out:
	fetch_response_release(&resp);
	free(url);
	return rc;
}

static char *get_token(enum tok_kind kind, const char *key, struct err *err)
{
	const char *host = metadata_host();
	int64_t now = clock_now_us(), exp, margin;
	struct tok *t = NULL, *lru = &toks[0];
	char *token = NULL, *fresh;
	size_t i;

	if (!key || !*key) {
		err_set(err, ERR_INVALID, "no %s for the token",
			kind == TOK_IDENTITY ? "audience" : "scopes");
		return NULL;
	}
	pthread_mutex_lock(&tok_lock);
	for (i = 0; i < TOKEN_CACHE_MAX; i++) {
		struct tok *c = &toks[i];

		if (c->key && c->kind == kind && !strcmp(c->key, key) &&
		    !strcmp(c->host, host)) {
			t = c;
			break;
		}
		if (!c->key || (lru->key && c->used_us < lru->used_us))
			lru = c;
	}
	if (t && now < t->renew_us) {
		token = xstrdup(t->token);
		t->used_us = clock_mono_us();
		goto out;
	}
	if (ask_token(host, kind, key, &fresh, &exp, err) < 0) {
		/* a token that is still valid for half the renewal margin beats
		 * none: the metadata server had a hiccup */
		if (t && now < t->exp_us - (t->exp_us - t->renew_us) / 2)
			token = xstrdup(t->token);
		goto out;
	}
	if (!t) {
		t = lru;
		free(t->key);
		free(t->host);
		free(t->token);
		t->kind = kind;
		t->key = xstrdup(key);
		t->host = xstrdup(host);
		t->token = NULL;
	}
	free(t->token);
	t->token = fresh;
	t->exp_us = exp;
	margin = (exp - now) / 2;
	if (margin > TOKEN_MARGIN_US)
		margin = TOKEN_MARGIN_US;
	t->renew_us = exp - margin;
	t->used_us = clock_mono_us();
	token = xstrdup(fresh);
out:
	pthread_mutex_unlock(&tok_lock);
	return token;
}

char *fetch_gcp_audience(const char *url)
{
	const char *p = strstr(url, "://");

	if (!p)
		return xstrdup(url);
	p += 3;
	return xstrndup(url, (size_t)(p - url) + strcspn(p, "/?#"));
}

char *fetch_gcp_id_token(const char *audience, struct err *err)
{
	return get_token(TOK_IDENTITY, audience, err);
}

char *fetch_gcp_access_token(const char *scopes, struct err *err)
{
	return get_token(TOK_ACCESS, scopes ? scopes : FETCH_GCP_SCOPE_CLOUD, err);
}

uint64_t fetch_gcp_token_asks(void)
{
	return atomic_load(&tok_asks);
}

void fetch_gcp_tokens_forget(void)
{
	size_t i;

	pthread_mutex_lock(&tok_lock);
	for (i = 0; i < TOKEN_CACHE_MAX; i++) {
		free(toks[i].key);
		free(toks[i].host);
		free(toks[i].token);
		memset(&toks[i], 0, sizeof(toks[i]));
	}
	pthread_mutex_unlock(&tok_lock);
}
