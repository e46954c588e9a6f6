# jobpipe — every command sets up what it needs from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BOOT := .venv-boot
UV := $(BOOT)/bin/uv
UV_VERSION := 0.13.8
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help venv test lint fmt local synth deploy bench chaos fuzz clean

help: ## Show the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# uv is pinned and installed into its own small bootstrap environment, so a fresh
# clone needs nothing but python3; the project environment is built from uv.lock.
$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	@touch $@

venv: $(VENV)/.synced ## Create .venv from the lock file

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test: venv node_modules/.installed ## Run every test
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: venv ## ruff (format + lint) and mypy
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy scripts

fmt: venv ## Format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

local: venv ## Run the whole pipeline on this machine (moto + local API + worker)
	$(VENV)/bin/jobpipe local

synth: venv node_modules/.installed ## Synthesize the CloudFormation template into cdk.out/
	npx --no-install cdk synth --quiet

deploy: venv node_modules/.installed ## Deploy the stack with the AWS credentials in your environment
	npx --no-install cdk deploy

bench: venv ## Measure calls, cost, imports, worker overhead and local throughput (.bench/results.json)
	$(PY) scripts/bench.py $(BENCH_ARGS)

chaos: venv ## Drive 1,000 jobs through the local pipeline under nine kinds of fault, then check
	$(PY) scripts/chaos.py $(CHAOS_ARGS)

fuzz: venv ## Property-based requests against the local stack (10,000; the suite runs 300)
	JOBPIPE_FUZZ_EXAMPLES=$${JOBPIPE_FUZZ_EXAMPLES:-10000} $(VENV)/bin/pytest tests/fuzz -q

clean: ## Remove build output and environments
	rm -rf $(VENV) $(BOOT) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache .bench
