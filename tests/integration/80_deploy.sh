#!/usr/bin/env bash
# 80_deploy.sh - the deployment files without a cloud: cloudrun/deploy.sh
# and scheduler.sh in --dry-run (every gcloud command they would run),
# the Cloud Run YAML as rendered (parsed, required fields), compose.yaml,
# the systemd units (systemd-analyze verify), the crontab line, the
# Dockerfiles' static rules, and shellcheck on the deployment scripts.
# Needs shellcheck and python3-yaml (container/deps.sh test set).
set -u
# shellcheck source=tests/lib/servers.sh
. "$(dirname "$0")/../lib/test.sh"
cd "$TOP" || exit 1

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
	not_ok "python3 yaml module present (apt-get install python3-yaml)"
	exit 1
fi
command -v shellcheck >/dev/null || { not_ok "shellcheck present (apt-get install shellcheck)"; exit 1; }

P=demo-proj-1
R=europe-west1
out=$T/deploy.out
# A secret value in the environment must never reach the output.
SECRET=s3cr3t-$$-value
if REDIS_URL="redis://:$SECRET@10.0.0.3:6379" API_TOKEN=$SECRET WEBHOOK_SECRET=$SECRET \
	DATABASE_URL="postgresql://u:$SECRET@/db" RENDER_DIR=$T/full \
	SQL_INSTANCE=$P:$R:wakeq-pg VPC_NETWORK=default WORKER_MAX_INSTANCES=7 \
	cloudrun/deploy.sh --dry-run --project $P --region $R --tag t1 >"$out" 2>&1; then
	ok "deploy.sh --dry-run exits 0"
else
	not_ok "deploy.sh --dry-run exits 0"
	diag "$out"
fi

# has NAME REGEX: some "+ " line of the output matches.
has() {
	if grep -E '^\+ ' "$out" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1 (/$2/)"; fi
}
hasnt() {
	if grep -Eq -- "$2" "$out"; then not_ok "$1 (/$2/ found)"; else ok "$1"; fi
}
SA="@$P\.iam\.gserviceaccount\.com"
has "worker deployed with services replace" \
	"^\+ gcloud run services replace $T/full/worker\.service\.yaml --region $R --project $P"
has "api deployed with services replace" \
	"^\+ gcloud run services replace $T/full/api\.service\.yaml --region $R --project $P"
for a in wakeq-worker wakeq-api wakeq-scheduler wakeq-tasks; do
	has "service account $a created" "gcloud iam service-accounts create $a "
done
has "api's account may invoke the worker" \
	"gcloud run services add-iam-policy-binding wakeq-worker --region $R --member serviceAccount:wakeq-api$SA --role roles/run\.invoker"
has "scheduler's account may invoke the worker" \
	"gcloud run services add-iam-policy-binding wakeq-worker --region $R --member serviceAccount:wakeq-scheduler$SA --role roles/run\.invoker"
hasnt "nobody else may invoke the worker" "add-iam-policy-binding wakeq-worker .*allUsers"
has "the api is public (it checks API_TOKEN)" \
	"gcloud run services add-iam-policy-binding wakeq-api .*--member allUsers --role roles/run\.invoker"
# Cloud Run runs linux/amd64, whatever machine builds
has "worker image built from Dockerfile.worker for linux/amd64" "(docker|podman) build --platform linux/amd64 -f [^ ]*/Dockerfile\.worker -t $R-docker\.pkg\.dev/$P/wakeq/wakeq-worker:t1"
has "api image built from Dockerfile.api for linux/amd64" "(docker|podman) build --platform linux/amd64 -f [^ ]*/Dockerfile\.api -t $R-docker\.pkg\.dev/$P/wakeq/wakeq-api:t1"
has "worker image pushed" "(docker|podman) push $R-docker\.pkg\.dev/$P/wakeq/wakeq-worker:t1"
has "api image pushed" "(docker|podman) push $R-docker\.pkg\.dev/$P/wakeq/wakeq-api:t1"
has "worker reads its Redis secret" \
	"gcloud secrets add-iam-policy-binding wakeq-redis-url --member serviceAccount:wakeq-worker$SA --role roles/secretmanager\.secretAccessor"
