"""The head study: which pooling should the packaged encoder's classifier read, `[CLS]` (`pooling: cls`, the
reference) or the encoder's own sentence-transformers mean (`pooling: mean`)? Arms differ only in `pooling`; every arm
of a replicate trains on the same target rows, at k = `study.head.k_values` rows per class (null: all of them).

VALIDATION ONLY: every cell is scored on the target's validation rows (passed to `run_cells` where other studies
pass test rows); the test split is never read, so the choice spends no test data. Takes the run folder's prepared
splits; hands on the plan, the cells, per (k, arm) mean validation accuracy and macro-F1, the paired comparisons of
mean against cls per k (paired t with Holm, and the two-level bootstrap over replicates and validation rows), and the
target's side of the choice under `RULE`, fixed before any run (`pooling_choice` joins both targets' sides).
"""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import pandas as pd
from datasets import Dataset, DatasetDict
from pydantic import Field, field_validator

from .. import plots, runs
from ..config import Config
from ..study_registry import StudyParams, distinct_values, register_study, study_params
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, compare_rows, finish, plan_cells, prepared_data,
                     replicates, rows_fingerprint, run_cells, study_design, summarize)
from .reuse import PlannedCells, with_reuse
from .sampling import domain_rows, seeded_cap
from .setting_arms import arm_cells, k_shot_cells, setting_arms, target_validation_rows
from .tables import number, number_signed, results_markdown

REFERENCE = "cls"  # the classifier's pooler over [CLS], AutoModelForSequenceClassification's head
ARMS = (("cls", "cls"), ("mean", "mean"))  # (arm, pooling)
RULE = ("mean becomes the default pooling if its validation accuracy, averaged over the k values and then over both "
        "targets (each target weighing alike), is ≥ cls's; ties go to mean, the pooling the encoder was trained with")


class HeadParams(StudyParams):
    """`study.head`: the k values (target rows per class; null = every target training row, no other data) and the
    cap on the rows at k = all."""

    k_values: list[Optional[int]] = Field(default_factory=lambda: [8, 32, None], min_length=1)
    # at k = all: at most this many target training rows, a seeded sample per split seed (null = every one)
    max_all_rows: Optional[int] = Field(None, ge=2)

    @field_validator("k_values")
    @classmethod
    def _k_values(cls, value: list) -> list:
        return distinct_values(value, "≥ 1 or null (all target rows)", lambda v: v is None or v >= 1)


def head_params(config: Config) -> HeadParams:
    return study_params(config, "head", HeadParams)


def head_arms(config: Config) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, the cell config, facts) for cls then mean: the config with only `pooling` changed."""
    return setting_arms(config, "pooling", ARMS)


def k_label(k: Optional[int]) -> str:
    return "all" if k is None else str(k)


def all_target_cells(config: Config, prepared: DatasetDict, validation: Dataset) -> list[Cell]:
    """One cell per (split seed, seed) on the target's training rows alone, each once (`study.head.max_all_rows`
    caps them, drawn with the split seed): the head on the target with no other data."""
    target, cap = config.target_domain, head_params(config).max_all_rows
    every = domain_rows(prepared["train"], target, config.mix_by)
    classes = len(prepared["train"].features["label"].names)
    cells = []
    for split, seed in replicates(config):
        rows = seeded_cap(every, cap, split)
        facts = {"k_label": "all", "k": round(len(every) / classes), "target_unique": len(rows),
                 "target_ids": rows_fingerprint(rows), "target_rows": len(rows), "other_rows": 0}
        cells.append(Cell(arm=REFERENCE, seed=seed, train=rows, validation=validation, facts=facts, split_seed=split))
    return cells


def replicate_cells(config: Config, prepared: DatasetDict) -> tuple[list[Cell], Dataset, list[str]]:
    """Per k, one cell per (split seed, seed) holding the rows both arms train on; the target's validation rows every
    cell is scored on; the rows at each k, in words. Reads the train and validation splits only, never test."""
    target, validation = target_validation_rows(config, prepared, "study.head")
    cells, texts = [], []
    for k in head_params(config).k_values:
        if k is None:
            cap = head_params(config).max_all_rows
            cells += all_target_cells(config, prepared, validation)
            texts.append(f"all: every {target} training row once, no other data"
                         + (f" (at most {cap}, drawn per split seed)" if cap else ""))
        else:
            drawn, _, text = k_shot_cells(config, prepared, k, REFERENCE, "study.head")
            cells += drawn
            texts.append(f"{k}: {text}")
    return cells, validation, texts


def head_cells(config: Config, base: Sequence[Cell]) -> list[Cell]:
    """Every replicate's cell once per pooling, fine-tuned and scored as every study cell is."""
    return arm_cells(base, head_arms(config))


