#include "log/trace.h"

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Where the project comes from when the environment does not say: set
 * once at start-up by the main (fetch_gcp_project), before any thread
 * logs. Kept out of this module, which reaches no network. */
static int (*project_fn)(char *out, size_t cap);

void log_trace_set_project_fn(int (*fn)(char *out, size_t cap))
{
	project_fn = fn;
}

const char *log_trace_resource(const char *id, char *buf, size_t n)
{
	const char *project = getenv("GOOGLE_CLOUD_PROJECT");
	char asked[PROJECT_MAX];

	if (!id || !*id)
		return NULL;
	if (!project || !*project)
		project = getenv("PROJECT_ID");
	if ((!project || !*project) && project_fn &&
	    project_fn(asked, sizeof(asked)) == 0)
		project = asked;
	if (project && *project)
		snprintf(buf, n, "projects/%s/traces/%s", project, id);
	else
		snprintf(buf, n, "%s", id);
	return buf;
}
