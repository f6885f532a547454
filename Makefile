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

.PHONY: setup course course-headless test data clean-artifacts strip bench-setup bench bench-ppo bench-sft-rm

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

## bench-setup: a separate environment for the benchmarks (.venv-bench: the course + TRL 1.16.0, pinned) and
## TRL 1.12.0, the last release with PPOTrainer, in its own folder (.bench/trl-1.12.0) that only benchmarks/ppo.py reads
BENCH_VENV  := .venv-bench
BENCH_PY    := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
TRL_PPO_DIR := .bench/trl-1.12.0
NICE        ?= nice -n 19
BENCH_ARGS  ?=

bench-setup: $(BENCH_STAMP)

$(BENCH_PY):
	$(PYTHON3) -m venv $(BENCH_VENV)

# torch is pinned to the course's version so pip keeps the CPU build instead of pulling a CUDA one
$(BENCH_STAMP): pyproject.toml | $(BENCH_PY)
	$(NICE) $(BENCH_PY) -m pip install -q 'torch==2.13.0' -e '.[bench]'
	rm -rf $(TRL_PPO_DIR)
	$(NICE) $(BENCH_PY) -m pip install -q --no-deps --target $(TRL_PPO_DIR) 'trl==1.12.0'
	touch $@

## bench: SFT and reward-model throughput, then PPO, each against TRL (prints markdown tables; not tests)
bench: bench-sft-rm bench-ppo

bench-sft-rm: bench-setup
	$(NICE) $(BENCH_PY) benchmarks/sft_rm.py $(BENCH_ARGS)

bench-ppo: bench-setup
	$(NICE) $(BENCH_PY) benchmarks/ppo.py --trl-path $(TRL_PPO_DIR) $(BENCH_ARGS)
