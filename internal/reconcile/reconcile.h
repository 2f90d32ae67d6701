/* reconcile.h - keeping Postgres and Redis in step.
 *
 * Redis is the truth for a live job, Postgres the durable record. A pass
 * pages through the rows that are not final in Postgres and looks each one
 * up in Redis; the first row of a queue whose job Redis does not have, or
 * has in a final state, makes it copy that queue's finals log into
 * Postgres (so a job whose completion Redis recorded is never mistaken for
 * a lost one, even after its hash was evicted, and no completion lingers
 * in the log: a burial by lease expiry is logged by a take that may have
 * no Postgres to tell). Then: a job missing from Redis is enqueued again under its own id
 * (a flush or a failover without persistence loses nothing); a job that
 * Redis holds as done, failed or cancelled has its final state copied to
 * the row (it finished while Postgres was down). Used by `wakeq
 * reconcile`, POST /v1/reconcile and the API's timer.
 */
#ifndef WAKEQ_RECONCILE_H
#define WAKEQ_RECONCILE_H

#include "base/err.h"

#include <stdint.h>

struct queue;
struct store;

struct reconcile_stats {
	int64_t scanned;      /* unfinished Postgres rows looked at */
	int64_t requeued;     /* missing from Redis, enqueued again (same id) */
	int64_t finals;       /* final states copied from Redis to Postgres */
	int64_t errors;       /* rows that could not be handled this pass */
};

/* Copies the finals log of `queue` (queue.h "the finals log": completions
 * Redis recorded but Postgres may not have yet) into Postgres, a batch at
 * a time (256 entries, oldest first), deleting each batch from the log
 * once written, until the log is empty or, with max_batches > 0, after
 * that many batches. Adds the number of rows changed to *applied (may be
 * NULL).
 * Returns 0, or -1 with err when Redis or Postgres failed (what was
 * written stays written; the rest waits in the log). Blocks for the round
 * trips. */
int reconcile_finals(struct queue *q, struct store *s, const char *queue,
		     int max_batches, int64_t *applied, struct err *err);

/* One pass over every row still queued, scheduled, retrying or active in
 * Postgres and at least min_age_s old (0 = 10; younger rows may still
 * have their enqueue in flight). Blocks for the round trips (a page of
 * 500 rows at a time). Returns 0 with *st filled, or -1 with err when
 * Redis or Postgres is unavailable (the stats so far are kept). */
int reconcile_run(struct queue *q, struct store *s, double min_age_s,
		  struct reconcile_stats *st, struct err *err);

#endif