has "api reads its token secret" \
	"gcloud secrets add-iam-policy-binding wakeq-api-token --member serviceAccount:wakeq-api$SA"
has "cloud sql client role with SQL_INSTANCE" "roles/cloudsql\.client"
has "Cloud Tasks and Cloud Storage APIs enabled" \
	"gcloud services enable .*cloudtasks\.googleapis\.com.*storage\.googleapis\.com"
# the Cloud Tasks queue of wakes and who may use it
has "tasks queue created in the region, one dispatch per worker instance" \
	"gcloud tasks queues create wakeq-wake --location $R --project $P --max-concurrent-dispatches 7 "
has "tasks queue updated when it exists" "gcloud tasks queues update wakeq-wake --location $R "
has "tasks retried from 1 s" "gcloud tasks queues create .* --min-backoff 1s"
has "the api's account may create tasks" \
	"gcloud tasks queues add-iam-policy-binding wakeq-wake --location $R --project $P --member serviceAccount:wakeq-api$SA --role roles/cloudtasks\.enqueuer"
has "the api's account may put wakeq-tasks's OIDC token in a task" \
	"gcloud iam service-accounts add-iam-policy-binding wakeq-tasks$SA --member serviceAccount:wakeq-api$SA --role roles/iam\.serviceAccountUser"
has "the worker's account may create tasks (its next wake)" \
	"gcloud tasks queues add-iam-policy-binding wakeq-wake --location $R --project $P --member serviceAccount:wakeq-worker$SA --role roles/cloudtasks\.enqueuer"
has "... and put wakeq-tasks's OIDC token in them" \
	"gcloud iam service-accounts add-iam-policy-binding wakeq-tasks$SA --member serviceAccount:wakeq-worker$SA --role roles/iam\.serviceAccountUser"
has "the tasks' OIDC account may invoke the worker" \
	"gcloud run services add-iam-policy-binding wakeq-worker --region $R --member serviceAccount:wakeq-tasks$SA --role roles/run\.invoker"
hasnt "the tasks' account may invoke nothing else" "add-iam-policy-binding wakeq-api .*wakeq-tasks"
# the bucket both services mount as DATA_DIR
has "data bucket created in the region, uniform access, never public" \
	"gcloud storage buckets create gs://$P-wakeq-data --location $R --uniform-bucket-level-access --public-access-prevention"
for a in wakeq-worker wakeq-api; do
	has "$a may read and write the data bucket" \
		"gcloud storage buckets add-iam-policy-binding gs://$P-wakeq-data --member serviceAccount:$a$SA --role roles/storage\.objectUser"
done
# presigned uploads: an HMAC key of the API's account, in two secrets only it reads
has "an HMAC key of the api's account, straight into a secret" \
	"gcloud secrets describe wakeq-gcs-hmac-id --project $P .*\|\| gcloud storage hmac create wakeq-api$SA --project $P .*gcloud secrets create wakeq-gcs-hmac-id --data-file=- .*gcloud secrets create wakeq-gcs-hmac-secret --data-file=-"
for s in wakeq-gcs-hmac-id wakeq-gcs-hmac-secret; do
	has "the api reads $s" \
		"gcloud secrets add-iam-policy-binding $s --member serviceAccount:wakeq-api$SA --role roles/secretmanager\.secretAccessor"
done
hasnt "nobody else reads the HMAC key" "add-iam-policy-binding wakeq-gcs-hmac-[a-z]* --member serviceAccount:wakeq-(worker|scheduler|tasks)"
hasnt "no secret value in the output" "$SECRET"
bad=$(grep -E '^\+ .*\bgcloud ' "$out" | grep -v 'auth configure-docker' |
	grep -v "gcloud projects add-iam-policy-binding $P " | grep -vc -- "--project $P")
expect_eq "every gcloud command names the project" 0 "$bad"
n=$(grep -c '^+ .*gcloud ' "$out")
if [ "$n" -ge 20 ]; then ok "dry run printed $n gcloud commands"; else not_ok "dry run printed $n gcloud commands"; fi

