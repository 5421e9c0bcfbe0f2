"""The cell store: a cell's key moves when (and only when) what determines it moves; finished cells are written
atomically as they finish and read back, so a second pass trains only the cells it lacks. No model, no data."""
import json
import os
from pathlib import Path

import pytest
from datasets import Dataset

from otherdata_utils import progress
from otherdata_utils.config import Config
from otherdata_utils.execution import Execution, threads_per_cell
from otherdata_utils.folder_lock import LOCK_HOLDER_ENV, RunFolderBusy, hold_run_folder
from otherdata_utils.studies import engine, store

LABELS = ["neg", "pos"]


def _rows(texts, labels=None, prefix="r"):
    labels = labels or [i % 2 for i in range(len(texts))]
    return Dataset.from_dict({"id": [f"{prefix}{i}" for i in range(len(texts))], "text": list(texts),
                              "label": labels, "domain": ["d"] * len(texts)})


TRAIN = _rows(["good", "bad", "fine", "awful"])
VALIDATION = _rows(["ok", "meh"], prefix="v")
TEST = _rows(["great", "poor", "nice"], prefix="t")


def counted_fit(config, train, validation, test, label_names, work_dir, *, calls):
    """A fake fit: records its call in `calls` (a file), scores by training-row count, uses its work folder."""
    assert Path(work_dir).is_dir() and Path(work_dir).parent.name == "work"
    with open(calls, "a") as log:
        log.write(f"{config.seed}\n")
    return {"n_train": len(train), "accuracy": len(train) / 10, "train_seconds": 0.01,
            "correct": "1" * len(test)}


def _config(tmp_path, **changes):
    return Config(output_dir=str(tmp_path / "run"), quiet=True, model_name_or_path="tiny-random", **changes)


def _cells(calls, seeds=(1, 2), train=TRAIN):
    return [engine.Cell(arm="a", seed=seed, train=train, validation=VALIDATION, facts={"k_label": "4"},
                        fit=counted_fit, arguments={"calls": str(calls)}) for seed in seeds]


def _key(config, cell, test=TEST, threads=1):
    return engine.cell_job(config, cell, test, LABELS, headline=None, groups=None, threads=threads).key


def test_a_cells_key_moves_with_each_determining_input_and_not_with_run_settings(tmp_path):
    config = _config(tmp_path)
    cell = engine.Cell(arm="a", seed=1, train=TRAIN, validation=VALIDATION, split_seed=3, facts={"k": 4})
    base = _key(config, cell)
    reordered = TRAIN.select([1, 0, 2, 3])
    moved = {
        "learning rate": _key(config.replace(learning_rate=1e-3), cell),
        "arm": _key(config, engine.Cell(**{**cell.__dict__, "arm": "b"})),
        "seed": _key(config, engine.Cell(**{**cell.__dict__, "seed": 2})),
        "split seed": _key(config, engine.Cell(**{**cell.__dict__, "split_seed": 4})),
        "facts": _key(config, engine.Cell(**{**cell.__dict__, "facts": {"k": 8}})),
        "train order": _key(config, engine.Cell(**{**cell.__dict__, "train": reordered})),
        "a label": _key(config, engine.Cell(**{**cell.__dict__, "train": _rows(["good", "bad", "fine", "awful"],
                                                                               [1, 1, 0, 1])})),
        "test rows": _key(config, cell, test=TEST.select([0, 1])),
        "threads": _key(config, cell, threads=2),
    }
    assert base not in moved.values() and len(set(moved.values())) == len(moved)
    unmoved = {
        "run name": _key(config.replace(run_name="other", output_dir=str(tmp_path / "elsewhere")), cell),
        "quiet": _key(config.replace(quiet=False), cell),
        "executor": _key(config.replace(execution=Execution(executor="ray", threads_per_cell=1)), cell),
        "study k values": _key(config.replace(study={"few_shot": {"k_values": [4, 8]}}), cell),
        "seeds list": _key(config.replace(replicates={"seeds": [1, 2, 3]}), cell),
    }
    assert set(unmoved.values()) == {base}


def test_every_config_field_training_reads_is_part_of_a_cells_key():
    """A field train, modeling or adapters read that is not in FINE_TUNING_FIELDS would let a changed setting
    reuse a stale cell; the ones left out are paths, tracking and checkpoint keeping (cells keep none)."""
    import re

    package = Path(engine.__file__).resolve().parents[1]
    read = set()
    for name in ("train.py", "modeling.py", "adapters.py"):
        read |= set(re.findall(r"\bconfig\.([a-z_]+)\b", (package / name).read_text()))
    fields = read & set(Config.model_fields)
    not_training = {"run_name", "save_steps", "save_total_limit", "resume_from_checkpoint", "report_to",
                    "cache_dir", "quiet", "pretrain_steps", "pretrain_max_texts", "pretrain_learning_rate",
                    "pretrain_domains", "mlm_probability"}
    assert fields - set(store.FINE_TUNING_FIELDS) - not_training == set()


