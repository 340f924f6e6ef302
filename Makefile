# The two commands: `make run` and `make test`. Both use the embedded PostgreSQL and
# Redis unless DATABASE_URL / REDIS_URL point at servers of your own.
VENV ?= .venv
PY := $(VENV)/bin/python
WITH_SERVICES := $(PY) deploy/devservices.py exec --

.PHONY: run test lint hardening bench bench-million scale-test install manage services-up services-down check clean

$(VENV)/.installed: pyproject.toml deploy/bootstrap.sh
	sh deploy/bootstrap.sh $(VENV)

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(WITH_SERVICES) sh deploy/run-local.sh

test: lint
	sh deploy/install-browser.sh
	$(WITH_SERVICES) $(PY) -m pytest $(PYTEST_ARGS)

# What the test command checks before the suite: lint and format (ruff), the layers and the absence of
# import cycles (import-linter, docs/architecture.md), and the type check of the domain cores (mypy).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# The hardening suite (tests/hardening): schemathesis, every phase, over the operator API (admin, analyst), the
# device API and the OpenADR 3 VTN, against the real web process; no 5xx, every answer as the schema documents.
# HARDENING_EXAMPLES: requests the fuzzing phase generates per role (CI runs a smaller budget).
HARDENING_EXAMPLES ?= 10000
hardening: $(VENV)/.installed
	HARDENING_EXAMPLES=$(HARDENING_EXAMPLES) $(WITH_SERVICES) $(PY) -m pytest tests/hardening $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(WITH_SERVICES) $(PY) tests/bench/run.py $(BENCH_ARGS)

# The million-device figures (README, "A million devices"): each benchmark at its million-device size, each in a
# database of its own, one after another (about an hour on a 2-core machine, ~40 GB of disk at the peak; cold
# reads need root to drop the page cache). `make bench` runs the same modules at 100,000 devices.
MILLION ?= BENCH_FLEET_DEVICES=1000000 BENCH_AGG_DEVICES=1000000 BENCH_DISPATCH_DEVICES=1000000 \
	BENCH_CONSOLE_DEVICES=1000000 BENCH_SETTLEMENT_SITES=100000 BENCH_READBACK_METERS=20000
MILLION_BENCHES ?= fleet_import aggregation dispatch console settlement readback
bench-million: $(VENV)/.installed
	status=0; for name in $(MILLION_BENCHES); do \
		env $(MILLION) $(WITH_SERVICES) $(PY) tests/bench/run.py bench_$$name || status=1; done; exit $$status

# The multi-host scale-out test (tests/scale): network namespaces as hosts (PostgreSQL, RabbitMQ + Redis, two web
# hosts behind a proxy, two worker hosts, beat, the device fleet), a worker host and a web host killed mid-event.
# Needs root and `ip netns`; starts its own servers in the namespaces, so no DATABASE_URL / REDIS_URL is used.
# Not Django's test runner: -p no:django and --confcutdir keep the suite's settings and fixtures out of it.
scale-test: $(VENV)/.installed
	@if [ "$$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then \
		echo "scale-test: skipped: it needs root and 'ip netns' (network namespaces) to build its hosts"; exit 0; fi
	$(PY) -m pytest -p no:django -p no:cacheprovider -W ignore::pytest.PytestConfigWarning --confcutdir tests/scale -s tests/scale $(PYTEST_ARGS)

# Any management command with the same environment, e.g. make manage CMD="createsuperuser"
manage: $(VENV)/.installed
	$(WITH_SERVICES) $(PY) manage.py $(CMD)

services-up: $(VENV)/.installed
	$(PY) deploy/devservices.py up

services-down: $(VENV)/.installed
	$(PY) deploy/devservices.py down

check: $(VENV)/.installed
	$(WITH_SERVICES) $(PY) manage.py check

clean: services-down
	rm -rf .data $(VENV) staticfiles
