/* wake.h - waking the worker, by one of two transports (WAKE_VIA):
 *
 *   http        POST the worker's /wake URL from a background thread
 *               (libcurl multi) that holds the request while the worker
 *               drains: for deployments where the caller's CPU outlives
 *               its requests (a VM, systemd, compose).
 *   cloudtasks  create a Cloud Tasks HTTP task aimed at the worker's
 *               /wake (tasks.c): Cloud Tasks holds the request, so the
 *               worker's CPU no longer depends on the caller's (Cloud
 *               Run). The task is created before wake_notify/wake_at
 *               return, so a caller that answers its own request after
 *               them has done its part while it still had CPU.
 *
 * HTTP transport. A `struct wake` owns one background thread running the
 * curl multi interface, so asking for a wake never blocks the caller (the
 * API's request threads). The worker's /wake holds the request open until
 * its drain ends (Cloud Run gives CPU only while a request is open), so a
 * wake is a long transfer: the waker keeps it open in the background and
 * never waits for it.
 *
 * When is a wake "done" for the purpose of not waking again? As soon as
 * the request has been sent: the worker is then starting (or running) a
 * drain that will take every due job, including those enqueued while it
 * boots. Concretely, a transfer counts as delivered once curl reports the
 * connection made and the request about to go out (pre-transfer time set),
 * or when any HTTP response or a timeout arrives after that. Connection
 * failures, and 408/429/5xx or 401/403 answers before that, are failures:
 * retried with exponential backoff (0.25 s doubling to 30 s) while a wake
 * is still wanted.
 *
 * One base wake is in flight at a time. Enqueues that see no live worker
 * while one is in flight only leave a note; when that transfer ends (the
 * drain is over), the waker asks the backlog callback whether due work is
 * left with no live worker, and wakes again only then. This closes the
 * window between a worker retiring and its response arriving, without
 * waking twice for jobs the first drain took. A drain that ended at
 * WAKE_MAX (its summary says "reason":"wake_max") is followed by the same
 * check: a long backlog is served by a chain of drains.
 *
 * Timers (opts.timers, API_TIMERS): on, the waker also wakes at the due
 * time of scheduled jobs (wake_at) and after a drain for retries waiting
 * out their backoff. Off (Cloud Run, where a process has no CPU between
 * requests), wake_at does nothing and wake_notify waits (up to
 * HANDOFF_MAX, 2 s) until the wake request has gone out, so the wake is
 * handed off before the caller answers.
 *
 * Scale-out: with fanout_max > 1, wake_notify(…, live=1) asks for a backlog
 * check at most once a second; when pending jobs exceed
 * live workers × slot_concurrency × backlog_per_slot, further concurrent
 * wakes are sent (each one brings one more instance on Cloud Run with
 * worker concurrency 1), up to fanout_max transfers in flight (with Cloud
 * Tasks: tasks, one per instance wanted).
 *
 * Auth of HTTP wakes: a static bearer token (WAKE_TOKEN), or Google OIDC
 * identity tokens from the metadata server (WAKE_AUTH=google) for the
 * audience, through fetch_gcp_id_token (cached until shortly before they
 * expire). Cloud Tasks wakes carry an OIDC token that Cloud Tasks mints
 * for the configured service account.
 */
#ifndef WAKEQ_WAKE_H
#define WAKEQ_WAKE_H

#include "base/err.h"
#include "config/config.h"

#include <stddef.h>
#include <stdint.h>

/* What the backlog callback reports. */
struct wake_backlog {
	int64_t pending;       /* jobs due now (queued) */
	int64_t waiting;       /* scheduled or retrying (due later, or now) */
	int64_t workers;       /* live workers */
	int64_t next_due_us;   /* earliest scheduled or retrying job (epoch µs),
				* 0 = none: checked again then */
};

/* Called on the waker thread; fills *out and returns 0, or -1 when it
 * cannot tell (no further wake is then sent for that check). */
typedef int (*wake_backlog_fn)(void *ctx, struct wake_backlog *out);

enum wake_auth { WAKE_AUTH_NONE, WAKE_AUTH_TOKEN, WAKE_AUTH_GOOGLE };

/* The names of the WAKE_AUTH setting (CONFIG_ENUM): none, token, google. */
extern const struct config_choice wake_auth_choices[];

