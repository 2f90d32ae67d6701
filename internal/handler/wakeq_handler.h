/* wakeq/handler.h - the C ABI of wakeq handler plugins (ABI version 1).
 *
 * A plugin is a shared object that wakeq-worker loads with dlopen(3)
 * (RTLD_NOW | RTLD_LOCAL) to run jobs in its own process, without a fork
 * or an exec per job. It exports exactly two symbols, which
 * WAKEQ_HANDLER_PLUGIN() below defines:
 *
 *   const uint32_t wakeq_handler_abi_version;  this header's
 *                                              WAKEQ_HANDLER_ABI_VERSION
 *   const struct wakeq_handler wakeq_handler;  the entry points
 *
 * The worker reads wakeq_handler_abi_version before it touches anything
 * else and refuses a plugin built for another version (or without the
 * symbol) with one line: "plugin 'x.so' was built for handler ABI 2, this
 * worker speaks ABI 1 (rebuild it against wakeq/handler.h)". The version
 * changes whenever a struct or a rule of this header changes; there is no
 * partial compatibility to reason about: rebuild the plugin.
 *
 *   #include <wakeq/handler.h>
 *
 *   static int run(void *state, const struct wakeq_job *job,
 *                  struct wakeq_result *out)
 *   {
 *           ... parse job->payload, work, polling wakeq_cancelled(job),
 *           job->progress(job, 50, "halfway");
 *           out->json = strdup("{\"ok\":true}");
 *           return 0;
 *   }
 *   static const char *const types[] = { "text.wordcount", NULL };
 *   WAKEQ_HANDLER_PLUGIN("wordcount", "1.0", types, NULL, run, NULL);
 *
 *   cc -shared -fPIC -o wordcount.so wordcount.c
 *
 * and in HANDLERS_FILE (docs/HANDLERS.md):
 *
 *   "text.wordcount": {"kind": "plugin", "path": "/opt/wakeq/wordcount.so"}
 *
 * Lifecycle. The worker loads every plugin of its registry at start-up,
 * calls init once per registry entry (one entry = one job type; two
 * entries may name the same file and get two states), then run for every
 * job of that type, from its slot threads: several runs of one state may
 * overlap (up to the entry's `concurrency`, CONCURRENCY otherwise), so run
 * must be thread-safe or the entry must say "concurrency": 1. shutdown is
 * called once at worker exit, when no run of that state is in progress.
 * The object is never unloaded.
 *
 * What the worker does for a plugin job as for any other: leases and
 * their renewal, fencing, retries with backoff, timeouts, cancel, progress
 * events, results, dead letters. What it cannot do: stop a run that does
 * not return. A plugin runs inside the worker: it must poll the cancel
 * flag (at least every few hundred milliseconds) and return once it is
 * set, must not crash (a crash takes the worker down; its jobs are retried
 * after their leases expire), must not call exit, change signal
 * dispositions or the process's working directory, and must not keep
 * pointers into a job after run returns. Untrusted input that may crash a
 * parser belongs in a child process (fork, as the media plugin does) or in
 * an `exec` handler.
 *
 * Strings are UTF-8 and NUL-terminated. Everything the worker passes is
 * borrowed for the duration of the call it is passed to.
 */
#ifndef WAKEQ_HANDLER_ABI_H
#define WAKEQ_HANDLER_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WAKEQ_HANDLER_ABI_VERSION 1u

/* Bytes of wakeq_result.error, terminating NUL included. */
#define WAKEQ_ERROR_MAX 1024

/* Levels of wakeq_handler_host.log. */
enum wakeq_log_level {
	WAKEQ_LOG_DEBUG = 0,
	WAKEQ_LOG_INFO = 1,
	WAKEQ_LOG_WARN = 2,
	WAKEQ_LOG_ERROR = 3
};

/* What init is given: the entry it serves, and the worker's services. */
struct wakeq_handler_host {
	uint32_t abi_version;   /* the worker's WAKEQ_HANDLER_ABI_VERSION */
	const char *type;       /* the job type this state serves ("text.wordcount") */
	const char *path;       /* the shared object, as loaded */
	/* Writes one line into the worker's log (its format, its level
	 * filter), with the plugin's type as a field. Thread-safe; usable
	 * until shutdown returns. */
	void (*log)(const struct wakeq_handler_host *host, int level,
		    const char *message);
	void *host_data;        /* the worker's; do not touch */
};

