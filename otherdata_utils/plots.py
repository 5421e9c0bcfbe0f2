"""Figures step: every figure a run or study shows, one function each, drawn from plain data.

Each function returns the matplotlib Figure (a notebook displays it) and, given `path`, writes it as a PNG atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from otherdata_utils.io import PathLike, atomic_path
from otherdata_utils.metrics import per_domain_frame, row_normalized_confusion
from otherdata_utils.runs import RunFolder

_HIGHLIGHT = "tab:red"
_BASE = "tab:blue"
# The paired-comparison table each study publishes under studies/<study>/, and what the forest plot reads of it.
COMPARISONS_TABLE = "comparisons.csv"
_FOREST_COLUMNS = ("arm", "reference", "delta", "ci_low", "ci_high")
# A comparison's colour by the study's own verdict (Holm-adjusted); any other verdict reads as "cannot tell".
_VERDICT_COLORS = {"helps": "tab:green", "hurts": "tab:red", "cannot tell": "tab:gray"}


def _new_figure(ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.0)) -> tuple[Figure, Any]:
    """A figure on the session's backend: inline in Jupyter, Agg (picked by matplotlib) without a display.

    In Jupyter the figure stays open, so the inline backend shows it after the cell even when the call ends in `;`
    (and closes it then). Elsewhere it leaves pyplot's registry at once, so a study drawing hundreds of figures
    does not pile them up; drawing on and saving a closed figure still work.
    """
    fig, axes = plt.subplots(1, ncols, figsize=figsize, layout="constrained", squeeze=True)
    if "inline" not in matplotlib.get_backend():
        plt.close(fig)
    return fig, axes


def _finish(fig: Figure, path: Optional[PathLike]) -> Figure:
    if path is not None:
        with atomic_path(path) as tmp:
            # The temporary name ends in .tmp, so the format must be named.
            fig.savefig(tmp, format="png", dpi=120)
    return fig


def _check_columns(frame: pd.DataFrame, required: Sequence[str], what: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs columns {list(required)}; missing {missing} (has {list(frame.columns)})")


def _annotate_cells(ax: Axes, values: np.ndarray, text: np.ndarray, image: Any) -> None:
    """Write each cell's text, dark on light cells and light on dark ones, so every number stays readable."""
    for (row, col), value in np.ndenumerate(values):
        if np.isnan(value):
            color = "black"
        else:
            red, green, blue, _ = image.cmap(image.norm(value))
            color = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(col, row, text[row, col], ha="center", va="center", color=color, fontsize=9)