# The same without Cloud SQL or a VPC (Upstash): optional lines dropped.
if RENDER_DIR=$T/min DATA_BUCKET=other-bucket_1 cloudrun/deploy.sh --dry-run --project $P \
	--region $R --tag t1 --skip-build >"$T/min.out" 2>&1; then
	ok "deploy.sh --dry-run --skip-build without SQL/VPC exits 0"
else
	not_ok "deploy.sh --dry-run --skip-build without SQL/VPC exits 0"
	diag "$T/min.out"
fi
if grep -Eq '(docker|podman) (build|push)' "$T/min.out"; then
	not_ok "--skip-build builds nothing"
else
	ok "--skip-build builds nothing"
fi
# next: scheduler.sh, with the reconcile job only where there is Postgres
check "with Cloud SQL: next, scheduler.sh with its reconcile job" \
	grep -qx "# next:   cloudrun/scheduler.sh --project $P --region $R" "$T/deploy.out"
check "without: next, scheduler.sh --reconcile-schedule off" \
	grep -qx "# next:   cloudrun/scheduler.sh --project $P --region $R --reconcile-schedule off" "$T/min.out"
if cloudrun/deploy.sh --dry-run --project "Bad_Project" >"$T/bad.out" 2>&1; then
	not_ok "deploy.sh refuses a bad project id"
else
	ok "deploy.sh refuses a bad project id"
fi
if DATA_BUCKET=Bad/Bucket cloudrun/deploy.sh --dry-run --project $P >"$T/bad.out" 2>&1; then
	not_ok "deploy.sh refuses a bad bucket name"
else
	ok "deploy.sh refuses a bad bucket name"
fi

# ---- the YAML files, rendered and as shipped --------------------------
"$PY" - "$T" "$P" "$R" <<'EOF'
import sys, yaml

T, P, R = sys.argv[1:4]
def ok(name): print("ok - " + name)
def not_ok(name): print("not ok - " + name)
def check(name, cond):
    (ok if cond else not_ok)(name)

def load(path):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except Exception as e:
        not_ok("%s parses: %s" % (path, e))
        return None

def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}

def secret_ref(e):
    r = e.get("valueFrom", {}).get("secretKeyRef", {})
    return r.get("name") if r.get("key") else None

for src in ("cloudrun/worker.service.yaml", "cloudrun/api.service.yaml",
            "container/compose.yaml"):
    check(src + " parses", load(src) is not None)

