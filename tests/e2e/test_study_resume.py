"""A study survives a kill, a second runner and a new seed: started through the runner, SIGKILLed after some cells
are stored, started again, it trains only the cells it lacks and ends with an uninterrupted run's table; a second
runner on a folder in use stops naming the holder; a killed runner's lock is taken over; a seed added to a finished
study trains only the new seed's cells. And Ray gives the serial table."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from otherdata_utils import pipeline, studies
from otherdata_utils.config import load_config
from otherdata_utils.params_text import parse_override

REPO = Path(__file__).resolve().parents[2]
# The CI-size few-shot study: 2 arms × 2 split seeds × 2 seeds = 8 tiny models, no anchor.
STUDY = ["model_name_or_path=tiny-random", "replicates.seeds=[1,2]", "max_train_samples=16", "max_eval_samples=8",
         "num_train_epochs=1", "max_seq_length=32", "head_tokens=8", "per_device_train_batch_size=8",
         "study.few_shot.k_values=[4]", "study.few_shot.strategies=[target_only,temperature]",
         "study.few_shot.temperatures=[2]", "replicates.split_seeds=[1,2]", "study.few_shot.anchors=[]",
         "max_test_samples=null", "study.few_shot.test_rows=24",
         "execution={threads_per_cell: 1}"]
TIMING = ["train_seconds"]


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "otherdata_utils", "run", "params/study_few_shot.yaml", "--out", str(out),
            *[item for assignment in STUDY for item in ("--set", assignment)]]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OTHERDATA_DATA_DIR": str(data_dir),
            "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _start(out: Path, data_dir: Path) -> subprocess.Popen:
    # its own session: a SIGKILL to the group takes the notebook kernel down with the runner, as a kill -9 of a
    # terminal's job does
    return subprocess.Popen(_command(out), cwd=REPO, env=_env(data_dir), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _wait_for(condition, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _cells(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "studies" / "few_shot_mixing" / "cells.csv").drop(columns=TIMING)


def test_a_study_grown_by_a_seed_and_a_killed_one_train_only_their_missing_cells_and_a_busy_folder_is_refused(
        tmp_path, data_dir):
    """Notebook 07 through the runner, three times over two folders (each run of it costs kernels and cells):

    - grown: the CI-size study with seeds [1]; a second runner started on the folder meanwhile is refused, naming the
      holder. Then the same command with seeds [1, 2] on the same folder keeps the data steps, reuses the four seed-1
      cells, trains the four seed-2 ones, and its plan says so.
    - killed: the seeds [1, 2] study SIGKILLed once some cells are stored, then started again: it takes over the dead
      runner's lock, trains only the cells it lacks, and ends with the grown run's table (every cell trained once by
      one runner or another: the table of an uninterrupted run)."""
    grown, killed = tmp_path / "grown", tmp_path / "killed"
    one_seed = [*_command(grown), "--set", "replicates.seeds=[1]"]
    first = subprocess.Popen(one_seed, cwd=REPO, env=_env(data_dir), text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    _wait_for(lambda: (grown / ".lock").is_file() and (grown / ".lock").read_text().strip() != "")
    holder = json.loads((grown / ".lock").read_text())
    busy = subprocess.run(_command(grown), cwd=REPO, env=_env(data_dir), text=True, capture_output=True, timeout=300)
    assert busy.returncode != 0
    assert f"is in use by another process (pid {holder['pid']} on {holder['host']}" in busy.stderr
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err[-3000:]
    assert "few-shot: 0 of 4 cells reused" in out, out[-3000:]
    before = _cells(grown)
    second = subprocess.run(_command(grown), cwd=REPO, env=_env(data_dir), text=True, capture_output=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "00_setup, 01_data done before" in second.stdout and "parameters changed since (replicates)" in \
        second.stdout, second.stdout[-3000:]
    assert "few-shot: 4 of 8 cells reused" in second.stdout and ", 4 to train" in second.stdout
    assert "01_data.ipynb" not in second.stdout  # the data steps are not redone
    assert "cell 8/8 · temperature T=2 · k 4 · split 2 · seed 2" in second.stdout, second.stdout[-3000:]
    notebook = json.loads((grown / "notebooks" / "07_few_shot_mixing.ipynb").read_text())
    printed = "".join("".join(output.get("text", "")) for cell in notebook["cells"]
                      for output in cell.get("outputs", []))
    assert "stored in the run folder: 4 of 8 cells reused, 4 to train" in printed
    after = _cells(grown)
    assert len(after) == 8 and set(after["seed"]) == {1, 2}
    pd.testing.assert_frame_equal(after[after["seed"] == 1].reset_index(drop=True), before.reset_index(drop=True))

    victim = _start(killed, data_dir)
    _wait_for(lambda: len(list((killed / "cells").glob("*.json"))) >= 3)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    stored = len(list((killed / "cells").glob("*.json")))
    assert 3 <= stored < 8
    again = subprocess.run(_command(killed), cwd=REPO, env=_env(data_dir), text=True, capture_output=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"took over the lock left by a process that is gone (pid {victim.pid}" in again.stdout
    assert f"few-shot: {stored} of 8 cells reused" in again.stdout
    assert f"cell {stored + 1}/8" in again.stdout and f"cell {stored}/8" not in again.stdout
    pd.testing.assert_frame_equal(_cells(killed), after)
    assert not any((killed / "work").iterdir())


def test_ray_and_serial_cells_are_equal_at_one_thread(tmp_path, data_dir, all_cores):
    """A local Ray with a one-thread worker per core (two, on two cores, also under xdist) and the serial executor at
    one thread: the same cells table."""
    pytest.importorskip("ray")
    overrides = dict(parse_override(item) for item in STUDY)
    tables = {}
    for executor in ("serial", "ray"):
        config = load_config(REPO / "params" / "study_few_shot.yaml", {
            **overrides, "quiet": True, "data_dir": str(data_dir), "output_dir": str(tmp_path / executor),
            "execution": {"executor": executor, "threads_per_cell": 1}})
        pipeline.prepare_data(config)
        tables[executor] = studies.few_shot_study(config).cells.drop(columns=TIMING)
    pd.testing.assert_frame_equal(tables["ray"], tables["serial"])
