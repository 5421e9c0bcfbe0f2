"""The few-shot study: a target cut to k rows per class, alone and with other data ADDED under each mixing strategy,
over split seeds (which rows) × seeds (which initialisation), with anchors (probe, SetFit) on the same splits.

Hands on the study's splits and cells (`few_shot_splits`, `few_shot_cells`) and its `StudyResult` with paired deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Optional

import pandas as pd
from datasets import Dataset, concatenate_datasets
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import anchors, metrics, mix, modeling, plots, runs
from ..config import Config, MixingStrategy
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, CellScore, StudyPlan, StudyResult, compare_arms, finish, measured_columns, plan_cells,
                     prepared_data, reported_groups, rows_fingerprint, run_cells, seeds, split_seeds, study_design,
                     summarize, target_domain)
from .reuse import PlannedCells, with_reuse
from .sampling import column, domain_rows, seeded_cap, stratified_sample, take
from .tables import comparison_sentence, reference_line, results_markdown, tally_comparisons


# the settings a recipe may set per (k, arm): how a model trains, never which rows it sees
RECIPE_SETTINGS = ("learning_rate", "num_train_epochs", "warmup_ratio", "weight_decay", "per_device_train_batch_size")


class ArmRecipe(BaseModel):
    """One (k, arm)'s training recipe: settings from `RECIPE_SETTINGS` that replace the file's for its cells."""

    model_config = ConfigDict(extra="forbid")

    k: Optional[int] = Field(..., ge=1)  # null = all target rows
    arm: str
    settings: dict[str, float] = Field(..., min_length=1)

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(RECIPE_SETTINGS))
        if unknown:
            raise ValueError(f"a recipe sets only {list(RECIPE_SETTINGS)}; {unknown} is not one of them")
        return value


class FewShotParams(StudyParams):
    """`study.few_shot`: k target rows per class, the arms (mixing strategies, other groups alone, anchors), the
    steps policy, the other-row pool and the test rows every cell is scored on."""

    k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32, 128, None], min_length=1)  # null = all
    # mixing arms; "temperature" runs once per value of `temperatures`
    strategies: list[MixingStrategy] = Field(
        default_factory=lambda: ["target_only", "concat", "proportional", "temperature", "uniform"], min_length=1)
    temperatures: list[float] = Field(default_factory=lambda: [2.0, 5.0], min_length=1)
    # equal_steps = every arm trains as many rows (target-only repeats its k-shot rows); equal_target_visits =
    # each target row is seen as often in every arm (other data adds steps)
    steps: Literal["equal_steps", "equal_target_visits"] = "equal_steps"
    # other rows drawn per split (the pool an additive arm adds from); null = max_train_samples less the k-shot
    # target rows, or every other row without a budget
    other_rows: Optional[int] = Field(None, ge=0)
    # anchors on the same splits and test rows: frozen-encoder probe, SetFit on the target's k-shot rows
    anchors: list[Literal["probe", "setfit"]] = Field(default_factory=list)
    setfit_max_k: Optional[int] = Field(None, ge=1)  # the SetFit anchor only at k per class ≤ this (never at all)
    test_rows: Optional[int] = Field(None, ge=1)  # one fixed stratified sample of target test rows
    test_agreement: Optional[float] = Field(None, gt=0, le=1)  # only target test rows this agreed
    other_groups: list[str] = Field(default_factory=list)  # an arm per other group adding it alone
    # the training recipe per (k, fine-tuned arm), chosen without this study's target (the recipe study,
    # notebook 17): every (k, arm) of the study needs one once any is given; [] = the file's recipe for every cell
    recipes: list[ArmRecipe] = Field(default_factory=list)
    recipes_from: Optional[str] = None  # where the recipes were chosen (a results folder, a paper): the design says

    @field_validator("k_values")
    @classmethod
    def _k_values(cls, value: list) -> list:
        return distinct_values(value, "≥ 1 or null (all target rows)", lambda v: v is None or v >= 1)

    @field_validator("temperatures")
    @classmethod
    def _temperatures(cls, value: list) -> list:
        return distinct_values(value, "> 0", lambda v: v > 0)

    @model_validator(mode="after")
    def _recipes(self) -> "FewShotParams":
        pairs = [(recipe.k, recipe.arm) for recipe in self.recipes]
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"recipes: each (k, arm) once; {pairs} repeats one")
        if self.recipes and not self.recipes_from:
            raise ValueError("recipes_from: say where the recipes were chosen (e.g. results/study_recipe_kitchen/)")
        return self


def few_shot_params(config: Config) -> FewShotParams:
    return study_params(config, "few_shot", FewShotParams)


def recipe_tuning(params: FewShotParams) -> Optional[dict[str, str]]:
    """The settings the recipes set, each with how it was chosen (the design's "tuned per arm"); None without."""
    names = sorted({name for recipe in params.recipes for name in recipe.settings})
    return {name: f"per (k, arm) from {params.recipes_from}" for name in names} or None


def recipes_text(params: FewShotParams) -> str:
    """Each (k, arm)'s recipe in one line, for the design paragraph."""
    return "; ".join(f"k {'all' if recipe.k is None else recipe.k} {recipe.arm}: "
                     + ", ".join(f"{name} {value:g}" for name, value in recipe.settings.items())
                     for recipe in params.recipes)


def with_recipes(config: Config, cells: list[Cell]) -> list[Cell]:
    """Each fine-tuned cell with its (k, arm)'s recipe (`study.few_shot.recipes`) as its own config; unchanged
    where the study gives none. Once any is given every (k, arm) needs one: a referee's "same rule for every arm"."""
    recipes = {("all" if recipe.k is None else str(recipe.k), recipe.arm): recipe.settings
               for recipe in few_shot_params(config).recipes}
    if not recipes:
        return cells
    missing = sorted({(cell.facts["k_label"], cell.arm) for cell in cells} - set(recipes))
    if missing:
        raise ValueError(f"study.few_shot.recipes has no recipe for (k, arm) {missing}; every fine-tuned arm at every "
                         "k needs one, chosen by the same rule (the recipe study, notebook 17)")
    return [replace(cell, config=config.replace(**recipes[(cell.facts["k_label"], cell.arm)])) for cell in cells]




def mixing_arms(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """(arm name, config changes) per mixing strategy of the study; temperature once per study temperature."""
    params = few_shot_params(config)
    arms = []
    for strategy in params.strategies:
        if strategy == "temperature":
            arms += [(f"temperature T={t:g}", {"mixing_strategy": "temperature", "mixing_temperature": t})
                     for t in params.temperatures]
        else:
            arms.append((strategy, {"mixing_strategy": strategy}))
    return arms


ANCHOR_TEXT = {"probe": "probe = frozen encoder + logistic regression (C on validation) on the k-shot target rows",
               "setfit": "setfit = SetFit's few-shot defaults on the k-shot target rows"}


def few_shot_budget(config: Config, k: Optional[int], classes: int, target_rows: int) -> Optional[int]:
    """Training rows of every arm at one k under equal steps: `max_train_samples`, raised to the k-shot target's
    own rows so the target-only arm always trains on every target row it was given (None: no cap)."""
    if config.max_train_samples is None:
        return None
    return max(config.max_train_samples, target_rows if k is None else min(k * classes, target_rows))


@dataclass(frozen=True)
class FewShotSplit:
    """One replicate's rows at one k: the k-shot target rows every arm keeps and the other rows arms add from."""

    k_label: str
    k: int  # on the plot's axis: "all" sits at the target's mean rows per class
    split_seed: int
    target: Dataset
    other: Dataset
    other_by_group: dict[str, Dataset]  # `study.few_shot.other_groups`: each group's own pool, as large as `other`


def few_shot_splits(config: Config, train: Dataset) -> list[FewShotSplit]:
    """Per k and split seed: k target rows per class (seeded by the split seed) and a seeded pool of other rows
    (`study.few_shot.other_rows`, else the budget left after the target rows, else every other row)."""
    params = few_shot_params(config)
    target, by = config.target_domain, config.mix_by
    groups = column(train, by)
    target_all = domain_rows(train, target, by)
    others = train.select([row for row, group in enumerate(groups) if group != target])
    classes = len(train.features["label"].names)
    missing = sorted(set(params.other_groups) - set(groups) | ({target} & set(params.other_groups)))
    if missing:
        raise ValueError(f"study.few_shot.other_groups {missing} are not other {by}s of the training rows; other "
                         f"{by}s: "
                         f"{sorted(set(groups) - {target})}")
    splits = []
    for k in params.k_values:
        for split_seed in split_seeds(config):
            rows = target_all if k is None else mix.few_shot(target_all, k, seed=split_seed)
            budget = few_shot_budget(config, k, classes, len(target_all))
            pool = params.other_rows
            if pool is None and budget is not None:
                pool = budget - len(rows)
            other = seeded_cap(others, pool, split_seed)
            splits.append(FewShotSplit(
                k_label="all" if k is None else str(k), k=round(len(target_all) / classes) if k is None else k,
                split_seed=split_seed, target=rows, other=other,
                other_by_group={group: seeded_cap(domain_rows(others, group, by), len(other), split_seed)
                                for group in params.other_groups}))
    return splits


def seeds_of_split(config: Config, split_seed: int) -> list[int]:
    """The training seeds a split is replicated with: every seed, or the split's own where splits follow seeds."""
    return list(seeds(config)) if config.replicates.split_seeds is not None else [split_seed]


def split_facts(split: FewShotSplit, config: Config) -> dict[str, Any]:
    params = few_shot_params(config)
    return {"k_label": split.k_label, "k": split.k, "target_unique": len(split.target),
            "target_ids": rows_fingerprint(split.target), "steps_policy": params.steps}


def few_shot_cells(config: Config, train: Dataset, validation: Dataset) -> list[Cell]:
    """Per split, seed and mixing arm, the split's k-shot target rows (every one of them, in every arm) with other
    rows added by the arm's strategy (`mix.mix_additive`); target-only is the reference.

    Steps policy (`study.few_shot.steps`): equal_steps gives every arm of a split the same rows (target + pool; the
    target repeated where the strategy asks); equal_target_visits shows each target row once in every arm, so
    arms with other data take more steps. An arm's rows depend on the split seed only, never on the seed.
    """
    params = few_shot_params(config)
    cells = []
    for split in few_shot_splits(config, train):
        pool = concatenate_datasets([split.target, split.other]) if len(split.other) else split.target
        total = len(pool) if params.steps == "equal_steps" else None
        arms = []
        for arm, changes in mixing_arms(config):
            mixed, report = mix.mix_additive(pool, config.replace(few_shot_k=None, **changes),
                                             seed=split.split_seed, total=total)
            arms.append((arm, mixed, _mix_facts(split, config, report)))
        for group, rows in split.other_by_group.items():
            # one other group alone, as many of its rows as the pooled arms draw, the same steps (equal_steps)
            mixed, report = mix.mix_additive(concatenate_datasets([split.target, rows]),
                                             config.replace(few_shot_k=None, mixing_strategy="concat"),
                                             seed=split.split_seed, total=total)
            arms.append((f"+{group}", mixed, _mix_facts(split, config, report)))
        cells += [Cell(arm=arm, seed=seed, train=mixed, validation=validation, facts=facts,
                       split_seed=split.split_seed)
                  for seed in seeds_of_split(config, split.split_seed) for arm, mixed, facts in arms]
    return cells


def _mix_facts(split: FewShotSplit, config: Config, report: mix.MixReport) -> dict[str, Any]:
    target = next(group for group in report.groups if group.is_target)
    return {**split_facts(split, config), "target_rows": target.achieved_rows,
            "other_rows": report.total_rows - target.achieved_rows, "target_share": round(target.achieved_share, 4)}


def anchor_cells(config: Config, splits: list[FewShotSplit], validation: Dataset, headline: str) -> list[Cell]:
    """The anchors (`study.few_shot.anchors`) on every split's k-shot target rows, as cells the engine runs and
    stores beside the arms' and scores on the same test rows (`anchor_fit`).

    The probe does not depend on the seed (a frozen encoder and a deterministic logistic regression): one probe cell
    per split, at the split's first seed; `repeat_probe_rows` repeats its row for the other seeds, so it pairs with
    every fine-tuned replicate of the split.
    """
    params = few_shot_params(config)
    cells = []
    for split in splits:
        seeds = seeds_of_split(config, split.split_seed)
        facts = {**split_facts(split, config), "target_rows": len(split.target), "other_rows": 0, "target_share": 1.0}
        for anchor in params.anchors:
            if anchor == "setfit" and not anchors.setfit_runs_at(None if split.k_label == "all" else split.k,
                                                                 params.setfit_max_k):
                continue  # anchors.setfit_scope says so in the design
            cells += [Cell(arm=anchor, seed=seed, train=split.target, validation=validation, facts=facts,
                           split_seed=split.split_seed, fit=anchor_fit,
                           arguments={"anchor": anchor, "headline": headline})
                      for seed in (seeds[:1] if anchor == "probe" else seeds)]
    return cells


def anchor_fit(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
               label_names: list[str], work_dir: Path, *, anchor: str, headline: str) -> dict[str, Any]:
    """An anchor cell's fit: the probe or SetFit on the k-shot rows (seeded by the cell's seed), scored per domain
    on the test rows as the cells table's measured columns."""
    model_path = modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    quiet = runs.is_quiet(config)
    if anchor == "probe":
        result = anchors.probe_fit_and_score(model_path, train_rows, validation_rows, test_rows, label_names,
                                             seed=config.seed, max_length=config.max_seq_length, quiet=quiet)
    else:
        result = anchors.setfit_fit_and_score(model_path, train_rows, test_rows, label_names, config.seed,
                                              max_length=config.max_seq_length, quiet=quiet, work_dir=work_dir)
    per_domain = metrics.per_domain_metrics(result.labels, result.predictions, column(test_rows, "domain"),
                                            label_names)
    score = CellScore(accuracy=result.accuracy, macro_f1=result.macro_f1, per_domain=per_domain["per_domain"],
                      n_train=result.n_train, train_seconds=result.train_seconds,
                      correct=[a == b for a, b in zip(result.labels, result.predictions)])
    return measured_columns(score, headline, len(test_rows), rows_fingerprint(test_rows))


def repeat_probe_rows(config: Config, cells: pd.DataFrame) -> pd.DataFrame:
    """The probe's row of each split repeated for every seed of the split, in place of the one stored."""
    rows = []
    for row in cells.to_dict("records"):
        seeds = seeds_of_split(config, row["split_seed"]) if row["arm"] == "probe" else [row["seed"]]
        rows += [{**row, "seed": seed} for seed in seeds]
    return pd.DataFrame(rows, columns=cells.columns)


def study_test_rows(config: Config, test: Dataset, target: str) -> Dataset:
    """The rows every cell is scored on: with `study.few_shot.test_agreement` or `study.few_shot.test_rows` set,
    the target's test rows at that annotator agreement or above (Financial PhraseBank: 1.0, the unanimous ones),
    then one fixed label-stratified sample of them (seeded by `seed`, the same for every split); else the prepared
    test split."""
    params = few_shot_params(config)
    if params.test_rows is None and params.test_agreement is None:
        return test
    rows = domain_rows(test, target, config.mix_by)
    if params.test_agreement is not None:
        agreed = [row for row, level in enumerate(column(rows, "agreement"))
                  if level is not None and level >= params.test_agreement - 1e-6]  # float32 column
        if not agreed:
            raise ValueError(f"study.few_shot.test_agreement {params.test_agreement}: no {target} test row has an "
                             "agreement level that high (only Financial PhraseBank rows carry one)")
        rows = take(rows, agreed, f"agreement >= {params.test_agreement}")
    return stratified_sample(rows, params.test_rows, config.seed)


def planned_cells(config: Config) -> PlannedCells:
    """Every cell of the study (arms, then anchors) on the run folder's prepared data, scored on the target's test
    rows (`study_test_rows`), measured on the target domain."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "few_shot_study")
    validation = domain_rows(prepared["validation"], target, config.mix_by)
    cells = with_recipes(config, few_shot_cells(config, prepared["train"], validation)) + anchor_cells(
        config, few_shot_splits(config, prepared["train"]), validation, target)
    return PlannedCells(cells, study_test_rows(config, prepared["test"], target), names, headline=target)


def few_shot_study(config: Config) -> StudyResult:
    """Does other data help a small target? Target-only against target + other data added per mixing strategy (and
    the anchors), for each k per class, over split seeds × seeds, paired; measured on the target's test rows."""
    params = few_shot_params(config)
    planned = planned_cells(config)
    target, test, validation = planned.headline, planned.test, planned.cells[0].validation
    cells = repeat_probe_rows(config, run_cells(config, planned.cells, test, planned.label_names, headline=target,
                                                desc="few-shot"))
    groups = reported_groups(cells, target)
    also = ["target_rows", "target_unique", "other_rows", *(f"accuracy_{g}" for g in groups)]
    summary = summarize(cells, ["k_label", "k", "arm"], also=also)
    summary[["target_rows", "target_unique", "other_rows"]] = summary[["target_rows", "target_unique",
                                                                        "other_rows"]].round(1)
    reference = "target_only"
    comparisons = compare_arms(cells, reference, within=["k_label"])
    figure = plots.plot_few_shot_curves(summary.rename(columns={"arm": "strategy"}),
                                        path=runs.run_folder(config).figure("few_shot_curves"))
    arms = ([arm for arm, _ in mixing_arms(config)] + [f"+{group}" for group in params.other_groups]
            + list(params.anchors))
    design = study_design(config, {"k per class": [k if k is not None else "all" for k in params.k_values],
                                   "arm": arms},
                          "the model's initialisation and batch order; the split seed draws the k target rows "
                          "and the other rows",
                          {"target_domain": target, "validation": f"{len(validation)} {target} rows",
                           "steps policy": params.steps,
                           "test rows": len(test) if params.test_agreement is None else
                           f"{len(test)} (annotator agreement ≥ {params.test_agreement:g})",
                           "anchors": "; ".join(ANCHOR_TEXT[anchor] for anchor in params.anchors) or "none"}
                          | ({"SetFit cells": setfit_scope} if (setfit_scope := anchors.setfit_scope(
                              params.anchors, params.k_values, params.setfit_max_k)) else {})
                          | ({"recipes": recipes_text(params)} if params.recipes else {}),
                          tuned=recipe_tuning(params))
    labels = {"k_label": "k", "arm": "arm", "target_unique": "unique target rows",
              "target_rows": "target rows (with repeats)", "other_rows": "other rows"}
    table = results_markdown(summary, comparisons, labels, ["k_label"], groups, target,
                             test_rows=int(cells["n_test"].iloc[0]))
    return finish(config, "few_shot_mixing", cells, summary, comparisons, design, table,
                  _few_shot_reading(summary, comparisons, target, cells, reference, config), figure)


def _few_shot_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, target: str, cells: pd.DataFrame,
                      reference: str, config: Config) -> str:
    params = few_shot_params(config)
    steps = ("every arm of a split trains on as many rows (target-only repeats its k-shot rows)"
             if params.steps == "equal_steps" else
             "each target row is seen as often in every arm, so arms with other data take more steps")
    lines = [f"Measured on {int(cells['n_test'].iloc[0])} {target} test rows, the same for every cell; "
             f"{cells[['split_seed', 'seed']].drop_duplicates().shape[0]} replicates (split seeds "
             f"{', '.join(map(str, sorted(cells['split_seed'].unique())))} × seeds "
             f"{', '.join(map(str, sorted(cells['seed'].unique())))}). Every arm of a split keeps all of the "
             f"split's k-shot target rows and adds other rows; {steps}."]
    for k_label, at_k in summary.groupby("k_label", sort=False):
        lead = reference_line(at_k, at_k["arm"] == reference, "target-only") if (at_k["arm"] == reference).any() \
            else "no target-only arm"
        lines.append(f"k = {k_label}: {lead}. " + comparison_sentence(comparisons[comparisons["k_label"] == k_label]))
    if len(comparisons):
        helps, hurts, unresolved = tally_comparisons(comparisons)
        lines.append(f"Over all {len(comparisons)} (k, arm) comparisons with target-only (Holm-adjusted), other "
                     f"data or an anchor helped in {helps}, hurt in {hurts}, and could not be told apart in "
                     f"{unresolved}: where it cannot tell, the interval says how large a difference this many "
                     "replicates still allow.")
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per k and replicate: every mixing arm and other-group arm fine-tuned, the probe, and SetFit where
    `anchors.setfit_runs_at` the k; where the run folder holds stored cells, how many it reuses (`with_reuse`)."""
    params = few_shot_params(config)
    arms = [arm for arm, _ in mixing_arms(config)] + [f"+{group}" for group in params.other_groups]
    per_replicate = {"fine-tuned": len(params.k_values) * len(arms)}
    if "probe" in params.anchors:
        per_replicate["probe"] = len(params.k_values)
    if "setfit" in params.anchors:
        per_replicate["SetFit"] = sum(anchors.setfit_runs_at(k, params.setfit_max_k) for k in params.k_values)
    return with_reuse(plan_cells("few_shot", arms + list(params.anchors), config, per_replicate), config,
                      planned_cells)


register_study("few_shot", FewShotParams, uses_split_seeds=True, plan=plan)
