#!/usr/bin/python3
"""rq_bench.py REDIS_URL FUNC N WORKER: N jobs of rq_jobs.FUNC enqueued,
then drained by one RQ worker in burst mode (WORKER "fork": rq's default
Worker, a forked work horse per job, as `rq worker` runs; "simple":
SimpleWorker, jobs in the worker's own process). Prints
"done=D span_s=S tput=J" from the jobs' own started_at / ended_at, as
wakeq's figures come from its jobs' started / finished.

The phases alone (tests/bench/core.sh, so that the caller can count
Redis CPU and commands around one of them):
  rq_bench.py REDIS_URL enqueue N BATCH   N rq_jobs.noop jobs, BATCH 1:
      one Queue.enqueue at a time, else Queue.enqueue_many of BATCH;
      prints "n=N secs=S rate=J" (the enqueueing alone)
  rq_bench.py REDIS_URL drain WORKER      one burst worker drains the queue
  rq_bench.py REDIS_URL span N            "done=… span_s=… tput=…" of the
      N finished jobs (reads every job: run it after the counting)
  rq_bench.py REDIS_URL work              an awake worker on the queue
      until SIGTERM (an idle worker's cost)"""
import sys
import time

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.registry import FinishedJobRegistry

import rq_jobs


def enqueue(q, fn, n, batch):
    """n jobs of fn, batch a call (1: Queue.enqueue); seconds taken."""
    t0 = time.monotonic()
    for start in range(0, n, batch):
        if batch == 1:
            q.enqueue(fn, start, result_ttl=3600)
            continue
        datas = [Queue.prepare_data(fn, args=(i,), result_ttl=3600)
                 for i in range(start, min(n, start + batch))]
        q.enqueue_many(datas)
    return time.monotonic() - t0


def drain(r, q, kind):
    cls = Worker if kind == "fork" else SimpleWorker
    cls([q], connection=r).work(burst=True, logging_level="WARNING")


def span(r, q, n):
    ids = FinishedJobRegistry(queue=q).get_job_ids()
    jobs = Job.fetch_many(ids, connection=r)
    done = [j for j in jobs if j and j.get_status() == JobStatus.FINISHED]
    if len(done) != n:
        print("rq_bench: %d of %d jobs finished" % (len(done), n), file=sys.stderr)
        return 1
    first = min(j.started_at for j in done)
    last = max(j.ended_at for j in done)
    secs = (last - first).total_seconds()
    print("done=%d span_s=%.6f tput=%.1f" % (n, secs, n / secs))
    return 0


def main():
    url, what = sys.argv[1], sys.argv[2]
    r = Redis.from_url(url)
    q = Queue("bench", connection=r)
    if what == "enqueue":
        n, batch = int(sys.argv[3]), int(sys.argv[4])
        secs = enqueue(q, rq_jobs.noop, n, batch)
        print("n=%d secs=%.6f rate=%.1f" % (n, secs, n / secs))
        return 0
    if what == "drain":
        drain(r, q, sys.argv[3])
        return 0
    if what == "span":
        return span(r, q, int(sys.argv[3]))
    if what == "work":
        Worker([q], connection=r).work(logging_level="WARNING")
        return 0
    n, kind = int(sys.argv[3]), sys.argv[4]
    enqueue(q, getattr(rq_jobs, what), n, 1000)
    drain(r, q, kind)
    return span(r, q, n)


if __name__ == "__main__":
    sys.exit(main())
