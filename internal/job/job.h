/* job.h - the job: its one home.
 *
 * Two halves. The record: the status enum, `struct job_spec` (what a
 * client asks for: parsed and checked once at the edge, defaults resolved
 * once), `struct job_info` (what a job is, as read back from Redis or
 * Postgres) and the one JSON document built from it, which every
 * interface shows (GET /v1/jobs/{id}, lists, SSE, the CLI). The queue and
 * the store speak these types; no module re-parses another's JSON text.
 *
 * The types: what each one accepts and the code that runs it.
 *
 * Every built-in type is listed once, in job.c, with a payload check
 * that needs no heavy library, so the API can refuse a bad job at the door
 * without linking FFmpeg; the user's own types (internal/handler's
 * registry) are added at start-up with job_register. The worker binds a
 * run function to each type it can execute (job_bind); a type without one
 * fails non-retryably.
 *
 * A run function is given the parsed payload, a progress callback and a
 * cancel flag; it returns 0 with a JSON result, or -1 with an error marked
 * retryable or not. It must poll job_cancelled() at least every few
 * hundred milliseconds during long work and return promptly once set.
 */
#ifndef WAKEQ_JOB_H
#define WAKEQ_JOB_H

#include "base/err.h"
#include "base/uuid.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- the record ---------------------------------------------------------- */

/* Where a job is in its lifecycle (DESIGN.md "Job lifecycle"). The names
 * are the ones stored in Redis and Postgres and shown everywhere. */
enum job_status {
	JOB_QUEUED,
	JOB_SCHEDULED,
	JOB_ACTIVE,
	JOB_RETRYING,
	JOB_DONE,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_WAITING,     /* for its dependencies (depends_on) to finish */
};
#define JOB_NSTATUS 8

/* "queued", "scheduled", ...; "unknown" for a value out of range. */
const char *job_status_name(enum job_status st);

/* Parses a status name. Returns 0, or -1 with err (ERR_INVALID) listing
 * the names; err may be NULL. */
int job_status_parse(const char *name, enum job_status *out, struct err *err);

/* Whether `st` is done, failed or cancelled: nothing will change it
 * (waiting is not final). */
int job_status_final(enum job_status st);

/* Bounds of a job's fields, the same at every door (API, CLI, reconcile). */
#define JOB_PRIORITY_MAX 9              /* 0 runs first */
#define JOB_MAX_ATTEMPTS_MAX 100
#define JOB_MAX_ATTEMPTS_DEFAULT 3
#define JOB_TIMEOUT_MAX_S (7.0 * 86400)
#define JOB_DELAY_MAX_S (366.0 * 86400)
#define JOB_IDEM_MAX 200                /* printable ASCII */
#define JOB_IDEM_TTL_DEFAULT_S 86400
#define JOB_UNIQUE_MAX 200              /* printable ASCII */
#define JOB_GROUP_MAX 128               /* printable ASCII */
#define JOB_URL_MAX 2048
#define JOB_LABELS_MAX 32               /* entries */
#define JOB_LABEL_KEY_MAX 63            /* [A-Za-z0-9_./-] */
#define JOB_LABEL_VALUE_MAX 256         /* bytes of UTF-8 */
#define JOB_DEPS_MAX 1000               /* ids in depends_on */

/* What a failed or cancelled dependency does to a job waiting for it
 * (on_dependency_failure). */
enum job_dep_policy {
	JOB_DEP_FAIL,    /* the dependent fails too (the default) */
	JOB_DEP_CANCEL,  /* it is cancelled */
	JOB_DEP_IGNORE   /* it counts as finished: the dependent runs */
};

/* "fail", "cancel", "ignore"; NULL for a value out of range. */
const char *job_dep_policy_name(enum job_dep_policy p);

/* What a client asks for. Strings are borrowed, except that
 * job_spec_parse makes them point into memory the spec owns (root,
 * payload_text, labels_text), which job_spec_release frees. */
