"""Re-rendering a published results folder's statistics from its cells, without retraining
(``python -m otherdata_utils publish --restat RESULTS_DIR``).

Takes a folder `publish` wrote; recomputes every study's comparisons from studies/<study>/cells.csv and correct.csv
with `studies.compare_arms` (today's statistics), and rewrites comparisons.csv, the study's metrics.json entry, its
report.md section and the README's statistics line in place. A folder without studies (one routed run) gets its
routing lines with the balanced score. Running it again changes nothing. `mark` puts a "Superseded by …" line or a
"Reading note: …" at the top of a folder's README.md and report.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .io import atomic_write_json, atomic_write_text, read_json
from .report import routing_line
from .runs import RunFolder
from .studies.engine import compare_arms
from .studies.routing import ROUTING_OUTCOMES, routing_balanced_section, routing_comparisons
from .studies.tables import (comparison_cells, comparison_sentence, difference_verdict, interval_text, number,
                             records, statistics_text, tally_comparisons)

# The comparison columns of a study table and how each cell was written when the book was first published: what
# restat finds in an old table to replace.
FIRST_HEADERS = ["Δ vs reference [95% CI]", "p_adj (Holm)", "MDE", "verdict"]
RESTAT_LINE = "Re-rendered without retraining by `python -m otherdata_utils publish --restat`"
_STATISTICS_START = " Δ: paired over (split seed, seed) against"


MARKS = ("Superseded by", "Reading note:")  # the lines `mark` writes, each replaced when marked again


class RestatError(ValueError):
    """A published folder whose comparisons cannot be re-rendered; one line naming the file."""


@dataclass
class Restated:
    """What restat did to one folder: per study, the intervals' coverage; and the notes of what it could not do."""

    folder: Path
    covers: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def restat(results_dir: Path) -> Restated:
    """Re-render `results_dir`'s comparisons (see the module docstring); return what was done."""
    folder = RunFolder(Path(results_dir))
    if not folder.metrics.is_file() or not folder.report.is_file():
        raise RestatError(f"{results_dir}: no metrics.json and report.md; give a folder `publish` wrote")
    metrics = read_json(folder.metrics)
    report = folder.report.read_text(encoding="utf-8")
    done = Restated(Path(results_dir))
    for name, entry in (metrics.get("studies") or {}).items():
        table = folder.study(name) / "comparisons.csv"
        if not table.is_file():
            continue  # a study without arm comparisons (the transfer matrix)
        old = pd.read_csv(table, dtype={"k_label": str})
        new = restated_comparisons(folder.study(name), old)
        old_section = study_text(name, entry)
        entry["table_markdown"] = restated_table(entry, old, new, folder.study(name))
        entry["reading"] = restated_reading(entry["reading"], old, new)
        entry["comparisons"] = records(new)
        entry["statistics"] = statistics_record(new)
        if old_section in report:
            report = report.replace(old_section, study_text(name, entry))
        elif study_text(name, entry) not in report:
            raise RestatError(f"{folder.report}: its section of study {name!r} is not the one metrics.json holds; "
                              "publish the run again, then restat")
        atomic_write_text(table, new.to_csv(index=False))
        done.covers[name] = sorted(set(new["interval_covers"]))
    routed = {split: (metrics.get(split) or {}).get("routing") for split in ("test", "validation")}
    if not metrics.get("studies") and any(routed.values()):
        report = restated_routing_lines(report, [routed[split] for split in ("test", "validation") if routed[split]])
        done.notes.append("one routed model: no comparison; the balanced score is shown beside the routing line. "
                          "Out-of-scope AUROC needs the per-row confidences, which stay in the run folder.")
    atomic_write_json(folder.metrics, metrics)
    atomic_write_text(folder.report, report)
    readme = Path(results_dir) / "README.md"
    if readme.is_file() and (done.covers or done.notes):  # a folder with nothing to restat keeps its README
        atomic_write_text(readme, restated_readme(readme.read_text(encoding="utf-8"), done))
    return done


def study_text(name: str, entry: dict[str, Any]) -> str:
    """A study's section of report.md as `report.write_report` writes it."""
    return f"## Study: {name}\n\n{entry['table_markdown']}\n\n{entry['reading']}"


def study_cells(study: Path) -> pd.DataFrame:
    """cells.csv with each cell's per-row correctness as 0/1 text (from correct.csv, or cells.csv's own column)."""
    cells = pd.read_csv(study / "cells.csv", dtype={"correct": str, "k_label": str})
    correct = study / "correct.csv"
    if correct.is_file():
        rows = pd.read_csv(correct, dtype={"correct": str, "k_label": str})
        keys = [name for name in rows.columns if name != "correct"]
        if rows.duplicated(keys).any():
            raise RestatError(f"{correct}: several rows for one of {keys}; it cannot be matched to cells.csv")
        cells = cells.drop(columns=["correct"], errors="ignore").merge(rows, on=keys, how="left", validate="m:1")
    return cells


