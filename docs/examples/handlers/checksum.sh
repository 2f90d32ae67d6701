#!/bin/sh
# A wakeq exec handler in POSIX sh (one-shot): hashes the payload as given.
#
# stdin: the payload JSON; stdout: the result JSON; fd 3: progress lines;
# stderr: logs; exit 0 = done, 75 = try again later, other = failed.
#
# Run it by hand:  echo '{"a":1}' | ./checksum.sh 3>/dev/null
set -eu
payload=$(cat)
echo '{"progress":50,"stage":"hash"}' >&3
sum=$(printf '%s' "$payload" | sha256sum | cut -d' ' -f1)
printf '{"bytes":%d,"sha256":"%s","job":"%s"}\n' "${#payload}" "$sum" "${WAKEQ_JOB_ID:-}"
