"""Adaptation studies end to end: the language, continued-pretraining and PEFT params files through the runner at CI
size, and the loop and studies without PEFT installed (a fresh interpreter)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from otherdata_utils.config import load_config
from study_checks import plan_matches_cells

REPO = Path(__file__).resolve().parents[2]


def test_without_peft_installed_the_loop_and_studies_load_and_only_adapters_ask_for_it(tmp_path) -> None:
    """peft is an optional extra: the training loop's PEFT hooks leave plain models alone without it."""
    probe = "\n".join([
        "import sys",
        "sys.modules['peft'] = None  # as if the optional extra were not installed",
        "import torch",
        "from otherdata_utils import adapters, studies, train",
        "from otherdata_utils.config import Config",
        "model = torch.nn.Linear(2, 2)",
        "adapters.after_optimizer_step(model, 1, 10)",
        "print(adapters.apply_peft(model, Config()) is model, adapters.plain_model(model) is model,",
        "      adapters.restore_adapter(model, sys.argv[1]), train.save_adapter is adapters.save_adapter)",
        "try:",
        "    adapters.apply_peft(model, Config(peft_method='lora'))",
        "except ImportError as error:",
        "    print(type(error).__name__)",
    ])
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], cwd=REPO, text=True, capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True", "False", "True", "ModuleNotFoundError"]


CI_SIZE = ["--set", "model_name_or_path=tiny-random", "--set", "replicates.seeds=[1,2]", "--set", "num_train_epochs=1",
           "--set", "learning_rate=1e-3", "--set", "max_seq_length=32"]


# Each run executes only its study notebook (which prepares the data itself): a params file's whole notebook list
# through the runner (setup, data, then the study) is what tests/e2e/test_study_runs.py runs for every study notebook
# of the few-shot engine, and 00_setup and 01_data run there and in tests/e2e/test_runner.py.
RUNS = {
    "language_mixing": ("study_language.yaml", [
        "--notebooks", "10_language", "--set", "sources=[\"xlmt_tweets:english,french,arabic\"]",
        "--set", "max_train_samples=48", "--set", "max_eval_samples=60", "--set", "max_test_samples=90"]),
    # Two UCI domains stand in for Yelp + IMDB reviews: loading 50,000 IMDB reviews would take most of the budget.
    "continued_pretraining": ("study_dapt.yaml", [
        "--notebooks", "11_continued_pretraining", "--set", "sources=[\"uci_sentences:yelp,amazon\"]",
        "--set", "pretrain_domains=[amazon]", "--set", "pretrain_steps=3", "--set", "pretrain_max_texts=100",
        "--set", "max_train_samples=48"]),
    "peft": ("study_peft.yaml", [
        "--notebooks", "12_peft", "--set", "max_train_samples=60", "--set", "max_eval_samples=30",
        "--set", "max_test_samples=60"]),
}


NEEDS_SHARED_DATA = {"language_mixing"}  # XLM-T tweets; the others read the packaged UCI sentences


@pytest.fixture(scope="module", params=sorted(RUNS))
def study_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    study = request.param
    params_file, overrides = RUNS[study]
    if study in NEEDS_SHARED_DATA:
        request.getfixturevalue("data_dir")  # skipped without the shared data (a failure where it is required)
    run_dir = tmp_path_factory.mktemp("runs") / study
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    result = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", f"params/{params_file}", "--out",
                             str(run_dir), *CI_SIZE, *overrides], cwd=REPO, env=env, text=True, capture_output=True,
                            timeout=900)
    assert result.returncode == 0, f"runner failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return study, run_dir


def test_study_run_writes_its_tables_figure_metrics_and_report(study_run) -> None:
    study, run_dir = study_run
    cells = pd.read_csv(run_dir / "studies" / study / "cells.csv")
    arms = {"language_mixing": 4, "continued_pretraining": 3, "peft": 3}[study]
    assert len(cells) == arms * 2 and sorted(cells["seed"].unique()) == [1, 2]
    assert (run_dir / "figures" / f"{study}.png").is_file()
    recorded = json.loads((run_dir / "metrics.json").read_text())["studies"][study]
    report = (run_dir / "report.md").read_text()
    assert f"## Study: {study}" in report and recorded["table_markdown"] in report and recorded["reading"] in report
    assert "| arm | train rows | replicates |" in report
    assert not list(run_dir.rglob("*.tmp"))


def test_study_run_trains_exactly_the_models_and_replicates_its_plan_names(study_run) -> None:
    _, run_dir = study_run
    plan_matches_cells(load_config(run_dir / "params.yaml"), run_dir)


def _language_scored_on_english_only(run_dir: Path) -> None:
    cells = pd.read_csv(run_dir / "studies" / "language_mixing" / "cells.csv")
    assert set(cells["target_rows"]) == {48}  # additive arms: every arm keeps the 48 English rows
    assert set(cells.loc[cells["arm"] != "english", "n_train"]) == {96}
    assert (cells["n_test"] == 30).all()  # 90 capped test rows, stratified over 3 languages
    assert np.allclose(cells["accuracy"], cells["accuracy_english"])
    coverage = pd.read_csv(run_dir / "studies" / "language_mixing" / "coverage.csv").set_index("language")
    assert coverage.loc["arabic", "single_letter_share"] > 0.8
    correct = pd.read_csv(run_dir / "studies" / "language_mixing" / "correct.csv", dtype={"correct": str})
    assert (correct["correct"].str.len() == 90).all() and "correct" not in cells  # every test row, out of cells.csv


def _pretraining_recorded(run_dir: Path) -> None:
    pretraining = pd.read_csv(run_dir / "studies" / "continued_pretraining" / "pretraining.csv")
    assert sorted(pretraining["arm"].unique()) == ["dapt", "tapt"] and (pretraining["steps"] == 3).all()
    assert pretraining["head_initialised_fresh"].all()
    recorded = json.loads((run_dir / "metrics.json").read_text())["studies"]["continued_pretraining"]
    assert len(recorded["pretraining"]) == len(pretraining) == 4 and recorded["pretrain_steps"] == 3
    assert recorded["table_markdown"].count("95% Student-t interval") == 1  # the design paragraph, written once


def _parameters_counted(run_dir: Path) -> None:
    cells = pd.read_csv(run_dir / "studies" / "peft" / "cells.csv").drop_duplicates("arm").set_index("arm")
    assert cells.loc["full", "trainable_params"] == cells.loc["full", "total_params"]
    assert 0 < cells.loc["lora", "trainable_params"] < cells.loc["adalora", "trainable_params"] < 20_000
    design = json.loads((run_dir / "metrics.json").read_text())["studies"]["peft"]
    assert design["tuned"] == {"learning_rate": "chosen per arm on validation from its grid (below; test rows are "
                                                "not read for it)"} and "learning_rate" not in design["fixed"]
    assert "*Tuned per arm:* learning_rate chosen per arm on validation" in design["table_markdown"]
    assert len(pd.read_csv(run_dir / "studies" / "peft" / "learning_rates.csv")) == 9  # 3 rates × 3 methods


# What each study records beyond the shared tables; each check asserts on its own run folder.
STUDY_CHECKS = {"language_mixing": _language_scored_on_english_only, "continued_pretraining": _pretraining_recorded,
                "peft": _parameters_counted}


def test_study_run_records_what_its_study_is_about(study_run) -> None:
    study, run_dir = study_run
    assert set(STUDY_CHECKS) == set(RUNS), "every study run needs a check of what it records"
    STUDY_CHECKS[study](run_dir)
