"""Monitoring end to end: the monitoring params file through the runner, its report showing the control chart.

The runner runs 03_finetune (which prepares the data and mixes itself) and 14_monitoring, which scores the stream
with the model 03 left in the run folder: the params file's setup, data and mixing notebooks run through the runner
in tests/e2e/test_runner.py, and a params file's whole notebook list in tests/e2e/test_study_runs.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


REPO = Path(__file__).resolve().parents[2]


def test_monitoring_params_file_runs_through_the_runner(tmp_path, data_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OTHERDATA_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1"}
    overrides = ["model_name_or_path=tiny-random", "num_train_epochs=1", "max_train_samples=100",
                 "max_eval_samples=40", "max_test_samples=40", "max_seq_length=32", "head_tokens=8"]
    done = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", "params/monitoring_blitzer.yaml", "--out",
                           str(tmp_path / "run"), "--notebooks", "03_finetune", "14_monitoring",
                           *(item for o in overrides for item in ("--set", o))],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=900)
    assert done.returncode == 0, f"runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = tmp_path / "run"
    recorded = json.loads((run / "metrics.json").read_text())["monitoring"]
    periods = pd.read_csv(run / "monitoring" / "periods.csv")
    scores = pd.read_csv(run / "monitoring" / "scores.csv")
    assert recorded["texts"] == len(scores) == periods["n"].sum()
    assert recorded["watched_periods"] == int((~periods["baseline"]).sum()) > 0
    assert recorded["flagged"] == periods.loc[periods["flagged"], "period"].tolist()
    assert (run / "figures" / "monitoring.png").is_file()
    assert "## Monitoring" in (run / "report.md").read_text()
    published = subprocess.run([sys.executable, "-m", "otherdata_utils", "publish", str(run), str(tmp_path / "res")],
                               cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
    assert published.returncode == 0, published.stderr
    assert (tmp_path / "res" / "monitoring" / "periods.csv").read_text() == (run / "monitoring" / "periods.csv"
                                                                             ).read_text()
    assert not (tmp_path / "res" / "monitoring" / "scores.csv").exists()  # every text's score stays in the run