struct job_spec {
	char id[UUID_STR_LEN];       /* "" until job_spec_resolve mints one */
	const char *queue;           /* NULL = the default queue */
	const char *type;            /* required */
	const char *payload;         /* compact JSON object text; NULL = "{}" */
	int priority;                /* 0..JOB_PRIORITY_MAX */
	int64_t run_at_us;           /* wall clock; 0 = now (+ delay_ms) */
	int64_t delay_ms;            /* used when run_at_us is 0 */
	int max_attempts;            /* 0 = the default */
	double timeout_s;            /* 0 = none (the worker's JOB_TIMEOUT) */
	const char *idempotency_key; /* NULL = none */
	int64_t idempotency_ttl_s;   /* 0 = the default */
	const char *callback_url;    /* NULL = none */
	const char *trace;           /* trace id carried to the worker's logs */
	const char *labels;          /* compact JSON object of strings, keys
				      * sorted; NULL = none */
	const char *unique_key;      /* while a job with this key is queued,
				      * scheduled, retrying or active, an
				      * enqueue with it gives that job; NULL =
				      * none */
	const char *group;           /* rate limits and concurrency caps per
				      * group (a tenant, an API key), served
				      * round robin; NULL = none */
	const char *depends_on;      /* compact JSON array of the ids of jobs
				      * of the same queue it runs after (1 to
				      * JOB_DEPS_MAX, no repeats); NULL = none */
	enum job_dep_policy dep_policy; /* when one of those fails or is
				      * cancelled */
	const char *batch;           /* the batch (its callback job's id) it
				      * belongs to; NULL = none. Set by the
				      * batch door, never by a client. */
	/* owned by a parsed spec */
	json_t *root;
	char *payload_text;
	char *labels_text;
	char *deps_text;
};

/* Defaults of a deployment, applied once by job_spec_resolve. */
struct job_defaults {
	const char *queue;           /* NULL = "default" */
	int max_attempts;            /* 0 = JOB_MAX_ATTEMPTS_DEFAULT */
	int64_t idempotency_ttl_s;   /* 0 = JOB_IDEM_TTL_DEFAULT_S */
};

/* Parses and checks a job request (the POST /v1/jobs body): a JSON object
 * with known fields of the right types and ranges, a known type that
 * clients may create, and a payload that fits it (job_check). Returns 0
 * with *out filled (release it), or -1 with err naming the field and
 * *code one of "invalid_json", "unknown_field", "invalid_field",
 * "unknown_type", "invalid_payload" (*out untouched). Never blocks; `body`
 * need not be NUL-terminated. */
int job_spec_parse(const char *body, size_t len, struct job_spec *out,
		   const char **code, struct err *err);

/* Fills what the client left to the deployment: queue, max_attempts,
 * idempotency TTL, payload "{}", and a fresh UUIDv7 id when id is "".
 * run_at_us becomes absolute (now_us + delay_ms when a delay was asked),
 * so the spec then says when the job is due. Never fails. */
void job_spec_resolve(struct job_spec *s, const struct job_defaults *d,
		      int64_t now_us);

/* JOB_WAITING when a resolved spec has dependencies, else JOB_SCHEDULED
 * when it is due after now_us, else JOB_QUEUED. */
enum job_status job_spec_status(const struct job_spec *s, int64_t now_us);

/* Frees what job_spec_parse allocated and zeroes *s. Accepts NULL. */
void job_spec_release(struct job_spec *s);

/* Checks a value for the fields of the same names (shared by every door).
 * Return 1 when acceptable. A unique key follows the idempotency key's
 * rule (1 to JOB_UNIQUE_MAX printable ASCII characters); a group is 1 to
 * JOB_GROUP_MAX printable ASCII characters. */
int job_idem_key_ok(const char *key);
int job_group_ok(const char *group);
int job_url_ok(const char *url);

/* Checks a depends_on value (an array of 1 to JOB_DEPS_MAX distinct job
 * ids, UUIDs) and makes its compact text (*text, caller frees). Returns
 * 0, or -1 with err saying what is wrong (*text untouched). Shared by
 * every door and the fuzzer. */
int job_deps_parse(const json_t *deps, char **text, struct err *err);