def restated_comparisons(study: Path, old: pd.DataFrame) -> pd.DataFrame:
    """The study's comparisons computed afresh from its cells, in the first table's order (routing adds the
    balanced score). Raises where a Δ differs from the published one: the cells would not be the ones published."""
    cells = study_cells(study)
    reference = str(old["reference"].iloc[0])
    within = list(old.columns[:list(old.columns).index("arm")])
    if "metric" in old.columns:
        new = routing_comparisons(cells, reference)
    else:
        new = compare_arms(cells, reference, within=within)
    keys = [*within, "arm", *(["metric"] if "metric" in old.columns else [])]
    joined = old[[*keys, "delta"]].merge(new[[*keys, "delta"]], on=keys, how="left", suffixes=("_old", ""))
    moved = joined[~((joined["delta"] - joined["delta_old"]).abs() < 1e-9)]
    if len(moved):
        raise RestatError(f"{study / 'comparisons.csv'}: Δ of {moved[keys].to_dict('records')[:3]} recomputed from "
                          "the cells differs from the published one")
    order = {tuple(row): i for i, row in enumerate(old[keys].astype(str).itertuples(index=False))}
    shown = new[keys].astype(str).itertuples(index=False)
    rank = [order.get(tuple(row), len(order) + i) for i, row in enumerate(shown)]  # new rows (balanced score) last
    return new.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


def first_cells(row: pd.Series) -> list[str]:
    """A comparison's table cells as the first published tables wrote them (Δ [CI], p_adj, MDE, verdict)."""
    return [interval_text(row), "—" if pd.isna(row["p_holm"]) else f"{row['p_holm']:.3f}", number(row["mde"]),
            str(row["verdict"])]


