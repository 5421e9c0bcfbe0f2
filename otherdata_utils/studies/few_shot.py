"""The few-shot study: a target cut to k rows per class, alone and with other data ADDED under each mixing strategy
(at each other-row dose, from nested pools), the other data alone (other_only, the floor), over split seeds (which
rows) × seeds (which initialisation), with anchors (probe, SetFit, SetFit with other rows) on the same splits.

Hands on the study's splits and cells (`few_shot_splits`, `few_shot_cells`) and its `StudyResult` with paired deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pandas as pd
from datasets import Dataset, concatenate_datasets
from matplotlib.figure import Figure
from pydantic import Field, field_validator, model_validator

from .. import anchors, metrics, mix, modeling, plots, runs, stats
from ..config import Config, MixingStrategy
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, CellScore, StudyPlan, StudyResult, compare_arms, finish, measured_columns, plan_cells,
                     prepared_data, reported_groups, rows_fingerprint, run_cells, seeds, split_seeds, study_design,
                     summarize, target_domain)
from .arm_recipes import ArmRecipe, recipe_tuning, recipes_text, with_recipes
from .reuse import PlannedCells, with_reuse
from .selection_arms import (SELECTION_TEXT, selected_pools, selection_arm, selection_comparisons,
                             selection_facts, selection_reading)
from .sampling import column, domain_rows, seeded_cap, stratified_sample, take
from .tables import comparison_sentence, reference_line, results_markdown, tally_comparisons


class FewShotParams(StudyParams):
    """`study.few_shot`: k target rows per class, the arms (mixing strategies, other groups alone, other_only,
    anchors), the steps policy, the other-row pool or doses and the test rows every cell is scored on."""

    k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32, 128, None], min_length=1)  # null = all
    # mixing arms; "temperature" runs once per value of `temperatures`
    # other_only: the other rows alone, no target row (plain transfer, the floor), as many as the pool or dose
    strategies: list[Union[MixingStrategy, Literal["other_only"]]] = Field(
        default_factory=lambda: ["target_only", "concat", "proportional", "temperature", "uniform"], min_length=1)
    temperatures: list[float] = Field(default_factory=lambda: [2.0, 5.0], min_length=1)
    # equal_steps = every arm trains as many rows (target-only repeats its k-shot rows); equal_target_visits =
    # each target row is seen as often in every arm (other data adds steps)
    steps: Literal["equal_steps", "equal_target_visits"] = "equal_steps"
    # other rows drawn per split (the pool an additive arm adds from); null = max_train_samples less the k-shot
    # target rows, or every other row without a budget
    other_rows: Optional[int] = Field(None, ge=0)
    # other-row doses in place of `other_rows`: every additive arm and other_only once per dose (arm "concat @256"),
    # from nested pools (`few_shot_splits`); 0 = target-only (the curve's origin, always run), null = every other row
    other_doses: Optional[list[Optional[int]]] = None
    # anchors on the same splits and test rows: frozen-encoder probe, SetFit on the target's k-shot rows, and
    # setfit+other: SetFit on the k-shot rows plus `setfit_other_rows` of the split's other rows
    anchors: list[Literal["probe", "setfit", "setfit+other"]] = Field(default_factory=list)
    setfit_other_rows: int = Field(64, ge=1)  # SetFit pairs each row 2 × 20 times: 40 × (k·classes + this) pairs
    setfit_max_k: Optional[int] = Field(None, ge=1)  # the SetFit anchor only at k per class ≤ this (never at all)
    test_rows: Optional[int] = Field(None, ge=1)  # one fixed stratified sample of target test rows
    test_agreement: Optional[float] = Field(None, gt=0, le=1)  # only target test rows this agreed
    other_groups: list[str] = Field(default_factory=list)  # an arm per other group adding it alone
    # sibling runs' params files (run first): their other_groups pairs join this run's in `studies.source_help`
    source_help_runs: list[str] = Field(default_factory=list)
    # an arm per method adding as many other rows as concat's random pool, chosen for the split's k-shot rows
    selections: list[Literal["similarity", "importance"]] = Field(default_factory=list)
    # the training recipe per (k, fine-tuned arm), chosen without this study's target (the recipe study,
    # notebook 17): every (k, arm) of the study needs one once any is given; [] = the file's recipe for every cell
    recipes: list[ArmRecipe] = Field(default_factory=list)
    recipes_from: Optional[str] = None  # where the recipes were chosen (a results folder, a paper): the design says

    @field_validator("k_values")
    @classmethod
    def _k_values(cls, value: list) -> list:
        return distinct_values(value, "≥ 1 or null (all target rows)", lambda v: v is None or v >= 1)

    @field_validator("other_doses")
    @classmethod
    def _other_doses(cls, value: Optional[list]) -> Optional[list]:
        if value is None:
            return None
        distinct_values(value, "≥ 0 or null (every other row)", lambda v: v is None or v >= 0)
        if all(v == 0 for v in value):
            raise ValueError(f"{value} holds no dose above 0 (0 is target-only, which always runs); add one, e.g. "
                             "[0, 256, null]")
        return value

    @model_validator(mode="after")
    def _settings_agree(self) -> "FewShotParams":
        if self.other_doses is not None and self.other_rows is not None:
            raise ValueError(f"study.few_shot.other_rows ({self.other_rows}) and other_doses ({self.other_doses}) "
                             "both size the other-row pool; set one (a single dose is other_doses: [n])")
        if self.selections and ("concat" not in self.strategies or self.other_doses is not None):
            raise ValueError("selections are compared with concat's random pool at one dose: list concat among the "
                             "strategies and size the pool with other_rows (not other_doses)")
        if self.source_help_runs and (not self.other_groups or len(self.k_values) != 1):
            raise ValueError("source_help_runs correlates each other group's help at one k: give other_groups and "
                             f"one k_values entry (got other_groups {self.other_groups}, k_values {self.k_values})")
        return self

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


def params_recipes(config: Config) -> list[ArmRecipe]:
    return few_shot_params(config).recipes


def mixing_arms(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """(arm name, config changes) per mixing strategy of the study; temperature once per study temperature
    (other_only is no mixing strategy: `other_only_cells`)."""
    params = few_shot_params(config)
    arms = []
    for strategy in params.strategies:
        if strategy == "temperature":
            arms += [(f"temperature T={t:g}", {"mixing_strategy": "temperature", "mixing_temperature": t})
                     for t in params.temperatures]
        elif strategy != "other_only":
            arms.append((strategy, {"mixing_strategy": strategy}))
    return arms


def dose_arm(arm: str, dose: Optional[str]) -> str:
    """An arm's name at a dose of other rows ("concat @256"); the plain name where the study has no doses."""
    return arm if dose is None else f"{arm} @{dose}"


