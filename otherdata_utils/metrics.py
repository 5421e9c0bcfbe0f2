"""Metrics step: `evaluate` modules, classification report, per-domain (worst-group), calibration, length, seeds.

Hands plain JSON-able dicts, pandas tables and a per-example predictions CSV to studies, plots and the run folder.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import pandas as pd
import sklearn.metrics as skm
from scipy import stats

from otherdata_utils.io import PathLike, atomic_path

if TYPE_CHECKING:
    import evaluate

# Shipped beside this file, one folder per metric named like its script, as `evaluate.load` expects.
EVALUATE_MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"

_AVERAGES = ("micro", "macro", "weighted")


def available_metrics() -> list[str]:
    """Names `load_metric` accepts: the metric scripts shipped in `evaluate_modules/`."""
    return sorted(p.parent.name for p in EVALUATE_MODULES_DIR.glob("*/*.py") if p.stem == p.parent.name)


def load_metric(name: str, **load_kwargs: Any) -> evaluate.EvaluationModule:
    """Load one of our local `evaluate` metrics (accuracy, precision, recall, f1) without the Hub.

    `evaluate.load` on a script path copies the script into its modules cache and imports it; it never looks up
    the Hub, so this works with HF_HUB_OFFLINE=1. `load_kwargs` go to `evaluate.load`.
    """
    script = EVALUATE_MODULES_DIR / name / f"{name}.py"
    if not script.is_file():
        raise ValueError(
            f"unknown metric {name!r}: otherdata ships {available_metrics()} in {EVALUATE_MODULES_DIR}; "
            "add a folder <name>/<name>.py there for another one"
        )
    # evaluate pulls in datasets and pyarrow (seconds); import it only when a metric is asked for.
    import evaluate

    # In memory, a metric writes no Arrow cache files under ~/.cache and cannot collide with another process
    # evaluating under the same default experiment id.
    load_kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(script), **load_kwargs)


def combined(names: Sequence[str], **load_kwargs: Any) -> evaluate.CombinedEvaluations:
    """Several local metrics as one module (`evaluate.combine`); compute keyword arguments go to every metric."""
    import evaluate  # lazy, as in load_metric: evaluate pulls in datasets and pyarrow

    return evaluate.combine([load_metric(name, **load_kwargs) for name in names])


def _as_label_arrays(
    labels: Sequence[int], predictions: Sequence[int], num_labels: int
) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(labels, dtype=int)
    y_pred = np.asarray(predictions, dtype=int)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"labels {y_true.shape} and predictions {y_pred.shape} must be 1-D and of equal length")
    if y_true.size == 0:
        raise ValueError("no examples to score: labels and predictions are empty")
    for what, values in (("labels", y_true), ("predictions", y_pred)):
        bad = values[(values < 0) | (values >= num_labels)]
        if bad.size:
            raise ValueError(f"{what} hold id {bad[0]}, outside 0..{num_labels - 1} for {num_labels} label names")
    return y_true, y_pred


@functools.lru_cache(maxsize=None)
def _scoring_module(name: str) -> evaluate.EvaluationModule:
    """One loaded module per metric and process: loading copies and imports a script (seconds), computing does not."""
    return load_metric(name)


def compute_classification_metrics(
    labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, micro/macro/weighted precision, recall and F1, and per-class scores, as plain Python numbers.

    Scored by the shipped `evaluate` modules (`load_metric`: the Hub metrics' interface, offline), the same
    `evaluate.load` path an online user takes. Keys: `n`, `accuracy`, `{micro,macro,weighted}_{precision,recall,f1}`,
    and `per_class` mapping each label name to `{precision, recall, f1, support}`. Every class in `label_names`
    counts, present or not (its scores are 0).
    """
    label_names = list(label_names)
    y_true, y_pred = _as_label_arrays(labels, predictions, len(label_names))
    # All ids, so a class missing from this split still weighs in macro averages instead of silently vanishing.
    ids = list(range(len(label_names)))
    inputs = {"references": y_true.tolist(), "predictions": y_pred.tolist()}
    result: dict[str, Any] = {"n": int(y_true.size),
                              "accuracy": float(_scoring_module("accuracy").compute(**inputs)["accuracy"])}
    per_class: dict[str, list[float]] = {}
    for score in ("precision", "recall", "f1"):
        module = _scoring_module(score)
        for average in _AVERAGES:
            result[f"{average}_{score}"] = float(
                module.compute(**inputs, labels=ids, average=average, zero_division=0)[score])
        per_class[score] = np.atleast_1d(module.compute(**inputs, labels=ids, average=None, zero_division=0)[score])
    support = np.bincount(y_true, minlength=len(label_names))
    result["per_class"] = {
        name: {"precision": float(per_class["precision"][i]), "recall": float(per_class["recall"][i]),
               "f1": float(per_class["f1"][i]), "support": int(support[i])}
        for i, name in enumerate(label_names)
    }
    return result


