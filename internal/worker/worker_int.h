/* worker_int.h - the worker's shared state; internal to internal/worker.
 *
 * One mutex (mu) guards everything below it in struct worker. The drain
 * thread is the only user of `q`/`bq`; the heartbeat thread the only user
 * of `hq`; HTTP threads share `sq` under sq_mu. docs/WORKER.md describes
 * the threads, the locks, the task lists and when a drain ends.
 */
#ifndef WAKEQ_WORKER_INT_H
#define WAKEQ_WORKER_INT_H

#include "worker/worker.h"

#include "log/log.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "worker/records.h"
#include "wake/wake.h"

#include <pthread.h>
#include <stdatomic.h>

#define WORKER_MAX_QUEUES 16

enum stop_reason {
	STOP_NONE,
	STOP_CANCEL,   /* a user cancel: settle as cancelled */
	STOP_LOST,     /* the lease was lost: drop, do not settle */
	STOP_TIMEOUT,  /* the job ran past its timeout: retryable failure */
	STOP_SHUTDOWN  /* SIGTERM: re-queue without counting the attempt */
};

/* A leased job inside this process: waiting in `ready`, running in a
 * slot, or finished and waiting in `done` to be settled. */
struct task {
	struct task *next;
	struct queue_job job;
	int qi;                  /* index into w->queue_names */
	atomic_int cancel;       /* read by the handler (job_cancelled) */
	int reason;              /* enum stop_reason, set with cancel */
	int64_t started_mono;    /* 0 until a slot starts it */
	int reported;            /* a renewal told Redis it runs (`ran`) */
	int64_t run_us;          /* how long the handler ran (set by its slot) */
	int64_t deadline_mono;   /* timeout; 0 = none */
	/* outcome, filled by the slot */
	enum queue_outcome outcome;
	char *result;            /* DONE: JSON text */
	char *error;
	int64_t delay_ms;
	int settled_early;       /* requeued at shutdown while still running */
	/* progress to publish, coalesced (guarded by w->mu) */
	int progress_dirty;
	double progress;
	char stage[32];
	int64_t progress_sent_mono;
	double rec_progress;     /* last progress written to Postgres */
	char rec_stage[32];
};

struct drain_summary {
	int64_t jobs, done, failed, retried, cancelled, requeued, stale;
	double seconds;
	const char *reason;      /* "idle", "wake_max", "shutdown" */
};

struct worker {
	const struct worker_config *cfg;
	struct queue_opts qopts; /* REDIS_URL, parsed once at start */
	char id[128];
	char *queue_names[WORKER_MAX_QUEUES];
	size_t nqueues;
	struct httpd *http;
	struct records *rec;     /* Postgres rows; NULL without DATABASE_URL */
	struct wake_tasks *tasks;/* WAKE_VIA=cloudtasks: the next wakes; NULL
				  * otherwise */
	int64_t started_mono;
	int64_t hb_interval_ms;  /* lease renewal and registration refresh */
	int64_t worker_ttl_ms;   /* registration lifetime without a refresh */

	pthread_mutex_t sq_mu;   /* guards sq (/readyz, /status) */
	struct queue *sq;

	pthread_mutex_t mu;
	pthread_cond_t cv;       /* drain state changes (HTTP waiters) */
	pthread_cond_t slot_cv;  /* ready jobs for the slots */
	int wake_fd;             /* eventfd: wakes the drain thread */
	/* drain */
	int draining;
	int ending;              /* the drain has retired and is finishing:
				  * a new /wake waits for it, then starts anew */
	uint64_t wake_seq;       /* /wake requests seen, for the retire check */
	char drain_trace[33];    /* trace id of the /wake that started the drain */
	char wake_url_seen[512]; /* the URL the last /wake came to ("" none) */
	int wake_retried;        /* a /wake that Cloud Tasks retried came
				  * since the drain last looked */
	uint64_t drain_gen;      /* generation of the current/last drain */
	uint64_t drains_done;    /* generations finished */
	struct drain_summary summary; /* of the last finished drain */
	struct drain_summary cur;     /* of the running drain */
	pthread_t drain_thread;
	int drain_joinable;
	struct queue *dq;        /* the last drain's script connection, kept
				  * for the next (NULL: none) */
	int open_requests;       /* held /wake requests */
	int64_t last_activity_mono;
	int64_t idle_check_mono; /* last worker_idle_exit_due call */
	int stopping;            /* SIGTERM received */
	int abandon;             /* past the grace: stop waiting for Redis */
	/* tasks */
	struct task *ready, *ready_tail;
	size_t nready;
	struct task **running;   /* one per slot, NULL when free */
	size_t nrunning;
	struct task *done, *done_tail;
	size_t ndone;
	int notified;            /* wake_fd has a pending wake-up */
	int quit_slots;
	size_t nearly;           /* running tasks already re-queued */
	int prefetch;            /* extra jobs to hold beyond free slots */
	double ewma_job_s;       /* recent job duration */
	pthread_t *slot_threads;
	size_t nslots;           /* slot threads started (joined on free) */
	pthread_t hb_thread;
	int hb_started;
	int hb_quit;
	pthread_cond_t hb_cv;
	pthread_t parts_thread;  /* removes stale partial outputs at start */
	int parts_started;
	atomic_int parts_stop;

