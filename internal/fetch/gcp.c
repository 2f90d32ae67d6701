/* gcp.c - the Google Cloud project from the metadata server, for the
 * trace field of log lines (log_trace_set_project_fn). Asked through the
 * operator-trusted HTTP path (the metadata address is link-local, which
 * the address policy would refuse for a job), never through a proxy. */
#include "fetch/priv.h"

#include "base/clock.h"

#include <ctype.h>
#include <pthread.h>
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