def planned_cells(config: Config) -> PlannedCells:
    """Every cell of the study on the run folder's prepared data, as `run_cells` gets them (what a plan counts)."""
    prepared, names = prepared_data(config)
    base, validation, _ = replicate_cells(config, prepared)
    return PlannedCells(head_cells(config, base), validation, names)


# --- comparisons and the choice ---------------------------------------------------------------------------------------

def head_comparisons(cells: pd.DataFrame) -> pd.DataFrame:
    """mean against cls per k: `compare_arms` (paired t over replicates, Holm over the k values, MDE, verdict) with the
    two-level bootstrap 95% interval over replicates and validation rows (`compare_rows`: boot_low, boot_high)."""
    paired = compare_arms(cells, REFERENCE, within=["k_label"])
    boot = compare_rows(cells, REFERENCE, within=["k_label"])[["k_label", "arm", "ci_low", "ci_high",
                                                                "interval_covers", "n_rows"]]
    boot = boot.rename(columns={"ci_low": "boot_low", "ci_high": "boot_high", "interval_covers": "boot_covers"})
    # the engine names the rows it scored "test rows"; here they are the target's validation rows
    boot["boot_covers"] = boot["boot_covers"].str.replace("test rows", "validation rows")
    return paired.merge(boot, on=["k_label", "arm"], how="left")


def target_side(summary: pd.DataFrame) -> dict[str, Any]:
    """This target's side of `RULE`: mean's validation accuracy minus cls's per k, and their average over k."""
    means = summary.pivot(index="k_label", columns="arm", values="mean")
    by_k = {str(k): float(means.loc[k, "mean"] - means.loc[k, REFERENCE]) for k in summary["k_label"].unique()}
    return {"mean_minus_cls_by_k": by_k, "mean_minus_cls": sum(by_k.values()) / len(by_k)}


def pooling_choice(sides: dict[str, float]) -> dict[str, Any]:
    """`RULE` applied to each target's average validation Δ (mean − cls, averaged over k): the default pooling."""
    if not sides:
        raise ValueError("pooling_choice needs at least one target's recorded head study")
    average = sum(sides.values()) / len(sides)
    return {"rule": RULE, "targets": dict(sides), "mean_minus_cls": average,
            "choice": "mean" if average >= 0 else "cls"}


def recorded_choice(configs: Sequence[Config]) -> dict[str, Any]:
    """`pooling_choice` over the head studies recorded in each config's run folder (metrics.json), one per target."""
    sides = {}
    for config in configs:
        path = runs.run_folder(config).metrics
        entry = json.loads(path.read_text()).get("studies", {}).get("head") if path.is_file() else None
        if entry is None:
            raise ValueError(f"{path}: no head study recorded for run {config.run_name!r}; run it first")
        sides[entry["target"]] = entry["mean_minus_cls"]
    return pooling_choice(sides)


