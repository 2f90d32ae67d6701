/* queue.h - the Redis queue engine: jobs, leases, retries, dead letters,
 * the worker registry and the wake markers (DESIGN.md "The queue in Redis").
 *
 * Every state change is one Lua script run with EVALSHA (loaded once per
 * connection, EVAL on NOSCRIPT): one round trip, atomic. All keys of a
 * queue share the hash tag {QUEUE}, so each script touches one slot.
 *
 * A `struct queue` is one Redis connection and is not thread-safe: give
 * each thread its own. Every call blocks for at most the command timeout
 * (except queue_wait, which is polled). On a connection error the call
 * fails with ERR_UNAVAILABLE and the next call reconnects, with a backoff
 * that grows from 50 ms to 2 s between attempts; a Redis outage is never
 * fatal. Other failures: ERR_INVALID (bad argument), ERR_NOTFOUND,
 * ERR_CONFLICT, ERR_PROTOCOL (a reply we cannot read).
 *
 * Times: zset scores are milliseconds since the epoch, job timestamps are
 * microseconds since the epoch, both on the Redis server's clock (TIME).
 */
#ifndef WAKEQ_QUEUE_H
#define WAKEQ_QUEUE_H

#include "base/err.h"
#include "base/uuid.h"
#include "cron/cron.h"
#include "job/job.h"

#include <stddef.h>
#include <stdint.h>

#define QUEUE_NAME_MAX 64      /* [A-Za-z0-9_.-]+ */
#define QUEUE_MAX_BATCH 1000   /* jobs per enqueue, take or settle call */

/* ---- connection -------------------------------------------------------- */

/* A parsed Redis URL: redis://[[user]:password@]host[:port][/db],
 * rediss://… (TLS), unix:///path/to/socket[?db=N&password=P&user=U],
 * redis+cluster://[[user]:password@]host[:port] and rediss+cluster://…
 * for a Redis Cluster: host:port is any node (Memorystore's discovery
 * endpoint, ElastiCache's configuration endpoint); the slot map is read
 * from it and every queue's commands go to the node owning the queue's
 * hash tag (docs/QUEUE.md "Redis Cluster"). */
struct queue_url {
	char host[256];     /* or the socket path for unix:// */
	int port;           /* 6379 by default */
	int unix_socket;
	int tls;
	int db;
	char user[128];
	char password[256];
	int cluster;        /* redis+cluster://, rediss+cluster:// */
};

/* Parses `url`. Returns 0, or -1 with err naming what is wrong. Used by
 * queue_opts_init (and the fuzzer): everything else takes a queue_opts. */
int queue_url_parse(const char *url, struct queue_url *out, struct err *err);

/* How to reach Redis: REDIS_URL parsed and checked once per process by
 * queue_opts_init, then handed to every connect (queue_connect,
 * queue_sub_connect, queue_pool_new), which never parse it again. A plain
 * value: copy it to change a timeout. Every connection made from it runs
 * the same handshake: connect (connect timeout), TLS for rediss:// (CA
 * from REDIS_TLS_CA_FILE, else the system store; the certificate must
 * name the URL's host), AUTH, SELECT, then the command timeout. */
struct queue_opts {
	struct queue_url url;     /* set by queue_opts_init */
	double connect_timeout_s; /* 0 = 5 */
	double command_timeout_s; /* 0 = 10 */
};

/* Parses `url` (NULL or "" = redis://127.0.0.1:6379) into *o, timeouts at
 * their defaults. Returns 0, or -1 with err (ERR_INVALID: a bad URL, or
 * rediss:// in a build without TLS support) and *o untouched. The one
 * place REDIS_URL is read; release with queue_opts_release. */
int queue_opts_init(struct queue_opts *o, const char *url, struct err *err);

/* Wipes the password. */
void queue_opts_release(struct queue_opts *o);

/* Whether this build can speak TLS to Redis (hiredis_ssl found at build). */
int queue_tls_supported(void);

/* Connects as `opts` says (from queue_opts_init; read during the call only)
 * and checks the server answers. Blocks up to the connect timeout plus one
 * command timeout. Returns a queue, or NULL with err set (ERR_UNAVAILABLE
 * when the server cannot be reached, ERR_AUTH for a refused password,
 * ERR_INVALID for a refused db or TLS set-up). Caller frees. */
struct queue *queue_connect(const struct queue_opts *opts, struct err *err);
void queue_free(struct queue *q);

/* For a connection kept across idle time (the worker keeps its drain's
 * from one wake to the next): drops it when the server has closed it or
 * sent anything unasked (poll, no command sent, does not block), or when
 * its last answer is older than max_idle_ms (> 0), so the next command
 * connects afresh (with its own TIME) instead of failing. A connection
 * that died silently within max_idle_ms is not seen here: TCP keepalive
 * (every queue connection has it, see conn.c) fails it, else its next
 * command fails after the command timeout. Returns 1 when still
 * connected. */
int queue_check(struct queue *q, int64_t max_idle_ms);

