# The two-command promise: `make demo` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out
FUZZ_RUNS ?= 100000
FUZZ_TARGETS ?= file codec

.PHONY: demo test lint typecheck unit docs bench-docs fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_OUT)
	$(BIN)/clisonix transform sample_data/ $(DEMO_OUT) --op rescale --op window:preset=brain --jobs 2

lint: $(STAMP)
	$(BIN)/ruff check clisonix_cli tests benchmarks tools fuzz
	$(BIN)/ruff format --check clisonix_cli tests benchmarks tools fuzz
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

docs: $(STAMP)
	$(BIN)/python -m clisonix_cli.cli.docgen

# The figures of docs/bench.md and README.md, from the committed full run docs/bench-run.json
# (refresh that file with: clisonix bench --peers --target 10M/h --output docs/bench-run.json)
bench-docs: $(STAMP)
	$(BIN)/python -m clisonix_cli.bench.markdown

# Fuzz the header index and every pixel decoder path (atheris); findings are kept in
# tests/data/fuzz-regressions/ and replayed by `make test`. Example: make fuzz FUZZ_RUNS=1000000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --runs $(FUZZ_RUNS) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache .fuzz
