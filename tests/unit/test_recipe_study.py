"""The recipe study's design on in-memory rows (no data folder, no model): every grid recipe trains every few-shot arm
on the few-shot study's own draws of the DEVELOPMENT target, scored on its validation rows, the study's target is
refused if present, the rule picks one recipe per (k, arm), and a few-shot study applies the recipes to its cells
(all of them, or it refuses)."""
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.studies import few_shot, recipe
from otherdata_utils.studies.engine import rows_fingerprint
from otherdata_utils.studies.store import ordered_fingerprint

REPO = Path(__file__).resolve().parents[2]
DEVELOPMENT = {"replicates": {"split_seeds": [1, 2], "seeds": [1]}, "target_domain": "electronics",
               "study.recipe.study_target": "kitchen", "study.recipe.k_values": [4],
               "study.few_shot.other_rows": 10, "study.few_shot.steps": "equal_steps",
               "learning_rate": 1e-4, "num_train_epochs": 2}


def _rows(split: str, per_class: int, domains=("electronics", "books")) -> Dataset:
    rows = [(f"{split}-{domain}-{label}-{i}", f"{domain} text {label} {i}", label, domain, "reviews")
            for domain in domains for label in (0, 1) for i in range(per_class)]
    features = Features({"id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                         "source": Value("string")})
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features)


DATA = DatasetDict(train=_rows("train", 20), validation=_rows("validation", 3), test=_rows("test", 3))


def test_every_grid_recipe_trains_every_arm_on_the_same_draw_scored_on_development_validation_rows():
    config = load_config(None, DEVELOPMENT)
    cells, validation = recipe.recipe_cells(config, DATA)
    recipes = recipe.grid_recipes(config)
    assert [recipe.recipe_label(settings) for settings in recipes] == [
        "lr 5e-05 · epochs 2", "lr 5e-05 · epochs 4", "lr 0.0001 · epochs 2", "lr 0.0001 · epochs 4",
        "lr 0.0002 · epochs 2", "lr 0.0002 · epochs 4"]
    assert len(cells) == 1 * 2 * 2 * 6  # k × split seeds × arms × recipes
    assert set(validation["domain"]) == {"electronics"} and len(validation) == 6
    by_draw = {}
    for cell in cells:
        assert cell.config.learning_rate == cell.facts["learning_rate"]
        assert cell.config.num_train_epochs == cell.facts["num_train_epochs"]
        by_draw.setdefault((cell.split_seed, cell.facts["strategy"]), []).append(cell)
    assert {strategy for _, strategy in by_draw} == {"target_only", "concat"}
    for (split, strategy), group in by_draw.items():
        assert [cell.arm for cell in group] == [recipe.recipe_label(settings) for settings in recipes]
        assert len({ordered_fingerprint(cell.train) for cell in group}) == 1  # recipes differ in nothing else
        assert len(group[0].train) == 8 + 10  # the equal-steps budget: k-shot rows + the other-row pool
        assert ("books" in set(group[0].train["domain"])) == (strategy == "concat")
    # the draws are the few-shot study's own at k
    view = config.replace(study={"few_shot": {"k_values": [4], "strategies": ["target_only"]}})
    assert {rows_fingerprint(split.target) for split in few_shot.few_shot_splits(view, DATA["train"])} == {
        rows_fingerprint(cells[0].train.filter(lambda row: row["domain"] == "electronics")),
        rows_fingerprint([c for c in cells if c.split_seed == 2][0].train.filter(
            lambda row: row["domain"] == "electronics"))}


def test_the_study_target_must_be_absent_and_differ_from_the_development_target():
    with_kitchen = DatasetDict(train=_rows("train", 20, ("electronics", "kitchen")),
                               validation=_rows("validation", 3), test=_rows("test", 3))
    with pytest.raises(ValueError, match="'kitchen' has rows in the prepared train split"):
        recipe.recipe_cells(load_config(None, DEVELOPMENT), with_kitchen)
    with pytest.raises(ValueError, match="is this file's target_domain"):
        recipe.recipe_cells(load_config(None, {**DEVELOPMENT, "study.recipe.study_target": "electronics"}), DATA)


def test_the_reference_must_be_a_grid_point_and_bad_grids_are_refused_naming_the_parameter():
    with pytest.raises(ValueError, match="must hold the file's own recipe"):
        recipe.reference_recipe(load_config(None, {**DEVELOPMENT, "learning_rate": 3e-5}))
    with pytest.raises(ConfigError, match="study.recipe.grid"):
        load_config(None, {**DEVELOPMENT, "study.recipe.grid": {"max_seq_length": [64, 128]}})
    with pytest.raises(ConfigError, match="study.recipe.grid"):
        load_config(None, {**DEVELOPMENT, "study.recipe.grid": {"learning_rate": [1e-4, 1e-4]}})
    with pytest.raises(ConfigError, match="study.recipe.study_target"):
        load_config(None, {"study.recipe.k_values": [8]})


def test_the_rule_picks_the_highest_mean_per_k_and_arm_ties_to_grid_order():
    config = load_config(None, {**DEVELOPMENT, "study.recipe.grid": {"learning_rate": [5e-5, 1e-4, 2e-4]}})
    summary = pd.DataFrame({"k_label": ["4"] * 6, "strategy": ["target_only"] * 3 + ["concat"] * 3,
                            "arm": ["lr 5e-05", "lr 0.0001", "lr 0.0002"] * 2,
                            "mean": [0.70, 0.74, 0.72, 0.80, 0.78, 0.80]})
    chosen = recipe.chosen_recipes(config, summary)
    assert [(entry["arm"], entry["settings"]) for entry in chosen] == [
        ("target_only", {"learning_rate": 1e-4}), ("concat", {"learning_rate": 5e-5})]  # the tie: listed first
    assert [entry["reference_accuracy"] for entry in chosen] == [0.74, 0.78]
    block = recipe.recipes_yaml(chosen, "results/study_recipe_kitchen/")
    assert block.splitlines()[2] == "      - {k: 4, arm: target_only, settings: {learning_rate: 0.0001}}  # validation 0.740"
    # the block is what a few-shot params file takes
    parsed = load_config(None, {"study.few_shot.k_values": [4], "study.few_shot.strategies": ["target_only", "concat"],
                                "study.few_shot.recipes": [{"k": e["k"], "arm": e["arm"], "settings": e["settings"]}
                                                           for e in chosen],
                                "study.few_shot.recipes_from": "results/study_recipe_kitchen/"})
    assert [r.settings for r in few_shot.few_shot_params(parsed).recipes] == [{"learning_rate": 1e-4},
                                                                             {"learning_rate": 5e-5}]


KITCHEN = {"replicates": {"split_seeds": [1], "seeds": [1, 2]}, "target_domain": "electronics",
           "study.few_shot.k_values": [4], "study.few_shot.strategies": ["target_only", "concat"],
           "study.few_shot.other_rows": 10, "learning_rate": 1e-4}


def test_a_few_shot_study_trains_each_arm_with_its_recipe_and_refuses_a_missing_one():
    recipes = [{"k": 4, "arm": "target_only", "settings": {"learning_rate": 2e-4, "num_train_epochs": 4}},
               {"k": 4, "arm": "concat", "settings": {"learning_rate": 5e-5}}]
    config = load_config(None, {**KITCHEN, "study.few_shot.recipes": recipes,
                                "study.few_shot.recipes_from": "results/study_recipe_kitchen/"})
    cells = few_shot.with_recipes(config, few_shot.few_shot_cells(config, DATA["train"], DATA["validation"]))
    assert len(cells) == 2 * 2  # seeds × arms
    assert {(cell.arm, cell.config.learning_rate, cell.config.num_train_epochs) for cell in cells} == {
        ("target_only", 2e-4, 4), ("concat", 5e-5, config.num_train_epochs)}
    assert few_shot.recipe_tuning(few_shot.few_shot_params(config)) == {
        "learning_rate": "per (k, arm) from results/study_recipe_kitchen/",
        "num_train_epochs": "per (k, arm) from results/study_recipe_kitchen/"}
    partial = load_config(None, {**KITCHEN, "study.few_shot.recipes": recipes[:1],
                                 "study.few_shot.recipes_from": "results/study_recipe_kitchen/"})
    with pytest.raises(ValueError, match=r"no recipe for \(k, arm\) \[\('4', 'concat'\)\]"):
        few_shot.with_recipes(partial, few_shot.few_shot_cells(partial, DATA["train"], DATA["validation"]))
    plain = load_config(None, KITCHEN)
    untouched = few_shot.few_shot_cells(plain, DATA["train"], DATA["validation"])
    assert few_shot.with_recipes(plain, untouched) is untouched  # no recipes: every cell as before, keys unchanged


def test_recipes_need_their_source_and_known_settings():
    with pytest.raises(ConfigError, match="recipes_from"):
        load_config(None, {"study.few_shot.recipes": [{"k": 8, "arm": "concat", "settings": {"learning_rate": 1e-4}}]})
    with pytest.raises(ConfigError, match="max_seq_length"):
        load_config(None, {"study.few_shot.recipes": [{"k": 8, "arm": "concat", "settings": {"max_seq_length": 64}}],
                           "study.few_shot.recipes_from": "x"})


@pytest.mark.parametrize("name, development, study_target", [
    ("study_recipe_kitchen", "electronics", "kitchen_&_housewares"), ("study_recipe_yelp", "amazon", "yelp")])
def test_the_published_params_files_plan_48_models_on_a_development_target(name, development, study_target):
    config = load_config(REPO / "params" / f"{name}.yaml")
    plan = recipe.plan(config)
    assert plan.models == 48 and config.target_domain == development
    assert recipe.recipe_params(config).study_target == study_target and "17_recipe" in config.notebooks
    assert recipe.recipe_label(recipe.reference_recipe(config)) == "lr 0.0001 · epochs 2"