/* A thread-safe pool of connections, all made from one queue_opts, for
 * threads that borrow a connection per request. Connects lazily: a get
 * with no idle connection connects a new one. When a connect finds Redis
 * unreachable, gets that would connect fail fast (ERR_UNAVAILABLE, no
 * network) for QUEUE_POOL_RETRY_MS, so a Redis outage costs requests no
 * connect timeouts; idle connections are still handed out meanwhile. A
 * connection put back after a command went unanswered (the command
 * timeout: a frozen or cut-off server) makes every get fail fast for
 * QUEUE_POOL_RETRY_MS, idle connections included, so that the requests
 * gathered behind it do not each wait out a timeout of their own. A
 * connection that lost its server is reconnected by the next get that
 * takes it, under the same rule. */
struct queue_pool;

#define QUEUE_POOL_RETRY_MS 500

/* Makes an empty pool keeping at most max_idle idle connections (0 = 64);
 * `opts` is copied. Never fails. Free with queue_pool_free once every
 * borrowed connection is back. */
struct queue_pool *queue_pool_new(const struct queue_opts *opts,
				  size_t max_idle);
void queue_pool_free(struct queue_pool *p);

/* Borrows a connection: an idle one, or a new one (blocks up to the
 * connect timeout plus a command timeout). Returns it (return it with
 * queue_pool_put, or queue_free it), or NULL with err as queue_connect
 * says. */
struct queue *queue_pool_get(struct queue_pool *p, struct err *err);

/* Returns a borrowed connection (NULL is ignored); frees it when the pool
 * already holds max_idle. Never blocks on the network. */
void queue_pool_put(struct queue_pool *p, struct queue *q);

/* Round trip PING. Returns 0 or -1. */
int queue_ping(struct queue *q, struct err *err);

/* Checks a queue name: [A-Za-z0-9_.-]+, or a shard's NAME#K (below).
 * Returns 0 or -1 with err. */
int queue_name_check(const char *name, struct err *err);

/* ---- sharded queues -------------------------------------------------------
 * One busy queue can be spread over N queues NAME#0 … NAME#(N-1), each
 * with its own hash tag, so that on a cluster they land in different
 * slots (and, most likely, on different masters). QUEUES names them all
 * at once as NAME*N: the API sends a job posted to NAME to one shard, the
 * worker drains every shard. Each shard is an ordinary queue: FIFO
 * within a priority holds per shard, not across them (docs/QUEUE.md
 * "Sharding a queue"). */
#define QUEUE_SHARDS_MAX 16

/* Reads one entry of QUEUES: "NAME*N" (N in 2..QUEUE_SHARDS_MAX, NAME at
 * most QUEUE_NAME_MAX - 3 characters) sets name and *n = N; a plain
 * queue name sets *n = 1. Returns 0, or -1 with err (ERR_INVALID). */
int queue_shard_spec(const char *entry, char name[QUEUE_NAME_MAX + 1], int *n,
		     struct err *err);

/* The queue name of shard k of the n that queue_shard_spec read for
 * `name`: NAME#k, or `name` itself when n is 1. Caller frees. */
char *queue_shard_name(const char *name, int k, int n);

/* The shard (0..n-1) of a job with `key` (its idempotency or unique key,
 * so that the same key always meets the same shard): CRC16 of the key. */
int queue_shard_of(const char *key, int n);

/* ---- enqueue ----------------------------------------------------------- */

struct queue_enqueued {
	char id[UUID_STR_LEN];
	int created;                 /* 0: an existing job had this key, or
				      * the job was refused (missing) */
	enum job_status status;      /* created: what it is now (queued,
				      * scheduled, waiting; failed or
				      * cancelled when a dependency was) */
	char missing[UUID_STR_LEN];  /* refused: a depends_on id that names
				      * no job of the queue; "" otherwise */
};

/* Enqueues `n` jobs (1..QUEUE_MAX_BATCH) on `queue` in one round trip,
 * in order: a job may depend on one enqueued before it in the same call
 * (a flow). A job with depends_on waits (JOB_WAITING) until each of
 * them has ended, then is queued; a dependency that failed or was
 * cancelled fails or cancels it as its dep_policy says (docs/QUEUE.md
 * "Dependencies"). A depends_on id that names no job of this queue
 * refuses that job alone (created 0, out[i].missing names the id).
 * The specs should be resolved (job_spec_resolve); a spec whose id is ""
 * gets a fresh UUIDv7, and a delay is timed on the Redis clock. out[i]
 * tells the id of each: an existing job (created 0) when the spec's
 * idempotency key is known, or its unique key is held by a job not ended
 * yet (queued, scheduled, retrying or active; released when it ends). *live_worker (may be NULL) is set to
 * whether a live worker was registered on the queue at the moment of the
 * enqueue, read in the same script. Returns 0 or -1: nothing enqueued,
 * except with ERR_UNKNOWN (the script was sent, no answer came within the
 * command timeout): then the jobs were queued, or will never be, since the
 * script refuses to run (DEADLINE, ERR_UNAVAILABLE) more than half the
 * command timeout after it was sent, on the server's clock (the clock skew
 * measured at connect is applied: on a cluster, that of the node serving
 * the queue). */
int queue_enqueue(struct queue *q, const char *queue,
		  const struct job_spec *specs, size_t n,
		  struct queue_enqueued *out, int *live_worker,
		  struct err *err);