def head_study(config: Config) -> StudyResult:
    """cls against mean pooling on the same target rows per (k, split seed, seed), scored on the target's validation
    rows only: per (k, arm) mean validation accuracy and macro-F1, mean − cls per k, and this target's side of
    `RULE`."""
    prepared, names = prepared_data(config)
    base, validation, texts = replicate_cells(config, prepared)
    cells = run_cells(config, head_cells(config, base), validation, names, desc="head")
    if set(cells["test_rows"]) != {rows_fingerprint(validation)}:
        raise RuntimeError("head study: a cell was scored on other rows than the target's validation rows")
    summary = summarize(cells, ["k_label", "arm"], also=["macro_f1"])
    comparisons = head_comparisons(cells)
    side = target_side(summary)
    choice = pooling_choice({config.target_domain: side["mean_minus_cls"]})
    design = study_design(
        config, {"pooling": dict(ARMS), "k per class": [k_label(k) for k in head_params(config).k_values]},
        "the model's initialisation and batch order; the split seed draws the training rows",
        {"data": "; ".join(texts), "scored on": f"{len(validation)} {config.target_domain} validation rows; test rows "
                                                "untouched (the test split is not read)",
         "rule": RULE})
    table = "\n\n".join([
        results_markdown(summary, comparisons, {"k_label": "k", "arm": "pooling"}, ["k_label"], [], "validation",
                         test_rows=None),
        bootstrap_markdown(summary, comparisons)])
    shown = summary.assign(arm=summary["arm"] + " · k " + summary["k_label"].astype(str))
    figure = plots.plot_arms(shown, title=f"Classifier pooling on {config.target_domain} (validation rows)",
                             xlabel="validation accuracy (mean, 95% CI)", path=runs.run_folder(config).figure("head"))
    reading = head_reading(config.target_domain, comparisons, side, choice)
    return finish(config, "head", cells, summary, comparisons, design, table, reading, figure,
                  record={"reference": REFERENCE, "target": config.target_domain, "scored_on": "validation",
                          "validation_rows": len(validation), **side, "rule": RULE,
                          "choice_on_this_target": choice["choice"]})


def bootstrap_markdown(summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """Per k: each arm's mean validation accuracy and macro-F1, and mean − cls with its two-level bootstrap interval."""
    header = ["k", "cls accuracy", "mean accuracy", "cls macro-F1", "mean macro-F1",
              "Δ accuracy mean − cls [95% bootstrap CI, replicates + validation rows]", "p_adj (Holm, paired t)"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    indexed = summary.set_index(["k_label", "arm"])
    for row in comparisons.itertuples():
        cls_row, mean_row = indexed.loc[(row.k_label, REFERENCE)], indexed.loc[(row.k_label, row.arm)]
        lines.append("| " + " | ".join([
            str(row.k_label), number(cls_row["mean"]), number(mean_row["mean"]), number(cls_row["macro_f1"]),
            number(mean_row["macro_f1"]),
            f"{number_signed(row.delta)} [{number_signed(row.boot_low)}, {number_signed(row.boot_high)}]",
            number(row.p_holm)]) + " |")
    return "\n".join(lines)


def head_reading(target: str, comparisons: pd.DataFrame, side: dict[str, Any], choice: dict[str, Any]) -> str:
    lines = [f"On {target}'s validation rows (test rows untouched), mean − cls pooling per k:"]
    for row in comparisons.itertuples():
        lines.append(f"k = {row.k_label}: Δ {number_signed(row.delta)} [{number_signed(row.boot_low)}, "
                     f"{number_signed(row.boot_high)}] (95% bootstrap over {row.boot_covers}); {row.verdict}.")
    lines.append(f"Averaged over k: {number_signed(side['mean_minus_cls'])}, so on this target alone the rule picks "
                 f"{choice['choice']}. Rule, fixed before running: {RULE}. The default comes from both targets "
                 "(`head.recorded_choice` over both params files' runs).")
    return "\n\n".join(lines)


def plan(config: Config) -> StudyPlan:
    """Per replicate and k: one fine-tuned model per pooling; where the run folder holds stored cells, how many it
    reuses (`with_reuse`)."""
    ks = len(head_params(config).k_values)
    return with_reuse(plan_cells("head", [arm for arm, _ in ARMS], config, {"fine-tuned": len(ARMS) * ks}), config,
                      planned_cells)


register_study("head", HeadParams, uses_split_seeds=True, plan=plan)
