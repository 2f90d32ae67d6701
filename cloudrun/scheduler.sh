#!/usr/bin/env bash
# scheduler.sh - the Cloud Scheduler jobs: the backup trigger that POSTs
# the worker's /wake with an OIDC token every few minutes, and the
# reconcile pass, POST /v1/reconcile on the API every 10 minutes.
#
#   cloudrun/scheduler.sh [--dry-run] [--project ID] [--region R]
#                         [--schedule CRON] [--attempt-deadline SECONDS]
#                         [--reconcile-schedule CRON|off]
#
# The wake job. The API arranges a wake (a Cloud Tasks task) when it
# enqueues a job and sees no live worker, and for a scheduled job at its
# due time; the worker arranges its own next wake when a drain ends with
# work left or coming due. The cron tick catches what that cannot: a task
# that failed to be made, leases of a killed worker, a wake lost in
# transit. A tick with nothing to do is one short request: the worker's
# first take finds nothing due (and nothing due within IDLE_TIMEOUT) and
# answers at once, 0.1 s billed and 2 or 3 Redis commands
# (docs/CLOUDRUN.md, "An idle tick, measured"). The token is minted for
# the wakeq-scheduler service account, which deploy.sh made a run.invoker
# of the worker; the audience is the worker's URL.
#
# The reconcile job. On Cloud Run the API keeps no timers (API_TIMERS=false
# in api.service.yaml: no CPU outside requests), so its reconcile pass
# between Postgres and Redis runs only when POST /v1/reconcile is called:
# this job calls it. The API authenticates its callers itself, with
# API_TOKEN as a bearer token (it does not check OIDC tokens; the service
# is public at Cloud Run's level, API_PUBLIC=1 in deploy.sh), so the job
# sends "Authorization: Bearer TOKEN" as a header of its own, and no OIDC
# token (Cloud Scheduler would put that in the same header). TOKEN is
# RECONCILE_TOKEN, else the first token of the secret SECRET_API_TOKEN.
# It is stored in the job's configuration, which anyone with
# cloudscheduler.jobs.get may read: better give the job a token of its
# own (API_TOKEN takes a comma-separated list: add one, pass it as
# RECONCILE_TOKEN, revoke it alone). It is never printed (gcloud's own
# output is turned off), but it is an argument of gcloud while it runs,
# visible to the machine's other users in the process list. Without
# Postgres (deploy.sh without SQL_INSTANCE) the API answers 409: pass
# --reconcile-schedule off, which also deletes a reconcile job made
# before. With API_PUBLIC=0 Cloud Run's IAM would want
# an OIDC token in the header that carries API_TOKEN: the job is refused.
#
# Each job is created, or updated when it exists (every gcloud command is
# printed as "+ ..."; --dry-run only prints). Neither retries: the next
# run is the retry.
#
# Environment (defaults): PROJECT_ID, REGION (us-central1), JOB_NAME
# (wakeq-wake), SCHEDULE ("*/5 * * * *"), TIME_ZONE (Etc/UTC),
# ATTEMPT_DEADLINE (1800, seconds: Cloud Scheduler's longest for HTTP
# targets; keep the worker's WAKE_MAX below it, 1740 in
# worker.service.yaml, so a drain ends before the scheduler gives up),
# WORKER_URL (read from the deployed service when empty),
# RECONCILE_JOB_NAME (wakeq-reconcile), RECONCILE_SCHEDULE ("*/10 * * * *";
# off: no reconcile job), API_URL (read from the deployed service when
# empty), RECONCILE_TOKEN, SECRET_API_TOKEN (wakeq-api-token), API_PUBLIC (1).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