def dose_labels(config: Config) -> list[Optional[str]]:
    """The labels of the study's other-row pools an additive arm runs at: [None] (one pool, `other_rows`) without
    `other_doses`, else each dose above 0, ascending, "all" last."""
    doses = few_shot_params(config).other_doses
    if doses is None:
        return [None]
    return [str(dose) for dose in sorted(d for d in doses if d)] + (["all"] if None in doses else [])


def arm_names(config: Config) -> list[str]:
    """Every arm of the study in table order: the mixing arms (each additive one per dose), the other-group arms per
    dose, other_only per dose, then the anchors."""
    params = few_shot_params(config)
    doses = dose_labels(config)
    names = []
    for arm, changes in mixing_arms(config):
        names += [arm] if changes["mixing_strategy"] == "target_only" else [dose_arm(arm, dose) for dose in doses]
    names += [selection_arm(method) for method in params.selections]
    names += [dose_arm(f"+{group}", dose) for group in params.other_groups for dose in doses]
    names += [dose_arm(OTHER_ONLY, dose) for dose in doses] if OTHER_ONLY in params.strategies else []
    return names + list(params.anchors)


def setfit_other_text(config: Config) -> str:
    params = few_shot_params(config)
    return (f"setfit+other = SetFit's few-shot defaults on the k-shot target rows plus {params.setfit_other_rows} "
            "of the split's other rows (a seeded draw from its largest pool): 2 × 20 pairs per row, "
            f"40 × (k·classes + {params.setfit_other_rows}) pairs")


