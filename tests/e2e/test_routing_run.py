"""Routing end to end: the routing params file through the runner, its report showing the routing."""
import json
import os
import subprocess
import sys
from pathlib import Path

from otherdata_utils.model_card import read_inference_settings
from otherdata_utils.predictor import Predictor


def test_routing_params_file_runs_through_the_runner_and_its_report_shows_the_routing(tmp_path, data_dir):
    """params/routing_banking.yaml at CI size, as a user runs it: the model folder it leaves serves with a threshold."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OTHERDATA_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1"}
    overrides = ["model_name_or_path=tiny-random", "num_train_epochs=1", "max_eval_samples=60",
                 "max_test_samples=90", "learning_rate=2e-3"]
    done = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", "params/routing_banking.yaml", "--out",
                           str(tmp_path / "run"), *(item for o in overrides for item in ("--set", o))],
                          cwd=repo, env=env, text=True, capture_output=True, timeout=900)
    assert done.returncode == 0, f"runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert read_inference_settings(tmp_path / "run" / "model").handover_threshold == recorded["routing"]["threshold"]
    assert "routing: **in-scope accuracy" in (tmp_path / "run" / "report.md").read_text()
    assert Predictor.load(tmp_path / "run" / "model").metadata()["handover_threshold"] == recorded["routing"]["threshold"]
