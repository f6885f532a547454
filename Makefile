# RLHF course: the README's first command is `make course`, the second is `make test`.
SHELL := /bin/bash

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
JUPYTER := $(VENV)/bin/jupyter
STAMP   := $(VENV)/.installed

# Lesson notebooks in numeric order (NN_name.ipynb sorts lexically == numerically).
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

TEST_ENV := MPLBACKEND=Agg PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false

.PHONY: setup course course-headless test data clean-artifacts strip

## setup: create .venv if missing; (re)install the pinned package when pyproject.toml changed
setup: $(STAMP)

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[course,test]'
	touch $@

## course: open the lessons in JupyterLab
course: setup
	$(JUPYTER) lab notebooks/ --ServerApp.root_dir=.

## course-headless: execute every lesson in order, stopping at the first error
course-headless: setup
	@mkdir -p runs/executed
	@set -euo pipefail; \
	for nb in $(NOTEBOOKS); do \
	  echo "==> $$nb"; start=$$(date +%s); \
	  MPLBACKEND=Agg $(JUPYTER) nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=1800 --output-dir runs/executed "$$nb"; \
	  echo "<== $$nb: $$(( $$(date +%s) - start ))s wall"; \
	done

## test: unit tests, then every lesson notebook in numeric order (nbval-lax: errors fail, outputs not compared)
test: setup
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --durations=15 tests $(NOTEBOOKS)

## data: rebuild data/ from seed 0
data: setup
	$(PY) -m rlhf_lib.build_data --seed 0 --out data

clean-artifacts:
	rm -rf artifacts runs

## strip: remove outputs from the notebooks before committing
strip: setup
	$(if $(NOTEBOOKS),$(JUPYTER) nbconvert --clear-output --inplace $(NOTEBOOKS),@echo "no notebooks to strip")
