/* plugin.c - C plugins: the loader of the ABI in wakeq_handler.h, and the
 * registry's `plugin` kind built on it.
 *
 * A plugin is trusted code in the worker's address space: what can be
 * checked is checked once, at load (the ABI version before anything else,
 * then the entry points and the types it runs); what cannot (that it
 * polls its cancel flag, does not crash) is its contract, written in the
 * header. The object is never dlclose'd: a thread of it, an atexit
 * handler or a pointer into its data may outlive our use of it.
 *
 * The job crosses the boundary as plain C: the payload as JSON text, the
 * cancel flag as a volatile int (the worker's atomic_int, which is a
 * lock-free int on every target we build for: checked below), progress
 * through a callback that lands in job_progress, the result back as JSON
 * text parsed here once.
 */
#include "handler/priv.h"
#include "handler/wakeq_handler.h"

#include "base/clock.h"
#include "base/mem.h"
#include "log/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(atomic_int) == sizeof(int) && ATOMIC_INT_LOCK_FREE == 2,
	       "the cancel flag is handed to plugins as a volatile int");

struct handler_plugin {
	void *dl;                         /* never closed */
	const struct wakeq_handler *api;
	void *state;                      /* from its init */
	char *path;
	char *type;
	struct wakeq_handler_host host;   /* init may keep it until shutdown */
};

