#!/usr/bin/env bash
# Start web (uvicorn), Celery worker and Celery beat on the embedded defaults. A child that exits is started
# again after a delay that doubles while it keeps failing (logged); Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export INVENTIV_PUBLIC_URL=${INVENTIV_PUBLIC_URL:-http://$HOST:$PORT}
export INVENTIV_MOCK_RUNTIME=${INVENTIV_MOCK_RUNTIME:-process}  # each Mock instance: a real agent + simulator
RESTART_FIRST_S=${RESTART_FIRST_S:-1}  # delay before the first restart of a child that exited
RESTART_MAX_S=30                       # the delay doubles up to this while the child keeps exiting
STABLE_S=60                            # a child that ran this long is restarted after the first delay again
mkdir -p var

# Runs one child for ever: restarts it when it exits; on SIGTERM stops it (and waits for it) and returns.
# Ctrl-C is this script's to handle: the child runs in a session of its own, which the terminal's SIGINT
# does not reach (a child that saw it would look like a crash and be restarted), and the supervising
# subshell ignores it, waiting for the SIGTERM that cleanup() sends (dying of it would orphan the child).
supervise() {
  local name=$1 child=0 delay=$RESTART_FIRST_S started status
  shift
  trap '' INT
  trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; exit 0' TERM
  while true; do
    started=$SECONDS
    setsid "$@" &
    child=$!
    status=0
    wait "$child" || status=$?
    kill -0 $$ 2>/dev/null || exit 0  # this script was killed outright: nobody to keep things up for
    if ((SECONDS - started >= STABLE_S)); then delay=$RESTART_FIRST_S; fi
    echo "run.sh: $name exited with status $status; starting it again in ${delay}s" >&2
    sleep "$delay" &
    child=$!
    wait "$child" || true
    delay=$((delay * 2 > RESTART_MAX_S ? RESTART_MAX_S : delay * 2))
  done
}

supervisors=()
cleanup() {
  trap - INT TERM EXIT
  kill -TERM "${supervisors[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT
# No gossip or mingle: Inventiv uses neither (no revoked tasks to share, no worker events), and after each
# broker outage they left a socket behind (README, "Broker outages").
supervise worker "$VENV/bin/celery" -A inventiv worker --loglevel=INFO --pool="${WORKER_POOL:-threads}" \
  --concurrency="${WORKER_CONCURRENCY:-8}" --without-gossip --without-mingle &
supervisors+=($!)
supervise beat "$VENV/bin/celery" -A inventiv beat --loglevel=INFO --schedule var/celerybeat-schedule &
supervisors+=($!)
supervise web "$VENV/bin/uvicorn" inventiv.asgi:application --http inventiv.asgi:HttpProtocol --host "$HOST" \
  --port "$PORT" &
supervisors+=($!)
echo "Inventiv is starting at http://$HOST:$PORT (Ctrl-C stops web, worker and beat)"
wait
