#!/usr/bin/python3
"""The benchmark's persistent Python handler (newline-delimited JSON):
the same trivial work as oneshot.py, one request per line."""
import json
import sys

out = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    out.write(json.dumps({"result": {"n": req["payload"].get("n")}}) + "\n")
    out.flush()
