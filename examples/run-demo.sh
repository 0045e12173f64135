#!/usr/bin/env bash
# Start the demo worker, then the daemon in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
# Ports: the dashboard (examples/demo.yaml reads the same variables) and the worker.
export LIGHTBULB_PORT=${LIGHTBULB_PORT:-8080} DEMO_WORKER_PORT=${DEMO_WORKER_PORT:-8099}
mkdir -p var/demo
"$BIN/python" examples/demo_worker.py --port "$DEMO_WORKER_PORT" --dir var/demo \
  --push "http://127.0.0.1:$LIGHTBULB_PORT/api/v1/logs" &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT
"$BIN/lightbulb" bootstrap --config examples/demo.yaml
echo "Lightbulb is running on examples/demo.yaml (data in var/demo). Ctrl-C to stop."
exec_status=0
"$BIN/lightbulb" run --config examples/demo.yaml || exec_status=$?
exit $exec_status