ANCHOR_TEXT = {"probe": "probe = frozen encoder + logistic regression (C on validation) on the k-shot target rows",
               "setfit": "setfit = SetFit's few-shot defaults on the k-shot target rows"}
DOSE_TEXT = {
    "pools": "per split seed one seeded order of the other rows; a dose takes its first rows, so a smaller dose's "
             "rows are among every larger dose's (curves over the dose add rows, they never redraw them); "
             "0 = target-only, all = every other row (no max_train_samples cap)",
    "equal_steps": "every arm of a split trains as many rows as the largest dose's arm (target + the largest pool): "
                   "target-only repeats its k-shot rows up to it, a smaller dose fills the rest with repeats of the "
                   "target rows, so arms and doses differ only in which rows fill the same steps; each is compared "
                   "with the one target-only of its k",
    "equal_target_visits": "each target row is seen once per epoch in every arm, so more other rows means more "
                           "steps: a dose's Δ is what adding that many rows does, steps included; each is compared "
                           "with the one target-only of its k",
    "other_only": "other_only = the dose's other rows alone, each once per epoch under either steps policy (no "
                  "target row: plain transfer, the floor); it does not depend on k, so one model per (split seed, "
                  "seed, dose) is trained where its rows are the same at every k and shown at each k for pairing"}
OTHER_ONLY = "other_only"


def few_shot_budget(config: Config, k: Optional[int], classes: int, target_rows: int) -> Optional[int]:
    """Training rows of every arm at one k under equal steps: `max_train_samples`, raised to the k-shot target's
    own rows so the target-only arm always trains on every target row it was given (None: no cap)."""
    if config.max_train_samples is None:
        return None
    return max(config.max_train_samples, target_rows if k is None else min(k * classes, target_rows))


@dataclass(frozen=True)
class OtherPool:
    """The other rows a split's additive arms add at one dose: pooled, and each other group's own as many."""

    dose: Optional[str]  # "256", "all"; None where the study has one pool (`other_rows`)
    other: Dataset
    by_group: dict[str, Dataset]


@dataclass(frozen=True)
class FewShotSplit:
    """One replicate's rows at one k: the k-shot target rows every arm keeps and the other rows arms add from."""

    k_label: str
    k: int  # on the plot's axis: "all" sits at the target's mean rows per class
    split_seed: int
    target: Dataset
    other: Dataset  # the largest pool (the only one without doses): equal steps and setfit+other draw on it
    other_by_group: dict[str, Dataset]  # `study.few_shot.other_groups`: each group's own pool, as large as `other`
    pools: tuple[OtherPool, ...] = ()  # per dose, smallest first; one pool (`other`) without `other_doses`
    selected: dict[str, Dataset] = field(default_factory=dict)  # `study.few_shot.selections`: per method, its pool


