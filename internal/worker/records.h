/* records.h - the worker's writes to the Postgres job rows (internal to
 * internal/worker). Non-blocking for callers: events are queued and
 * written by a thread of their own, retried while Postgres is down. */
#ifndef WAKEQ_WORKER_RECORDS_H
#define WAKEQ_WORKER_RECORDS_H

#include "base/err.h"
#include "queue/queue.h"
#include "store/store.h"

enum records_kind {
	RECORDS_STARTED,  /* attempt */
	RECORDS_PROGRESS, /* progress, stage */
	RECORDS_RETRYING, /* error */
	RECORDS_QUEUED,   /* re-queued (shutdown) */
	RECORDS_FINAL     /* final_status, result, error, attempt */
};

struct records;

/* NULL (and err untouched) when url is empty; NULL with err on a bad URL.
 * Does not connect: Postgres and Redis may be down at start. `qopts` and
 * `queues` (n of them) are borrowed for the life of the records: final
 * states are copied from each queue's finals log (queue.h) and deleted
 * from it once written, so a crash of this process loses none. */
struct records *records_new(const char *url, const struct queue_opts *qopts,
			    char *const *queues, size_t n, struct err *err);

/* Queues an event; copies the strings. `status` is the row's new status
 * (for RECORDS_FINAL: done, failed or cancelled; the other kinds imply
 * theirs). Accepts r == NULL. */
void records_add(struct records *r, enum records_kind kind, const char *id,
		 int attempt, double progress, const char *stage,
		 const char *result, const char *error, enum job_status status);

/* Asks the writer to copy the finals logs into Postgres (it does so
 * after every final state anyway): for entries another process left,
 * which the drain's take reports (queue_take's finals). The writer only
 * connects to Redis when asked, so a wake that finds nothing costs it no
 * command. Accepts r == NULL. */
void records_pump(struct records *r);

/* Waits up to max_s for the queue (and the finals log) to drain. */
void records_flush(struct records *r, double max_s);

/* Stops the writer (drops what is left) and frees. Accepts NULL. */
void records_free(struct records *r);

#endif
