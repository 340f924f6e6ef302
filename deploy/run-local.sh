#!/bin/sh
# Started by `make run` inside deploy/devservices.py's environment: prepare the
# database, seed the demo fleet once, then run web, worker, beat, the market telemetry
# stream, the simulated device fleet and the market simulator (deploy/Procfile.local; production runs
# deploy/Procfile, without the two simulators).
set -eu
PY="${VENV:-.venv}/bin/python"
export PATH="$(dirname "$PY"):$PATH"
"$PY" manage.py migrate --no-input
"$PY" manage.py collectstatic --no-input --verbosity 0
PORT="${PORT:-8000}"
# The market simulator plays the demo's market (CAISO) beside the platform; the seed points the market's HTTP
# adapter at it. The token the adapter presents to it is made per run and reaches both through the environment.
MARKET_SIMULATOR_PORT="${MARKET_SIMULATOR_PORT:-$((PORT + 100))}"
VPP_MARKET_SIM_TOKEN="${VPP_MARKET_SIM_TOKEN:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')}"
VPP_DATA_DIR="${VPP_DATA_DIR:-.data}"
# The demo submits a real-time offer as soon as it is built (30 minutes before CAISO's close), not in the last
# five minutes as production does, so a new run sees its first award within the hour.
MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE="${MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE:-30}"
export MARKET_SIMULATOR_PORT VPP_MARKET_SIM_TOKEN VPP_DATA_DIR MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE
"$PY" manage.py seed_demo
# honcho gives each process its own PORT (web keeps this one); the simulator is told the web's URL.
VPP_URL="http://127.0.0.1:${PORT}"
export PORT VPP_URL
echo ""
echo "  VPP aggregator: http://127.0.0.1:${PORT}/ (the operator console)"
echo "    admin:        http://127.0.0.1:${PORT}/admin/"
echo "    API docs:     http://127.0.0.1:${PORT}/api/docs/"
echo "    market:       http://127.0.0.1:${MARKET_SIMULATOR_PORT}/awards (the market simulator, playing CAISO)"
"$PY" manage.py demo_login
echo ""
exec honcho --procfile deploy/Procfile.local --app-root . start