def few_shot_splits(config: Config, train: Dataset) -> list[FewShotSplit]:
    """Per k and split seed: k target rows per class (seeded by the split seed) and a seeded pool of other rows
    (`study.few_shot.other_rows`, else the budget left after the target rows, else every other row).

    With `study.few_shot.other_doses` the pools are nested: the split seed orders the other rows once (the same
    order at every k) and each dose takes its first rows, each group's pool its first rows of that group."""
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
    too_large = [dose for dose in params.other_doses or [] if dose is not None and dose > len(others)]
    if too_large:
        raise ValueError(f"study.few_shot.other_doses {too_large} exceed the {len(others)} other training rows; "
                         "use null for every other row")
    splits = []
    for k in params.k_values:
        for split_seed in split_seeds(config):
            rows = target_all if k is None else mix.few_shot(target_all, k, seed=split_seed)
            if params.other_doses is None:
                budget = few_shot_budget(config, k, classes, len(target_all))
                pool = params.other_rows
                if pool is None and budget is not None:
                    pool = budget - len(rows)
                other = seeded_cap(others, pool, split_seed)
                pools = (OtherPool(None, other, {group: seeded_cap(domain_rows(others, group, by), len(other),
                                                                   split_seed) for group in params.other_groups}),)
            else:
                pools = nested_pools(config, others, split_seed)
            splits.append(FewShotSplit(
                k_label="all" if k is None else str(k), k=round(len(target_all) / classes) if k is None else k,
                split_seed=split_seed, target=rows, other=pools[-1].other, other_by_group=pools[-1].by_group,
                pools=pools, selected=selected_pools(config, params.selections, rows, others,
                                                     len(pools[-1].other), split_seed)))
    return splits


def nested_pools(config: Config, others: Dataset, split_seed: int) -> tuple[OtherPool, ...]:
    """The other rows at each dose (`dose_labels`): prefixes of one seeded order of `others`, so every dose's rows
    are among the next dose's; each other group's pool, the first rows of that group in the same order."""
    ordered = others.shuffle(seed=split_seed)
    by_group = {group: domain_rows(ordered, group, config.mix_by) for group in few_shot_params(config).other_groups}
    pools = []
    for dose in dose_labels(config):
        size = len(ordered) if dose == "all" else int(dose)
        pools.append(OtherPool(dose, ordered.select(range(size)),
                               {group: rows.select(range(min(size, len(rows)))) for group, rows in by_group.items()}))
    return tuple(pools)


def seeds_of_split(config: Config, split_seed: int) -> list[int]:
    """The training seeds a split is replicated with: every seed, or the split's own where splits follow seeds."""
    return list(seeds(config)) if config.replicates.split_seeds is not None else [split_seed]


def split_facts(split: FewShotSplit, config: Config) -> dict[str, Any]:
    params = few_shot_params(config)
    return {"k_label": split.k_label, "k": split.k, "target_unique": len(split.target),
            "target_ids": rows_fingerprint(split.target), "steps_policy": params.steps}


def dose_facts(config: Config, dose: Optional[str], pool_rows: int) -> dict[str, Any]:
    """A cell's dose columns in a study with `other_doses` (none without, so its cells keep their keys)."""
    if few_shot_params(config).other_doses is None:
        return {}
    return {"other_dose": dose, "other_pool": pool_rows}


def equal_steps_total(config: Config, split: FewShotSplit) -> Optional[int]:
    """Rows every arm of a split trains under equal_steps: the target plus the largest pool (None: equal target
    visits, each arm as many rows as it holds)."""
    return len(split.target) + len(split.other) if few_shot_params(config).steps == "equal_steps" else None


