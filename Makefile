# One entry point for people and CI. `make test` installs what it needs.
# Any Python from 3.9 to 3.13 works: `make test PYTHON=python3.9`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := resources/mltp/requirements-local.txt
# The agent Python the step's end-to-end test installs the helper with: a 3.12
# (Ubuntu 24.04's) when this machine has one.
AGENT_PYTHON ?= $(shell $(PYTHON) tests/compat/pythons.py 3.12 || echo python3)
# CodeNarc through npm-groovy-lint (Node.js 20+ and a Java 17), installed into .cache/npm.
GROOVY_LINT_VERSION := 16.2.0
GROOVY_LINT := .cache/npm/node_modules/.bin/npm-groovy-lint

# pytest-xdist workers for the Python suites: one per core (`auto`); TEST_WORKERS=0
# runs them in one process. The recorded AWS calls and the policy tests that read
# them stay together in one worker (tests/conftest.py, its xdist scheduler).
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS)

.PHONY: setup test test-quick test-python test-helper test-vars test-compat lint-groovy groovy shellcheck chromium bubblewrap example schema bundle bench clean

# The development environment is the local-mode bundle's own lock (hash-checked),
# so the tests run against exactly the versions agents install, plus the tools.
$(BIN)/.installed: helper/pyproject.toml requirements-dev.txt $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e helper
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed

## test: the whole suite (helper with pytest, Jenkins steps with Groovy 2.4, the bundle on every Python):
## the Groovy suite runs beside the Python one, whose helper and compatibility tests share one pool of workers
test: setup shellcheck chromium bubblewrap groovy $(GROOVY_LINT)
	$(MAKE) --no-print-directory --output-sync=target -j2 test-python test-vars

# The helper's source compiled once before the suites: it is installed editable, and
# where PYTHONDONTWRITEBYTECODE is set (CI agents often set it) no process writes its
# bytecode, so each of the suites' hundreds of `mltp` processes would compile its
# modules again (0.1 to 0.3 s each). Python checks each .pyc against its source.
BYTECODE = $(BIN)/python -m compileall -q -j0 helper/src

# The helper's and the compatibility tests in one pytest run, so the workers
# balance the long compatibility installs against the many short helper tests.
test-python: setup shellcheck chromium bubblewrap
	$(BYTECODE)
	$(BIN)/python -m pytest tests/helper tests/compat -q -rs $(PYTEST_PARALLEL)

## test-quick: the inner loop: the helper's tests without the slow end-to-end ones (marked `slow`), no Groovy, no compat
test-quick: setup shellcheck bubblewrap
	$(BYTECODE)
	$(BIN)/python -m pytest tests/helper -q -m "not slow" $(PYTEST_PARALLEL)

test-helper: setup shellcheck chromium bubblewrap
	$(BYTECODE)
	$(BIN)/python -m pytest tests/helper -q $(PYTEST_PARALLEL)

test-vars: setup groovy lint-groovy
	MLTP_TEST_AGENT_PYTHON=$(AGENT_PYTHON) bash tests/vars/run.sh

## lint-groovy: CodeNarc over vars/ with the rules of .groovylintrc.json (its "why" says why each is off); fails on a warning
lint-groovy: $(GROOVY_LINT)
	$(GROOVY_LINT) --noserver --config .groovylintrc.json --path vars --files '**/*.groovy' \
	  --output txt --failon warning --javaoptions=-XX:TieredStopAtLevel=1

$(GROOVY_LINT):
	@command -v npm >/dev/null && command -v java >/dev/null || { \
	  echo "make: lint-groovy needs npm (Node.js 20+) and Java 17: apt-get install nodejs npm openjdk-17-jre-headless" >&2; exit 1; }
	npm install --prefix .cache/npm --no-audit --no-fund --loglevel=error npm-groovy-lint@$(GROOVY_LINT_VERSION)

## test-compat: install the bundle as the step does on each Python 3.9..3.13 found, and run it
test-compat: setup
	$(BYTECODE)
	$(BIN)/python -m pytest tests/compat -q -rs $(PYTEST_PARALLEL)

# Debian's chromium: the report.html test renders the report in it, headless.
# Installed when missing and we may; without it that one test is skipped, saying why.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: the report.html browser test needs chromium: apt-get install chromium (skipped without it)" >&2; fi; }

# Debian's bubblewrap: local jobs get a private /opt/ml through unshare, or bwrap
# where unshare is refused; the sandbox tests exercise both (bwrap's are skipped without it).
bubblewrap:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "make: the sandbox tests use bwrap: apt-get install bubblewrap (its tests are skipped without it)" >&2; fi; }

# Debian packages the tests use; installed when missing and we may (root with apt).
groovy shellcheck:
	@command -v $@ >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $@ >/dev/null; \
	  else echo "make: the tests need $@: apt-get install $@" >&2; exit 1; fi; }

## example: run the example models end to end on this machine, no AWS account
example: setup
	$(BIN)/mltp run examples/fraud-detection --local
	$(BIN)/mltp run examples/house-prices --local

## schema: refresh the shipped JSON Schema from its one definition
schema: setup
	$(BIN)/mltp schema > resources/mltp/config.schema.json

## bundle: rebuild the helper wheel and its two hashed locks in resources/mltp/
bundle: setup
	$(BIN)/python tools/bundle.py

## bench: one table of the speed and cost figures against their anchors and goals
## (a while: cold installs; BENCH_QUICK=1 skips them and repeats less)
bench: setup
	$(BIN)/python benchmarks/table.py

clean:
	rm -rf $(VENV) helper/build helper/src/*.egg-info