/* Parses an on_dependency_failure name. Returns 0, or -1 (ERR_INVALID,
 * err may be NULL). */
int job_dep_policy_parse(const char *name, enum job_dep_policy *out,
			 struct err *err);

/* Checks a labels object ({"k":"v",...}: at most JOB_LABELS_MAX entries,
 * keys and values bounded as above). Returns 0, or -1 with err naming the
 * label. */
int job_labels_check(const json_t *labels, struct err *err);

/* What a job is. Every string is a heap copy owned by the struct (NULL
 * when absent); job_info_release frees them. payload and result hold JSON
 * text as stored. Times are epoch microseconds, 0 = not set. */
struct job_info {
	char id[UUID_STR_LEN];
	char *queue;
	char *type;
	char *payload;           /* JSON text; NULL reads as {} */
	enum job_status status;
	int priority;
	int attempts;
	int max_attempts;
	double progress;         /* 0..100 */
	char *stage;
	char *result;            /* JSON text; NULL until done */
	char *error;
	char *idempotency_key;
	char *callback_url;
	char *trace;
	char *labels;            /* JSON object text; NULL = {} */
	char *unique_key;
	char *group;
	char *depends_on;        /* JSON array text; NULL = none */
	enum job_dep_policy dep_policy;
	char *batch;             /* the batch it belongs to, or NULL */
	int deps_done;           /* of its dependencies: how many ended */
	int deps_failed;         /* so (a batch's counts, kept on its */
	int deps_cancelled;      /* callback job) */
	double timeout_s;        /* 0 = none */
	int cancel_requested;    /* a cancel waits for the running attempt */
	int64_t created_at;
	int64_t started_at;
	int64_t finished_at;
	int64_t updated_at;
	int64_t run_at;
};

/* Frees the strings of `j` and zeroes it. Accepts NULL. */
void job_info_release(struct job_info *j);

/* The job as every interface shows it: a new object with {id, queue,
 * type, status, priority, attempts, max_attempts, progress, stage,
 * payload, result, error, labels, unique_key, group, cancel_requested,
 * created_at, started_at, finished_at, run_at, depends_on,
 * on_dependency_failure, batch}; the last three only for a job with
 * dependencies (or of a batch). payload, result and labels are JSON
 * values (a stored text that is not JSON is kept as a string), times RFC
 * 3339 UTC with microseconds or null. Caller owns the reference. Never
 * fails (out of memory aborts). */
json_t *job_info_to_json(const struct job_info *j);

/* The dependencies of a job as every interface shows them: a new array
 * of {id, status, result, error, finished_at}, one per entry of deps[]
 * (read back by the queue; status "unknown" for one whose record is
 * gone). Caller owns the reference. */
json_t *job_deps_to_json(const struct job_info *deps, size_t n);

/* The batch whose callback job is `cb` (a batch's id is its callback's):
 * a new object {id, queue, status ("running" until every job of the
 * batch has ended, then "finished"; "cancelled" when its callback was
 * cancelled before), total, done, failed, cancelled, pending (not ended
 * yet), callback: {id, type, status}, created_at}. Caller owns it. */
json_t *job_batch_to_json(const struct job_info *cb);

/* The spec that asks for the job `j` again under its own id (reconcile's
 * re-enqueue). Strings in *out are borrowed from `j`. */
void job_info_spec(const struct job_info *j, struct job_spec *out);

/* Whether the labels of `j` include every entry of `want` (an object of
 * strings; NULL or {} matches every job). */
int job_info_has_labels(const struct job_info *j, const json_t *want);

/* ---- linked jobs: flows and batches ------------------------------------------
 * Jobs created together, linked by their dependencies: a flow (a parent
 * that runs after its children, which may have children of their own, to
 * any depth: BullMQ's FlowProducer) or a batch (jobs and a callback that
 * runs once every one has ended, however: Sidekiq Pro's batches; the
 * batch's id is its callback's). Parsed, resolved and linked here once for
 * every door (POST /v1/flows and /v1/batches, `wakeq flow` and `wakeq batch
 * create`); each door writes the members its own way, in order, in one
 * enqueue. */