def _plot_bands(ax: Axes, frame: pd.DataFrame, x: str, series: str) -> None:
    """One line per series with its confidence band; a series of one point (an anchor run at one k) gets an error
    bar instead, since a band over one x is invisible; a point without an interval (one seed) gets neither."""
    for name, group in frame.groupby(series, sort=True):
        group = group.sort_values(x)
        line, = ax.plot(group[x], group["mean"], marker="o", label=str(name))
        low = pd.to_numeric(group["ci_low"], errors="coerce")
        high = pd.to_numeric(group["ci_high"], errors="coerce")
        if len(group) == 1:
            if low.notna().all() and high.notna().all():
                ax.errorbar(group[x], group["mean"], yerr=[group["mean"] - low, high - group["mean"]], fmt="none",
                            ecolor=line.get_color(), capsize=4)
            continue
        ax.fill_between(group[x], low, high, where=low.notna() & high.notna(), color=line.get_color(), alpha=0.2,
                        linewidth=0)
    ax.grid(alpha=0.3)
    ax.legend(title=series)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: Optional[PathLike] = None) -> Figure:
    """Training (and evaluation) loss vs step on the left, evaluation accuracy and macro-F1 vs step on the right.

    `history` mixes training rows ({"step", "epoch", "loss"}) and evaluation rows ({"step", "epoch", "eval_loss",
    "eval_accuracy", "eval_macro_f1"}), as the training loop logs them.
    """
    fig, (loss_ax, score_ax) = _new_figure(ncols=2, figsize=(11.0, 4.0))
    frame = pd.DataFrame(list(history))
    drawn = {"loss": False, "score": False}
    for column, ax, kind, label in (
        ("loss", loss_ax, "loss", "training loss"),
        ("eval_loss", loss_ax, "loss", "evaluation loss"),
        ("eval_accuracy", score_ax, "score", "accuracy"),
        ("eval_macro_f1", score_ax, "score", "macro-F1"),
    ):
        if column in frame.columns and "step" in frame.columns:
            rows = frame[["step", column]].dropna().sort_values("step")
            if not rows.empty:
                # Evaluations are sparse: markers make a single evaluation visible.
                ax.plot(rows["step"], rows[column], label=label, marker="o" if column.startswith("eval") else None)
                drawn[kind] = True
    for ax, kind, title in ((loss_ax, "loss", "Loss"), (score_ax, "score", "Evaluation")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn[kind]:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    return _finish(fig, path)


def plot_confusion_matrix(
    matrix: Sequence[Sequence[float]], label_names: Sequence[str], path: Optional[PathLike] = None,
    normalize: bool = False,
) -> Figure:
    """Counts (or, with `normalize`, each true class's row as shares) with true labels down and predictions across."""
    names = list(label_names)
    fig, ax = _new_figure(figsize=(1.2 * len(names) + 3.0, 1.0 * len(names) + 2.0))
    _draw_confusion(fig, ax, matrix, names, normalize)
    return _finish(fig, path)


def _draw_confusion(fig: Figure, ax: Axes, matrix: Sequence[Sequence[float]], names: list[str],
                    normalize: bool) -> None:
    counts = np.asarray(matrix, dtype=float)
    if counts.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix has shape {counts.shape}; expected {len(names)}x{len(names)} for {names}")
    if normalize:
        values = np.asarray(row_normalized_confusion(counts))
        text = np.vectorize(lambda v: f"{v:.2f}")(values)
    else:
        values = counts
        text = np.vectorize(lambda v: f"{v:.0f}")(values)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    _annotate_cells(ax, values, text, image)
    crowded = len(names) > 4
    ax.set_xticks(range(len(names)), names, rotation=45 if crowded else 0, ha="right" if crowded else "center")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (share of each true class)" if normalize else ""))
    fig.colorbar(image, ax=ax)


def plot_per_domain(per_domain: Mapping[str, Any], path: Optional[PathLike] = None) -> Figure:
    """Accuracy per domain as horizontal bars, worst first and highlighted, with the overall accuracy as a line.

    Takes the result of `metrics.per_domain_metrics` (or just its `per_domain` mapping).
    """
    frame = per_domain_frame(dict(per_domain))
    fig, ax = _new_figure(figsize=(7.0, 0.45 * len(frame) + 1.8))
    # Worst at the top: barh draws the first row at the bottom, so reverse.
    shown = frame.iloc[::-1]
    bars = ax.barh(shown["domain"], shown["accuracy"], color=[_HIGHLIGHT if w else _BASE for w in shown["worst"]])
    ax.bar_label(bars, labels=[f"{a:.3f} (n={n})" for a, n in zip(shown["accuracy"], shown["n"])], padding=3,
                 fontsize=8)
    if "overall_accuracy" in per_domain:
        ax.axvline(per_domain["overall_accuracy"], color="gray", linestyle="--",
                   label=f"overall {per_domain['overall_accuracy']:.3f}")
        # The worst (shortest) bar is at the top, so the upper right is free.
        ax.legend(loc="upper right")
    # Room on the right for the labels.
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("accuracy")
    ax.set_title("Accuracy per domain (worst in red)")
    return _finish(fig, path)


def plot_transfer_heatmap(matrix: pd.DataFrame, path: Optional[PathLike] = None) -> Figure:
    """Accuracy of a model trained on each domain (rows) tested on each domain (columns), every cell annotated."""
    values = matrix.to_numpy(dtype=float)
    fig, ax = _new_figure(figsize=(1.0 * values.shape[1] + 3.5, 0.8 * values.shape[0] + 2.2))
    image = ax.imshow(values, cmap="viridis")
    text = np.vectorize(lambda v: "–" if np.isnan(v) else f"{v:.3f}")(values)
    _annotate_cells(ax, values, text, image)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(r) for r in matrix.index])
    ax.set_xlabel("test domain")
    ax.set_ylabel("train domain")
    ax.set_title("Transfer: accuracy by train and test domain")
    fig.colorbar(image, ax=ax, label="accuracy")
    return _finish(fig, path)


