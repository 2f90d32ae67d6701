/* wake.h - waking the worker: HTTP POST to its /wake URL (libcurl).
 *
 * A `struct wake` owns one background thread running the curl multi
 * interface, so asking for a wake never blocks the caller (the API's
 * request threads). The worker's /wake holds the request open until its
 * drain ends (Cloud Run gives CPU only while a request is open), so a wake
 * is a long transfer: the waker keeps it open in the background and never
 * waits for it.
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
 * waking twice for jobs the first drain took.
 *
 * Scale-out: with fanout_max > 1, wake_notify(…, live=1) asks for a backlog
 * check at most once a second; when pending jobs exceed
 * live workers × slot_concurrency × backlog_per_slot, further concurrent
 * wakes are sent (each one brings one more instance on Cloud Run with
 * worker concurrency 1), up to fanout_max transfers in flight.
 *
 * Auth: a static bearer token (WAKE_TOKEN), or Google OIDC identity tokens
 * from the metadata server (WAKE_AUTH=google), fetched for the audience
 * and cached until 5 minutes before they expire (GCE_METADATA_HOST
 * overrides metadata.google.internal, as Google's client libraries do).
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

struct wake_opts {
	const char *url;            /* the worker's /wake URL; required */
	enum wake_auth auth;
	const char *token;          /* WAKE_AUTH_TOKEN: the bearer token */
	const char *audience;       /* GOOGLE: NULL = scheme://host of url */
	const char *metadata_host;  /* GOOGLE: NULL = $GCE_METADATA_HOST or
				     * metadata.google.internal */
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
	uint64_t sent;        /* transfers that reached "request sent" */
	uint64_t failed;      /* transfers that failed before that */
	uint64_t completed;   /* transfers that ended after being sent */
	int in_flight;        /* transfers open now */
};

/* Starts the waker thread. Strings in opts are copied. Returns the waker
 * (free with wake_free), or NULL with err (ERR_INVALID bad URL or auth
 * settings, ERR_INTERNAL curl could not start). */
struct wake *wake_new(const struct wake_opts *opts, struct err *err);

/* Stops the thread and drops open transfers. Accepts NULL. Blocks for at
 * most a moment. */
void wake_free(struct wake *w);

/* After an enqueue: live_worker is what queue_enqueue reported. 0 wants a
 * wake (sent at once unless one is in flight or backing off); 1 only
 * matters for fan-out. Thread-safe, never blocks. */
void wake_notify(struct wake *w, int live_worker);

/* A job was scheduled for `due_us` (epoch microseconds): at that time the
 * waker checks the backlog and wakes when due work has no worker. Keeps
 * the earliest pending time. Thread-safe, never blocks. */
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

/* Fetches a Google identity token for `audience` from the metadata server
 * (`metadata_host` "host[:port]", NULL = default). On success returns 0,
 * *token (caller frees) and *expires_us from the token's exp claim.
 * Blocks up to 5 s. Exposed for tests and the CLI. */
int wake_google_token(const char *metadata_host, const char *audience,
		      char **token, int64_t *expires_us, struct err *err);

#endif