/* ---- locating, loading ------------------------------------------------------ */

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int handler_plugin_locate(const char *name, char *out, size_t n)
{
	char self[PATH_MAX], first[PATH_MAX];
	ssize_t len;
	char *slash;

	if (strchr(name, '/')) {
		char abs[PATH_MAX];

		if (name[0] != '/' && realpath(name, abs))
			name = abs;
		return (size_t)snprintf(out, n, "%s", name) < n ? 0 : -1;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return (size_t)snprintf(out, n, "%s", name) < n ? 0 : -1;
	self[len] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	/* the build tree (build/wakeq-worker beside build/wakeq-media.so),
	 * then the installed layout (bin/ and lib/wakeq/) */
	snprintf(first, sizeof(first), "%s/%s", self, name);
	if (exists(first))
		return (size_t)snprintf(out, n, "%s", first) < n ? 0 : -1;
	if ((size_t)snprintf(out, n, "%s/../lib/wakeq/%s", self, name) < n && exists(out))
		return 0;
	return (size_t)snprintf(out, n, "%s", first) < n ? 0 : -1;
}

static void host_log(const struct wakeq_handler_host *host, int level, const char *msg)
{
	enum log_level l = level <= WAKEQ_LOG_DEBUG ? LOG_DEBUG : level == WAKEQ_LOG_INFO ? LOG_INFO
			 : level == WAKEQ_LOG_WARN ? LOG_WARN : LOG_ERROR;

	log_at(l, msg ? msg : "", "handler", host->type);
}

/* "a, b, c" of a NULL-terminated list, into buf. */
static void list_types(const char *const *t, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (; *t && off < n; t++)
		off += (size_t)snprintf(buf + off, n - off, "%s%s", off ? ", " : "", *t);
}

struct handler_plugin *handler_plugin_open(const char *path, const char *type,
					   struct err *err)
{
	const uint32_t *abi;
	const struct wakeq_handler *api;
	struct handler_plugin *p = NULL;
	char ebuf[WAKEQ_ERROR_MAX];
	void *dl;

	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		const char *why = dlerror();
		size_t plen = strlen(path);

		/* glibc's text starts with the path: say it once */
		if (why && !strncmp(why, path, plen) && !strncmp(why + plen, ": ", 2))
			why += plen + 2;
		err_set(err, ERR_NOTFOUND, "cannot load plugin '%s': %s", path,
			why ? why : "unknown error");
		return NULL;
	}
	/* The version first: nothing else of a plugin built for another ABI
	 * may be read, not even the struct's size field. (POSIX: dlsym's
	 * answer is read as the object it names.) */
	abi = dlsym(dl, "wakeq_handler_abi_version");
	if (!abi) {
		err_set(err, ERR_INVALID, "plugin '%s' is not a wakeq handler plugin: no "
			"symbol 'wakeq_handler_abi_version' (build it with "
			"WAKEQ_HANDLER_PLUGIN of wakeq/handler.h)", path);
		return NULL;
	}
	if (*abi != WAKEQ_HANDLER_ABI_VERSION) {
		err_set(err, ERR_INVALID, "plugin '%s' was built for handler ABI %u, this "
			"worker speaks ABI %u (rebuild it against wakeq/handler.h)", path,
			(unsigned)*abi, (unsigned)WAKEQ_HANDLER_ABI_VERSION);
		return NULL;
	}
	api = dlsym(dl, "wakeq_handler");
	if (!api) {
		err_set(err, ERR_INVALID, "plugin '%s' is not a wakeq handler plugin: no "
			"symbol 'wakeq_handler'", path);
		return NULL;
	}
	if (api->abi_version != WAKEQ_HANDLER_ABI_VERSION ||
	    api->size != sizeof(struct wakeq_handler)) {
		err_set(err, ERR_INVALID, "plugin '%s': its 'wakeq_handler' is for ABI %u "
			"(%u bytes), this worker's for ABI %u (%zu bytes)", path,
			(unsigned)api->abi_version, (unsigned)api->size,
			(unsigned)WAKEQ_HANDLER_ABI_VERSION, sizeof(struct wakeq_handler));
		return NULL;
	}
	if (!api->run) {
		err_set(err, ERR_INVALID, "plugin '%s' has no run function", path);
		return NULL;
	}
	if (api->types) {
		const char *const *t;

		for (t = api->types; *t && strcmp(*t, type); t++)
			;
		if (!*t) {
			char list[256];

			list_types(api->types, list, sizeof(list));
			err_set(err, ERR_INVALID, "plugin '%s' does not run type '%s' (it "
				"runs: %s)", path, type, list[0] ? list : "none");
			return NULL;
		}
	}
	p = xcalloc(1, sizeof(*p));
	p->dl = dl;
	p->api = api;
	p->path = xstrdup(path);
	p->type = xstrdup(type);
	p->host.abi_version = WAKEQ_HANDLER_ABI_VERSION;
	p->host.type = p->type;
	p->host.path = p->path;
	p->host.log = host_log;
	p->host.host_data = p;
	if (api->init) {
		ebuf[0] = '\0';
		if (api->init(&p->host, &p->state, ebuf, sizeof(ebuf)) != 0) {
			ebuf[sizeof(ebuf) - 1] = '\0';
			err_set(err, ERR_INVALID, "plugin '%s' failed to start: %s", path,
				ebuf[0] ? ebuf : "its init failed");
			free(p->path);
			free(p->type);
			free(p);
			return NULL;
		}
	}
	{
		char abi_s[16];

		snprintf(abi_s, sizeof(abi_s), "%u", (unsigned)WAKEQ_HANDLER_ABI_VERSION);
		log_debug("plugin loaded", "handler", type, "path", path, "plugin",
			  api->name, "version", api->version, "abi", abi_s);
	}
	return p;
}

void handler_plugin_close(struct handler_plugin *p)
{
	if (!p)
		return;
	if (p->api->shutdown)
		p->api->shutdown(p->state);
	free(p->path);
	free(p->type);
	free(p);
}

/* ---- running ---------------------------------------------------------------- */

static void on_progress(const struct wakeq_job *job, double percent, const char *stage)
{
	const struct job_run *run = job->host_data;

	/* NaN would stick as the job's progress */
	if (percent != percent)
		return;
	job_progress(run, percent, stage);
}