for variant in ("full", "min"):
    w = load("%s/%s/worker.service.yaml" % (T, variant))
    a = load("%s/%s/api.service.yaml" % (T, variant))
    if w is None or a is None:
        continue
    tag = "(%s) " % variant
    for name, d in (("worker", w), ("api", a)):
        check(tag + name + ": Knative serving v1 Service",
              d.get("apiVersion") == "serving.knative.dev/v1" and d.get("kind") == "Service")
    ws = w["spec"]["template"]
    wa = ws["metadata"]["annotations"]
    wc = ws["spec"]["containers"][0]
    we = env_of(wc)
    check(tag + "worker named wakeq-worker", w["metadata"]["name"] == "wakeq-worker")
    check(tag + "worker min instances 0 (minScale \"0\", a string)",
          wa.get("autoscaling.knative.dev/minScale") == "0")
    mx = wa.get("autoscaling.knative.dev/maxScale")
    check(tag + "worker has a max instances (%r)" % mx,
          isinstance(mx, str) and mx.isdigit() and int(mx) >= 1)
    check(tag + "worker CPU only during requests (cpu-throttling \"true\")",
          wa.get("run.googleapis.com/cpu-throttling") == "true")
    check(tag + "worker container concurrency 1", ws["spec"].get("containerConcurrency") == 1)
    check(tag + "worker request timeout 3600 s", ws["spec"].get("timeoutSeconds") == 3600)
    check(tag + "worker runs as wakeq-worker SA",
          ws["spec"].get("serviceAccountName") == "wakeq-worker@%s.iam.gserviceaccount.com" % P)
    check(tag + "worker image from Artifact Registry",
          wc["image"] == "%s-docker.pkg.dev/%s/wakeq/wakeq-worker:t1" % (R, P))
    check(tag + "worker listens on 8080", wc["ports"][0]["containerPort"] == 8080)
    sp = wc.get("startupProbe", {}).get("httpGet", {})
    check(tag + "worker startup probe GET /healthz", sp.get("path") == "/healthz" and sp.get("port") == 8080)
    for k in ("QUEUES", "CONCURRENCY", "IDLE_TIMEOUT", "EXIT_ON_IDLE", "WAKE_MAX",
              "SHUTDOWN_GRACE", "LOG_FORMAT"):
        check(tag + "worker env %s set" % k, k in we and str(we[k].get("value", "")) != "")
    check(tag + "worker logs JSON for Cloud Logging", we.get("LOG_FORMAT", {}).get("value") == "json")
    wm = float(we.get("WAKE_MAX", {}).get("value", "1e9"))
    check(tag + "WAKE_MAX (%g s) under the request timeout and the scheduler's 1800 s deadline" % wm,
          wm < 1800 and wm < ws["spec"]["timeoutSeconds"])
    check(tag + "SHUTDOWN_GRACE under Cloud Run's 10 s",
          float(we.get("SHUTDOWN_GRACE", {}).get("value", "99")) < 10)
    check(tag + "worker REDIS_URL from Secret Manager",
          secret_ref(we.get("REDIS_URL", {})) == "wakeq-redis-url")
    check(tag + "worker WEBHOOK_SECRET from Secret Manager",
          secret_ref(we.get("WEBHOOK_SECRET", {})) == "wakeq-webhook-secret")
    plain = [k for k, e in we.items()
             if any(s in k for s in ("TOKEN", "SECRET", "URL")) and "value" in e]
    check(tag + "no secret-bearing worker variable in plain text %s" % plain, not plain)

    s = a["spec"]["template"]
    c = s["spec"]["containers"][0]
    e = env_of(c)
    check(tag + "api named wakeq-api", a["metadata"]["name"] == "wakeq-api")
    check(tag + "api WAKE_URL is the worker's /wake",
          e.get("WAKE_URL", {}).get("value") == "https://wakeq-worker-dryrun-uc.a.run.app/wake")
    check(tag + "api wakes with Google OIDC tokens", e.get("WAKE_AUTH", {}).get("value") == "google")
    tasks = {"TASKS_PROJECT": P, "TASKS_LOCATION": R, "TASKS_QUEUE": "wakeq-wake",
             "TASKS_SERVICE_ACCOUNT": "wakeq-tasks@%s.iam.gserviceaccount.com" % P}
    for name, env in (("api", e), ("worker", we)):
        check(tag + "%s wakes through Cloud Tasks" % name,
              env.get("WAKE_VIA", {}).get("value") == "cloudtasks")
        check(tag + "%s names the tasks queue and the tasks' account" % name,
              all(env.get(k, {}).get("value") == v for k, v in tasks.items()))
    check(tag + "api keeps no in-process timers (no CPU outside requests)",
          e.get("API_TIMERS", {}).get("value") == "false")
    check(tag + "api knows the worker's WAKE_MAX (tasks held for it + 60 s <= 1800 s)",
          float(e.get("WAKE_MAX", {}).get("value", "0")) == wm and wm + 60 <= 1800)
    check(tag + "api fans wakes out to the worker's max instances",
          e.get("WAKE_FANOUT_MAX", {}).get("value") == mx)
    check(tag + "api holds a wake longer than the worker's WAKE_MAX",
          float(e.get("WAKE_HOLD", {}).get("value", "0")) > wm)
    check(tag + "api API_TOKEN from Secret Manager", secret_ref(e.get("API_TOKEN", {})) == "wakeq-api-token")
    check(tag + "api REDIS_URL from Secret Manager", secret_ref(e.get("REDIS_URL", {})) == "wakeq-redis-url")
    check(tag + "api serves many requests per instance", s["spec"].get("containerConcurrency", 0) > 1)
    check(tag + "api has its own scaling",
          "autoscaling.knative.dev/maxScale" in s["metadata"]["annotations"])
    check(tag + "api startup probe GET /healthz",
          c.get("startupProbe", {}).get("httpGet", {}).get("path") == "/healthz")
    # 60 s cut every event stream after a minute; 3600 is Cloud Run's most
    check(tag + "api request timeout 3600 s (event streams last)",
          s["spec"].get("timeoutSeconds") == 3600)

    # DATA_DIR: the same Cloud Storage bucket in both services (gcsfuse)
    bucket = "%s-wakeq-data" % P if variant == "full" else "other-bucket_1"
    # uploads past Cloud Run's 32 MiB request cap: presigned, into that bucket
    check(tag + "api presigns uploads into gs://%s/uploads/" % bucket,
          e.get("UPLOAD_TARGET", {}).get("value") == "gs://%s/uploads/" % bucket)
    check(tag + "api HMAC key from Secret Manager",
          secret_ref(e.get("GCS_HMAC_ACCESS_ID", {})) == "wakeq-gcs-hmac-id"
          and secret_ref(e.get("GCS_HMAC_SECRET", {})) == "wakeq-gcs-hmac-secret")
    plain = [k for k, v in e.items() if any(x in k for x in ("TOKEN", "SECRET")) and "value" in v]
    check(tag + "no secret-bearing api variable in plain text %s" % plain, not plain)
    # /tmp is memory on Cloud Run: downloads are capped
    check(tag + "worker caps downloads (MAX_INPUT_BYTES 384M)",
          we.get("MAX_INPUT_BYTES", {}).get("value") == "384M")
    for name, tmpl, env in (("worker", ws, we), ("api", s, e)):
        cont = tmpl["spec"]["containers"][0]
        vols = {v["name"]: v for v in tmpl["spec"].get("volumes", [])}
        dd = env.get("DATA_DIR", {}).get("value")
        mounts = [m for m in cont.get("volumeMounts", []) if m.get("mountPath") == dd]
        vol = vols.get(mounts[0]["name"], {}) if mounts else {}
        csi = vol.get("csi", {})
        attrs = csi.get("volumeAttributes", {})
        check(tag + "%s mounts a volume at DATA_DIR (%s)" % (name, dd), bool(dd and mounts))
        check(tag + "%s: that volume is Cloud Storage FUSE" % name,
              csi.get("driver") == "gcsfuse.run.googleapis.com")
        check(tag + "%s: bucket %s, read-write" % (name, bucket),
              attrs.get("bucketName") == bucket and csi.get("readOnly") is False
              and not mounts[0].get("readOnly", False))
        check(tag + "%s: files belong to the image's user 10001" % name,
              "uid=10001" in attrs.get("mountOptions", "")
              and "gid=10001" in attrs.get("mountOptions", ""))
        env_annot = tmpl["metadata"]["annotations"].get("run.googleapis.com/execution-environment")
        check(tag + "%s: not gen1 (Cloud Storage volumes need gen2)" % name, env_annot != "gen1")

    sql = "run.googleapis.com/cloudsql-instances"
    vpc = "run.googleapis.com/network-interfaces"
    if variant == "full":
        check("(full) worker max instances from WORKER_MAX_INSTANCES", mx == "7")
        check("(full) Cloud SQL instance attached", wa.get(sql) == "%s:%s:wakeq-pg" % (P, R))
        check("(full) DATABASE_URL from Secret Manager",
              secret_ref(we.get("DATABASE_URL", {})) == "wakeq-database-url")
        check("(full) Direct VPC egress for Memorystore", '"network":"default"' in wa.get(vpc, ""))
    else:
        check("(min) no Cloud SQL, no DATABASE_URL, no VPC without them",
              sql not in wa and "DATABASE_URL" not in we and vpc not in wa)

