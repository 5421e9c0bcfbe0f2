"""The few-shot study: a target cut to k rows per class, alone and with other domains under each mixing strategy.

Hands on the study's cells (`few_shot_cells`), its `StudyResult` with curves over k, and a reading per k.
"""
from __future__ import annotations

from typing import Any, Optional

import pandas as pd
from datasets import Dataset

from .. import mix, plots, runs
from ..config import Config
from .engine import (Cell, StudyResult, compare_arms, finish, prepared_data, reported_groups, run_cells,
                     study_design, summarize, target_domain)
from .sampling import column, domain_rows
from .tables import comparison_sentence, reference_line, results_markdown, tally_comparisons


def mixing_arms(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """(arm name, config changes) per mixing strategy of the study; temperature once per study temperature."""
    arms = []
    for strategy in config.study_strategies:
        if strategy == "temperature":
            arms += [(f"temperature T={t:g}", {"mixing_strategy": "temperature", "mixing_temperature": t})
                     for t in config.study_temperatures]
        else:
            arms.append((strategy, {"mixing_strategy": strategy}))
    return arms


def few_shot_budget(config: Config, k: Optional[int], classes: int, target_rows: int) -> Optional[int]:
    """Training rows of every arm at one k: `max_train_samples`, raised to the k-shot target's own rows so the
    target-only arm always trains on every target row it was given (None: no cap, as the config says)."""
    if config.max_train_samples is None:
        return None
    return max(config.max_train_samples, target_rows if k is None else min(k * classes, target_rows))


def few_shot_cells(config: Config, train: Dataset, validation: Dataset) -> list[Cell]:
    """For each k, seed and mixing arm: the target cut to k rows per class (the same rows in every arm of a seed),
    other domains mixed in by the arm's strategy within the k's budget (`few_shot_budget`)."""
    target = config.target_domain
    classes = len(train.features["label"].names)
    target_rows = column(train, "domain").count(target)
    cells = []
    for k in config.study_k_values:
        budget = few_shot_budget(config, k, classes, target_rows)
        for seed in config.seeds:
            for arm, changes in mixing_arms(config):
                mixed, report = mix.mix(train, config.replace(few_shot_k=k, max_train_samples=budget, **changes),
                                        seed=seed)
                from_target = next(group for group in report.groups if group.is_target)
                cells.append(Cell(arm=arm, seed=seed, train=mixed, validation=validation, facts={
                    "k_label": "all" if k is None else str(k),
                    # "all" sits on the k axis at the target's mean rows per class
                    "k": round(target_rows / classes) if k is None else k,
                    "target_rows": from_target.achieved_rows,
                    "target_share": round(from_target.achieved_share, 4),
                }))
    return cells


def few_shot_study(config: Config) -> StudyResult:
    """Does other data help a small target? Target-only against target + other domains per mixing strategy, for
    each k per class, over seeds; measured on the target's test rows (other domains' rows reported beside)."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "few_shot_study")
    validation = domain_rows(prepared["validation"], target)
    cells = run_cells(config, few_shot_cells(config, prepared["train"], validation), prepared["test"], names,
                      headline=target, desc="few-shot")
    groups = reported_groups(cells, target)
    summary = summarize(cells, ["k_label", "k", "arm"], also=["target_rows", *(f"accuracy_{g}" for g in groups)])
    summary["target_rows"] = summary["target_rows"].round(1)  # a mean over seeds: 0.7 target rows, not 0.666667
    reference = "target_only"
    comparisons = compare_arms(cells, reference, within=["k_label"])
    figure = plots.plot_few_shot_curves(summary.rename(columns={"arm": "strategy"}),
                                        path=runs.run_folder(config).figure("few_shot_curves"))
    design = study_design(config, {"k per class": [k if k is not None else "all" for k in config.study_k_values],
                                   "arm": [arm for arm, _ in mixing_arms(config)]},
                          "the model's initialisation, batch order and which k target rows are drawn",
                          {"target_domain": target, "validation": f"{len(validation)} {target} rows"})
    labels = {"k_label": "k", "arm": "arm", "target_rows": "target rows (with repeats)"}
    table = results_markdown(summary, comparisons, labels, ["k_label"], groups, target)
    return finish(config, "few_shot_mixing", cells, summary, comparisons, design, table,
                  _few_shot_reading(summary, comparisons, target, cells, reference), figure)


def _few_shot_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, target: str, cells: pd.DataFrame,
                      reference: str) -> str:
    budgets = summary.groupby("k_label", sort=False)["n_train"].max()
    lines = [f"Measured on {int(cells['n_test'].iloc[0])} {target} test rows; every arm of a k trains on the same "
             "number of rows at most (the budget: "
             + ", ".join(f"{budget:g} at k = {k_label}" for k_label, budget in budgets.items()) + "), seeds "
             f"{', '.join(str(seed) for seed in sorted(cells['seed'].unique()))}."]
    for k_label, at_k in summary.groupby("k_label", sort=False):
        lead = reference_line(at_k, at_k["arm"] == reference, "target-only") if (at_k["arm"] == reference).any() \
            else "no target-only arm"
        lines.append(f"k = {k_label}: {lead}. "
                     + comparison_sentence(comparisons[comparisons["k_label"] == k_label]))
    if len(comparisons):
        better, worse, unresolved = tally_comparisons(comparisons)
        lines.append(f"Over all (k, strategy) pairs, other data beat target-only beyond the seed noise in {better} "
                     f"of {len(comparisons)}, lost beyond it in {worse}, and could not be told apart in "
                     f"{unresolved}.")
    return "\n\n".join(lines)
