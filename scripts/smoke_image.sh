#!/usr/bin/env bash
# CI (.ci/run): build the control plane's and the worker agent's images, then run the control plane's image
# as docker-compose.yml does, with the commands read from docker-compose.yml (scripts/compose_command.py),
# against the CI PostgreSQL (a database of its own) and Redis:
#   - the `migrate` service, twice (a restarted stack runs it again);
#   - `manage.py check --deploy` with production settings (.env.example, filled in);
#   - the `web` service answering /api/version/ (and its healthcheck, static files, the HTTPS redirect);
#   - the `worker` and `beat` services starting (and their healthchecks).
# No Docker engine here and Docker Hub is out of reach: podman builds the Dockerfiles (chroot isolation)
# FROM a local Debian base made with debootstrap once and cached, and `chroot` runs the image's files
# (`podman run` cannot: the sandbox forbids setrlimit). Needs root, as CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
CACHE_DIR=${INVENTIV_CI_CACHE:-/var/cache/inventiv-ci}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SMOKE_DB=${SMOKE_DB:-inventiv_smoke}
SMOKE_REDIS_URL=${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/8}
APP_UID=10001  # the images' `inventiv` user
READY_S=90     # for web, worker and beat to come up
HSTS_S=3600

WORK=$(mktemp -d /tmp/inventiv-smoke.XXXXXX)
MOUNTED=()
MOUNTS=()
PIDS=()
log() { echo "smoke_image: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
  local pid mount image
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -R "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || true; done
  for image in "${MOUNTED[@]}"; do podman image unmount "$image" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ensure_tools() {
  command -v podman >/dev/null && command -v debootstrap >/dev/null && return
  log "installing podman and debootstrap"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman debootstrap >/dev/null
}

# Debian bookworm with Python 3.11 and venv, standing in for python:3.11-slim-bookworm. pip reaches PyPI
# through this machine's network, so the base trusts the certificate authorities this machine trusts, and
# the cache is keyed by them.
ensure_base() {
  local cas=/etc/ssl/certs/ca-certificates.crt key tarball rootfs
  key=$(sha256sum "$cas" | cut -c1-12)
  BASE_IMAGE=localhost/inventiv-ci-base:bookworm-py311-$key
  podman image exists "$BASE_IMAGE" && return
  tarball=$CACHE_DIR/debian-bookworm-py311-$key.tar
  if [ ! -s "$tarball" ]; then
    log "building the Debian base with debootstrap (once: cached in $CACHE_DIR)"
    mkdir -p "$CACHE_DIR"
    rootfs=$(mktemp -d /tmp/inventiv-base.XXXXXX)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
      "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    cp "$cas" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  podman import --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" "$tarball" "$BASE_IMAGE" >/dev/null 2>&1
}

# build TAG DOCKERFILE: prints the image's id (the tag may be moved meanwhile by a build beside this one).
# The image the tag named before is removed, unless still in use: one image per tag stays on disk, and its
# layers are the cache of the next build.
build() {
  local name=${1##*/} previous id
  previous=$(podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true)
  log "building $1 from $2"
  podman build --isolation chroot --build-arg BASE_IMAGE="$BASE_IMAGE" -f "$2" -t "$1" \
    --iidfile "$WORK/$name.iid" . >"$WORK/build-$name.log" 2>&1 || { tail -40 "$WORK/build-$name.log"; fail "podman build $2"; }
  id=$(cat "$WORK/$name.iid")
  if [ -n "$previous" ] && [ "${id#sha256:}" != "$previous" ]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
  echo "$id"
}

# mount_image ID: sets ROOT to the image's files, read-only, with a writable /app/var and /tmp, /dev and /proc.
mount_image() {
  local root
  root=$(podman image mount "$1")
  ROOT=$root
  MOUNTED+=("$1")
  mkdir -p "$WORK/var" "$WORK/tmp"
  chown "$APP_UID:$APP_UID" "$WORK/var"
  chmod 1777 "$WORK/tmp"
  if [ -d "$root/app/var" ]; then mount --bind "$WORK/var" "$root/app/var" && MOUNTS+=("$root/app/var"); fi
  mount --bind "$WORK/tmp" "$root/tmp" && MOUNTS+=("$root/tmp")
  mount --rbind /dev "$root/dev" && MOUNTS+=("$root/dev")
  mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
}

# in_image ROOT COMMAND...: COMMAND as the image's user, in its working directory, with the image's
# environment, the production settings, and whatever EXTRA_ENV adds.
in_image() {
  local root=$1
  shift
  chroot --userspec="$APP_UID:$APP_UID" "$root" /usr/bin/env -i -C "$WORKDIR" "${IMAGE_ENV[@]}" \
    "${PRODUCTION_ENV[@]}" "${EXTRA_ENV[@]}" "$@"
}

# start_in_image LOG ROOT COMMAND...: in_image in the background, its output in LOG. The subshell becomes
# the command (exec), so that the pid kept in PIDS is the command's and cleanup stops the command itself.
start_in_image() {
  local logfile=$1
  shift
  (exec > "$logfile" 2>&1; in_image_exec "$@") &
  PIDS+=($!)
}
in_image_exec() {
  local root=$1
  shift
  exec chroot --userspec="$APP_UID:$APP_UID" "$root" /usr/bin/env -i -C "$WORKDIR" "${IMAGE_ENV[@]}" \
    "${PRODUCTION_ENV[@]}" "${EXTRA_ENV[@]}" "$@"
}

# compose SERVICE [--healthcheck]: sets ARGV to the service's command (or healthcheck) in docker-compose.yml.
compose() {
  local out
  out=$("$PYTHON" scripts/compose_command.py "$@" --env-file "$WORK/production.env") || fail "compose_command $*"
  mapfile -t ARGV <<<"$out"
}

wait_until() {  # wait_until COMMAND...: whether COMMAND succeeds within READY_S
  local deadline=$((SECONDS + READY_S))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# The production settings: .env.example as an operator fills it in, the CI database and Redis in place of
# compose's, and HSTS turned on with its options (each opt-in, README "HTTPS"), so that check --deploy has
# nothing left to report.
write_production_env() {
  {
    grep -E '^[A-Z_][A-Z0-9_]*=' .env.example
    echo "SECRET_KEY=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')"
    echo "INVENTIV_ENCRYPTION_KEYS=$("$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    echo "POSTGRES_PASSWORD=unused-compose-only"
    echo "DATABASE_URL=postgres://postgres@127.0.0.1:5432/$SMOKE_DB"
    echo "REDIS_URL=$SMOKE_REDIS_URL"
    echo "INVENTIV_HSTS_SECONDS=$HSTS_S"
    echo "INVENTIV_HSTS_INCLUDE_SUBDOMAINS=1"
    echo "INVENTIV_HSTS_PRELOAD=1"
  } >"$WORK/production.env"
  mapfile -t PRODUCTION_ENV < <(grep -E '^[A-Z_][A-Z0-9_]*=' "$WORK/production.env")
}

http_status() {  # http_status URL [curl options...]
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url"
}

smoke_control_plane() {
  local image=$1 root port version
  mount_image "$image"
  root=$ROOT
  mapfile -t IMAGE_ENV < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" | grep .)
  WORKDIR=$(podman image inspect --format '{{.Config.WorkingDir}}' "$image")
  EXTRA_ENV=()
  write_production_env
  PGOPTIONS=--client-min-messages=warning psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $SMOKE_DB WITH (FORCE)" \
    -c "CREATE DATABASE $SMOKE_DB" >/dev/null

  compose migrate
  log "migrate, as docker-compose.yml's migrate service: ${ARGV[*]}"
  in_image "$root" "${ARGV[@]}" >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; fail "migrate"; }
  grep -q "Created admin user" "$WORK/migrate.log" || { cat "$WORK/migrate.log"; fail "migrate created no admin"; }
  in_image "$root" "${ARGV[@]}" >"$WORK/migrate-again.log" 2>&1 || { cat "$WORK/migrate-again.log"; fail "migrate, run again"; }

  log "manage.py check --deploy with the production settings"
  in_image "$root" python manage.py check --deploy --fail-level WARNING || fail "check --deploy"

  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  EXTRA_ENV=("UVICORN_HOST=127.0.0.1" "UVICORN_PORT=$port")  # loopback only, on a free port
  compose web
  log "web, as docker-compose.yml's web service: ${ARGV[*]} (port $port)"
  start_in_image "$WORK/web.log" "$root" "${ARGV[@]}"
  compose web --healthcheck
  wait_until in_image "$root" "${ARGV[@]}" || { cat "$WORK/web.log"; fail "web's healthcheck (${ARGV[*]})"; }
  version=$(curl -fsS --max-time 10 -H "Host: inventiv.example.com" -H "X-Forwarded-Proto: https" \
    "http://127.0.0.1:$port/api/version/") || fail "GET /api/version/"
  [ "$version" = "{\"version\":\"$(cat VERSION)\"}" ] || fail "/api/version/ answered $version"
  [ "$(http_status "http://127.0.0.1:$port/static/css/inventiv.css" -H "Host: inventiv.example.com" \
    -H "X-Forwarded-Proto: https")" = 200 ] || fail "static files are not served"
  [ "$(http_status "http://127.0.0.1:$port/api/version/" -H "Host: inventiv.example.com")" = 301 ] \
    || fail "plain HTTP is not redirected to HTTPS"
  [ "$(http_status "http://127.0.0.1:$port/api/version/" -H "Host: elsewhere.example.org" \
    -H "X-Forwarded-Proto: https")" = 400 ] || fail "a Host outside ALLOWED_HOSTS is answered"
  log "web answers /api/version/ with $version"

  EXTRA_ENV=("HOSTNAME=$(hostname)")  # the worker's healthcheck names it celery@$HOSTNAME
  compose worker
  log "worker, as docker-compose.yml's worker service: ${ARGV[*]}"
  start_in_image "$WORK/worker.log" "$root" "${ARGV[@]}"
  wait_until grep -q " ready." "$WORK/worker.log" || { cat "$WORK/worker.log"; fail "the worker is not ready"; }
  compose worker --healthcheck
  in_image "$root" "${ARGV[@]}" >/dev/null 2>&1 || { cat "$WORK/worker.log"; fail "worker's healthcheck"; }

  compose beat
  log "beat, as docker-compose.yml's beat service: ${ARGV[*]}"
  start_in_image "$WORK/beat.log" "$root" "${ARGV[@]}"
  compose beat --healthcheck
  wait_until in_image "$root" "${ARGV[@]}" || { cat "$WORK/beat.log"; fail "beat's healthcheck (${ARGV[*]})"; }
  grep -q "beat: Starting" "$WORK/beat.log" || { cat "$WORK/beat.log"; fail "beat did not start"; }
}

smoke_agent() {
  local image=$1 root
  mount_image "$image"
  root=$ROOT
  mapfile -t IMAGE_ENV < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" | grep .)
  WORKDIR=$(podman image inspect --format '{{.Config.WorkingDir}}' "$image")
  PRODUCTION_ENV=()
  EXTRA_ENV=()
  in_image "$root" python -m worker_agent --help >/dev/null || fail "the agent's image cannot start the agent"
  log "the agent's image starts the agent (python -m worker_agent --help)"
}

ensure_tools
ensure_base
CONTROL_PLANE=$(build localhost/inventiv:ci Dockerfile)
AGENT=$(build localhost/inventiv-agent:ci worker_agent/Dockerfile)
smoke_control_plane "$CONTROL_PLANE"
smoke_agent "$AGENT"
log "passed"
