# jobpipe — every command sets up what it needs from a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BOOT := .venv-boot
UV := $(BOOT)/bin/uv
UV_VERSION := 0.13.8
PY := $(VENV)/bin/python
# The CDK app's jsii runtime prints an eleven-line banner on stderr when Node.js is near or past
# its end of life, and the app's Python side echoes it as b'...' lines. Silence it for the Node
# that runs here, and say it in one line instead (the README names the supported versions).
NODE_SUPPORTED := 22 24
NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := $(NODE_MAJOR)
define node_note
@case " $(NODE_SUPPORTED) " in *" $(NODE_MAJOR) "*) ;; \
  *) echo "note: this is Node.js $(NODE_MAJOR); the CDK's runtime (jsii) supports Node.js \
$(firstword $(NODE_SUPPORTED)) and $(lastword $(NODE_SUPPORTED))" >&2 ;; esac
endef

.PHONY: help venv test lint fmt local synth deploy bench chaos chord fuzz clean

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
	$(node_note)
	npx --no-install cdk synth --quiet

deploy: venv node_modules/.installed ## Deploy the stack with the AWS credentials in your environment
	$(node_note)
	npx --no-install cdk deploy

bench: venv ## Measure calls, cost, imports, worker overhead and local throughput (.bench/results.json)
	$(PY) scripts/bench.py $(BENCH_ARGS)

chaos: venv ## Drive 1,000 jobs and workflows through the local pipeline under every kind of fault, then check
	$(PY) scripts/chaos.py $(CHAOS_ARGS)

chord: venv ## One chord of 1,000 steps through the local stack; its body must run once with every result
	$(PY) scripts/chord.py $(CHORD_ARGS)

fuzz: venv ## Property-based requests against the local stack (10,000; the suite runs 300)
	JOBPIPE_FUZZ_EXAMPLES=$${JOBPIPE_FUZZ_EXAMPLES:-10000} $(VENV)/bin/pytest tests/fuzz -q

clean: ## Remove build output and environments
	rm -rf $(VENV) $(BOOT) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache .bench