struct job_linked {
	struct job_spec *specs;   /* n + 1 members in enqueue order (a job
				   * after those it depends on); specs[n] is
				   * the flow's parent or the batch's
				   * callback. Resolved: ids minted. */
	size_t n;
	const char *queue;        /* every member's: the body's "queue", else
				   * the default given; borrowed from them */
	/* private */
	char **deps;              /* per member: its depends_on text */
	json_t *shape;            /* a flow's tree of member indexes */
};

/* Parses a flow request ({queue?, parent: job, children: [job...],
 * on_dependency_failure?}; a child may have "children" of its own) of at
 * most `max` jobs, or a batch request ({queue?, jobs: [1 to max - 1 jobs],
 * callback?: job, callback_url?}; the callback is a noop when none is
 * given), each member checked as job_spec_parse checks a job, without the
 * fields that would break the links (depends_on, on_dependency_failure,
 * idempotency_key, unique_key) and on the request's queue only. Resolves
 * every member with `d` at now_us and links them. Returns 0 with *out
 * filled (release it; `body` must outlive it), or -1 with err naming the
 * member ("children[0].children[1]: field 'type': ...") and *code as
 * job_spec_parse's (*out untouched). Never blocks. */
int job_flow_parse(json_t *body, const struct job_defaults *d, size_t max,
		   int64_t now_us, struct job_linked *out, const char **code,
		   struct err *err);
int job_batch_parse(json_t *body, const struct job_defaults *d, size_t max,
		    int64_t now_us, struct job_linked *out, const char **code,
		    struct err *err);
/* The type of both, for a caller that takes either. */
typedef int (*job_linked_parse_fn)(json_t *body, const struct job_defaults *d, size_t max,
				   int64_t now_us, struct job_linked *out, const char **code,
				   struct err *err);

/* The answer for a created flow, every interface's: a new object {id,
 * status, children?: [the same for each child], queue}; st[i] is the
 * status members[i] was created in. Caller owns it. */
json_t *job_flow_doc(const struct job_linked *l, const enum job_status *st);

/* The answer for a created batch: a new object {id, queue, status_url,
 * jobs: [ids]}.
 * Caller owns it. */
json_t *job_batch_doc(const struct job_linked *l);

/* Frees what a parse made and zeroes *l. Accepts NULL. */
void job_linked_release(struct job_linked *l);

/* ---- the record in a Redis hash ------------------------------------------
 * The queue stores a job as a hash `wakeq:{Q}:job:ID`. The fields a client
 * sets are listed here once, in job.c's table; the queue's scripts read
 * and write the lifecycle fields (status, attempts, token, ...) by name,
 * as docs/QUEUE.md lists. */

/* The packed spec, hash field `s`: what a worker's lease and a settle need
 * of a job's fixed fields in one string, so that the take script reads
 * one field where it read six (docs/QUEUE.md "Engine costs"). Layout (a
 * format: change it only with the fallback in take.lua for records that
 * lack it):
 *   FLAGS TYPE \t MAX_ATTEMPTS \t TIMEOUT
 * FLAGS is one character, '@' + the JOB_SPEC_HAS_* bits of the optional
 * fields the record holds (each still in its own field too). Type names
 * hold no tab (job_find's names). */
enum {
	JOB_SPEC_HAS_CALLBACK = 1, JOB_SPEC_HAS_UNIQUE = 2, JOB_SPEC_HAS_GROUP = 4,
	JOB_SPEC_HAS_TRACE = 8, JOB_SPEC_HAS_DEPS = 16
};
#define JOB_SPEC_PACKED_MAX 192

/* The JOB_SPEC_HAS_* bits of a spec: the optional fields it sets. */
unsigned job_spec_flags(const struct job_spec *s);

/* Reads a packed spec of `len` bytes: *flags (JOB_SPEC_HAS_*), a new
 * string *type (caller frees), *max_attempts, *timeout_s. Returns 0, or
 * -1 when it is not one (nothing allocated). */
int job_spec_unpack(const char *s, size_t len, unsigned *flags, char **type,
		    int *max_attempts, double *timeout_s);

