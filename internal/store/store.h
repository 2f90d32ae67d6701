/* store.h - durable job records in Postgres (the only module that sees
 * libpq).
 *
 * With DATABASE_URL set, every job has a row in the `jobs` table: the API
 * inserts it before the Redis enqueue, the worker updates it on start,
 * progress milestones and finish, and a reconcile pass compares it with
 * Redis. Redis stays the source of truth for a live job; Postgres is the
 * record that survives Redis and the answer once Redis has let a job expire.
 * See docs/STORE.md for the schema and how the binaries use it.
 *
 * Connections. A `struct store` holds a small pool of connections (opened
 * lazily, each used by one thread at a time under the store's lock), so
 * one store may be shared by every thread of a process. A call that finds
 * its connection broken resets it (PQreset) and runs its statement once
 * more; every statement here is safe to run twice. When Postgres cannot be
 * reached the call fails at once with ERR_UNAVAILABLE (after a failed
 * connect, the next attempt on that connection waits STORE_RETRY_MS, so an
 * outage costs callers no connect timeouts in a loop): the caller retries
 * later, nothing crashes, and the next call after Postgres is back
 * reconnects by itself.
 *
 * Blocking. Every call but store_open, store_free and the pure helpers is
 * one or two round trips to Postgres and blocks for them: at most the
 * connect timeout (5 s unless the URL sets connect_timeout) plus the query.
 * A call waits for a free pooled connection when all are busy.
 *
 * Errors. Functions return 0 (or a count) on success and -1 with `err` set:
 *   ERR_INVALID      bad input (not a UUID, payload not JSON, bad URL)
 *   ERR_NOTFOUND     no such job (store_get, store_finish, ...)
 *   ERR_UNAVAILABLE  Postgres down, unreachable, restarting, or the
 *                    connection broke: retry later
 *   ERR_INTERNAL     anything else Postgres refused (a bug or a schema
 *                    not migrated); the message carries Postgres' words
 * Messages never contain the URL's password.
 *
 * Times are int64 microseconds since the Unix epoch; 0 means "not set"
 * (SQL NULL). Strings in results are heap copies the caller owns through
 * the struct they arrive in (release it); strings passed in are borrowed
 * for the call only.
 */
#ifndef WAKEQ_STORE_H
#define WAKEQ_STORE_H

#include "base/err.h"
#include "base/uuid.h"
#include "job/job.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_DEFAULT_CONNS 4    /* pool size when store_open gets 0 */
#define STORE_MAX_CONNS 64
#define STORE_CONNECT_TIMEOUT_S 5
#define STORE_RETRY_MS 1000      /* wait between connects after a failure */
#define STORE_MAX_LIST 1000      /* cap on `limit` of the list calls */

/* ---- lifecycle ---------------------------------------------------------- */

/* Makes a store for `url` (a postgres:// or postgresql:// URL, or a libpq
 * "key=value" string) with a pool of up to `conns` connections (0 =
 * STORE_DEFAULT_CONNS, at most STORE_MAX_CONNS). Only checks the URL: no
 * connection is opened until the first call that needs one, so a process
 * starts while Postgres is down (use store_ping to require it).
 * Returns the store (caller frees with store_free), or NULL with err
 * ERR_INVALID naming what is wrong in the URL ("invalid database url: ...").
 * Does not block. */
struct store *store_open(const char *url, int conns, struct err *err);

/* Closes every connection and frees `s`. Accepts NULL. No call on `s` may
 * be running or start afterwards. */
void store_free(struct store *s);

/* Gives every later call a deadline of `seconds` (0 = none, the default:
 * a call waits for Postgres' answer, bounded by its 30 s statement_timeout
 * while Postgres runs). A statement not answered in time fails with
 * ERR_UNAVAILABLE ("no answer within N s") and its connection is closed;
 * connecting waits as long at most (libpq's least is 2 s). After either
 * went unanswered, every call fails at once for STORE_RETRY_MS (no
 * connection asks a silent server again), then the next one tries. Meant for a
 * caller that answers people (the API): a frozen or silent Postgres then
 * costs each call `seconds`, not the whole outage. A statement given up
 * that Postgres runs later (woken from a freeze) is harmless: the inserts
 * of new jobs (store_insert, store_insert_many) then insert nothing, and
 * the other statements are safe to run twice. Call it before the store is
 * shared between threads; store_migrate should run without it (it waits
 * on another process' lock). Does not block. */
