#!/usr/bin/env bash
# deploy.sh - build, push and deploy wakeq on Cloud Run (worker + API).
#
#   cloudrun/deploy.sh [--dry-run] [--project ID] [--region R] [--tag T]
#                      [--skip-build]
#
# Steps (every gcloud command is printed as "+ ..."; --dry-run only prints):
#   1. enable the APIs; create the Artifact Registry repository REPO;
#   2. build Dockerfile.worker and Dockerfile.api for linux/amd64 (what
#      Cloud Run runs, whatever the build machine: --platform) with docker,
#      or podman when there is no docker engine, and push them;
#   3. create the service accounts wakeq-worker, wakeq-api, wakeq-scheduler
#      and wakeq-tasks (the identity in Cloud Tasks' OIDC tokens); give the
#      runtime accounts access to their secrets (and Cloud SQL);
#   4. create missing secrets from REDIS_URL, DATABASE_URL, API_TOKEN,
#      WEBHOOK_SECRET in the environment (values are never printed);
#   5. create the bucket DATA_BUCKET (uniform access) that both services
#      mount as DATA_DIR (a Cloud Storage volume: gcsfuse), read-write for
#      the worker's and the API's accounts; an HMAC key of the API's
#      account, kept in two secrets, signs presigned upload URLs into
#      gs://DATA_BUCKET/uploads/ (uploads over Cloud Run's 32 MiB cap);
#   6. create (or update) the Cloud Tasks queue TASKS_QUEUE for wakes: the
#      API's and the worker's accounts may create tasks in it and act as
#      wakeq-tasks, whose OIDC token the tasks carry;
#   7. gcloud run services replace worker.service.yaml (min instances 0);
#   8. grant roles/run.invoker on the worker to the API's, the scheduler's
#      and the tasks' accounts (no one else may call /wake);
#   9. gcloud run services replace api.service.yaml with WAKE_URL set to
#      the worker's URL; allUsers may invoke the API (API_PUBLIC=1, the
#      default; it checks API_TOKEN itself).
# Then run cloudrun/scheduler.sh for the backup cron and, with Postgres,
# the scheduled reconcile (the API keeps no timers on Cloud Run).
#
# Environment (defaults): PROJECT_ID, REGION (us-central1), REPO (wakeq),
# TAG (git short hash, else a UTC timestamp), QUEUES (default),
# WORKER_MAX_INSTANCES (10), WORKER_CONCURRENCY (2), WORKER_CPU (2),
# WORKER_MEMORY (2Gi), WORKER_MAX_INPUT (384M: MAX_INPUT_BYTES, downloads
# live in /tmp, which is memory), API_MIN_INSTANCES (0), API_MAX_INSTANCES (20),
# API_PUBLIC (1), VPC_NETWORK and VPC_SUBNET (Memorystore; empty = none),
# SQL_INSTANCE (PROJECT:REGION:NAME for Cloud SQL; empty = no Postgres),
# secret names SECRET_REDIS_URL (wakeq-redis-url), SECRET_DATABASE_URL
# (wakeq-database-url), SECRET_API_TOKEN (wakeq-api-token), SECRET_WEBHOOK
# (wakeq-webhook-secret), SECRET_GCS_HMAC_ID (wakeq-gcs-hmac-id),
# SECRET_GCS_HMAC_SECRET (wakeq-gcs-hmac-secret), DATA_BUCKET (PROJECT_ID-wakeq-data), TASKS_QUEUE
# (wakeq-wake), TASKS_MAX_ATTEMPTS (20), PLATFORM (linux/amd64),
# RENDER_DIR (keep the rendered YAML files there).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

SKIP_BUILD=0
while [ $# -gt 0 ]; do
	if common_flag "$@"; then
		shift "$SHIFT"
		continue
	fi
	case "$1" in
	--tag) TAG=${2:?--tag needs a tag}; shift ;;
	--tag=*) TAG=${1#*=} ;;
	--skip-build) SKIP_BUILD=1 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

need_project
REPO=${REPO:-wakeq}
if [ -z "${TAG:-}" ]; then
	TAG=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)
