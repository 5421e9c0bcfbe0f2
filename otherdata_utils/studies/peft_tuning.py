"""The PEFT study: full fine-tuning against LoRA and AdaLoRA adapters on the same training rows per seed, each arm
at its own learning rate chosen on validation.

Hands on the arms (each with its config and parameter counts), the learning-rate choice and the study's
`StudyResult` (learning rates tried and the paired training-time comparison as extra tables).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Optional, Sequence

import pandas as pd
from datasets import Dataset, DatasetDict
from pydantic import Field

from .. import mix, plots, runs, stats
from ..adapters import parameter_counts
from ..config import Config
from ..study_registry import StudyParams, register_study, study_params
from ..modeling import load_model_and_tokenizer
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, finish, plan_cells, prepared_data, run_cells, seeds,
                     study_design, summarize)
from .reuse import PlannedCells, stored_rows, with_reuse
from .sampling import column
from .tables import arm_table, comparison_lines, number


PeftMethod = Literal["none", "lora", "adalora"]


class PeftParams(StudyParams):
    """`study.peft`: the tuning methods compared (none = full fine-tuning), the adapters' learning rate and the
    learning rates tried per method on validation (a method not named keeps its fixed rate)."""

    methods: list[PeftMethod] = Field(default_factory=lambda: ["none", "lora", "adalora"], min_length=1)
    learning_rate: Optional[float] = Field(None, gt=0)  # the PEFT arms' lr; null = the run's learning_rate
    learning_rate_grid: dict[PeftMethod, list[float]] = Field(default_factory=dict)


def peft_params(config: Config) -> PeftParams:
    return study_params(config, "peft", PeftParams)



ARM_OF_METHOD = {"none": "full", "lora": "lora", "adalora": "adalora"}
ABSENT_ARMS = ("bottleneck adapters (Houlsby et al., 2019): the `adapters` library pins transformers ~=4.57, we run 5; "
               "prefix tuning (Li & Liang, 2021): transformers 5's BERT encoder takes no past_key_values, so peft "
               "refuses it ('Model does not support past key values which are required for prefix tuning')")


def peft_arms(config: Config, label_names: Sequence[str]) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, its config, its facts) per `study.peft.methods`: full fine-tuning at `learning_rate`, PEFT methods at
    `study.peft.learning_rate` (else `learning_rate`), with trainable and total parameter counts of the built
    model."""
    params = peft_params(config)
    if len(set(params.methods)) != len(params.methods):
        raise ValueError(f"study.peft.methods {params.methods} names a method twice; list each once")
    arms = []
    for method in params.methods:
        rate = config.learning_rate if method == "none" else (params.learning_rate or config.learning_rate)
        arm_config = config.replace(peft_method=method, learning_rate=rate)
        model, _ = load_model_and_tokenizer(arm_config.replace(quiet=True), label_names)
        arms.append((ARM_OF_METHOD[method], arm_config,
                     {"peft_method": method, "learning_rate": rate, **parameter_counts(model)}))
        del model
    return arms


Arm = tuple[str, Config, dict[str, Any]]  # (arm, its config, its facts): `peft_arms`


def choose_learning_rate(grid: Sequence[float], score: Callable[[float], float]) -> tuple[float, pd.DataFrame]:
    """Each learning rate of `grid` scored by `score` (a validation score, higher is better): the best one (the first
    listed on a tie) and a table of every rate tried with its score and whether it was chosen."""
    _check_grid(grid)
    scores = [float(score(rate)) for rate in grid]
    best = max(range(len(grid)), key=lambda position: (scores[position], -position))
    return grid[best], pd.DataFrame({"learning_rate": list(grid), "validation_score": scores,
                                     "chosen": [position == best for position in range(len(grid))]})


def _check_grid(grid: Sequence[float]) -> None:
    if not grid or any(rate <= 0 for rate in grid):
        raise ValueError(f"a learning-rate grid needs positive rates; got {list(grid)}")


