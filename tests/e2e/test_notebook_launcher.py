"""Fine-tuning over two processes from the notebook step (`num_processes: 2`: accelerate's notebook_launcher forks two
CPU processes on gloo) follows the loss curve of one process with the same global batch, and leaves one saved model.

The same 64 real UCI sentences train the tiny BERT, without dropout, for 3 epochs of 4 optimizer steps: on two
processes with 8 rows each (global batch 16), and on one process with batches of 8 accumulated twice. The seeded
sampler's batches 0, 2, 4, … go to process 0 and 1, 3, 5, … to process 1: the two batches one process accumulates
per step. So each process sees another batch than the single process at any moment, but every optimizer step
averages the gradients of the same 16 rows. Two halves summed in either order give the same floats, and halving is
exact, so here the curves agree to the bit (measured: 0.0). The tolerance, 1e-6 on a loss near 0.7, leaves room for
an all-reduce that sums in another order (more processes, another gloo build: about 1e-7 relative per step), while
the losses of different steps lie more than a thousand times that apart.
(Dropout is off because each process would draw the same masks from the same seed where one process draws fresh
ones per batch: that would compare random draws, not the placement.)
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from otherdata_utils import pipeline, step_records, train
from otherdata_utils.config import Config, load_config
from otherdata_utils.runs import run_folder

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # on a GPU host the launch takes a GPU per process, from a process that has not used CUDA: not this test's case
    pytest.mark.skipif(torch.cuda.device_count() > 0,
                       reason="forks two CPU processes (gloo): needs a host without GPUs"),
]

STEPS = 12  # 3 epochs × 64 rows / global batch 16
LOSS_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def model_without_dropout(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-no-dropout"
    shutil.copytree(tiny_model_dir, folder)
    settings = json.loads((folder / "config.json").read_text())
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    (folder / "config.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def runs(model_without_dropout: Path, packaged_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, tuple[Config, train.TrainResult]]:
    """The same fine-tuning on two processes (2 × 8 rows a step) and on one (8 rows accumulated twice)."""
    root = tmp_path_factory.mktemp("launcher")
    one = load_config(None, {
        "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir), "target_domain": "yelp",
        "max_train_samples": 64, "max_eval_samples": 32, "max_test_samples": 30,
        "model_name_or_path": str(model_without_dropout), "cache_dir": str(root / "cache"),
        "output_dir": str(root / "one"), "max_seq_length": 32, "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 2, "num_train_epochs": 3, "learning_rate": 2e-3, "logging_steps": 1,
        "eval_strategy": "epoch", "save_strategy": "no", "seed": 7, "quiet": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
        pipeline.prepare_data(one)
    pipeline.build_training_set(one)
    shutil.copytree(root / "one", root / "two")  # the same prepared rows and training set
    two = one.replace(output_dir=str(root / "two"), num_processes=2, gradient_accumulation_steps=1)
    return {"two": (two, pipeline.finetune(two)), "one": (one, pipeline.finetune(one))}


def losses(result: train.TrainResult) -> list[float]:
    return [row["loss"] for row in result.history if "loss" in row]


def test_two_processes_follow_the_loss_curve_of_one_process_with_the_same_global_batch(runs):
    (_, two), (_, one) = runs["two"], runs["one"]
    assert two.global_step == one.global_step == STEPS  # each process alone would take 24 steps of 8 rows
    assert len(losses(two)) == len(losses(one)) == STEPS
    assert losses(two) == pytest.approx(losses(one), abs=LOSS_TOLERANCE)
    # steps differ from one another by far more than the tolerance: agreeing step by step is not trivial
    assert max(losses(one)) - min(losses(one)) > 1000 * LOSS_TOLERANCE
    evaluations = [[row["eval_loss"] for row in result.history if "eval_loss" in row] for result in (two, one)]
    assert len(evaluations[0]) == 3 and evaluations[0] == pytest.approx(evaluations[1], abs=LOSS_TOLERANCE)


def test_the_launched_run_saves_one_model_that_loads_with_one_process_weights(runs):
    (config, _), (reference, _) = runs["two"], runs["one"]
    paths, reference_paths = run_folder(config), run_folder(reference)

    def saved_models(root: Path) -> set[str]:
        return {str(found.parent.relative_to(root)) for found in root.rglob("config.json")}

    assert saved_models(paths.root) == saved_models(reference_paths.root) == {"model", "training/best_model"}
    assert not [p for p in paths.root.rglob(".*")]  # no temporary file or folder left by an atomic write
    model = AutoModelForSequenceClassification.from_pretrained(paths.model)
    assert model.config.num_labels == 2
    weights, reference_weights = load_file(paths.model / "model.safetensors"), \
        load_file(reference_paths.model / "model.safetensors")
    assert max((weights[k] - reference_weights[k]).abs().max().item() for k in reference_weights) <= 1e-5
    with torch.inference_mode():  # the loaded weights are the saved ones, not a fresh head
        assert torch.equal(model.classifier.weight, weights["classifier.weight"])


def test_the_notebook_gets_what_one_process_returns_and_the_step_is_keyed_by_processes(runs):
    (config, result), (reference_config, reference) = runs["two"], runs["one"]
    paths = run_folder(config)
    assert isinstance(result, train.TrainResult) and result.best_model_dir == paths.training / "best_model"
    assert (result.global_step, result.best_step, result.epochs_completed, result.stopped_early) == \
        (reference.global_step, reference.best_step, reference.epochs_completed, reference.stopped_early)
    assert result.best_metric == pytest.approx(reference.best_metric, abs=1e-6)
    assert json.loads(paths.metrics.read_text())["train"]["started_from"] == reference_config.model_name_or_path
    recorded = json.loads(paths.step_record("finetune").read_text())["params"]
    assert recorded["num_processes"] == 2
    assert step_records.reusable(config, "finetune", made=True)
    # one process would train with half the global batch here: the model is not taken for its
    assert not step_records.reusable(config.replace(num_processes=1), "finetune", made=True)
