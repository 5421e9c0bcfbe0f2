"""A study's plan counts the cells its run folder already holds from the very cells `run_cells` will get: a finished
study plans nothing to train, one grown by a seed only the new seed's cells. The first test needs no model and no
data (a fake fit); the second runs the time study on the tiny model and tens of Blitzer reviews."""
import pytest
from datasets import Dataset

from otherdata_utils import studies
from otherdata_utils.config import Config, load_config
from otherdata_utils.studies import engine, reuse, temporal

LABELS = ["neg", "pos"]


def _rows(texts, prefix):
    return Dataset.from_dict({"id": [f"{prefix}{i}" for i in range(len(texts))], "text": list(texts),
                              "label": [i % 2 for i in range(len(texts))], "domain": ["d"] * len(texts)})


TRAIN, VALIDATION = _rows(["good", "bad", "fine", "awful"], "r"), _rows(["ok", "meh"], "v")
TEST, OTHER_TEST = _rows(["great", "poor"], "t"), _rows(["nice", "dull", "grim"], "u")


def sized_fit(config, train, validation, test, label_names, work_dir):
    """A fake fit: scores by training-row count."""
    return {"n_train": len(train), "accuracy": len(train) / 10, "train_seconds": 0.0, "correct": "1" * len(test)}


def _cells(seeds):
    return [engine.Cell(arm="a", seed=seed, train=TRAIN, validation=VALIDATION, fit=sized_fit) for seed in seeds]


def test_a_plan_counts_the_stored_cells_of_every_run_cells_call_and_carries_their_notes(tmp_path):
    config = Config(output_dir=str(tmp_path / "run"), quiet=True, model_name_or_path="tiny-random")
    plan = engine.StudyPlan("toy", ["a"], [(1, 1), (2, 2)], {"fine-tuned": 4})
    assert reuse.with_reuse(plan, config, lambda _: []).reused is None  # nothing stored: the plan as it was
    engine.run_cells(config, _cells([1, 2]), TEST, LABELS)
    engine.run_cells(config, _cells([1]), OTHER_TEST, LABELS)  # another call: other test rows, other keys

    def planned(_):
        return [reuse.PlannedCells(_cells([1, 2]), TEST, LABELS),
                reuse.PlannedCells(_cells([1, 2]), OTHER_TEST, LABELS, note="the second call's note")]

    counted = reuse.with_reuse(plan, config, planned)
    assert (counted.reused, counted.to_train) == (3, 1)  # seed 2 on the other test rows was never trained
    assert "3 of 4 cells reused, 1 to train (the second call's note)" in counted.describe()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_finished_time_study_plans_no_training_and_a_grown_one_only_its_new_seed(tmp_path, data_dir):
    config = load_config(None, {
        "sources": ["blitzer_mds"], "data_dir": str(data_dir), "output_dir": str(tmp_path / "run"),
        "model_name_or_path": "tiny-random", "max_seq_length": 32, "per_device_train_batch_size": 8,
        "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no", "save_strategy": "no",
        "replicates": {"seeds": [1, 2]}, "quiet": True, "max_train_samples": 24, "max_eval_samples": 8,
        "max_test_samples": 24})
    assert temporal.plan(config).reused is None
    result = studies.time_study(config)
    done = temporal.plan(config)
    assert (done.reused, done.to_train) == (done.models, 0) and done.models == len(result.cells) == 6
    grown = temporal.plan(config.replace(replicates={"seeds": [1, 2, 3]}))
    assert (grown.reused, grown.to_train) == (6, 3)  # the third seed's three arms
