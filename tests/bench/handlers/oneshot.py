#!/usr/bin/python3
"""The benchmark's Python one-shot handler: the payload in, {"n": N} out."""
import json
import sys

json.dump({"n": json.load(sys.stdin).get("n")}, sys.stdout)
