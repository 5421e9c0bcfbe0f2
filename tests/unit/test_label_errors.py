"""Label errors in the other data: flag precision/recall arithmetic, confident learning on separable synthetic
embeddings with known flips, keep/flag/drop on the rows to mix (target rows never touched), and config errors."""
import json

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from pydantic import ValidationError

from otherdata_utils import label_errors
from otherdata_utils.config import Config
from otherdata_utils.runs import run_folder
from otherdata_utils.studies.quality import inject_label_noise
from otherdata_utils.studies.store import ordered_fingerprint


def blobs(n: int, flips: int, *, seed: int, separation: float = 3.0, dims: int = 16):
    """Two Gaussian blobs `2·separation` apart on one axis (overlap ≈ Φ(-separation)), `flips` labels flipped."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    embeddings = rng.normal(size=(n, dims))
    embeddings[:, 0] += np.where(labels == 1, separation, -separation)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=flips, replace=False)] = True
    return embeddings, np.where(flipped, 1 - labels, labels), flipped


class VectorEncoder:
    """Stands in for `anchors.FrozenEncoder` in tests: each text's vector given up front, so no model is loaded."""

    model_path = "synthetic blobs"

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def embed(self, texts):
        return np.stack([self.vectors[text] for text in texts])


# --- precision and recall of flags -----------------------------------------------------------------------------------

