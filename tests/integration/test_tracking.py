"""Experiment tracking: `report_to` names any tracker Accelerate supports, and a tiny run logs the same losses,
evaluations and hyperparameters to TensorBoard, W&B (offline, no login) and MLflow (SQLite in the run folder)."""
from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from accelerate.utils import LoggerType
from datasets import DatasetDict
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto import wandb_internal_pb2

from otherdata_utils import modeling, preflight, trackers, train
from otherdata_utils.config import TRACKER_PACKAGES, Config, ConfigError

LABELS = ["neg", "pos"]
# What could make W&B or MLflow log somewhere else than the run folder, or find a login to use.
TRACKER_ENV = ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_PROJECT", "WANDB_BASE_URL",
               "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TAGS", "MLFLOW_NESTED_RUN")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Two epochs of 4 steps, a loss logged every step and an evaluation per epoch; nothing saved."""
    return Config(
        model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), quiet=True,
        run_name="tiny-tracked", max_seq_length=32, learning_rate=2e-3, per_device_train_batch_size=8,
        per_device_eval_batch_size=16, num_train_epochs=2, logging_steps=1, eval_strategy="epoch",
        save_strategy="no", load_best_model_at_end=False, seed=7,
    )


@pytest.fixture(scope="module")
def tokenized(uci_sentences, base_config: Config) -> DatasetDict:
    """32 training and 16 validation sentences, tokenised."""
    tokenizer = modeling.load_model_and_tokenizer(base_config, LABELS)[1]
    splits = DatasetDict(train=uci_sentences["train"].shuffle(seed=0).select(range(32)),
                         validation=uci_sentences["validation"].shuffle(seed=0).select(range(16)))
    return modeling.tokenize_splits(splits, tokenizer, base_config)


def fit(config: Config, tokenized: DatasetDict, output_dir: Path) -> train.TrainResult:
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    return train.train(config, model, tokenizer, tokenized, output_dir=output_dir, label_names=LABELS)


@pytest.fixture(scope="module")
def tracked(base_config, tokenized, tmp_path_factory) -> Iterator[tuple[Config, train.TrainResult, Path, str]]:
    """The tiny run logged to all three trackers, with no W&B credentials anywhere W&B looks and its home folders
    in a temporary folder; yields the config, the result, the run folder and what the run printed."""
    root = tmp_path_factory.mktemp("tracked")
    config = base_config.replace(report_to=["tensorboard", "wandb", "mlflow"])
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(printed):
        for name in TRACKER_ENV:
            env.delenv(name, raising=False)
        env.setenv("NETRC", str(root / "no-netrc"))
        for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            env.setenv(name, str(root / "wandb-home" / name.lower()))
        result = fit(config, tokenized, root / "run")
    yield config, result, root / "run", printed.getvalue()


def logged_by_train(result: train.TrainResult) -> dict[str, list[tuple[int, float]]]:
    """Every value train() recorded in its history, as (step, value) pairs per name."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in result.history:
        for key, value in row.items():
            if key not in ("step", "epoch"):
                series.setdefault(key, []).append((row["step"], value))
    return series


def test_tensorboard_holds_the_losses_evaluations_and_hyperparameters(tracked):
    config, result, run, _ = tracked
    folder = run / "tensorboard" / trackers.TRACKER_PROJECT
    events = EventAccumulator(str(folder))
    events.Reload()
    expected = logged_by_train(result)
    assert set(events.Tags()["scalars"]) == set(expected)
    for key, series in expected.items():
        # TensorBoard stores float32
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(s, pytest.approx(v, rel=1e-6)) for s, v in series]
    hparams = yaml.safe_load(next(folder.glob("*/hparams.yml")).read_text())
    assert hparams["learning_rate"] == config.learning_rate and hparams["run_name"] == "tiny-tracked"


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of an offline run's .wandb file: a 7-byte W&B header, then LevelDB-log blocks of 32 KiB whose
    chunks (7-byte header: crc, length, type) make up one protobuf record each (FULL) or several (FIRST...LAST)."""
    data, block, position, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_runs_offline_in_the_run_folder_and_holds_the_same_values(tracked):
    config, result, run, printed = tracked
    (offline_run,) = (run / "wandb").glob("offline-run-*")
    assert f"wandb sync {offline_run}" in printed
    history: dict[str, list[tuple[int, float]]] = {}
    hyperparameters = {}
    for record in wandb_records(next(offline_run.glob("*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            for key, value in row.items():
                if not key.startswith("_"):
                    history.setdefault(key, []).append((row["_step"], value))
        elif kind == "run":
            assert record.run.project == trackers.TRACKER_PROJECT and record.run.display_name == "tiny-tracked"
            hyperparameters.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            hyperparameters.update({item.key: json.loads(item.value_json) for item in record.config.update})
    assert history == logged_by_train(result)
    assert hyperparameters["learning_rate"] == config.learning_rate and hyperparameters["seed"] == config.seed


def test_mlflow_keeps_a_sqlite_store_in_the_run_folder_with_the_same_values(tracked):
    config, result, run, _ = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow' / 'mlflow.db'}")
    (logged_run,) = client.search_runs([client.get_experiment_by_name(trackers.TRACKER_PROJECT).experiment_id])
    assert logged_run.info.run_name == "tiny-tracked"
    expected = logged_by_train(result)
    assert set(logged_run.data.metrics) == set(expected)
    for key, series in expected.items():
        history = sorted(client.get_metric_history(logged_run.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(s, pytest.approx(v)) for s, v in series]
    assert logged_run.data.params["learning_rate"] == str(config.learning_rate)


def test_the_run_logged_every_loss_and_evaluation(tracked):
    _, result, _, _ = tracked
    expected = logged_by_train(result)
    assert [step for step, _ in expected["loss"]] == list(range(1, 9))
    assert [step for step, _ in expected["eval_macro_f1"]] == [4, 8]


def test_report_to_none_logs_nowhere(base_config, tokenized, tmp_path):
    assert base_config.report_to == "none" and base_config.trackers == []
    fit(base_config, tokenized, tmp_path)
    assert not [p.name for p in tmp_path.iterdir() if p.name in (*TRACKER_PACKAGES, "mlruns")]


def test_a_tracker_that_is_not_installed_stops_training_before_it_starts(base_config, tokenized, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(trackers, "get_available_trackers", lambda: [LoggerType.TENSORBOARD])
    with pytest.raises(ConfigError, match=r"'wandb' is not installed: pip install wandb"):
        fit(base_config.replace(report_to=["tensorboard", "wandb"]), tokenized, tmp_path)
    assert not list(tmp_path.iterdir())
    # the runner's pre-flight says so before any data is loaded or run folder touched
    with pytest.raises(ConfigError, match=r"'wandb' is not installed: pip install wandb"):
        preflight.check(base_config.replace(report_to="wandb", runs_dir=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()