/* What the jobs of one queue_enqueue answer (out[], for specs[], n of
 * them) need of a waker: *due_us, the earliest run_at of those scheduled
 * (0 none), and *nnow, how many are due now (not scheduled, not waiting
 * for dependencies). Returns 0, or -1 with err naming a job that was not
 * created (ERR_INTERNAL: for jobs that name only each other, as a flow's
 * or batch's, it cannot happen). */
int queue_enqueued_due(const struct queue_enqueued *out, const struct job_spec *specs,
		       size_t n, int64_t *due_us, size_t *nnow, struct err *err);

/* ---- take and settle ---------------------------------------------------- */

/* A leased job. Strings are owned by the struct: queue_job_release. */
struct queue_job {
	char id[UUID_STR_LEN];
	char *type;
	char *payload;
	char *callback_url;    /* NULL when none */
	char *trace;           /* NULL when none */
	char *dependencies;    /* a job with depends_on: the results of its
				* dependencies, a JSON object {id: result}
				* (null for one without); NULL otherwise */
	int dependencies_cut;  /* 1: some results were left out (null) to
				* keep them within 16 MiB (deps_results) */
	int attempts;          /* including this one */
	int max_attempts;
	double timeout_s;
	int64_t token;         /* fencing token of this lease */
};

void queue_job_release(struct queue_job *job);

enum queue_outcome {
	QUEUE_DONE,      /* finished: result kept for RESULT_TTL */
	QUEUE_RETRY,     /* failed, retryable: delayed by delay_ms, or dead
			  * when attempts are used up */
	QUEUE_FAIL,      /* failed for good: dead letter */
	QUEUE_CANCELLED, /* stopped by a cancel request */
	QUEUE_REQUEUE,   /* shutdown: back to the front of pending, the
			  * attempt not counted */
	QUEUE_PUSHBACK   /* the upstream's rate limit (a 429 with
			  * Retry-After): back to the front of its group's
			  * waiting jobs, the attempt not counted, and the
			  * whole group held for delay_ms (an ungrouped job
			  * alone waits delay_ms); docs/QUEUE.md "Push-back" */
};

/* How one run ended. Strings are borrowed for the call. */
struct queue_settle {
	const char *id;
	int64_t token;
	enum queue_outcome outcome;
	const char *result;        /* DONE: JSON text, NULL = null */
	const char *error;         /* RETRY, FAIL, CANCELLED */
	int64_t delay_ms;          /* RETRY: backoff before the next attempt;
				    * PUSHBACK: how long the group waits */
	int64_t run_us;            /* how long the run took, for the run-time
				    * histogram (queue_stats_read); < 0: not
				    * measured (not counted) */
	/* When the job has a callback and this ends it (done, failed for good,
	 * cancelled), a webhook.deliver job with this id and payload is
	 * enqueued in the same script; NULL = none. */
	const char *webhook_id;
	const char *webhook_payload;
	int stale;                 /* out: 1 when refused (fencing) */
	int final;                 /* out: 1 when the job reached an end state */
};

struct queue_take {
	/* in */
	const char *worker;        /* worker id recorded on taken jobs */
	int64_t lease_ms;          /* lease length */
	size_t max;                /* take at most this many (0: settle only) */
	struct queue_settle *settle; /* results to apply first, may be NULL */
	size_t nsettle;
	/* out */
	struct queue_job *jobs;    /* caller's array of `max` entries */
	size_t njobs;              /* how many were taken */
	int64_t next_due_ms;       /* when none were taken: the earliest
				    * delayed job or lease expiry, 0 = none */
	int64_t server_now_ms;     /* the Redis clock when the script ran */
	size_t nstale;             /* settles refused by fencing */
	int paused;                /* the queue is paused: nothing was leased
				    * (settles still applied) */
	int refill;                /* a cron schedule fired here runs low on
				    * fire times: run queue_schedule_refill */
	/* in, optional (0/NULL: none): what rides on the take's round trip,
	 * so that an idle worker's wake is one take and one retire */
	int64_t register_ttl_ms;   /* > 0: registers `worker` as live, as
				    * queue_register does, before the take */
	int record;                /* the caller keeps Postgres records: the
				    * finals log is turned on first (as
				    * queue_finals_enable does) */
	const int64_t *wakes;      /* QUEUE_NTRIGGERS counts of wakes to add
				    * to the queue's metrics (queue_count_wake) */
	/* out */
	int64_t finals;            /* with record: entries waiting in the
				    * finals log, for the caller to copy */
};

/* Settles t->settle[] (acks, nacks, requeues: each refused when its token
 * is stale, counted in t->nstale and flagged in settle[i].stale), then
 * promotes due delayed jobs, reclaims expired leases (the attempt counts;
 * dead letter after max attempts) and leases up to t->max due jobs in
 * priority then FIFO order under a fresh fencing token (one for the jobs
 * taken in a call; any later lease of a job has another). One round trip.
 * Returns 0, or -1 with err (nothing settled, nothing taken). The caller
 * releases each taken job. */
int queue_take(struct queue *q, const char *queue, struct queue_take *t,
	       struct err *err);

/* Computes the backoff before attempt `attempts`+1: base * 2^(attempts-1),
 * capped, times a random factor in [0.5, 1.0] ("equal jitter"). */