def rate_cells(config: Config, arm: Arm, train_rows: Dataset, validation: Dataset, seed: int) -> list[Cell]:
    """One cell per learning rate of the arm's method's grid (`study.peft.learning_rate_grid`; none without a grid):
    the arm's config at that rate (the cell's own), trained on `train_rows` with `seed`, to be scored on
    `validation`."""
    name, arm_config, facts = arm
    grid = peft_params(config).learning_rate_grid.get(facts["peft_method"], [])
    if grid:
        _check_grid(grid)
    return [Cell(arm=name, seed=seed, train=train_rows, validation=validation,
                 config=arm_config.replace(learning_rate=rate)) for rate in grid]


def chosen_rate(arm: Arm, cells: list[Cell], score: Callable[[Cell], float], how: str) -> tuple[Arm, pd.DataFrame]:
    """The arm at the learning rate of its best `rate_cells` cell by `score` (`choose_learning_rate`), or at its set
    rate where it has none, and the rates tried (arm, learning_rate, validation_score, chosen, how)."""
    name, arm_config, facts = arm
    if not cells:
        return (name, arm_config, {**facts, "validation_score": math.nan}), pd.DataFrame({
            "arm": [name], "learning_rate": [arm_config.learning_rate], "validation_score": [math.nan],
            "chosen": [True], "how": ["set, not tuned"]})
    by_rate = {cell.config.learning_rate: cell for cell in cells}
    rate, table = choose_learning_rate([cell.config.learning_rate for cell in cells],
                                       lambda value: score(by_rate[value]))
    best = float(table.loc[table["chosen"], "validation_score"].iloc[0])
    return ((name, arm_config.replace(learning_rate=rate), {**facts, "learning_rate": rate, "validation_score": best}),
            table.assign(arm=name, how=how))


def selection_metric(config: Config) -> str:
    """The validation score a learning rate is chosen by: `metric_for_best_model` where it is macro_f1, else accuracy."""
    return "macro_f1" if config.metric_for_best_model == "macro_f1" else "accuracy"


def select_learning_rates(config: Config, arms: list[Arm], train_rows: Dataset, validation: Dataset,
                          label_names: list[str], headline: Optional[str], seed: int) -> tuple[list[Arm], pd.DataFrame]:
    """Each arm's learning rate chosen on validation from `study.peft.learning_rate_grid[method]`: one model per rate
    (`rate_cells`), trained on `train_rows` with `seed`, scored on the validation rows (the headline domain's, when
    set) by `selection_metric`. Arms whose method has no grid keep their set rate.
    Returns the arms at their chosen rates and one row per (arm, rate) tried; test rows are never read."""
    metric = selection_metric(config)
    per_arm = [rate_cells(config, arm, train_rows, validation, seed) for arm in arms]
    grid = [cell for cells in per_arm for cell in cells]
    # every arm's grid in one call, so the executor trains its models side by side (a Ray worker per core), not
    # one model at a time on one of them; a cell's key is its own config, so stored grid models are reused
    scored = run_cells(config, grid, validation, label_names, headline=headline,
                       desc="learning-rate grid") if grid else None
    scores = {id(cell): float(value) for cell, value in zip(grid, scored[metric])} if grid else {}
    chosen, tried = [], []
    for arm, cells in zip(arms, per_arm):
        picked, table = chosen_rate(arm, cells, lambda cell: scores[id(cell)], f"validation {metric}, seed {seed}")
        chosen.append(picked)
        tried.append(table)
    selection = pd.concat(tried, ignore_index=True)[["arm", "learning_rate", "validation_score", "chosen", "how"]]
    return chosen, selection


@dataclass(frozen=True)
class PeftRows:
    """What the study's cells are built from: the prepared splits and label names, the headline domain (None: every
    test row), the arms (the reference first) before their learning rates are chosen, and each seed's training
    rows (mixed as the config says)."""

    prepared: DatasetDict
    names: list[str]
    headline: Optional[str]
    arms: list[Arm]
    reference: str
    training_sets: dict[int, Dataset]


def peft_rows(config: Config) -> PeftRows:
    prepared, names = prepared_data(config)
    headline = config.target_domain if config.target_domain in set(column(prepared["test"], "domain")) else None
    arms = peft_arms(config, names)
    reference = "full" if any(arm == "full" for arm, _, _ in arms) else arms[0][0]
    arms.sort(key=lambda arm: arm[0] != reference)  # the reference first, in tables and figure
    training_sets = {seed: mix.mix(prepared["train"], config, seed=seed)[0] for seed in seeds(config)}
    return PeftRows(prepared, names, headline, arms, reference, training_sets)


