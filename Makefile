# The README's two commands:
#   make demo   install, compute everything on the demo data set, open the app
#   make test   install the test extras and run the test suite
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
WORKDIR ?= work
PORT    ?= 8501
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: install install-test demo demo-data demo-run app test test-fast lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Fashion-MNIST from Debian's package when we may install it; otherwise the demo
# says which fallback it used (a torchvision root, a download, or sklearn's digits).
demo-data:
	@if [ -d $(FASHION) ]; then echo "demo data: $(FASHION)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) \
	  || echo "could not install dataset-fashion-mnist; the demo will use a fallback"; \
	else echo "Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist); the demo will use a fallback"; fi

# the demo computes the prototype metrics and the training-dynamics ones (EL2N, forgetting, AUM, margin:
# 15 s together), then the scaling estimate of keep-hard-by-EL2N with the MLP probe, the setting that beats a
# random subset on this data (README, "What the demo shows")
DEMO_METRICS ?= ssl_prototype,supervised_prototype,random,el2n,forgetting,aum,margin
demo-run: install demo-data
	$(BIN)/curate run --source demo --workdir $(WORKDIR) --metrics $(DEMO_METRICS)
	$(BIN)/curate scaling --workdir $(WORKDIR) --metric el2n --probe mlp --fractions 0.2,0.3,0.5,0.7,0.9,1

demo: demo-run app

app: install
	$(BIN)/curate app --workdir $(WORKDIR) --port $(PORT)

test: install-test lint
	$(BIN)/python -m pytest -q

test-fast: install-test
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# ruff (lint + format) on the whole tree and mypy on backend/ (configured in pyproject.toml)
lint: install-test
	$(BIN)/ruff check backend curation_app tests benchmarks
	$(BIN)/ruff format --check backend curation_app tests benchmarks
	$(BIN)/mypy

# the README's pictures: every page of the demo workdir, into assets/screenshots/ (after make demo-run)
screenshots: install-test
	CURATE_ASSETS_WORKDIR=$(WORKDIR) $(BIN)/python -m pytest -q tests/app/test_browser_assets.py

bench: install
	$(BIN)/python benchmarks/bench_kmeans.py
	$(BIN)/python benchmarks/bench_embed.py

clean:
	rm -rf $(WORKDIR) artifacts .pytest_cache
