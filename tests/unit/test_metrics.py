"""Metrics: agreement with scikit-learn, the offline evaluate modules, reports, per-domain view, seed statistics."""
import json
import math
import socket

import numpy as np
import pytest
from sklearn import metrics as skm

from otherdata_utils import metrics

NAMES = ["neg", "pos"]
# 7 of 10 right; true neg predicted [0, 1, 0, 0, 1], true pos predicted [1, 1, 0, 1, 1].
LABELS = [0, 0, 0, 1, 1, 1, 1, 0, 1, 0]
PREDICTIONS = [0, 1, 0, 1, 1, 0, 1, 0, 1, 1]
# Three-class data where micro, macro and weighted averages all differ.
LABELS_3 = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 1]
PREDICTIONS_3 = [0, 0, 1, 2, 1, 0, 2, 2, 1, 2, 0, 1]
NAMES_3 = ["neg", "neutral", "pos"]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test instead of waiting on the Hub."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_accuracy_is_share_of_correct_predictions():
    assert metrics.compute_classification_metrics(LABELS, PREDICTIONS, NAMES)["accuracy"] == pytest.approx(0.7)


def test_averaged_scores_equal_scikit_learn():
    scores = metrics.compute_classification_metrics(LABELS_3, PREDICTIONS_3, NAMES_3)
    assert scores["n"] == 12
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(LABELS_3, PREDICTIONS_3))
    for average in ("micro", "macro", "weighted"):
        assert scores[f"{average}_f1"] == pytest.approx(skm.f1_score(LABELS_3, PREDICTIONS_3, average=average))
        assert scores[f"{average}_precision"] == pytest.approx(
            skm.precision_score(LABELS_3, PREDICTIONS_3, average=average))
        assert scores[f"{average}_recall"] == pytest.approx(
            skm.recall_score(LABELS_3, PREDICTIONS_3, average=average))
    # The three averages really differ here, so a mixed-up key would fail above.
    assert len({round(scores[f"{a}_f1"], 6) for a in ("micro", "macro", "weighted")}) == 3


def test_per_class_scores_equal_scikit_learn_under_class_names():
    per_class = metrics.compute_classification_metrics(LABELS_3, PREDICTIONS_3, NAMES_3)["per_class"]
    f1 = skm.f1_score(LABELS_3, PREDICTIONS_3, average=None)
    precision = skm.precision_score(LABELS_3, PREDICTIONS_3, average=None)
    recall = skm.recall_score(LABELS_3, PREDICTIONS_3, average=None)
    assert list(per_class) == NAMES_3
    for index, name in enumerate(NAMES_3):
        assert per_class[name]["f1"] == pytest.approx(f1[index])
        assert per_class[name]["precision"] == pytest.approx(precision[index])
        assert per_class[name]["recall"] == pytest.approx(recall[index])
    assert [per_class[name]["support"] for name in NAMES_3] == [4, 3, 5]


def test_class_absent_from_labels_and_predictions_scores_zero_and_counts_in_macro():
    scores = metrics.compute_classification_metrics(LABELS, PREDICTIONS, NAMES_3)  # no "pos" (id 2) anywhere
    assert scores["per_class"]["pos"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    two_class_macro = skm.f1_score(LABELS, PREDICTIONS, average="macro")
    assert scores["macro_f1"] == pytest.approx(two_class_macro * 2 / 3)


def test_scores_are_plain_python_numbers_that_json_can_write():
    scores = metrics.compute_classification_metrics(LABELS, PREDICTIONS, NAMES)
    assert json.loads(json.dumps(scores)) == scores
    assert type(scores["macro_f1"]) is float and type(scores["per_class"]["pos"]["support"]) is int


def test_label_id_outside_label_names_is_rejected_with_the_id():
    with pytest.raises(ValueError, match="id 2"):
        metrics.compute_classification_metrics([0, 1, 2], [0, 1, 1], NAMES)


def test_local_evaluate_modules_load_offline_and_agree_with_scikit_learn(no_network):
    accuracy = metrics.load_metric("accuracy")
    assert accuracy.compute(references=LABELS_3, predictions=PREDICTIONS_3)["accuracy"] == pytest.approx(
        skm.accuracy_score(LABELS_3, PREDICTIONS_3))
    for name, reference in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        module = metrics.load_metric(name)
        macro = module.compute(references=LABELS_3, predictions=PREDICTIONS_3, average="macro")[name]
        assert type(macro) is float
        assert macro == pytest.approx(reference(LABELS_3, PREDICTIONS_3, average="macro"))
        per_class = module.compute(references=LABELS_3, predictions=PREDICTIONS_3, average=None)[name]
        np.testing.assert_allclose(per_class, reference(LABELS_3, PREDICTIONS_3, average=None))
        # The Hub defaults: binary average on class 1, pos_label switchable.
        binary = module.compute(references=LABELS, predictions=PREDICTIONS, pos_label=0)[name]
        assert binary == pytest.approx(reference(LABELS, PREDICTIONS, pos_label=0))


def test_classification_metrics_go_through_the_evaluate_modules_and_equal_scikit_learn(no_network, monkeypatch):
    loaded = []
    real = metrics.load_metric
    metrics._scoring_module.cache_clear()
    monkeypatch.setattr(metrics, "load_metric", lambda name, **kw: loaded.append(name) or real(name, **kw))
    names = ["neg", "pos", "neutral", "absent"]  # a class with no rows still counts in the macro averages
    scores = metrics.compute_classification_metrics(LABELS_3, PREDICTIONS_3, names)
    metrics._scoring_module.cache_clear()
    assert sorted(loaded) == ["accuracy", "f1", "precision", "recall"]
    ids = list(range(len(names)))
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(LABELS_3, PREDICTIONS_3))
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(LABELS_3, PREDICTIONS_3, labels=ids, average=average,
                                                         zero_division=0)
        assert (scores[f"{average}_precision"], scores[f"{average}_recall"], scores[f"{average}_f1"]) == \
            pytest.approx((p, r, f))
    p, r, f, support = skm.precision_recall_fscore_support(LABELS_3, PREDICTIONS_3, labels=ids, average=None,
                                                           zero_division=0)
    for i, name in enumerate(names):
        assert scores["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": support[i]})


