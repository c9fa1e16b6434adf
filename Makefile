# nudge — every target creates .venv when it is missing and installs the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PORT   ?= 8080
# Node.js: 22 LTS recommended. On Node 20 (end of life) the CDK's jsii runtime prints an
# end-of-life banner on every synth; it is left visible on purpose.

.PHONY: install browser-deps run test test-fast fuzz lint typecheck synth bench openapi clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

# Segment's analytics.js (npm, pinned by the lock file) for the browser e2e test
BROWSER_DEPS := tests/e2e/browser/node_modules/.package-lock.json
$(BROWSER_DEPS): tests/e2e/browser/package.json tests/e2e/browser/package-lock.json
	npm ci --prefix tests/e2e/browser --no-audit --no-fund --loglevel=error
	@touch $(BROWSER_DEPS)

browser-deps: $(BROWSER_DEPS)

## run: local mode on http://127.0.0.1:$(PORT) (prints the write and admin keys)
run: $(STAMP)
	$(BIN)/nudge dev --port $(PORT)

## test: the whole suite (unit, integration, infra, e2e; the browser test needs Chromium)
test: $(STAMP) $(BROWSER_DEPS)
	$(BIN)/pytest -q

## test-fast: unit and integration tiers only
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/integration

## fuzz: property and fuzz tests with fresh random seeds and more examples (run it before a
## change to the engine or the fold lands; a failure prints the seed to reproduce it), the
## delivery fault run with 1,000 actions and 10,000 fuzzed requests against local mode,
## their figures printed
fuzz: $(STAMP)
	NUDGE_HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -p no:cacheprovider tests/unit tests/integration -k "not e2e and not delivery_faults and not exactly_once"
	NUDGE_FAULT_ACTIONS=1000 $(BIN)/pytest -q -s -p no:cacheprovider tests/integration/test_delivery_faults.py tests/integration/test_delivery_exactly_once.py
	NUDGE_HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -s -p no:cacheprovider tests/e2e/test_fuzz_e2e.py

## lint: ruff (rules and format), then mypy strict on the nudge package and functions/
lint: $(STAMP)
	$(BIN)/ruff check layers functions infra tests examples
	$(BIN)/ruff format --check layers functions infra tests examples
	$(BIN)/mypy

## typecheck: mypy alone (its scope and strictness are set in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy

## synth: the CloudFormation template, offline, no Docker, no credentials
synth: $(STAMP)
	npx --yes aws-cdk@2 synth --quiet

bench: $(STAMP)
	$(BIN)/nudge bench

## openapi: regenerate docs/openapi.json from the handlers' routes (a test checks it)
openapi: $(STAMP)
	$(BIN)/nudge openapi

clean:
	rm -rf cdk.out build .pytest_cache .ruff_cache .mypy_cache