void store_set_timeout(struct store *s, double seconds);

/* Connects if needed and runs a trivial query. Returns 0 when Postgres
 * answers, -1 with err (ERR_UNAVAILABLE) otherwise. For /readyz. */
int store_ping(struct store *s, struct err *err);

/* Applies the versioned migrations not yet recorded in the
 * `schema_migrations` table, each in its own transaction, in version
 * order. Idempotent; several processes may call it at once (they take a
 * Postgres advisory lock in turn, and a late one finds nothing to do).
 * Returns the number of migrations applied (0 when the schema is current),
 * or -1 with err. Blocks while another process migrates. */
int store_migrate(struct store *s, struct err *err);

/* The highest migration version this build knows. */
int store_schema_version(void);

/* ---- job rows ----------------------------------------------------------- */

/* Rows are read into `struct job_info` (internal/job: the one home of the
 * job; job_info_release frees a row, job_info_to_json gives its document).
 * payload and result hold JSON text as Postgres normalised it; payload is
 * never NULL. */

/* A list of rows; store_job_list_release frees the rows and the array. */
struct store_job_list {
	struct job_info *items;
	size_t len;
};

void store_job_list_release(struct store_job_list *list);

/* Inserts the row of a new job from its resolved spec (job_spec_resolve:
 * id, queue and run_at set); call it before the Redis enqueue. The status
 * is scheduled when the spec is due later than now, else queued.
 * Returns 0 when inserted; 1 when `job->idempotency_key` is already used
 * in that queue, with the existing job's id written to `existing_id`
 * (nothing inserted: answer with the existing job); -1 with err:
 * ERR_INVALID (bad id, payload not JSON, missing field, bad status),
 * ERR_UNAVAILABLE, ERR_INTERNAL. A second insert of the same id (a retry
 * after a lost reply) returns 0 and changes nothing. `existing_id` may be
 * NULL when the caller does not want it. */
int store_insert(struct store *s, const struct job_spec *job,
		 char existing_id[UUID_STR_LEN], struct err *err);

#define STORE_MAX_BATCH 1000    /* entries per store_insert_many call */

/* Inserts the rows of `n` new jobs (1..STORE_MAX_BATCH) with one INSERT
 * statement, each with store_insert's meaning, for callers that collect
 * concurrent requests into one round trip. Returns -1 with err when the
 * statement failed as a whole, and then nothing was inserted: ERR_INVALID
 * when an entry is bad (a missing field, a bad id, a payload that is not
 * JSON: insert the entries one by one with store_insert to learn which),
 * ERR_UNAVAILABLE, ERR_INTERNAL. Otherwise returns 0 with rc[i] filled
 * for every entry: 0 inserted (or its id was already there); 1 its
 * idempotency key is taken in its queue (by an existing row or by an
 * earlier entry of the same call), that job's id in existing_ids[i]
 * (existing_ids may be NULL); -1 not inserted and its outcome unknown
 * (the lookup after a conflict failed), errs[i] says why (errs may be
 * NULL). Entries without a conflict cost nothing beyond the one
 * statement; each conflicting entry costs one to three more round trips. */
int store_insert_many(struct store *s, const struct job_spec *jobs,
		      size_t n, int *rc, char (*existing_ids)[UUID_STR_LEN],
		      struct err *errs, struct err *err);

/* Deletes the rows of `n` ids in one statement (the API undoing a batch
 * whose Redis enqueue failed). Bad ids are skipped. Returns the number of
 * rows deleted, or -1 with err. */
int store_delete_many(struct store *s, const char *const *ids, size_t n,
		      struct err *err);

/* Reads the row of `id` into `*out` (which the caller then releases).
 * Returns 0, or -1 with err: ERR_NOTFOUND (no row, or `id` is not a UUID),
 * ERR_UNAVAILABLE, ERR_INTERNAL. `*out` is untouched on failure. */
