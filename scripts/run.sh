#!/usr/bin/env bash
# Start web (uvicorn), Celery worker and Celery beat on the embedded defaults; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export INVENTIV_PUBLIC_URL=${INVENTIV_PUBLIC_URL:-http://$HOST:$PORT}
export INVENTIV_MOCK_RUNTIME=${INVENTIV_MOCK_RUNTIME:-process}  # each Mock instance: a real agent + simulator
mkdir -p var
pids=()
cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT
"$VENV/bin/celery" -A inventiv worker --loglevel=INFO --pool=${WORKER_POOL:-threads} --concurrency=${WORKER_CONCURRENCY:-8} &
pids+=($!)
"$VENV/bin/celery" -A inventiv beat --loglevel=INFO --schedule var/celerybeat-schedule &
pids+=($!)
"$VENV/bin/uvicorn" inventiv.asgi:application --host "$HOST" --port "$PORT" &
pids+=($!)
echo "Inventiv is starting at http://$HOST:$PORT (Ctrl-C stops web, worker and beat)"
wait -n "${pids[@]}"