def test_flip_scores_count_hits_against_flags_and_against_flips():
    scores = label_errors.flip_scores([True, True, False, False, True, False], [True, False, True, False, False, True])
    assert (scores.flagged, scores.flipped, scores.true_positives) == (3, 3, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == pytest.approx(1 / 3)
    scores = label_errors.flip_scores([True, True, False, False], [True, True, True, True])
    assert scores.precision == 1.0 and scores.recall == 0.5


def test_flip_scores_without_flags_or_flips_have_no_ratio_and_mismatched_lengths_are_refused():
    assert label_errors.flip_scores([False, False], [True, False]).precision is None
    assert label_errors.flip_scores([True, False], [False, False]).recall is None
    with pytest.raises(ValueError, match="3 flags but 2 flip marks"):
        label_errors.flip_scores([True, False, True], [True, False])


# --- confident learning on out-of-fold probe probabilities -----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confident_learning_flags_most_flips_in_separable_blobs(seed):
    # measured: 400 rows, 10% flipped, blobs 6 sd apart: recall 1.00 / 0.95 / 0.90, precision 0.91 / 0.88 / 0.92
    embeddings, given, flipped = blobs(400, 40, seed=seed)
    issues = label_errors.find_issues(embeddings, given, seed=0)
    scores = label_errors.flip_scores(issues.flagged, flipped)
    assert scores.recall >= 0.85 and scores.precision >= 0.8
    # a flagged flip's suggestion is its true class, and its given label got low out-of-fold probability
    caught = issues.flagged & flipped
    assert (issues.suggested[caught] == 1 - given[caught]).all()
    assert issues.self_confidence[caught].max() < 0.5


def test_out_of_fold_probabilities_need_enough_rows_of_each_class_for_the_folds():
    embeddings, given, _ = blobs(40, 0, seed=0)
    given[:] = 0
    given[:3] = 1
    with pytest.raises(ValueError, match="≥ 5 other rows per class; class 1 has 3"):
        label_errors.out_of_fold_probabilities(embeddings, given, seed=0)
    with pytest.raises(ValueError, match="at least two classes"):
        label_errors.out_of_fold_probabilities(embeddings, np.zeros(40, dtype=int), seed=0)


# --- keep, flag and drop on the rows to mix --------------------------------------------------------------------------

@pytest.fixture
def rows_and_encoder():
    """300 other rows (books, dvd) with 10% flipped labels and 40 target (kitchen) rows, the target's labels all
    contrary to its vectors: confident learning would flag them, were the target examined."""
    embeddings, given, flipped = blobs(340, 0, seed=4)
    domains = ["kitchen"] * 40 + ["books"] * 150 + ["dvd"] * 150
    flipped[np.random.default_rng(4).choice(np.arange(40, 340), size=30, replace=False)] = True
    given = np.where(flipped, 1 - given, given)
    given[:40] = 1 - given[:40]  # target rows' labels against their blob
    texts = [f"text {i}" for i in range(340)]
    rows = Dataset.from_dict(
        {"id": [str(i) for i in range(340)], "text": texts, "label": given.tolist(), "domain": domains,
         "source": ["synthetic"] * 340, label_errors.FLIP_COLUMN: flipped.tolist()},
        features=Features({"id": Value("string"), "text": Value("string"),
                           "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                           "source": Value("string"), label_errors.FLIP_COLUMN: Value("bool")}))
    return rows, VectorEncoder(dict(zip(texts, embeddings)))


def test_keep_hands_the_rows_on_untouched_and_writes_no_report(rows_and_encoder, tmp_path):
    rows, encoder = rows_and_encoder
    config = Config(target_domain="kitchen", output_dir=str(tmp_path / "run"))
    out, report = label_errors.handle_other_label_errors(rows, config, encoder=encoder)
    assert out is rows and report is None
    assert not run_folder(config).label_error_report.exists()


def test_drop_removes_flagged_other_rows_only_and_reports_flip_precision_and_recall(rows_and_encoder, tmp_path):
    rows, encoder = rows_and_encoder
    config = Config(target_domain="kitchen", other_label_errors="drop", output_dir=str(tmp_path / "run"))
    out, report = label_errors.handle_other_label_errors(rows, config, encoder=encoder)
    assert out["domain"].count("kitchen") == 40  # every target row kept, though its labels look wrong
    assert report.rows_examined == 300 and report.rows_dropped == report.rows_flagged == 300 - (len(out) - 40)
    assert report.flips.flipped == 30 and report.flips.recall >= 0.8 and report.flips.precision >= 0.7
    assert sum(out[label_errors.FLIP_COLUMN]) == 30 - report.flips.true_positives
    assert {row["group"] for row in report.by_group["domain"]} == {"books", "dvd"}
    assert sum(row["flagged"] for row in report.by_group["domain"]) == report.rows_flagged
    assert report.examples[0]["given_label"] != report.examples[0]["suggested_label"]
    confidences = [example["self_confidence"] for example in report.examples]
    assert confidences == sorted(confidences) and len(confidences) == label_errors.EXAMPLES
    written = json.loads(run_folder(config).label_error_report.read_text())
    assert written["rows_flagged"] == report.rows_flagged and written["flips"]["flipped"] == 30
    assert "recall" in written["summary"]


def test_flag_marks_the_same_rows_drop_removes_and_keeps_every_row(rows_and_encoder, tmp_path):
    rows, encoder = rows_and_encoder
    flagged, _ = label_errors.handle_other_label_errors(
        rows, Config(target_domain="kitchen", other_label_errors="flag", output_dir=str(tmp_path / "a")),
        encoder=encoder)
    dropped, _ = label_errors.handle_other_label_errors(
        rows, Config(target_domain="kitchen", other_label_errors="drop", output_dir=str(tmp_path / "b")),
        encoder=encoder)
    marks = flagged[label_errors.LABEL_ISSUE_COLUMN]
    assert len(flagged) == len(rows) and flagged["label"] == rows["label"]
    assert not any(marks[:40])  # target rows never flagged
    assert [row for row, mark in zip(flagged["id"], marks) if not mark] == dropped["id"]


def test_a_cleaning_arm_gets_flags_and_scores_for_rows_with_known_flips():
    embeddings, given, flipped = blobs(200, 20, seed=5)
    texts = [f"row {i}" for i in range(200)]
    rows = Dataset.from_dict({"text": texts, "label": given.tolist()})
    flags, scores = label_errors.flag_known_flips(rows, flipped, VectorEncoder(dict(zip(texts, embeddings))), seed=0)
    assert len(flags) == 200 and scores == label_errors.flip_scores(flags, flipped) and scores.recall >= 0.8


# --- the flip marker of the quality study ----------------------------------------------------------------------------

def test_marked_flips_are_the_changed_labels_and_unmarked_rows_are_the_rows_they_always_were():
    rows = Dataset.from_dict({"id": [str(i) for i in range(60)], "text": [f"t{i}" for i in range(60)],
                              "label": [i % 2 for i in range(60)], "domain": ["kitchen"] * 20 + ["books"] * 40},
                             features=Features({"id": Value("string"), "text": Value("string"),
                                                "label": ClassLabel(names=["neg", "pos"]), "domain": Value("string")}))
    plain = inject_label_noise(rows, 0.3, seed=1, keep_domain="kitchen")
    marked = inject_label_noise(rows, 0.3, seed=1, keep_domain="kitchen", mark_flips=True)
    assert label_errors.FLIP_COLUMN not in plain.column_names
    assert ordered_fingerprint(marked) == ordered_fingerprint(plain)  # cell keys read ids, texts and labels only
    changed = [a != b for a, b in zip(rows["label"], marked["label"])]
    assert marked[label_errors.FLIP_COLUMN] == changed and sum(changed) == 12


# --- config ----------------------------------------------------------------------------------------------------------

def test_config_names_the_label_error_parameters_when_a_value_is_unknown_or_there_is_no_target():
    with pytest.raises(ValidationError, match="other_label_errors"):
        Config(other_label_errors="fix", target_domain="kitchen")
    with pytest.raises(ValidationError, match="other_label_errors 'drop' .* set target_domain"):
        Config(other_label_errors="drop")
    with pytest.raises(ValidationError, match="label_error_model"):
        Config(label_error_model="bert", target_domain="kitchen")
    assert (Config().other_label_errors, Config().label_error_model) == ("keep", "probe")
