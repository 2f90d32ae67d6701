#!/usr/bin/env bash
# scheduler.sh - the backup trigger: a Cloud Scheduler job that POSTs the
# worker's /wake with an OIDC token every few minutes.
#
#   cloudrun/scheduler.sh [--dry-run] [--project ID] [--region R]
#                         [--schedule CRON] [--attempt-deadline SECONDS]
#
# The API wakes the worker itself when it enqueues a job and sees no live
# worker; the cron tick catches what that cannot: delayed jobs coming due,
# retries after backoff, leases of a killed worker, a wake lost in transit.
# Each tick costs one short request (and a few Redis commands) when there
# is nothing to do: the worker finds no due job, holds the request for
# IDLE_TIMEOUT, answers and goes away.
#
# Creates the job, or updates it when it exists (every gcloud command is
# printed as "+ ..."; --dry-run only prints). The token is minted for the
# wakeq-scheduler service account, which deploy.sh made a run.invoker of
# the worker; the audience is the worker's URL.
#
# Environment (defaults): PROJECT_ID, REGION (us-central1), JOB_NAME
# (wakeq-wake), SCHEDULE ("*/5 * * * *"), TIME_ZONE (Etc/UTC),
# ATTEMPT_DEADLINE (1800, seconds: Cloud Scheduler's longest for HTTP
# targets; keep the worker's WAKE_MAX below it, 1740 in
# worker.service.yaml, so a drain ends before the scheduler gives up),
# WORKER_URL (read from the deployed service when empty).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

JOB_NAME=${JOB_NAME:-wakeq-wake}
SCHEDULE=${SCHEDULE:-*/5 * * * *}
TIME_ZONE=${TIME_ZONE:-Etc/UTC}
ATTEMPT_DEADLINE=${ATTEMPT_DEADLINE:-1800}
WORKER_URL=${WORKER_URL:-}
while [ $# -gt 0 ]; do
	if common_flag "$@"; then
		shift "$SHIFT"
		continue
	fi
	case "$1" in
	--schedule) SCHEDULE=${2:?--schedule needs a cron expression}; shift ;;
	--schedule=*) SCHEDULE=${1#*=} ;;
	--attempt-deadline) ATTEMPT_DEADLINE=${2:?--attempt-deadline needs seconds}; shift ;;
	--attempt-deadline=*) ATTEMPT_DEADLINE=${1#*=} ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

need_project
ATTEMPT_DEADLINE=${ATTEMPT_DEADLINE%s}
if ! [[ $ATTEMPT_DEADLINE =~ ^[0-9]+$ ]] || [ "$ATTEMPT_DEADLINE" -lt 15 ] ||
	[ "$ATTEMPT_DEADLINE" -gt 1800 ]; then
	die "bad ATTEMPT_DEADLINE '$ATTEMPT_DEADLINE': expected seconds from 15 to 1800"
fi
read -r -a fields <<<"$SCHEDULE"
[ "${#fields[@]}" -eq 5 ] || die "bad SCHEDULE '$SCHEDULE': expected 5 cron fields"
if [ -z "$WORKER_URL" ]; then
	WORKER_URL=$(service_url "$WORKER_SERVICE")
fi
[[ $WORKER_URL =~ ^https://[^/]+$ ]] || die "bad WORKER_URL '$WORKER_URL': expected https://HOST"

G=(--project "$PROJECT_ID" --location "$REGION")
flags=(--schedule "$SCHEDULE" --time-zone "$TIME_ZONE"
	--uri "$WORKER_URL/wake" --http-method POST
	--oidc-service-account-email "$SCHEDULER_SA"
	--oidc-token-audience "$WORKER_URL"
	--attempt-deadline "${ATTEMPT_DEADLINE}s"
	--max-retry-attempts 0
	--description "wakeq: wake the worker (backup trigger)")

run gcloud services enable cloudscheduler.googleapis.com --project "$PROJECT_ID"
if [ "$DRY_RUN" = 1 ]; then
	echo "+ $(quote gcloud scheduler jobs describe "$JOB_NAME" "${G[@]}") >/dev/null 2>&1 &&"
	echo "+   $(quote gcloud scheduler jobs update http "$JOB_NAME" "${G[@]}" "${flags[@]}") ||"
	echo "+   $(quote gcloud scheduler jobs create http "$JOB_NAME" "${G[@]}" "${flags[@]}")"
elif gcloud scheduler jobs describe "$JOB_NAME" "${G[@]}" >/dev/null 2>&1; then
	run gcloud scheduler jobs update http "$JOB_NAME" "${G[@]}" "${flags[@]}"
else
	run gcloud scheduler jobs create http "$JOB_NAME" "${G[@]}" "${flags[@]}"
fi
echo "# $JOB_NAME: POST $WORKER_URL/wake on '$SCHEDULE' ($TIME_ZONE)," \
	"OIDC as $SCHEDULER_SA, attempt deadline ${ATTEMPT_DEADLINE}s"
echo "# test it: gcloud scheduler jobs run $JOB_NAME --project $PROJECT_ID --location $REGION"