c = load("container/compose.yaml")
if c:
    sv = c.get("services", {})
    check("compose: redis, postgres, api, worker",
          all(k in sv for k in ("redis", "postgres", "api", "worker")))
    check("compose: worker built from Dockerfile.worker, stops with SIGTERM",
          sv["worker"]["build"]["dockerfile"] == "Dockerfile.worker"
          and sv["worker"].get("stop_signal") == "SIGTERM")
    check("compose: api wakes the worker", sv["api"]["environment"]["WAKE_URL"] == "http://worker:8080/wake")
    dd = {n: sv[n]["environment"].get("DATA_DIR") for n in ("api", "worker")}
    mounts = {n: [v.split(":")[0] for v in sv[n].get("volumes", [])
                  if isinstance(v, str) and v.split(":")[1:2] == [dd[n]]] for n in dd}
    check("compose: api and worker share DATA_DIR (%s) on one named volume %s" % (dd, mounts),
          dd["api"] and dd["api"] == dd["worker"] and mounts["api"]
          and mounts["api"] == mounts["worker"] and mounts["api"][0] in c.get("volumes", {}))
EOF

# ---- scheduler.sh --------------------------------------------------------
sout=$T/sched.out
if cloudrun/scheduler.sh --dry-run --project $P --region $R >"$sout" 2>&1; then
	ok "scheduler.sh --dry-run exits 0"
