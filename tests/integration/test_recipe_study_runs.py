"""The recipe study end to end at CI size: the tiny random BERT on the packaged UCI sentences, amazon as the
development target with imdb as its other data and yelp absent, every grid recipe per (k, arm) scored on amazon's
validation rows, the rule's choice recorded and given as the block a few-shot params file takes; a re-run plans
nothing to train."""
import json

import pytest
import yaml

from otherdata_utils import runs
from otherdata_utils.config import load_config
from otherdata_utils.studies import few_shot, recipe
from otherdata_utils.studies.engine import prepared_data, rows_fingerprint
from otherdata_utils.studies.sampling import domain_rows

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:leakage")]

TINY = {"model_name_or_path": "tiny-random", "max_seq_length": 32, "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 32, "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no",
        "save_strategy": "no", "quiet": True, "max_eval_samples": 40, "max_test_samples": 40,
        "sources": ["uci_sentences:amazon", "uci_sentences:imdb"], "target_domain": "amazon",
        "replicates": {"split_seeds": [1, 2], "seeds": [1]},
        "study": {"recipe": {"study_target": "yelp", "k_values": [4], "strategies": ["target_only", "concat"],
                             "grid": {"learning_rate": [1e-3, 3e-3], "num_train_epochs": [1]}},
                  "few_shot": {"other_rows": 8, "steps": "equal_steps"}}}


def test_every_recipe_is_scored_on_development_validation_rows_and_the_choice_is_the_best_mean(tmp_path,
                                                                                              packaged_data_dir):
    config = load_config(None, {**TINY, "data_dir": str(packaged_data_dir), "output_dir": str(tmp_path / "run")})
    result = recipe.recipe_study(config)
    cells = result.cells
    assert len(cells) == 2 * 2 * 2  # arms × recipes × split seeds
    assert set(cells["arm"]) == {"lr 0.001 · epochs 1", "lr 0.003 · epochs 1"}
    assert list(cells["n_train"].unique()) == [16]  # 4 amazon rows per class + 8 other rows, every arm
    prepared, _ = prepared_data(config)
    assert "yelp" not in set(prepared["train"]["domain"])
    validation = domain_rows(prepared["validation"], "amazon")
    assert set(cells["test_rows"]) == {rows_fingerprint(validation)}  # scored on validation rows, never test

    means = cells.groupby(["strategy", "arm"])["accuracy"].mean()
    recorded = json.loads(runs.run_folder(config).metrics.read_text())["studies"]["recipe"]
    for entry in recorded["chosen"]:
        best = means.loc[entry["arm"]]
        assert entry["validation_accuracy"] == pytest.approx(best.max())
        label = recipe.recipe_label(entry["settings"])
        assert best[label] == best.max() and (best.max() > best.drop(label).max() or label == best.index[0])
    assert recorded["development_target"] == "amazon" and recorded["study_target"] == "yelp"

    block = yaml.safe_load("study:\n  few_shot:\n" + recipe.recorded_recipes_yaml(config))
    applied = load_config(None, {"study.few_shot.k_values": [4], "study.few_shot.strategies": ["target_only", "concat"],
                                 **{f"study.few_shot.{key}": value for key, value in block["study"]["few_shot"].items()}})
    assert [(r.arm, r.settings) for r in few_shot.few_shot_params(applied).recipes] == [
        (entry["arm"], entry["settings"]) for entry in recorded["chosen"]]

    done = recipe.plan(config)
    assert (done.reused, done.to_train) == (8, 0)  # a re-run trains nothing