def plot_few_shot_curves(frame: pd.DataFrame, path: Optional[PathLike] = None, *, ylabel: str = "accuracy",
                         title: str = "Few-shot curves: mean and 95% interval over replicates") -> Figure:
    """A score (accuracy by default) against the number of in-domain examples k (log scale), one line and confidence
    band per strategy.

    An optional `k_label` column names a point "all" (every target row) on the axis."""
    _check_columns(frame, ["k", "strategy", "mean", "ci_low", "ci_high"], "plot_few_shot_curves")
    fig, ax = _new_figure()
    _plot_bands(ax, frame, "k", "strategy")
    # k = 0 (no in-domain data) has no place on a log axis; symlog keeps it, linear up to 1.
    if (frame["k"] > 0).all():
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=1)
    # "every target row" sits at its mean rows per class; its tick says so (a k_label column carries "all").
    _ticks_naming_all(ax, frame, "k", "k_label")
    ax.set_xlabel("in-domain examples k")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, path)


def _ticks_naming_all(ax: Any, frame: pd.DataFrame, value: str, label: str) -> None:
    """An x tick at each value; a value whose `label` column says "all" (every row) is named so, with its number."""
    values = sorted(frame[value].unique())
    names = dict(zip(frame[value], frame[label].astype(str))) if label in frame else {}
    ax.set_xticks(values, [f"all ({v:g})" if names.get(v) == "all" else f"{v:g}" for v in values])
    ax.minorticks_off()