else
	not_ok "scheduler.sh --dry-run exits 0"
	diag "$sout"
fi
out=$sout
U=https://wakeq-worker-dryrun-uc\.a\.run\.app
has "scheduler job created with gcloud scheduler jobs create http" \
	"gcloud scheduler jobs create http wakeq-wake --project $P --location $R "
has "scheduler job updated when it exists" "gcloud scheduler jobs update http wakeq-wake "
has "every 5 minutes by default" "create http .* --schedule '\*/5 \* \* \* \*'"
has "calls the worker's /wake with POST" "create http .* --uri $U/wake --http-method POST"
has "OIDC token as the scheduler account" "create http .* --oidc-service-account-email wakeq-scheduler$SA"
has "OIDC audience is the worker URL" "create http .* --oidc-token-audience $U( |$)"
has "attempt deadline fits a drain (1800s)" "create http .* --attempt-deadline 1800s"
cloudrun/scheduler.sh --dry-run --project $P --region $R --schedule '*/10 * * * *' \
	--attempt-deadline 900 >"$T/s2.out" 2>&1
out=$T/s2.out
has "schedule is configurable" "create http wakeq-wake .* --schedule '\*/10 \* \* \* \*'"
has "attempt deadline is configurable" "create http .* --attempt-deadline 900s"
if cloudrun/scheduler.sh --dry-run --project $P --attempt-deadline 3600 >/dev/null 2>&1; then
	not_ok "scheduler.sh refuses an attempt deadline over 1800 s"
else
	ok "scheduler.sh refuses an attempt deadline over 1800 s"
fi
if cloudrun/scheduler.sh --dry-run --project $P --schedule '*/5 * *' >/dev/null 2>&1; then
	not_ok "scheduler.sh refuses a bad cron expression"
else
	ok "scheduler.sh refuses a bad cron expression"
fi

# The reconcile job: the API keeps no timers on Cloud Run (API_TIMERS=false),
# so a scheduled POST /v1/reconcile runs its pass, authenticated as the API
# authenticates everyone: API_TOKEN as a bearer token (no OIDC: the API
# does not check it, and it would take the Authorization header).
out=$sout
A=https://wakeq-api-dryrun-uc\.a\.run\.app
has "reconcile job created" "gcloud scheduler jobs create http wakeq-reconcile --project $P --location $R "
has "reconcile job updated when it exists" "gcloud scheduler jobs update http wakeq-reconcile "
has "reconcile every 10 minutes by default" "create http wakeq-reconcile .* --schedule '\*/10 \* \* \* \*'"
has "reconcile calls the API's /v1/reconcile with POST" \
	"create http wakeq-reconcile .* --uri $A/v1/reconcile --http-method POST"
has "with the API token as a bearer header (create)" \
	"create http wakeq-reconcile .* --headers 'Authorization=Bearer \\\$RECONCILE_TOKEN'"
has "with the API token as a bearer header (update)" \
	"update http wakeq-reconcile .* --update-headers 'Authorization=Bearer \\\$RECONCILE_TOKEN'"
hasnt "and no OIDC token, which would take the Authorization header" "wakeq-reconcile .*--oidc"
has "gcloud prints nothing of the job it made (its headers hold the token)" \
	"create http wakeq-reconcile --project $P --location $R --format=none "
