"""Anchors: the frozen-encoder probe learns yelp sentiment from 16 rows per class and repeats itself exactly;
SetFit trains and scores offline, deterministically, leaving no files behind."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from otherdata_utils import anchors, data, modeling

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def k_shot(rows: Dataset, k: int, seed: int) -> Dataset:
    """k rows per class, a seeded sample, in their original order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(rows["label"])
    picked = [int(i) for label in sorted(set(labels)) for i in rng.permutation(np.flatnonzero(labels == label))[:k]]
    return rows.select(sorted(picked))


@pytest.fixture(scope="module")
def yelp(packaged_data_dir: Path) -> DatasetDict:
    """UCI yelp sentences: 16 train rows per class, the 100 validation rows, 100 test rows."""
    dsd = data.load_source("uci_sentences:yelp", packaged_data_dir)
    return DatasetDict(train=k_shot(dsd["train"], 16, seed=0), validation=dsd["validation"],
                       test=dsd["test"].shuffle(seed=0).select(range(100)))


@pytest.fixture(scope="module")
def minilm() -> str:
    return str(modeling.packaged_model_path())


@pytest.fixture(scope="module")
def probe(yelp: DatasetDict, minilm: str) -> anchors.AnchorResult:
    return anchors.probe_fit_and_score(minilm, yelp["train"], yelp["validation"], yelp["test"], data.BINARY_LABELS,
                                       seed=0, max_length=64)


def test_probe_on_frozen_minilm_beats_chance_on_yelp(probe: anchors.AnchorResult, yelp: DatasetDict):
    assert probe.accuracy > 0.7
    assert probe.labels == list(yelp["test"]["label"])
    assert probe.n_train == 32
    assert np.asarray(probe.probabilities).shape == (100, 2)
    assert np.asarray(probe.probabilities).sum(axis=1) == pytest.approx(np.ones(100), abs=1e-5)
    assert probe.predictions == [int(p) for p in np.argmax(probe.probabilities, axis=1)]


def test_probe_picks_the_smallest_c_with_the_best_validation_macro_f1(probe: anchors.AnchorResult):
    scores = probe.hyperparameters["validation_macro_f1"]
    assert sorted(scores) == sorted(anchors.PROBE_C_GRID)
    best = max(scores.values())
    assert probe.hyperparameters["C"] == min(c for c, f1 in scores.items() if f1 == best)
    assert probe.hyperparameters["class_weight"] == "balanced"


def test_probe_repeats_its_predictions_and_probabilities(probe: anchors.AnchorResult, yelp: DatasetDict,
                                                          minilm: str):
    again = anchors.probe_fit_and_score(minilm, yelp["train"], yelp["validation"], yelp["test"],
                                        data.BINARY_LABELS, seed=0, max_length=64)
    assert again.predictions == probe.predictions
    assert again.probabilities == probe.probabilities
    assert again.hyperparameters == probe.hyperparameters


def test_a_shared_frozen_encoder_embeds_each_text_once_and_gives_the_same_probe(
        probe: anchors.AnchorResult, yelp: DatasetDict, minilm: str, packaged_data_dir: Path,
        monkeypatch: pytest.MonkeyPatch):
    encoder = anchors.FrozenEncoder(minilm, max_length=64)
    embedded: list[int] = []
    real = anchors.mean_pooled_embeddings

    def counting(model, tokenizer, texts, **kwargs):
        embedded.append(len(texts))
        return real(model, tokenizer, texts, **kwargs)

    monkeypatch.setattr(anchors, "mean_pooled_embeddings", counting)
    first = anchors.probe_fit_and_score(encoder, yelp["train"], yelp["validation"], yelp["test"],
                                        data.BINARY_LABELS, seed=0)
    seen = set(yelp["train"]["text"]) | set(yelp["validation"]["text"]) | set(yelp["test"]["text"])
    assert sum(embedded) == len(seen)
    other_split = k_shot(data.load_source("uci_sentences:yelp", packaged_data_dir)["train"], 16, seed=1)
    second = anchors.probe_fit_and_score(encoder, other_split, yelp["validation"], yelp["test"],
                                         data.BINARY_LABELS, seed=0)
    # the second split's probe embedded only its own new train rows, not validation and test again
    assert sum(embedded) - len(seen) == len(set(other_split["text"]) - seen) > 0
    # batches pad differently than in a fresh encoder's calls: the same probe up to float rounding
    assert np.asarray(first.probabilities) == pytest.approx(np.asarray(probe.probabilities), abs=1e-4)
    assert second.labels == first.labels


def test_probe_gives_a_class_absent_from_train_probability_zero(yelp: DatasetDict, tiny_model_dir: Path):
    labels = ["neg", "pos", "neutral"]
    three_way = {name: rows.cast_column("label", data.record_features(labels)["label"])
                 for name, rows in yelp.items()}
    result = anchors.probe_fit_and_score(str(tiny_model_dir), three_way["train"], three_way["validation"],
                                         three_way["test"].select(range(20)), labels, seed=0, max_length=32)
    probabilities = np.asarray(result.probabilities)
    assert probabilities.shape == (20, 3)
    assert probabilities[:, 2].tolist() == [0.0] * 20
    assert set(result.predictions) <= {0, 1}


def test_anchors_refuse_train_rows_of_one_class(yelp: DatasetDict, minilm: str):
    negatives = yelp["train"].filter(lambda row: row["label"] == 0)
    with pytest.raises(ValueError, match="at least two classes"):
        anchors.probe_fit_and_score(minilm, negatives, yelp["validation"], yelp["test"], data.BINARY_LABELS, seed=0)


def test_setfit_trains_offline_repeats_itself_and_leaves_no_files(yelp: DatasetDict, tiny_model_dir: Path,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("setfit", reason="setfit is the optional `studies` extra: pip install -e '.[studies]'")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.chdir(tmp_path)  # SetFit's trainer writes checkpoints/ and runs/ under the working folder by default
    train = k_shot(yelp["train"], 4, seed=1)
    test = yelp["test"].select(range(20))
    first, second = (anchors.setfit_fit_and_score(str(tiny_model_dir), train, test, data.BINARY_LABELS, seed=3,
                                                  num_iterations=2, max_length=32) for _ in range(2))
    assert np.asarray(first.probabilities).shape == (20, 2)
    assert np.asarray(first.probabilities).sum(axis=1) == pytest.approx(np.ones(20), abs=1e-5)
    assert first.hyperparameters["pairs"] == 2 * 2 * 8
    assert first.hyperparameters["max_length"] == 32
    assert second.probabilities == first.probabilities
    assert list(tmp_path.iterdir()) == []
