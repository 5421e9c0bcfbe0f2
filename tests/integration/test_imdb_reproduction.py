"""The IMDB reproduction's params file at CI size, then publish. The full run is a documented long job (README
"Reproduce IMDB", results/imdb_offline/); this keeps its path from rotting. Its steps run in-process, as notebooks
01-04 call them: the runner and its notebooks are what tests/e2e/test_runner.py runs (params/ci.yaml, every suite
notebook), and publish's command line what tests/e2e/test_monitoring_run.py runs."""
import json
import re
import warnings
from pathlib import Path

import pytest

from otherdata_utils import pipeline, publish, report, run
from otherdata_utils.config import load_config
from otherdata_utils.params_text import parse_override

REPO = Path(__file__).resolve().parents[2]
CI_SIZE = ["max_train_samples=200", "max_eval_samples=60", "max_test_samples=120", "max_seq_length=64",
           "head_tokens=16", "num_train_epochs=1", "eval_steps=5", "save_steps=5", "per_device_train_batch_size=16"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_imdb_offline_params_run_and_publish_a_neg_pos_report(tmp_path, data_dir, tiny_model_dir):
    run_dir, results = tmp_path / "runs" / "imdb_offline", tmp_path / "results" / "imdb_offline"
    config = load_config(REPO / "params" / "imdb_offline.yaml", {
        **dict(parse_override(item) for item in CI_SIZE), "model_name_or_path": str(tiny_model_dir),
        "data_dir": str(data_dir), "output_dir": str(run_dir), "cache_dir": str(tmp_path / "cache"), "quiet": True})
    assert "05_domain_transfer" not in config.notebooks  # one domain: no transfer matrix
    run.prepare_run(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.prepare_data(config)
    pipeline.build_training_set(config)
    pipeline.finetune(config)
    pipeline.evaluate_splits(config)
    report.write_report(run_dir)
    publish.publish(run_dir, results)
    classification = (results / "classification_report.txt").read_text()
    rows = {line.split()[0]: line.split() for line in classification.splitlines() if line.strip()}
    assert rows["neg"][-1] == rows["pos"][-1] == "60"  # the capped test split, stratified by label
    assert re.search(r"accuracy\s+\d\.\d{4}\s+120", classification)
    assert {"macro", "weighted"} <= set(rows)
    test = json.loads((results / "metrics.json").read_text())["test"]
    assert test["n"] == 120 and "ece" in test["calibration"] and len(test["accuracy_by_length"]) == 4
    for figure in ("confusion_test", "calibration_test", "length_test", "training_curves"):
        assert (results / "figures" / f"{figure}.png").is_file(), figure
    assert not list(results.rglob("*.safetensors"))  # no weights in a results folder