has "the token is the first of the API's secret" \
	"RECONCILE_TOKEN=.*gcloud secrets versions access latest --secret wakeq-api-token --project $P \| cut -d, -f1"
SECRET=s3cr3t-$$-token
RECONCILE_TOKEN=$SECRET cloudrun/scheduler.sh --dry-run --project $P --region $R \
	--reconcile-schedule '*/30 * * * *' >"$T/s3.out" 2>&1
out=$T/s3.out
has "reconcile schedule is configurable" "create http wakeq-reconcile .* --schedule '\*/30 \* \* \* \*'"
hasnt "a given RECONCILE_TOKEN is never printed" "$SECRET"
hasnt "nor read from the secret" "secrets versions access"
cloudrun/scheduler.sh --dry-run --project $P --reconcile-schedule off >"$T/s4.out" 2>&1
out=$T/s4.out
hasnt "--reconcile-schedule off: no reconcile job (no Postgres)" "create http wakeq-reconcile|update http wakeq-reconcile|secrets versions"
has "... and one made before is deleted" "gcloud scheduler jobs delete wakeq-reconcile --project $P --location [a-z0-9-]* --quiet"
has "... the wake job still" "create http wakeq-wake "
if API_PUBLIC=0 cloudrun/scheduler.sh --dry-run --project $P >"$T/s5.out" 2>&1; then
	not_ok "reconcile job refused with API_PUBLIC=0 (IAM wants OIDC in that header)"
else
	check "reconcile job refused with API_PUBLIC=0 (IAM wants OIDC in that header)" \
		grep -q "reconcile-schedule off" "$T/s5.out"
fi
if RECONCILE_TOKEN='a,b' cloudrun/scheduler.sh --dry-run --project $P >/dev/null 2>&1; then
	not_ok "a RECONCILE_TOKEN that is not one bearer token is refused"
else
	ok "a RECONCILE_TOKEN that is not one bearer token is refused"
fi
# Not a dry run, against a stand-in gcloud that logs its arguments: the
# real token reaches gcloud, and only its name is printed.
mkdir -p "$T/gbin"
cat >"$T/gbin/gcloud" <<'EOS'
#!/bin/sh
printf '%s\n' "$*" >>"$GCLOUD_LOG"
case "$*" in
"secrets versions access"*) printf 'tok-first-1,tok-second-2' ;;
"run services describe"*) echo "https://$4-real.a.run.app" ;;
"scheduler jobs describe"*) exit 1 ;;
esac
exit 0
EOS
chmod 755 "$T/gbin/gcloud"
if PATH=$T/gbin:$PATH GCLOUD_LOG=$T/gcloud.log cloudrun/scheduler.sh --project $P --region $R \
	>"$T/s6.out" 2>&1; then
	ok "scheduler.sh runs against a gcloud"
else
	not_ok "scheduler.sh runs against a gcloud"
	diag "$T/s6.out"
fi
check "gcloud got the secret's first token as the reconcile job's header" grep -Eq \
	"^scheduler jobs create http wakeq-reconcile .*--uri https://wakeq-api-real\.a\.run\.app/v1/reconcile .*--headers Authorization=Bearer tok-first-1$" \
	"$T/gcloud.log"
out=$T/s6.out
hasnt "the token is not printed" "tok-first|tok-second"
has "its name is" "create http wakeq-reconcile .* --headers 'Authorization=Bearer \\\$RECONCILE_TOKEN'"

