"""Mixing on the Blitzer reviews: a reproducible temperature mix with a few-shot target, concat within a budget."""
from pathlib import Path

import pytest
from datasets import Dataset

from otherdata_utils import data
from otherdata_utils.clean import clean
from otherdata_utils.config import Config
from otherdata_utils.mix import mix, mixing_weights


@pytest.fixture(scope="module")
def blitzer_train(data_dir: Path) -> Dataset:
    return clean(data.load_source("blitzer_mds", data_dir), Config())[0]["train"]


def test_temperature_mix_on_blitzer_with_a_few_shot_target_is_reproducible(blitzer_train):
    config = Config(mixing_strategy="temperature", mixing_temperature=2.0, target_domain="books", few_shot_k=32,
                    max_train_samples=2000, seed=7)
    mixed, report = mix(blitzer_train, config)
    again, _ = mix(blitzer_train, config)
    assert mixed["id"] == again["id"]
    assert mix(blitzer_train, config, seed=8)[0]["id"] != mixed["id"]
    sizes = {g.group: g.available for g in report.groups}
    assert sizes["books"] == 64
    expected = mixing_weights(sizes, "temperature", temperature=2.0)
    for group in report.groups:
        assert group.achieved_share == pytest.approx(expected[group.group], abs=1 / 2000)
    assert sum(report.rows_by("label").values()) == 2000
    assert report.rows_by("source") == {"blitzer_mds": 2000}


def test_concat_keeps_every_row_once_or_cuts_to_the_budget(blitzer_train):
    everything, report = mix(blitzer_train, Config(mixing_strategy="concat"))
    assert sorted(everything["id"]) == sorted(blitzer_train["id"])
    assert not any(g.upsampled for g in report.groups)
    cut, report = mix(blitzer_train, Config(mixing_strategy="concat", max_train_samples=1000))
    assert len(cut) == len(set(cut["id"])) == 1000
    # a uniform row sample keeps domain shares near their sizes (binomial sd ≈ 1.4 points at n=1000)
    for group in report.groups:
        assert group.achieved_share == pytest.approx(group.requested_share, abs=0.05)