/* One run of one job. */
struct wakeq_job {
	const char *id;         /* the job id (a UUID) */
	const char *type;       /* its type, the one the state serves */
	const char *queue;
	const char *trace;      /* trace id of the request that made it, or NULL */
	int attempt;            /* 1 on the first run */
	int max_attempts;
	const char *payload;    /* the payload: compact JSON object text */
	size_t payload_len;     /* strlen(payload) */
	double timeout_s;       /* the job's timeout, 0 = none */
	double deadline;        /* Unix time (s) when it times out, 0 = none */
	/* Non-zero: stop now and return (cancel, timeout, lost lease, worker
	 * shutdown); what run returns then is ignored. Set by another
	 * thread: read it through wakeq_cancelled() or as a volatile int. */
	const volatile int *cancel;
	/* Reports progress: percent 0..100 (clamped), and a stage name (at
	 * most 31 bytes shown; NULL keeps the last one). Cheap (the worker
	 * coalesces: one event every 250 ms per job, a new stage at once);
	 * callable from any thread until run returns. */
	void (*progress)(const struct wakeq_job *job, double percent,
			 const char *stage);
	void *host_data;        /* the worker's; do not touch */
};

/* What run produced. Zeroed by the worker before the call. */
struct wakeq_result {
	/* On success: the result as JSON text (any JSON value), allocated
	 * with malloc(3); the worker takes ownership and frees it with
	 * free(3). NULL = a null result. Text that is not JSON, or longer
	 * than the entry's result_max, fails the job. */
	char *json;
	/* On failure: one readable line (lowercase, "cannot reach 'x': ...")
	 * and whether another attempt may succeed. retry_after_s, when > 0,
	 * is the least delay before that attempt (the queue's backoff
	 * otherwise). A failure with no text reads "failed". */
	char error[WAKEQ_ERROR_MAX];
	int retryable;
	double retry_after_s;
};

/* The entry points, exported as `wakeq_handler`. */
struct wakeq_handler {
	uint32_t abi_version;   /* WAKEQ_HANDLER_ABI_VERSION */
	uint32_t size;          /* sizeof(struct wakeq_handler) */
	const char *name;       /* the plugin's name, for messages */
	const char *version;    /* the plugin's own version, free text */
	/* The job types it can run, NULL-terminated; the worker refuses a
	 * registry entry of another type. NULL = any type. */
	const char *const *types;
	/* Optional (NULL = nothing to do). Prepares a state for `host->type`
	 * into *state (NULL is a valid state). Returns 0, or -1 with a line
	 * in error (error_len bytes): the worker then stops at start-up
	 * with it. Called once per registry entry, from the main thread,
	 * before any run. */
	int (*init)(const struct wakeq_handler_host *host, void **state,
		    char *error, size_t error_len);
	/* Required. Runs one job. Returns 0 (done; out->json the result), or
	 * -1 (failed; out->error, out->retryable). Blocks for as long as the
	 * work takes; see the cancel flag. */
	int (*run)(void *state, const struct wakeq_job *job,
		   struct wakeq_result *out);
	/* Optional. Frees the state; no run of it is in progress. */
	void (*shutdown)(void *state);
};

/* Whether the job should stop now. */
static inline int wakeq_cancelled(const struct wakeq_job *job)
{
	return job->cancel && *job->cancel;
}

#ifdef __cplusplus
#define WAKEQ_HANDLER_EXTERN_ extern "C"
#else
#define WAKEQ_HANDLER_EXTERN_ extern
#endif

#if defined(__GNUC__)
#define WAKEQ_HANDLER_VISIBLE_ __attribute__((visibility("default")))
#else
#define WAKEQ_HANDLER_VISIBLE_
#endif

/* Defines the two exported symbols of a plugin (at file scope, once):
 * WAKEQ_HANDLER_PLUGIN(NAME, VERSION, TYPES, INIT, RUN, SHUTDOWN), where
 * TYPES is a NULL-terminated array of type names or NULL, and INIT and
 * SHUTDOWN may be NULL. */
#define WAKEQ_HANDLER_PLUGIN(name_, version_, types_, init_, run_, shutdown_)   \
	WAKEQ_HANDLER_EXTERN_ WAKEQ_HANDLER_VISIBLE_                            \
	const uint32_t wakeq_handler_abi_version;                               \
	const uint32_t wakeq_handler_abi_version = WAKEQ_HANDLER_ABI_VERSION;   \
	WAKEQ_HANDLER_EXTERN_ WAKEQ_HANDLER_VISIBLE_                            \
	const struct wakeq_handler wakeq_handler;                               \
	const struct wakeq_handler wakeq_handler = {                            \
		WAKEQ_HANDLER_ABI_VERSION, sizeof(struct wakeq_handler),        \
		(name_), (version_), (types_), (init_), (run_), (shutdown_)     \
	}

#ifdef __cplusplus
}
#endif

#endif