enum wake_via { WAKE_VIA_HTTP, WAKE_VIA_CLOUDTASKS };

/* The names of the WAKE_VIA setting (CONFIG_ENUM): http, cloudtasks. */
extern const struct config_choice wake_via_choices[];

/* ---- Cloud Tasks (tasks.c) ----------------------------------------------
 *
 * A wake is an HTTP task in a Cloud Tasks queue (REST v2, tasks.create):
 * POST to the worker's /wake with body {}, an oidcToken for the service
 * account and audience, dispatchDeadline = dispatch_deadline_s, at
 * scheduleTime. The request to Cloud Tasks carries an access token from
 * the metadata server (fetch_gcp_access_token).
 *
 * Task names deduplicate wakes: "wake-H-B[-S][-rN]", H the first 8 hex
 * digits of SHA-256 of the target URL (one Cloud Tasks queue may serve
 * several worker services), B the time bucket (bucket_s) of the wanted
 * time, S the fan-out slot (none for slot 0). Concurrent callers wanting
 * the same bucket create the same name: one wins, the rest get 409
 * ALREADY_EXISTS and then read the task (tasks.get). While no dispatch of
 * it is under way (not dispatched yet, or waiting for a retry), its drain
 * comes after their jobs were enqueued, and nothing more is needed. One
 * under way (lastAttempt dispatched, no response yet) may be a drain that
 * is ending, and a task that is gone (completed tasks' names stay taken
 * for a while) is over: the next name (-r1, -r2, ...) is tried, so a wake
 * is never swallowed by an old one; after one under way, 2 s later (a
 * worker that is starting will have taken the jobs by then, and a cold
 * start does not turn into a storm of instances).
 *
 * When: a bucket that lies ahead is woken at its start (a little early;
 * the worker's drain holds for a job due within IDLE_TIMEOUT), one that
 * has begun at the wanted time itself (at once when that has passed). */

/* The header of a task's dispatch that counts its retries: above 0, the
 * attempt before got no 2xx answer (the drain it started may have died
 * with its instance, leaving its leases behind). */
#define WAKE_TASKS_RETRY_HEADER "X-CloudTasks-TaskRetryCount"

struct wake_tasks_opts {
	const char *endpoint;        /* NULL or "" = https://cloudtasks.googleapis.com */
	const char *project;         /* NULL or "" = the metadata server's
				      * (fetch_gcp_project, asked at the first
				      * wake) */
	const char *location;        /* required: "us-central1" */
	const char *queue;           /* required: the Cloud Tasks queue id */
	const char *url;             /* the worker's /wake; NULL = given to
				      * each wake_tasks_arrange */
	const char *service_account; /* required: oidcToken.serviceAccountEmail */
	const char *audience;        /* oidcToken.audience; NULL or "" =
				      * scheme://host of the target URL */
	double bucket_s;             /* time bucket of names; 0 = 1 s */
	double dispatch_deadline_s;  /* how long Cloud Tasks holds a wake
				      * (15..1800); 0 = 1800 */
	double timeout_s;            /* each Cloud Tasks call; 0 = 10 */
};

struct wake_tasks;

/* Checks the settings (no network). Strings are copied. Returns the
 * client, or NULL with err (ERR_INVALID naming the setting: TASKS_QUEUE,
 * TASKS_LOCATION, TASKS_SERVICE_ACCOUNT, WAKE_URL ...). Thread-safe once
 * made. */
struct wake_tasks *wake_tasks_new(const struct wake_tasks_opts *o,
				  struct err *err);

/* Accepts NULL. */
void wake_tasks_free(struct wake_tasks *t);

/* Arranges one wake of the worker at `at_us` (epoch µs; 0 or a past time
 * = now) as described above: creates the task, or finds the one a
 * concurrent caller created and that is still to be dispatched. `url` is
 * the /wake URL (NULL = opts.url; one of them must be set), `slot` the
 * fan-out slot (0 = the base wake). Returns 1 when a task was created, 0
 * when a pending one already covers it, -1 with err (ERR_UNAVAILABLE
 * Cloud Tasks or the metadata server unreachable, 5xx or 429;
 * ERR_AUTH 401/403; ERR_INVALID/ERR_PROTOCOL other answers). Blocks for
 * up to three Cloud Tasks calls per name tried (timeout_s each). */
