#!/usr/bin/env python3
"""A persistent wakeq handler in Python: one process serves many jobs.

The worker starts it once per slot ("persistent": true) and keeps it for
as long as jobs come; it pays its start-up (imports, a model, a pool) once
per drain, not once per job. It speaks newline-delimited JSON:

  stdin   one request per line:
          {"id", "type", "queue", "attempt", "max_attempts", "deadline",
           "trace", "payload"}
  stdout  any number of progress lines, then exactly one answer:
          {"progress": 50, "stage": "embed"}
          {"result": ...}
          {"error": "why", "retryable": true, "retry_after_s": 5}
  stderr  logs (the worker keeps the tail in a failed job's error)

Print nothing else on stdout (use stderr for logs), flush after each
line, and exit when stdin ends. A cancel or a timeout stops the process
(SIGTERM, then SIGKILL); the next job starts a fresh one.

Run it by hand:  echo '{"id":"1","payload":{"text":"hi"}}' | ./embed.py
"""
import json
import os
import sys
import time


class Transient(Exception):
    """An error worth another attempt."""


def load_model():
    """Stands for the slow part paid once per process (a model, a pool)."""
    time.sleep(0.2)
    return {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def handle(model, req):
    payload = req.get("payload") or {}
    if payload.get("fail") == "transient":
        raise Transient("the model server is busy")
    text = str(payload.get("text", "")).lower()
    send({"progress": 50, "stage": "embed"})
    vector = [model.get(c, -1) for c in text[:16]]
    return {"vector": vector, "pid": os.getpid(), "attempt": req.get("attempt")}


def main():
    model = load_model()
    print("model loaded", file=sys.stderr, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            send({"result": handle(model, req)})
        except Transient as e:
            send({"error": str(e), "retryable": True, "retry_after_s": 1})
        except Exception as e:  # a bug: fail the job, keep serving
            send({"error": "%s: %s" % (type(e).__name__, e), "retryable": False})
    return 0


if __name__ == "__main__":
    sys.exit(main())