/* The hash fields of a resolved spec that the enqueue script stores as
 * given: fills names[]/values[] (borrowed from `s`, static, or `buf`,
 * which holds the formatted numbers and field `s`) and returns how many
 * (at most JOB_HASH_SPEC_MAX). Fields left empty are omitted. */
#define JOB_HASH_SPEC_MAX 16
struct job_hash_buf {
	char num[JOB_HASH_SPEC_MAX][24];
	char packed[JOB_SPEC_PACKED_MAX];
};
size_t job_spec_hash(const struct job_spec *s,
		     const char *names[JOB_HASH_SPEC_MAX],
		     const char *values[JOB_HASH_SPEC_MAX],
		     struct job_hash_buf *buf);

/* Fills `out` (zeroed first; release it) from a hash's field/value pairs
 * (`n` pairs; unknown fields ignored). id and queue are given. */
void job_info_from_hash(struct job_info *out, const char *id,
			const char *queue, const char *const *fields,
			const char *const *values, size_t n);


/* ---- the types ------------------------------------------------------------ */

/* Settings that handlers read; filled once by the worker's main (the API's
 * sets data_dir), then read-only. Strings are borrowed for the life of the
 * process. */
struct job_settings {
	const char *data_dir;        /* file:// inputs and outputs live here;
				      * the media checks refuse a file:// URL
				      * whose path leaves it (NULL or "" = no
				      * such check) */
	const char *tmp_dir;         /* scratch files */
	const char *allow_private;   /* ALLOW_PRIVATE_NETWORKS ("" = none) */
	int64_t max_input_bytes;     /* cap on downloaded inputs */
	const char *webhook_secret;  /* HMAC key for callbacks ("" = unsigned) */
	const char *webhook_secret_previous; /* also signs during a rotation */
};

extern struct job_settings job_settings;

/* One run of one job. Everything is borrowed for the duration of the run. */
struct job_run {
	const char *id;
	const char *queue;
	const char *type;
	const char *trace;        /* trace id of the request that made it, or
				   * NULL */
	json_t *payload;          /* parsed; an object for every built-in type */
	json_t *dependencies;     /* a job with depends_on: {id: result} of its
				   * dependencies (a flow's children); NULL
				   * otherwise */
	int dependencies_cut;     /* 1: some of them left out (null) to keep
				   * them within 16 MiB */
	int attempt;              /* 1 on the first run */
	int max_attempts;
	double timeout_s;         /* 0 = none; the worker also sets *cancel */
	atomic_int *cancel;       /* non-zero: stop now (cancel, lease lost,
				   * timeout, shutdown) */
	/* Reports progress (0–100, clamped) and a stage name ("decode"; NULL
	 * keeps the last one). Cheap; the worker throttles what it sends. */
	void (*progress)(void *opaque, double percent, const char *stage);
	void *opaque;
};

static inline int job_cancelled(const struct job_run *r)
{
	return r->cancel && atomic_load_explicit(r->cancel, memory_order_relaxed);
}

static inline void job_progress(const struct job_run *r, double percent,
				 const char *stage)
{
	if (r->progress)
		r->progress(r->opaque, percent, stage);
}

#define JOB_ERROR_MAX 1024

/* What a run produced. The run function fills it; the caller releases it. */
struct job_outcome {
	json_t *result;           /* on success; owned here, may stay NULL */
	int retryable;            /* on failure: worth another attempt */
	double retry_after_s;     /* on retryable failure: minimum delay, 0 =
				   * the queue's backoff */
	int rate_limit_group;     /* on retryable failure with retry_after_s:
				   * the service called answered that it is
				   * rate limited (429 + Retry-After), so the
				   * job's whole group waits retry_after_s and
				   * the attempt does not count (docs/QUEUE.md
				   * "Push-back") */
	char error[JOB_ERROR_MAX]; /* on failure: one readable line */
};

/* Returns 0 with out->result set (or left NULL for null), or -1 with
 * out->error and out->retryable set. Blocks for as long as the work takes. */
typedef int (*job_run_fn)(const struct job_run *run, struct job_outcome *out);