def test_evaluate_load_accepts_the_module_folder_offline(no_network):
    import evaluate

    f1 = evaluate.load(str(metrics.EVALUATE_MODULES_DIR / "f1"), keep_in_memory=True)
    assert f1.compute(references=LABELS, predictions=PREDICTIONS)["f1"] == pytest.approx(
        skm.f1_score(LABELS, PREDICTIONS))


def test_combined_metrics_report_each_score(no_network):
    scores = metrics.combined(["accuracy", "f1"]).compute(references=LABELS, predictions=PREDICTIONS)
    assert scores == pytest.approx({"accuracy": 0.7, "f1": skm.f1_score(LABELS, PREDICTIONS)})


def test_unknown_metric_names_the_shipped_ones():
    with pytest.raises(ValueError, match=r"'bleu'.*accuracy.*f1.*precision.*recall"):
        metrics.load_metric("bleu")


def test_report_rows_are_class_names_not_ids():
    report = metrics.classification_report_text(LABELS, PREDICTIONS, NAMES, digits=3)
    first_words = [line.split()[0] for line in report.splitlines() if line.strip()]
    assert "neg" in first_words and "pos" in first_words
    assert "0" not in first_words and "1" not in first_words
    neg_row = next(line for line in report.splitlines() if line.strip().startswith("neg"))
    # neg: 3 of the 4 predicted neg are neg (precision 0.750), 3 of the 5 true neg found (recall 0.600).
    assert neg_row.split()[1:] == ["0.750", "0.600", "0.667", "5"]


def test_confusion_matrix_has_true_rows_and_predicted_columns():
    assert metrics.confusion_matrix(LABELS, PREDICTIONS, 2) == [[3, 2], [1, 4]]
    # A third, unseen class still gets its row and column.
    assert metrics.confusion_matrix(LABELS, PREDICTIONS, 3) == [[3, 2, 0], [1, 4, 0], [0, 0, 0]]


# Domain a: 4/4 right, b: 3/4, c: 1/2.
DOMAIN_LABELS = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
DOMAIN_PREDICTIONS = [0, 1, 0, 1, 0, 1, 0, 0, 1, 1]
DOMAINS = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c"]


def test_per_domain_sizes_add_up_and_worst_best_gap_are_right():
    result = metrics.per_domain_metrics(DOMAIN_LABELS, DOMAIN_PREDICTIONS, DOMAINS, NAMES)
    per_domain = result["per_domain"]
    assert {domain: row["n"] for domain, row in per_domain.items()} == {"a": 4, "b": 4, "c": 2}
    assert sum(row["n"] for row in per_domain.values()) == result["n"] == 10
    assert {domain: row["accuracy"] for domain, row in per_domain.items()} == {"a": 1.0, "b": 0.75, "c": 0.5}
    assert (result["worst_domain"], result["best_domain"]) == ("c", "a")
    assert result["worst_accuracy"] == pytest.approx(0.5)
    assert result["gap"] == pytest.approx(0.5)
    assert result["macro_avg_accuracy"] == pytest.approx(0.75)
    assert result["overall_accuracy"] == pytest.approx(0.8)


