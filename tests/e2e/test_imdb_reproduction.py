"""The IMDB reproduction's params file at CI size, as a user runs it: the runner, then publish. The full run is a
documented long job (README "Reproduce IMDB", results/imdb_offline/); this keeps its path from rotting."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CI_SIZE = ["model_name_or_path=tiny-random", "max_train_samples=200", "max_eval_samples=60", "max_test_samples=120",
           "max_seq_length=64", "head_tokens=16", "num_train_epochs=1", "eval_steps=5", "save_steps=5",
           "per_device_train_batch_size=16"]


def test_imdb_offline_params_run_and_publish_a_neg_pos_report(tmp_path, data_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OTHERDATA_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1"}
    run_dir, results = tmp_path / "runs" / "imdb_offline", tmp_path / "results" / "imdb_offline"
    done = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", "params/imdb_offline.yaml", "--out",
                           str(run_dir), *(item for o in CI_SIZE for item in ("--set", o))],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=900)
    assert done.returncode == 0, f"runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    published = subprocess.run([sys.executable, "-m", "otherdata_utils", "publish", str(run_dir), str(results)],
                               cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
    assert published.returncode == 0, published.stderr
    report = (results / "classification_report.txt").read_text()
    rows = {line.split()[0]: line.split() for line in report.splitlines() if line.strip()}
    assert rows["neg"][-1] == rows["pos"][-1] == "60"  # the capped test split, stratified by label
    assert re.search(r"accuracy\s+\d\.\d{4}\s+120", report)
    assert {"macro", "weighted"} <= set(rows)
    test = json.loads((results / "metrics.json").read_text())["test"]
    assert test["n"] == 120 and "ece" in test["calibration"] and len(test["accuracy_by_length"]) == 4
    for figure in ("confusion_test", "calibration_test", "length_test", "training_curves"):
        assert (results / "figures" / f"{figure}.png").is_file(), figure
    assert not list(results.rglob("*.safetensors"))  # no weights in a results folder