def _matched(old: pd.DataFrame, new: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
    keys = [name for name in ("k_label", "arm", "metric") if name in old.columns]
    by_key = {tuple(str(row[name]) for name in keys): row for _, row in new.iterrows()}
    return [(row, by_key[tuple(str(row[name]) for name in keys)]) for _, row in old.iterrows()]


def restated_table(entry: dict[str, Any], old: pd.DataFrame, new: pd.DataFrame, study: Path) -> str:
    """The study's design paragraph with today's statistics sentences, and its tables with each comparison's cells
    replaced (as first published or as an earlier restat wrote them)."""
    text = entry["table_markdown"]
    design, _, tables = text.partition("\n\n")
    if _STATISTICS_START in design:
        design = design[:design.index(_STATISTICS_START)] + " " + statistics_text(str(old["reference"].iloc[0]), new)
    tables = tables.replace(" | ".join(FIRST_HEADERS), " | ".join(
        ["Δ vs reference [95% CI]", "p_adj (Holm, per family)", "MDE (α/m)", "verdict; TOST"]))
    for before, after in _matched(old, new):
        # as first published, or as an earlier restat wrote it; the whole verdict cell, not a restated one's start
        for shown in (first_cells(before), comparison_cells(before)):
            if " | ".join(shown) + " |" in tables:
                tables = tables.replace(" | ".join(shown) + " |", " | ".join(comparison_cells(after)) + " |", 1)
                break
    if "metric" in new.columns and "balanced score" not in tables:
        desk = str(entry["fixed"].get("desk", "")).split(" (")[0]
        tables += "\n\n" + routing_balanced_section(study_cells(study), new, desk)
    return f"{design}\n\n{tables}"


def restated_reading(reading: str, old: pd.DataFrame, new: pd.DataFrame) -> str:
    """The reading with its comparison sentences and counts written from the new comparisons."""
    groups = [old]
    for column in ("k_label", "metric"):
        if column in old.columns:
            groups += [part for _, part in old.groupby(column, sort=False)]
    if {"k_label", "metric"} <= set(old.columns):
        groups += [part for _, part in old.groupby(["k_label", "metric"], sort=False)]
    for part in sorted(groups, key=len, reverse=True):  # whole sentences first, then their parts
        sentence = comparison_sentence(part)
        if sentence and sentence in reading:
            rows = new.loc[[_position(new, row) for _, row in part.iterrows()]]
            reading = reading.replace(sentence, comparison_sentence(rows))
    for before, after in _matched(old, new):
        reading = reading.replace(difference_verdict(before), difference_verdict(after))
    reading = _restated_counts(reading, old, new)
    if "metric" in new.columns and "Balanced score —" not in reading:  # a routing study published before it
        balanced = new[new["metric"] == ROUTING_OUTCOMES["balanced"]]
        reading += "".join(f"\n\nk = {k_label}: Balanced score — " + comparison_sentence(part)
                           for k_label, part in balanced.groupby("k_label", sort=False))
    return reading


def _position(new: pd.DataFrame, row: pd.Series) -> int:
    mask = pd.Series(True, index=new.index)
    for name in ("k_label", "arm", "metric"):
        if name in new.columns and name in row.index:
            mask &= new[name].astype(str) == str(row[name])
    return int(mask.idxmax())


def _restated_counts(reading: str, old: pd.DataFrame, new: pd.DataFrame) -> str:
    """The tallies `few_shot` and `tables.comparison_lines` write, counted again."""
    (h0, x0, u0), (h1, x1, u1) = tally_comparisons(old), tally_comparisons(new)
    reading = reading.replace(f"helped in {h0}, hurt in {x0}, and could not be told apart in {u0}",
                              f"helped in {h1}, hurt in {x1}, and could not be told apart in {u1}")
    reference = str(old["reference"].iloc[0])
    return reading.replace(
        f"{h0} of {len(old)} arm(s) beat {reference} (Holm-adjusted p < 0.05), {x0} lost to it, {u0} could not",
        f"{h1} of {len(new)} arm(s) beat {reference} (Holm-adjusted p < 0.05), {x1} lost to it, {u1} could not")


def statistics_record(comparisons: pd.DataFrame) -> dict[str, Any]:
    """The study's statistics in metrics.json: what the intervals cover, the p, Holm's families, the MDE's α, the
    TOST margin."""
    margins = comparisons["margin"].dropna()
    return {"interval_covers": sorted(set(comparisons["interval_covers"])),
            "p": "paired t over replicates", "holm": "within each family apart: " + ", ".join(
                sorted(set(comparisons["family"]))),
            "mde_alpha": "alpha / m, m the tests of the comparison's family (Holm's first step)",
            "equivalence_margin": float(margins.iloc[0]) if len(margins) else None,
            "restated": RESTAT_LINE}


def restated_routing_lines(report: str, routed: list[dict[str, Any]]) -> str:
    """report.md with each split's routing line (test, then validation) as `report.routing_line` writes it."""
    lines = [index for index, line in enumerate(report.split("\n")) if line.startswith("routing: **in-scope")]
    if len(lines) != len(routed):
        raise RestatError(f"report.md holds {len(lines)} routing line(s) and metrics.json {len(routed)}")
    text = report.split("\n")
    for index, scores in zip(lines, routed):
        text[index] = routing_line(scores)
    return "\n".join(text)


def restated_readme(readme: str, done: Restated) -> str:
    """The README with one line after its title (and any "Superseded by" line) saying what restat re-rendered and
    what the intervals now cover; replaced when restated again."""
    covers = "; ".join(f"{name}: intervals cover {', '.join(kinds)}" for name, kinds in done.covers.items())
    what = f"comparisons from the study cells ({covers})" if covers else " ".join(done.notes).rstrip(".")
    lines = readme.split("\n")
    if RESTAT_LINE in readme:
        at = next(i for i, text in enumerate(lines) if text.startswith(RESTAT_LINE))
        del lines[at:at + 2]  # the line and the blank line after it
    start = 1 if lines and lines[0].startswith("# ") else 0
    while start < len(lines) and (lines[start].startswith(MARKS) or not lines[start].strip()):
        start += 1
    return "\n".join([*lines[:start], f"{RESTAT_LINE}: {what}.", "", *lines[start:]])


def mark(results_dir: Path, line: str) -> None:
    """Put `line` (starting with one of MARKS) under the title of the folder's README.md and report.md, in place of
    an earlier line that starts the same way; a line of another kind stays."""
    kind = next((prefix for prefix in MARKS if line.startswith(prefix)), None)
    if kind is None:
        raise RestatError(f"a mark starts with one of {list(MARKS)}; got {line[:40]!r}")
    for name in ("README.md", "report.md"):
        path = Path(results_dir) / name
        if not path.is_file():
            raise RestatError(f"{path}: no such file; give a folder `publish` wrote")
        lines = path.read_text(encoding="utf-8").split("\n")
        kept = [text for i, text in enumerate(lines)
                if not text.startswith(kind) and not (i and lines[i - 1].startswith(kind) and not text.strip())]
        start = 1 if kept and kept[0].startswith("# ") else 0
        while start < len(kept) and not kept[start].strip():
            start += 1
        atomic_write_text(path, "\n".join([*kept[:start], line, "", *kept[start:]]))