def few_shot_cells(config: Config, train: Dataset, validation: Dataset) -> list[Cell]:
    """Per split, seed and mixing arm, the split's k-shot target rows (every one of them, in every arm) with other
    rows added by the arm's strategy (`mix.mix_additive`); target-only is the reference. With `other_doses` each
    additive arm runs once per dose (`DOSE_TEXT`), target-only once.

    Steps policy (`study.few_shot.steps`): equal_steps gives every arm of a split the same rows (target + the
    largest pool; the target repeated where the strategy or a smaller dose asks); equal_target_visits shows each
    target row once in every arm, so arms with other data take more steps. An arm's rows depend on the split seed
    only, never on the seed.
    """
    params = few_shot_params(config)
    cells = []
    for split in few_shot_splits(config, train):
        total = equal_steps_total(config, split)
        arms = []
        for arm, changes in mixing_arms(config):
            alone = changes["mixing_strategy"] == "target_only"
            for pool in split.pools[-1:] if alone else split.pools:
                rows = concatenate_datasets([split.target, pool.other]) if len(pool.other) else split.target
                mixed, report = mix.mix_additive(rows, config.replace(few_shot_k=None, **changes),
                                                 seed=split.split_seed, total=total)
                arms.append((arm if alone else dose_arm(arm, pool.dose), mixed,
                             {**_mix_facts(split, config, report),
                              **dose_facts(config, "0" if alone else pool.dose, 0 if alone else len(pool.other))}))
        for method, rows in split.selected.items():  # concat of the rows a method chose, as many as concat's
            mixed, report = mix.mix_additive(concatenate_datasets([split.target, rows]),
                                             config.replace(few_shot_k=None, mixing_strategy="concat"),
                                             seed=split.split_seed, total=total)
            arms.append((selection_arm(method), mixed, {**_mix_facts(split, config, report),
                                                        **selection_facts(rows, method, config.mix_by)}))
        for group in params.other_groups:
            for pool in split.pools:
                # one other group alone, as many of its rows as the pooled arms draw, the same steps (equal_steps)
                rows = pool.by_group[group]
                mixed, report = mix.mix_additive(concatenate_datasets([split.target, rows]),
                                                 config.replace(few_shot_k=None, mixing_strategy="concat"),
                                                 seed=split.split_seed, total=total)
                arms.append((dose_arm(f"+{group}", pool.dose), mixed,
                             {**_mix_facts(split, config, report), **dose_facts(config, pool.dose, len(rows))}))
        cells += [Cell(arm=arm, seed=seed, train=mixed, validation=validation, facts=facts,
                       split_seed=split.split_seed)
                  for seed in seeds_of_split(config, split.split_seed) for arm, mixed, facts in arms]
    return cells


def _mix_facts(split: FewShotSplit, config: Config, report: mix.MixReport) -> dict[str, Any]:
    target = next(group for group in report.groups if group.is_target)
    return {**split_facts(split, config), "target_rows": target.achieved_rows,
            "other_rows": report.total_rows - target.achieved_rows, "target_share": round(target.achieved_share, 4)}


def other_only_cells(config: Config, splits: list[FewShotSplit], validation: Dataset
                     ) -> list[tuple[Cell, dict[str, Any]]]:
    """The other_only arm (`DOSE_TEXT["other_only"]`): per split, dose and seed, the pool's other rows alone, each
    with the split's k columns the table shows it under. The cell's own facts leave k out, so where its rows are the
    same at several k (every dosed pool) the engine trains it once (`run_cells` keys it once)."""
    if OTHER_ONLY not in few_shot_params(config).strategies:
        return []
    cells = []
    for split in splits:
        shown = {name: value for name, value in split_facts(split, config).items() if name in ("k_label", "k")}
        for pool in split.pools:
            if not len(pool.other):
                raise ValueError(f"study.few_shot.strategies has other_only, but split seed {split.split_seed} at "
                                 f"k = {split.k_label} draws no other row (study.few_shot.other_rows or the budget "
                                 "max_train_samples leaves none): give it other rows")
            facts = {"target_unique": 0, "target_ids": "none", "steps_policy": few_shot_params(config).steps,
                     "target_rows": 0, "other_rows": len(pool.other), "target_share": 0.0,
                     **dose_facts(config, pool.dose, len(pool.other))}
            cells += [(Cell(arm=dose_arm(OTHER_ONLY, pool.dose), seed=seed, train=pool.other, validation=validation,
                            facts=facts, split_seed=split.split_seed), shown)
                      for seed in seeds_of_split(config, split.split_seed)]
    return cells