def test_per_domain_macro_f1_averages_the_classes_present_in_the_domain():
    # Domain "x" holds only negatives, all right: its macro-F1 is 1, not halved by the absent class.
    result = metrics.per_domain_metrics([0, 0, 1, 0], [0, 0, 1, 1], ["x", "x", "y", "y"], NAMES)
    assert result["per_domain"]["x"]["macro_f1"] == pytest.approx(1.0)
    assert result["per_domain"]["y"]["macro_f1"] == pytest.approx(skm.f1_score([1, 0], [1, 1], average="macro"))


def test_per_domain_frame_lists_worst_domain_first_and_marks_only_it():
    result = metrics.per_domain_metrics(DOMAIN_LABELS, DOMAIN_PREDICTIONS, DOMAINS, NAMES)
    frame = metrics.per_domain_frame(result)
    assert list(frame["domain"]) == ["c", "b", "a"]
    assert list(frame["worst"]) == [True, False, False]
    assert list(frame.columns) == ["domain", "n", "accuracy", "macro_f1", "worst"]
    assert frame.equals(metrics.per_domain_frame(result["per_domain"]))


def test_seed_summary_matches_a_hand_computed_t_interval():
    summary = metrics.seed_summary([0.80, 0.82, 0.84])
    # std = 0.02; t(0.975, df=2) = 4.3027 from tables; half width = 4.3027 * 0.02 / sqrt(3) = 0.04968.
    assert summary["n"] == 3
    assert summary["mean"] == pytest.approx(0.82)
    assert summary["std"] == pytest.approx(0.02)
    assert summary["ci_low"] == pytest.approx(0.82 - 0.04968, abs=1e-4)
    assert summary["ci_high"] == pytest.approx(0.82 + 0.04968, abs=1e-4)


def test_seed_summary_never_clips_its_interval():
    summary = metrics.seed_summary([0.55, 0.95, 1.0])
    assert summary["ci_high"] > 1 and summary["ci_high"] - summary["mean"] == pytest.approx(
        summary["mean"] - summary["ci_low"])


def test_seed_summary_of_one_seed_reports_no_spread_rather_than_nan():
    summary = metrics.seed_summary([0.9])
    assert summary["mean"] == pytest.approx(0.9)
    assert summary["std"] is None and summary["ci_low"] is None and summary["ci_high"] is None
    json.dumps(summary, allow_nan=False)


def test_seed_summary_rejects_missing_runs():
    with pytest.raises(ValueError, match="non-finite"):
        metrics.seed_summary([0.8, math.nan])


def test_predictions_round_trip_through_csv_with_names_and_awkward_texts(tmp_path):
    path = tmp_path / "predictions" / "test.csv"
    texts = ["great, really", "NA", "", 'line one\nsaid "bad"']
    probabilities = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]]
    written = metrics.save_predictions(
        path, ids=[10, 11, 12, 13], texts=texts, domains=["books", "books", "dvd", "null"], labels=[0, 0, 1, 1],
        predictions=[0, 1, 0, 1], probabilities=probabilities, label_names=NAMES,
    )
    assert written == path
    assert [p.name for p in path.parent.iterdir()] == ["test.csv"]
    frame = metrics.load_predictions(path)
    assert list(frame.columns) == ["id", "domain", "text", "label", "prediction", "correct", "confidence",
                                   "prob_neg", "prob_pos"]
    assert list(frame["id"]) == [10, 11, 12, 13]
    assert list(frame["text"]) == texts
    assert list(frame["domain"]) == ["books", "books", "dvd", "null"]
    assert list(frame["label"]) == ["neg", "neg", "pos", "pos"]
    assert list(frame["prediction"]) == ["neg", "pos", "neg", "pos"]
    assert list(frame["correct"]) == [True, False, False, True]
    assert list(frame["confidence"]) == pytest.approx([0.9, 0.7, 0.6, 0.8])
    assert list(frame["prob_pos"]) == pytest.approx([0.1, 0.7, 0.4, 0.8])


def test_save_predictions_rejects_probabilities_without_one_column_per_class(tmp_path):
    with pytest.raises(ValueError, match="one column per class"):
        metrics.save_predictions(tmp_path / "p.csv", ids=[1], texts=["t"], domains=["d"], labels=[0],
                                 predictions=[0], probabilities=[[1.0]], label_names=NAMES)
    assert list(tmp_path.iterdir()) == []


# Five predictions: 0.55 and 0.6 share the bin (0.533, 0.6] (mean confidence 0.575, one of two right); 0.7, 0.9 and
# 0.95 sit alone in theirs, all right. ECE = 2/5·|0.5 − 0.575| + 1/5·(0.3 + 0.1 + 0.05) = 0.03 + 0.09 = 0.12.
CONFIDENCES = [0.95, 0.9, 0.6, 0.55, 0.7]
CORRECT = [True, True, False, True, True]