int64_t queue_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms);

/* Records progress (0..100) and optionally a stage of a leased job and
 * publishes it to subscribers. Returns 0, or -1 (ERR_STALE when the lease
 * is no longer ours). */
int queue_progress(struct queue *q, const char *queue, const char *id,
		   int64_t token, double percent, const char *stage,
		   struct err *err);

/* ---- leases and workers ------------------------------------------------- */

struct queue_lease {
	const char *id;
	int64_t token;
	int running;   /* in: the job's run has begun (not just leased
			* ahead); a lease that expires without this
			* reported once is not counted as an attempt */
	int lost;      /* out: the lease is no longer ours: stop the job */
	int cancel;    /* out: a cancel was requested: stop the job */
};

/* Renews the leases of all of a worker's in-flight jobs to now + lease_ms
 * and the worker's registration to now + ttl_ms, in one round trip.
 * Returns 0 or -1. */
int queue_renew(struct queue *q, const char *queue, const char *worker,
		int64_t lease_ms, int64_t ttl_ms, struct queue_lease *leases,
		size_t n, struct err *err);

/* Registers (or refreshes) `worker` as live on `queue` until now + ttl_ms.
 * Returns 0 or -1. */
int queue_register(struct queue *q, const char *queue, const char *worker,
		   int64_t ttl_ms, struct err *err);

/* Refreshes an existing registration to now + ttl_ms with one plain ZADD XX
 * (no script), using the server clock offset measured at connect; never
 * re-registers a worker that has retired. For idle heartbeats. Returns 0
 * or -1. */
int queue_touch(struct queue *q, const char *queue, const char *worker,
		int64_t ttl_ms, struct err *err);

/* Leaves the registry of `queue` unless due work exists (pending jobs, due
 * delayed jobs or expired leases): *retired is 1 when the worker left, 0
 * when it must keep draining. With force, leaves regardless. Enqueue reads
 * the registry in its own script, so no job is ever stranded between the
 * two. Returns 0 or -1. */
int queue_retire(struct queue *q, const char *queue, const char *worker,
		 int force, int *retired, struct err *err);

/* Number of live workers on `queue`. Returns the count or -1. */
int queue_live_workers(struct queue *q, const char *queue, struct err *err);

/* ---- the finals log -------------------------------------------------------
 * While a queue is marked as recorded, every job that ends (done, failed,
 * cancelled) is also appended, in the script that ends it, to the stream
 * `wakeq:{Q}:finals`, where it stays until a consumer that wrote it to
 * Postgres deletes it (reconcile_finals). A crash between Redis and
 * Postgres therefore loses no completion (docs/STORE.md). */

#define QUEUE_FINAL_ID_MAX 48  /* a stream entry id, NUL included */

/* Marks `queue` as recorded in Postgres (idempotent; processes with
 * DATABASE_URL call it at start). Returns 0 or -1. */
int queue_finals_enable(struct queue *q, const char *queue, struct err *err);

/* Reads up to `max` of the oldest finals of `queue` into out[] (id,
 * queue, status, attempts, started_at, finished_at, result, error are set;
 * release each) and their entry ids into ids[]. Returns how many (0 when
 * the log is empty) or -1 with err. */
int queue_finals_read(struct queue *q, const char *queue, struct job_info *out,
		      char (*ids)[QUEUE_FINAL_ID_MAX], size_t max,
		      struct err *err);

/* Deletes `n` entries read with queue_finals_read, once recorded.
 * Returns 0 or -1. */
int queue_finals_ack(struct queue *q, const char *queue,
		     char (*ids)[QUEUE_FINAL_ID_MAX], size_t n, struct err *err);

/* ---- waiting for work --------------------------------------------------- */

/* Starts a blocking wait (BLPOP on the wake markers of `queues`) for up to
 * timeout_ms (rounded up to 1 ms). On a cluster, one BLPOP per queue, each
 * on a connection of its own to the node serving the queue (a BLPOP over
 * several slots is refused), and queue_fd() is an epoll set of them; a
 * BLPOP still outstanding when the wait ended (another queue answered
 * first) is kept for the next wait until queue_wait_cancel. The reply is collected with
 * queue_wait_poll once queue_fd() is readable. Only queue_wait_poll may be
 * called on `q` until the wait completes. Returns 0 or -1. */
int queue_wait_begin(struct queue *q, const char *const *queues, size_t n,
		     int64_t timeout_ms, struct err *err);

/* The socket to poll for readability during a wait, or -1. */
int queue_fd(const struct queue *q);

/* Reads what arrived. Returns 1 when a marker arrived (work may be due),
 * 0 when the wait timed out, 2 when the reply is not complete yet (poll
 * again), -1 on error (the wait is over). */
int queue_wait_poll(struct queue *q, struct err *err);

/* Abandons a wait in progress by dropping the connection (reconnects on
 * next use); on a cluster, also the BLPOPs a finished wait left
 * outstanding. Without a wait outstanding it does nothing (no I/O). */
void queue_wait_cancel(struct queue *q);

/* ---- inspection and operations ------------------------------------------ */

