"""The few-shot study's selection arms on in-memory rows (no data folder, no model: DSIR importance needs none): each
adds as many other rows as concat's random pool, chosen for the split's own k-shot rows, at the same steps; the plan
counts them and the comparison with concat is its own table."""
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.studies import few_shot, selection_arms

WORDS = {"kitchen": "knife pan kettle blender spatula", "electronics": "knife pan kettle charger cable",
         "tweets": "lol omg follow retweet hashtag"}


def _rows(per_class: int) -> Dataset:
    rows = [(f"{domain}-{label}-{i}", f"{WORDS[domain]} {('good', 'bad')[label]} {i}", label, domain, "s")
            for domain in WORDS for label in (0, 1) for i in range(per_class)]
    features = Features({"id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                         "source": Value("string")})
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features)


STUDY = {"replicates": {"split_seeds": [1, 2], "seeds": [1, 2]}, "target_domain": "kitchen",
         "study.few_shot.k_values": [4], "study.few_shot.strategies": ["target_only", "concat"],
         "study.few_shot.other_rows": 20, "study.few_shot.selections": ["importance"]}


def test_a_selection_arm_adds_as_many_rows_as_concat_chosen_for_the_split_and_trains_as_many_steps():
    config = load_config(None, STUDY)
    train = _rows(20)
    cells = few_shot.few_shot_cells(config, train, train)
    assert few_shot.arm_names(config) == ["target_only", "concat", "concat ~importance"]
    assert len(cells) == 2 * 2 * 3  # split seeds × seeds × arms
    for split_seed in (1, 2):
        of_split = {cell.arm: cell for cell in cells if cell.split_seed == split_seed and cell.seed == 1}
        chosen, random = of_split["concat ~importance"], of_split["concat"]
        assert len(chosen.train) == len(random.train) == 8 + 20  # equal steps: k-shot rows + the pool
        target = [i for i, d in zip(chosen.train["id"], chosen.train["domain"]) if d == "kitchen"]
        assert sorted(target) == sorted(i for i, d in zip(random.train["id"], random.train["domain"]) if d == "kitchen")
        other = [d for d in chosen.train["domain"] if d != "kitchen"]
        assert other.count("electronics") == 20  # the vocabulary the kitchen rows share: every pick
        assert chosen.facts["selection"] == "importance" and chosen.facts["selected_from"] == "electronics 20"
        assert "selection" not in random.facts  # concat's facts, and so its cell keys, stay as before


def test_the_plan_counts_selection_arms_and_selections_need_concat_at_one_dose():
    plan = few_shot.plan(load_config(None, STUDY))
    assert plan.cells == {"fine-tuned": 3 * 4} and plan.arms == ["target_only", "concat", "concat ~importance"]
    with pytest.raises(ConfigError, match="selections are compared with concat"):
        load_config(None, {**STUDY, "study.few_shot.strategies": ["target_only"]})
    with pytest.raises(ConfigError, match="selections are compared with concat"):
        load_config(None, {**STUDY, "study.few_shot.other_rows": None, "study.few_shot.other_doses": [0, 20]})
    with pytest.raises(ConfigError, match="selections"):
        load_config(None, {**STUDY, "study.few_shot.selections": ["all"]})


def test_selection_is_compared_with_concat_and_its_shares_are_summed_over_splits():
    rows = []
    for split in (1, 2, 3):
        rows += [{"k_label": "4", "arm": "concat", "split_seed": split, "seed": 1, "accuracy": 0.70 + split / 100},
                 {"k_label": "4", "arm": "concat ~importance", "split_seed": split, "seed": 1,
                  "accuracy": 0.80 + split / 100, "selected_from": "electronics 15, books 5"},
                 {"k_label": "4", "arm": "target_only", "split_seed": split, "seed": 1, "accuracy": 0.5}]
    cells = pd.DataFrame(rows)
    table = selection_arms.selection_comparisons(cells, ["importance"])
    assert list(table["arm"]) == ["concat ~importance"] and set(table["reference"]) == {"concat"}
    assert table["delta"].iloc[0] == pytest.approx(0.10)
    assert selection_arms.selected_share(cells, "importance") == "electronics 75%, books 25%"