int handler_plugin_run(struct handler_plugin *p, const struct job_run *run,
		       int64_t result_max, struct job_outcome *out)
{
	struct wakeq_result r;
	struct wakeq_job j;
	char *payload;
	int rc;

	payload = json_dumps(run->payload, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!payload)
		abort(); /* out of memory */
	j = (struct wakeq_job){
		.id = run->id, .type = run->type, .queue = run->queue, .trace = run->trace,
		.attempt = run->attempt, .max_attempts = run->max_attempts,
		.payload = payload, .payload_len = strlen(payload),
		.timeout_s = run->timeout_s,
		.deadline = run->timeout_s > 0 ? (double)clock_now_us() / 1e6 + run->timeout_s : 0,
		.cancel = (const volatile int *)(const void *)run->cancel,
		.progress = on_progress, .host_data = (void *)run,
	};
	memset(&r, 0, sizeof(r));

	rc = p->api->run(p->state, &j, &r);

	if (rc == 0) {
		json_error_t je;
		size_t len = r.json ? strlen(r.json) : 0;

		rc = 0;
		if (r.json && (int64_t)len > result_max) {
			rc = job_fail(out, 0, "handler '%s' returned a result larger than %lld "
				      "bytes (result_max)", run->type, (long long)result_max);
		} else if (r.json) {
			out->result = json_loadb(r.json, len, JSON_DECODE_ANY, &je);
			if (!out->result)
				rc = job_fail(out, 0, "handler '%s' returned invalid JSON: %s "
					      "(line %d, column %d)", run->type, je.text,
					      je.line, je.column);
		}
	} else {
		r.error[sizeof(r.error) - 1] = '\0';
		rc = job_fail(out, r.retryable != 0, "%s", r.error[0] ? r.error : "failed");
		if (out->retryable && r.retry_after_s > 0 && r.retry_after_s <= JOB_DELAY_MAX_S)
			out->retry_after_s = r.retry_after_s;
	}
	free(r.json);
	free(payload);
	return rc;
}

/* ---- the registry's plugin kind --------------------------------------------- */

/* One `plugin` entry bound in this worker. */
struct plugin_rt {
	struct handler_rt rt;     /* first: the entry's h->rt points here */
	struct handler_plugin *p;
	int stopped;              /* under rt.mu: shut down, runs refused */
	struct plugin_rt *next;
};

static struct plugin_rt *plugin_rts; /* written at bind and stop only */

static int run_plugin(const struct job_run *run, struct job_outcome *out)
{
	const struct job_type *t = job_find(run->type);
	const struct handler *h = t ? t->data : NULL;
	struct plugin_rt *pr = h && h->rt ? (struct plugin_rt *)h->rt : NULL;
	int rc, stopped;

	if (!pr)
		return job_fail(out, 0, "no handler for job type '%s' in this worker", run->type);
	if (gate_enter(&pr->rt, run) < 0)
		return job_fail(out, 0, "cancelled");
	pthread_mutex_lock(&pr->rt.mu);
	stopped = pr->stopped;
	pthread_mutex_unlock(&pr->rt.mu);
	if (stopped)
		rc = job_fail(out, 1, "handler '%s': the worker is stopping", run->type);
	else
		rc = handler_plugin_run(pr->p, run, h->result_max, out);
	gate_leave(&pr->rt);
	return rc;
}

int plugin_bind(struct handler *h, const struct handler_opts *o, struct err *err)
{
	struct plugin_rt *pr;
	struct handler_plugin *p;
	char path[PATH_MAX];
	struct err e;

	if (handler_plugin_locate(h->path, path, sizeof(path)) < 0)
		return err_set(err, ERR_INVALID, "handler '%s' (%s): plugin path too long",
			       h->type, h->origin);
	p = handler_plugin_open(path, h->type, &e);
	if (!p)
		return err_set(err, ERR_INVALID, "handler '%s' (%s): %s", h->type, h->origin,
			       e.msg);
	pr = xcalloc(1, sizeof(*pr));
	pr->rt.h = h;
	pr->rt.o = o;
	pthread_mutex_init(&pr->rt.mu, NULL);
	pthread_cond_init(&pr->rt.cv, NULL);
	pr->p = p;
	pr->next = plugin_rts;
	plugin_rts = pr;
	h->rt = &pr->rt;
	job_bind(h->type, run_plugin);
	return 0;
}

void plugin_stop_all(void)
{
	struct plugin_rt *pr;

	for (pr = plugin_rts; pr; pr = pr->next) {
		int busy;

		pthread_mutex_lock(&pr->rt.mu);
		busy = pr->rt.running > 0;
		if (!busy)
			pr->stopped = 1;
		pthread_mutex_unlock(&pr->rt.mu);
		if (busy) {
			/* its slot thread is still inside run: leave it be */
			log_warn("plugin still running a job at exit, not shut down",
				 "handler", pr->rt.h->type);
			continue;
		}
		handler_plugin_close(pr->p);
		pr->p = NULL;
	}
}
