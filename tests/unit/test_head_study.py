"""The head study's design on in-memory rows (no data folder, no model): its arms differ only in `pooling`, both arms
of a replicate train on the same target rows at each k, every cell is scored on the target's validation rows and the
test split is never read, and the choice follows the rule stated before running."""
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.studies import few_shot, head, setting_arms
from otherdata_utils.studies.engine import rows_fingerprint
from otherdata_utils.studies.store import ordered_fingerprint

REPO = Path(__file__).resolve().parents[2]
KITCHEN = {"replicates": {"split_seeds": [1, 2, 3], "seeds": [1]}, "target_domain": "kitchen",
           "study.few_shot.steps": "equal_target_visits"}


def _rows(split: str, per_class: int) -> Dataset:
    """`per_class` rows per label in each of two domains, ids unique per split."""
    rows = [(f"{split}-{domain}-{label}-{i}", f"{domain} text {label} {i}", label, domain, "reviews")
            for domain in ("kitchen", "books") for label in (0, 1) for i in range(per_class)]
    features = Features({"id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                         "source": Value("string")})
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features)


# no test split at all: building the study's cells cannot read one
NO_TEST = DatasetDict(train=_rows("train", 20), validation=_rows("validation", 3))


def _differences(a, b) -> set[str]:
    first, second = a.to_params(), b.to_params()
    return {name for name in first if first[name] != second[name]}


def test_the_arms_are_cls_then_mean_and_differ_only_in_pooling():
    arms = head.head_arms(load_config(None, KITCHEN))
    assert [(arm, facts) for arm, _, facts in arms] == [("cls", {"pooling": "cls"}), ("mean", {"pooling": "mean"})]
    assert [arm_config.pooling for _, arm_config, _ in arms] == ["cls", "mean"]
    assert _differences(arms[0][1], arms[1][1]) == {"pooling"}


def test_cells_per_k_share_rows_across_arms_and_are_scored_on_validation_rows_without_reading_test():
    config = load_config(None, {**KITCHEN, "study.head.k_values": [4, None], "study.head.max_all_rows": 30})
    base, validation, texts = head.replicate_cells(config, NO_TEST)
    cells = head.head_cells(config, base)
    assert len(cells) == 2 * 3 * 2  # k values × split seeds × arms
    assert rows_fingerprint(validation) == rows_fingerprint(NO_TEST["validation"].filter(
        lambda row: row["domain"] == "kitchen")) and len(validation) == 6
    assert texts[1] == "all: every kitchen training row once, no other data (at most 30, drawn per split seed)"
    by_replicate = {}
    for cell in cells:
        by_replicate.setdefault((cell.facts["k_label"], cell.split_seed), []).append(cell)
        assert cell.fit is None and set(cell.train["domain"]) == {"kitchen"}  # the target alone, no other data
        assert rows_fingerprint(cell.validation) == rows_fingerprint(validation) and cell.facts["pooling"] == cell.config.pooling
    for (k, _), pair in by_replicate.items():
        assert [cell.arm for cell in pair] == ["cls", "mean"]
        assert len({ordered_fingerprint(cell.train) for cell in pair}) == 1
        assert len(pair[0].train) == (8 if k == "4" else 30)  # 4 per class; all 40 kitchen rows capped at 30
    draws = few_shot.few_shot_splits(setting_arms.few_shot_view(config, 4), NO_TEST["train"])
    assert {(split.split_seed, rows_fingerprint(split.target)) for split in draws} == {
        (split, rows_fingerprint(pair[0].train)) for (k, split), pair in by_replicate.items() if k == "4"}
    assert len({rows_fingerprint(pair[0].train) for (k, _), pair in by_replicate.items() if k == "all"}) == 3


def test_the_planned_cells_are_scored_on_the_validation_rows(monkeypatch):
    config = load_config(None, {**KITCHEN, "study.head.k_values": [4]})
    monkeypatch.setattr(head, "prepared_data", lambda _config: (NO_TEST, ["negative", "positive"]))
    planned = head.planned_cells(config)
    assert rows_fingerprint(planned.test) == rows_fingerprint(planned.cells[0].validation)
    assert set(planned.test["id"]) == {row_id for row_id in NO_TEST["validation"]["id"] if "kitchen" in row_id}


def test_the_plan_counts_two_poolings_per_k_and_replicate():
    plan = head.plan(load_config(None, KITCHEN))
    assert plan.arms == ["cls", "mean"] and head.head_params(load_config(None, KITCHEN)).k_values == [8, 32, None]
    assert plan.cells == {"fine-tuned": 18} and plan.reused is None


def test_bad_head_parameters_are_refused_naming_the_parameter():
    with pytest.raises(ConfigError, match="study.head.k_values"):
        load_config(None, {"study.head.k_values": [8, 8]})
    with pytest.raises(ConfigError, match="study.head.max_all_rows"):
        load_config(None, {"study.head.max_all_rows": 1})


def test_the_choice_follows_the_rule_averaged_over_k_then_targets_ties_to_mean():
    summary = pd.DataFrame({"k_label": ["8", "8", "all", "all"], "arm": ["cls", "mean"] * 2,
                            "mean": [0.70, 0.76, 0.90, 0.88]})
    side = head.target_side(summary)
    assert side["mean_minus_cls_by_k"] == pytest.approx({"8": 0.06, "all": -0.02})
    assert side["mean_minus_cls"] == pytest.approx(0.02)
    assert head.pooling_choice({"kitchen": 0.02, "yelp": -0.03})["choice"] == "cls"
    assert head.pooling_choice({"kitchen": 0.03, "yelp": -0.03})["choice"] == "mean"  # a tie goes to mean
    assert head.pooling_choice({"kitchen": 0.02})["rule"] == head.RULE


@pytest.mark.parametrize("name, target", [("study_head_kitchen", "kitchen_&_housewares"), ("study_head_yelp", "yelp")])
def test_the_published_params_files_plan_18_models_on_their_target(name, target):
    config = load_config(REPO / "params" / f"{name}.yaml")
    plan = head.plan(config)
    assert plan.arms == ["cls", "mean"] and plan.models == 18 and config.target_domain == target
    assert head.head_params(config).k_values == [8, 32, None] and "16_head" in config.notebooks
