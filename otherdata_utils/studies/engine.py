"""The machine every study runs: cells (an arm, a seed, rows) trained and scored, seed summaries, arm comparisons.

Hands each study module `run_cells`, `summarize`, `compare_arms`, `study_design`, `finish` / `save_study` and results.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd
from datasets import Dataset, DatasetDict
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .. import clean, data, metrics, modeling, pipeline, runs, train
from ..config import Config
from ..io import atomic_write_text
from .sampling import column
from .tables import design_markdown, records


@dataclass
class CellScore:
    """One trained model scored on the test rows; `per_domain` holds the test rows' groups (domains by default)."""

    accuracy: float
    macro_f1: float
    per_domain: dict[str, dict[str, float]]
    n_train: int
    train_seconds: float


def fit_and_score(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                  label_names: list[str], *, groups: Optional[Sequence[str]] = None) -> CellScore:
    """Train one model on `train_rows` (validation drives best-checkpoint choice), score it per group on test.

    `groups` gives one group name per test row (e.g. an agreement level); without it the groups are the domains.
    """
    workdir = Path(tempfile.mkdtemp(prefix="otherdata-cell-"))
    try:
        model, tokenizer = modeling.load_model_and_tokenizer(config, label_names)
        tokenized = modeling.tokenize_splits(
            DatasetDict(train=train_rows, validation=validation_rows, test=test_rows), tokenizer, config)
        started = time.perf_counter()
        train.train(config, model, tokenizer, tokenized, output_dir=workdir, label_names=label_names)
        seconds = time.perf_counter() - started
        scores, predictions = train.evaluate(model, tokenized["test"], tokenizer, config, label_names)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per_group = metrics.per_domain_metrics(predictions.labels, predictions.predicted,
                                           column(test_rows, "domain") if groups is None else list(groups),
                                           label_names)
    return CellScore(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"],
                     per_domain=per_group["per_domain"], n_train=len(train_rows), train_seconds=seconds)


def cell_config(config: Config, seed: int) -> Config:
    """A study cell trains quietly without keeping checkpoints: only its scores are kept."""
    return config.replace(seed=seed, save_strategy="no", resume_from_checkpoint=None, report_to="none", quiet=True)


# --- running cells, aggregating, comparing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One model to train: its arm, its seed, its rows, and the facts that describe it in the tables."""

    arm: str
    seed: int
    train: Dataset
    validation: Dataset
    facts: dict[str, Any] = field(default_factory=dict)


def run_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
              headline: Optional[str] = None, groups: Optional[Sequence[str]] = None,
              desc: str = "cells") -> pd.DataFrame:
    """Train and score every cell; one row per trained model.

    `accuracy` and `macro_f1` are measured on the `headline` group's test rows (all test rows when None);
    `accuracy_all` on every test row, `accuracy_<group>` on each group's (domains, or `groups`).
    """
    rows = []
    for cell in tqdm(cells, desc=desc, disable=config.quiet):
        score = fit_and_score(cell_config(config, cell.seed), cell.train, cell.validation, test, label_names,
                              groups=groups)
        if headline is not None and headline not in score.per_domain:
            raise ValueError(f"no test rows in group {headline!r} to measure the study on; test groups: "
                             f"{sorted(score.per_domain)}")
        head = score.per_domain[headline] if headline is not None else {
            "accuracy": score.accuracy, "macro_f1": score.macro_f1, "n": len(test)}
        rows.append({
            "seed": cell.seed, "arm": cell.arm, **cell.facts, "n_train": score.n_train,
            "accuracy": head["accuracy"], "macro_f1": head["macro_f1"], "n_test": head["n"],
            "accuracy_all": score.accuracy, "macro_f1_all": score.macro_f1,
            **{f"accuracy_{group}": result["accuracy"] for group, result in score.per_domain.items()},
            "train_seconds": round(score.train_seconds, 2),
        })
    return pd.DataFrame(rows)


def summarize(cells: pd.DataFrame, by: Sequence[str], metric: str = "accuracy",
              also: Sequence[str] = ()) -> pd.DataFrame:
    """Per group of `by`: `metric`'s mean, std, 95% interval and seed count (metrics.seed_summary), in first-seen
    order, with the mean training rows and the means of the `also` columns."""
    # Scores live in [0, 1] and their intervals are clipped there; a transfer loss (a difference of two) is not.
    bounds = (0.0, 1.0) if metric == "macro_f1" or metric.startswith("accuracy") else None
    rows = []
    for key, group in cells.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        stats = metrics.seed_summary(group[metric].tolist(), bounds=bounds)
        rows.append({**dict(zip(by, key)), "n_train": round(float(group["n_train"].mean()), 1),
                     **{name: stats[name] for name in ("mean", "std", "ci_low", "ci_high", "n")},
                     **{name: float(group[name].mean()) for name in also}})
    return pd.DataFrame(rows)


