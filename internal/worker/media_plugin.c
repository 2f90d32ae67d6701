/* media_plugin.c - media.* jobs without FFmpeg in the worker binary.
 *
 * FFmpeg and its codec libraries are ~170 shared objects: linked into the
 * worker they cost ~80 ms of dynamic loading at every start and ~30 MiB of
 * resident memory even for drains that never touch media. So the media
 * code is built as a plugin, wakeq-media.so, loaded on the first media job
 * of a process (then forked media children inherit it). It speaks the
 * handler plugin ABI (handler/wakeq_handler.h), checked by the same loader
 * as the registry's plugins, so a plugin of another build's ABI is refused
 * with a clear error instead of being called. The plugin takes the rest of
 * wakeq (fetch, jobs, base) from this executable, which is linked with
 * --export-dynamic.
 */
#include "worker/worker.h"

#include "fetch/fetch.h"
#include "handler/handler.h"
#include "job/job.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = { "media.probe", "media.thumbnail", "media.transcode" };
static struct handler_plugin *plug[3];
static char load_error[PATH_MAX + 512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	const char *env = getenv("WAKEQ_MEDIA_PLUGIN");
	char path[PATH_MAX];
	struct err e;
	int i;

	/* libcurl first (media jobs fetch their inputs anyway): once media
	 * children are forked, no thread may be loading it (base/dl.h). A
	 * failure is the fetches' to report. */
	fetch_curl_load(NULL);
	/* WAKEQ_MEDIA_PLUGIN, else wakeq-media.so beside the executable or
	 * in ../lib/wakeq (installed) */
	if (handler_plugin_locate(env && *env ? env : "wakeq-media.so", path,
				  sizeof(path)) < 0) {
		snprintf(load_error, sizeof(load_error), "media support is not installed: "
			 "plugin path too long");
		return;
	}
	for (i = 0; i < 3; i++) {
		plug[i] = handler_plugin_open(path, names[i], &e);
		if (!plug[i])
			break;
	}
	if (i == 3)
		return;
	snprintf(load_error, sizeof(load_error), "%s: %s",
		 e.code == ERR_NOTFOUND ? "media support is not installed" : "bad media plugin",
		 e.msg);
	while (i-- > 0) {
		handler_plugin_close(plug[i]);
		plug[i] = NULL;
	}
}

static int run(int i, const struct job_run *r, struct job_outcome *out)
{
	pthread_once(&once, load);
	if (!plug[i])
		return job_fail(out, 0, "%s", load_error);
	return handler_plugin_run(plug[i], r, HANDLER_RESULT_MAX_DEFAULT, out);
}

static int run_probe(const struct job_run *r, struct job_outcome *out) { return run(0, r, out); }
static int run_thumbnail(const struct job_run *r, struct job_outcome *out) { return run(1, r, out); }
static int run_transcode(const struct job_run *r, struct job_outcome *out) { return run(2, r, out); }

void worker_bind_media(void)
{
	static const job_run_fn fns[] = { run_probe, run_thumbnail, run_transcode };
	int i;

	for (i = 0; i < 3; i++)
		job_bind(names[i], fns[i]);
}
