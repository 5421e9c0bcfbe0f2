"""A study's words and tables from its numbers: markdown tables, paired verdicts, reference and comparison lines.

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


# --- verdicts: paired comparisons (engine.compare_arms, stats.compare_paired) -----------------------------------------

def interval_text(comparison: pd.Series) -> str:
    """A comparison's paired delta with its interval: "+0.031 [-0.004, +0.066]" (no interval: the delta alone)."""
    if pd.isna(comparison["ci_low"]):
        return number_signed(comparison["delta"])
    return (f"{number_signed(comparison['delta'])} [{number_signed(comparison['ci_low'])}, "
            f"{number_signed(comparison['ci_high'])}]")


def number_signed(value: Any, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:+.{digits}f}"


def difference_verdict(comparison: pd.Series) -> str:
    """A `compare_arms` row as its delta, interval and verdict: "+0.100 [+0.089, +0.112]: helps (...)"."""
    return f"{interval_text(comparison)}: {comparison['verdict']}"


def outcome(comparison: pd.Series, alpha: float = 0.05) -> str:
    """"helps", "hurts" or "cannot tell": the Holm-adjusted p against `alpha`, the sign of the delta; "cannot tell"
    also where the verdict does (the adjusted p passes but an interval over test rows too holds 0)."""
    p_holm = comparison["p_holm"]
    if pd.isna(p_holm) or p_holm >= alpha or comparison["delta"] == 0 or \
            str(comparison.get("verdict", "")).startswith("cannot tell"):
        return "cannot tell"
    return "helps" if comparison["delta"] > 0 else "hurts"


def sentence_group(comparison: pd.Series) -> str:
    """`outcome`, with the comparisons it cannot tell whose unadjusted interval excludes 0 set apart as "likely"."""
    found = outcome(comparison)
    return "likely" if found == "cannot tell" and str(comparison["verdict"]).startswith("likely") else found


def tally_comparisons(comparisons: pd.DataFrame) -> tuple[int, int, int]:
    """(helps, hurts, cannot tell) counts over comparisons, judged on the Holm-adjusted p."""
    outcomes = [outcome(row) for _, row in comparisons.iterrows()]
    return outcomes.count("helps"), outcomes.count("hurts"), outcomes.count("cannot tell")


# --- sentences --------------------------------------------------------------------------------------------------------

def reference_line(summary: pd.DataFrame, mask: pd.Series, name: str) -> str:
    row = summary[mask].iloc[0]
    interval = (f" (95% CI {number(row['ci_low'])}–{number(row['ci_high'])})" if pd.notna(row["ci_low"])
                else "")
    return f"{name} reaches {number(row['mean'])}{interval}"


def comparison_sentence(comparisons: pd.DataFrame, arm_column: str = "arm") -> str:
    """What the comparisons against one reference say: which arms help, hurt, likely differ without this size
    confirming it, or cannot be told apart (and how large a difference the interval still allows), each with its
    paired delta and interval."""
    parts = []
    for label, wanted in (("Helps", "helps"), ("Hurts", "hurts"), ("Likely, not confirmed", "likely"),
                          ("Cannot tell", "cannot tell")):
        chosen = [row for _, row in comparisons.iterrows() if sentence_group(row) == wanted]
        if chosen:
            parts.append(f"{label}: " + "; ".join(f"{row[arm_column]} {difference_verdict(row)}" for row in chosen)
                         + ".")
    return " ".join(parts)


def comparison_lines(summary: pd.DataFrame, comparisons: pd.DataFrame, reference: str) -> list[str]:
    """The reference arm's score, then every other arm's paired delta (largest first) with interval and verdict."""
    base = summary[summary["arm"] == reference].iloc[0]
    lines = [reference_line(summary, summary["arm"] == reference, reference) + f" over {int(base['n'])} "
             "replicate(s)."]
    ordered = comparisons.sort_values("delta", ascending=False)
    lines += [f"- {row['arm']}: {difference_verdict(row)}" for _, row in ordered.iterrows()]
    helps, hurts, unresolved = tally_comparisons(comparisons)
    lines.append(f"{helps} of {len(comparisons)} arm(s) beat {reference} (Holm-adjusted p < 0.05), {hurts} lost to "
                 f"it, {unresolved} could not be told apart from it at this size.")
    return lines


# --- tables -----------------------------------------------------------------------------------------------------------

def design_markdown(design: dict[str, Any], reference: Optional[str] = None,
                    comparisons: Optional[pd.DataFrame] = None) -> str:
    """A study's scientific, fixed and replicate parameters (`engine.study_design`) as one paragraph, and with a
    `reference` what its comparisons' statistics are (`statistics_text`)."""
    def values(items: dict[str, Any]) -> str:
        return "; ".join(f"{name} = {value}" for name, value in items.items())

    seeds, splits = design["seeds"], design.get("split_seeds", design["seeds"])
    count = design.get("replicates", len(seeds))
    # without split seeds each seed is a replicate of its own, drawing its rows too: no cross product to state
    replicates = (f"{count} = seeds {', '.join(map(str, seeds))}, each drawing its own rows" if
                  count == len(seeds) and list(splits) == list(seeds) and len(seeds) > 1 else
                  f"{count} = split seeds {', '.join(map(str, splits))} × seeds {', '.join(map(str, seeds))}")
    tuned = "".join(f" *Tuned per arm:* {name} {how}." for name, how in design.get("tuned", {}).items())
    text = (f"*Scientific:* {values(design['scientific'])}.{tuned} *Fixed:* {values(design['fixed'])}. "
            f"*Replicates:* {replicates} ({design['nuisance']}). "
            "Means: 95% Student-t interval over replicates (not clipped to [0, 1]).")
    if reference is not None:
        text += " " + statistics_text(reference, comparisons)
    return text


