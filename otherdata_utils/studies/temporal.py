"""The time study: stale against contemporaneous reviews, a year or more apart, for held-out recent reviews.

Hands on the split by date (`TimeSplit`), equal-size period arms and the study's `StudyResult`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd
from datasets import Dataset, DatasetDict, concatenate_datasets

from .. import plots, runs
from ..clean import dedupe_key
from ..config import Config
from ..study_registry import StudyParams, register_study
from .engine import (Cell, StudyPlan, StudyResult, clean_data, compare_arms, finish, plan_cells, reported_groups,
                     run_cells, seeds, study_design, summarize)
from .reuse import PlannedCells, with_reuse
from .sampling import column, equal_size_arms, proportional, ranked_strata, take
from .tables import comparison_sentence, reference_line, results_markdown


class TimeParams(StudyParams):
    """`study.time`: no parameters of its own (its arms are `TIME_RECIPES`); the block names the study."""



@dataclass
class TimeSplit:
    """Every dated row once, split by date: older rows, a gap left out, and recent ones split into a training pool,
    validation and test. No text (after case/punctuation folding) occurs twice across the parts."""

    cut: str  # ISO date: rows dated from it on are recent
    older: Dataset  # dated before `older_before`: the stale training pool
    recent: Dataset  # dated from the cut on, outside validation and test: the contemporaneous training pool
    validation: Dataset  # recent rows for checkpoint choice, the same for every arm
    test: Dataset  # held-out recent rows
    undated: int  # rows left out for having no date
    duplicates: int  # rows left out because their folded text occurs in an earlier row
    older_before: str  # ISO date: rows dated before it are older; rows from it up to `cut` are the gap
    gap: int  # dated rows left out for falling in the gap

    def date_ranges(self) -> dict[str, tuple[str, str]]:
        """(earliest, latest) date of each part: older and recent pools, validation and test."""
        return {name: date_range(rows) for name, rows in (("older pool", self.older), ("recent pool", self.recent),
                                                          ("validation", self.validation), ("test", self.test))}


def date_range(rows: Dataset) -> tuple[str, str]:
    """The earliest and latest date of `rows` (ISO strings)."""
    dates = column(rows, "date")
    return min(dates), max(dates)


# Blitzer's dates: 1,110 reviews up to 2004, 1,524 in 2005 and 5,365 in 2006 (and 26 before 2000). Leaving 2005 out
# puts a full year between the stale and the contemporaneous pools while the stale pool (1,110) still fills
# equal-size arms of a few hundred rows; a cut at 2004 would leave 592 stale reviews, too few per (domain, label).
OLDER_BEFORE = "2005-01-01"
RECENT_FROM = "2006-01-01"


def time_split(dataset: DatasetDict, config: Config, recent_from: str = RECENT_FROM,
               older_before: str = OLDER_BEFORE) -> TimeSplit:
    """A split by date built from every row of every split (the carved splits are random, not by time).

    Rows are pooled; undated rows and later repeats of a folded text are dropped, so no text can sit on both sides.
    Rows dated before `older_before` are the stale pool; rows from `older_before` up to `recent_from` are the gap and
    left out, so the two periods lie apart.
    Rows dated on or after `recent_from` are split, stratified by (domain, label) with `config.seed` (fixed over
    the study's seeds), into test (`test_split_percentage`, at most `max_test_samples`), validation
    (`validation_split_percentage`, at most `max_eval_samples`) and the contemporaneous training pool.
    """
    if older_before > recent_from:
        raise ValueError(f"time_split: older_before ({older_before}) must not fall after recent_from ({recent_from})")
    pooled = concatenate_datasets([dataset[split] for split in dataset])
    seen: set[str] = set()
    dated, undated, duplicates = [], 0, 0
    for row, (date, text) in enumerate(zip(column(pooled, "date"), column(pooled, "text"))):
        key = dedupe_key(text)
        if not date:
            undated += 1
        elif key in seen:
            duplicates += 1
        else:
            dated.append(row)
        seen.add(key)
    dates = column(pooled, "date")
    older = take(pooled, [row for row in dated if dates[row] < older_before], f"older than {older_before}")
    gap = sum(older_before <= dates[row] < recent_from for row in dated)
    recent = take(pooled, [row for row in dated if dates[row] >= recent_from], f"from {recent_from}")

    ranked = ranked_strata(recent, config.seed)
    sizes = {key: len(rows) for key, rows in ranked.items()}
    held = {}
    for split, percentage, cap in (("test", config.test_split_percentage, config.max_test_samples),
                                   ("validation", config.validation_split_percentage, config.max_eval_samples)):
        count = round(len(recent) * percentage / 100)
        held[split] = proportional(sizes, min(count, cap) if cap else count)
    test_rows, validation_rows, pool_rows = [], [], []
    for key, rows in ranked.items():
        n_test, n_validation = held["test"][key], held["validation"][key]
        test_rows += rows[:n_test]
        validation_rows += rows[n_test:n_test + n_validation]
        pool_rows += rows[n_test + n_validation:]
    return TimeSplit(cut=recent_from, older=older, recent=take(recent, sorted(pool_rows), "recent pool"),
                     validation=take(recent, sorted(validation_rows), "recent validation"),
                     test=take(recent, sorted(test_rows), "recent test"), undated=undated, duplicates=duplicates,
                     older_before=older_before, gap=gap)


# Each arm's share of rows from each period; the older share is the x axis of the time curve.
TIME_RECIPES = {"older": {"older": 1.0}, "mixed": {"older": 0.5, "recent": 0.5}, "contemporaneous": {"recent": 1.0}}


def time_split_of(config: Config, recent_from: str = RECENT_FROM, older_before: str = OLDER_BEFORE) -> TimeSplit:
    """`time_split` of every row the config's sources hold, uncapped: the eval and test caps apply to the split by
    date, not to the random carved splits."""
    return time_split(clean_data(config, max_eval_samples=None, max_test_samples=None), config, recent_from,
                      older_before)


def time_study(config: Config, split: Optional[TimeSplit] = None) -> StudyResult:
    """What stale data costs: a held-out test set of recent reviews; equal-size training sets of older reviews,
    contemporaneous ones (disjoint from test) and half of each, with the same (domain, label) make-up.

    `split` (default: `time_split_of(config)`: up to 2004 against 2006) is the split by date to train and test on.
    The date range of every arm and of the test rows goes into the table, so the gap is read, not assumed.
    """
    split = split or time_split_of(config)
    recent_from = split.cut
    planned = planned_cells(config, split)
    dates = date_table(planned.cells, split)
    results = run_cells(config, planned.cells, planned.test, planned.label_names, desc="time")
    groups = reported_groups(results, None)
    summary = summarize(results, ["arm", "older_share"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "contemporaneous")
    figure = plots.plot_quality_curve(summary.assign(series=f"test: reviews from {recent_from[:4]} on").rename(
        columns={"older_share": "x"}), path=runs.run_folder(config).figure("time_staleness"),
        xlabel=f"share of training reviews dated before {split.older_before}", title="Stale vs contemporaneous data")
    design = study_design(config, {"training reviews": list(TIME_RECIPES)},
                          "the model's initialisation, batch order and which reviews of each period are drawn",
                          {"older": f"dated before {split.older_before}",
                           "gap": f"{split.older_before} to {recent_from}, {split.gap} reviews left out",
                           "test": f"{len(split.test)} reviews from {recent_from} on",
                           "validation": f"{len(split.validation)} reviews from {recent_from} on",
                           "sizes": "equal per (domain, label) stratum"})
    table = "\n\n".join([results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, "test",
                                           test_rows=len(split.test)),
                          "Dates of the rows each arm trained on (over all seeds) and of the held-out rows:",
                          _dates_markdown(dates)])
    kept = len(split.older) + len(split.recent) + len(split.validation) + len(split.test)
    older = dates.set_index("rows").loc["older"]
    lines = [f"A split by date built from all {kept + split.gap} dated, distinct reviews ({split.undated} undated "
             f"and {split.duplicates} repeated texts left out): {len(split.test)} reviews from {recent_from} on are "
             f"the test set; every arm trains on {summary['n_train'].iloc[0]:g} reviews with the same domain and "
             f"label make-up. The stale reviews date from {older['earliest']} to {older['latest']}; the "
             f"{split.gap} reviews from {split.older_before} up to {recent_from} are left out, so at least a year "
             "separates stale training data from the test period.",
             reference_line(summary, summary["arm"] == "contemporaneous", "Contemporaneous training data") + ". "
             + comparison_sentence(comparisons)]
    return finish(config, "time", results, summary, comparisons, design, table, "\n\n".join(lines), figure)


def date_table(cells: list[Cell], split: TimeSplit) -> pd.DataFrame:
    """Earliest and latest date and row count of each arm's training rows (over every seed), then of the validation
    and test rows."""
    by_arm: dict[str, list[str]] = {}
    for cell in cells:
        by_arm.setdefault(cell.arm, []).extend(column(cell.train, "date"))
    by_arm.update(validation=column(split.validation, "date"), test=column(split.test, "date"))
    return pd.DataFrame([{"rows": name, "earliest": min(dates), "latest": max(dates),
                          "dated_before_cut": sum(date < split.cut for date in dates), "count": len(dates)}
                         for name, dates in by_arm.items()])


def _dates_markdown(dates: pd.DataFrame) -> str:
    lines = ["| rows | earliest | latest | rows (all seeds) | of them before the cut |", "|---|---|---|---:|---:|"]
    lines += [f"| {row.rows} | {row.earliest} | {row.latest} | {row.count} | {row.dated_before_cut} |"
              for row in dates.itertuples()]
    return "\n".join(lines)


def planned_cells(config: Config, split: Optional[TimeSplit] = None) -> PlannedCells:
    """Per seed, one cell per `TIME_RECIPES` arm: equal-size rows of the split's older and recent pools (drawn by the
    seed), its recent validation rows; scored on its recent test rows. `split` defaults to `time_split_of(config)`."""
    split = split or time_split_of(config)
    pools = {"older": split.older, "recent": split.recent}
    cells = []
    for seed in seeds(config):
        arms = equal_size_arms(pools, TIME_RECIPES, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=split.validation,
                       facts={"older_share": TIME_RECIPES[arm].get("older", 0.0)}) for arm, rows in arms.items()]
    return PlannedCells(cells, split.test, list(split.test.features["label"].names))


def plan(config: Config) -> StudyPlan:
    """Per seed: one model per `TIME_RECIPES` arm; where the run folder holds stored cells, how many it reuses
    (`with_reuse`, on the default split by date)."""
    return with_reuse(plan_cells("time", list(TIME_RECIPES), config, {"fine-tuned": len(TIME_RECIPES)}), config,
                      planned_cells)


register_study("time", TimeParams, uses_split_seeds=False, plan=plan)  # each seed draws its rows
