"""The recipe study: which training recipe (learning rate, epochs, ...) should each arm of a few-shot study use at
each k, chosen WITHOUT the study's target?

A few-shot study has no honest validation set: 16 target rows cannot choose a learning rate, and the target's test
rows must not (Perez et al. 2021, "True few-shot learning"). So the recipe is chosen on a DEVELOPMENT target: this
params file's `target_domain`, another domain of the same kind, with the few-shot study's target left out of the data
altogether (`study.recipe.study_target` names it, and the study refuses to run if any of its rows are present). Every
recipe of `study.recipe.grid` trains each few-shot arm on the few-shot study's own draws at k (its k-shot rows, other-
row pool and steps policy, `few_shot.few_shot_cells`), and every cell is scored on the development target's
validation rows only. `RULE`, fixed before any run, picks one recipe per (k, arm); the same rule for every arm.

Takes the run folder's prepared splits; hands on per (k, arm, recipe) mean validation accuracy, each recipe against
the file's own recipe (the reference) per (k, arm), the chosen recipes in metrics.json (`chosen`) and as the
`study.few_shot.recipes` block a few-shot params file takes (`recipes_yaml`).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any, Optional

import pandas as pd
from datasets import DatasetDict
from pydantic import Field, field_validator

from .. import plots, runs
from ..config import Config, MixingStrategy
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from . import few_shot
from .arm_recipes import RECIPE_SETTINGS
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, finish, plan_cells, prepared_data, run_cells,
                     study_design, summarize)
from .reuse import PlannedCells, with_reuse
from .sampling import column
from .setting_arms import target_validation_rows
from .tables import number, results_markdown

RULE = ("per (k, arm): the recipe with the highest mean validation accuracy on the development target over the "
        "replicates; a tie goes to the recipe listed first in the grid (lower values first)")
SHORT = {"learning_rate": "lr", "num_train_epochs": "epochs", "warmup_ratio": "warm-up",
         "weight_decay": "weight decay", "per_device_train_batch_size": "batch"}


class RecipeParams(StudyParams):
    """`study.recipe`: the k values and few-shot arms to choose a recipe for, the grid of recipes (every
    combination of the listed values), and the few-shot study's own target, which must be absent here."""

    k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32], min_length=1)
    strategies: list[MixingStrategy] = Field(default_factory=lambda: ["target_only", "concat"], min_length=1)
    grid: dict[str, list[float]] = Field(
        default_factory=lambda: {"learning_rate": [5e-5, 1e-4, 2e-4], "num_train_epochs": [2, 4]})
    study_target: str  # the few-shot study's target domain: never read here

    @field_validator("k_values")
    @classmethod
    def _k_values(cls, value: list) -> list:
        return distinct_values(value, "≥ 1 or null (all target rows)", lambda v: v is None or v >= 1)

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(RECIPE_SETTINGS))
        if unknown or not value:
            raise ValueError(f"grid settings must be some of {list(RECIPE_SETTINGS)}; got {sorted(value)}")
        for name, values in value.items():
            if not values:
                raise ValueError(f"grid {name!r} lists no value")
            distinct_values(values, "> 0", lambda v: v > 0)
        return value


def recipe_params(config: Config) -> RecipeParams:
    return study_params(config, "recipe", RecipeParams)


def grid_recipes(config: Config) -> list[dict[str, float]]:
    """Every combination of the grid's values, the first setting varying slowest, in the order listed."""
    grid = recipe_params(config).grid
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def recipe_label(settings: dict[str, Any]) -> str:
    return " · ".join(f"{SHORT[name]} {value:g}" for name, value in settings.items())


def reference_recipe(config: Config) -> dict[str, float]:
    """The params file's own values of the grid's settings: the recipe every other one is compared with. It must be
    a point of the grid, so the table shows where the chosen one stands against it."""
    own = {name: getattr(config, name) for name in recipe_params(config).grid}
    if own not in grid_recipes(config):
        raise ValueError(f"study.recipe.grid must hold the file's own recipe ({recipe_label(own)}) as the reference; "
                         f"the grid is {recipe_params(config).grid}")
    return own


