# The two commands: `make run` (serve on 127.0.0.1:8000) and `make test` (the whole suite).
# Each installs what it needs first — venv, packages, a Chromium — and skips what is there.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

.PHONY: run test pytest stress lint install browser redis node-deps bench demo clean

run: install browser
	$(PY) -m flask_sessions --host $(HOST) --port $(PORT)

# Two workers, a test file each at a time (a file's servers stay in one worker); then the
# schemathesis fuzz alone (its pytest plugin runs one operation per item under xdist).
TEST_WORKERS ?= 2

test: install browser redis node-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/test_openapi.py
	$(PY) -m pytest tests/test_openapi.py
	$(MAKE) --no-print-directory lint

pytest: install browser redis node-deps
	$(PY) -m pytest $(ARGS)

# The heavy tests of issue 8 (fuzz, memory abuse, soak), bounded in time; they print their
# figures and append them to stress-summary.txt. Then a larger schemathesis run (issue 13). STRESS_SOAK_SECONDS=180 shortens the soak.
stress: install browser redis node-deps
	$(PY) -m pytest -m stress -s tests/test_stress.py tests/test_openapi.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check flask_sessions tests scripts
	$(VENV)/bin/ruff format --check flask_sessions tests scripts
	$(VENV)/bin/mypy

demo: install browser
	$(PY) scripts/agent_demo.py $(ARGS)

bench: install browser redis
	$(PY) scripts/bench.py $(ARGS)

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mcp]'
	touch $(STAMP)

browser: install
	PYTHON=$(PY) scripts/install-browser

redis:
	scripts/install-redis

node-deps:
	scripts/install-node-deps

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info node_modules
