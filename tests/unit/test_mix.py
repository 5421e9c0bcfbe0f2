"""Mixing: shares per strategy, budgets, few-shot sampling and the achieved-mix report, on real UCI and Blitzer."""
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from otherdata_utils import data
from otherdata_utils.clean import clean
from otherdata_utils.config import Config
from otherdata_utils.mix import few_shot, mix, mixing_weights

SIZES = {"books": 1900, "dvd": 600, "kitchen": 40}


@pytest.fixture(scope="module")
def uci_train(packaged_data_dir: Path) -> Dataset:
    return clean(data.load_source("uci_sentences", packaged_data_dir), Config())[0]["train"]


@pytest.mark.parametrize("strategy, raw", [
    ("concat", {"books": 1900, "dvd": 600, "kitchen": 40}),
    ("proportional", {"books": 1900, "dvd": 600, "kitchen": 40}),
    ("temperature", {"books": 1900 ** (1 / 3), "dvd": 600 ** (1 / 3), "kitchen": 40 ** (1 / 3)}),
    ("uniform", {"books": 1, "dvd": 1, "kitchen": 1}),
])
def test_mixing_weights_are_shares_that_sum_to_one(strategy, raw):
    weights = mixing_weights(SIZES, strategy, temperature=3.0)
    assert weights == pytest.approx({group: value / sum(raw.values()) for group, value in raw.items()})


def test_temperature_mixing_flattens_source_sizes():
    proportional = mixing_weights(SIZES, "proportional")
    assert mixing_weights(SIZES, "temperature", temperature=1.0) == pytest.approx(proportional)
    assert mixing_weights(SIZES, "temperature", temperature=1e6) == pytest.approx(
        mixing_weights(SIZES, "uniform"), abs=1e-4)
    smallest = [mixing_weights(SIZES, "temperature", temperature=t)["kitchen"] for t in (1.0, 2.0, 5.0, 50.0)]
    assert smallest == sorted(smallest) and smallest[0] == pytest.approx(40 / 2540)
    assert mixing_weights(SIZES, "temperature", temperature=2.0)["kitchen"] == pytest.approx(
        40 ** 0.5 / sum(n ** 0.5 for n in SIZES.values()))


def test_fixed_mixing_normalises_ratios_and_names_the_groups_on_a_typo():
    assert mixing_weights(SIZES, "fixed", ratios={"books": 3, "kitchen": 1}) == {
        "books": 0.75, "dvd": 0.0, "kitchen": 0.25}
    with pytest.raises(ValueError, match=r"\['kitchn'\]; groups: \['books', 'dvd', 'kitchen'\]"):
        mixing_weights(SIZES, "fixed", ratios={"books": 1, "kitchn": 1})


def test_target_only_gives_the_target_everything_and_needs_one():
    assert mixing_weights(SIZES, "target_only", target="dvd") == {"books": 0.0, "dvd": 1.0, "kitchen": 0.0}
    with pytest.raises(ValueError, match="target group"):
        mixing_weights(SIZES, "target_only")


def test_few_shot_is_seeded_and_takes_k_per_class_of_the_target_only(uci_train):
    before = Counter(uci_train["domain"])
    first = few_shot(uci_train, 8, seed=1, domain="yelp")
    again = few_shot(uci_train, 8, seed=1, domain="yelp")
    other = few_shot(uci_train, 8, seed=2, domain="yelp")
    target_ids = lambda ds: sorted(i for i, d in zip(ds["id"], ds["domain"]) if d == "yelp")  # noqa: E731
    assert target_ids(first) == target_ids(again) != target_ids(other)
    target_labels = Counter(label for label, d in zip(first["label"], first["domain"]) if d == "yelp")
    assert target_labels == {0: 8, 1: 8}
    after = Counter(first["domain"])
    assert after["amazon"] == before["amazon"] and after["imdb"] == before["imdb"]


def test_few_shot_says_which_class_is_too_small(uci_train):
    with pytest.raises(ValueError, match=r"class 'neg' has \d+, class 'pos' has \d+ rows"):
        few_shot(uci_train, 5000, seed=0, domain="amazon")


@pytest.mark.parametrize("strategy", ["proportional", "temperature", "uniform", "fixed", "target_only"])
def test_achieved_mix_matches_requested_shares_and_the_budget_on_uci(uci_train, strategy):
    config = Config(mixing_strategy=strategy, target_domain="imdb", few_shot_k=16, max_train_samples=900,
                    mixing_ratios={"imdb": 0.5, "amazon": 0.25, "yelp": 0.25} if strategy == "fixed" else {})
    mixed, report = mix(uci_train, config)
    assert len(mixed) == report.total_rows == 900
    for group in report.groups:
        assert group.achieved_share == pytest.approx(group.requested_share, abs=1 / 900)
        assert group.upsampled == (group.achieved_rows > group.available)
    assert Counter(mixed["domain"]) == {g.group: g.achieved_rows for g in report.groups if g.achieved_rows}
    assert len(set(mixed["id"])) == len(mixed)  # repeated rows get '#r1', '#r2', … ids


def test_uniform_mixing_upsamples_the_few_shot_target_and_says_so(uci_train):
    config = Config(mixing_strategy="uniform", target_domain="imdb", few_shot_k=8, max_train_samples=600)
    mixed, report = mix(uci_train, config)
    target = report.groups[0]
    assert (target.group, target.available, target.achieved_rows, target.upsampled) == ("imdb", 16, 200, True)
    copies = Counter(i.split("#r")[0] for i, d in zip(mixed["id"], mixed["domain"]) if d == "imdb")
    assert len(copies) == 16 and set(copies.values()) == {12, 13}  # 200 = 16·12 + 8: each row 12 or 13 times
    assert "Upsampled (rows repeated): imdb (200 rows from 16)" in report.summary()


def test_mix_report_is_json_and_a_table(uci_train):
    _, report = mix(uci_train, Config(mixing_strategy="temperature", target_domain="yelp", max_train_samples=300))
    written = json.loads(json.dumps(report.to_dict()))
    assert written["total_rows"] == 300 and written["budget"] == 300
    frame = report.to_frame()
    assert frame["achieved_rows"].sum() == 300 and list(frame["group"]) == ["yelp", "amazon", "imdb"]