struct queue_counts {
	int64_t n[JOB_NSTATUS];    /* by status; done and failed are the
				    * retained sets, cancelled a running total */
	int64_t workers;           /* live workers */
	int64_t stale;             /* settles refused by fencing, in total */
	int64_t next_due_ms;       /* earliest scheduled or retrying job, 0 = none */
	int paused;                /* queue_pause: nothing is leased from it */
	int64_t done_total;        /* all-time totals, whatever the retention */
	int64_t failed_total;
	/* for waking (all 0 while paused): */
	int64_t due;               /* queued jobs a worker could lease now */
	int64_t held;              /* queued jobs held back by a rate limit */
	int64_t wake_at_ms;        /* when the first of those may go, 0 none */
	int64_t lease_ms;          /* the earliest lease deadline of an active
				    * job, 0 none (paused or not) */
};

int queue_counts(struct queue *q, const char *queue, struct queue_counts *out,
		 struct err *err);

/* What a resume found (all 0 for a pause). */
struct queue_resumed {
	int64_t due;           /* jobs that may run now */
	int64_t live;          /* live workers on the queue */
	int64_t next_due_ms;   /* the earliest delayed job not due yet, 0 none */
};

/* Pauses `queue` (paused 1) or resumes it (0). A paused queue still
 * accepts jobs, and settles apply, but take leases nothing from it, retire
 * counts none of its work as due and enqueue reports it as served (no
 * wake for work that cannot run). Resuming pushes wake markers for the
 * due work; *out (may be NULL) then says what the caller should arrange:
 * a wake now when due work has no live worker, one at next_due_ms.
 * Idempotent. Returns 0 or -1. */
int queue_pause(struct queue *q, const char *queue, int paused,
		struct queue_resumed *out, struct err *err);

/* ---- settings ------------------------------------------------------------
 * A queue's controls that operators set (wakeq settings, PUT
 * /v1/queues/{q}/settings), kept in Redis (wakeq:{Q}:config) and read by
 * the scripts once per run: every process serving the queue follows them
 * at once. Each is an integer >= 1 when set, 0 when not (the process's
 * default, or no limit). */
enum queue_setting_id {
	QUEUE_SET_RESULT_TTL,     /* s: done and cancelled jobs kept for */
	QUEUE_SET_DONE_MAX,       /* done jobs kept, at most */
	QUEUE_SET_DEAD_MAX,       /* failed (dead) jobs kept, at most */
	QUEUE_SET_DEAD_TTL,       /* s: failed jobs kept for; 0 = until the cap */
	QUEUE_SET_RATE_MAX,       /* jobs started per rate period, at most */
	QUEUE_SET_RATE_PERIOD,    /* ms (given in seconds) */
	QUEUE_SET_CONCURRENCY,    /* jobs active at once, at most, across
				   * every worker */
	QUEUE_SET_GROUP_RATE_MAX, /* the same for each group (a job's group) */
	QUEUE_SET_GROUP_RATE_PERIOD,
	QUEUE_SET_GROUP_CONCURRENCY,
	QUEUE_NSETTINGS
};

/* The table of settings: the one list of their names. */
struct queue_setting {
	const char *name;    /* the API's JSON member and the CLI's NAME, e.g.
			      * "result_ttl_s" */
	const char *field;   /* the field of the config hash */
	int64_t scale;       /* stored = given * scale: 1 for a whole number
			      * (a count, whole seconds), 1000 for seconds
			      * with fractions stored as ms */
	int64_t max;         /* largest stored value */
	const char *help;    /* one line */
};
extern const struct queue_setting queue_settings_table[QUEUE_NSETTINGS];

struct queue_settings {
	int paused;                      /* queue_pause sets it, not _set */
	int64_t v[QUEUE_NSETTINGS];      /* stored values; 0 = not set */
};

/* A given value of setting `id` as stored: checked (whole when the scale
 * is 1; the stored value 1 to the table's max) and scaled. Shared by every door. Returns 0, or -1 with err (ERR_INVALID
 * naming the setting by its API name). */
int queue_setting_value(enum queue_setting_id id, double given,
			int64_t *stored, struct err *err);

/* The stored value of setting `id` back in its given unit. */
double queue_setting_given(enum queue_setting_id id, int64_t stored);

/* The settings as every interface shows them: {queue, paused, then each
 * setting by its API name: a number in its given unit, or null when not
 * set}. Caller owns the reference. */
json_t *queue_settings_to_json(const char *queue, const struct queue_settings *st);

/* Applies an object of settings by API name (a number, or null to clear)
 * to *st; settings it does not name are left as they are. Returns 0, or
 * -1 with err and *code ("invalid_json", "unknown_field",
 * "invalid_field") and *st untouched. */
int queue_settings_from_json(const json_t *obj, struct queue_settings *st,
			     const char **code, struct err *err);

/* Reads the settings of `queue` into *out. Returns 0 or -1. */
int queue_settings_get(struct queue *q, const char *queue,
		       struct queue_settings *out, struct err *err);

/* Replaces the settings of `queue` with in->v (0 clears one; paused is
 * left as it is). Values are checked against the table first, and a rate
 * and its period go together. Takes
 * effect at the next script run of every process. Returns 0, or -1 with
 * err (ERR_INVALID naming the setting; nothing changed). */