int wake_tasks_arrange(struct wake_tasks *t, const char *url, int64_t at_us,
		       int slot, struct err *err);

/* Cloud Tasks calls made so far (creates and gets), for tests and
 * metrics. */
uint64_t wake_tasks_calls(struct wake_tasks *t);

/* ---- the waker ------------------------------------------------------------ */

struct wake_opts {
	enum wake_via via;          /* the transport */
	const char *url;            /* the worker's /wake URL; required */
	enum wake_auth auth;        /* HTTP only */
	const char *token;          /* WAKE_AUTH_TOKEN: the bearer token */
	const char *audience;       /* GOOGLE: NULL = scheme://host of url */
	struct wake_tasks_opts tasks; /* CLOUDTASKS: url and audience are
				     * taken from above when unset */
	int timers;                 /* in-process timers (see above); the
				     * HTTP transport hands off when 0 */
	double connect_timeout_s;   /* 0 = 5 */
	double hold_s;              /* longest a wake is held open; 0 = 3600 */
	int fanout_max;             /* concurrent wakes at most; 0 = 1 */
	int slot_concurrency;       /* the worker's CONCURRENCY; 0 = 1 */
	int backlog_per_slot;       /* target pending jobs per slot; 0 = 10 */
	wake_backlog_fn backlog;    /* may be NULL: no checks, no fan-out */
	void *backlog_ctx;
};

struct wake_stats {
	uint64_t requested;   /* wake_notify calls that wanted a wake */
	uint64_t sent;        /* transfers that reached "request sent"
			       * (Cloud Tasks: wakes arranged) */
	uint64_t failed;      /* transfers that failed before that
			       * (Cloud Tasks: tasks.create failed) */
	uint64_t completed;   /* transfers that ended after being sent */
	int in_flight;        /* transfers open now */
};

/* Starts the waker (and its thread, for the HTTP transport). Strings in
 * opts are copied. Returns the waker (free with wake_free), or NULL with
 * err (ERR_INVALID bad URL, auth or Cloud Tasks settings, ERR_INTERNAL
 * curl could not start). */
struct wake *wake_new(const struct wake_opts *opts, struct err *err);

/* Stops the thread and drops open transfers. Accepts NULL. Blocks for at
 * most a moment. */
void wake_free(struct wake *w);

/* After an enqueue: live_worker is what queue_enqueue reported. 0 wants a
 * wake (sent at once unless one is in flight or backing off); 1 only
 * matters for fan-out. Thread-safe. Accepts NULL (no waking configured).
 * HTTP: never blocks with timers on; with timers off, blocks until the
 * wake request went out (or failed), 2 s at most. Cloud Tasks: blocks
 * while the task is created (see wake_tasks_arrange), and for fan-out
 * tasks when the backlog check (at most once a second) wants more; a
 * failure is logged and counted. */
void wake_notify(struct wake *w, int live_worker);

/* A job was scheduled for `due_us` (epoch microseconds). HTTP with timers
 * on: at that time the waker checks the backlog and wakes when due work
 * has no worker (the earliest pending time is kept; never blocks); with
 * timers off: nothing (the cron's tick serves it). Cloud Tasks: a task
 * scheduled for then is created before this returns (blocks as above).
 * Thread-safe; accepts NULL. */
void wake_at(struct wake *w, int64_t due_us);

void wake_get_stats(struct wake *w, struct wake_stats *out);

/* One synchronous wake for the CLI (`wakeq wake URL`): sends the POST and
 * waits for the answer for at most timeout_s (0 = 30) seconds. `token`
 * (may be NULL) is sent as a bearer token. *http_status is the status, or
 * 0 when the request was sent but no answer came within the timeout (the
 * worker holds /wake open while it drains: that counts as woken).
 * `body` may be NULL; otherwise, on success, *body is the answer's body
 * (the drain summary of a held wake, 64 KiB at most; caller frees), or
 * NULL when no answer came. Blocks up to timeout_s.
 * Returns 0 when the worker was reached (any status < 400, or sent and
 * held), -1 with err otherwise (ERR_UNAVAILABLE cannot connect, ERR_AUTH
 * 401/403, ERR_PROTOCOL other statuses or an answer over 64 KiB); *body
 * is then left untouched. */
int wake_once(const char *url, const char *token, double timeout_s,
	      int *http_status, char **body, struct err *err);

#endif