fi
QUEUES=${QUEUES:-default}
WORKER_MAX_INSTANCES=${WORKER_MAX_INSTANCES:-10}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-2}
WORKER_CPU=${WORKER_CPU:-2}
WORKER_MEMORY=${WORKER_MEMORY:-2Gi}
WORKER_MAX_INPUT=${WORKER_MAX_INPUT:-384M}
API_MIN_INSTANCES=${API_MIN_INSTANCES:-0}
API_MAX_INSTANCES=${API_MAX_INSTANCES:-20}
API_PUBLIC=${API_PUBLIC:-1}
VPC_NETWORK=${VPC_NETWORK:-}
VPC_SUBNET=${VPC_SUBNET:-${VPC_NETWORK}}
SQL_INSTANCE=${SQL_INSTANCE:-}
SECRET_REDIS_URL=${SECRET_REDIS_URL:-wakeq-redis-url}
SECRET_DATABASE_URL=${SECRET_DATABASE_URL:-wakeq-database-url}
SECRET_API_TOKEN=${SECRET_API_TOKEN:-wakeq-api-token}
SECRET_WEBHOOK=${SECRET_WEBHOOK:-wakeq-webhook-secret}
SECRET_GCS_HMAC_ID=${SECRET_GCS_HMAC_ID:-wakeq-gcs-hmac-id}
SECRET_GCS_HMAC_SECRET=${SECRET_GCS_HMAC_SECRET:-wakeq-gcs-hmac-secret}
DATA_BUCKET=${DATA_BUCKET:-$PROJECT_ID-wakeq-data}
TASKS_MAX_ATTEMPTS=${TASKS_MAX_ATTEMPTS:-20}
# Cloud Run runs linux/amd64 images: an arm64 laptop must not push arm64.
PLATFORM=${PLATFORM:-linux/amd64}
REGISTRY=$REGION-docker.pkg.dev
WORKER_IMAGE=$REGISTRY/$PROJECT_ID/$REPO/wakeq-worker:$TAG
API_IMAGE=$REGISTRY/$PROJECT_ID/$REPO/wakeq-api:$TAG
WORKER_URL=
for v in WORKER_MAX_INSTANCES WORKER_CONCURRENCY API_MIN_INSTANCES API_MAX_INSTANCES \
	TASKS_MAX_ATTEMPTS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "bad $v '${!v}': expected a whole number"
done
[ "$WORKER_MAX_INSTANCES" -ge 1 ] || die "bad WORKER_MAX_INSTANCES '0': expected at least 1"
[[ $QUEUES =~ ^[A-Za-z0-9_.,:-]+$ ]] || die "bad QUEUES '$QUEUES'"
[[ $DATA_BUCKET =~ ^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$ ]] ||
	die "bad DATA_BUCKET '$DATA_BUCKET': expected a bucket name (3-63 of a-z 0-9 - _ .)"
[[ $TASKS_QUEUE =~ ^[A-Za-z0-9-]{1,100}$ ]] || die "bad TASKS_QUEUE '$TASKS_QUEUE'"
[[ $WORKER_MAX_INPUT =~ ^[0-9]+[KMG]?$ ]] ||
	die "bad WORKER_MAX_INPUT '$WORKER_MAX_INPUT': expected bytes with K, M or G (384M)"
if [ -n "$SQL_INSTANCE" ]; then
	[[ $SQL_INSTANCE =~ ^[a-z0-9-]+:[a-z0-9-]+:[a-z0-9-]+$ ]] ||
		die "bad SQL_INSTANCE '$SQL_INSTANCE': expected PROJECT:REGION:INSTANCE"
fi

# render FILE: the YAML with ${NAME} placeholders replaced and the lines
# marked "# if:NAME" dropped when NAME is empty (kept, marker removed,
# otherwise), written into $RENDER_DIR under the same name; prints the path.
RENDER_DIR=${RENDER_DIR:-}
if [ -z "$RENDER_DIR" ]; then
	RENDER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wakeq-deploy.XXXXXX")
	trap 'rm -rf "$RENDER_DIR"' EXIT