def classification_report_text(
    labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str], digits: int = 4
) -> str:
    """scikit-learn's classification report, one row per class name (never a bare id)."""
    label_names = list(label_names)
    y_true, y_pred = _as_label_arrays(labels, predictions, len(label_names))
    return skm.classification_report(
        y_true, y_pred, labels=list(range(len(label_names))), target_names=label_names, digits=digits, zero_division=0
    )


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_labels: int) -> list[list[int]]:
    """Counts with rows = true label id and columns = predicted id, always `num_labels` x `num_labels`."""
    y_true, y_pred = _as_label_arrays(labels, predictions, num_labels)
    matrix = skm.confusion_matrix(y_true, y_pred, labels=list(range(num_labels)))
    return [[int(count) for count in row] for row in matrix]


def row_normalized_confusion(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each true class's row as shares of that class (its recall on the diagonal); a class with no rows stays 0."""
    counts = np.asarray(matrix, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {counts.shape}")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return [[float(share) for share in row] for row in shares]


def per_domain_metrics(
    labels: Sequence[int], predictions: Sequence[int], domains: Sequence[str], label_names: Sequence[str]
) -> dict[str, Any]:
    """The WILDS-style group view: accuracy and macro-F1 per domain, the worst and best domain, and their gap.

    Keys: `per_domain` ({domain: {n, accuracy, macro_f1}}, domains sorted by name), `worst_domain`,
    `worst_accuracy`, `best_domain`, `gap` (best minus worst accuracy), `macro_avg_accuracy` (unweighted mean over
    domains), `overall_accuracy` and `n`. Ties for worst or best go to the first domain by name.
    """
    y_true, y_pred = _as_label_arrays(labels, predictions, len(label_names))
    domain_of = np.asarray([str(domain) for domain in domains], dtype=object)
    if domain_of.shape != y_true.shape:
        raise ValueError(f"{domain_of.size} domains for {y_true.size} labels: give one domain per example")
    per_domain: dict[str, dict[str, Any]] = {}
    for domain in sorted(set(domain_of)):
        mask = domain_of == domain
        per_domain[domain] = {
            "n": int(mask.sum()),
            "accuracy": float(skm.accuracy_score(y_true[mask], y_pred[mask])),
            # Over the classes present in this domain: a one-class slice would otherwise be halved by an absent
            # class whose F1 is 0 by convention, and look worse than it is.
            "macro_f1": float(skm.f1_score(y_true[mask], y_pred[mask], average="macro", zero_division=0)),
        }
    accuracies = {domain: row["accuracy"] for domain, row in per_domain.items()}
    worst = min(accuracies, key=accuracies.__getitem__)
    best = max(accuracies, key=accuracies.__getitem__)
    return {
        "per_domain": per_domain,
        "worst_domain": worst,
        "worst_accuracy": accuracies[worst],
        "best_domain": best,
        "gap": accuracies[best] - accuracies[worst],
        "macro_avg_accuracy": float(np.mean(list(accuracies.values()))),
        "overall_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "n": int(y_true.size),
    }


def per_domain_frame(per_domain: dict[str, Any]) -> pd.DataFrame:
    """A per-domain table for a notebook: worst domain first, with a `worst` column marking it.

    Takes the result of `per_domain_metrics` or just its `per_domain` mapping.
    """
    rows = per_domain["per_domain"] if "worst_domain" in per_domain else per_domain
    frame = pd.DataFrame(
        [{"domain": domain, **values} for domain, values in rows.items()],
        columns=["domain", "n", "accuracy", "macro_f1"],
    )
    frame = frame.sort_values(["accuracy", "domain"], kind="stable").reset_index(drop=True)
    frame["worst"] = frame.index == 0
    return frame


def calibration_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 15) -> dict[str, Any]:
    """Expected calibration error and the reliability diagram's bins, from the predicted class's probability.

    Bin b holds confidences in (b/n_bins, (b+1)/n_bins] (0 falls in the first); ECE is the sum over bins of
    (rows in bin / all rows) * |accuracy in bin - mean confidence in bin|. Keys: `ece`, `n_bins`, `n` and `bins`,
    one dict per bin with `low`, `high`, `n`, `confidence` and `accuracy` (None for an empty bin).
    """
    confidence = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    if confidence.shape != hit.shape or confidence.ndim != 1 or confidence.size == 0:
        raise ValueError(f"confidences {confidence.shape} and correct {hit.shape} must be 1-D, non-empty and equal")
    if ((confidence < 0) | (confidence > 1)).any() or not np.isfinite(confidence).all():
        raise ValueError("confidences must be probabilities in [0, 1]; pass the predicted class's softmax output")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: a confidence on an inner edge belongs to the bin below it, as (low, high] says.
    index = np.digitize(confidence, edges[1:-1], right=True)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        mean_confidence = float(confidence[mask].mean()) if count else None
        accuracy = float(hit[mask].mean()) if count else None
        if count:
            ece += count / confidence.size * abs(accuracy - mean_confidence)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": count, "confidence": mean_confidence,
                     "accuracy": accuracy})
    return {"ece": float(ece), "n_bins": n_bins, "n": int(confidence.size), "bins": bins}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion: unlike p ± z·se it stays inside [0, 1] and is sane near 0 or 1."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n and n > 0; got {successes} of {n}")
    z = float(stats.norm.ppf((1 + confidence) / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def accuracy_by_length(token_counts: Sequence[int], correct: Sequence[bool], *, max_length: Optional[int] = None,
                       groups: int = 4, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Accuracy of the shortest to the longest quarter of texts (by token count), with Wilson intervals.

    Rows are ranked by token count (ties in row order) and cut into `groups` near-equal parts, Q1 the shortest, so
    every part has the same n even when many texts share a length; a length can then close one part and open the
    next. One dict per part: `group`, `n`, `min_tokens`, `max_tokens`, `accuracy`, `ci_low`, `ci_high` and, with
    `max_length`, `truncated` (share of its texts longer than max_length, which the model saw cut).
    """
    lengths = np.asarray(token_counts, dtype=int)
    hit = np.asarray(correct, dtype=bool)
    if lengths.shape != hit.shape or lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"token_counts {lengths.shape} and correct {hit.shape} must be 1-D, non-empty and equal")
    rows = []
    for number, part in enumerate(np.array_split(np.argsort(lengths, kind="stable"), groups), start=1):
        if part.size == 0:  # fewer texts than groups
            continue
        successes = int(hit[part].sum())
        low, high = wilson_interval(successes, int(part.size), confidence)
        row = {"group": f"Q{number}", "n": int(part.size), "min_tokens": int(lengths[part].min()),
               "max_tokens": int(lengths[part].max()), "accuracy": successes / part.size, "ci_low": low,
               "ci_high": high}
        if max_length is not None:
            row["truncated"] = float((lengths[part] > max_length).mean())
        rows.append(row)
    return rows


def save_predictions(
    path: PathLike,
    *,
    ids: Sequence[Any],
    texts: Sequence[str],
    domains: Sequence[str],
    labels: Sequence[int],
    predictions: Sequence[int],
    probabilities: Sequence[Sequence[float]],
    label_names: Sequence[str],
) -> Path:
    """Write one row per example (atomically): id, domain, text, label, prediction, correct, confidence, prob_<class>.

    Labels and predictions are written as class names; `confidence` is the probability of the predicted class.
    """
    label_names = list(label_names)
    y_true, y_pred = _as_label_arrays(labels, predictions, len(label_names))
    probs = np.asarray(probabilities, dtype=float)
    n = y_true.size
    if probs.shape != (n, len(label_names)):
        raise ValueError(
            f"probabilities have shape {probs.shape}; expected ({n}, {len(label_names)}), one column per class"
        )
    for what, values in (("ids", ids), ("texts", texts), ("domains", domains)):
        if len(values) != n:
            raise ValueError(f"{len(values)} {what} for {n} labels: give one per example")
    names = np.asarray(label_names, dtype=object)
    frame = pd.DataFrame(
        {
            "id": list(ids),
            "domain": list(domains),
            "text": list(texts),
            "label": names[y_true],
            "prediction": names[y_pred],
            "correct": y_true == y_pred,
            "confidence": probs[np.arange(n), y_pred],
        }
    )
    for column, name in enumerate(label_names):
        frame[f"prob_{name}"] = probs[:, column]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, encoding="utf-8")
    return Path(path)


def load_predictions(path: PathLike) -> pd.DataFrame:
    """Read a predictions CSV written by `save_predictions`; texts such as "NA" or "" stay strings."""
    text_columns = {"domain": str, "text": str, "label": str, "prediction": str}
    # keep_default_na=False: a review that reads "null" is text, not a missing value.
    return pd.read_csv(path, dtype=text_columns, keep_default_na=False, encoding="utf-8")


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std (ddof=1) and a Student-t confidence interval over seeds.

    Keys: `mean`, `std`, `n`, `ci_low`, `ci_high`, `confidence`. With one seed, `std`, `ci_low` and `ci_high` are
    None: one run says nothing about seed noise. The interval is never clipped: with few seeds an accuracy's t
    interval can run past 1.0, and should be seen to.
    """
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"seed_summary needs a flat, non-empty list of values; got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"seed_summary got non-finite values {data.tolist()}: drop failed runs first")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = int(data.size)
    mean = float(data.mean())
    summary: dict[str, Any] = {
        "mean": mean, "std": None, "n": n, "ci_low": None, "ci_high": None, "confidence": confidence
    }
    if n > 1:
        std = float(data.std(ddof=1))
        half_width = float(stats.t.ppf((1 + confidence) / 2, df=n - 1)) * std / math.sqrt(n)
        summary.update(std=std, ci_low=mean - half_width, ci_high=mean + half_width)
    return summary