def test_ece_of_a_hand_made_example_weights_each_bins_gap_by_its_share():
    calibration = metrics.calibration_bins(CONFIDENCES, CORRECT)
    assert calibration["ece"] == pytest.approx(0.12)
    assert calibration["n_bins"] == 15 and calibration["n"] == 5
    filled = [b for b in calibration["bins"] if b["n"]]
    assert [b["n"] for b in filled] == [2, 1, 1, 1]
    assert filled[0]["low"] == pytest.approx(8 / 15) and filled[0]["high"] == pytest.approx(0.6)
    assert filled[0]["confidence"] == pytest.approx(0.575) and filled[0]["accuracy"] == pytest.approx(0.5)


def test_calibration_table_of_fixed_probabilities_is_exact_bin_by_bin():
    # two-class softmax outputs of six rows; the predicted class's probability is the confidence
    probabilities = np.array([[0.1, 0.9], [0.35, 0.65], [0.8, 0.2], [0.45, 0.55], [0.02, 0.98], [0.7, 0.3]])
    labels = np.array([1, 0, 0, 1, 1, 1])
    confidence = probabilities.max(axis=1)  # 0.9, 0.65, 0.8, 0.55, 0.98, 0.7
    calibration = metrics.calibration_bins(confidence, probabilities.argmax(axis=1) == labels, n_bins=5)
    filled = [(b["low"], b["high"], b["n"], b["confidence"], b["accuracy"]) for b in calibration["bins"] if b["n"]]
    assert filled == [
        (pytest.approx(0.4), pytest.approx(0.6), 1, pytest.approx(0.55), 1.0),
        (pytest.approx(0.6), pytest.approx(0.8), 3, pytest.approx((0.65 + 0.8 + 0.7) / 3), pytest.approx(1 / 3)),
        (pytest.approx(0.8), 1.0, 2, pytest.approx(0.94), 1.0),
    ]
    # 1/6·|1 − 0.55| + 3/6·|1/3 − 0.7167| + 2/6·|1 − 0.94|
    assert calibration["ece"] == pytest.approx(0.45 / 6 + (2.15 - 1) / 6 + 0.12 / 6)


def test_ece_is_zero_when_accuracy_matches_confidence_in_every_bin():
    calibration = metrics.calibration_bins([0.75] * 4 + [1.0] * 2, [True, True, True, False, True, True])
    assert calibration["ece"] == pytest.approx(0.0)
    # 1.0 lands in the last bin, not past it; empty bins report no accuracy rather than 0.
    assert calibration["bins"][-1]["n"] == 2
    assert calibration["bins"][0] == {"low": 0.0, "high": pytest.approx(1 / 15), "n": 0, "confidence": None,
                                      "accuracy": None}


def test_ece_rejects_values_that_are_not_probabilities():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        metrics.calibration_bins([1.2, 0.5], [True, False])


def test_wilson_interval_matches_the_textbook_value_and_stays_inside_zero_one():
    low, high = metrics.wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    none_right = metrics.wilson_interval(0, 10)
    assert none_right[0] == 0.0 and none_right[1] == pytest.approx(0.2775, abs=1e-4)
    with pytest.raises(ValueError, match="n > 0"):
        metrics.wilson_interval(0, 0)


def test_length_quartiles_rank_texts_by_token_count_with_n_range_accuracy_and_truncation():
    # Sorted by length (ties in row order): rows 7,1 | 0,4 | 5,2 | 3,6.
    lengths = [5, 3, 9, 12, 7, 7, 20, 1]
    correct = [True, True, False, True, True, False, False, True]
    rows = metrics.accuracy_by_length(lengths, correct, max_length=10)
    assert [(r["group"], r["n"], r["min_tokens"], r["max_tokens"]) for r in rows] == [
        ("Q1", 2, 1, 3), ("Q2", 2, 5, 7), ("Q3", 2, 7, 9), ("Q4", 2, 12, 20)]
    assert [r["accuracy"] for r in rows] == [1.0, 1.0, 0.0, 0.5]
    assert [r["truncated"] for r in rows] == [0.0, 0.0, 0.0, 1.0]
    assert (rows[3]["ci_low"], rows[3]["ci_high"]) == pytest.approx(metrics.wilson_interval(1, 2))


def test_length_quartiles_without_max_length_say_nothing_about_truncation_and_skip_empty_parts():
    rows = metrics.accuracy_by_length([4, 9, 2], [True, False, True])
    assert [r["group"] for r in rows] == ["Q1", "Q2", "Q3"]
    assert all("truncated" not in r for r in rows)


def test_row_normalized_confusion_gives_shares_of_each_true_class_and_zeros_for_an_empty_class():
    assert metrics.row_normalized_confusion([[40, 10], [0, 0]]) == [[0.8, 0.2], [0.0, 0.0]]