	/* Redis-unreachable warnings of the drain threads (one at a time) */
	struct log_limit drain_redis_warn;
	/* wakes by trigger not yet added to the queues' metrics in Redis
	 * (the drain thread sends them: queue_count_wake) */
	atomic_uint_least64_t wakes_unsent[QUEUE_NTRIGGERS];

	/* metrics (atomics: read by /metrics without the lock) */
	atomic_uint_least64_t m_done, m_failed, m_retried, m_cancelled,
		m_requeued, m_stale, m_wakes, m_drains, m_lost, m_timeouts;
	struct metrics_hist m_job_seconds;
	struct metrics_hist m_drain_seconds;
};

/* tasks.c: the task lists (see the top of tasks.c). Every function
 * that takes a worker is called with w->mu held and does not block. */

/* Wakes the drain thread (at most one pending wake-up on wake_fd). */
void worker_notify(struct worker *w);

/* A task for a taken job; takes ownership of job's contents. */
struct task *task_new(const struct queue_job *job, int qi);
/* Frees a task and its job. Accepts NULL. */
void task_free(struct task *t);
/* Frees every task of a list linked through next. */
void task_list_free(struct task *list);
size_t task_list_len(const struct task *list);
/* Appends the list `more` to the end of *list. */
void task_list_append(struct task **list, struct task *more);

/* Appends t to w->ready (the caller signals slot_cv). */
void tasks_push_ready(struct worker *w, struct task *t);
/* Unlinks and returns the oldest ready task, or NULL. */
struct task *tasks_pop_ready(struct worker *w);
/* At shutdown: moves every ready task onto *list as QUEUE_REQUEUE
 * (not started, so re-queued at once without counting the attempt). */
void tasks_requeue_ready(struct worker *w, struct task **list);
/* Appends a finished task to w->done for the drain to settle. */
void tasks_push_done(struct worker *w, struct task *t);
/* Detaches and returns all of w->done (oldest first); the caller owns it. */
struct task *tasks_take_done(struct worker *w);

/* drain.c */

/* The drain thread (w->draining set by whoever starts it). */
void *drain_main(void *arg);

/* A drain's end condition, as a pure function of what the drain thread
 * saw at one moment; unit-tested in tests/unit/worker. */
#define DRAIN_WAKE_MAX_OVERRUN_US 60000000 /* past WAKE_MAX, jobs held */

struct drain_facts {
	int stopping;            /* SIGTERM received */
	int abandon;             /* past SHUTDOWN_GRACE: give up at once */
	int64_t now_us;          /* monotonic */
	int64_t wake_max_at;     /* monotonic: the drain's start + WAKE_MAX */
	int64_t idle_since;      /* monotonic: last sign of work */
	int64_t idle_us;         /* IDLE_TIMEOUT */
	int empty;               /* the drain's first take found nothing due,
				  * and it has taken nothing since */
	int64_t empty_linger_us; /* EMPTY_WAKE_LINGER: the idle window of an
				  * empty drain, instead of idle_us */
	int64_t due_in_us;       /* until the next delayed job; INT64_MAX none */
	size_t busy;             /* tasks ready or running */
	size_t nearly;           /* of the running, re-queued early at shutdown */
	size_t unsettled;        /* finished tasks not settled in Redis yet */
	int paused;              /* the last take of every queue said paused */
};

enum drain_verdict {
	DRAIN_CONTINUE,
	DRAIN_HOLD,              /* idle, but a job is due inside IDLE_TIMEOUT:
				  * restart the idle clock and wait for it */
	DRAIN_END_IDLE,          /* idle for IDLE_TIMEOUT (EMPTY_WAKE_LINGER
				  * when empty): retire, then end (unless a
				  * /wake came meanwhile) */
	DRAIN_END_WAKE_MAX,      /* past WAKE_MAX with nothing held */
	DRAIN_END_SHUTDOWN       /* SIGTERM with nothing held, or past grace */
};

/* Whether the drain should end now, and why. Pure: reads only f. */
enum drain_verdict drain_decide(const struct drain_facts *f);

/* "idle", "wake_max", "shutdown" (the summary's reason); "running" for
 * the others. A static string. */
const char *drain_verdict_name(enum drain_verdict v);

/* slots.c */
int slots_start(struct worker *w);
void slots_stop(struct worker *w);

/* heartbeat.c */
void *heartbeat_main(void *arg);

/* http.c */
struct httpd_request;
void worker_http(struct httpd_request *req, void *ctx);

#endif
