#!/usr/bin/env bash
# test-images.sh - build Dockerfile.worker and Dockerfile.api offline with
# podman and test the images for real (make test-images).
#
#   container/test-images.sh            setup (cached), build, test
#   KEEP=1 container/test-images.sh     leave the test containers behind
#
# What it does, as ../shared/notes/containers.md describes for this machine:
# installs podman/buildah/runc/debootstrap/catatonit when missing (as root),
# writes containers.conf (runc, ulimits) and storage.conf (overlay) into
# $STATE, makes the debootstrap base image docker.io/library/debian:
# trixie-slim once (rootfs tarball cached in $CACHE; the mirror of
# /etc/apt/sources.list.d/debian.sources with trixie for bookworm), builds
# both images with --pull=never, then with a redis-server on loopback and
# the containers on --network host:
#   - images: non-root user, EXPOSE 8080, STOPSIGNAL SIGTERM, no secrets in
#     the environment, no FFmpeg in the API image, every library resolves,
#     --help exits 0, sizes printed;
#   - a noop job goes API -> /wake -> worker -> done, and that worker then
#     exits 0 on its own;
#   - a sleep job is active when the worker container gets SIGTERM
#     (podman stop): the container exits 0 and the job is queued again in
#     Redis without an attempt counted;
#   - a worker container that is never woken exits 0 on its own;
#   - the API container exits 0 on SIGTERM;
#   - TLS, the Upstash shape: a redis-server that speaks only TLS and wants
#     a password, with a CA and a certificate made here (openssl CLI), the
#     URL rediss://default:PASSWORD@127.0.0.1:PORT and the CA mounted as
#     REDIS_TLS_CA_FILE: /readyz is 200, a noop job goes API -> /wake ->
#     worker -> done and lands in that server, the job's event stream
#     (SSE, the API's subscriber) sees it end; a wrong CA (the worker) or
#     the system store (the API) is refused with a clear error: the worker
#     logs it and its /readyz is 503 naming it, the API answers 503; a
#     certificate from the right CA for another host name is refused too.
# Prints "ok - ..." / "not ok - ..." and ends with "N passed, N failed";
# exits 1 on any failure, 2 when it cannot run at all. It never skips.
# Containers are named wakeq-it-<pid>-*; only those are removed on exit.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
STATE=${STATE:-/var/tmp/wakeq-images}     # podman storage, confs (cache)
CACHE=${CACHE:-/var/cache/wakeq-images}   # debootstrap rootfs tarball
RUNROOT=${RUNROOT:-/run/wakeq-images}
SUITE=trixie   # hiredis 1.2 with hiredis_ssl (rediss://), FFmpeg 7.1
BASE=docker.io/library/debian:$SUITE-slim
WORKER_IMG=localhost/wakeq-worker:test
API_IMG=localhost/wakeq-api:test
BUILD=${BUILD:-build}
export BUILD

die() { echo "test-images: $*" >&2; echo "not ok - test-images cannot run: $*"; exit 2; }
say() { echo "# $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (rootful podman, debootstrap)"

# ---- tools --------------------------------------------------------------
container/deps.sh install images >&2 || die "cannot install $(container/deps.sh list images | tr '\n' ' ')"
for tool in redis-server redis-cli curl jq; do
	command -v "$tool" >/dev/null || die "'$tool' not found (container/deps.sh install test)"
done
[ -x "$BUILD/tests/tools/freeport" ] ||
	die "'$BUILD/tests/tools/freeport' missing: run 'make tests' (make test-images does)"

# shellcheck source=tests/lib/servers.sh
. tests/lib/servers.sh
# shellcheck source=tests/lib/tap.sh
. tests/lib/tap.sh
passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }

# ---- podman configuration (scratch, not /etc/containers) ---------------
mkdir -p "$STATE" "$CACHE" "$RUNROOT" || die "cannot create $STATE, $CACHE"
hard=$(ulimit -Hn)
cat >"$STATE/containers.conf" <<EOF
# written by container/test-images.sh
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]

