#!/usr/bin/python3
"""rq_bench.py REDIS_URL FUNC N WORKER: N jobs of rq_jobs.FUNC enqueued,
then drained by one RQ worker in burst mode (WORKER "fork": rq's default
Worker, a forked work horse per job, as `rq worker` runs; "simple":
SimpleWorker, jobs in the worker's own process). Prints
"done=D span_s=S tput=J" from the jobs' own started_at / ended_at, as
wakeq's figures come from its jobs' started / finished."""
import sys

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job, JobStatus

import rq_jobs


def main():
    url, func, n, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    r = Redis.from_url(url)
    q = Queue("bench", connection=r)
    fn = getattr(rq_jobs, func)
    ids = []
    for start in range(0, n, 1000):
        datas = [Queue.prepare_data(fn, args=(i,), result_ttl=3600)
                 for i in range(start, min(n, start + 1000))]
        ids += [j.id for j in q.enqueue_many(datas)]
    cls = Worker if kind == "fork" else SimpleWorker
    w = cls([q], connection=r)
    w.work(burst=True, logging_level="WARNING")
    jobs = Job.fetch_many(ids, connection=r)
    done = [j for j in jobs if j and j.get_status() == JobStatus.FINISHED]
    if len(done) != n:
        print("rq_bench: %d of %d jobs finished" % (len(done), n), file=sys.stderr)
        return 1
    first = min(j.started_at for j in done)
    last = max(j.ended_at for j in done)
    span = (last - first).total_seconds()
    print("done=%d span_s=%.6f tput=%.1f" % (n, span, n / span))
    return 0


if __name__ == "__main__":
    sys.exit(main())