/* Checks a payload's shape. Returns 0, or -1 with err naming the field. */
typedef int (*job_check_fn)(const json_t *payload, struct err *err);

/* The same for a registered type, given the type's own data (a handler
 * registry entry with its payload schema). */
typedef int (*job_check_data_fn)(const json_t *payload, const void *data,
				 struct err *err);

struct job_type {
	const char *name;
	job_check_fn check;
	job_run_fn run; /* NULL until bound */
	int internal;   /* made by the queue only (webhook.deliver): no
			 * client may enqueue it, or it would sign any body
			 * for any URL with WEBHOOK_SECRET */
	/* Types registered at start-up (job_register) only: */
	job_check_data_fn check_data; /* used instead of check when set */
	const void *data;             /* borrowed; handed to check_data */
	int max_attempts;             /* default of its jobs, 0 = the deployment's */
	double timeout_s;             /* default of its jobs, 0 = the deployment's */
};

/* The type named `name`, or NULL. */
const struct job_type *job_find(const char *name);

/* Adds a type at start-up (the handler registry's types): copies *t (its
 * strings and data stay borrowed for as long as it is registered). A type
 * registered so is checked, listed and run as the built-in ones are.
 * Returns 0, or -1 with err (ERR_INVALID) when the name is empty or taken.
 * Call before any job is checked or run: not thread-safe against
 * job_find. */
int job_register(const struct job_type *t, struct err *err);

/* Drops every registered type (the built-in ones stay). For tests and for
 * a registry that is freed; same thread-safety as job_register. */
void job_unregister_all(void);

/* Fills max_attempts and timeout_s from the type's defaults where `s`
 * leaves them 0 (job_spec_resolve does this; for doors that do not
 * resolve). */
void job_spec_type_defaults(struct job_spec *s);

/* Checks that `type` is known to clients (not internal) and `payload` (a JSON text, NULL = {}) fits
 * it. Returns 0, or -1 with err (ERR_INVALID) naming the field. */
int job_check(const char *type, const char *payload, struct err *err);

/* Binds a run function to a known type. Returns 0, or -1 if unknown.
 * Call before any job runs (not thread-safe against job_find). */
int job_bind(const char *name, job_run_fn run);

/* Binds noop, sleep and fail. */
void job_bind_core(void);

/* Runs one job: finds the type, parses nothing (the caller did), calls the
 * run function, and turns "no such type" or "no handler" into a
 * non-retryable failure. Returns as the run function does. */
int job_execute(const struct job_run *run, struct job_outcome *out);

/* Sets a failure on `out`; returns -1. */
int job_fail(struct job_outcome *out, int retryable, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Releases out->result. */
void job_outcome_release(struct job_outcome *out);

/* Comma-separated names of every type a client may enqueue, for error
 * messages. Valid until the next job_register. */
const char *job_type_names(void);

/* The type at `i` in listing order (built-in, then registered), or NULL
 * past the end: for --help and `wakeq handlers`. */
const struct job_type *job_type_at(size_t i);

/* A media container: the muxer that writes it, the codecs it can hold
 * (space-separated; video "" = audio only; "copy" and "none" always
 * allowed) and the codecs written when the job names none. The one table
 * is shared by the payload check and the transcoder. */
struct job_container {
	const char *name;     /* "mp4", "webm", ... as in the payload */
	const char *muxer;    /* FFmpeg muxer name */
	const char *video;
	const char *audio;
	const char *vdef;     /* "none" for audio-only containers */
	const char *adef;
	int faststart;        /* move the index to the front (MP4 family) */
};

/* The container named `name`, or NULL. */
const struct job_container *job_container_find(const char *name);

/* Helpers for payload checks: fetch an optional member of a given JSON
 * type; -1 with err naming `name` when present with the wrong type. */
int job_get_string(const json_t *obj, const char *name, int required,
		    const char **out, struct err *err);
int job_get_number(const json_t *obj, const char *name, int required,
		    double min, double max, double *out, struct err *err);
int job_get_bool(const json_t *obj, const char *name, int required,
		  int *out, struct err *err);

#endif
