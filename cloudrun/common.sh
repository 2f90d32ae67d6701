# shellcheck shell=bash disable=SC2034
# common.sh - shared by deploy.sh and scheduler.sh (sourced, not run).
#
# Settings come from the environment, flags override them:
#   PROJECT_ID (gcloud's configured project), REGION (us-central1),
#   WORKER_SERVICE (wakeq-worker), API_SERVICE (wakeq-api), TASKS_QUEUE
#   (wakeq-wake, the Cloud Tasks queue of wakes), the service accounts'
#   names WORKER_SA_NAME, API_SA_NAME, SCHEDULER_SA_NAME, TASKS_SA_NAME.
# run CMD...   prints "+ CMD" (shell-quoted) and runs it, or only prints it
#              with --dry-run. Every gcloud call goes through run or ensure.
# ensure "CHECK..." CMD...  runs CMD unless the CHECK command succeeds; with
#              --dry-run prints "+ CHECK || CMD".
# common_flag ARGS...  takes the flags every script has (--dry-run,
#              --project, --region, -h/--help); sets SHIFT to the words
#              it used, or returns 1 when $1 is not one of them.

DRY_RUN=${DRY_RUN:-0}
REGION=${REGION:-us-central1}
WORKER_SERVICE=${WORKER_SERVICE:-wakeq-worker}
API_SERVICE=${API_SERVICE:-wakeq-api}
SCHEDULER_SA_NAME=${SCHEDULER_SA_NAME:-wakeq-scheduler}
WORKER_SA_NAME=${WORKER_SA_NAME:-wakeq-worker}
API_SA_NAME=${API_SA_NAME:-wakeq-api}
TASKS_SA_NAME=${TASKS_SA_NAME:-wakeq-tasks}
TASKS_QUEUE=${TASKS_QUEUE:-wakeq-wake}

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }

common_flag() {
	SHIFT=1
	case "$1" in
	--dry-run) DRY_RUN=1 ;;
	--project) PROJECT_ID=${2:?--project needs an id}; SHIFT=2 ;;
	--project=*) PROJECT_ID=${1#*=} ;;
	--region) REGION=${2:?--region needs a region}; SHIFT=2 ;;
	--region=*) REGION=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	*) return 1 ;;
	esac
}

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

quote() { # quote ARGS...: one shell-quoted line
	local out='' a
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
			out+=" $a"
		else
			out+=" '${a//\'/\'\\\'\'}'"
		fi
	done
	printf '%s\n' "${out# }"
}

run() {
	echo "+ $(quote "$@")"
	[ "$DRY_RUN" = 1 ] && return 0
	"$@"
}

ensure() {
	local check=$1
	shift
	if [ "$DRY_RUN" = 1 ]; then
		echo "+ $check >/dev/null 2>&1 || $(quote "$@")"
		return 0
	fi
	# shellcheck disable=SC2086 # CHECK is a command line we wrote
	if eval "$check" >/dev/null 2>&1; then
		echo "# exists: $check"
		return 0
	fi
	run "$@"
}

# need_project: PROJECT_ID from the flag, the environment or gcloud config.
need_project() {
	if [ -z "${PROJECT_ID:-}" ] && command -v gcloud >/dev/null; then
		PROJECT_ID=$(gcloud config get-value project 2>/dev/null || true)
	fi
	[ -n "${PROJECT_ID:-}" ] || die "no project: pass --project ID or set PROJECT_ID"
	[[ $PROJECT_ID =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "bad project id '$PROJECT_ID'"
	if [ "$DRY_RUN" != 1 ]; then
		command -v gcloud >/dev/null || die "gcloud not found (Google Cloud SDK)"
	fi
	WORKER_SA=$WORKER_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com
	API_SA=$API_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com
	SCHEDULER_SA=$SCHEDULER_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com
	TASKS_SA=$TASKS_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com
}

# service_url NAME: the deployed service's https URL (a placeholder with
# --dry-run, where nothing was deployed).
service_url() {
	if [ "$DRY_RUN" = 1 ]; then
		echo "+ $(quote gcloud run services describe "$1" --project "$PROJECT_ID" \
			--region "$REGION" --format 'value(status.url)')" >&2
		echo "https://$1-dryrun-uc.a.run.app"
		return 0
	fi
	gcloud run services describe "$1" --project "$PROJECT_ID" --region "$REGION" \
		--format 'value(status.url)'
}
