"""The PEFT study: full fine-tuning against LoRA and AdaLoRA adapters on the same training rows per seed.

Hands on the arms (each with its config and parameter counts) and the study's `AdaptationResult`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from .. import mix, plots, runs
from ..adapters import parameter_counts
from ..config import Config
from ..modeling import load_model_and_tokenizer
from .engine import AdaptationResult, Cell, compare_arms, prepared_data, run_cells, save_study, summarize
from .sampling import column
from .tables import arm_table, comparison_lines, noise_verdict, records

ARM_OF_METHOD = {"none": "full", "lora": "lora", "adalora": "adalora"}


def peft_arms(config: Config, label_names: Sequence[str]) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, its config, its facts) per `study_peft_methods`: full fine-tuning at `learning_rate`, PEFT methods at
    `study_peft_learning_rate` (else `learning_rate`), with trainable and total parameter counts of the built
    model."""
    if len(set(config.study_peft_methods)) != len(config.study_peft_methods):
        raise ValueError(f"study_peft_methods {config.study_peft_methods} names a method twice; list each once")
    arms = []
    for method in config.study_peft_methods:
        rate = config.learning_rate if method == "none" else (config.study_peft_learning_rate or config.learning_rate)
        arm_config = config.replace(peft_method=method, learning_rate=rate)
        model, _ = load_model_and_tokenizer(arm_config.replace(quiet=True), label_names)
        arms.append((ARM_OF_METHOD[method], arm_config,
                     {"peft_method": method, "learning_rate": rate, **parameter_counts(model)}))
        del model
    return arms


def peft_study(config: Config) -> AdaptationResult:
    """Full fine-tuning against LoRA and AdaLoRA (`study_peft_methods`) on the config's training set (mixed as the
    config says, per seed), over seeds: accuracy, trainable parameters and training time per model, measured on the
    target's test rows (all test rows without a target)."""
    prepared, names = prepared_data(config)
    headline = config.target_domain if config.target_domain in set(column(prepared["test"], "domain")) else None
    arms = peft_arms(config, names)
    reference = "full" if any(arm == "full" for arm, _, _ in arms) else arms[0][0]
    arms.sort(key=lambda arm: arm[0] != reference)  # the reference first, in tables and figure
    training_sets = {seed: mix.mix(prepared["train"], config, seed=seed)[0] for seed in config.seeds}
    frames = []
    for arm, arm_config, facts in arms:
        cells = [Cell(arm=arm, seed=seed, train=training_sets[seed], validation=prepared["validation"], facts=facts)
                 for seed in config.seeds]
        frames.append(run_cells(arm_config, cells, prepared["test"], names, headline=headline, desc=arm))
    results = pd.concat(frames, ignore_index=True)
    results["trainable_share"] = results["trainable_params"] / results["total_params"]
    summary = summarize(results, ["arm"], also=["train_seconds", "trainable_params", "total_params",
                                                "trainable_share", "learning_rate"])
    comparisons = compare_arms(results, reference)
    timing = compare_arms(results, reference, metric="train_seconds")
    scope = headline or "test"
    figure = plots.plot_arms(summary, title="Parameter-efficient tuning against full fine-tuning",
                             xlabel=f"{scope} test accuracy (mean, 95% CI)",
                             path=runs.run_folder(config).figure("peft"),
                             notes=[f"({row.trainable_params:,.0f} trainable, {row.train_seconds:.0f} s)"
                                    for row in summary.itertuples()])
    table = "\n\n".join([
        f"*Scientific:* how the model is tuned ({', '.join(arm for arm, _, _ in arms)}); LoRA rank {config.lora_r}, "
        f"alpha {config.lora_alpha}, dropout {config.lora_dropout}, target modules "
        f"{config.lora_target_modules or 'peft default for the model type'}. *Nuisance:* learning rate per arm "
        "(set, not tuned: see the table). *Fixed:* model "
        f"`{config.model_name_or_path}`, {int(summary['n_train'].iloc[0])} training rows, "
        f"{config.num_train_epochs:g} epoch(s), batch {config.per_device_train_batch_size}. *Seeds:* "
        f"{', '.join(map(str, config.seeds))}. Intervals: 95% Student-t over seeds, clipped to [0, 1]; verdicts: "
        f"Welch's t-test against {reference}, p < 0.05. Seconds: the whole training call (evaluations included) on "
        "this machine.",
        arm_table(summary, comparisons, scope, {
            "trainable_params": ("trainable params", ",.0f"), "trainable_share": ("share", ".2%"),
            "learning_rate": ("lr", "g"), "train_seconds": ("train s", ".1f")})])
    reading = "\n".join(_peft_reading(config, summary, comparisons, timing, reference))
    folder = save_study(config, "peft", {"cells": results, "summary": summary, "comparisons": comparisons,
                                         "timing": timing}, {
        "arms": [arm for arm, _, _ in arms], "reference": reference, "seeds": list(config.seeds),
        "summary": records(summary), "comparisons": records(comparisons), "timing": records(timing),
        "table_markdown": table, "reading": reading})
    return AdaptationResult(name="peft", cells=results, summary=summary, comparisons=comparisons,
                            table_markdown=table, reading=reading, figure=figure, folder=folder)


def _peft_reading(config: Config, summary: pd.DataFrame, comparisons: pd.DataFrame, timing: pd.DataFrame,
                  reference: str) -> list[str]:
    by_arm = summary.set_index("arm")
    base = by_arm.loc[reference]
    lines = []
    for arm, row in by_arm.iterrows():
        line = (f"{arm}: {row.trainable_params:,.0f} trainable parameters ({row.trainable_share:.2%} of "
                f"{row.total_params:,.0f}), lr {row.learning_rate:g}, {row.train_seconds:.1f} s per model")
        if arm != reference:
            time_row = timing[timing["arm"] == arm].iloc[0]
            noise = noise_verdict(time_row["beyond_noise"], time_row["p_value"], time_row["seeds"])
            line += (f" ({row.train_seconds / base.train_seconds:.2f}× {reference}'s time, "
                     f"{time_row['difference']:+.1f} s, {noise})")
            if row.train_seconds > 0.8 * base.train_seconds:
                line += (": little time saved, since the forward and backward passes still run through the whole "
                         "frozen encoder; adapters save optimizer state and weight gradients, i.e. memory")
        lines.append(line + ".")
    if "adalora" in by_arm.index:
        lines.append(f"AdaLoRA's count is at its starting rank ({math.ceil(1.5 * config.lora_r)}); it prunes ranks "
                     f"towards {config.lora_r} on average as it trains, by gradient-based importance.")
    rates = sorted(set(summary["learning_rate"]))
    if len(rates) > 1:
        lines.append(f"The arms use different learning rates ({', '.join(f'{r:g}' for r in rates)}), set rather "
                     "than tuned per arm: adapters usually want a larger step than full fine-tuning.")
    return lines + comparison_lines(summary, comparisons, reference)
