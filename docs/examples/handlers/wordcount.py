#!/usr/bin/env python3
"""A wakeq exec handler in Python (one-shot: one process per job).

Protocol (docs/HANDLERS.md):
  stdin   the job's payload, one JSON object (then end of file)
  stdout  the result: one JSON value (nothing at all means null)
  fd 3    progress, one JSON object per line: {"progress": 40, "stage": "x"}
  stderr  logs; the last lines end up in the job's error when it fails
  exit    0 = done; 75 = try again later (listed in retry_exit_codes);
          any other status = failed for good (dead letter)

Run it by hand:  echo '{"text":"a b c"}' | ./wordcount.py 3>/dev/null
"""
import json
import os
import sys


def progress(percent, stage=None):
    """Reports progress on fd 3; does nothing when run without it."""
    line = json.dumps({"progress": percent, "stage": stage}) + "\n"
    try:
        os.write(3, line.encode())
    except OSError:
        pass


def main():
    payload = json.load(sys.stdin)
    text = payload.get("text", "")
    if payload.get("fail") == "transient":
        print("upstream is busy, try again later", file=sys.stderr)
        return 75  # EX_TEMPFAIL: retried with backoff
    if payload.get("fail") == "hard":
        print("this text cannot be counted", file=sys.stderr)
        return 1  # failed: no retry
    progress(10, "split")
    words = text.split()
    progress(90, "count")
    json.dump({"words": len(words), "chars": len(text),
               "attempt": int(os.environ.get("WAKEQ_ATTEMPT", "1"))}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
