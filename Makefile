# Pulse: one command per chore. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
WORKSPACE ?= workspace
PORT ?= 8501

AWS_PORT ?= 5000

.PHONY: run run-aws demo intake test lint types unit e2e bench results chromium clean-workspace

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Build the demo workspace (bootstrap model + 90 days of check-ins) unless it is already there.
$(WORKSPACE)/deployments/current.json: | $(VENV)/.runtime
	$(PY) -m services.cli demo --workspace $(WORKSPACE)

demo: $(WORKSPACE)/deployments/current.json

run: $(VENV)/.runtime demo
	PULSE_WORKSPACE=$(WORKSPACE) $(VENV)/bin/streamlit run app.py --server.port $(PORT)

# The intake watcher on a demo inbox folder beside the demo workspace (the sample CSV put in it when it
# is empty): drop check-in files into $(INBOX)/ and each is ingested once (docs/intake.md). Ctrl-C stops.
INBOX ?= $(WORKSPACE)-inbox
intake: $(VENV)/.runtime demo
	mkdir -p $(INBOX)
	test -n "$$(ls -A $(INBOX))" || $(PY) -c 'import sys; from services.checkins.exports import sample_csv; \
		sys.stdout.buffer.write(sample_csv())' > $(INBOX)/sample.csv
	$(PY) -m services.cli ingest --watch $(INBOX) --workspace $(WORKSPACE) --interval 5

# The aws backend without an AWS account: moto's server on 127.0.0.1 with the SageMaker stand-in
# (services/aws/standin.py: training jobs train fastText locally, endpoints score), the demo
# workspace built in its bucket through S3 and SageMaker calls, then the app. Everything is in
# moto's memory: stopping the app ends the stand-in and the workspace with it.
run-aws: $(VENV)/.dev
	$(PY) -m services.aws.standin --port $(AWS_PORT) --bucket pulse-demo -- \
		bash -c '$(PY) -m services.cli demo && exec $(VENV)/bin/streamlit run app.py --server.port $(PORT)'

# Debian's chromium for the browser test, installed when missing and we are root.
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and this is not root: the browser test will be skipped"; fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint deploy/cloudformation.yaml

types: $(VENV)/.dev
	$(VENV)/bin/mypy

unit: $(VENV)/.dev
	$(VENV)/bin/pytest -m "not e2e and not benchmark"

e2e: $(VENV)/.dev chromium
	$(VENV)/bin/pytest -m e2e

# Two workers (the build machine has two cores), a test file per worker so module fixtures are built once;
# the slowest tests are listed at the end of the log.
test: $(VENV)/.dev chromium lint types
	$(VENV)/bin/pytest -m "not benchmark" -n 2 --dist loadfile --durations=25

bench: $(VENV)/.dev
	$(VENV)/bin/pytest -m benchmark -s -p no:cacheprovider

# The README's results page: the learning loop, load and fault benchmarks, then the tables.
results: $(VENV)/.dev
	$(VENV)/bin/pytest -m benchmark -s -p no:cacheprovider tests/benchmarks/test_learning_loop.py \
		tests/benchmarks/test_serve_load.py tests/benchmarks/test_annotator_load.py tests/benchmarks/test_app_sessions.py
	$(VENV)/bin/pytest -p no:cacheprovider tests/faults
	$(PY) -m tests.benchmarks.results

clean-workspace:
	rm -rf $(WORKSPACE)
