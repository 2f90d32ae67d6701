#include "log/trace.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed ask of the metadata server is repeated at most this often. */
#define METADATA_RETRY_US 60000000
/* The whole ask; the server answers in about a millisecond on Cloud Run. */
#define METADATA_TIMEOUT_MS 1000L
/* Longer than any project id ("example.com:my-project" included). */
#define PROJECT_MAX 128

/* Copies exactly 32 hex digits from s (lowercased) when they are there and
 * followed by `end` (or NUL when end is 0). Returns 0 or -1. */
static int take_hex32(const char *s, char end, char out[LOG_TRACE_ID_LEN])
{
	int i, nonzero = 0;

	for (i = 0; i < 32; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -1;
		out[i] = (char)tolower((unsigned char)s[i]);
		nonzero |= out[i] != '0';
	}
	if (s[32] != end && !(end == 0 && s[32] == '\0'))
		return -1;
	out[32] = '\0';
	return nonzero ? 0 : -1;
}

int log_trace_parse(const char *cloud_ctx, const char *traceparent,
		    char out[LOG_TRACE_ID_LEN])
{
	char id[LOG_TRACE_ID_LEN];

	if (cloud_ctx) {
		while (*cloud_ctx == ' ')
			cloud_ctx++;
		/* TRACE_ID[/SPAN_ID][;o=…] */
		if (take_hex32(cloud_ctx, '/', id) == 0 || take_hex32(cloud_ctx, ';', id) == 0 ||
		    take_hex32(cloud_ctx, 0, id) == 0) {
			memcpy(out, id, sizeof(id));
			return 0;
		}
	}
	if (traceparent) {
		while (*traceparent == ' ')
			traceparent++;
		/* VERSION(2)-TRACE(32)-SPAN(16)-FLAGS(2) */
		if (isxdigit((unsigned char)traceparent[0]) && isxdigit((unsigned char)traceparent[1]) &&
		    traceparent[2] == '-' && strncmp(traceparent, "ff", 2) &&
		    take_hex32(traceparent + 3, '-', id) == 0) {
			memcpy(out, id, sizeof(id));
			return 0;
		}
	}
	return -1;
}

/* What the metadata server said, per host (guarded by meta_lock). */
static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static char meta_host[256];            /* the host asked */
static char meta_project[PROJECT_MAX]; /* its answer; "" = none yet */
static int64_t meta_asked_us;          /* mono time of the last ask, 0 = never */

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t collect(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;
	size_t n = size * nmemb;

	if (b->len + n > PROJECT_MAX)
		return 0; /* not a project id: stop reading */
	buf_add(b, p, n);
	return n;
}

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
 * -1. Blocks up to METADATA_TIMEOUT_MS. */
static int ask_metadata(const char *host, char *out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct buf body = BUF_INIT;
	struct curl_slist *h = NULL;
	long status = 0;
	char *url;
	CURL *c;
	int rc = -1;

	pthread_once(&once, curl_init_once);
	c = curl_easy_init();
	if (!c)
		return -1;
	url = xasprintf("http://%s/computeMetadata/v1/project/project-id", host);
	h = curl_slist_append(h, "Metadata-Flavor: Google");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, METADATA_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy */
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	if (curl_easy_perform(c) != CURLE_OK)
		goto out;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		goto out;
	buf_addc(&body, '\0');
	body.data[strcspn(body.data, "\r\n ")] = '\0';
	if (!project_ok(body.data) || strlen(body.data) >= PROJECT_MAX)
		goto out;
	memcpy(out, body.data, strlen(body.data) + 1);
	rc = 0;
out:
	buf_release(&body);
	curl_slist_free_all(h);
	free(url);
	curl_easy_cleanup(c);
	return rc;
}

/* The metadata server's project into out[PROJECT_MAX], from the cache or
 * asked now. Returns 0, or -1 when not on Google Cloud or not known. */
static int metadata_project(char *out)
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
	rc = meta_project[0] ? 0 : -1;
	if (rc == 0)
		memcpy(out, meta_project, sizeof(meta_project));
	pthread_mutex_unlock(&meta_lock);
	return rc;
}

const char *log_trace_resource(const char *id, char *buf, size_t n)
{
	const char *project = getenv("GOOGLE_CLOUD_PROJECT");
	char asked[PROJECT_MAX];

	if (!id || !*id)
		return NULL;
	if (!project || !*project)
		project = getenv("PROJECT_ID");
	if ((!project || !*project) && metadata_project(asked) == 0)
		project = asked;
	if (project && *project)
		snprintf(buf, n, "projects/%s/traces/%s", project, id);
	else
		snprintf(buf, n, "%s", id);
	return buf;
}