def test_store_writes_atomically_and_a_half_written_cell_reads_as_missing(tmp_path):
    cells = store.CellStore(tmp_path / "cells")
    path = cells.write("abc", {"accuracy": 0.5}, {"arm": "a"}, 1.234)
    assert json.loads(path.read_text())["row"] == {"accuracy": 0.5} and cells.read("abc") == {"accuracy": 0.5}
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["abc.json"]  # no temporary left beside it
    cells.path("torn").write_text('{"row": {"accur')  # what a kill mid-write without rename would leave
    assert cells.read("torn") is None and cells.read("never") is None


def test_a_second_pass_trains_only_the_cells_it_lacks_and_says_how_many_it_reused(tmp_path, capsys):
    config, calls = _config(tmp_path), tmp_path / "calls.txt"
    first = engine.run_cells(config, _cells(calls, seeds=(1, 2)), TEST, LABELS, desc="toy")
    assert calls.read_text().split() == ["1", "2"]
    (tmp_path / "run" / "work" / "leftover").mkdir(parents=True)  # what a killed cell would leave
    second = engine.run_cells(config, _cells(calls, seeds=(1, 2, 3)), TEST, LABELS, desc="toy")
    assert calls.read_text().split() == ["1", "2", "3"]  # only the added seed trained
    assert "toy: 2 of 3 cells reused" in capsys.readouterr().err
    assert second.iloc[:2].equals(first) and list(second["seed"]) == [1, 2, 3]
    assert not (tmp_path / "run" / "work" / "leftover").exists()
    changed = engine.run_cells(config.replace(learning_rate=1e-3), _cells(calls, seeds=(1,)), TEST, LABELS)
    assert calls.read_text().split() == ["1", "2", "3", "1"] and len(changed) == 1


def test_progress_line_names_the_cell_and_the_time_left(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "progress.log"))
    engine.run_cells(_config(tmp_path), _cells(tmp_path / "calls", seeds=(1, 2)), TEST, LABELS, desc="toy")
    lines = (tmp_path / "progress.log").read_text().splitlines()
    assert lines[0].startswith("toy: 0 of 2 cells reused")
    assert lines[1].startswith("cell 1/2 · a · k 4 · split 1 · 0 s · about ") and lines[1].endswith(" left")
    assert lines[2].startswith("cell 2/2 · a · k 4 · split 2 · 0 s") and "left" not in lines[2]


def test_training_step_lines_come_every_interval_and_at_the_end(monkeypatch, tmp_path):
    monkeypatch.setenv(progress.PROGRESS_ENV, str(tmp_path / "log"))
    now = iter([0.0, 10.0, 31.0, 40.0, 50.0])
    lines = progress.StepLines(100, enabled=True, clock=lambda: next(now))
    lines.loss = 0.5
    for step in (10, 31, 40, 100):
        lines.update(step)
    assert (tmp_path / "log").read_text().splitlines() == [
        "training step 31/100 · loss 0.5000 · 31 s · about 69 s left", "training step 100/100 · loss 0.5000 · 50 s"]


def test_serial_cells_use_the_available_cores_and_ray_cells_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads_per_cell(Execution()) == 3 and threads_per_cell(Execution(executor="ray")) == 1
    assert threads_per_cell(Execution(executor="ray", threads_per_cell=2)) == 2


def test_a_held_run_folder_refuses_another_holder_but_lets_its_own_kernels_through(tmp_path, monkeypatch):
    with hold_run_folder(tmp_path) as holder:
        assert holder["pid"] == os.getpid()
        with hold_run_folder(tmp_path):  # the same process again: passes through
            pass
        monkeypatch.setattr(os, "getpid", lambda: 999999)  # now another process, not the runner's kernel
        with pytest.raises(RunFolderBusy, match=f"pid {holder['pid']} on .*command:"):
            with hold_run_folder(tmp_path):
                pass
        monkeypatch.setenv(LOCK_HOLDER_ENV, str(holder["pid"]))
        with hold_run_folder(tmp_path):  # a kernel its runner started
            pass
    assert (tmp_path / ".lock").read_text() == ""  # released cleanly: nothing for the next holder to take over


def test_a_parameter_added_later_keeps_old_cells_keys_at_its_old_value_and_keys_new_values_apart():
    from otherdata_utils.studies.store import fine_tuning_parameters

    old = fine_tuning_parameters(Config(pooling="cls"))
    assert "pooling" not in old
    assert fine_tuning_parameters(Config(pooling="mean"))["pooling"] == "mean"