def arm_cells(config: Config, rows: PeftRows, arms: list[Arm]) -> list[Cell]:
    """Per arm (at its chosen rate: the cell's own config) and seed, a cell on the seed's training rows."""
    return [Cell(arm=arm, seed=seed, train=rows.training_sets[seed], validation=rows.prepared["validation"],
                 facts=facts, config=arm_config) for arm, arm_config, facts in arms for seed in seeds(config)]


def peft_study(config: Config) -> StudyResult:
    """Full fine-tuning against LoRA and AdaLoRA (`study.peft.methods`) on the config's training set (mixed as the
    config says, per seed), over seeds: accuracy, trainable parameters and training time per model, measured on the
    target's test rows (all test rows without a target). Each arm's learning rate is first chosen on validation
    (`select_learning_rates`, the first seed's rows); the test comparison uses only the chosen rate."""
    rows = peft_rows(config)
    names, headline, reference, first = rows.names, rows.headline, rows.reference, seeds(config)[0]
    arms, selection = select_learning_rates(config, rows.arms, rows.training_sets[first], rows.prepared["validation"],
                                            names, headline, first)
    results = run_cells(config, arm_cells(config, rows, arms), rows.prepared["test"], names, headline=headline,
                        desc="peft")
    results["trainable_share"] = results["trainable_params"] / results["total_params"]
    summary = summarize(results, ["arm"], also=["n_test", "train_seconds", "trainable_params", "total_params",
                                                "trainable_share", "learning_rate", "validation_score"])
    comparisons = compare_arms(results, reference)
    timing = compare_arms(results, reference, metric="train_seconds", margin=None)  # no margin fits seconds
    scope = headline or "test"
    figure = plots.plot_arms(summary, title="Parameter-efficient tuning against full fine-tuning",
                             xlabel=f"{scope} test accuracy (mean, 95% CI)",
                             path=runs.run_folder(config).figure("peft"),
                             notes=[f"({row.trainable_params:,.0f} trainable, lr {row.learning_rate:g})"
                                    for row in summary.itertuples()])
    design = study_design(
        config, {"how the model is tuned": ", ".join(arm for arm, _, _ in arms),
                 "LoRA": f"rank {config.lora_r}, alpha {config.lora_alpha}, dropout {config.lora_dropout}, target "
                         f"modules {config.lora_target_modules or 'peft default for the model type'}"},
        "the model's initialisation and batch order, every arm of a seed on the same rows",
        {"training rows": int(summary["n_train"].iloc[0]), "absent arms": ABSENT_ARMS,
         "seconds": "the whole training call (evaluations included) on this machine"},
        tuned={"learning_rate": "chosen per arm on validation from its grid (below; test rows are not read for it)"})
    table = "\n\n".join([
        arm_table(summary, comparisons, scope, {
            "n_test": ("test rows", ".0f"), "trainable_params": ("trainable params", ",.0f"),
            "trainable_share": ("share", ".2%"),
            "learning_rate": ("lr (chosen)", "g"), "validation_score": ("validation score", ".3f"),
            "train_seconds": ("train s", ".1f")}),
        "Learning rates tried per arm (validation rows only):",
        _selection_markdown(selection)])
    reading = "\n".join(_peft_reading(config, summary, comparisons, timing, selection, reference))
    return finish(config, "peft", results, summary, comparisons, design, table, reading, figure,
                  extra={"timing": timing, "learning_rates": selection},
                  record={"arms": [arm for arm, _, _ in arms], "reference": reference, "absent_arms": ABSENT_ARMS})


def _selection_markdown(selection: pd.DataFrame) -> str:
    lines = ["| arm | lr | validation score | chosen | how |", "|---|---:|---:|---|---|"]
    lines += [f"| {row.arm} | {row.learning_rate:g} | {number(row.validation_score)} | {'yes' if row.chosen else ''} "
              f"| {row.how} |" for row in selection.itertuples()]
    return "\n".join(lines)