def compare_arms(cells: pd.DataFrame, reference: str, *, within: Sequence[str] = (),
                 metric: str = "accuracy") -> pd.DataFrame:
    """Each arm against `reference` (within each value of `within`): difference of means and whether it is beyond
    the seed noise (metrics.differs_beyond_noise, Welch's t over seeds)."""
    rows = []
    groups = cells.groupby(list(within), sort=False) if within else [((), cells)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        baseline = group.loc[group["arm"] == reference, metric].tolist()
        if not baseline:
            continue
        for arm, scores in group.groupby("arm", sort=False):
            if arm == reference:
                continue
            test = metrics.differs_beyond_noise(scores[metric].tolist(), baseline)
            rows.append({**dict(zip(within, key)), "arm": arm, "reference": reference,
                         "difference": test["difference"], "p_value": test["p_value"],
                         "beyond_noise": test["beyond_noise"], "seeds": min(test["a"]["n"], test["b"]["n"])})
    columns = [*within, "arm", "reference", "difference", "p_value", "beyond_noise", "seeds"]
    return pd.DataFrame(rows, columns=columns)


def reported_groups(cells: pd.DataFrame, headline: Optional[str]) -> list[str]:
    """The per-group accuracy columns worth a table column: every group but the headline, when there are few."""
    groups = [name.removeprefix("accuracy_") for name in cells.columns
              if name.startswith("accuracy_") and name != "accuracy_all"]
    others = [group for group in groups if group != headline]
    return others if len(others) <= 5 else []


# --- results and what is written ---------------------------------------------------------------------------------

@dataclass
class StudyResult:
    """A finished study: per-model cells, the seed summary, arm-vs-reference comparisons and what was written."""

    name: str
    cells: pd.DataFrame  # one row per trained model
    summary: pd.DataFrame  # per arm (and x): mean, std, ci_low, ci_high, n seeds
    comparisons: pd.DataFrame  # per arm: difference to the reference arm, p, beyond_noise
    design: dict[str, Any]  # scientific, nuisance and fixed parameters, seeds
    table_markdown: str
    reading: str
    figure: Figure
    folder: Path  # runs/<name>/studies/<study>/


@dataclass
class AdaptationResult:
    """A finished model-side study (language, continued pretraining, PEFT): one row per trained model, the seed
    summary per arm, each arm against the reference arm, the table and reading written, the figure and folder."""

    name: str
    cells: pd.DataFrame
    summary: pd.DataFrame  # per arm: mean, std, ci_low, ci_high, n (seeds) of the headline accuracy, and means
    comparisons: pd.DataFrame  # per arm: difference to the reference arm, p (Welch), beyond_noise
    table_markdown: str
    reading: str
    figure: Figure
    folder: Path  # runs/<name>/studies/<study>/


def study_design(config: Config, scientific: dict[str, Any], seed_varies: str, fixed: dict[str, Any]) -> dict[str, Any]:
    """The study's parameters in the tuning playbook's terms; every cell shares the fixed ones and the training
    settings, which are not re-tuned per arm (a caveat for arms whose best learning rate may differ)."""
    training = {name: getattr(config, name) for name in (
        "model_name_or_path", "max_seq_length", "truncation", "learning_rate", "num_train_epochs",
        "per_device_train_batch_size", "eval_strategy", "max_train_samples")}
    return {"scientific": scientific, "nuisance": f"not tuned per arm; the seed varies {seed_varies}",
            "fixed": {**training, **fixed}, "seeds": list(config.seeds)}


def save_study(config: Config, name: str, frames: dict[str, pd.DataFrame], record: dict[str, Any]) -> Path:
    """CSV tables under studies/<name>/ (atomic writes) and the study's entry in metrics.json."""
    folder = runs.run_folder(config).study(name)
    for file_name, frame in frames.items():
        atomic_write_text(folder / f"{file_name}.csv", frame.to_csv(index=False))
    pipeline.update_study(config, name, record)
    return folder


def finish(config: Config, name: str, cells: pd.DataFrame, summary: pd.DataFrame, comparisons: pd.DataFrame,
           design: dict[str, Any], table: str, reading: str, figure: Figure) -> StudyResult:
    """The design paragraph above `table`, the study saved (`save_study`), and its `StudyResult`."""
    reference = comparisons["reference"].iloc[0] if len(comparisons) else None
    table_markdown = design_markdown(design, reference) + "\n\n" + table
    folder = save_study(config, name, {"cells": cells, "summary": summary, "comparisons": comparisons}, {
        **design,
        "summary": records(summary),
        "comparisons": records(comparisons),
        "table_markdown": table_markdown,
        "reading": reading,
    })
    return StudyResult(name=name, cells=cells, summary=summary, comparisons=comparisons, design=design,
                       table_markdown=table_markdown, reading=reading, figure=figure, folder=folder)


# --- a study's data ---------------------------------------------------------------------------------------------------

def prepared_data(config: Config) -> tuple[DatasetDict, list[str]]:
    """The run folder's prepared splits (`pipeline.load_prepared`) and their label names."""
    prepared = pipeline.load_prepared(config)
    return prepared, list(prepared["train"].features["label"].names)


def target_domain(config: Config, prepared: DatasetDict, study: str) -> str:
    """`config.target_domain`, checked to be a domain of the training rows."""
    target = config.target_domain
    present = sorted(set(column(prepared["train"], "domain")))
    if target is None or target not in present:
        raise ValueError(f"{study} needs target_domain set to a domain of the training data ({present}); "
                         f"got {target!r}")
    return target


def clean_data(config: Config, **changes: Any) -> DatasetDict:
    """The config's data with some settings changed (other sources, no caps), loaded and cleaned afresh."""
    own = config.replace(**changes)
    cleaned, _ = clean.clean(data.load_data(own), own)
    return cleaned
