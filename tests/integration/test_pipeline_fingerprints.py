"""Steps record the parameters their output was made with: a later step rebuilds an output made with other values (or
with none recorded) and says so, and reuses one made with the same; progress bars show unless a batch run or the
params ask for quiet. Real UCI sentences and the tiny random BERT."""
import json
import warnings
from pathlib import Path

import pytest

from otherdata_utils import pipeline
from otherdata_utils.config import Config, load_config
from otherdata_utils.runs import BATCH_ENV, is_quiet, run_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def config(packaged_data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> Config:
    """A run folder of its own, mixed from 60 training rows; two optimizer steps of training, no checkpoints."""
    return load_config(None, {
        "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir), "target_domain": "yelp",
        "max_train_samples": 60,
        "max_eval_samples": 30, "max_test_samples": 30, "model_name_or_path": str(tiny_model_dir),
        "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "run"), "max_seq_length": 32,
        "per_device_train_batch_size": 8, "max_steps": 2, "eval_strategy": "no", "save_strategy": "no",
        "quiet": True})


def prepare_and_mix(config: Config) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
        pipeline.prepare_data(config)
    pipeline.build_training_set(config)


def test_a_training_set_mixed_with_other_parameters_is_rebuilt_and_one_with_the_same_reused(config, capsys):
    prepare_and_mix(config)
    paths = run_folder(config)
    assert json.loads(paths.step_record("mix").read_text())["params"]["max_train_samples"] == 60
    capsys.readouterr()

    fewer = config.replace(max_train_samples=40)
    train = pipeline.load_training_set(fewer)
    assert len(train) == 40
    said = capsys.readouterr().out.splitlines()
    assert said == ["mix step: its output in the run folder was made with max_train_samples=60 (now 40); "
                    "rebuilding it"]
    assert json.loads(paths.step_record("mix").read_text())["params"]["max_train_samples"] == 40

    # the same parameters, and those that change no output (the runner's resume, progress), reuse it untouched
    made = (paths.train_set / "state.json").stat().st_mtime_ns
    again = pipeline.load_training_set(fewer.replace(resume_from_checkpoint="auto", quiet=False))
    assert len(again) == 40 and again["id"] == train["id"]
    assert (paths.train_set / "state.json").stat().st_mtime_ns == made
    assert capsys.readouterr().out == ""


def test_the_cleaned_data_is_prepared_again_for_another_seed(config, capsys):
    prepare_and_mix(config)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = pipeline.load_prepared(config.replace(seed=7))
    assert capsys.readouterr().out.startswith("data step: its output in the run folder was made with seed=42 (now 7)")
    assert json.loads(run_folder(config).step_record("data").read_text())["params"]["seed"] == 7
    # seed 7 carves and caps other validation rows than seed 42 did
    assert sorted(other["validation"]["id"]) != sorted(pipeline.load_prepared(config)["validation"]["id"])


def test_an_output_without_a_record_is_rebuilt(config, capsys):
    prepare_and_mix(config)
    paths = run_folder(config)
    paths.step_record("mix").unlink()  # as a run folder made before steps recorded their parameters
    capsys.readouterr()
    assert len(pipeline.load_training_set(config)) == 60
    assert capsys.readouterr().out == ("mix step: its output in the run folder has no record of the parameters it "
                                       "was made with; rebuilding it\n")
    assert paths.step_record("mix").is_file()


def test_a_model_trained_with_other_parameters_is_trained_again_before_evaluation(config, capsys):
    prepare_and_mix(config)
    pipeline.finetune(config)
    paths = run_folder(config)
    weights = paths.model / "model.safetensors"
    made = weights.stat().st_mtime_ns
    pipeline.evaluate_splits(config, splits=("test",))
    assert weights.stat().st_mtime_ns == made  # evaluated the model 03 left
    assert paths.step_record("evaluate").is_file()
    capsys.readouterr()

    pipeline.evaluate_splits(config.replace(learning_rate=1e-3), splits=("test",))
    assert capsys.readouterr().out.splitlines()[0] == ("finetune step: its output in the run folder was made with "
                                                       "learning_rate=5e-05 (now 0.001); rebuilding it")
    assert weights.stat().st_mtime_ns != made
    recorded = json.loads(paths.step_record("finetune").read_text())
    assert recorded["params"]["learning_rate"] == 1e-3 and len(recorded["fingerprint"]) == 16


def test_retraining_drops_the_evaluation_of_the_model_it_replaces(config):
    prepare_and_mix(config)
    pipeline.finetune(config)
    pipeline.evaluate_splits(config, splits=("test",))
    paths = run_folder(config)
    pipeline.finetune(config.replace(learning_rate=1e-3))
    # 06 must not describe the new model with the old one's test scores
    assert not paths.step_record("evaluate").exists()
    assert not pipeline.reusable(config.replace(learning_rate=1e-3), "evaluate", made=True)


# --- progress bars: shown in interactive use, quiet in batch runs -----------------------------------------------------

def test_quiet_left_unset_is_quiet_in_a_batch_run_and_shows_progress_interactively(monkeypatch):
    unset = Config()
    assert unset.quiet is None
    monkeypatch.delenv(BATCH_ENV, raising=False)
    assert not is_quiet(unset)
    monkeypatch.setenv(BATCH_ENV, "0")
    assert not is_quiet(unset)
    monkeypatch.setenv(BATCH_ENV, "1")
    assert is_quiet(unset)
    # what the params set wins either way
    assert not is_quiet(Config(quiet=False))
    monkeypatch.delenv(BATCH_ENV)
    assert is_quiet(Config(quiet=True))
    assert is_quiet(unset, batch=True) and not is_quiet(Config(quiet=False), batch=True)


@pytest.mark.parametrize("batch, bar_shown", [(None, True), ("1", False)])
def test_the_training_bar_shows_interactively_and_not_in_a_batch_run(config, monkeypatch, capsys, batch, bar_shown):
    if batch is None:
        monkeypatch.delenv(BATCH_ENV, raising=False)
    else:
        monkeypatch.setenv(BATCH_ENV, batch)
    unset = config.replace(quiet=None)
    prepare_and_mix(unset)
    capsys.readouterr()
    pipeline.finetune(unset)
    assert ("Training: 100%" in capsys.readouterr().err) == bar_shown