fi
mkdir -p "$RENDER_DIR"
render() {
	local file=$1 out sedargs=() name val
	out=$RENDER_DIR/${file##*/}
	for name in WORKER_SERVICE API_SERVICE WORKER_SA API_SA WORKER_IMAGE API_IMAGE \
		WORKER_URL QUEUES WORKER_MAX_INSTANCES WORKER_CONCURRENCY WORKER_CPU \
		WORKER_MEMORY WORKER_MAX_INPUT API_MIN_INSTANCES API_MAX_INSTANCES VPC_NETWORK \
		VPC_SUBNET SQL_INSTANCE SECRET_REDIS_URL SECRET_DATABASE_URL SECRET_API_TOKEN \
		SECRET_WEBHOOK SECRET_GCS_HMAC_ID SECRET_GCS_HMAC_SECRET DATA_BUCKET TASKS_QUEUE \
		TASKS_SA PROJECT_ID REGION; do
		val=${!name}
		if [ -z "$val" ]; then
			sedargs+=(-e "/# if:$name\$/d")
		fi
		val=${val//\\/\\\\}
		val=${val//|/\\|}
		val=${val//&/\\&}
		sedargs+=(-e "s|\${$name}|$val|g")
	done
	sed "${sedargs[@]}" -e 's/ *# if:[A-Z_]*$//' "$file" >"$out"
	if grep -n "\\\${[A-Z_]*}" "$out" >&2; then
		die "unrendered placeholders left in $file"
	fi
	echo "$out"
}

# builder: docker when an engine answers, else podman.
builder() {
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		echo docker
	elif command -v podman >/dev/null; then
		echo podman
	else
		echo docker
	fi
}

# ---- 1. APIs and the image repository --------------------------------
G=(--project "$PROJECT_ID")
run gcloud services enable run.googleapis.com artifactregistry.googleapis.com \
	secretmanager.googleapis.com cloudscheduler.googleapis.com iam.googleapis.com \
	cloudtasks.googleapis.com storage.googleapis.com "${G[@]}"
ensure "gcloud artifacts repositories describe $REPO --location $REGION --project $PROJECT_ID" \
	gcloud artifacts repositories create "$REPO" --repository-format docker \
	--location "$REGION" --description "wakeq images" "${G[@]}"

# ---- 2. images ---------------------------------------------------------
if [ "$SKIP_BUILD" = 0 ]; then
	B=$(builder)
	run gcloud auth configure-docker "$REGISTRY" --quiet
	run "$B" build --platform "$PLATFORM" -f "$TOP/Dockerfile.worker" -t "$WORKER_IMAGE" "$TOP"
	run "$B" build --platform "$PLATFORM" -f "$TOP/Dockerfile.api" -t "$API_IMAGE" "$TOP"
	run "$B" push "$WORKER_IMAGE"
	run "$B" push "$API_IMAGE"
fi

# ---- 3. service accounts, secret and SQL access ------------------------
for sa in "$WORKER_SA_NAME:wakeq worker (runs jobs)" "$API_SA_NAME:wakeq API" \
	"$SCHEDULER_SA_NAME:wakeq scheduler (calls the worker's /wake)" \
	"$TASKS_SA_NAME:wakeq tasks (Cloud Tasks calls the worker's /wake)"; do
	ensure "gcloud iam service-accounts describe ${sa%%:*}@$PROJECT_ID.iam.gserviceaccount.com --project $PROJECT_ID" \
		gcloud iam service-accounts create "${sa%%:*}" --display-name "${sa#*:}" "${G[@]}"
done

# ---- 4. secrets --------------------------------------------------------
# secret NAME VAR: create NAME from $VAR when it does not exist yet.
secret() {
	local name=$1 var=$2
	if [ "$DRY_RUN" = 1 ]; then
		echo "+ gcloud secrets describe $name --project $PROJECT_ID >/dev/null 2>&1 ||" \
			"printf %s \"\$$var\" | gcloud secrets create $name --data-file=- --project $PROJECT_ID"
		return 0
	fi
	if gcloud secrets describe "$name" --project "$PROJECT_ID" >/dev/null 2>&1; then
		echo "# exists: secret $name"
		return 0
	fi
	[ -n "${!var:-}" ] || die "secret '$name' missing: set $var (or create it, see docs/DEPLOY.md)"
	echo "+ printf %s \"\$$var\" | gcloud secrets create $name --data-file=- --project $PROJECT_ID"
	printf %s "${!var}" | gcloud secrets create "$name" --data-file=- --project "$PROJECT_ID"
}
grant_secret() { # grant_secret NAME SA
	run gcloud secrets add-iam-policy-binding "$1" --member "serviceAccount:$2" \
		--role roles/secretmanager.secretAccessor "${G[@]}" --quiet
}
secret "$SECRET_REDIS_URL" REDIS_URL
secret "$SECRET_API_TOKEN" API_TOKEN
secret "$SECRET_WEBHOOK" WEBHOOK_SECRET
grant_secret "$SECRET_REDIS_URL" "$WORKER_SA"
grant_secret "$SECRET_REDIS_URL" "$API_SA"
grant_secret "$SECRET_WEBHOOK" "$WORKER_SA"
grant_secret "$SECRET_API_TOKEN" "$API_SA"
if [ -n "$SQL_INSTANCE" ]; then
	secret "$SECRET_DATABASE_URL" DATABASE_URL
	grant_secret "$SECRET_DATABASE_URL" "$WORKER_SA"
	grant_secret "$SECRET_DATABASE_URL" "$API_SA"
	for sa in "$WORKER_SA" "$API_SA"; do
		run gcloud projects add-iam-policy-binding "$PROJECT_ID" \
			--member "serviceAccount:$sa" --role roles/cloudsql.client --condition None --quiet
	done
fi

# ---- 5. shared storage: the bucket both services mount as DATA_DIR ------
# Uploads land in it through the API and are read by the worker, which
# writes its outputs there: the services share no disk otherwise.
ensure "gcloud storage buckets describe gs://$DATA_BUCKET --project $PROJECT_ID" \
	gcloud storage buckets create "gs://$DATA_BUCKET" --location "$REGION" \
	--uniform-bucket-level-access --public-access-prevention "${G[@]}"
for sa in "$WORKER_SA" "$API_SA"; do
	run gcloud storage buckets add-iam-policy-binding "gs://$DATA_BUCKET" \
		--member "serviceAccount:$sa" --role roles/storage.objectUser "${G[@]}" --quiet
done
# Presigned uploads: the API signs PUT URLs with an HMAC key of its own
# account (so a URL may do what that account may: write the bucket). The
# key is made once and kept in two secrets; its secret is shown by Cloud
# Storage only when it is made, and goes straight into Secret Manager.
hmac_create=(gcloud storage hmac create "$API_SA" "${G[@]}"
	--format "value(metadata.accessId,secret)")
if [ "$DRY_RUN" = 1 ]; then
	echo "+ gcloud secrets describe $SECRET_GCS_HMAC_ID --project $PROJECT_ID >/dev/null 2>&1 ||" \
		"$(quote "${hmac_create[@]}") | { read -r id secret;" \
		"printf %s \"\$id\" | gcloud secrets create $SECRET_GCS_HMAC_ID --data-file=- --project $PROJECT_ID;" \
		"printf %s \"\$secret\" | gcloud secrets create $SECRET_GCS_HMAC_SECRET --data-file=- --project $PROJECT_ID; }"
elif gcloud secrets describe "$SECRET_GCS_HMAC_ID" --project "$PROJECT_ID" >/dev/null 2>&1; then
	echo "# exists: secret $SECRET_GCS_HMAC_ID (an HMAC key of $API_SA)"
else
	echo "+ $(quote "${hmac_create[@]}") | (into secrets $SECRET_GCS_HMAC_ID, $SECRET_GCS_HMAC_SECRET)"
	read -r hmac_id hmac_secret < <("${hmac_create[@]}")
	if [ -z "$hmac_id" ] || [ -z "$hmac_secret" ]; then
		die "cannot create an HMAC key for $API_SA"
	fi
	printf %s "$hmac_id" | gcloud secrets create "$SECRET_GCS_HMAC_ID" --data-file=- "${G[@]}"
	printf %s "$hmac_secret" | gcloud secrets create "$SECRET_GCS_HMAC_SECRET" --data-file=- "${G[@]}"
	unset hmac_secret
fi
grant_secret "$SECRET_GCS_HMAC_ID" "$API_SA"
grant_secret "$SECRET_GCS_HMAC_SECRET" "$API_SA"

# ---- 6. the Cloud Tasks queue of wakes -----------------------------------
# A task holds the worker's /wake for as long as the drain runs (the API's
# own instance need not stay up); each dispatch is one worker instance
# (concurrency 1), so at most WORKER_MAX_INSTANCES at once. Retries (5xx,
# deadline) back off from 1 s; the scheduler's tick stays the backstop.
TQ=(--location "$REGION" "${G[@]}")
tq_flags=(--max-concurrent-dispatches "$WORKER_MAX_INSTANCES"
	--max-attempts "$TASKS_MAX_ATTEMPTS" --min-backoff 1s --max-backoff 300s)
if [ "$DRY_RUN" = 1 ]; then
	echo "+ $(quote gcloud tasks queues describe "$TASKS_QUEUE" "${TQ[@]}") >/dev/null 2>&1 &&"
	echo "+   $(quote gcloud tasks queues update "$TASKS_QUEUE" "${TQ[@]}" "${tq_flags[@]}") ||"
	echo "+   $(quote gcloud tasks queues create "$TASKS_QUEUE" "${TQ[@]}" "${tq_flags[@]}")"
elif gcloud tasks queues describe "$TASKS_QUEUE" "${TQ[@]}" >/dev/null 2>&1; then
	run gcloud tasks queues update "$TASKS_QUEUE" "${TQ[@]}" "${tq_flags[@]}"
else
	run gcloud tasks queues create "$TASKS_QUEUE" "${TQ[@]}" "${tq_flags[@]}"
fi
# The API creates the tasks, and so does the worker (its next wake, when
# a drain ends with work left or due later); both name wakeq-tasks as the
# tasks' OIDC identity, which Cloud Tasks allows only to a caller that may
# act as that account.
for sa in "$API_SA" "$WORKER_SA"; do
	run gcloud tasks queues add-iam-policy-binding "$TASKS_QUEUE" "${TQ[@]}" \
		--member "serviceAccount:$sa" --role roles/cloudtasks.enqueuer --quiet
	run gcloud iam service-accounts add-iam-policy-binding "$TASKS_SA" \
		--member "serviceAccount:$sa" --role roles/iam.serviceAccountUser "${G[@]}" --quiet
done

# ---- 7. the worker -----------------------------------------------------
yaml=$(render "$HERE/worker.service.yaml")
run gcloud run services replace "$yaml" --region "$REGION" "${G[@]}"
WORKER_URL=$(service_url "$WORKER_SERVICE")
[ -n "$WORKER_URL" ] || die "cannot read the URL of '$WORKER_SERVICE'"

# ---- 8. who may call /wake ---------------------------------------------
for sa in "$API_SA" "$SCHEDULER_SA" "$TASKS_SA"; do
	run gcloud run services add-iam-policy-binding "$WORKER_SERVICE" --region "$REGION" \
		--member "serviceAccount:$sa" --role roles/run.invoker "${G[@]}" --quiet
done

# ---- 9. the API --------------------------------------------------------
yaml=$(render "$HERE/api.service.yaml")
run gcloud run services replace "$yaml" --region "$REGION" "${G[@]}"
if [ "$API_PUBLIC" = 1 ]; then
	run gcloud run services add-iam-policy-binding "$API_SERVICE" --region "$REGION" \
		--member allUsers --role roles/run.invoker "${G[@]}" --quiet
fi
API_URL=$(service_url "$API_SERVICE")

echo "# worker: $WORKER_URL (min instances 0, IAM-only)"
echo "# api:    $API_URL"
echo "# data:   gs://$DATA_BUCKET, mounted as DATA_DIR in both services"
echo "# wakes:  Cloud Tasks queue $TASKS_QUEUE ($REGION), OIDC as $TASKS_SA"
# The reconcile job needs Postgres (else the API answers 409) and an API
# that is public at Cloud Run's level (it carries API_TOKEN, not OIDC).
next="cloudrun/scheduler.sh --project $PROJECT_ID --region $REGION"
if [ -z "$SQL_INSTANCE" ] || [ "$API_PUBLIC" != 1 ]; then
	next+=" --reconcile-schedule off"
fi
echo "# next:   $next"
