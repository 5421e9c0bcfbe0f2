# Two commands on a fresh clone: `make run` (the default study, end to end) and `make test` (the whole suite).
# Both create .venv if missing and install torch, then this package with what the target needs, at the versions the
# published results were made with (constraints.txt): `run` the `run` extra, `test` the extras the suite imports too.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# Where torch comes from: empty = pip's own index (on Linux, PyPI's torch is the CUDA build); for the CPU-only build
# `make run TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX_URL ?=
# Pins every library at its published version; `CONSTRAINTS=` installs unpinned (e.g. with another TORCH_SPEC).
CONSTRAINTS ?= constraints.txt
# Each run's environment.json records this file and whether the installed versions match it (empty: none used).
export OTHERDATA_CONSTRAINTS := $(if $(CONSTRAINTS),$(abspath $(CONSTRAINTS)))
RUN_EXTRAS := run
TEST_EXTRAS := run,dev,studies,serve,augment,tracking,ray

# Local copies of the data sets (laid out like shared/data). Where none exist, the default study reads the UCI
# sentences packaged with otherdata_utils and other named sources come from their Hugging Face Hub copies.
OTHERDATA_DATA_DIR ?= $(if $(wildcard ../shared/data/.),$(abspath ../shared/data))
export OTHERDATA_DATA_DIR
# With a local data folder nothing needs the Hub: never wait on the network. Without one, leave the Hub reachable
# (the default study reads the packaged data; other sources then come from their Hub copies).
ifneq ($(and $(OTHERDATA_DATA_DIR),$(wildcard $(OTHERDATA_DATA_DIR)/.)),)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
endif
export TOKENIZERS_PARALLELISM ?= false

PARAMS ?= params/default.yaml
CI_RUN_DIR ?= runs/_ci

# Reference notebooks: CI-size runs committed with the outputs of their marked cells, which nbval re-executes and
# compares (tests/reference/make_references.py says what they run). Their runs land in runs/_reference, deleted first.
REFERENCES := tests/reference
REFERENCE_RUNS := runs/_reference
# No params overlay, and the threads and kernels the references were made with (tests/reference/pinned.env: one
# thread, AVX2 kernels on any x86-64 host), whatever the shell has set.
REFERENCE_ENV := env -u OTHERDATA_PARAMS_OVERLAY $(shell cat $(REFERENCES)/pinned.env)

.PHONY: run test test-fast refresh-references install clean-venv

# One stamp per set of extras: each installs once, and `make test` on a `make run` venv adds only what is missing.
# $(1): the extras.
define install_venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[$(1)]"
	touch $@
endef

$(VENV)/.installed-run: pyproject.toml Makefile $(CONSTRAINTS)
	$(call install_venv,$(RUN_EXTRAS))

$(VENV)/.installed-test: pyproject.toml Makefile $(CONSTRAINTS)
	$(call install_venv,$(TEST_EXTRAS))

install: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/python -m otherdata_utils run $(PARAMS)

# Unit and end-to-end tests first, then nbval re-executes the committed reference notebooks and fails on any marked
# cell whose output differs from the committed one (data counts, cleaning, CI-size accuracy and macro-F1, a study's
# plan and table). pytest exits non-zero on failures and on "no tests collected" alike. Both run a pytest-xdist worker
# per core (-n auto; one worker on one core), each at its share of the threads (tests/conftest.py): the suite's test
# files spread over the workers (pyproject's --dist loadfile), nbval's reference folders one a worker (a folder's
# notebooks run in order, each reading what the one before wrote: tests/reference/conftest.py).
test: $(VENV)/.installed-test
	rm -rf $(CI_RUN_DIR)
	OTHERDATA_CI_RUN_DIR=$(abspath $(CI_RUN_DIR)) $(BIN)/python -m pytest -n auto
	rm -rf $(REFERENCE_RUNS)
	$(REFERENCE_ENV) $(BIN)/python -m pytest -n auto -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(REFERENCES)

# When a change is meant to move the references: re-run them and commit the new outputs (the diff shows what moved).
refresh-references: $(VENV)/.installed-test
	$(REFERENCE_ENV) $(BIN)/python $(REFERENCES)/make_references.py

# The unit tier only (tests/unit): no data folder, no model, no subprocess; about a minute. `make test` runs all tiers.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/unit

clean-venv:
	rm -rf $(VENV)