def plot_dose_curves(frame: pd.DataFrame, path: Optional[PathLike] = None, *, reference: str = "target_only",
                     floor: Optional[str] = "other_only", ylabel: str = "accuracy",
                     title: str = "Other-row dose: mean and 95% interval over replicates") -> Figure:
    """A score against the other rows added (the dose, log scale), one panel per k: one line and band per series
    over its doses, the `floor` series (other rows alone) dashed, and the `reference` series (target-only, dose 0)
    a horizontal line with its band, so each curve reads as help or harm against it.

    Reads `k_label`, `series`, `dose` (other rows in the pool, > 0 but for the reference), `mean`, `ci_low`,
    `ci_high`; an optional `dose_label` names a dose "all" (every other row) on the axis."""
    _check_columns(frame, ["k_label", "series", "dose", "mean", "ci_low", "ci_high"], "plot_dose_curves")
    panels = list(dict.fromkeys(frame["k_label"].astype(str)))
    fig, axes = _new_figure(ncols=len(panels), figsize=(4.4 * len(panels) + 1.0, 4.0))
    for ax, k_label in zip(np.atleast_1d(axes), panels):
        at_k = frame[frame["k_label"].astype(str) == k_label]
        base, curves = at_k[at_k["series"] == reference], at_k[at_k["series"] != reference]
        if (curves["dose"] <= 0).any():
            raise ValueError(f"plot_dose_curves: k = {k_label} has doses ≤ 0 outside the reference "
                             f"{reference!r}: {sorted(curves.loc[curves['dose'] <= 0, 'series'].unique())}")
        for _, row in base.iterrows():
            ax.axhline(row["mean"], color="black", linewidth=1.2, label=f"{reference} (dose 0)")
            if pd.notna(row["ci_low"]) and pd.notna(row["ci_high"]):
                ax.axhspan(row["ci_low"], row["ci_high"], color="black", alpha=0.08, linewidth=0)
        _plot_bands(ax, curves, "dose", "series")
        for line in ax.get_lines():
            if line.get_label() == floor:
                line.set_linestyle("--")
        ax.legend(title="arm", fontsize=8)  # again, so the floor's dashes reach its legend entry
        ax.set_xscale("log")
        _ticks_naming_all(ax, curves, "dose", "dose_label")
        ax.set_xlabel("other rows added (dose)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"k = {k_label}")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_mix(mix_frame: pd.DataFrame, path: Optional[PathLike] = None) -> Figure:
    """The achieved training mix: each group's share of rows as a bar, the requested share as a marker.

    Reads `group`, `achieved_rows` and, where a share was asked for, `requested_share` (empty for none).
    """
    _check_columns(mix_frame, ["group", "achieved_rows"], "plot_mix")
    rows = mix_frame["achieved_rows"].astype(float)
    total = rows.sum()
    if total <= 0:
        raise ValueError("plot_mix: achieved_rows sum to 0; the mix holds no rows to plot")
    groups = mix_frame["group"].astype(str)
    achieved = rows / total
    fig, ax = _new_figure(figsize=(max(5.0, 0.9 * len(groups) + 2.5), 4.0))
    bars = ax.bar(groups, achieved, color=_BASE, label="achieved")
    ax.bar_label(bars, labels=[f"{int(n)} rows" for n in rows], padding=2, fontsize=8)
    requested = pd.to_numeric(mix_frame.get("requested_share", pd.Series(np.nan, index=mix_frame.index)),
                              errors="coerce")
    asked = requested.notna()
    if asked.any():
        ax.scatter(groups[asked], requested[asked], marker="_", s=600, linewidths=3, color=_HIGHLIGHT, zorder=3,
                   label="requested")
    # Headroom above the tallest bar or marker for the row-count labels.
    ax.set_ylim(0, 1.15 * max(achieved.max(), requested.max(skipna=True) if asked.any() else 0.0))
    ax.set_ylabel("share of training rows")
    ax.set_title(f"Achieved mix ({int(total)} rows)")
    ax.legend()
    if len(groups) > 4:
        ax.tick_params(axis="x", labelrotation=45)
    return _finish(fig, path)


def plot_selection_scores(scores: Sequence[float], chosen: Sequence[bool], score_name: str,
                          path: Optional[PathLike] = None) -> Figure:
    """Score distributions of the chosen and the rejected candidates of a selection, as overlaid histograms on
    shared bins (densities, so a budget of a few hundred rows among thousands stays visible)."""
    scores, chosen = np.asarray(scores, dtype=float), np.asarray(chosen, dtype=bool)
    if scores.shape != chosen.shape or not np.isfinite(scores).any():
        raise ValueError(f"plot_selection_scores needs one finite score per candidate and a chosen flag for each; "
                         f"got {scores.shape} scores and {chosen.shape} flags")
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=40)
    fig, ax = _new_figure()
    for mask, name, color in ((~chosen & finite, "rejected", _BASE), (chosen & finite, "chosen", _HIGHLIGHT)):
        if mask.any():
            ax.hist(scores[mask], bins=bins, density=True, alpha=0.6, color=color, label=f"{name} ({mask.sum()})")
    ax.set_xlabel(score_name)
    ax.set_ylabel("density")
    ax.set_title("Selection: scores of chosen and rejected rows")
    ax.legend()
    return _finish(fig, path)

def plot_similarity_vs_help(pairs: pd.DataFrame, path: Optional[PathLike] = None) -> Figure:
    """Each (target, source) pair: the source's similarity to the target against the Δ its arm brought over
    target-only, with the Δ's interval as a vertical bar, one colour per target and a line at Δ = 0."""
    _check_columns(pairs, ["target", "source", "similarity", "delta", "ci_low", "ci_high"], "plot_similarity_vs_help")
    fig, ax = _new_figure()
    for target, group in pairs.groupby("target", sort=True):
        bars = ax.errorbar(group["similarity"], group["delta"],
                           yerr=[group["delta"] - group["ci_low"], group["ci_high"] - group["delta"]],
                           fmt="o", capsize=3, alpha=0.8, label=str(target))
        for row in group.itertuples():
            ax.annotate(str(row.source), (row.similarity, row.delta), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=bars[0].get_color())
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("similarity to the target (cosine of embedding centroids)")
    ax.set_ylabel("Δ accuracy vs target-only")
    ax.set_title("Does a source's similarity predict the help it brings?")
    ax.grid(alpha=0.3)
    ax.legend(title="target", fontsize=8)
    return _finish(fig, path)


