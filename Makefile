# `make run`: the offline nightly cycle on the bundled real data. `make test`: the test suite.
# Both create .venv if there is none and install the pinned dependencies (requirements.lock).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo
PREP   := $(BIN)/prep --config $(DEMO)/config.yaml

.PHONY: install run test check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# A real night replayed in a fresh folder (build/demo): prepare on the evening of 2021-04-19,
# validate at 09:00 and execute at 09:31 on 2021-04-20, against the simulated broker.
run: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	printf 'data:\n  sample_dir: ../../data/sample\nuniverse:\n  constituents_file: ../../data/sample/constituents.csv\n' > $(DEMO)/config.yaml
	$(PREP) --as-of 2021-04-19T20:00 prepare
	$(PREP) --as-of 2021-04-20T09:00 validate
	$(PREP) --as-of 2021-04-20T09:31 execute
	@echo "state of the replay: $(DEMO)/ (archived_trades/, data/, logs/)"

# compileall: the package's bytecode is written once (0.3 s), before the test workers, fork servers and
# subprocesses all start and would each compile it again (~10 s of a first run on 2 cores).
# PYTHONDONTWRITEBYTECODE= : pytest keeps its rewritten test modules and every `prep` subprocess its compiled
# modules in __pycache__ (git-ignored) even where the environment sets it; a second run collects in half the time.
test: $(STAMP)
	$(BIN)/python -m compileall -q trading_system tests > /dev/null
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

# ruff (pyflakes, pycodestyle, isort, bugbear, complexity <= 12), the import layers (import-linter) and
# mypy on the whole package
check: $(STAMP)
	$(BIN)/ruff check trading_system tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy trading_system

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf build $(VENV) .pytest_cache