[engine]
# crun refuses this host's hybrid cgroup setup
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNROOT/libpod"
EOF
cat >"$STATE/storage.conf" <<EOF
# written by container/test-images.sh
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$RUNROOT/storage"
EOF
export CONTAINERS_CONF=$STATE/containers.conf
export CONTAINERS_STORAGE_CONF=$STATE/storage.conf
podman info >"$STATE/podman-info.txt" 2>&1 || { cat "$STATE/podman-info.txt" >&2; die "podman does not work"; }

# ---- the base image, made by debootstrap (once) -----------------------
# Like the official slim image: dpkg excludes docs, man pages and locales,
# apt keeps no caches, and the apt lists are empty.
tidy_rootfs() {
	local r=$1
	rm -f "$r/etc/apt/sources.list" "$r/etc/hostname" "$r/etc/resolv.conf"
	mkdir -p "$r/etc/apt/sources.list.d" "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d"
	# the host's mirror (a bookworm machine), for the image's release
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		sed -E "s/\b(bookworm|trixie)\b/$SUITE/g" /etc/apt/sources.list.d/debian.sources \
			>"$r/etc/apt/sources.list.d/debian.sources"
	else
		printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$r/etc/apt/sources.list"
	fi
	cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# slim image: files not needed in containers are never installed
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
	echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/* \
		"$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
		"$r"/usr/share/groff/* "$r"/usr/share/lintian/* "$r"/tmp/* \
		"$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
	find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	: >"$r/etc/machine-id"
}

make_base() {
	local tarball=$CACHE/$SUITE-minbase.tar root t0=$SECONDS
	if [ ! -s "$tarball" ]; then
		MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
		MIRROR=${MIRROR:-http://deb.debian.org/debian}
		root=$(mktemp -d /var/tmp/wakeq-rootfs.XXXXXX)
		say "debootstrap --variant=minbase $SUITE ($MIRROR), about a minute"
		if ! debootstrap --variant=minbase "$SUITE" "$root/rootfs" "$MIRROR" \
			>"$root/debootstrap.log" 2>&1; then
			tail -20 "$root/debootstrap.log" >&2
			rm -rf "$root"
			die "debootstrap failed"
		fi
		tidy_rootfs "$root/rootfs"
		tar --numeric-owner -C "$root/rootfs" -cf "$tarball.tmp" . &&
			mv "$tarball.tmp" "$tarball"
		rm -rf "$root"
		[ -s "$tarball" ] || die "cannot write $tarball"
	fi
	podman import --change 'CMD ["bash"]' "$tarball" "$BASE" >/dev/null ||
		die "podman import of $tarball failed"
	say "base image $BASE made in $((SECONDS - t0)) s"
}
t_start=$SECONDS
podman image exists "$BASE" || make_base

# ---- build ---------------------------------------------------------------
build_image() { # build_image DOCKERFILE TAG
	local t0=$SECONDS log=$STATE/build-${1#Dockerfile.}.log
	if timeout 1200 podman build --pull=never --network host --layers \
		-f "$1" -t "$2" . >"$log" 2>&1; then
		ok "$1 builds offline ($((SECONDS - t0)) s)"
		return 0
	fi
	not_ok "$1 builds offline"
	tail -40 "$log" | sed 's/^/# /'
	return 1
}
built=1
build_image Dockerfile.worker "$WORKER_IMG" || built=0
build_image Dockerfile.api "$API_IMG" || built=0
if [ "$built" = 0 ]; then
	echo "$passed passed, $failed failed"
	exit 1
fi

# ---- static checks on the images -----------------------------------------
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
inspect_image() { # inspect_image IMAGE BINARY
	local img=$1 bin=$2 user env size
	size=$(podman image inspect --format '{{.Size}}' "$img")
	say "$img: $(mb "$size") MB, $(mb $((size - base_size))) MB over the base ($(mb "$base_size") MB)," \
		"$(podman image inspect --format '{{len .RootFS.Layers}}' "$img") layers"
	user=$(podman image inspect --format '{{.Config.User}}' "$img")
	case "$user" in
	'' | root | 0 | 0:*) not_ok "$img runs as non-root (user '$user')" ;;
	*) ok "$img runs as non-root (user $user)" ;;
	esac
	expect_port=$(podman image inspect --format '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}' "$img")
	case "$expect_port" in
	*8080/tcp*) ok "$img exposes 8080" ;;
	*) not_ok "$img exposes 8080 (got '$expect_port')" ;;
	esac
	expect_eq "$img stop signal" SIGTERM "$(podman image inspect --format '{{.Config.StopSignal}}' "$img")"
	expect_eq "$img entrypoint is the binary (exec form, no shell)" "[/usr/local/bin/$bin]" \
		"$(podman image inspect --format '{{.Config.Entrypoint}}' "$img")"
	env=$(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$img")
	if echo "$env" | grep -Eiq '^[A-Z_]*(TOKEN|SECRET|PASSWORD|KEY|DATABASE_URL|REDIS_URL)[A-Z_]*='; then
		not_ok "$img has no secrets in its environment: $(echo "$env" | tr '\n' ' ')"
	else
		ok "$img has no secrets or service URLs in its environment"
	fi
	if podman run --rm --network none --entrypoint /usr/bin/ldd "$img" \
		"/usr/local/bin/$bin" >"$STATE/ldd-$bin.txt" 2>&1 &&
		! grep -q 'not found' "$STATE/ldd-$bin.txt"; then
		ok "$img: every library of $bin resolves"
	else
		not_ok "$img: every library of $bin resolves"
		sed 's/^/# /' "$STATE/ldd-$bin.txt"
	fi
	# libpq and libcurl are not linked but loaded on first use (base/dl.h):
	# they and their own libraries must be in the image all the same
	for so in libpq.so.5 libcurl.so.4; do
		if podman run --rm --network none --entrypoint /bin/sh "$img" -c \
			"p=\$(/sbin/ldconfig -p | sed -n 's/.*$so .*=> //p' | head -1) &&
			 [ -n \"\$p\" ] && /usr/bin/ldd \"\$p\"" >"$STATE/ldd-$so.txt" 2>&1 &&
			! grep -q 'not found' "$STATE/ldd-$so.txt"; then
			ok "$img: $so (loaded on first use) and its libraries resolve"
		else
			not_ok "$img: $so (loaded on first use) and its libraries resolve"
			sed 's/^/# /' "$STATE/ldd-$so.txt"
		fi
	done
	if timeout 30 podman run --rm --network none "$img" --help >"$STATE/help-$bin.txt" 2>&1; then
		ok "$img: $bin --help exits 0 as the non-root user"
	else
		not_ok "$img: $bin --help exits 0 as the non-root user"
		tail -5 "$STATE/help-$bin.txt" | sed 's/^/# /'
	fi
}
inspect_image "$WORKER_IMG" wakeq-worker
inspect_image "$API_IMG" wakeq-api
# trixie: 16.5 MB (libcurl4t64, libpq5 and libmicrohttpd12t64 bring
# gnutls, krb5, ldap, ssh2, nghttp2/3; ca-certificates brings openssl)
api_over=$(($(podman image inspect --format '{{.Size}}' "$API_IMG") - base_size))
if [ "$api_over" -lt 20000000 ]; then
	ok "API image adds under 20 MB to the base ($(mb "$api_over") MB)"
else
	not_ok "API image adds under 20 MB to the base ($(mb "$api_over") MB)"
fi
if podman run --rm --network none --entrypoint /usr/bin/find "$API_IMG" / -xdev \
	-name 'libavcodec*' -print -quit 2>/dev/null | grep -q .; then
	not_ok "API image carries no FFmpeg libraries"
else
	ok "API image carries no FFmpeg libraries"
fi

# ---- running the containers ------------------------------------------------
RUN_ID=wakeq-it-$$
started=()
cleanup_containers() {
	local c
	[ "${KEEP:-0}" = 1 ] && return 0
	for c in "${started[@]}"; do
		podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
	done
}
on_exit cleanup_containers

# run_ctr NAME IMAGE [-v=SRC:DST:ro]... ENV...: podman run -d on the host
# network.
run_ctr() {
	local name=$RUN_ID-$1 img=$2 args=() e
	shift 2
	for e in "$@"; do
		case "$e" in
		-v=*) args+=(-v "${e#-v=}") ;;
		*) args+=(-e "$e") ;;
		esac
	done
	# Read-only root: only /tmp and the worker's DATA_DIR are writable.
	[ "$img" = "$WORKER_IMG" ] &&
		args+=(--tmpfs "/var/lib/wakeq:rw,mode=0750,U")
	started+=("$name")
	podman run -d --name "$name" --network host --read-only \
		--tmpfs /tmp "${args[@]}" "$img" >/dev/null
}
logs_of() { podman logs "$RUN_ID-$1" 2>&1 | tail -"${2:-30}" | sed "s/^/# $1: /"; }
state_of() { podman inspect --format '{{.State.Status}}' "$RUN_ID-$1" 2>/dev/null; }
exit_of() { podman inspect --format '{{.State.ExitCode}}' "$RUN_ID-$1" 2>/dev/null; }
exited() { [ "$(state_of "$1")" = exited ]; }
http_ok() { curl -fs -o /dev/null --max-time 1 "$1"; }
# new_ports: fresh ports for a worker and an API container (WPORT, APORT)
# and their URLs (W, API)
new_ports() {
	WPORT=$($FREEPORT)
	APORT=$($FREEPORT)
	W=http://127.0.0.1:$WPORT
	API=http://127.0.0.1:$APORT
}
# answers NAME WHAT URL: the check that container NAME (WHAT: api, worker)
# answers GET URL/healthz within 15 s; its state and log when not.
answers() {
	if wait_until 15 http_ok "$3/healthz"; then
		ok "$2 container answers GET /healthz"
	else
		not_ok "$2 container answers GET /healthz (state $(state_of "$1"))"
		logs_of "$1"
	fi
}

start_redis
t_tmpdir
API_TOKEN=it-api-token-$$
WAKE_TOKEN=it-wake-token-$$
WPORT=$($FREEPORT)
APORT=$($FREEPORT)
IPORT=$($FREEPORT)
say "redis $REDIS_URL, worker :$WPORT, api :$APORT, idle worker :$IPORT"

# A worker that is never woken: it must go away by itself.
run_ctr idle "$WORKER_IMG" PORT="$IPORT" REDIS_URL="$REDIS_URL" QUEUES=idle \
	IDLE_TIMEOUT=1 WAKE_TOKEN="$WAKE_TOKEN" || not_ok "idle worker container starts"
t_idle=$SECONDS

run_ctr api "$API_IMG" PORT="$APORT" REDIS_URL="$REDIS_URL" \
	API_TOKEN="$API_TOKEN" WAKE_URL="http://127.0.0.1:$WPORT/wake" \
	WAKE_TOKEN="$WAKE_TOKEN" || not_ok "api container starts"
API=http://127.0.0.1:$APORT
answers api api "$API"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
	-H 'Content-Type: application/json' -d '{"type":"noop","payload":{}}' "$API/v1/jobs")
expect_eq "api refuses POST /v1/jobs without the API_TOKEN given at run time" 401 "$code"

# post_job BODY: prints the job id.
post_job() {
	curl -s --max-time 10 -X POST -H "Authorization: Bearer $API_TOKEN" \
		-H 'Content-Type: application/json' -d "$1" "$API/v1/jobs" | jq -r '.id // empty'
}
job_field() { # job_field ID FIELD
	curl -s --max-time 5 -H "Authorization: Bearer $API_TOKEN" "$API/v1/jobs/$1" |
		jq -r ".$2 // empty"
}
job_is() { [ "$(job_field "$1" status)" = "$2" ]; }

# 1. API -> /wake -> worker -> done. The worker container is up (as the
# platform would start it for the request) but not draining: only the
# API's wake call makes it take the job.
run_ctr w1 "$WORKER_IMG" PORT="$WPORT" REDIS_URL="$REDIS_URL" QUEUES=default \
	IDLE_TIMEOUT=3 CONCURRENCY=2 WAKE_TOKEN="$WAKE_TOKEN" || not_ok "worker container starts"
W=http://127.0.0.1:$WPORT
answers w1 worker "$W"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "$W/wake?wait=0")
expect_eq "worker refuses POST /wake without the WAKE_TOKEN given at run time" 401 "$code"
uid=$(podman top "$RUN_ID-w1" huser 2>/dev/null | sed -n 2p)
case "$uid" in
10001) ok "worker process runs as uid 10001" ;;
*) not_ok "worker process runs as uid 10001 (got '$uid')" ;;
esac
pid1=$(podman top "$RUN_ID-w1" pid comm 2>/dev/null | awk '$1 == 1 { print $2 }')
expect_eq "worker binary is PID 1" wakeq-worker "$pid1"

id1=$(post_job '{"type":"noop","payload":{}}')
if [ -n "$id1" ]; then
	ok "api accepts a noop job ($id1)"
	if wait_until 20 job_is "$id1" "done"; then
		ok "noop job goes api -> wake -> worker container -> done"
	else
		not_ok "noop job goes api -> wake -> worker container -> done (status '$(job_field "$id1" status)')"
		logs_of api
		logs_of w1
	fi
else
	not_ok "api accepts a noop job"
	logs_of api
fi
if wait_until 30 exited w1; then
	expect_eq "woken worker container exits 0 on its own once idle" 0 "$(exit_of w1)"
else
	not_ok "woken worker container exits 0 on its own once idle (still $(state_of w1))"
	logs_of w1
fi

# 2. SIGTERM mid-job: re-queued at once, no attempt counted, exit 0.
run_ctr w2 "$WORKER_IMG" PORT="$WPORT" REDIS_URL="$REDIS_URL" QUEUES=default \
	IDLE_TIMEOUT=60 CONCURRENCY=1 SHUTDOWN_GRACE=1 WAKE_TOKEN="$WAKE_TOKEN" ||
	not_ok "second worker container starts"
wait_until 15 http_ok "$W/healthz" || true
id2=$(post_job '{"type":"sleep","payload":{"ms":120000},"max_attempts":5}')
if [ -n "$id2" ] && wait_until 20 job_is "$id2" active; then
	ok "sleep job is active in the worker container"
	t0=$(date +%s%N)
	podman stop -t 20 "$RUN_ID-w2" >/dev/null 2>&1
	ms=$((($(date +%s%N) - t0) / 1000000))
	expect_eq "worker container exits 0 on SIGTERM mid-job (podman stop, ${ms} ms)" 0 "$(exit_of w2)"
	if [ "$ms" -lt 15000 ]; then
		ok "worker container stops within its grace, not killed (${ms} ms)"
	else
		not_ok "worker container stops within its grace, not killed (${ms} ms)"
	fi
	expect_eq "job is queued again after SIGTERM" queued "$(job_field "$id2" status)"
	score=$(rcli ZSCORE 'wakeq:{default}:pending' "$id2")
	if [ -n "$score" ] && [ -z "$(rcli ZSCORE 'wakeq:{default}:active' "$id2")" ]; then
		ok "job is back in wakeq:{default}:pending and out of :active"
	else
		not_ok "job is back in wakeq:{default}:pending and out of :active"
	fi
	# A fresh job that was only interrupted has used no attempt.
	expect_eq "SIGTERM re-queue counts no attempt" 0 "$(job_field "$id2" attempts)"
else
	not_ok "sleep job is active in the worker container (status '$(job_field "${id2:-none}" status)')"
	logs_of w2
fi

# 3. The worker nobody woke has gone by now.
if wait_until $((30 - (SECONDS - t_idle) > 1 ? 30 - (SECONDS - t_idle) : 1)) exited idle; then
	expect_eq "idle worker container (IDLE_TIMEOUT=1) exits 0 on its own" 0 "$(exit_of idle)"
else
	not_ok "idle worker container (IDLE_TIMEOUT=1) exits 0 on its own (still $(state_of idle))"
	logs_of idle
fi

# 4. A media job in the worker container: the FFmpeg plugin beside the
# binary loads on the first media job. The clip is made here and mounted.
mkdir -p "$T/media/in"
chmod 755 "$T/media" "$T/media/in"
if "$BIN/tests/tools/mkmedia" "$T/media/in/clip.mp4" -d 2 -s 160x120 >/dev/null 2>&1; then
	chmod 644 "$T/media/in/clip.mp4"
	MPORT=$($FREEPORT)
	started+=("$RUN_ID-media")
	podman run -d --name "$RUN_ID-media" --network host --read-only --tmpfs /tmp \
		-v "$T/media:/media:ro" -e DATA_DIR=/media -e PORT="$MPORT" \
		-e REDIS_URL="$REDIS_URL" -e QUEUES=media -e IDLE_TIMEOUT=2 \
		"$WORKER_IMG" >/dev/null || not_ok "media worker container starts"
	mid=$(REDIS_URL=$REDIS_URL "$BIN/wakeq" enqueue media.probe --queue media \
		--payload '{"input":"file://in/clip.mp4"}')
	wait_until 15 http_ok "http://127.0.0.1:$MPORT/healthz" || true
	curl -s --max-time 60 -X POST "http://127.0.0.1:$MPORT/wake" >/dev/null
	got=$(REDIS_URL=$REDIS_URL "$BIN/wakeq" status --queue media "$mid" |
		jq -r '"\(.status) \(.result.streams[0].width)x\(.result.streams[0].height)"')
	expect_eq "a media.probe job runs in the worker container (plugin loaded)" "done 160x120" "$got"
	[ "$got" = "done 160x120" ] || logs_of media
else
	not_ok "make a test clip for the media job"
fi

# 5. The API on SIGTERM.
if [ "$(state_of api)" = running ]; then
	podman stop -t 10 "$RUN_ID-api" >/dev/null 2>&1
	expect_eq "api container exits 0 on SIGTERM" 0 "$(exit_of api)"
else
	not_ok "api container exits 0 on SIGTERM (was $(state_of api))"
fi

# 6. TLS to Redis, the Upstash shape: only TLS, a password for the user
# "default", a certificate from a CA made here (mounted read-only, named by
# REDIS_TLS_CA_FILE). Second CA: a wrong one; a certificate from the right
# CA for another host name: the wrong host.
tls=$T/tls
mkdir -p "$tls"
chmod 755 "$tls"
mkcert() { # mkcert CA NAME SAN: NAME.crt/.key signed by CA
	openssl req -newkey rsa:2048 -nodes -keyout "$tls/$2.key" -out "$tls/$2.csr" \
		-subj "/CN=$2" 2>/dev/null &&
		printf 'subjectAltName=%s\n' "$3" >"$tls/$2.ext" &&
		openssl x509 -req -in "$tls/$2.csr" -CA "$tls/$1.crt" -CAkey "$tls/$1.key" \
			-CAcreateserial -out "$tls/$2.crt" -days 2 -extfile "$tls/$2.ext" 2>/dev/null
}
mkca() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/$1.key" -out "$tls/$1.crt" \
		-days 2 -subj "/CN=wakeq test $1" 2>/dev/null
}
PW=$(openssl rand -hex 16)
tls_server() { # tls_server CERT VAR: a TLS-only redis-server, its port in VAR
	local port
	port=$($FREEPORT)
	redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 \
		--tls-cert-file "$tls/$1.crt" --tls-key-file "$tls/$1.key" \
		--tls-ca-cert-file "$tls/ca.crt" --tls-auth-clients no --requirepass "$PW" \
		--save '' --appendonly no --dir "$tls" --daemonize no --loglevel warning \
		--logfile "$tls/redis-$1.log" >/dev/null 2>&1 &
	on_exit "kill_wait $!"
	printf -v "$2" %s "$port"
}
tcli() { redis-cli --tls --cacert "$tls/ca.crt" -p "$TLS_PORT" --no-auth-warning -a "$PW" "$@"; }
if mkca ca && mkca other && mkcert ca server 'IP:127.0.0.1,DNS:localhost' &&
	mkcert ca elsewhere 'DNS:redis.invalid'; then
	chmod 644 "$tls"/*.crt
	ok "a CA, a wrong CA and server certificates made with openssl"
else
	not_ok "a CA, a wrong CA and server certificates made with openssl"
fi
tls_server server TLS_PORT
tls_server elsewhere HOST_PORT
tls_up() { # tls_up PORT [NAME]: PONG over TLS with the password
	redis-cli --tls --cacert "$tls/ca.crt" ${2:+--sni "$2"} -p "$1" --no-auth-warning \
		-a "$PW" ping 2>/dev/null | grep -q PONG
}
# (both listening before more ports are picked: freeport races a server
# that has its port but has not bound it yet)
if wait_until 5 tls_up "$TLS_PORT" && wait_until 5 tls_up "$HOST_PORT" redis.invalid; then
	ok "TLS-only redis-servers with requirepass answer redis-cli --tls"
else
	not_ok "TLS-only redis-servers with requirepass answer redis-cli --tls"
	diag "$tls/redis-server.log" "$tls/redis-elsewhere.log"
fi
expect_eq "redis-cli without the password is refused by the TLS server" NOAUTH \
	"$(redis-cli --tls --cacert "$tls/ca.crt" -p "$TLS_PORT" ping 2>&1 | awk '{ print $1; exit }')"
TLS_URL="rediss://default:$PW@127.0.0.1:$TLS_PORT"
CA_MOUNT="-v=$tls/ca.crt:/etc/wakeq/redis-ca.crt:ro"
WRONG_MOUNT="-v=$tls/other.crt:/etc/wakeq/redis-ca.crt:ro"
CA_ENV=REDIS_TLS_CA_FILE=/etc/wakeq/redis-ca.crt
new_ports
run_ctr tls-w "$WORKER_IMG" "$CA_MOUNT" "$CA_ENV" PORT="$WPORT" REDIS_URL="$TLS_URL" \
	QUEUES=default IDLE_TIMEOUT=3 WAKE_TOKEN="$WAKE_TOKEN" || not_ok "TLS worker container starts"
run_ctr tls-api "$API_IMG" "$CA_MOUNT" "$CA_ENV" PORT="$APORT" REDIS_URL="$TLS_URL" \
	API_TOKEN="$API_TOKEN" WAKE_URL="$W/wake" WAKE_TOKEN="$WAKE_TOKEN" ||
	not_ok "TLS api container starts"
wait_until 15 http_ok "$W/healthz" || true
wait_until 15 http_ok "$API/healthz" || true
body=$(curl -s --max-time 5 "$W/readyz")
expect_eq "worker /readyz over rediss:// with the password" '{"status":"ready","redis":"ok"}' \
	"$(jq -c . <<<"$body" 2>/dev/null || echo "$body")"
expect_eq "api /readyz over rediss:// with the password" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/readyz")"
id3=$(post_job '{"type":"noop","payload":{}}')
if [ -n "$id3" ] && wait_until 20 job_is "$id3" "done"; then
	ok "over TLS: noop job goes api -> wake -> worker container -> done ($id3)"
else
	not_ok "over TLS: noop job goes api -> wake -> worker container -> done (status '$(job_field "${id3:-none}" status)')"
	logs_of tls-api
	logs_of tls-w
fi
expect_eq "the job is in the TLS server" "done" "$(tcli HGET "wakeq:{default}:job:${id3:-none}" status 2>/dev/null)"
expect_eq "and not in the plain one" "" "$(rcli HGET "wakeq:{default}:job:${id3:-none}" status)"

# The event stream: its subscriber has its own connection, which must make
# the same TLS handshake with the password. A 3 s job is active when the
# stream opens; only a published message can end the stream.
id4=$(post_job '{"type":"sleep","payload":{"ms":3000}}')
if [ -n "$id4" ] && wait_until 20 job_is "$id4" active; then
	curl -sN --max-time 30 -H "Authorization: Bearer $API_TOKEN" \
		"$API/v1/jobs/$id4/events" >"$tls/sse.txt" 2>/dev/null &
	sse=$!
	on_exit "kill_wait $sse"
	if wait_until 20 grep -q '^event: end' "$tls/sse.txt"; then
		expect_eq "over TLS: the event stream opens with the state (active)" "event: state active" \
			"$(grep -m1 '^event:' "$tls/sse.txt") $(grep -m1 -A3 '^event: state' "$tls/sse.txt" | sed -n 's/^data: //p' | head -1 | jq -r .status)"
		expect_eq "over TLS: the event stream ends with the done job (the subscriber's message)" "done" \
			"$(grep -A1 '^event: end' "$tls/sse.txt" | sed -n 's/^data: //p' | jq -r .status)"
	else
		not_ok "over TLS: the event stream of a job ends when the worker finishes it"
		diag "$tls/sse.txt"
		logs_of tls-api
	fi
else
	not_ok "over TLS: a sleep job is active (status '$(job_field "${id4:-none}" status)')"
	logs_of tls-w
fi
if wait_until 30 exited tls-w; then
	expect_eq "TLS worker container exits 0 on its own once idle" 0 "$(exit_of tls-w)"
else
	not_ok "TLS worker container exits 0 on its own once idle (still $(state_of tls-w))"
fi
podman stop -t 10 "$RUN_ID-tls-api" >/dev/null 2>&1

# A wrong CA (the worker) and the system store (the API) are refused.
njobs=$(tcli KEYS 'wakeq:{default}:job:*' 2>/dev/null | wc -l)
new_ports
run_ctr bad-w "$WORKER_IMG" "$WRONG_MOUNT" "$CA_ENV" PORT="$WPORT" REDIS_URL="$TLS_URL" \
	QUEUES=default IDLE_TIMEOUT=2 WAKE_TOKEN="$WAKE_TOKEN" || not_ok "worker container with a wrong CA starts"
run_ctr bad-api "$API_IMG" PORT="$APORT" REDIS_URL="$TLS_URL" API_TOKEN="$API_TOKEN" \
	WAKE_URL="$W/wake" WAKE_TOKEN="$WAKE_TOKEN" || not_ok "api container with the system CA store starts"
wait_until 15 http_ok "$W/healthz" || true
wait_until 15 http_ok "$API/healthz" || true
code=$(curl -s -o "$tls/readyz.json" -w '%{http_code}' --max-time 10 "$W/readyz")
msg=$(jq -r .redis "$tls/readyz.json" 2>/dev/null)
expect_eq "wrong CA: worker /readyz is 503" 503 "$code"
check "wrong CA: and names the refusal ($msg)" contains "$msg" "certificate verify failed"
curl -s -o /dev/null --max-time 5 -X POST -H "Authorization: Bearer $WAKE_TOKEN" "$W/wake?wait=0"
if wait_until 10 sh -c "podman logs '$RUN_ID-bad-w' 2>&1 | grep -q 'certificate verify failed'"; then
	ok "wrong CA: the woken worker logs the refusal"
	podman logs "$RUN_ID-bad-w" 2>&1 | grep -m1 'certificate verify failed' | sed 's/^/# /'
else
	not_ok "wrong CA: the woken worker logs the refusal"
	logs_of bad-w
fi
podman stop -t 10 "$RUN_ID-bad-w" >/dev/null 2>&1
code=$(curl -s -o "$tls/post.json" -w '%{http_code}' --max-time 10 -X POST \
	-H "Authorization: Bearer $API_TOKEN" -H 'Content-Type: application/json' \
	-d '{"type":"noop","payload":{}}' "$API/v1/jobs")
expect_eq "system CA store: the api answers POST /v1/jobs with 503 ($(jq -c .error "$tls/post.json" 2>/dev/null))" 503 "$code"
expect_eq "system CA store: api /readyz is 503" 503 \
	"$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$API/readyz")"
expect_eq "nothing reached the TLS server from the refused clients" "$njobs" \
	"$(tcli KEYS 'wakeq:{default}:job:*' 2>/dev/null | wc -l)"
podman stop -t 10 "$RUN_ID-bad-api" >/dev/null 2>&1

# The right CA, but a certificate for another host name.
WPORT=$($FREEPORT)
run_ctr host-w "$WORKER_IMG" "$CA_MOUNT" "$CA_ENV" PORT="$WPORT" \
	REDIS_URL="rediss://default:$PW@127.0.0.1:$HOST_PORT" QUEUES=default IDLE_TIMEOUT=2 ||
	not_ok "worker container for the wrong host starts"
wait_until 15 http_ok "http://127.0.0.1:$WPORT/healthz" || true
code=$(curl -s -o "$tls/host.json" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$WPORT/readyz")
expect_eq "a certificate for another host name is refused: /readyz 503 ($(jq -r .redis "$tls/host.json" 2>/dev/null))" 503 "$code"
podman stop -t 10 "$RUN_ID-host-w" >/dev/null 2>&1

say "test-images took $((SECONDS - t_start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