def _peft_reading(config: Config, summary: pd.DataFrame, comparisons: pd.DataFrame, timing: pd.DataFrame,
                  selection: pd.DataFrame, reference: str) -> list[str]:
    by_arm = summary.set_index("arm")
    base = by_arm.loc[reference]
    lines = []
    for arm, row in by_arm.iterrows():
        line = (f"{arm}: {row.trainable_params:,.0f} trainable parameters ({row.trainable_share:.2%} of "
                f"{row.total_params:,.0f}), lr {row.learning_rate:g}, {row.train_seconds:.1f} s per model")
        if arm != reference:
            time_row = timing[timing["arm"] == arm].iloc[0]
            timed = stats.verdict(time_row["delta"], (time_row["ci_low"], time_row["ci_high"]), time_row["p_holm"],
                                  time_row["mde"], directions=("slower", "faster"))
            line += (f" ({row.train_seconds / base.train_seconds:.2f}× {reference}'s time, "
                     f"{time_row['delta']:+.1f} s: {timed})")
            if row.train_seconds > 0.8 * base.train_seconds:
                line += (": little time saved, since the forward and backward passes still run through the whole "
                         "frozen encoder; adapters save optimizer state and weight gradients, i.e. memory")
        lines.append(line + ".")
    if "adalora" in by_arm.index:
        lines.append(f"AdaLoRA's count is at its starting rank ({math.ceil(1.5 * config.lora_r)}); it prunes ranks "
                     f"towards {config.lora_r} on average as it trains, by gradient-based importance.")
    tuned = selection[selection["how"] != "set, not tuned"]
    if len(tuned):
        edge = [row.arm for row in tuned[tuned["chosen"]].itertuples()
                if row.learning_rate in (tuned.loc[tuned["arm"] == row.arm, "learning_rate"].min(),
                                         tuned.loc[tuned["arm"] == row.arm, "learning_rate"].max())]
        lines.append("Each tuned arm runs at the learning rate that scored best on validation; the test comparison "
                     "uses that rate only." + (f" The choice sits at the edge of its grid for {', '.join(edge)}: a "
                                               "wider grid might find a better rate." if edge else ""))
    lines.append(f"Absent: {ABSENT_ARMS}.")
    return lines + comparison_lines(summary, comparisons, reference)


def planned_cells(config: Config) -> list[PlannedCells]:
    """The learning-rate cells (`rate_cells`, scored on validation), then the test cells of every arm whose rate is
    known: an arm without a grid, or one whose learning-rate cells are all stored (its rate is chosen from them).
    The test cells of an arm still to choose its rate cannot be keyed yet: the note says so."""
    rows = peft_rows(config)
    first, validation, metric = seeds(config)[0], rows.prepared["validation"], selection_metric(config)
    tried, known, pending = [], [], []
    for arm in rows.arms:
        cells = rate_cells(config, arm, rows.training_sets[first], validation, first)
        stored = stored_rows(config, cells, validation, rows.names, headline=rows.headline)
        tried += cells
        if any(row is None for row in stored):
            pending.append(arm[0])
            continue
        scores = {cell.config.learning_rate: row[metric] for cell, row in zip(cells, stored)}
        known.append(chosen_rate(arm, cells, lambda cell: scores[cell.config.learning_rate], "")[0])
    note = (f"the test cells of {', '.join(pending)} ({len(pending) * len(seeds(config))}) are not counted: their "
            "learning rate is chosen from cells still to train" if pending else None)
    return [PlannedCells(tried, validation, rows.names, headline=rows.headline),
            PlannedCells(arm_cells(config, rows, known), rows.prepared["test"], rows.names, headline=rows.headline,
                         note=note)]


def plan(config: Config) -> StudyPlan:
    """Per seed: one model per method; before them, one model per learning rate of a method's grid (first seed).
    Where the run folder holds stored cells, how many it reuses (`with_reuse`, both kinds)."""
    params = peft_params(config)
    arms = [ARM_OF_METHOD[method] for method in params.methods]
    base = plan_cells("peft", arms, config, {"fine-tuned": len(arms)})
    grid = sum(len(params.learning_rate_grid.get(method, [])) for method in params.methods)
    return with_reuse(replace(base, extra={"learning-rate selection": grid}), config, planned_cells)


register_study("peft", PeftParams, uses_split_seeds=False, plan=plan)  # rows fixed; seeds vary initialisation
