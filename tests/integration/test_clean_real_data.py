"""Cleaning on the real data sets: IMDB's leaked and repeated reviews, Blitzer's duplicates within a domain."""
from pathlib import Path

import pytest
from datasets import DatasetDict, concatenate_datasets

from otherdata_utils import data
from otherdata_utils.clean import clean, find_leakage
from otherdata_utils.config import Config


@pytest.fixture(scope="module")
def imdb(data_dir: Path) -> DatasetDict:
    return data.load_source("imdb", data_dir)


def test_imdb_leakage_finds_the_123_texts_shared_by_train_and_test(imdb):
    # IMDB ships train and test only; validation is carved from train, so the README's "train" is both
    report = find_leakage(imdb)
    assert report.shared_texts("test", ("train", "validation"), exact_only=True) == 123
    assert report.shared_texts("test", ("train", "validation")) == 123  # folding case/punctuation adds none


@pytest.fixture(scope="module")
def imdb_as_distributed(imdb: DatasetDict) -> DatasetDict:
    """Train and test as IMDB ships them (the carved validation put back into train)."""
    return DatasetDict(train=concatenate_datasets([imdb["train"], imdb["validation"]]), test=imdb["test"])


def test_imdb_cleaning_drops_duplicates_and_leaked_train_rows_and_keeps_their_test_twins(imdb_as_distributed):
    cleaned, report = clean(imdb_as_distributed, Config())
    # The README counts 96 repeated raw rows in train and 199 in test; normalisation adds 2 in each whose copies
    # differ only by a trailing "<br /><br />" or a space after one
    assert report.dropped("duplicate", split="train") == 96 + 2
    assert report.dropped("duplicate", split="test") == 199 + 2
    assert report.leakage.shared_texts("train", "test", exact_only=True) == 123
    leaked = report.leakage.leaked_ids("train")
    assert report.dropped("leakage") == len(leaked) == 123  # one train row per shared text once de-duplicated
    assert not leaked & set(cleaned["train"]["id"])
    assert report.dropped("leakage", split="test") == 0
    assert {p.other_id for p in report.leakage.pairs} <= set(cleaned["test"]["id"])
    assert "<br" not in "".join(cleaned["test"]["text"][:200])


def test_blitzer_duplicates_stay_within_their_domain(data_dir):
    blitzer = data.load_source("blitzer_mds", data_dir)
    report = find_leakage(blitzer)
    assert report.pairs and all(p.domain == p.other_domain for p in report.pairs)
    cleaned, cleaning = clean(blitzer, Config())
    # README: about 2% of Blitzer rows repeat inside a domain
    assert cleaning.dropped() / sum(cleaning.rows_in.values()) == pytest.approx(0.018, abs=0.004)
    assert sum(len(ds) for ds in cleaned.values()) == sum(cleaning.rows_out.values())