def plot_quality_curve(
    frame: pd.DataFrame, path: Optional[PathLike] = None, *, xlabel: str = "x", ylabel: str = "accuracy",
    title: str = "Accuracy against data quality",
) -> Figure:
    """A metric against a quality knob (label noise rate, annotator agreement), one line and band per series."""
    _check_columns(frame, ["x", "mean", "ci_low", "ci_high", "series"], "plot_quality_curve")
    fig, ax = _new_figure()
    _plot_bands(ax, frame, "x", "series")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _finish(fig, path)


def plot_arms(summary: pd.DataFrame, *, title: str, xlabel: str, notes: Optional[Sequence[str]] = None,
              path: Optional[PathLike] = None) -> Figure:
    """Each arm's mean score as a horizontal bar with its 95% interval over seeds (no whisker with one seed), the
    reference arm (first row) at the top; `notes` adds a text per arm after its mean."""
    fig, ax = _new_figure(figsize=(7.5, 0.5 * len(summary) + 1.8))
    shown = summary.iloc[::-1].reset_index(drop=True)
    low = pd.to_numeric(shown["ci_low"], errors="coerce")
    high = pd.to_numeric(shown["ci_high"], errors="coerce")
    errors = np.vstack([(shown["mean"] - low).fillna(0), (high - shown["mean"]).fillna(0)])
    colors = ["tab:gray" if position == len(shown) - 1 else _BASE for position in range(len(shown))]
    bars = ax.barh(shown["arm"].astype(str), shown["mean"], xerr=errors, color=colors, capsize=3)
    notes = list(notes)[::-1] if notes is not None else [""] * len(shown)
    ax.bar_label(bars, labels=[f"{mean:.3f} {note}".rstrip() for mean, note in zip(shown["mean"], notes)],
                 padding=4, fontsize=8)
    ax.set_xlim(0, 1.25)  # room on the right for the labels
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, path)


def plot_confusion_matrices(
    matrix: Sequence[Sequence[float]], label_names: Sequence[str], path: Optional[PathLike] = None
) -> Figure:
    """The counts (left) beside each true class's row as shares (right): the shares read as per-class recall."""
    names = list(label_names)
    fig, (counts_ax, shares_ax) = _new_figure(ncols=2, figsize=(2.4 * len(names) + 6.0, 1.0 * len(names) + 2.2))
    _draw_confusion(fig, counts_ax, matrix, names, normalize=False)
    _draw_confusion(fig, shares_ax, matrix, names, normalize=True)
    counts_ax.set_title("Counts")
    shares_ax.set_title("Share of each true class")
    return _finish(fig, path)


