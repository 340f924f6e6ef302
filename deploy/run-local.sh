#!/bin/sh
# Started by `make run` inside deploy/devservices.py's environment: prepare the
# database, seed the demo fleet once, then run web, worker, beat, the market telemetry
# stream and the simulated device fleet (deploy/Procfile.local; production runs deploy/Procfile, without it).
set -eu
PY="${VENV:-.venv}/bin/python"
export PATH="$(dirname "$PY"):$PATH"
"$PY" manage.py migrate --no-input
"$PY" manage.py collectstatic --no-input --verbosity 0
"$PY" manage.py seed_demo
PORT="${PORT:-8000}"
# honcho gives each process its own PORT (web keeps this one); the simulator is told the web's URL.
VPP_URL="http://127.0.0.1:${PORT}"
export PORT VPP_URL
echo ""
echo "  VPP aggregator: http://127.0.0.1:${PORT}/ (the operator console)"
echo "    admin:        http://127.0.0.1:${PORT}/admin/"
echo "    API docs:     http://127.0.0.1:${PORT}/api/docs/"
"$PY" manage.py demo_login
echo ""
exec honcho --procfile deploy/Procfile.local --app-root . start
