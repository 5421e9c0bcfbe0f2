"""A study's words and tables from its numbers: markdown tables, noise verdicts, reference and comparison lines.

Hands every study module the same formatting (and JSON records), so all studies say things the same way.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import pandas as pd


def number(value: Any, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def label_text(value: Any) -> str:
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{value:g}"
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values, NaN as null."""
    return json.loads(frame.round(4).to_json(orient="records", force_ascii=False))


# --- verdicts against the seed noise ----------------------------------------------------------------------------------

def settled(beyond_noise: Any) -> Optional[bool]:
    """A `beyond_noise` cell as True, False or None (a frame may hold numpy booleans or NaN)."""
    return None if beyond_noise is None or pd.isna(beyond_noise) else bool(beyond_noise)


def p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def noise_verdict(beyond_noise: Optional[bool], p_value: Optional[float], seeds: int) -> str:
    """metrics.differs_beyond_noise's answer in words; None means one seed, or two arms constant and equal."""
    if seeds < 2:
        return "unresolved (one seed)"
    if settled(beyond_noise) is None:
        return "identical on every seed"
    return f"{'beyond' if beyond_noise else 'within'} noise ({p_text(p_value)})"


def difference_verdict(comparison: pd.Series) -> str:
    """A `compare_arms` row as its difference to the reference and its noise verdict."""
    return (f"{comparison['difference']:+.3f}, "
            + noise_verdict(comparison["beyond_noise"], comparison["p_value"], comparison["seeds"]))


def tally_comparisons(comparisons: pd.DataFrame) -> tuple[int, int, int]:
    """(better beyond noise, worse beyond noise, not resolved) counts over comparisons."""
    beyond = comparisons["beyond_noise"].map(lambda value: settled(value) is True)
    better = int((beyond & (comparisons["difference"] > 0)).sum())
    worse = int((beyond & (comparisons["difference"] < 0)).sum())
    return better, worse, len(comparisons) - better - worse


# --- sentences --------------------------------------------------------------------------------------------------------

def reference_line(summary: pd.DataFrame, mask: pd.Series, name: str) -> str:
    row = summary[mask].iloc[0]
    interval = (f" (95% CI {number(row['ci_low'])}–{number(row['ci_high'])})" if pd.notna(row["ci_low"])
                else "")
    return f"{name} reaches {number(row['mean'])}{interval}"


def comparison_sentence(comparisons: pd.DataFrame) -> str:
    """What the comparisons against one reference say, split by whether each is beyond the seed noise."""
    parts = []
    for label, verdict in (("Beyond seed noise", True), ("Inside seed noise", False)):
        chosen = comparisons[comparisons["beyond_noise"].map(lambda value: settled(value) is verdict)]
        if len(chosen):
            parts.append(f"{label}: " + ", ".join(
                f"{row.arm} {row.difference:+.3f} ({p_text(row.p_value)})" for row in chosen.itertuples()) + ".")
    unresolved = comparisons[comparisons["beyond_noise"].isna()]
    for label, chosen in (("With one seed there is no noise estimate, so these are unresolved",
                           unresolved[unresolved["seeds"] < 2]),
                          ("Identical scores on every seed", unresolved[unresolved["seeds"] >= 2])):
        if len(chosen):
            parts.append(f"{label}: " + ", ".join(
                f"{row.arm} {row.difference:+.3f}" for row in chosen.itertuples()) + ".")
    return " ".join(parts)


def comparison_lines(summary: pd.DataFrame, comparisons: pd.DataFrame, reference: str) -> list[str]:
    """The reference arm's score, then every other arm's difference sorted by size, with the noise verdicts."""
    base = summary[summary["arm"] == reference].iloc[0]
    lines = [reference_line(summary, summary["arm"] == reference, reference) + f" over {int(base['n'])} seed(s)."]
    ordered = comparisons.sort_values("difference", ascending=False)
    lines += [f"- {row['arm']}: {difference_verdict(row)}" for _, row in ordered.iterrows()]
    better, worse, unresolved = tally_comparisons(comparisons)
    lines.append(f"{better} of {len(comparisons)} arm(s) beat {reference} beyond the seed noise, {worse} lost to it "
                 f"beyond the noise, {unresolved} could not be told apart from it.")
    return lines


# --- tables -----------------------------------------------------------------------------------------------------------

def design_markdown(design: dict[str, Any], reference: Optional[str] = None) -> str:
    """A study's scientific, fixed and seed parameters (`engine.study_design`) as one paragraph."""
    def values(items: dict[str, Any]) -> str:
        return "; ".join(f"{name} = {value}" for name, value in items.items())

    text = (f"*Scientific:* {values(design['scientific'])}. *Fixed:* {values(design['fixed'])}. "
            f"*Seeds:* {', '.join(map(str, design['seeds']))} ({design['nuisance']}). "
            "Intervals: 95% Student-t over seeds, clipped to [0, 1] for accuracies.")
    if reference is not None:
        text += f" \"Beyond noise\": Welch's t-test over seeds against `{reference}`, p < 0.05."
    return text


def results_markdown(summary: pd.DataFrame, comparisons: pd.DataFrame, labels: dict[str, str],
                     within: Sequence[str], groups: Sequence[str], headline: str) -> str:
    """One line per summary row: its labels (column -> header), rows, mean ± sd, interval, difference to the
    reference, verdict, and the mean accuracy on each extra test group."""
    verdicts = {tuple(row[[*within, "arm"]]): row for _, row in comparisons.iterrows()}
    header = [*labels.values(), "train rows", "seeds", f"{headline} accuracy (mean ± sd)", "95% CI", "Δ vs reference",
              "vs reference", *groups]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(labels) + "---:|" * (len(header) - len(labels))]
    for _, row in summary.iterrows():
        compared = verdicts.get(tuple(row[[*within, "arm"]]))
        cells = [label_text(row[name]) for name in labels] + [
            f"{row['n_train']:g}", str(row["n"]), f"{number(row['mean'])} ± {number(row['std'])}",
            f"{number(row['ci_low'])}–{number(row['ci_high'])}",
            "reference" if compared is None else f"{compared['difference']:+.3f}",
            "" if compared is None else noise_verdict(compared["beyond_noise"], compared["p_value"], compared["seeds"]),
            *(number(row[f"accuracy_{group}"]) for group in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arm_table(summary: pd.DataFrame, comparisons: pd.DataFrame, headline: str,
              extra: dict[str, tuple[str, str]]) -> str:
    """One markdown line per arm: rows, seeds, mean ± sd and 95% CI of the headline accuracy, the difference to the
    reference with its noise verdict, then `extra` columns ({column: (header, format spec)})."""
    verdicts = {row["arm"]: row for _, row in comparisons.iterrows()}
    header = ["arm", "train rows", "seeds", f"{headline} accuracy (mean ± sd)", "95% CI", "vs reference",
              *(title for title, _ in extra.values())]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for _, row in summary.iterrows():
        compared = verdicts.get(row["arm"])
        cells = [str(row["arm"]), f"{row['n_train']:g}", str(row["n"]),
                 f"{number(row['mean'])} ± {number(row['std'])}",
                 f"{number(row['ci_low'])}–{number(row['ci_high'])}",
                 "reference" if compared is None else difference_verdict(compared),
                 *("—" if pd.isna(row[column]) else format(row[column], spec) for column, (_, spec) in extra.items())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
