"""The benchmark's work as RQ job functions: the same programs wakeq runs
(/bin/true and oneshot.py, payload on stdin, stdout read), and the same
trivial function its persistent handler runs."""
import json
import os
import subprocess

PY = "/usr/bin/python3"
ONESHOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oneshot.py")


def run_true(n):
    subprocess.run(["/bin/true"], input=json.dumps({"n": n}).encode() + b"\n",
                   stdout=subprocess.PIPE, check=True)


def run_oneshot(n):
    r = subprocess.run([PY, ONESHOT], input=json.dumps({"n": n}).encode() + b"\n",
                       stdout=subprocess.PIPE, check=True)
    return json.loads(r.stdout)


def trivial(n):
    return {"n": n}


def noop(n):
    """wakeq's noop job (tests/bench/core.sh): nothing done, nothing returned."""
