# Wafaa: `make run` starts everything, `make test` runs the whole suite. Both set up first:
# a virtual environment with the pinned packages, then embedded PostgreSQL + pgvector and
# Valkey (unless DATABASE_URL and REDIS_URL are set).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: chaos run test test-browser screenshots lint alerts drill format venv services services-stop bench clean

$(STAMP): requirements.txt requirements-dev.txt requirements-otel.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

services: venv
	@$(PY) scripts/devservices.py start

run: services
	@$(PY) scripts/run.py

# Tests switch the embedded PostgreSQL to fast, non-durable settings; `make run` switches back.
test: venv
	@$(PY) scripts/devservices.py start --fast
	@WAFAA_TESTING=1 $(PY) -m pytest $(PYTEST_ARGS)

# The browser tests (tests_browser/): Playwright driving Debian's chromium (installed when
# missing) through a real server with workers, the fake Graph API and a database of their own.
# Playwright comes from requirements-browser.txt, installed here only: `make test` needs no
# browser. `make screenshots` writes docs/screenshots/inbox-*.png the same way.
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): requirements-browser.txt $(STAMP)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-browser.txt
	@touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	@PYTHON=$(PY) scripts/test_browser.sh $(PYTEST_ARGS)

screenshots: $(BROWSER_STAMP)
	@PYTHON=$(PY) scripts/test_browser.sh --screenshots

# The fault suite (bench/chaos.py): real processes and servers of its own, faults injected,
# 0 lost and 0 duplicated replies asserted; figures in bench/results/chaos.json.
chaos: venv
	@$(PY) bench/chaos.py $(CHAOS_ARGS)

lint: venv
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/lint-imports --no-cache

# Prometheus alert rules and their unit tests (installs Debian's promtool when missing).
alerts: venv
	@PYTHON=$(PY) scripts/check_alerts.sh

# The shipped monitoring and deploy configuration, run without Docker: Prometheus scrapes web
# and worker, a rolling restart behind Caddy loses no webhook, WorkerDown reaches Alertmanager
# (installs Debian's prometheus, prometheus-alertmanager and caddy when missing).
drill: services
	@PYTHON=$(PY) scripts/drill.sh

# Dependencies: edit requirements*.in (the packages we chose, pinned), then `make lock` compiles
# requirements*.txt with every transitive dependency and its hashes (pip checks them).
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock: venv
	@$(PIP_COMPILE) requirements.in -o requirements.txt
	@$(PIP_COMPILE) -c requirements.txt requirements-otel.in -o requirements-otel.txt
	@$(PIP_COMPILE) -c requirements.txt requirements-dev.in -o requirements-dev.txt
	@$(PIP_COMPILE) -c requirements-dev.txt requirements-browser.in -o requirements-browser.txt

format: venv
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

services-stop:
	@test -x $(PY) && $(PY) scripts/devservices.py stop || true

# Benchmarks keep the fast settings their published figures were measured with.
bench: venv
	@$(PY) scripts/devservices.py start --fast
	@$(PY) bench/run_all.py

clean: services-stop
	rm -rf .run