int queue_settings_set(struct queue *q, const char *queue,
		       const struct queue_settings *in, struct err *err);

/* ---- cron schedules ---------------------------------------------------------
 * A schedule makes a job from its template at each fire time of its cron
 * expression in its time zone (internal/cron). The fire times are
 * computed here, ahead (QUEUE_SCHED_AHEAD of them), and kept in Redis;
 * the take script makes the jobs of the due ones, atomically and once per
 * fire time (the job's id comes from the queue, the name and the time),
 * and says when to compute more (queue_take.refill). The next fire time
 * is part of take's next_due and of the counts a waker reads, so a worker
 * is woken for it like for a delayed job. */

#define QUEUE_SCHED_AHEAD 64      /* fire times computed ahead */
#define QUEUE_SCHED_CRON_MAX 127

enum queue_catchup {
	QUEUE_CATCHUP_ONE,   /* after a downtime, one job for the missed times */
	QUEUE_CATCHUP_ALL,   /* one job each, the last catchup_max of them */
	QUEUE_CATCHUP_SKIP   /* none: the next time on schedule */
};

struct queue_schedule {
	char name[QUEUE_NAME_MAX + 1];     /* [A-Za-z0-9_.-]+ */
	char cron[QUEUE_SCHED_CRON_MAX + 1];
	char tz[CRON_TZ_NAME_MAX + 1];     /* "" = UTC */
	int overlap_allow;     /* 0 (skip): no job while the last one has not
				* ended; 1: a job at every fire time */
	enum queue_catchup catchup;
	int catchup_max;       /* QUEUE_CATCHUP_ALL: 1..QUEUE_SCHED_AHEAD */
	int paused;
	struct job_spec job;   /* the template (queue_schedule_from_json
				* fills it, and owns its memory); resolve it
				* (job_spec_resolve) before a put */
	/* read back (get, list), owned: */
	struct job_info tmpl;  /* the template as stored (id "") */
	int64_t created_us, next_ms, last_fire_ms, fired, skipped;
	char last_job[UUID_STR_LEN];
};

/* Frees what the struct owns and zeroes it. Accepts NULL. */
void queue_schedule_release(struct queue_schedule *s);

/* A schedule request ({name, cron, timezone?, job, overlap?, catch_up?,
 * catch_up_max?, paused?}: the API's body and the CLI's) into *out
 * (zeroed first; release it), its cron and zone checked. The job is a job
 * request without queue, delay_s, run_at or idempotency_key. The queue is
 * the caller's (the body's "queue" member is left to it). Returns 0, or
 * -1 with err, *code ("invalid_json", "unknown_field", "invalid_field",
 * "unknown_type", "invalid_payload") and nothing to release. */
int queue_schedule_from_json(const json_t *obj, struct queue_schedule *out,
			     const char **code, struct err *err);

/* The schedule as every interface shows it: {name, queue, cron, timezone,
 * job, overlap, catch_up, catch_up_max, paused, next_run_at, last_run_at,
 * last_job_id, fired, skipped, created_at}. Caller owns it. */
json_t *queue_schedule_to_json(const char *queue, const struct queue_schedule *s);

/* Creates or replaces schedule s->name on `queue` (what it did so far is
 * kept) with its fire times from now. *created (may be NULL): 1 when new.
 * s->next_ms is set to its first fire time (0 when paused). Returns 0, or
 * -1 with err (ERR_INVALID: the cron or zone; nothing changed). */
int queue_schedule_put(struct queue *q, const char *queue, struct queue_schedule *s,
		       int *created, struct err *err);

/* Reads schedule `name` into *out (release it). Returns 0, or -1 with
 * ERR_NOTFOUND. */
int queue_schedule_get(struct queue *q, const char *queue, const char *name,
		       struct queue_schedule *out, struct err *err);

/* Names of the schedules of `queue`, sorted (caller frees each and the
 * array). Returns how many, or -1. */
int queue_schedule_names(struct queue *q, const char *queue, char ***names,
			 struct err *err);

/* Deletes schedule `name` (the jobs it made stay). Returns 0, or -1 with
 * ERR_NOTFOUND. */
int queue_schedule_delete(struct queue *q, const char *queue, const char *name,
			  struct err *err);

/* Pauses (1) or resumes (0) schedule `name`; a resume takes up its fire
 * times from now (nothing missed meanwhile is made). *next_ms (may be
 * NULL): the next fire time after a resume. Returns 0, or -1 with
 * ERR_NOTFOUND. */
int queue_schedule_pause(struct queue *q, const char *queue, const char *name,
			 int paused, int64_t *next_ms, struct err *err);

/* Computes more fire times for the schedules of `queue` running low (the
 * worker calls it when a take says refill; any number of processes may
 * at once). Returns 0 or -1. */
int queue_schedule_refill(struct queue *q, const char *queue, struct err *err);

/* Reads the job `id` of `queue` into *out (the caller releases it with
 * job_info_release; job_info_to_json gives its document). Returns 0, or
 * -1 with ERR_NOTFOUND when there is no such job (*out untouched). */
int queue_job_get(struct queue *q, const char *queue, const char *id,
		  struct job_info *out, struct err *err);

