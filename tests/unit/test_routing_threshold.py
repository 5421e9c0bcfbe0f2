"""Routing's handover: texts below the threshold go to a person, the threshold chosen on validation, the out-of-scope
class last."""
import numpy as np
import pytest

from otherdata_utils import routing


def test_route_hands_over_below_the_threshold_as_the_class_after_the_trained_ones():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    assert routing.route(probabilities, 0.5).tolist() == [0, 3, 2]
    assert routing.route(probabilities, 0.0).tolist() == [0, 0, 2]


def test_threshold_maximises_in_scope_accuracy_plus_out_of_scope_recall_on_validation():
    # three in-scope rows (two right, confident; one wrong at 0.5) and two out-of-scope rows at 0.45 and 0.6
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.45, 0.55], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 2, 2])
    threshold, scores = routing.choose_threshold(probabilities, labels)
    # at 0.8 both right answers stay and both out-of-scope rows go: balanced 1.0 (at 0.6 one oos row would stay)
    assert threshold == pytest.approx(0.8)
    assert (scores.in_scope_accuracy, scores.out_of_scope_recall) == (pytest.approx(2 / 3), 1.0)
    assert scores.handover_share == pytest.approx(3 / 5)
    assert routing.routing_scores(labels, routing.route(probabilities, threshold), 2) == scores


def test_threshold_needs_out_of_scope_and_in_scope_validation_rows():
    with pytest.raises(ValueError, match="needs validation rows both in scope and out of scope; got 0 out-of-scope"):
        routing.choose_threshold(np.array([[0.9, 0.1]]), np.array([0]))


def test_out_of_scope_class_must_be_the_last_class():
    assert routing.in_scope_classes(["a", "b", "oos"], "oos") == ["a", "b"]
    with pytest.raises(ValueError, match="must be the data's last class"):
        routing.in_scope_classes(["oos", "a", "b"], "oos")
    with pytest.raises(ValueError, match="'none' is not a class of the data"):
        routing.in_scope_classes(["a", "b"], "none")
