# xsgpu: `make demo` (set up + the main job, CPU only) and `make test` (set up + the test suite).
# The first use creates .venv and installs everything (~2 min); later uses reuse it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SERVE  ?= 1
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench screenshots setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xsgpu demo --out $(DEMO_DIR) $(if $(filter 0,$(SERVE)),--no-serve,--serve)

test: $(STAMP)
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not gpu and not browser and not slow" $(PYTEST_ARGS)

screenshots: $(STAMP)
	XSGPU_UPDATE_DOCS=1 $(PY) -m pytest tests/app/test_browser_views.py $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) runs/demo