/* The jobs `ids` (n of them, 1000 at most) of `queue` in one round trip:
 * found[i] 1 with out[i] filled (caller releases), 0 for an id that names
 * no job. Returns 0, or -1 with err (nothing to release). */
int queue_jobs_get(struct queue *q, const char *queue, const char *const *ids, size_t n,
		   struct job_info *out, int *found, struct err *err);

/* The dependencies of `j` (a job of `queue`: its depends_on ids, in
 * order) with their states and results: *out is job_deps_to_json of them
 * (caller owns; NULL for a job without any). A dependency whose record is
 * gone (its RESULT_TTL passed) shows status "unknown". One round trip per
 * dependency. Returns 0, or -1 with err (*out NULL). */
int queue_job_deps(struct queue *q, const char *queue, const struct job_info *j,
		   json_t **out, struct err *err);

/* Ids in a state, newest last for queued (run order), most recent first
 * for done/failed; at most `limit` from `offset`. Fills ids (caller frees
 * each and the array). Returns the count or -1. */
int queue_list(struct queue *q, const char *queue, enum job_status state,
	       size_t offset, size_t limit, char ***ids, struct err *err);

/* A page of the jobs of one state that match a filter (the CLI's lists;
 * any list that filters). The ids of the state's set are read in windows
 * in queue_list's order, each job is read back and kept when it is in
 * that state and matches every filter set; a job gone meanwhile is
 * skipped. One round trip per window and one per id looked at. */
struct queue_find {
	/* in */
	enum job_status state;   /* scheduled and retrying share a set: told
				  * apart by each job's status; cancelled has
				  * no set (finds nothing) */
	const char *type;        /* only this type; NULL = any */
	const char *id_part;     /* only ids containing this text; NULL = any */
	const json_t *labels;    /* only jobs with these labels
				  * (job_info_has_labels); NULL = any */
	size_t offset;           /* position in the state's set to start at */
	size_t scan_max;         /* ids looked at, at most; 0 = QUEUE_FIND_SCAN */
	size_t max;              /* jobs wanted: entries of jobs[] */
	struct job_info *jobs;   /* the caller's array */
	/* out */
	size_t njobs;            /* jobs[] filled (the caller releases each) */
	size_t next_offset;      /* where the scan stopped: resume there */
	int more;                /* 1 when the set may hold ids past it */
};

#define QUEUE_FIND_SCAN 10000

/* Fills f->jobs with up to f->max matching jobs of `queue`. Returns 0, or
 * -1 with err (nothing kept: njobs 0). Blocks for the round trips. */
int queue_find(struct queue *q, const char *queue, struct queue_find *f,
	       struct err *err);

/* Cancels a job. Returns 0 when it was queued/scheduled/retrying/waiting
 * and is now cancelled (its dependents are failed, cancelled or released
 * as their on_dependency_failure says); QUEUE_CANCELLED_DELIVERY (2) the
 * same, and the job had a callback_url, so a webhook.deliver job was
 * enqueued in the same script, or dependents were queued (the caller
 * should wake a worker for them, as for an enqueue); 1 when it
 * is active and a cancel was requested (the worker stops it at its next
 * lease renewal and settles it, webhook included); -1 with ERR_NOTFOUND
 * or ERR_CONFLICT (already finished). */
#define QUEUE_CANCELLED_DELIVERY 2
int queue_cancel(struct queue *q, const char *queue, const char *id,
		 struct err *err);

/* Moves a dead job back to queued with attempts reset; a job with a
 * unique key takes it again. Returns 0, or -1 with ERR_NOTFOUND /
 * ERR_CONFLICT (not dead, or its unique key is held by another live
 * job). */
int queue_retry_dead(struct queue *q, const char *queue, const char *id,
		     struct err *err);

/* Deletes every dead job of `queue`. Returns how many, or -1. */
int64_t queue_purge_dead(struct queue *q, const char *queue, struct err *err);

/* Names of queues that have keys in this Redis (SCAN), for stats: those
 * that ever had a job (their sequence) or have settings, a pause or
 * schedules (their config hash). Fills names (caller frees each and the
 * array). Returns the count or -1. */
int queue_discover(struct queue *q, char ***names, struct err *err);

/* RESULT_TTL, the setting every binary that finishes or cancels jobs
 * (worker, API, CLI) reads into queue_limits.result_ttl_s: seconds. */
#define QUEUE_RESULT_TTL_MIN 1
#define QUEUE_RESULT_TTL_MAX 31536000
#define QUEUE_RESULT_TTL_DEFAULT 86400

/* Retention of finished jobs, set before use (process-wide defaults). */
struct queue_limits {
	int64_t result_ttl_s;   /* done job hashes expire after this; 86400 */
	int64_t done_max;       /* done set capped at this many; 10000 */
	int64_t dead_max;       /* dead set capped (oldest deleted); 10000 */
};
extern struct queue_limits queue_limits;


/* ---- metrics that outlive the worker ---------------------------------------
 * The scripts count, per queue and job type, the runs that ended by outcome
 * and histograms of wait times (due or enqueued -> started, counted when a
 * job is leased) and run times (passed in each settle), in the hash
 * `wakeq:{Q}:metrics`: a few HINCRBY a script run, whatever the batch size
 * (docs/QUEUE.md "Metrics"). Workers add the wakes they got, by trigger.
 * The API exports them on /metrics, so they survive the worker's exit. */