def check_development_data(config: Config, prepared: DatasetDict) -> None:
    """The few-shot study's target must not be in the data at all: its rows choose nothing."""
    target = recipe_params(config).study_target
    if target == config.target_domain:
        raise ValueError(f"study.recipe.study_target {target!r} is this file's target_domain: the recipe must be "
                         "chosen on another (development) target")
    for split, rows in prepared.items():
        if target in set(column(rows, config.mix_by)):
            raise ValueError(f"study.recipe.study_target {target!r} has rows in the prepared {split} split; list "
                             "sources without it (e.g. named subsets such as blitzer_mds:books)")


def recipe_cells(config: Config, prepared: DatasetDict) -> tuple[list[Cell], Any]:
    """Per k and few-shot arm, the few-shot study's cells on the development target (its draws, steps policy and
    other-row pool) once per grid recipe: the arm named by the recipe, the few-shot arm kept as `strategy`."""
    params = recipe_params(config)
    check_development_data(config, prepared)
    target, validation = target_validation_rows(config, prepared, "study.recipe")
    cells = []
    for k in params.k_values:
        view = config.replace(study={"few_shot": {"k_values": [k], "strategies": list(params.strategies),
                                                  "other_groups": [], "anchors": [], "recipes": [],
                                                  "other_doses": None}})
        for cell in few_shot.few_shot_cells(view, prepared["train"], validation):
            for settings in grid_recipes(config):
                cells.append(replace(cell, arm=recipe_label(settings), config=view.replace(**settings),
                                     facts={**cell.facts, "strategy": cell.arm, **settings}))
    return cells, validation


def planned_cells(config: Config) -> PlannedCells:
    prepared, names = prepared_data(config)
    cells, validation = recipe_cells(config, prepared)
    return PlannedCells(cells, validation, names)


def chosen_recipes(config: Config, summary: pd.DataFrame) -> list[dict[str, Any]]:
    """`RULE` applied per (k, arm): the recipe with the highest mean validation accuracy, ties to grid order."""
    order = {recipe_label(settings): index for index, settings in enumerate(grid_recipes(config))}
    reference = recipe_label(reference_recipe(config))
    chosen = []
    for (k_label, strategy), group in summary.groupby(["k_label", "strategy"], sort=False):
        ranked = group.assign(order=group["arm"].map(order)).sort_values(["mean", "order"], ascending=[False, True])
        best = ranked.iloc[0]
        settings = dict(zip(recipe_params(config).grid, grid_recipes(config)[int(best["order"])].values()))
        chosen.append({"k": None if k_label == "all" else int(k_label), "arm": strategy, "settings": settings,
                       "validation_accuracy": float(best["mean"]),
                       "reference_accuracy": float(group.loc[group["arm"] == reference, "mean"].iloc[0])})
    return chosen


def recipes_yaml(chosen: list[dict[str, Any]], source: str) -> str:
    """The `study.few_shot.recipes` block a few-shot params file takes, with where it came from."""
    lines = [f"    recipes_from: {source}", "    recipes:"]
    for entry in chosen:
        settings = ", ".join(f"{name}: {value:g}" for name, value in entry["settings"].items())
        k = "null" if entry["k"] is None else entry["k"]
        lines.append(f"      - {{k: {k}, arm: {entry['arm']}, settings: {{{settings}}}}}"
                     f"  # validation {entry['validation_accuracy']:.3f}")
    return "\n".join(lines)


def recorded_recipes_yaml(config: Config) -> str:
    """The `study.few_shot.recipes` block this run folder's finished recipe study recorded (metrics.json)."""
    path = runs.run_folder(config).metrics
    entry = json.loads(path.read_text()).get("studies", {}).get("recipe") if path.is_file() else None
    if entry is None:
        raise ValueError(f"{path}: no recipe study recorded for run {config.run_name!r}; run it first")
    return entry["recipes_yaml"]


