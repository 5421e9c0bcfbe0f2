"""Studies of other data: each trains small models over seeds and scores them per domain on untouched test rows.

Hands on tidy result tables (one row per trained cell), aggregated tables with intervals, and a reading written
from the numbers; everything lands under the run folder's studies/ and in metrics.json.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from datasets import Dataset, DatasetDict

from .config import Config
from .io import atomic_write_text


@dataclass
class CellScore:
    """One trained model scored on the test rows."""

    accuracy: float
    macro_f1: float
    per_domain: dict[str, dict[str, float]]
    n_train: int
    train_seconds: float


def fit_and_score(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                  label_names: list[str]) -> CellScore:
    """Train one model on `train_rows` (validation drives best-checkpoint choice), score it per domain on test."""
    from . import metrics, modeling, train

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
    per_domain = metrics.per_domain_metrics(predictions.labels, predictions.predicted, test_rows["domain"],
                                            label_names)
    return CellScore(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"],
                     per_domain=per_domain["per_domain"], n_train=len(train_rows), train_seconds=seconds)


def cell_config(config: Config, seed: int) -> Config:
    """A study cell trains quietly without keeping checkpoints: only its scores are kept."""
    return config.replace(seed=seed, save_strategy="no", resume_from_checkpoint=None, report_to="none", quiet=True)


def domain_rows(split: Dataset, domain: str) -> Dataset:
    return split.filter(lambda batch: [d == domain for d in batch["domain"]], batched=True)


def _seeded_cap(rows: Dataset, limit: Optional[int], seed: int) -> Dataset:
    if limit is None or len(rows) <= limit:
        return rows
    return rows.shuffle(seed=seed).select(range(limit))


# --- transfer matrix ------------------------------------------------------------------------------------------------

@dataclass
class TransferResult:
    cells: pd.DataFrame  # one row per (seed, train domain, test domain)
    matrix: pd.DataFrame  # mean accuracy: rows = train domain, columns = test domain
    spread: pd.DataFrame  # std over seeds (NaN with one seed)
    loss: pd.DataFrame  # in-domain accuracy of the test domain minus the cross-domain accuracy
    reading: str


# Blitzer et al. (2007): electronics and kitchen transfer well to each other; books and dvd transfer poorly to
# (and from) electronics and kitchen.
KNOWN_CLOSE_PAIRS = {("electronics", "kitchen_&_housewares"), ("kitchen_&_housewares", "electronics")}
KNOWN_FAR_PAIRS = {(a, b) for a in ("books", "dvd") for b in ("electronics", "kitchen_&_housewares")}
KNOWN_FAR_PAIRS |= {(b, a) for a, b in KNOWN_FAR_PAIRS}


def transfer_matrix(config: Config, domains: Optional[list[str]] = None) -> TransferResult:
    """Train on each domain alone (same budget for every domain, each seed) and test on every domain."""
    from . import metrics, pipeline

    prepared = pipeline.load_prepared(config)
    names = prepared["train"].features["label"].names
    available = sorted(set(prepared["train"]["domain"]))
    domains = domains or available
    missing = sorted(set(domains) - set(available))
    if missing:
        raise ValueError(f"transfer_matrix: domains {missing} are not in the training data (have {available})")
    train_by_domain = {d: domain_rows(prepared["train"], d) for d in domains}
    validation_by_domain = {d: domain_rows(prepared["validation"], d) for d in domains}
    test = prepared["test"].filter(lambda batch: [d in domains for d in batch["domain"]], batched=True)
    # Equal budgets, so a domain does not look better for having more rows.
    budget = min(len(rows) for rows in train_by_domain.values())
    if config.max_train_samples:
        budget = min(budget, config.max_train_samples)

    rows = []
    for seed in config.seeds:
        for source in domains:
            cell = cell_config(config, seed)
            score = fit_and_score(cell, _seeded_cap(train_by_domain[source], budget, seed),
                                  validation_by_domain[source], test, names)
            for target, result in score.per_domain.items():
                rows.append({"seed": seed, "train_domain": source, "test_domain": target, "n_train": score.n_train,
                             "n_test": result["n"], "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                             "train_seconds": score.train_seconds})
    cells = pd.DataFrame(rows)
    matrix = cells.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="mean")
    spread = cells.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="std")
    matrix, spread = matrix.loc[domains, domains], spread.reindex(index=domains, columns=domains)
    in_domain = pd.Series({d: matrix.loc[d, d] for d in domains})
    loss = matrix.rsub(in_domain, axis="columns")  # loss[s, t] = in_domain[t] - matrix[s, t]
    result = TransferResult(cells=cells, matrix=matrix, spread=spread, loss=loss,
                            reading=_transfer_reading(matrix, spread, loss, cells, budget))
    _save_transfer(config, result, budget)
    return result


def _transfer_reading(matrix: pd.DataFrame, spread: pd.DataFrame, loss: pd.DataFrame, cells: pd.DataFrame,
                      budget: int) -> str:
    domains = list(matrix.index)
    seeds = sorted(cells["seed"].unique())
    off = [(s, t) for s in domains for t in domains if s != t]
    if not off:
        return f"One domain only ({domains[0]}): there is no transfer to measure."
    in_mean = sum(matrix.loc[d, d] for d in domains) / len(domains)
    cross_mean = sum(matrix.loc[s, t] for s, t in off) / len(off)
    best = min(off, key=lambda pair: loss.loc[pair])
    worst = max(off, key=lambda pair: loss.loc[pair])
    noise = spread.stack().dropna()
    typical_sd = float(noise.median()) if len(noise) else None
    lines = [
        f"Each model trained on {budget} rows of one domain, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}).",
        f"Mean in-domain accuracy {in_mean:.3f}; mean cross-domain accuracy {cross_mean:.3f} "
        f"(transfer costs {in_mean - cross_mean:+.3f} on average).",
        f"Best transfer: {best[0]} → {best[1]} (loss {loss.loc[best]:+.3f}); worst: {worst[0]} → {worst[1]} "
        f"(loss {loss.loc[worst]:+.3f}).",
    ]
    if typical_sd is not None:
        lines.append(f"The median seed-to-seed standard deviation of a cell is {typical_sd:.3f}: differences "
                     f"between cells smaller than about {2 * typical_sd:.3f} are inside the seed noise.")
    else:
        lines.append("With one seed there is no estimate of seed noise: treat differences under a few points as "
                     "unresolved.")
    close = [pair for pair in off if pair in KNOWN_CLOSE_PAIRS]
    far = [pair for pair in off if pair in KNOWN_FAR_PAIRS]
    if close and far:
        close_loss = sum(loss.loc[p] for p in close) / len(close)
        far_loss = sum(loss.loc[p] for p in far) / len(far)
        agrees = "agrees with" if close_loss < far_loss else "does not reproduce"
        lines.append(f"Blitzer et al. (2007) found electronics ↔ kitchen transfer well and books/dvd ↔ "
                     f"electronics/kitchen poorly: here the close pairs lose {close_loss:+.3f} and the far pairs "
                     f"{far_loss:+.3f}, which {agrees} that pattern.")
    return "\n".join(lines)


def _save_transfer(config: Config, result: TransferResult, budget: int) -> None:
    from . import pipeline

    folder = pipeline.run_paths(config).root / "studies" / "transfer_matrix"
    atomic_write_text(folder / "cells.csv", result.cells.to_csv(index=False))
    atomic_write_text(folder / "matrix.csv", result.matrix.to_csv())
    pipeline.update_study(config, "transfer_matrix", {
        "budget_per_domain": budget,
        "seeds": list(config.seeds),
        "matrix": result.matrix.round(4).to_dict(),
        "table_markdown": _markdown(result.matrix, result.spread),
        "reading": result.reading,
    })


def _markdown(mean: pd.DataFrame, spread: pd.DataFrame) -> str:
    header = "| train ↓ / test → | " + " | ".join(mean.columns) + " |"
    lines = [header, "|---|" + "---:|" * len(mean.columns)]
    for source in mean.index:
        cells = []
        for target in mean.columns:
            value, sd = mean.loc[source, target], spread.loc[source, target]
            text = f"{value:.3f}" + (f" ± {sd:.3f}" if pd.notna(sd) else "")
            cells.append(f"**{text}**" if source == target else text)
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