/* Upper bounds of the histogram buckets, ms (Prometheus `le`), ascending.
 * Layout rule: the same list as HIST_MS in lua/_lib.lua. */
#define QUEUE_HIST_BUCKETS 17
extern const int64_t queue_hist_bounds_ms[QUEUE_HIST_BUCKETS];

struct queue_hist {
	int64_t count[QUEUE_HIST_BUCKETS + 1]; /* per bucket, not cumulative;
						* the last: above every bound */
	int64_t sum_us;
};

/* A counter of the hash: `n` runs of `type` that ended with `name` (done,
 * retried, failed, cancelled, requeued, expired: the scripts' words, kept
 * as they are), or `n` wakes with trigger `name` (type ""). */
struct queue_counter {
	char *type;
	char *name;
	int64_t n;
};

struct queue_type_hist {
	char *type;
	struct queue_hist wait, run;
};

struct queue_stats {
	int64_t now_ms;            /* the Redis clock when read */
	int64_t due;               /* scheduled or retrying jobs due now, not
				    * promoted to queued yet */
	int64_t oldest_due_ms;     /* since when the longest-waiting due job
				    * has been due (Redis clock ms), 0 = none */
	struct queue_counter *outcomes; /* by type, then outcome */
	size_t noutcomes;
	struct queue_counter *wakes;    /* by trigger name */
	size_t nwakes;
	struct queue_type_hist *hists;  /* by type */
	size_t nhists;
};

/* Reads the metrics of `queue` into *out (one round trip; the caller
 * releases it). Returns 0, or -1 with err (*out then empty). */
int queue_stats_read(struct queue *q, const char *queue, struct queue_stats *out,
		     struct err *err);
void queue_stats_release(struct queue_stats *s);

/* Who asked a worker to drain: wakeq's own callers name themselves in the
 * header QUEUE_TRIGGER_HEADER of their POST /wake ("api": the API saw no
 * live worker; "fanout": the API's backlog scale-out; "cli": `wakeq wake`
 * and `wakeq enqueue`); a wake that names none, or a `wakeq drain` run,
 * counts as "cron" (Cloud Scheduler, a timer, crontab: the backup). */
#define QUEUE_TRIGGER_HEADER "X-Wakeq-Trigger"
enum queue_trigger {
	QUEUE_TRIGGER_CRON, QUEUE_TRIGGER_API, QUEUE_TRIGGER_FANOUT,
	QUEUE_TRIGGER_CLI, QUEUE_NTRIGGERS
};

/* "cron", "api", "fanout", "cli". */
const char *queue_trigger_name(enum queue_trigger t);
/* The trigger named `s`; QUEUE_TRIGGER_CRON for NULL or any other text. */
enum queue_trigger queue_trigger_parse(const char *s);

/* Adds n wakes with trigger t to the metrics of `queue` (one HINCRBY).
 * Returns 0 or -1. */
int queue_count_wake(struct queue *q, const char *queue, enum queue_trigger t,
		     int64_t n, struct err *err);

/* ---- pub/sub ------------------------------------------------------------ */

/* The queue scripts PUBLISH on `wakeq:{QUEUE}:events`, once a script run,
 * a message of one line per state change or progress report:
 * "ID\tSTATUS\tPROGRESS\tSTAGE\tTIME" (TIME: µs on the Redis clock).
 * A `struct queue_sub` is a connection of its own in subscriber mode (it
 * can do nothing else), used by one thread; it hands out the lines one at
 * a time, so a subscriber keeps the jobs it follows and skips the rest. */
struct queue_sub;

struct queue_event {
	char queue[QUEUE_NAME_MAX + 1];
	char id[UUID_STR_LEN];
	char status[16];          /* "active", "done", ... */
	double progress;          /* 0..100; -1 when the message had none */
	char stage[128];          /* "" when none */
	int64_t time_us;          /* when it happened (Redis clock); 0 when
				   * the message did not say */
};

/* Connects a subscriber with the handshake of queue_connect (TLS, AUTH).
 * Returns it (caller frees), or NULL with err as queue_connect says.
 * Blocks up to the connect timeout plus a command timeout per command. */
struct queue_sub *queue_sub_connect(const struct queue_opts *opts,
				    struct err *err);
void queue_sub_free(struct queue_sub *s);

/* Subscribes to the events of `queue`. Only sends the command: the
 * confirmation is read (and skipped) by queue_sub_read. Returns 0 or -1. */
int queue_sub_subscribe(struct queue_sub *s, const char *queue,
			struct err *err);

/* The socket to poll for readability. */
int queue_sub_fd(const struct queue_sub *s);

/* Reads one event without blocking (call when the fd is readable, then
 * again until it returns 0). Returns 1 with *ev filled, 0 when nothing
 * complete is buffered, -1 with err when the connection is gone (free it
 * and connect again; events published meanwhile are lost). Malformed
 * lines are skipped. */
int queue_sub_read(struct queue_sub *s, struct queue_event *ev,
		   struct err *err);

#endif
