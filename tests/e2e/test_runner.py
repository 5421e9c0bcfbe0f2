"""End to end: the papermill runner turns a params file into a complete, self-describing run folder."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.metrics import f1_score

from otherdata_utils.config import SUITE_NOTEBOOKS, default_data_dir, load_config
from otherdata_utils.metrics import load_predictions
from study_checks import plan_matches_cells

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=REPO, timeout=1200):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "otherdata_utils", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def ci_run(once_per_session):
    """params/ci.yaml through the runner, once per session however many xdist workers run these tests: the one run of
    every suite notebook (00-06) in a row; returns the run folder and the runner's stdout. `make test` keeps the
    folder in runs/_ci (OTHERDATA_CI_RUN_DIR) to look at after a failure; nbval compares the committed reference
    notebooks (tests/reference), not these. Two epochs instead of six (the run's model and the transfer study's
    three): these tests check each artefact and that the records agree, not how well the model learns; nbval holds
    params/ci.yaml's six-epoch accuracy in the references."""
    keep = os.environ.get("OTHERDATA_CI_RUN_DIR")

    def run_ci(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        result = run_cli("run", "params/ci.yaml", "--out", keep or str(folder / "ci"), "--set", "num_train_epochs=2")
        assert result.returncode == 0, f"runner failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        (folder / "runner.stdout").write_text(result.stdout, encoding="utf-8")  # for the workers that did not run it

    folder = once_per_session("ci_run", run_ci)
    return Path(keep) if keep else folder / "ci", (folder / "runner.stdout").read_text(encoding="utf-8")


def test_ci_study_writes_every_artefact_of_a_run_folder(ci_run):
    run_dir, _ = ci_run
    assert sorted(p.stem for p in (run_dir / "notebooks").glob("*.ipynb")) == sorted(SUITE_NOTEBOOKS)
    for name in ("params.yaml", "metrics.json", "report.md", "environment.json", "model/config.json",
                 "model/model.safetensors", "model/README.md", "predictions/test.csv",
                 "reports/cleaning.json", "reports/mix.json", "figures/training_curves.png",
                 "figures/confusion_test.png", "figures/per_domain_test.png", "figures/transfer_matrix.png"):
        assert (run_dir / name).is_file(), f"missing {name}"
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left behind"


def test_the_ci_transfer_study_trains_exactly_the_models_its_plan_names(ci_run):
    run_dir, _ = ci_run
    plan_matches_cells(load_config(run_dir / "params.yaml"), run_dir)


def test_metrics_json_holds_test_accuracy_macro_f1_and_per_domain(ci_run):
    run_dir, _ = ci_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    # the recorded scores are those of the predictions file, and the report shows the same figure
    predictions = load_predictions(run_dir / "predictions" / "test.csv")
    assert len(predictions) == test["n"]
    assert test["accuracy"] == pytest.approx(predictions["correct"].mean())
    assert test["macro_f1"] == pytest.approx(f1_score(predictions["label"], predictions["prediction"], average="macro"))
    report = (run_dir / "report.md").read_text()
    assert f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}" in report
    assert set(test["per_domain"]) == {"amazon", "imdb", "yelp"}
    for domain, rows in predictions.groupby("domain"):
        assert test["per_domain"][domain]["accuracy"] == pytest.approx(rows["correct"].mean()), domain
    assert sum(row["n"] for row in test["per_domain"].values()) == test["n"] == 90
    assert test["label_names"] == ["neg", "pos"]


def test_params_yaml_is_the_resolved_config_with_absolute_paths(ci_run):
    run_dir, _ = ci_run
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert params["model_name_or_path"] == "tiny-random"
    assert Path(params["output_dir"]) == run_dir
    # the data dir the runner found, made absolute; "" where there is none (the packaged UCI sentences are read)
    assert Path(params["data_dir"]).is_absolute() if default_data_dir() else params["data_dir"] == ""


def test_report_holds_the_classification_report_per_domain_table_and_figures(ci_run):
    run_dir, _ = ci_run
    report = (run_dir / "report.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"test accuracy {metrics['test']['accuracy']:.4f}" in report
    assert "precision    recall  f1-score   support" in report
    assert "\n         neg " in report and "\n         pos " in report
    assert "| domain | n | accuracy | macro-F1 |" in report
    assert "](figures/confusion_test.png)" in report
    # params/ci.yaml's transfer study: the one run of 05_domain_transfer through the runner
    transfer = metrics["studies"]["transfer_matrix"]
    assert "## Study: transfer_matrix" in report
    assert transfer["table_markdown"] in report and transfer["reading"] in report
    assert (run_dir / "studies" / "transfer_matrix" / "cells.csv").is_file()
    assert "](figures/transfer_matrix.png)" in report


def test_progress_names_each_notebook(ci_run):
    _, stdout = ci_run
    assert "[ci] 1/7 00_setup.ipynb" in stdout and "[ci] 7/7 06_deploy.ipynb" in stdout


def test_unknown_parameter_fails_before_any_notebook_runs(tmp_path):
    out = tmp_path / "never"
    result = run_cli("run", "params/ci.yaml", "--set", "learnin_rate=1e-3", "--out", str(out), timeout=120)
    assert result.returncode == 2
    assert "unknown parameter 'learnin_rate'" in result.stderr and "Did you mean 'learning_rate'" in result.stderr
    assert not out.exists()


def test_ill_typed_parameter_fails_before_any_notebook_runs(tmp_path):
    result = run_cli("run", "params/ci.yaml", "--set", "num_train_epochs=many", "--out", str(tmp_path / "x"),
                     timeout=120)
    assert result.returncode == 2 and "'num_train_epochs'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_failing_run_is_reported_with_its_notebook_and_the_next_run_goes_on(tmp_path):
    # Bad data or parameters stop every run before any starts (pre-flight); this one fails only once it runs:
    # the target domain has fewer rows per class than few_shot_k asks for. 02_mixing alone (it prepares the data
    # itself): one kernel per run.
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "params/ci.yaml").read_text()),
                                      "run_name": "broken", "few_shot_k": 5000}))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**yaml.safe_load((REPO / "params/ci.yaml").read_text()), "run_name": "good"}))
    result = run_cli("run", str(broken), str(good), "--set", f"runs_dir={tmp_path / 'runs'}",
                     "--notebooks", "02_mixing", timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "[broken] FAILED in 02_mixing.ipynb" in result.stderr
    assert "few_shot_k" in result.stderr  # the message names the parameter to change
    assert (tmp_path / "runs" / "broken" / "notebooks" / "02_mixing.ipynb").is_file()  # the executed copy is kept
    assert (tmp_path / "runs" / "good" / "data" / "train_mixed").is_dir()
    assert "1 of 2 runs succeeded" in result.stdout


