/* plugin.c - wakeq-media.so as a handler plugin: the first user of the C
 * ABI (handler/wakeq_handler.h), checked by the worker like any other
 * plugin before use (worker/media_plugin.c).
 *
 * Unlike a third-party plugin, this one is built with the worker and takes
 * the rest of wakeq (fetch, job, base) from its executable, linked with
 * --export-dynamic; so the ABI's plain-C job is turned back into the
 * job_run the media handlers (jobs.c) are written against.
 */
#include "media/media.h"

#include "handler/wakeq_handler.h"
#include "job/job.h"
#include "version_gen.h" /* WAKEQ_VERSION: this build's */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const types[] = { "media.probe", "media.thumbnail", "media.transcode",
				     NULL };

static void relay(void *opaque, double percent, const char *stage)
{
	const struct wakeq_job *job = opaque;

	job->progress(job, percent, stage);
}

static int run(void *state, const struct wakeq_job *job, struct wakeq_result *out)
{
	struct job_outcome o;
	struct job_run r;
	json_error_t je;
	json_t *payload;
	int rc;

	(void)state;
	payload = json_loadb(job->payload, job->payload_len, 0, &je);
	if (!payload) {
		snprintf(out->error, sizeof(out->error), "payload is not JSON: %s", je.text);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	memset(&o, 0, sizeof(o));
	r.id = job->id;
	r.queue = job->queue;
	r.type = job->type;
	r.trace = job->trace;
	r.payload = payload;
	r.attempt = job->attempt;
	r.max_attempts = job->max_attempts;
	r.timeout_s = job->timeout_s;
	/* The worker's own atomic_int, handed over as a volatile int
	 * (handler/plugin.c); it is only read here. */
	r.cancel = (atomic_int *)(uintptr_t)job->cancel;
	r.progress = relay;
	r.opaque = (void *)job;
	if (!strcmp(job->type, "media.probe"))
		rc = media_job_probe(&r, &o);
	else if (!strcmp(job->type, "media.thumbnail"))
		rc = media_job_thumbnail(&r, &o);
	else
		rc = media_job_transcode(&r, &o);
	if (rc == 0) {
		out->json = o.result ? json_dumps(o.result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (o.result && !out->json)
			abort(); /* out of memory */
	} else {
		snprintf(out->error, sizeof(out->error), "%s", o.error);
		out->retryable = o.retryable;
		out->retry_after_s = o.retry_after_s;
	}
	job_outcome_release(&o);
	json_decref(payload);
	return rc == 0 ? 0 : -1;
}

WAKEQ_HANDLER_PLUGIN("wakeq-media", WAKEQ_VERSION, types, NULL, run, NULL);