def anchor_cells(config: Config, splits: list[FewShotSplit], validation: Dataset, headline: str) -> list[Cell]:
    """The anchors (`study.few_shot.anchors`) on every split's k-shot target rows, as cells the engine runs and
    stores beside the arms' and scores on the same test rows (`anchor_fit`); setfit+other adds
    `setfit_other_rows` of the split's largest pool (a draw seeded by the split seed), where SetFit runs at the k.

    The probe does not depend on the seed (a frozen encoder and a deterministic logistic regression): one probe cell
    per split, at the split's first seed; `repeat_probe_rows` repeats its row for the other seeds, so it pairs with
    every fine-tuned replicate of the split.
    """
    params = few_shot_params(config)
    cells = []
    for split in splits:
        seeds = seeds_of_split(config, split.split_seed)
        for anchor in params.anchors:
            if anchor != "probe" and not anchors.setfit_runs_at(None if split.k_label == "all" else split.k,
                                                                params.setfit_max_k):
                continue  # anchors.setfit_scope says so in the design
            other = (seeded_cap(split.other, params.setfit_other_rows, split.split_seed)
                     if anchor == "setfit+other" else split.target.select([]))
            train = concatenate_datasets([split.target, other]) if len(other) else split.target
            facts = {**split_facts(split, config), "target_rows": len(split.target), "other_rows": len(other),
                     "target_share": round(len(split.target) / len(train), 4) if len(other) else 1.0,
                     **dose_facts(config, str(len(other)), len(other))}
            cells += [Cell(arm=anchor, seed=seed, train=train, validation=validation, facts=facts,
                           split_seed=split.split_seed, fit=anchor_fit,
                           arguments={"anchor": anchor, "headline": headline})
                      for seed in (seeds[:1] if anchor == "probe" else seeds)]
    return cells


def anchor_fit(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
               label_names: list[str], work_dir: Path, *, anchor: str, headline: str) -> dict[str, Any]:
    """An anchor cell's fit: the probe or SetFit on the cell's rows (the k-shot rows; setfit+other's with its other
    rows), seeded by the cell's seed, scored per domain on the test rows as the cells table's measured columns."""
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


def study_cells(config: Config) -> tuple[PlannedCells, list[dict[str, Any]]]:
    """Every cell of the study (arms, other_only, then anchors) on the run folder's prepared data, scored on the
    target's test rows (`study_test_rows`), measured on the target domain; and per cell the columns its table row
    shows beyond its facts (other_only's k, left out of its key)."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "few_shot_study")
    validation = domain_rows(prepared["validation"], target, config.mix_by)
    splits = few_shot_splits(config, prepared["train"])
    # the recipes (`study.few_shot.recipes`) set how the arms that add other rows train; other_only and the anchors
    # keep their own
    arms = with_recipes(config, few_shot_cells(config, prepared["train"], validation), params_recipes(config))
    floor = other_only_cells(config, splits, validation)
    anchored = anchor_cells(config, splits, validation, target)
    cells = arms + [cell for cell, _ in floor] + anchored
    shown = [{} for _ in arms] + [k_columns for _, k_columns in floor] + [{} for _ in anchored]
    return PlannedCells(cells, study_test_rows(config, prepared["test"], target), names, headline=target), shown


def planned_cells(config: Config) -> PlannedCells:
    """The study's cells as one `run_cells` call takes them (`study_cells`)."""
    return study_cells(config)[0]


def anchor_text(config: Config, anchor: str) -> str:
    return setfit_other_text(config) if anchor == "setfit+other" else ANCHOR_TEXT[anchor]


