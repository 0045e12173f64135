#!/usr/bin/env bash
# Start the demo worker, then the daemon in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
mkdir -p var/demo
"$BIN/python" examples/demo_worker.py --port 8099 --dir var/demo \
  --push http://127.0.0.1:8080/api/v1/logs &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT
"$BIN/lightbulb" bootstrap --config examples/demo.yaml
echo "Lightbulb is running on examples/demo.yaml (data in var/demo). Ctrl-C to stop."
exec_status=0
"$BIN/lightbulb" run --config examples/demo.yaml || exec_status=$?
exit $exec_status
