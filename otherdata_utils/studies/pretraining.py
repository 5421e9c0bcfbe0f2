"""The continued-pretraining study: no MLM pretraining against TAPT and DAPT before fine-tuning on the same rows.

Hands on the arms, each arm's unlabelled pretraining texts and the study's `StudyResult` (MLM runs as an extra table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd
from datasets import Dataset, DatasetDict

from .. import plots, runs
from ..config import Config
from ..study_registry import StudyParams, register_study
from ..pretrain import continue_pretraining, pretrained_model_config, unlabelled_texts
from .engine import (Cell, StudyPlan, StudyResult, compare_arms, finish, fine_tune_cell, plan_cells, prepared_data,
                     run_cells, seeds, study_design, summarize, target_domain)
from .reuse import PlannedCells, with_reuse
from .sampling import balanced_order, column, domain_rows, take
from .tables import arm_table, comparison_lines


class PretrainingParams(StudyParams):
    """`study.pretraining`: no parameters of its own (pretrain_* are run parameters 03_finetune
    shares); the block names the study."""


def pretraining_arms(config: Config, target: str) -> list[str]:
    """"none" (fine-tune the checkpoint as it is), "tapt" (MLM on the target's training texts), and "dapt" (MLM on
    `pretrain_domains`' training texts) when other domains are named."""
    if target in config.pretrain_domains:
        raise ValueError(f"pretrain_domains {config.pretrain_domains} holds the target {target!r}: DAPT is other-"
                         "domain text, and the tapt arm already pretrains on the target; name other domains only")
    return ["none", "tapt"] + (["dapt"] if config.pretrain_domains else [])


def pretraining_texts(config: Config, prepared: DatasetDict, arm: str, target: str, seed: int) -> list[str]:
    """Unlabelled training texts for a continued-pretraining arm: the target's (tapt) or `pretrain_domains`' (dapt),
    a seeded sample of `pretrain_max_texts`; validation and test text never (pretrain.unlabelled_texts refuses)."""
    domains = {"tapt": [target], "dapt": list(config.pretrain_domains)}[arm]
    return unlabelled_texts(prepared, domains=domains, splits=("train",), limit=config.pretrain_max_texts, seed=seed)


def pretrain_and_fine_tune(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                           label_names: list[str], work_dir: Path, *, texts: Dataset, headline: Optional[str],
                           domains: str) -> dict[str, Any]:
    """A pretraining arm's cell fit: `pretrain_steps` of MLM on `texts` into the cell's work folder, then fine-tuning
    from the adapted encoder (`fine_tune_cell`). The pretraining facts lead the measured columns; `pretraining`
    holds the study's pretraining table row."""
    result = continue_pretraining(config, list(texts["text"]), output_dir=Path(work_dir) / "model",
                                  max_steps=config.pretrain_steps, learning_rate=config.pretrain_learning_rate,
                                  batch_size=config.per_device_train_batch_size,
                                  mlm_probability=config.mlm_probability, seed=config.seed)
    facts = {"pretrain_texts": result.train_texts, "pretrain_seconds": round(result.seconds, 2),
             "heldout_loss_before": result.heldout_loss_before, "heldout_loss_after": result.heldout_loss_after}
    measured = fine_tune_cell(pretrained_model_config(config, result), train_rows, validation_rows, test_rows,
                              label_names, Path(work_dir) / "fine_tune", headline=headline)
    return {**facts, **measured, "pretraining": {
        "domains": domains, "heldout_texts": result.heldout_texts, "steps": result.steps,
        "examples_seen": result.examples_seen, "head_initialised_fresh": result.head_initialised_fresh, **facts}}


def continued_pretraining_study(config: Config) -> StudyResult:
    """Does masked-language-model pretraining on unlabelled text before fine-tuning help? No continued pretraining
    against TAPT (the target's own training texts) and DAPT (other domains' training texts), `pretrain_steps` each,
    over seeds (each seed pretrains afresh); every arm then fine-tunes on the same target rows and is measured on
    the target's test rows. The extra table "pretraining" holds each MLM run (texts, steps, held-out loss)."""
    if config.pretrain_steps < 1:
        raise ValueError("continued_pretraining_study needs pretrain_steps ≥ 1 (MLM steps per pretraining arm); "
                         f"got {config.pretrain_steps}")
    planned = planned_cells(config)
    target, test = planned.headline, planned.test
    arms = pretraining_arms(config, target)
    budget = len(planned.cells[0].train)  # every arm of every seed fine-tunes on as many target rows
    results = run_cells(config, planned.cells, test, planned.label_names, headline=target,
                        desc="continued pretraining")
    pretrained = [{"seed": seed, "arm": arm, **record} for seed, arm, record in
                  zip(results["seed"], results["arm"], results.pop("pretraining")) if isinstance(record, dict)]
    pretraining = pd.DataFrame(pretrained)
    also = ["pretrain_seconds", "heldout_loss_before", "heldout_loss_after"] if len(pretraining) else []
    summary = summarize(results, ["arm"], also=["n_test", *also])
    comparisons = compare_arms(results, "none")
    figure = plots.plot_arms(summary, title=f"Continued pretraining before fine-tuning on {target}",
                             xlabel=f"{target} test accuracy (mean, 95% CI)",
                             path=runs.run_folder(config).figure("continued_pretraining"))
    design = study_design(config, {"continued MLM pretraining before fine-tuning": (
        f"none, TAPT on {target} training texts"
        + (f", DAPT on {', '.join(config.pretrain_domains)} training texts" if "dapt" in arms else ""))},
        "the model's initialisation, batch order, the target rows drawn and the pretraining (each seed pretrains "
        "afresh)",
        {"target_domain": target, "target rows": f"{budget}, the same in every arm of a seed",
         "pretraining": f"{config.pretrain_steps} steps of {config.per_device_train_batch_size} texts at lr "
                        f"{config.pretrain_learning_rate}"})
    table = arm_table(summary, comparisons, target, {"n_test": ("test rows", ".0f"), **{
        name: (title, ".2f") for name, title in (("pretrain_seconds", "pretraining s"),
                                                  ("heldout_loss_before", "held-out MLM loss before"),
                                                  ("heldout_loss_after", "after"))
        if name in summary}})
    reading = "\n".join(_pretraining_reading(config, summary, comparisons, pretraining, budget, len(test), target))
    return finish(config, "continued_pretraining", results, summary, comparisons, design, table, reading, figure,
                  extra={"pretraining": pretraining},
                  record={"arms": arms, "target": target, "pretrain_steps": config.pretrain_steps})


def _pretraining_reading(config: Config, summary: pd.DataFrame, comparisons: pd.DataFrame,
                         pretraining: pd.DataFrame, budget: int, n_test: int, target: str) -> list[str]:
    lines = [f"Every arm fine-tunes on the same {budget} {target} rows per seed and is scored on {n_test} {target} "
             "test rows."]
    for arm, done in pretraining.groupby("arm", sort=False):
        passes = done["examples_seen"].mean() / done["pretrain_texts"].mean()
        lines.append(f"{arm}: {int(done['pretrain_texts'].mean())} training texts of {done['domains'].iloc[0]}, "
                     f"{int(done['steps'].mean())} steps ({passes:.1f} passes), {done['pretrain_seconds'].mean():.0f} "
                     f"s; held-out MLM loss {done['heldout_loss_before'].mean():.2f} → "
                     f"{done['heldout_loss_after'].mean():.2f}.")
    if len(pretraining) and pretraining["head_initialised_fresh"].any():
        lines.append(f"`{config.model_name_or_path}` has no MLM head in its checkpoint: the head starts random (the "
                     "'before' loss is a random head's), the first steps mostly train it, and the encoder meanwhile "
                     "learns through a half-trained head. A fall in held-out loss therefore says first that the head "
                     "learnt, not that the encoder adapted; the real DAPT setting is a checkpoint with a trained head "
                     "(bert-base-uncased, roberta-base).")
    lines.append(f"Scale: {config.pretrain_steps} steps of {config.per_device_train_batch_size} texts; Gururangan "
                 "et al. (2020) ran DAPT for 12.5k steps of 2,048 sequences, so this checks the method and its code "
                 "path at a size that runs here, not their result.")
    return lines + comparison_lines(summary, comparisons, "none")


def planned_cells(config: Config) -> PlannedCells:
    """Per seed, the same target rows (`max_train_samples` of them, seeded) for every arm: "none" fine-tunes them
    as they are, each pretraining arm runs its MLM step inside its cell (`pretrain_and_fine_tune`) first; the
    target's validation rows; scored on the target's test rows."""
    prepared, names = prepared_data(config)
    target = target_domain(config, prepared, "continued_pretraining_study")
    arms = pretraining_arms(config, target)
    pool = domain_rows(prepared["train"], target)
    validation, test = domain_rows(prepared["validation"], target), domain_rows(prepared["test"], target)
    budget = min(config.max_train_samples or len(pool), len(pool))
    cells = []
    for seed in seeds(config):
        # The same rows for every arm of a seed: arms differ only in the encoder they start from.
        train_rows = take(pool, balanced_order(column(pool, "label"), seed)[:budget],
                          f"pretraining study {budget} {seed}")
        cells.append(Cell(arm="none", seed=seed, train=train_rows, validation=validation))
        cells += [Cell(arm=arm, seed=seed, train=train_rows, validation=validation, fit=pretrain_and_fine_tune,
                       arguments={"texts": Dataset.from_dict({"text": pretraining_texts(config, prepared, arm, target,
                                                                                        seed)}),
                                  "headline": target,
                                  "domains": ", ".join([target] if arm == "tapt" else config.pretrain_domains)})
                  for arm in arms if arm != "none"]
    return PlannedCells(cells, test, names, headline=target,
                        note="an arm's MLM pretraining runs inside its cell: a stored cell reuses it too")


def plan(config: Config) -> StudyPlan:
    """Per seed: one fine-tuned model per arm, each pretraining arm after its own MLM run; where the run folder
    holds stored cells, how many it reuses (`with_reuse`: the MLM runs count with their cells)."""
    arms = pretraining_arms(config, config.target_domain)
    return with_reuse(plan_cells("pretraining", arms, config, {"fine-tuned": len(arms)},
                                 {"MLM pretraining": len(arms) - 1}), config, planned_cells)


register_study("pretraining", PretrainingParams, uses_split_seeds=False, plan=plan)  # each seed draws its rows