def few_shot_study(config: Config) -> StudyResult:
    """Does other data help a small target? Target-only against target + other data added per mixing strategy (at
    each other-row dose), other data alone and the anchors, for each k per class, over split seeds × seeds, paired;
    measured on the target's test rows."""
    params = few_shot_params(config)
    planned, shown = study_cells(config)
    target, test, validation = planned.headline, planned.test, planned.cells[0].validation
    stored = run_cells(config, planned.cells, test, planned.label_names, headline=target, desc="few-shot")
    if any(shown):  # other_only rows: the k they are shown at (a dosed pool's row is stored once for every k)
        stored = pd.DataFrame([{**row, **more} for row, more in zip(stored.to_dict("records"), shown)])
    cells = repeat_probe_rows(config, stored)
    groups = reported_groups(cells, target)
    dosed = params.other_doses is not None
    also = ["target_rows", "target_unique", "other_rows", *(["other_pool"] if dosed else []),
            *(f"accuracy_{g}" for g in groups)]
    summary = summarize(cells, ["k_label", "k", "arm", *(["other_dose"] if dosed else [])], also=also)
    summary[["target_rows", "target_unique", "other_rows"]] = summary[["target_rows", "target_unique",
                                                                        "other_rows"]].round(1)
    reference = "target_only"
    floors = [arm for arm in arm_names(config) if arm.startswith(OTHER_ONLY) or arm == "setfit+other"]
    comparisons = compare_arms(cells, reference, within=["k_label"], anchors=(*stats.ANCHOR_ARMS, *floors))
    figure = plots.plot_few_shot_curves(summary.rename(columns={"arm": "strategy"}),
                                        path=runs.run_folder(config).figure("few_shot_curves"))
    if dosed:
        dose_figure(summary, path=runs.run_folder(config).figure("few_shot_dose_curves"))
    scientific = {"k per class": [k if k is not None else "all" for k in params.k_values], "arm": arm_names(config)}
    if dosed:
        scientific["other-row dose"] = ["all" if dose is None else dose for dose in params.other_doses]
    design = study_design(config, scientific,
                          "the model's initialisation and batch order; the split seed draws the k target rows "
                          "and the other rows",
                          {"target_domain": target, "validation": f"{len(validation)} {target} rows",
                           "steps policy": params.steps + (f": {DOSE_TEXT[params.steps]}" if dosed else ""),
                           **({"other-row pools": DOSE_TEXT["pools"]} if dosed else {}),
                           **({"floor": DOSE_TEXT["other_only"]} if OTHER_ONLY in params.strategies else {}),
                           **({"selection": SELECTION_TEXT} if params.selections else {}),
                           **({"Holm families": f"{', '.join(dict.fromkeys(a.split(' @')[0] for a in floors))} "
                               "adjusted with the anchors (reference points), apart from the arms that add other "
                               "rows to the target's"} if floors else {}),
                           "test rows": len(test) if params.test_agreement is None else
                           f"{len(test)} (annotator agreement ≥ {params.test_agreement:g})",
                           "anchors": "; ".join(anchor_text(config, anchor) for anchor in params.anchors) or "none"}
                          | ({"SetFit cells": setfit_scope} if (setfit_scope := anchors.setfit_scope(
                              ["setfit"] if {"setfit", "setfit+other"} & set(params.anchors) else [],
                              params.k_values, params.setfit_max_k)) else {})
                          | ({"recipes": recipes_text(params.recipes)} if params.recipes else {}),
                          tuned=recipe_tuning(params.recipes, params.recipes_from))
    labels = {"k_label": "k", "arm": "arm", "target_unique": "unique target rows",
              "target_rows": "target rows (with repeats)", "other_rows": "other rows"}
    table = results_markdown(summary, comparisons, labels, ["k_label"], groups, target,
                             test_rows=int(cells["n_test"].iloc[0]))
    extra = {"selection_vs_random": selection_comparisons(cells, params.selections)} if params.selections else {}
    return finish(config, "few_shot_mixing", cells, summary, comparisons, design, table,
                  _few_shot_reading(summary, comparisons, target, cells, reference, config), figure, extra=extra)