def plot_reliability(calibration: Mapping[str, Any], path: Optional[PathLike] = None) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration, the gap to each
    bin's mean confidence in red, ECE in the title; beside it, how many predictions fall in each bin.

    Takes the result of `metrics.calibration_bins`.
    """
    bins = pd.DataFrame(list(calibration["bins"]))
    _check_columns(bins, ["low", "high", "n", "confidence", "accuracy"], "plot_reliability")
    filled = bins[bins["n"] > 0]
    fig, (ax, count_ax) = _new_figure(ncols=2, figsize=(10.0, 4.2))
    accuracy = filled["accuracy"].astype(float)
    gap = filled["confidence"].astype(float) - accuracy
    width = filled["high"] - filled["low"]
    ax.bar(filled["low"], accuracy, width=width, align="edge", color=_BASE, edgecolor="white", label="accuracy")
    ax.bar(filled["low"], gap, bottom=accuracy, width=width, align="edge", color=_HIGHLIGHT, alpha=0.35,
           edgecolor=_HIGHLIGHT, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability: ECE {calibration['ece']:.3f} ({calibration['n_bins']} bins)")
    ax.legend(loc="upper left", fontsize=8)
    counts = count_ax.bar(bins["low"], bins["n"], width=bins["high"] - bins["low"], align="edge", color="tab:gray",
                          edgecolor="white")
    count_ax.bar_label(counts, labels=[str(n) if n else "" for n in bins["n"]], fontsize=7, padding=1)
    count_ax.set_xlim(0, 1)
    count_ax.set_xlabel("confidence")
    count_ax.set_ylabel("predictions")
    count_ax.set_title(f"Predictions per bin (n = {calibration['n']})")
    return _finish(fig, path)


def plot_accuracy_by_length(rows: Sequence[Mapping[str, Any]], path: Optional[PathLike] = None) -> Figure:
    """Accuracy with its interval for each length quartile (shortest first), each labelled with its token range, n
    and, where given, the share of texts truncated.

    Takes the result of `metrics.accuracy_by_length`.
    """
    frame = pd.DataFrame(list(rows))
    _check_columns(frame, ["group", "n", "min_tokens", "max_tokens", "accuracy", "ci_low", "ci_high"],
                   "plot_accuracy_by_length")
    fig, ax = _new_figure(figsize=(7.0, 4.2))
    x = np.arange(len(frame))
    errors = np.vstack([frame["accuracy"] - frame["ci_low"], frame["ci_high"] - frame["accuracy"]])
    ax.errorbar(x, frame["accuracy"], yerr=errors, fmt="o", capsize=5, color=_BASE)
    for position, (accuracy, high) in enumerate(zip(frame["accuracy"], frame["ci_high"])):
        ax.annotate(f"{accuracy:.3f}", (position, high), textcoords="offset points", xytext=(0, 4), ha="center",
                    fontsize=8)
    labels = []
    for _, row in frame.iterrows():
        label = f"{row['group']}\n{row['min_tokens']}–{row['max_tokens']} tokens\nn = {row['n']}"
        if "truncated" in frame.columns:
            label += f"\n{row['truncated']:.0%} truncated"
        labels.append(label)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.5, len(frame) - 0.5)
    # Zoom on the intervals (accuracies differ by a few points), with room above for the labels.
    ax.set_ylim(max(0.0, frame["ci_low"].min() - 0.05), min(1.0, frame["ci_high"].max() + 0.05) + 0.02)
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_title("Accuracy by token count before truncation")
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def plot_monitoring(periods: pd.DataFrame, label: str, period_name: str, baseline_share: float,
                    path: Optional[PathLike] = None) -> Figure:
    """A monitored class's share per period with its 95% interval, the baseline share, each period's upper control
    limit, flagged periods marked, and the stream's own labelled share where it has one.

    Reads `start`, `share`, `ci_low`, `ci_high`, `upper_limit`, `baseline`, `flagged` (and `true_share`)."""
    _check_columns(periods, ["start", "share", "ci_low", "ci_high", "upper_limit", "baseline", "flagged"],
                   "plot_monitoring")
    fig, ax = _new_figure(figsize=(8.0, 4.0))
    when = pd.to_datetime(periods["start"])
    ax.fill_between(when, periods["ci_low"], periods["ci_high"], alpha=0.2, step="mid", label="95% interval")
    ax.plot(when, periods["share"], marker=".", label=f"predicted {label} share")
    if "true_share" in periods:
        ax.plot(when, periods["true_share"], linestyle=":", color="grey", label=f"labelled {label} share")
    ax.step(when, periods["upper_limit"], where="mid", color="red", linewidth=0.8, label="upper control limit")
    ax.axhline(baseline_share, color="black", linewidth=0.8, linestyle="--", label="baseline share")
    flagged = periods["flagged"].astype(bool)
    ax.scatter(when[flagged], periods.loc[flagged, "share"], color="red", zorder=3, label="flagged")
    baseline_end = when[periods["baseline"].astype(bool)].max()
    ax.axvspan(when.min(), baseline_end, color="grey", alpha=0.08)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"{period_name} (shaded: baseline)")
    ax.set_ylabel(f"share of texts predicted {label}")
    ax.set_title(f"Monitoring: {label} share per {period_name}")
    ax.legend(fontsize="small", loc="upper left")
    fig.autofmt_xdate()
    return _finish(fig, path)


def forest_rows(results_dir: PathLike) -> pd.DataFrame:
    """Every paired comparison published under `results_dir` (a book of `publish`ed folders), in folder order: one
    row per row of each `<folder>/studies/<study>/comparisons.csv`, with `group` (the folder, and the study where a
    folder holds several), `label` (k, arm vs reference, metric where the table names them), `delta`, `ci_low`,
    `ci_high` and `verdict` ("helps", "hurts" or "cannot tell")."""
    if not Path(results_dir).is_dir():
        raise ValueError(f"{results_dir}: no such results folder (a folder of published runs, e.g. results/)")
    folders = sorted(path for path in Path(results_dir).iterdir() if path.is_dir())
    rows = []
    for folder in folders:
        tables = sorted(RunFolder(folder).studies.glob(f"*/{COMPARISONS_TABLE}"))
        for table in tables:
            # k "8" and k "all" share a column: read every label as text
            frame = pd.read_csv(table, dtype={"k_label": str, "arm": str, "reference": str, "metric": str})
            _check_columns(frame, _FOREST_COLUMNS, str(table))
            group = folder.name if len(tables) == 1 else f"{folder.name} · {table.parent.name}"
            for _, row in frame.iterrows():
                label = f"{row['arm']} vs {row['reference']}"
                if pd.notna(row.get("k_label")):
                    label = f"k {row['k_label']} · {label}"
                if pd.notna(row.get("metric")):
                    label = f"{label} ({row['metric']})"
                verdict = str(row.get("verdict", ""))
                rows.append({"group": group, "label": label, "delta": float(row["delta"]),
                             "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"]),
                             "verdict": next((word for word in ("helps", "hurts") if verdict.startswith(word)),
                                             "cannot tell")})
    return pd.DataFrame(rows, columns=["group", "label", "delta", "ci_low", "ci_high", "verdict"])


def plot_forest(rows: pd.DataFrame, path: Optional[PathLike] = None) -> Figure:
    """A forest plot: each comparison's Δ (arm − reference) with its 95% interval on one line, grouped under a bold
    heading per group, a zero line, coloured by verdict, and Δ [interval] written at the right.

    Takes the result of `forest_rows`; a row without an interval (one replicate) is a point alone."""
    _check_columns(rows, ["group", "label", "delta", "ci_low", "ci_high", "verdict"], "plot_forest")
    if rows.empty:
        raise ValueError("plot_forest needs at least one comparison; forest_rows found no comparisons table")
    labels, numbers, headings = [], [], []  # one entry per line of the plot, top to bottom
    places = pd.Series(0, index=rows.index)  # the line each comparison is drawn on
    for group in dict.fromkeys(rows["group"]):
        headings.append(len(labels))
        labels.append(group)
        numbers.append("")
        for index, row in rows[rows["group"] == group].iterrows():
            places[index] = len(labels)
            labels.append(row["label"])
            interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
            numbers.append(f"{row['delta']:+.3f}{interval}")
    fig, ax = _new_figure(figsize=(10.0, 0.19 * len(labels) + 1.6))
    for verdict, color in _VERDICT_COLORS.items():
        chosen = rows[rows["verdict"] == verdict]
        if chosen.empty:
            continue
        errors = np.vstack([(chosen["delta"] - chosen["ci_low"]).fillna(0),
                            (chosen["ci_high"] - chosen["delta"]).fillna(0)])
        ax.errorbar(chosen["delta"], places[chosen.index], xerr=errors, fmt="o", markersize=3.5, capsize=2,
                    elinewidth=1, color=color, label=verdict)
    ax.axvline(0, color="black", linewidth=0.8)
    lines = range(len(labels))
    ax.set_yticks(lines, labels, fontsize=7)
    right = ax.secondary_yaxis("right")
    right.set_yticks(lines, numbers, fontsize=7)
    for axis in (ax, right):
        for line in headings:
            axis.get_yticklabels()[line].set_fontweight("bold")
        axis.tick_params(axis="y", length=0)
    ax.set_ylim(len(labels) - 0.5, -0.7)  # the first group at the top
    ax.set_xlabel("Δ = arm − reference (accuracy unless the row names a metric), paired over replicates, 95% interval")
    ax.set_title("Every published comparison: does the arm beat its reference?", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", top=True, labeltop=True)  # a tall figure: the scale at both ends
    fig.legend(loc="outside upper center", ncols=len(_VERDICT_COLORS), fontsize=8, frameon=False,
               title="the study's verdict (Holm-adjusted)", title_fontsize=8)
    return _finish(fig, path)


def close(*figures: Figure) -> None:
    """Drop figures a step saved from pyplot's registry, so the notebook cell that ran the step does not show them
    all at its end; the notebook draws the ones it narrates where it narrates them."""
    for fig in figures:
        plt.close(fig)
