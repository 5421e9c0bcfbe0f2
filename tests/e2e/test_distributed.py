"""Training on two CPU processes (torchrun, gloo): each epoch's rows are split between the processes, each row once;
only the main process saves; and the run ends where one process with the same global batch ends.

tests/e2e/distributed_train.py runs train.train on 192 real UCI sentences for 6 epochs and records, per process, the
rows it was handed and the models it saved. Two processes with 8 rows each (global batch 16) are compared with
one process with batches of 8 and gradient accumulation 2: accelerate hands process 0 batches 0, 2, 4, … and
process 1 batches 1, 3, 5, … of the same seeded sampler, which are the two batches one process accumulates per
step. With dropout off the arithmetic is then the same but for the order of float additions (gloo's all-reduce of
two gradient halves against summing them in .grad), about 1e-7 relative per step: weights must agree within 1e-5,
the validation loss within 1e-4, accuracy and macro-F1 within one of the 96 validation sentences.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("distributed_train.py")
TRAIN_ROWS, VALIDATION_ROWS, EPOCHS = 192, 96, 6


def launch_together(*commands: list[str]) -> None:
    """Start the commands side by side (CPU only, one thread each) and wait for all of them to succeed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for command in commands]
    for command, process in zip(commands, processes):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{' '.join(command)}\n{out[-3000:]}\n{err[-5000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, packaged_data_dir) -> dict[str, Path]:
    """The same training on two processes (global batch 2 × 8) and on one (8, accumulated twice)."""
    root = tmp_path_factory.mktemp("distributed")
    common = ["--model", str(tiny_model_dir), "--data-dir", str(packaged_data_dir), "--per-device-batch", "8",
              "--train-rows", str(TRAIN_ROWS), "--validation-rows", str(VALIDATION_ROWS), "--epochs", str(EPOCHS)]
    launch_together(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
         "--out", str(root / "two"), "--cache-dir", str(root / "cache-two"), *common],
        [sys.executable, str(SCRIPT), "--out", str(root / "one"), "--cache-dir", str(root / "cache-one"),
         "--accumulation", "2", *common],
    )
    return {"two": root / "two", "one": root / "one"}


def record(folder: Path, rank: int) -> dict:
    return json.loads((folder / f"rank-{rank}.json").read_text())


def test_two_processes_run_on_gloo_and_share_each_epochs_rows_each_row_once(runs):
    ranks = [record(runs["two"], rank) for rank in (0, 1)]
    assert [(r["rank"], r["world_size"], r["backend"]) for r in ranks] == [(0, 2, "gloo"), (1, 2, "gloo")]
    all_rows = set(ranks[0]["train_ids"])
    assert len(all_rows) == TRAIN_ROWS
    assert list(ranks[0]["seen"]) == list(ranks[1]["seen"]) == [str(epoch) for epoch in range(EPOCHS)]
    for epoch in ranks[0]["seen"]:
        first, second = (r["seen"][epoch] for r in ranks)
        assert len(first) == len(second) == TRAIN_ROWS // 2  # no row twice within a process
        assert len(set(first)) == len(first) and len(set(second)) == len(second)
        assert not set(first) & set(second)  # disjoint …
        assert set(first) | set(second) == all_rows  # … and complete
    assert ranks[0]["seen"]["0"] != ranks[0]["seen"]["1"]  # a new order every epoch


def test_only_the_main_process_saves_a_model(runs):
    main, other = record(runs["two"], 0), record(runs["two"], 1)
    assert other["saves"] == []
    assert main["saves"].count(str(runs["two"] / "model")) == 1
    assert set(main["saves"]) == {str(runs["two"] / "model"), str(runs["two"] / "training" / "best_model")}
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (runs["two"] / "model" / name).is_file()
    assert not [p.name for p in runs["two"].iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_two_processes_end_where_one_process_with_the_same_global_batch_ends(runs):
    from safetensors.torch import load_file

    two, one = record(runs["two"], 0), record(runs["one"], 0)
    assert record(runs["two"], 1)["final_eval"] == two["final_eval"]  # both processes score all 96 sentences
    assert two["global_step"] == one["global_step"] == EPOCHS * TRAIN_ROWS // 16
    scores, reference = two["final_eval"], one["final_eval"]
    assert scores["eval_n"] == reference["eval_n"] == VALIDATION_ROWS
    assert scores["eval_loss"] == pytest.approx(reference["eval_loss"], abs=1e-4)
    assert scores["eval_accuracy"] == pytest.approx(reference["eval_accuracy"], abs=1 / VALIDATION_ROWS)
    assert scores["eval_macro_f1"] == pytest.approx(reference["eval_macro_f1"], abs=1 / VALIDATION_ROWS)
    assert reference["eval_accuracy"] > 0.6  # it learned something: a constant model would agree trivially
    weights_two, weights_one = load_file(runs["two"] / "model/model.safetensors"), \
        load_file(runs["one"] / "model/model.safetensors")
    assert max((weights_two[k] - weights_one[k]).abs().max().item() for k in weights_one) <= 1e-5
