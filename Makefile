# Every install step lives here: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck pytest bench bench-polling bench-bulk bench-cluster mutation clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,cli,redis]'
	touch $(STAMP)

demo: venv
	$(PY) examples/run_demo.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy --strict akool_async

pytest: venv
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: venv
	$(PY) benchmarks/bench_latency.py

bench-polling: venv
	$(PY) benchmarks/bench_polling.py

# Mutation testing of the budget, retry/resend and webhook modules (scripts/mutation.py).
# Not part of `make test`: about 11 minutes on 2 CPUs. mutmut comes from the `mutation` extra.
mutation: venv
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[mutation]'
	$(PY) scripts/mutation.py

bench-bulk: venv
	$(PY) benchmarks/bench_bulk.py --videos 2000 --workers 1,3

# K = 1, 4, 16 processes sharing 2,000 pending videos, with the Redis hub and without (~3 min).
bench-cluster: venv
	$(PY) benchmarks/bench_cluster.py --videos 2000 --processes 1,4,16 --seconds 5 --samples 200

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache mutants