# ---- shell scripts ---------------------------------------------------------
scripts=(cloudrun/*.sh container/test-images.sh tests/integration/80_deploy.sh)
if shellcheck -x "${scripts[@]}" >"$T/sc.out" 2>&1; then
	ok "shellcheck clean: ${scripts[*]}"
else
	not_ok "shellcheck clean"
	diag "$T/sc.out"
fi
# deps.sh splits its package lists on purpose (SC2086 infos): warnings up.
if shellcheck -S warning container/deps.sh >"$T/sc2.out" 2>&1; then
	ok "shellcheck clean (warnings): container/deps.sh"
else
	not_ok "shellcheck clean (warnings): container/deps.sh"
	diag "$T/sc2.out"
fi

# ---- systemd units and cron ------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	u=$T/units
	mkdir -p "$u/bin"
	for b in wakeq wakeq-worker wakeq-api; do
		printf '#!/bin/sh\nexit 0\n' >"$u/bin/$b"
		chmod 755 "$u/bin/$b"
	done
	for f in container/*.service container/*.timer; do
		sed "s|/usr/local/bin/|$u/bin/|g" "$f" >"$u/${f##*/}"
	done
	if (cd "$u" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify wakeq-api.service \
		wakeq-wake.service wakeq-wake.timer wakeq-worker@8081.service) >"$T/verify.out" 2>&1 &&
		! [ -s "$T/verify.out" ]; then
		ok "systemd-analyze verify: units clean"
	else
		not_ok "systemd-analyze verify: units clean"
		diag "$T/verify.out"
	fi
else
	not_ok "systemd-analyze present (systemd)"
fi
for f in container/wakeq-worker@.service container/wakeq-api.service container/wakeq-wake.service; do
	miss=
	for k in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes \
		CapabilityBoundingSet= KillSignal=SIGTERM; do
		grep -qx "$k" "$f" || miss+=" $k"
	done
	expect_eq "${f##*/} hardened" "" "$miss"
done
grep -q '^ExecStart=/usr/local/bin/wakeq drain$' container/wakeq-wake.service &&
	grep -q '^OnCalendar=' container/wakeq-wake.timer
check "wakeq-wake.timer runs wakeq drain" test $? -eq 0
cron=$(grep -Ev '^(#|$|[A-Z_]+=)' container/wakeq.cron)
n=$(printf '%s\n' "$cron" | wc -l)
read -r -a cf <<<"$cron"
if [ "$n" -eq 1 ] && [ "${#cf[@]}" -ge 7 ] && [[ ${cf[0]} =~ ^[0-9*/,-]+$ ]] &&
	[ "${cf[5]}" = wakeq ] && [[ $cron == *"wakeq drain"* ]]; then
	ok "wakeq.cron: one cron.d line running wakeq drain"
else
	not_ok "wakeq.cron: one cron.d line running wakeq drain ($cron)"
fi

# ---- Dockerfiles (the image test, make test-images, runs them) -----------
for img in worker api; do
	f=Dockerfile.$img
	miss=
	# trixie: hiredis 1.2 with hiredis_ssl (rediss://), FFmpeg 7.1
	grep -q '^FROM debian:trixie-slim AS build$' "$f" || miss+=" build-stage"
	[ "$(grep -c '^FROM debian:trixie-slim$' "$f")" = 1 ] || miss+=" runtime-stage"
	grep -q 'pkg-config --exists hiredis_ssl' "$f" || miss+=" tls-guard"
	grep -q 'container/deps.sh install build' "$f" || miss+=" deps-build"
	grep -q "deps.sh install $img " "$f" || miss+=" deps-$img"
	grep -q '^USER 10001:10001$' "$f" || miss+=" USER"
	grep -q '^EXPOSE 8080$' "$f" || miss+=" EXPOSE"
	grep -q '^STOPSIGNAL SIGTERM$' "$f" || miss+=" STOPSIGNAL"
	grep -q "^ENTRYPOINT \[\"/usr/local/bin/wakeq-$img\"\]$" "$f" || miss+=" ENTRYPOINT"
	grep -q '<<' "$f" && miss+=" heredoc"
	grep -Eiq '^(ENV|ARG).*(TOKEN|SECRET|PASSWORD|REDIS_URL|DATABASE_URL)' "$f" && miss+=" secret"
	expect_eq "$f: two trixie stages, hiredis_ssl required, deps.sh, non-root, 8080, SIGTERM, exec entrypoint, no secrets" "" "$miss"
done
if grep -q 'libav' <(container/deps.sh list api); then
	not_ok "api runtime set has no FFmpeg"
else
	ok "api runtime set has no FFmpeg"
fi
grep -qx '.git' .dockerignore && grep -qx 'build' .dockerignore
check ".dockerignore keeps .git and build out of the context" test $? -eq 0
