# Every target sets itself up on a fresh machine: .venv is created and the package
# installed (editable, with the test extra) the first time, and only again when
# pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ROOT   ?= .
LISTEN ?= 127.0.0.1:8080

.PHONY: help run test validate lint docs bench fuzz clean

help:
	@echo "make run       start the daemon on the example tree (127.0.0.1:8080)"
	@echo "make test      lint, type-check and run the whole test suite"
	@echo "make validate  validate a config tree (ROOT=path, default: this repository)"
	@echo "make lint      ruff + mypy"
	@echo "make docs      regenerate docs/configuration.md from schemas/ and docs/rules.md"
	@echo "make bench     print the benchmark tables"
	@echo "make fuzz      run the fuzz tests with fresh seeds for FUZZ_SECONDS (default 600)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# make run and make validate need the runtime dependencies only (no test extra).
RUN_STAMP := $(VENV)/.installed-run
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# python -m puts the working directory (the repository root) on sys.path: the example tree's
# handlers (examples/) are imported from there, not installed.
run: $(RUN_STAMP)
	$(BIN)/python -m rpcd.devrun --root $(ROOT) --listen $(LISTEN)

validate: $(RUN_STAMP)
	$(BIN)/rpcd validate $(ROOT)

lint: $(STAMP)
	$(BIN)/ruff check rpcd tests bench examples
	$(BIN)/ruff format --check rpcd tests bench examples
	$(BIN)/mypy rpcd

docs: $(STAMP)
	$(BIN)/python -m rpcd.config.docgen > docs/configuration.md
	$(BIN)/python -m rpcd.config.rulebook > docs/rules.md

test: lint
	@.ci/install-test-tools
	$(BIN)/python -m pytest -q

# The fuzz tests (pytest -m fuzz) with the long hypothesis profile, again and again with a new
# seed each round, until FUZZ_SECONDS have passed; the first failure stops it with exit 1.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	@end=$$(( $$(date +%s) + $(FUZZ_SECONDS) )); round=0; \
	while [ $$(date +%s) -lt $$end ]; do \
	  round=$$((round + 1)); seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "fuzz round $$round, seed $$seed"; \
	  RPCD_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz -p no:cacheprovider \
	    -o timeout=0 --hypothesis-seed=$$seed || exit 1; \
	done; echo "fuzz: $$round rounds clean in $(FUZZ_SECONDS) s"

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
