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

.PHONY: setup course course-headless test test-browser lint data clean-artifacts strip bench-setup bench bench-ppo \
        bench-sft-rm

## setup: create .venv if missing; (re)install the pinned package when pyproject.toml changed
setup: $(STAMP)

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[course,test]'
	touch $@

## course: open the lessons in JupyterLab at the first one, on 127.0.0.1:8888 unless given
## `make course PORT=8890 IP=0.0.0.0`; as root (uid 0) it adds --allow-root, with no display --no-browser;
## JUPYTER_TOKEN in the environment sets the token (otherwise a random one), and the URL is printed with it
PORT         = 8888
IP           = 127.0.0.1
FIRST_LESSON = $(firstword $(NOTEBOOKS))

# Checks, before JupyterLab starts, that IP:PORT can be listened on (as the server will: SO_REUSEADDR).
define COURSE_PORT_CHECK_PY
import errno, socket, sys
ip, port = sys.argv[1], sys.argv[2]
if not port.isdigit() or not 0 < int(port) < 65536:
    sys.exit(f"course: PORT={port} is not a port number: choose one with make course PORT=8890")
try:
    family, _, _, _, address = socket.getaddrinfo(ip, int(port), type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
except OSError as e:
    if e.errno == errno.EADDRINUSE:
        sys.exit(f"course: port {port} is in use: choose another with make course PORT={int(port) + 1}")
    sys.exit(f"course: cannot listen on {ip}:{port} ({e.strerror or e}): "
             "choose another with make course IP=… PORT=…")
endef

course: export COURSE_PORT_CHECK = $(COURSE_PORT_CHECK_PY)
course: setup
	@set -euo pipefail; \
	$(PY) -c "$$COURSE_PORT_CHECK" '$(IP)' '$(PORT)'; \
	args=(--ServerApp.root_dir=. --ServerApp.ip='$(IP)' --ServerApp.port='$(PORT)' --ServerApp.port_retries=0 \
	      --LabApp.default_url='/lab/tree/$(FIRST_LESSON)'); \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "course: running as root (uid 0), so JupyterLab is started with --allow-root"; args+=(--allow-root); \
	fi; \
	if [ "$$(uname -s)" != Darwin ] && [ -z "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then \
	  echo "course: no display (\$$DISPLAY is empty), so no browser is opened (--no-browser): open the URL below"; \
	  args+=(--no-browser); \
	fi; \
	token="$${JUPYTER_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_hex(24))')}"; \
	case '$(IP)' in 0.0.0.0|::|'') host="$$(hostname)";; *:*) host='[$(IP)]';; *) host='$(IP)';; esac; \
	echo "course: open this URL once JupyterLab says it is running (its log shows the token as ...):"; \
	echo "    http://$$host:$(PORT)/lab/tree/$(FIRST_LESSON)?token=$$token"; \
	case '$(IP)' in 127.*|localhost|::1) \
	  echo "course: from another machine, first run there (with the user@host you ssh to):"; \
	  echo "    ssh -N -L $(PORT):127.0.0.1:$(PORT) $${USER:-$$(id -un)}@$$(hostname)";; \
	esac; \
	echo "course: stop with Ctrl-C twice"; \
	export JUPYTER_TOKEN="$$token"; exec $(JUPYTER) lab "$${args[@]}"

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

## test: the linter (ruff, configured in pyproject.toml), then tests/run.py: the unit tests and every lesson notebook
## (nbval-lax: errors fail, outputs not compared), two jobs at a time, each lesson after the lessons whose stages it
## reads; and lessons in JupyterLab in a real browser (tests/test_browser.py, once lesson 04 and the lessons it runs
## have ended, on a private copy of the stages they trained; it skips, saying why, where Chromium is not installed).
## `make test JOBS=1`: one at a time, in the course's order, the browser test last. Each job's log is in runs/test-logs/.
LINTED := rlhf_lib tests benchmarks notebooks/drafts
JOBS   ?= 2

test: setup
	$(PY) -m ruff check $(LINTED)
	$(TEST_ENV) $(PY) tests/run.py --jobs $(JOBS)

## test-browser: the browser test alone (`make test-browser LESSONS=01,04`; screenshots in runs/browser/)
test-browser: setup
	$(TEST_ENV) $(if $(LESSONS),RLHF_BROWSER_LESSONS=$(LESSONS)) $(PY) -m pytest -s --durations=5 tests/test_browser.py

## lint: the linter alone (`make lint FIX=1` applies its safe fixes)
lint: setup
	$(PY) -m ruff check $(if $(FIX),--fix) $(LINTED)

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