def recipe_study(config: Config) -> StudyResult:
    """Every grid recipe per (k, few-shot arm) on the development target's draws, scored on its validation rows;
    the chosen recipe per (k, arm) by `RULE`, and each recipe against the file's own."""
    params = recipe_params(config)
    prepared, names = prepared_data(config)
    cells_planned, validation = recipe_cells(config, prepared)
    cells = run_cells(config, cells_planned, validation, names, desc="recipe")
    summary = summarize(cells, ["k_label", "strategy", "arm"], also=["macro_f1"])
    reference = recipe_label(reference_recipe(config))
    comparisons = compare_arms(cells, reference, within=["k_label", "strategy"])
    chosen = chosen_recipes(config, summary)
    source = f"the recipe study {config.run_name} (development target {config.target_domain})"
    design = study_design(
        config, {"recipe": [recipe_label(settings) for settings in grid_recipes(config)],
                 "k per class": ["all" if k is None else k for k in params.k_values],
                 "few-shot arm": list(params.strategies)},
        "the model's initialisation and batch order; the split seed draws the k target rows and the other rows",
        {"development target": f"{config.target_domain} ({len(validation)} validation rows score every cell; its "
                               "test rows are not read)",
         "study target": f"{params.study_target}: no row of it is in this run's data",
         "steps policy": few_shot.few_shot_params(config).steps, "rule": RULE})
    table = "\n\n".join([
        results_markdown(summary, comparisons, {"k_label": "k", "strategy": "arm", "arm": "recipe"},
                         ["k_label", "strategy"], [], "validation", test_rows=None),
        chosen_markdown(chosen)])
    shown = summary.assign(arm=summary["strategy"] + " · k " + summary["k_label"].astype(str) + " · "
                           + summary["arm"])
    figure = plots.plot_arms(shown, title=f"Recipes on the development target {config.target_domain} (validation)",
                             xlabel="validation accuracy (mean, 95% CI)", path=runs.run_folder(config).figure("recipe"))
    reading = recipe_reading(config, chosen, reference)
    return finish(config, "recipe", cells, summary, comparisons, design, table, reading, figure,
                  record={"reference": reference, "development_target": config.target_domain,
                          "study_target": params.study_target, "scored_on": "validation",
                          "validation_rows": len(validation), "rule": RULE, "chosen": chosen,
                          "recipes_yaml": recipes_yaml(chosen, source)})


def chosen_markdown(chosen: list[dict[str, Any]]) -> str:
    lines = ["| k | arm | chosen recipe | validation accuracy | the file's own recipe |", "|---|---|---|---:|---:|"]
    for entry in chosen:
        lines.append(f"| {'all' if entry['k'] is None else entry['k']} | {entry['arm']} | "
                     f"{recipe_label(entry['settings'])} | {number(entry['validation_accuracy'])} | "
                     f"{number(entry['reference_accuracy'])} |")
    return "\n".join(lines)


def recipe_reading(config: Config, chosen: list[dict[str, Any]], reference: str) -> str:
    lines = [f"Scored on {config.target_domain}'s validation rows (the development target); "
             f"{recipe_params(config).study_target} was not in the data. Rule, fixed before running: {RULE}."]
    for entry in chosen:
        k = "all" if entry["k"] is None else entry["k"]
        lines.append(f"k = {k}, {entry['arm']}: {recipe_label(entry['settings'])} "
                     f"({number(entry['validation_accuracy'])}; the file's own {reference}: "
                     f"{number(entry['reference_accuracy'])}).")
    lines.append("The choice is the highest mean, not a significant winner: the comparisons above say how far apart "
                 "the recipes could be told. A few-shot params file takes the choice as `study.few_shot.recipes`.")
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per replicate: one fine-tuned model per (k, arm, recipe); where the run folder holds stored cells, how many
    it reuses (`with_reuse`)."""
    params = recipe_params(config)
    per_replicate = len(params.k_values) * len(params.strategies) * len(grid_recipes(config))
    return with_reuse(plan_cells("recipe", [recipe_label(s) for s in grid_recipes(config)], config,
                                 {"fine-tuned": per_replicate}), config, planned_cells)


register_study("recipe", RecipeParams, uses_split_seeds=True, plan=plan)
