"""Routing: answer with an in-scope class, or hand the text over to a person when the model is not confident enough.

Takes in-scope class probabilities and labels in which the out-of-scope class is the last id (`in_scope_classes`
checks it); hands on the threshold chosen on validation, the routed predictions and the scores Larson et al. (2019,
CLINC150) report: in-scope accuracy and out-of-scope recall.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

HANDOVER = "handover"  # what a served model answers for a text it hands over


def in_scope_classes(names: Sequence[str], out_of_scope: str) -> list[str]:
    """The classes a model is trained on: all but `out_of_scope`, which must be the last class, so that in-scope
    ids are the same in the data and in the model (CLINC150's `oos` is last by construction)."""
    names = list(names)
    if out_of_scope not in names:
        raise ValueError(f"out_of_scope_class {out_of_scope!r} is not a class of the data; its classes are {names}")
    if names[-1] != out_of_scope:
        raise ValueError(f"out_of_scope_class {out_of_scope!r} must be the data's last class, but the classes are "
                         f"{names}; list it last (label_names of a local file, or the oos subset of clinc150)")
    return names[:-1]


def route(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """The in-scope class of highest probability, or the out-of-scope id (one past the last in-scope class) where
    that probability is below `threshold`."""
    probabilities = np.asarray(probabilities, dtype=float)
    routed = probabilities.argmax(axis=1)
    routed[probabilities.max(axis=1) < threshold] = probabilities.shape[1]
    return routed


@dataclass(frozen=True)
class RoutingScores:
    """In-scope accuracy (right class, not handed over) and out-of-scope recall and precision (handovers)."""

    in_scope_accuracy: float
    out_of_scope_recall: float
    out_of_scope_precision: float
    handover_share: float  # of all rows
    in_scope_rows: int
    out_of_scope_rows: int

    @property
    def balanced(self) -> float:
        """The mean of in-scope accuracy and out-of-scope recall: what the threshold is chosen to maximise."""
        return (self.in_scope_accuracy + self.out_of_scope_recall) / 2


def routing_scores(labels: Sequence[int], routed: Sequence[int], out_of_scope_id: int) -> RoutingScores:
    labels, routed = np.asarray(labels), np.asarray(routed)
    outside, handed = labels == out_of_scope_id, routed == out_of_scope_id
    inside = ~outside

    def share(hits: np.ndarray, rows: np.ndarray) -> float:
        return float(hits[rows].mean()) if rows.any() else float("nan")

    return RoutingScores(
        in_scope_accuracy=share(routed == labels, inside), out_of_scope_recall=share(handed, outside),
        out_of_scope_precision=share(outside, handed), handover_share=float(handed.mean()) if len(labels) else 0.0,
        in_scope_rows=int(inside.sum()), out_of_scope_rows=int(outside.sum()))


def choose_threshold(probabilities: np.ndarray, labels: Sequence[int]) -> tuple[float, RoutingScores]:
    """The confidence threshold that maximises `RoutingScores.balanced` on these (validation) rows; ties go to the
    lowest threshold, which hands over least. The out-of-scope id is one past the in-scope classes.

    Balanced, not overall accuracy: the share of out-of-scope rows in validation (CLINC150: 100 of 3,100) is not
    the share a desk will see, and a threshold tuned to it would say more about the split than about the model.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels)
    out_of_scope_id = probabilities.shape[1]
    if not (labels == out_of_scope_id).any() or (labels == out_of_scope_id).all():
        raise ValueError("choosing a handover threshold needs validation rows both in scope and out of scope; "
                         f"got {int((labels == out_of_scope_id).sum())} out-of-scope rows of {len(labels)}")
    confidence = probabilities.max(axis=1)
    # Every distinct confidence is a candidate (a row is kept at or above it), and 0 hands nothing over.
    candidates = np.unique(np.concatenate([[0.0], confidence]))
    best = max(((routing_scores(labels, route(probabilities, t), out_of_scope_id), -t) for t in candidates),
               key=lambda pair: (pair[0].balanced, pair[1]))
    return float(-best[1]), best[0]
