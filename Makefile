# One entry point for people and CI. `make test` installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-helper test-vars groovy chromium example schema bundle bench clean

$(BIN)/.installed: helper/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e 'helper[local]' -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed

## test: the whole suite (helper with pytest, Jenkins steps with Groovy 2.4)
test: test-helper test-vars

test-helper: setup chromium
	$(BIN)/python -m pytest tests/helper -q

test-vars: setup groovy
	MLTP_TEST_PYTHON=$(abspath $(BIN)/python) bash tests/vars/run.sh

# Debian's chromium: the report.html test renders the report in it, headless.
# Installed when missing and we may; without it that one test is skipped, saying why.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: the report.html browser test needs chromium: apt-get install chromium (skipped without it)" >&2; fi; }

# Groovy 2.4 (Debian's package) runs the step tests; installed when missing and we may.
groovy:
	@command -v groovy >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq groovy >/dev/null; \
	  else echo "make: the step tests need Groovy 2.4: apt-get install groovy" >&2; exit 1; fi; }

## example: run the example model end to end on this machine, no AWS account
example: setup
	$(BIN)/mltp run examples/fraud-detection --local

## schema: refresh the shipped JSON Schema from its one definition
schema: setup
	$(BIN)/mltp schema > resources/mltp/config.schema.json

## bundle: rebuild the helper wheel and its hashed requirements in resources/mltp/
bundle: setup
	$(BIN)/python tools/bundle.py

## bench: print the benchmark figures
bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) helper/build helper/src/*.egg-info
