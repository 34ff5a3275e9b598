# One command per habit. Every target that needs the package depends on `install`,
# so `make test` and `make run` work on a fresh clone with only the machine's Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run serve test lint fmt perf wit-check prom-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/python -m progressd.demo

serve: install
	$(BIN)/progressd serve --config config/progressd.toml

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff format --check progressd tests perf
	$(BIN)/ruff check progressd tests perf
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format progressd tests perf
	$(BIN)/ruff check --fix progressd tests perf

perf: install
	@for f in perf/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

wit-check: install
	$(BIN)/wasm-tools component wit wit/ > /dev/null && echo "wit/: ok"

# promtool comes with Debian's `prometheus` package (.ci/run installs it when missing).
prom-check:
	promtool check rules config/prometheus/alerts.yml
	promtool check config config/prometheus/prometheus.yml
	promtool test rules config/prometheus/alerts_test.yml

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
