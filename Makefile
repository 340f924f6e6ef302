# The two commands: `make run` and `make test`. Both use the embedded PostgreSQL and
# Redis unless DATABASE_URL / REDIS_URL point at servers of your own.
VENV ?= .venv
PY := $(VENV)/bin/python
WITH_SERVICES := $(PY) deploy/devservices.py exec --

.PHONY: run test lint hardening bench install manage services-up services-down check clean

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
