# Two commands on a fresh clone: `make run` (the default study, end to end) and `make test` (the whole suite).
# Both create .venv if missing and install this package with the CPU build of torch that lies on this disk.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0
# Where torch comes from: empty = pip's own index (on Linux, PyPI's torch is the CUDA build); for the CPU-only build
# `make run TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX_URL ?=

# Local copies of the data sets (laid out like shared/data); unset it to read the Hugging Face Hub copies.
OTHERDATA_DATA_DIR ?= $(abspath ../shared/data)
export OTHERDATA_DATA_DIR
# The default study needs nothing from the Hub: never wait on the network for it.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

PARAMS ?= params/default.yaml
CI_RUN_DIR ?= runs/_ci

.PHONY: run test install clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[run,dev,notebooks,studies,serve,augment,tracking]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m otherdata_utils run $(PARAMS)

# Unit and end-to-end tests first (the runner test leaves the executed CI notebooks in $(CI_RUN_DIR)), then nbval
# re-executes those notebooks and checks the marked cells reproduce. pytest exits non-zero on failures and on
# "no tests collected" alike.
test: $(STAMP)
	rm -rf $(CI_RUN_DIR)
	OTHERDATA_CI_RUN_DIR=$(abspath $(CI_RUN_DIR)) $(BIN)/python -m pytest
	$(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(CI_RUN_DIR)/notebooks

clean-venv:
	rm -rf $(VENV)