int store_get(struct store *s, const char *id, struct job_info *out,
	      struct err *err);

/* Deletes the row of `id` (the API undoing an insert whose Redis enqueue
 * failed, so that a refused request changes nothing). Returns 1 when a row
 * was deleted, 0 when there was none, -1 with err. */
int store_delete(struct store *s, const char *id, struct err *err);

/* The worker took the job: status active, attempts = `attempt` (the
 * attempt number from Redis, so a repeated call is harmless), started_at =
 * `started_at` (0 = now()), progress 0, stage cleared (error keeps the
 * last attempt's, until the job finishes or is re-queued). Skipped for a
 * row already done, failed or cancelled. Returns 1 when the row changed,
 * 0 when no row matched (missing or final), -1 with err. */
int store_mark_started(struct store *s, const char *id, int attempt,
		       int64_t started_at, struct err *err);

/* Progress milestone: progress (clamped to 0..100) and `stage` (NULL keeps
 * the stored one). Only for an active row. Returns 1 / 0 / -1 as above. */
int store_progress(struct store *s, const char *id, double progress,
		   const char *stage, struct err *err);

/* Final state: `status` must be done, failed or cancelled (else
 * ERR_INVALID). Sets result (JSON text, NULL = SQL NULL), error (NULL =
 * none), finished_at (0 = now()), progress 100 when done, and attempts
 * when `attempts` > 0. Unconditional: the caller (worker or reconcile) has
 * Redis' word for it. Returns 0, or -1 with err (ERR_NOTFOUND when no row,
 * ERR_INVALID when `result` is not JSON). */
int store_finish(struct store *s, const char *id, enum job_status status,
		 const char *result, const char *error, int64_t finished_at,
		 int attempts, struct err *err);

/* Non-final status changes: queued (a retry from dead, a reclaim),
 * scheduled, retrying (with `error` from the failed attempt, NULL keeps
 * it; `run_at` the next try, 0 keeps it), cancelled (finished_at = now).
 * `status` active is refused (use store_mark_started), done/failed too
 * (use store_finish). A move to queued also clears result, error,
 * finished_at, progress and stage. Returns 0, or -1 with err
 * (ERR_NOTFOUND, ERR_INVALID, ...). */
int store_set_status(struct store *s, const char *id, enum job_status status,
		     const char *error, int64_t run_at, struct err *err);

/* Rows of `queue` in `status`, newest first (by id, which is time-ordered),
 * at most `limit` (1..STORE_MAX_LIST), starting after the id `before` (NULL
 * = from the newest): pass the last id of a page to get the next.
 * Fills `*out` (caller releases; empty list when none). Returns the number
 * of rows or -1 with err. */
int store_list(struct store *s, const char *queue, enum job_status status,
	       int limit, const char *before, struct store_job_list *out,
	       struct err *err);

/* For reconcile: rows still queued, scheduled, retrying or active whose
 * updated_at is at least `min_age_s` seconds old (so a row inserted a
 * moment ago, whose enqueue is still in flight, is left alone), in any
 * queue when `queue` is NULL, oldest id first, ids greater than `after`
 * (NULL = from the start), at most `limit` (1..STORE_MAX_LIST). Page with
 * the last id returned. Fills `*out`; returns the count or -1 with err. */
int store_list_unfinished(struct store *s, const char *queue, double min_age_s,
			  const char *after, int limit,
			  struct store_job_list *out, struct err *err);

/* Applies `n` final states read from Redis (reconcile) in one statement:
 * of each job_info, id, status (done, failed or cancelled), result,
 * error, attempts (0 = keep), started_at (0 = keep) and finished_at (0 =
 * now()) are used. Each row whose status or finished_at differs is
 * updated; rows already equal, and ids with no row,
 * are skipped. Returns the number of rows changed, or -1 with err
 * (ERR_INVALID when an entry has a non-final status, a bad id or a result
 * that is not JSON; nothing is changed then). */
int store_apply_finals(struct store *s, const struct job_info *finals,
		       size_t n, struct err *err);

#endif
