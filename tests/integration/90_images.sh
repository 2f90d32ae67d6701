#!/usr/bin/env bash
# The container images (Debian trixie), built offline with podman and run
# against a real Redis, plain and TLS-only with a password: API -> wake ->
# worker -> done, SIGTERM mid-job, idle exit, the event stream over TLS,
# wrong CAs and host names refused (container/test-images.sh). Minutes of work, so it runs when
# WAKEQ_TEST_IMAGES=1 (CI sets it) or through `make test-images`.
set -u
cd "$(dirname "$0")/../.."
if [ "${WAKEQ_TEST_IMAGES:-0}" != 1 ]; then
	echo "# images not tested here: set WAKEQ_TEST_IMAGES=1 or run make test-images"
	exit 0
fi
exec container/test-images.sh
