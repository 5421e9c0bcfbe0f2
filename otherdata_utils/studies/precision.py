"""The precision study: does training and evaluating in bf16 autocast change accuracy against fp32? Arms differ only
in `mixed_precision`; every arm of a replicate trains on the same rows and is scored on the same test rows.

Takes the config's data as the default study uses it (the mixed training set) or, with `study.precision.k`, the
few-shot study's k-shot target rows (`setting_arms.k_shot_cells`, the rows every one-setting study shares). Hands on its params, its plan,
the cells (each with the dtype its linear layers actually computed in) and a `StudyResult` whose comparisons give,
per arm against fp32, Δ accuracy with the two-level bootstrap interval, paired-t p (Holm), MDE, the TOST at
`study.precision.margin` and the train-time ratio on this host.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import pandas as pd
import torch
from datasets import Dataset, DatasetDict
from pydantic import Field, field_validator

from .. import plots, runs, stats
from ..config import Config, ConfigError
from ..precision import resolve_precision
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, correct_rows, fine_tune_cell, finish, plan_cells,
                     prepared_data, replicate_columns, run_cells, study_design, summarize)
from .reuse import PlannedCells, with_reuse
from .setting_arms import arm_cells, k_shot_cells, setting_arms, target_test_rows, training_set_cells
from .tables import arm_table, number, number_signed

REFERENCE = "fp32"  # the arm that trains with mixed_precision "no"
ALPHA = 0.05  # the TOST's level: equivalence is read from the 90% bootstrap interval


class PrecisionParams(StudyParams):
    """`study.precision`: the precisions compared with fp32, the k-shot setting (null: the config's training set)
    and the equivalence margin of the TOST."""

    arms: list[Literal["bf16", "fp16", "auto"]] = Field(default_factory=lambda: ["bf16"], min_length=1)
    # k target rows per class drawn per split seed as the few-shot study draws them (study.few_shot's test_rows,
    # other_rows and steps apply); null = the config's training set, mixed as 02_mixing mixes it
    k: Optional[int] = Field(None, ge=1)
    margin: float = Field(0.01, gt=0, lt=1)  # ± accuracy within which bf16 counts as equivalent (0.01 = 1 point)

    @field_validator("arms")
    @classmethod
    def _arms(cls, value: list) -> list:
        return distinct_values(value, "bf16, fp16 or auto", lambda v: True)


def precision_params(config: Config) -> PrecisionParams:
    return study_params(config, "precision", PrecisionParams)


def cell_device() -> str:
    """Where a cell trains (Accelerate's choice): the GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def precision_arms(config: Config) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, the cell config, facts) for fp32 then each `study.precision.arms` entry resolved on this host
    (`precision.resolve_precision`: auto becomes bf16 or fp32 with its reason). The configs differ only in
    `mixed_precision` (`setting_arms`)."""
    device, requested = cell_device(), [(REFERENCE, "no")]
    requested += [(arm, arm) for arm in precision_params(config).arms]
    choices = []
    for arm, mode in requested:
        try:
            choices.append(resolve_precision(mode, device))
        except ValueError as error:
            raise ConfigError(f"study.precision.arms: {arm!r} cannot run here: {error}") from None
    return setting_arms(config, "mixed_precision", [(arm, choice.mode) for (arm, _), choice in zip(requested, choices)],
                        [{"precision_reason": choice.reason} for choice in choices])


# --- the rows every arm shares ----------------------------------------------------------------------------------------

def replicate_cells(config: Config, prepared: DatasetDict) -> tuple[list[Cell], Dataset, str]:
    """One cell per (split seed, seed) holding the rows every precision arm of that replicate trains on, the test
    rows every cell is scored on, and what those rows are, in words.

    Without `study.precision.k`: the config's training set (`setting_arms.training_set_cells`), the prepared
    validation and test splits. With it: the few-shot study's target-only cells at that k (`k_shot_cells`), the
    target's validation rows, and the target's test rows as the few-shot study samples them (`target_test_rows`).
    """
    k = precision_params(config).k
    if k is None:
        return (training_set_cells(config, prepared, REFERENCE), prepared["test"],
                f"the config's training set ({config.mixing_strategy}), every test row")
    cells, _, rows_text = k_shot_cells(config, prepared, k, REFERENCE, "study.precision.k")
    test = target_test_rows(config, prepared, k, "study.precision.k")
    return cells, test, f"{rows_text}, {config.target_domain} test rows"


def precision_cells(config: Config, base: list[Cell]) -> list[Cell]:
    """Every replicate's cell once per arm (`arm_cells`): the same rows, the arm's config, `precision_fit`."""
    return arm_cells(base, precision_arms(config), precision_fit)


def planned_cells(config: Config) -> PlannedCells:
    """Every cell of the study on the run folder's prepared data, as `run_cells` gets them (what a plan counts)."""
    prepared, names = prepared_data(config)
    base, test, _ = replicate_cells(config, prepared)
    return PlannedCells(precision_cells(config, base), test, names)


# --- one cell: the dtype it really computed in ------------------------------------------

@contextmanager
def linear_dtypes() -> Iterator[Counter]:
    """Counts (training?, output dtype) of every `nn.Linear` call while open: what the matmuls computed in."""
    seen: Counter = Counter()

    def hook(module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            seen[(module.training, str(output.dtype).removeprefix("torch."))] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def dominant_dtype(seen: Counter, training: bool) -> Optional[str]:
    """The dtype most linear-layer calls of that phase returned (None: the phase ran none)."""
    phase = Counter({dtype: count for (mode, dtype), count in seen.items() if mode == training})
    return phase.most_common(1)[0][0] if phase else None


def precision_fit(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                  label_names: list[str], work_dir: Path) -> dict[str, Any]:
    """Fine-tune and score as every study cell does (`fine_tune_cell`) at the config's `mixed_precision`, with the
    dtype its linear layers computed in while training and while scoring: the precision the cell really ran in."""
    # train.precision_accelerator starts Accelerate afresh when a cell's precision differs from the last one's.
    with linear_dtypes() as seen:
        measured = fine_tune_cell(config, train_rows, validation_rows, test_rows, label_names, work_dir)
    return {**measured, "train_dtype": dominant_dtype(seen, True), "eval_dtype": dominant_dtype(seen, False)}


# --- comparisons ------------------------------------------------------------------------------------------------------

def parity_comparisons(cells: pd.DataFrame, margin: float) -> pd.DataFrame:
    """`compare_arms` (paired t over replicates, Holm, MDE, verdict) with, per arm: the two-level bootstrap 95%
    interval of Δ accuracy over replicates and test rows (`boot_low`, `boot_high`), the TOST at ±`margin` on its 90%
    interval (`tost_low`, `tost_high`, `equivalent`, `equivalence`), the median fp32/arm train-time ratio over
    replicate pairs, and the dtypes the arm's cells computed in."""
    # this study's own TOST (at its margin) and bootstrap columns below take the place of compare_arms' TOST
    comparisons = compare_arms(cells, REFERENCE, margin=None).drop(columns=["margin", "tost_low", "tost_high",
                                                                            "equivalence"])
    keys = replicate_columns(cells)
    reference = cells[cells["arm"] == REFERENCE].set_index(keys)
    added = []
    for arm in comparisons["arm"]:
        rows = cells[cells["arm"] == arm].set_index(keys)
        shared = reference.index.intersection(rows.index)
        a = [correct_rows(text) for text in reference.loc[shared, "correct"]]
        b = [correct_rows(text) for text in rows.loc[shared, "correct"]]
        boot = stats.paired_bootstrap(a, b)
        tost = stats.equivalence_bootstrap(a, b, margin, alpha=ALPHA)
        ratio = (reference.loc[shared, "train_seconds"] / rows.loc[shared, "train_seconds"]).median()
        added.append({"n_rows": boot.n_rows, "boot_low": boot.ci_low, "boot_high": boot.ci_high,
                      "boot_covers": boot.covers, "margin": margin, "tost_low": tost.ci_low,
                      "tost_high": tost.ci_high, "equivalent": tost.equivalent,
                      "equivalence": (f"equivalent within ±{margin:.3f}" if tost.equivalent
                                      else "equivalence not shown"),
                      "time_ratio": float(ratio),
                      "train_dtype": "/".join(sorted(set(rows["train_dtype"].dropna()))),
                      "eval_dtype": "/".join(sorted(set(rows["eval_dtype"].dropna())))})
    return pd.concat([comparisons.reset_index(drop=True), pd.DataFrame(added, index=comparisons.index)], axis=1)


def parity_markdown(comparisons: pd.DataFrame) -> str:
    """One line per arm: Δ with its bootstrap interval, Holm p, MDE, the TOST's 90% interval and verdict, the dtypes
    it ran in, and the train-time ratio (timing on this host, not a property of the precision)."""
    header = ["arm vs fp32", "Δ accuracy [95% bootstrap CI]", "p_adj (Holm, paired t)", "MDE",
              "TOST 90% CI", "equivalence", "computed in (train / eval)", "train time fp32/arm (this host, median)"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in comparisons.itertuples():
        lines.append("| " + " | ".join([
            str(row.arm),
            f"{number_signed(row.delta)} [{number_signed(row.boot_low)}, {number_signed(row.boot_high)}]",
            number(row.p_holm), number(row.mde), f"[{number_signed(row.tost_low)}, {number_signed(row.tost_high)}]",
            row.equivalence, f"{row.train_dtype or '—'} / {row.eval_dtype or '—'}",
            f"{row.time_ratio:.2f}×"]) + " |")
    return "\n".join(lines)


def precision_study(config: Config) -> StudyResult:
    """fp32 against each `study.precision.arms` precision on the same rows and test rows, over split seeds × seeds,
    paired: is the accuracy the same within ±margin (TOST), and how much faster does it train on this host?"""
    params = precision_params(config)
    prepared, names = prepared_data(config)
    base, test, data_text = replicate_cells(config, prepared)
    cells = run_cells(config, precision_cells(config, base), test, names, desc="precision")
    summary = summarize(cells, ["arm"], also=["train_seconds"])
    comparisons = parity_comparisons(cells, params.margin)
    arms = precision_arms(config)
    design = study_design(
        config, {"mixed_precision": {arm: facts["mixed_precision"] for arm, _, facts in arms}},
        "the model's initialisation and batch order; the split seed draws the training rows",
        {"data": data_text, "test rows": len(test), "device": cell_device(),
         "precision reasons": {arm: facts["precision_reason"] for arm, _, facts in arms},
         "equivalence": f"TOST at ±{params.margin:g} accuracy, α = {ALPHA} (90% two-level bootstrap interval)",
         "seconds": "the whole training call (validation included) on this host"})
    table = "\n\n".join([arm_table(summary, comparisons, "test", {"train_seconds": ("train s", ".1f")}),
                         parity_markdown(comparisons)])
    figure = plots.plot_arms(summary, title="Training and scoring precision against fp32",
                             xlabel="test accuracy (mean, 95% CI)", path=runs.run_folder(config).figure("precision"))
    return finish(config, "precision", cells, summary, comparisons, design, table,
                  _precision_reading(summary, comparisons, params.margin), figure,
                  record={"reference": REFERENCE, "margin": params.margin, "alpha": ALPHA})


def _precision_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, margin: float) -> str:
    reference = summary[summary["arm"] == REFERENCE].iloc[0]
    lines = [f"fp32 reaches {number(reference['mean'])} test accuracy over {int(reference['n'])} replicate(s)."]
    for row in comparisons.itertuples():
        lines.append(
            f"{row.arm} (computed in {row.train_dtype or '—'} while training): Δ {number_signed(row.delta)} "
            f"[{number_signed(row.boot_low)}, {number_signed(row.boot_high)}] (95% bootstrap over "
            f"{row.boot_covers}); "
            f"{row.equivalence} (TOST 90% CI [{number_signed(row.tost_low)}, {number_signed(row.tost_high)}], "
            f"margin ±{margin:g}); {row.verdict}. Training wall time fp32/{row.arm}: {row.time_ratio:.2f}× (above 1: "
            f"{row.arm} trained faster; median over replicate pairs, a timing on this host, not a property of the "
            "precision).")
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per replicate: one fine-tuned model per arm (fp32 and each `study.precision.arms`); where the run folder
    holds stored cells, how many it reuses (`with_reuse`)."""
    arms = [arm for arm, _, _ in precision_arms(config)]
    return with_reuse(plan_cells("precision", arms, config, {"fine-tuned": len(arms)}), config, planned_cells)


register_study("precision", PrecisionParams, uses_split_seeds=True, plan=plan)