COVERS_TEXT = {
    "replicates + test rows": "a t interval (df = replicates − 1) on the variance sum: the spread of Δ over "
                              "replicates plus, where every replicate is scored on the same test rows, the test "
                              "sample's variance of Δ from per-row correctness (each row's mean Δ over replicates); "
                              "never narrower than the interval over replicates alone",
    "test rows": "a normal interval of Δ's test-row variance (one replicate)",
    "replicates": "the paired t interval over replicates only (no per-row correctness on the rows the metric is "
                  "measured on), conditional on this one test sample",
}


def statistics_text(reference: str, comparisons: Optional[pd.DataFrame]) -> str:
    """What a comparisons table's Δ, interval, p_adj, MDE and TOST are (`stats.compare_paired`), in sentences."""
    covers = [] if comparisons is None or "interval_covers" not in comparisons else list(
        dict.fromkeys(comparisons["interval_covers"].dropna()))
    interval = "; ".join(f"{COVERS_TEXT.get(kind, kind)} (intervals cover {kind})" for kind in covers) or \
        "the paired t interval over replicates (intervals cover replicates)"
    margin = (comparisons["margin"].dropna().iloc[0] if comparisons is not None and "margin" in comparisons
              and comparisons["margin"].notna().any() else None)
    text = (f"Δ: paired over (split seed, seed) against `{reference}` (arm minus reference); its 95% interval is "
            f"{interval}. p: paired t over replicates; p_adj: Holm within each family apart (other-data arms; "
            "anchors: probe, SetFit). MDE: the smallest true Δ the paired t test finds with 80% power at α/m, m "
            "the tests of its family (the α of Holm's first step, conservative for the others), from the observed "
            "spread of Δ; it is not an equivalence bound.")
    if margin is not None:
        text += (f" Equivalence: TOST at ±{margin:g} on the 90% interval of the same kind (\"equivalent within "
                 f"±{margin:g}\" or \"equivalence not shown\").")
    return text


def comparison_cells(compared: Optional[pd.Series]) -> list[str]:
    """A comparison's table cells: Δ [95% CI], p_adj (its family named where it is the anchors'), MDE, verdict
    with the TOST's result (the reference row says so)."""
    if compared is None:
        return ["reference", "", "", ""]
    family = compared.get("family")
    p_text = "—" if pd.isna(compared["p_holm"]) else f"{compared['p_holm']:.3f}"
    if family == "anchors":
        p_text += " (anchors)"
    return [interval_text(compared), p_text, number(compared["mde"]),
            str(compared["verdict"]) + tost_text(compared)]


def tost_text(compared: pd.Series) -> str:
    """"; TOST: equivalence not shown (90% [-0.031, +0.012])" for a comparison with a TOST, else ""."""
    if pd.isna(compared.get("equivalence", float("nan"))):
        return ""
    span = (f" (90% [{number_signed(compared['tost_low'])}, {number_signed(compared['tost_high'])}])"
            if pd.notna(compared.get("tost_low")) else "")
    return f"; TOST: {compared['equivalence']}{span}"


COMPARISON_HEADERS = ["Δ vs reference [95% CI]", "p_adj (Holm, per family)", "MDE (α/m)", "verdict; TOST"]


def results_markdown(summary: pd.DataFrame, comparisons: pd.DataFrame, labels: dict[str, str],
                     within: Sequence[str], groups: Sequence[str], headline: str,
                     test_rows: Optional[int] = None, measure: str = "accuracy") -> str:
    """One line per summary row: its labels (column -> header), train rows, replicates, test rows, mean ± sd and
    interval of the `measure`, then the paired comparison to the reference (Δ and interval, adjusted p, MDE, verdict) and the mean
    accuracy on each extra test group."""
    verdicts = {tuple(row[[*within, "arm"]]): row for _, row in comparisons.iterrows()}
    header = [*labels.values(), "train rows", "replicates", *(["test rows"] if test_rows else []),
              f"{headline} {measure} (mean ± sd)", "95% CI", *COMPARISON_HEADERS, *groups]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(labels) + "---:|" * (len(header) - len(labels))]
    for _, row in summary.iterrows():
        cells = [label_text(row[name]) for name in labels] + [
            f"{row['n_train']:g}", str(row["n"]), *([str(test_rows)] if test_rows else []),
            f"{number(row['mean'])} ± {number(row['std'])}", f"{number(row['ci_low'])}–{number(row['ci_high'])}",
            *comparison_cells(verdicts.get(tuple(row[[*within, "arm"]]))),
            *(number(row[f"accuracy_{group}"]) for group in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arm_table(summary: pd.DataFrame, comparisons: pd.DataFrame, headline: str,
              extra: dict[str, tuple[str, str]]) -> str:
    """One markdown line per arm: rows, replicates, mean ± sd and 95% CI of the headline accuracy, the paired
    comparison to the reference (Δ and interval, adjusted p, MDE, verdict), then `extra` columns
    ({column: (header, format spec)})."""
    verdicts = {row["arm"]: row for _, row in comparisons.iterrows()}
    header = ["arm", "train rows", "replicates", f"{headline} accuracy (mean ± sd)", "95% CI", *COMPARISON_HEADERS,
              *(title for title, _ in extra.values())]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for _, row in summary.iterrows():
        cells = [str(row["arm"]), f"{row['n_train']:g}", str(row["n"]),
                 f"{number(row['mean'])} ± {number(row['std'])}",
                 f"{number(row['ci_low'])}–{number(row['ci_high'])}",
                 *comparison_cells(verdicts.get(row["arm"])),
                 *("—" if pd.isna(row[column]) else format(row[column], spec) for column, (_, spec) in extra.items())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