JOB_NAME=${JOB_NAME:-wakeq-wake}
SCHEDULE=${SCHEDULE:-*/5 * * * *}
TIME_ZONE=${TIME_ZONE:-Etc/UTC}
ATTEMPT_DEADLINE=${ATTEMPT_DEADLINE:-1800}
WORKER_URL=${WORKER_URL:-}
RECONCILE_JOB_NAME=${RECONCILE_JOB_NAME:-wakeq-reconcile}
RECONCILE_SCHEDULE=${RECONCILE_SCHEDULE:-*/10 * * * *}
API_URL=${API_URL:-}
RECONCILE_TOKEN=${RECONCILE_TOKEN:-}
SECRET_API_TOKEN=${SECRET_API_TOKEN:-wakeq-api-token}
API_PUBLIC=${API_PUBLIC:-1}
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
	--reconcile-schedule) RECONCILE_SCHEDULE=${2:?--reconcile-schedule needs a cron expression or off}; shift ;;
	--reconcile-schedule=*) RECONCILE_SCHEDULE=${1#*=} ;;
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
# cron VAR: the variable holds 5 cron fields
cron() {
	local fields
	read -r -a fields <<<"${!1}"
	[ "${#fields[@]}" -eq 5 ] || die "bad $1 '${!1}': expected 5 cron fields"
}
cron SCHEDULE
RECONCILE=1
if [ "$RECONCILE_SCHEDULE" = off ]; then
	RECONCILE=0
else
	cron RECONCILE_SCHEDULE
	[ "$API_PUBLIC" = 1 ] || die "the reconcile job needs the API public (API_PUBLIC=1):" \
		"it sends API_TOKEN in the Authorization header, where IAM wants an OIDC token;" \
		"pass --reconcile-schedule off"
fi
if [ -z "$WORKER_URL" ]; then
	WORKER_URL=$(service_url "$WORKER_SERVICE")
fi
[[ $WORKER_URL =~ ^https://[^/]+$ ]] || die "bad WORKER_URL '$WORKER_URL': expected https://HOST"

# The bearer token: RECONCILE_TOKEN, else the first of the API's secret.
# Shown as $RECONCILE_TOKEN wherever a command is printed.
# shellcheck disable=SC2016 # the name itself, not its value
TOKEN_SHOWN='$RECONCILE_TOKEN'
if [ "$RECONCILE" = 1 ]; then
	if [ -z "$API_URL" ]; then
		API_URL=$(service_url "$API_SERVICE")
	fi
	[[ $API_URL =~ ^https://[^/]+$ ]] || die "bad API_URL '$API_URL': expected https://HOST"
	if [ -z "$RECONCILE_TOKEN" ]; then
		access=(gcloud secrets versions access latest --secret "$SECRET_API_TOKEN" --project "$PROJECT_ID")
		echo "+ RECONCILE_TOKEN=\$($(quote "${access[@]}") | cut -d, -f1)"
		if [ "$DRY_RUN" = 1 ]; then
			RECONCILE_TOKEN=$TOKEN_SHOWN
		else
			RECONCILE_TOKEN=$("${access[@]}" | cut -d, -f1) ||
				die "cannot read the secret '$SECRET_API_TOKEN' (or set RECONCILE_TOKEN)"
		fi
	fi
	# RFC 6750's token characters: no comma (gcloud splits KEY=VALUE
	# lists there), nothing quote() would escape (so printing can hide it)
	[[ $RECONCILE_TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ || $RECONCILE_TOKEN = "$TOKEN_SHOWN" ]] ||
		die "bad RECONCILE_TOKEN: expected one bearer token (letters, digits, - . _ ~ + / =)"
fi

# put LINE...: prints "+ LINE" with the token hidden
put() {
	local line="$*"
	[ -z "$RECONCILE_TOKEN" ] || line=${line//"$RECONCILE_TOKEN"/$TOKEN_SHOWN}
	echo "+ $line"
}
G=(--project "$PROJECT_ID" --location "$REGION")
# job NAME HEADER FLAGS...: creates the HTTP job NAME, or updates it when
# it exists; HEADER (KEY=VALUE, or empty) is a header of the job's requests.
job() {
	local name=$1 header=$2 create update
	shift 2
	# --format=none: gcloud would print the job it made, headers and all
	create=(gcloud scheduler jobs create http "$name" "${G[@]}" --format=none "$@")
	update=(gcloud scheduler jobs update http "$name" "${G[@]}" --format=none "$@")
	if [ -n "$header" ]; then
		create+=(--headers "$header")
		update+=(--update-headers "$header")
	fi
	if [ "$DRY_RUN" = 1 ]; then
		put "$(quote gcloud scheduler jobs describe "$name" "${G[@]}") >/dev/null 2>&1 &&"
		put "  $(quote "${update[@]}") ||"
		put "  $(quote "${create[@]}")"
	elif gcloud scheduler jobs describe "$name" "${G[@]}" >/dev/null 2>&1; then
		put "$(quote "${update[@]}")"
		"${update[@]}"
	else
		put "$(quote "${create[@]}")"
		"${create[@]}"
	fi
}

run gcloud services enable cloudscheduler.googleapis.com --project "$PROJECT_ID"
job "$JOB_NAME" "" --schedule "$SCHEDULE" --time-zone "$TIME_ZONE" \
	--uri "$WORKER_URL/wake" --http-method POST \
	--oidc-service-account-email "$SCHEDULER_SA" \
	--oidc-token-audience "$WORKER_URL" \
	--attempt-deadline "${ATTEMPT_DEADLINE}s" \
	--max-retry-attempts 0 \
	--description "wakeq: wake the worker (backup trigger)"
echo "# $JOB_NAME: POST $WORKER_URL/wake on '$SCHEDULE' ($TIME_ZONE)," \
	"OIDC as $SCHEDULER_SA, attempt deadline ${ATTEMPT_DEADLINE}s"
echo "# test it: gcloud scheduler jobs run $JOB_NAME --project $PROJECT_ID --location $REGION"
if [ "$RECONCILE" = 1 ]; then
	job "$RECONCILE_JOB_NAME" "Authorization=Bearer $RECONCILE_TOKEN" \
		--schedule "$RECONCILE_SCHEDULE" --time-zone "$TIME_ZONE" \
		--uri "$API_URL/v1/reconcile" --http-method POST \
		--attempt-deadline 300s \
		--max-retry-attempts 0 \
		--description "wakeq: reconcile Postgres and Redis (the API keeps no timers)"
	echo "# $RECONCILE_JOB_NAME: POST $API_URL/v1/reconcile on '$RECONCILE_SCHEDULE'" \
		"($TIME_ZONE), bearer API token"
else
	# one made before would go on calling with its token: it goes
	gone=(gcloud scheduler jobs delete "$RECONCILE_JOB_NAME" "${G[@]}" --quiet)
	if [ "$DRY_RUN" = 1 ]; then
		put "$(quote gcloud scheduler jobs describe "$RECONCILE_JOB_NAME" "${G[@]}") >/dev/null 2>&1 &&"
		put "  $(quote "${gone[@]}")"
	elif gcloud scheduler jobs describe "$RECONCILE_JOB_NAME" "${G[@]}" >/dev/null 2>&1; then
		put "$(quote "${gone[@]}")"
		"${gone[@]}"
	fi
	echo "# no reconcile job (--reconcile-schedule off)"
fi
