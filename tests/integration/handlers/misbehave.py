#!/usr/bin/env python3
"""A handler that misbehaves on request, for tests/integration/20_handlers.sh.

payload {"mode": ...}:
  sleep        report "pid=N" as the stage, fork a grandchild, sleep
  ignore_term  the same, ignoring SIGTERM
  grandchild   fork a child that outlives this process, then succeed
  badjson      write something that is not JSON on stdout
  big          write a result far larger than result_max
  progress     report progress three times, then succeed
"""
import json
import os
import signal
import sys
import time


def progress(percent, stage):
    os.write(3, (json.dumps({"progress": percent, "stage": stage}) + "\n").encode())


def main():
    p = json.load(sys.stdin)
    mode = p.get("mode")
    if mode in ("sleep", "ignore_term"):
        if mode == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:  # a grandchild in the same group
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(120)
            os._exit(0)
        progress(1, "pid=%d" % os.getpid())
        end = time.time() + float(p.get("seconds", 60))
        while time.time() < end:
            time.sleep(0.05)
        json.dump({"slept": True}, sys.stdout)
    elif mode == "grandchild":
        pid = os.fork()
        if pid == 0:
            time.sleep(120)  # holds stdout open, outlives its parent
            os._exit(0)
        json.dump({"grandchild": pid}, sys.stdout)
        sys.stdout.flush()
    elif mode == "badjson":
        sys.stdout.write("{this is not json")
    elif mode == "big":
        json.dump({"blob": "x" * 2000000}, sys.stdout)
    elif mode == "progress":
        for pct, stage in ((25, "one"), (50, "two"), (75, "three")):
            progress(pct, stage)
            time.sleep(0.4)
        json.dump({"steps": 3}, sys.stdout)
    else:
        print("unknown mode %r" % mode, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
