/* media_plugin.c - media.* jobs without FFmpeg in the worker binary.
 *
 * FFmpeg and its codec libraries are ~170 shared objects: linked into the
 * worker they cost ~80 ms of dynamic loading at every start and ~30 MiB of
 * resident memory even for drains that never touch media. So the media
 * code is built as a plugin, wakeq-media.so, loaded on the first media job
 * of a process (then forked media children inherit it). The plugin takes
 * the rest of wakeq (fetch, jobs, base) from this executable, which is
 * linked with --export-dynamic.
 */
#include "worker/worker.h"

#include "job/job.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const names[] = { "media.probe", "media.thumbnail", "media.transcode" };
static const char *const symbols[] = { "media_job_probe", "media_job_thumbnail",
				       "media_job_transcode" };
static job_run_fn real[3];
static char load_error[PATH_MAX + 256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* WAKEQ_MEDIA_PLUGIN, else wakeq-media.so beside the executable. */
static void plugin_path(char *out, size_t n)
{
	const char *env = getenv("WAKEQ_MEDIA_PLUGIN");
	char self[PATH_MAX];
	ssize_t len;
	char *slash;

	if (env && *env) {
		snprintf(out, n, "%s", env);
		return;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0) {
		snprintf(out, n, "wakeq-media.so");
		return;
	}
	self[len] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, n, "%s/wakeq-media.so", self);
}

static void load(void)
{
	char path[PATH_MAX];
	void *h;
	int i;

	plugin_path(path, sizeof(path));
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(load_error, sizeof(load_error), "media support is not installed: %s",
			 dlerror());
		return;
	}
	for (i = 0; i < 3; i++) {
		/* POSIX: a function pointer is read through a void * object. */
		*(void **)&real[i] = dlsym(h, symbols[i]);
		if (!real[i]) {
			snprintf(load_error, sizeof(load_error), "bad media plugin '%s': no '%s'",
				 path, symbols[i]);
			memset(real, 0, sizeof(real));
			return;
		}
	}
}

static int run(int i, const struct job_run *r, struct job_outcome *out)
{
	pthread_once(&once, load);
	if (!real[i])
		return job_fail(out, 0, "%s", load_error);
	return real[i](r, out);
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
