"""The PEFT study: full fine-tuning against LoRA and AdaLoRA adapters on the same training rows per seed, each arm
at its own learning rate chosen on validation.

Hands on the arms (each with its config and parameter counts), the learning-rate choice and the study's
`StudyResult` (learning rates tried and the paired training-time comparison as extra tables).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Literal, Optional, Sequence

import pandas as pd
from datasets import Dataset
from pydantic import Field

from .. import mix, plots, runs, stats
from ..adapters import parameter_counts
from ..config import Config
from ..study_registry import StudyParams, register_study, study_params
from ..modeling import load_model_and_tokenizer
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, finish, plan_cells, prepared_data, run_cells, seeds,
                     study_design, summarize)
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


def choose_learning_rate(grid: Sequence[float], score: Callable[[float], float]) -> tuple[float, pd.DataFrame]:
    """Each learning rate of `grid` scored by `score` (a validation score, higher is better): the best one (the first
    listed on a tie) and a table of every rate tried with its score and whether it was chosen."""
    if not grid or any(rate <= 0 for rate in grid):
        raise ValueError(f"a learning-rate grid needs positive rates; got {list(grid)}")
    scores = [float(score(rate)) for rate in grid]
    best = max(range(len(grid)), key=lambda position: (scores[position], -position))
    return grid[best], pd.DataFrame({"learning_rate": list(grid), "validation_score": scores,
                                     "chosen": [position == best for position in range(len(grid))]})


def select_learning_rates(config: Config, arms: list[tuple[str, Config, dict[str, Any]]], train_rows: Dataset,
                          validation: Dataset, label_names: list[str], headline: Optional[str],
                          seed: int) -> tuple[list[tuple[str, Config, dict[str, Any]]], pd.DataFrame]:
    """Each arm's learning rate chosen on validation from `study.peft.learning_rate_grid[method]`: one model per rate,
    trained on `train_rows` with `seed`, scored on the validation rows (the headline domain's, when set) by
    `metric_for_best_model` (accuracy unless it is macro_f1). Arms whose method has no grid keep their set rate.
    Returns the arms at their chosen rates and one row per (arm, rate) tried; test rows are never read."""
    params = peft_params(config)
    metric = "macro_f1" if config.metric_for_best_model == "macro_f1" else "accuracy"
    chosen, tried = [], []
    for arm, arm_config, facts in arms:
        grid = params.learning_rate_grid.get(facts["peft_method"], [])
        if not grid:
            chosen.append((arm, arm_config, {**facts, "validation_score": math.nan}))
            tried.append(pd.DataFrame({"arm": [arm], "learning_rate": [arm_config.learning_rate],
                                       "validation_score": [math.nan], "chosen": [True], "how": ["set, not tuned"]}))
            continue

        def score(rate: float) -> float:
            cell = Cell(arm=arm, seed=seed, train=train_rows, validation=validation)
            scored = run_cells(arm_config.replace(learning_rate=rate), [cell], validation, label_names,
                               headline=headline, desc=f"{arm} lr {rate:g}")
            return float(scored[metric].iloc[0])

        rate, table = choose_learning_rate(grid, score)
        best = float(table.loc[table["chosen"], "validation_score"].iloc[0])
        chosen.append((arm, arm_config.replace(learning_rate=rate),
                       {**facts, "learning_rate": rate, "validation_score": best}))
        tried.append(table.assign(arm=arm, how=f"validation {metric}, seed {seed}"))
    selection = pd.concat(tried, ignore_index=True)[["arm", "learning_rate", "validation_score", "chosen", "how"]]
    return chosen, selection


def peft_study(config: Config) -> StudyResult:
    """Full fine-tuning against LoRA and AdaLoRA (`study.peft.methods`) on the config's training set (mixed as the
    config says, per seed), over seeds: accuracy, trainable parameters and training time per model, measured on the
    target's test rows (all test rows without a target). Each arm's learning rate is first chosen on validation
    (`select_learning_rates`, the first seed's rows); the test comparison uses only the chosen rate."""
    prepared, names = prepared_data(config)
    headline = config.target_domain if config.target_domain in set(column(prepared["test"], "domain")) else None
    arms = peft_arms(config, names)
    reference = "full" if any(arm == "full" for arm, _, _ in arms) else arms[0][0]
    arms.sort(key=lambda arm: arm[0] != reference)  # the reference first, in tables and figure
    training_sets = {seed: mix.mix(prepared["train"], config, seed=seed)[0] for seed in seeds(config)}
    arms, selection = select_learning_rates(config, arms, training_sets[seeds(config)[0]], prepared["validation"],
                                            names, headline, seeds(config)[0])
    frames = []
    for arm, arm_config, facts in arms:
        cells = [Cell(arm=arm, seed=seed, train=training_sets[seed], validation=prepared["validation"], facts=facts)
                 for seed in seeds(config)]
        frames.append(run_cells(arm_config, cells, prepared["test"], names, headline=headline, desc=arm))
    results = pd.concat(frames, ignore_index=True)
    results["trainable_share"] = results["trainable_params"] / results["total_params"]
    summary = summarize(results, ["arm"], also=["n_test", "train_seconds", "trainable_params", "total_params",
                                                "trainable_share", "learning_rate", "validation_score"])
    comparisons = compare_arms(results, reference)
    timing = compare_arms(results, reference, metric="train_seconds")
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


def plan(config: Config) -> StudyPlan:
    """Per seed: one model per method; before them, one model per learning rate of a method's grid (first seed)."""
    params = peft_params(config)
    arms = [ARM_OF_METHOD[method] for method in params.methods]
    base = plan_cells("peft", arms, config, {"fine-tuned": len(arms)})
    grid = sum(len(params.learning_rate_grid.get(method, [])) for method in params.methods)
    return replace(base, extra={"learning-rate selection": grid})


register_study("peft", PeftParams, uses_split_seeds=False, plan=plan)  # rows fixed; seeds vary initialisation