def dose_figure(summary: pd.DataFrame, path: Optional[Path] = None) -> Optional[Figure]:
    """Accuracy against the other-row dose per k (`plots.plot_dose_curves`) from a study's summary: each arm's
    doses as one curve, target-only (dose 0) as the reference line, other_only as the floor; None where the study
    has no `other_doses` (its summary no dose column)."""
    if "other_dose" not in summary.columns:
        return None
    rows = summary[(summary["arm"] == "target_only") | (summary["other_pool"] > 0)]
    frame = rows.assign(series=rows["arm"].str.split(" @").str[0], dose=rows["other_pool"],
                        dose_label=rows["other_dose"].astype(str))
    return plots.plot_dose_curves(frame, path, reference="target_only", floor=OTHER_ONLY)


def _few_shot_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, target: str, cells: pd.DataFrame,
                      reference: str, config: Config) -> str:
    params = few_shot_params(config)
    steps = ("every arm of a split trains on as many rows (target-only repeats its k-shot rows)"
             if params.steps == "equal_steps" else
             "each target row is seen as often in every arm, so arms with other data take more steps")
    if params.other_doses is not None:
        steps = (f"the other rows come in doses {', '.join(dose_labels(config))} (arm @dose), nested: "
                 f"{DOSE_TEXT['pools']}; under {params.steps} {DOSE_TEXT[params.steps]}")
    lines = [f"Measured on {int(cells['n_test'].iloc[0])} {target} test rows, the same for every cell; "
             f"{cells[['split_seed', 'seed']].drop_duplicates().shape[0]} replicates (split seeds "
             f"{', '.join(map(str, sorted(cells['split_seed'].unique())))} × seeds "
             f"{', '.join(map(str, sorted(cells['seed'].unique())))}). Every arm of a split keeps all of the "
             f"split's k-shot target rows and adds other rows; {steps}."]
    if OTHER_ONLY in params.strategies:
        lines[0] += f" The floor: {DOSE_TEXT['other_only']}."
    for k_label, at_k in summary.groupby("k_label", sort=False):
        lead = reference_line(at_k, at_k["arm"] == reference, "target-only") if (at_k["arm"] == reference).any() \
            else "no target-only arm"
        lines.append(f"k = {k_label}: {lead}. " + comparison_sentence(comparisons[comparisons["k_label"] == k_label]))
    if params.selections:
        lines.append(selection_reading(cells, params.selections))
    if len(comparisons):
        helps, hurts, unresolved = tally_comparisons(comparisons)
        lines.append(f"Over all {len(comparisons)} (k, arm) comparisons with target-only (Holm-adjusted), other "
                     f"data or an anchor helped in {helps}, hurt in {hurts}, and could not be told apart in "
                     f"{unresolved}: where it cannot tell, the interval says how large a difference this many "
                     "replicates still allow.")
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per k and replicate: target-only and every additive arm (mixing and other-group, once per dose) fine-tuned,
    other_only per dose, the probe, and SetFit and setfit+other where `anchors.setfit_runs_at` the k; where the run
    folder holds stored cells, how many it reuses (`with_reuse`). Cells count table rows: other_only, shown at every
    k, counts at every k though a dosed pool's model trains once (the reuse count counts it once)."""
    params = few_shot_params(config)
    k_count, doses = len(params.k_values), len(dose_labels(config))
    additive = sum(changes["mixing_strategy"] != "target_only" for _, changes in mixing_arms(config))
    per_replicate = {"fine-tuned": k_count * (int("target_only" in params.strategies) + len(params.selections)
                                              + (additive + len(params.other_groups)) * doses)}
    if OTHER_ONLY in params.strategies:
        per_replicate["other-only"] = k_count * doses
    if "probe" in params.anchors:
        per_replicate["probe"] = k_count
    setfit_ks = sum(anchors.setfit_runs_at(k, params.setfit_max_k) for k in params.k_values)
    if "setfit" in params.anchors:
        per_replicate["SetFit"] = setfit_ks
    if "setfit+other" in params.anchors:
        per_replicate["SetFit+other"] = setfit_ks
    return with_reuse(plan_cells("few_shot", arm_names(config), config, per_replicate), config, planned_cells)


register_study("few_shot", FewShotParams, uses_split_seeds=True, plan=plan)
