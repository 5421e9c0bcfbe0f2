"""Studies of other data: each trains small models over seeds and scores them per domain on untouched test rows.

Hands on tidy result tables (one row per trained cell), aggregated tables with intervals, a figure, and a reading
written from the numbers; everything lands under the run folder's studies/ and figures/, and in metrics.json.

Every study is the same machine: build `Cell`s (an arm, a seed, training rows), train and score each with
`fit_and_score` (`run_cells`), aggregate over seeds (`summarize`), compare arms against a reference arm with the
seed noise (`compare_arms`), then write tables, figure and reading (`_finish`). The studies differ only in how
they build their arms:

- `transfer_matrix`: one domain at a time, tested on every domain;
- `few_shot_study`: a k-per-class target plus other domains under each mixing strategy;
- `agreement_study`, `helpfulness_study`, `label_noise_study`: other data of lower quality;
- `time_study`: older vs contemporaneous reviews for a held-out recent test set.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, concatenate_datasets
from matplotlib.figure import Figure

from .config import Config
from .io import atomic_write_text
from . import runs

# Agreement levels are stored as float32 (0.66 reads back as 0.6600000262): compare with a little slack.
_LEVEL_SLACK = 1e-6


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
    per_group = metrics.per_domain_metrics(predictions.labels, predictions.predicted,
                                           _column(test_rows, "domain") if groups is None else list(groups),
                                           label_names)
    return CellScore(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"],
                     per_domain=per_group["per_domain"], n_train=len(train_rows), train_seconds=seconds)


def cell_config(config: Config, seed: int) -> Config:
    """A study cell trains quietly without keeping checkpoints: only its scores are kept."""
    return config.replace(seed=seed, save_strategy="no", resume_from_checkpoint=None, report_to="none", quiet=True)


def domain_rows(split: Dataset, domain: str) -> Dataset:
    """The rows of `split` from one domain, in their order."""
    return _take(split, [row for row, value in enumerate(_column(split, "domain")) if value == domain],
                 f"domain {domain}")


def _column(rows: Dataset, name: str) -> list:
    """A column as a list, read through Arrow (iterating the Dataset goes row by row through the formatter)."""
    return rows.with_format("arrow")[:].column(name).to_pylist()


def _take(rows: Dataset, indices: Sequence[int], step: str) -> Dataset:
    from .clean import take_rows

    return take_rows(rows, list(indices), step)


def _seeded_cap(rows: Dataset, limit: Optional[int], seed: int) -> Dataset:
    if limit is None or len(rows) <= limit:
        return rows
    return rows.shuffle(seed=seed).select(range(limit))


# --- sampling helpers shared by the studies --------------------------------------------------------------------------

def _proportional(sizes: dict[Any, int], total: int) -> dict[Any, int]:
    """`total` split over keys in proportion to `sizes`, summing exactly (largest remainder), never above a size."""
    from .mix import _allocate

    available = sum(sizes.values())
    if total >= available:
        return dict(sizes)
    return _allocate({key: n / available for key, n in sizes.items()}, total)


def _ranked_strata(rows: Dataset, seed: int, columns: Sequence[str] = ("domain", "label"),
                   salt: int = 0) -> dict[tuple, list[int]]:
    """Row indices per stratum (a value of each column), each stratum in a seeded random order."""
    keys = list(zip(*(_column(rows, name) for name in columns)))
    strata: dict[tuple, list[int]] = {}
    for row, key in enumerate(keys):
        strata.setdefault(key, []).append(row)
    rng = np.random.default_rng([seed, salt])
    return {key: [members[i] for i in rng.permutation(len(members))] for key, members in sorted(strata.items())}


def equal_size_arms(pools: dict[str, Dataset], recipes: dict[str, dict[str, float]], *, seed: int,
                    limit: Optional[int] = None) -> dict[str, Dataset]:
    """Training sets that differ only in where their rows come from: equal size, equal (domain, label) make-up.

    In each (domain, label) stratum every arm gets n rows, n being the fewest any pool named in a recipe holds
    there (all strata scaled down together so an arm has at most `limit` rows). A recipe {pool: share} splits
    those n rows between pools. Each pool's rows are ranked once per seed, so arms drawing on the same pool share
    its first rows (the "older" arm's rows start the "mixed" arm's older half): differences between arms are not
    differences between random draws.
    """
    used = sorted({pool for recipe in recipes.values() for pool in recipe})
    unknown = [pool for pool in used if pool not in pools]
    if unknown:
        raise ValueError(f"equal_size_arms: recipes name pools {unknown} that are not given ({sorted(pools)})")
    ranked = {name: _ranked_strata(pools[name], seed, salt=position) for position, name in enumerate(used)}
    strata = sorted(set.intersection(*(set(ranked[name]) for name in used)))
    sizes = {key: min(len(ranked[name][key]) for name in used) for key in strata}
    if sum(sizes.values()) == 0:
        raise ValueError(f"equal_size_arms: pools {used} share no (domain, label) stratum, so no arm gets a row")
    if limit is not None:
        sizes = _proportional(sizes, limit)
    arms = {}
    for arm, recipe in recipes.items():
        taken: dict[str, list[int]] = {name: [] for name in recipe}
        for key, n in sizes.items():
            for name, count in _proportional_shares(recipe, n).items():
                taken[name] += ranked[name][key][:count]
        parts = [_take(pools[name], sorted(rows), f"equal_size_arms {arm} {name} {seed} {limit}")
                 for name, rows in taken.items() if rows]
        arms[arm] = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return arms


def _proportional_shares(shares: dict[str, float], total: int) -> dict[str, int]:
    from .mix import _allocate

    weight = sum(shares.values())
    return _allocate({name: share / weight for name, share in shares.items()}, total)


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
    from tqdm.auto import tqdm

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
    from . import metrics

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
    from . import metrics

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


# --- writing: tables, reading, files ---------------------------------------------------------------------------------

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


def _number(value: Any, digits: int = 3) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _label_text(value: Any) -> str:
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{value:g}"
    return str(value)


def _verdict(beyond_noise: Optional[bool], p_value: Optional[float], seeds: int) -> str:
    """metrics.differs_beyond_noise's answer in words; None means one seed, or two arms constant and equal."""
    if seeds < 2:
        return "unresolved (one seed)"
    if _settled(beyond_noise) is None:
        return "identical on every seed"
    return f"{'beyond' if beyond_noise else 'within'} noise ({_p_text(p_value)})"


def _p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _design(config: Config, scientific: dict[str, Any], seed_varies: str, fixed: dict[str, Any]) -> dict[str, Any]:
    """The study's parameters in the tuning playbook's terms; every cell shares the fixed ones and the training
    settings, which are not re-tuned per arm (a caveat for arms whose best learning rate may differ)."""
    training = {name: getattr(config, name) for name in (
        "model_name_or_path", "max_seq_length", "truncation", "learning_rate", "num_train_epochs",
        "per_device_train_batch_size", "eval_strategy", "max_train_samples")}
    return {"scientific": scientific, "nuisance": f"not tuned per arm; the seed varies {seed_varies}",
            "fixed": {**training, **fixed}, "seeds": list(config.seeds)}


def _design_markdown(design: dict[str, Any], reference: Optional[str] = None) -> str:
    def values(items: dict[str, Any]) -> str:
        return "; ".join(f"{name} = {value}" for name, value in items.items())

    text = (f"*Scientific:* {values(design['scientific'])}. *Fixed:* {values(design['fixed'])}. "
            f"*Seeds:* {', '.join(map(str, design['seeds']))} ({design['nuisance']}). "
            "Intervals: 95% Student-t over seeds, clipped to [0, 1] for accuracies.")
    if reference is not None:
        text += f" \"Beyond noise\": Welch's t-test over seeds against `{reference}`, p < 0.05."
    return text


def _results_markdown(summary: pd.DataFrame, comparisons: pd.DataFrame, labels: dict[str, str],
                      within: Sequence[str], groups: Sequence[str], headline: str) -> str:
    """One line per summary row: its labels (column -> header), rows, mean ± sd, interval, difference to the
    reference, verdict, and the mean accuracy on each extra test group."""
    verdicts = {tuple(row[[*within, "arm"]]): row for _, row in comparisons.iterrows()}
    header = [*labels.values(), "train rows", "seeds", f"{headline} accuracy (mean ± sd)", "95% CI", "Δ vs reference",
              "vs reference", *groups]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(labels) + "---:|" * (len(header) - len(labels))]
    for _, row in summary.iterrows():
        compared = verdicts.get(tuple(row[[*within, "arm"]]))
        cells = [_label_text(row[name]) for name in labels] + [
            f"{row['n_train']:g}", str(row["n"]), f"{_number(row['mean'])} ± {_number(row['std'])}",
            f"{_number(row['ci_low'])}–{_number(row['ci_high'])}",
            "reference" if compared is None else f"{compared['difference']:+.3f}",
            "" if compared is None else _verdict(compared["beyond_noise"], compared["p_value"], compared["seeds"]),
            *(_number(row[f"accuracy_{group}"]) for group in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _comparison_sentence(comparisons: pd.DataFrame) -> str:
    """What the comparisons against one reference say, split by whether each is beyond the seed noise."""
    parts = []
    for label, verdict in (("Beyond seed noise", True), ("Inside seed noise", False)):
        chosen = comparisons[comparisons["beyond_noise"].map(lambda value: _settled(value) is verdict)]
        if len(chosen):
            parts.append(f"{label}: " + ", ".join(
                f"{row.arm} {row.difference:+.3f} ({_p_text(row.p_value)})" for row in chosen.itertuples()) + ".")
    unresolved = comparisons[comparisons["beyond_noise"].isna()]
    for label, chosen in (("With one seed there is no noise estimate, so these are unresolved",
                           unresolved[unresolved["seeds"] < 2]),
                          ("Identical scores on every seed", unresolved[unresolved["seeds"] >= 2])):
        if len(chosen):
            parts.append(f"{label}: " + ", ".join(
                f"{row.arm} {row.difference:+.3f}" for row in chosen.itertuples()) + ".")
    return " ".join(parts)


def _settled(beyond_noise: Any) -> Optional[bool]:
    """A `beyond_noise` cell as True, False or None (a frame may hold numpy booleans or NaN)."""
    return None if beyond_noise is None or pd.isna(beyond_noise) else bool(beyond_noise)


def tally_comparisons(comparisons: pd.DataFrame) -> tuple[int, int, int]:
    """(better beyond noise, worse beyond noise, not resolved) counts over comparisons."""
    beyond = comparisons["beyond_noise"].map(lambda value: _settled(value) is True)
    better = int((beyond & (comparisons["difference"] > 0)).sum())
    worse = int((beyond & (comparisons["difference"] < 0)).sum())
    return better, worse, len(comparisons) - better - worse


def _reference_line(summary: pd.DataFrame, mask: pd.Series, name: str) -> str:
    row = summary[mask].iloc[0]
    interval = (f" (95% CI {_number(row['ci_low'])}–{_number(row['ci_high'])})" if pd.notna(row["ci_low"])
                else "")
    return f"{name} reaches {_number(row['mean'])}{interval}"


def save_study(config: Config, name: str, frames: dict[str, pd.DataFrame], record: dict[str, Any]) -> Path:
    """CSV tables under studies/<name>/ (atomic writes) and the study's entry in metrics.json."""
    from . import pipeline

    folder = runs.run_folder(config).study(name)
    for file_name, frame in frames.items():
        atomic_write_text(folder / f"{file_name}.csv", frame.to_csv(index=False))
    pipeline.update_study(config, name, record)
    return folder


def _finish(config: Config, name: str, cells: pd.DataFrame, summary: pd.DataFrame, comparisons: pd.DataFrame,
            design: dict[str, Any], table: str, reading: str, figure: Figure) -> StudyResult:
    reference = comparisons["reference"].iloc[0] if len(comparisons) else None
    table_markdown = _design_markdown(design, reference) + "\n\n" + table
    folder = save_study(config, name, {"cells": cells, "summary": summary, "comparisons": comparisons}, {
        **design,
        "summary": _records(summary),
        "comparisons": _records(comparisons),
        "table_markdown": table_markdown,
        "reading": reading,
    })
    return StudyResult(name=name, cells=cells, summary=summary, comparisons=comparisons, design=design,
                       table_markdown=table_markdown, reading=reading, figure=figure, folder=folder)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values, NaN as null."""
    return json.loads(frame.round(4).to_json(orient="records", force_ascii=False))


def _figure_path(config: Config, stem: str) -> Path:
    from . import pipeline

    return runs.run_folder(config).figure(stem)


def _test_groups(cells: pd.DataFrame, headline: Optional[str]) -> list[str]:
    """The per-group accuracy columns worth a table column: every group but the headline, when there are few."""
    groups = [column.removeprefix("accuracy_") for column in cells.columns
              if column.startswith("accuracy_") and column != "accuracy_all"]
    others = [group for group in groups if group != headline]
    return others if len(others) <= 5 else []


def _prepared(config: Config) -> tuple[DatasetDict, list[str]]:
    from . import pipeline

    prepared = pipeline.load_prepared(config)
    return prepared, list(prepared["train"].features["label"].names)


def _target(config: Config, prepared: DatasetDict, study: str) -> str:
    target = config.target_domain
    present = sorted(set(_column(prepared["train"], "domain")))
    if target is None or target not in present:
        raise ValueError(f"{study} needs target_domain set to a domain of the training data ({present}); "
                         f"got {target!r}")
    return target


# --- transfer matrix ------------------------------------------------------------------------------------------------

@dataclass
class TransferResult:
    """A transfer matrix: per-model scores, mean and spread per (train, test) pair, transfer loss, reading."""

    cells: pd.DataFrame  # one row per (seed, train domain, test domain)
    matrix: pd.DataFrame  # mean accuracy: rows = train domain, columns = test domain
    spread: pd.DataFrame  # std over seeds (NaN with one seed)
    loss: pd.DataFrame  # in-domain accuracy of the test domain minus the cross-domain accuracy
    reading: str
    summary: pd.DataFrame  # per (train, test) pair: accuracy mean, std, 95% interval, n seeds, mean loss
    loss_summary: pd.DataFrame  # per (train, test) pair: the per-seed transfer loss's mean and 95% interval
    figure: Figure  # the heatmap, also saved as figures/transfer_matrix.png


# Blitzer et al. (2007): electronics and kitchen transfer well to each other; books and dvd transfer poorly to
# (and from) electronics and kitchen.
KNOWN_CLOSE_PAIRS = {("electronics", "kitchen_&_housewares"), ("kitchen_&_housewares", "electronics")}
KNOWN_FAR_PAIRS = {(a, b) for a in ("books", "dvd") for b in ("electronics", "kitchen_&_housewares")}
KNOWN_FAR_PAIRS |= {(b, a) for a, b in KNOWN_FAR_PAIRS}


def transfer_matrix(config: Config, domains: Optional[list[str]] = None) -> TransferResult:
    """Train on each domain alone (same budget for every domain, each seed) and test on every domain.

    `domains` (else `config.study_domains`, else every training domain) are trained on and tested on; a model's
    own domain's validation rows drive checkpoint choice (when `eval_strategy` evaluates). The budget is the
    smallest domain's training rows, capped by `max_train_samples`, so no domain looks better for having more rows.
    """
    from . import plots

    prepared, names = _prepared(config)
    available = sorted(set(_column(prepared["train"], "domain")))
    domains = domains or config.study_domains or available
    missing = sorted(set(domains) - set(available))
    if missing:
        raise ValueError(f"transfer_matrix: domains {missing} are not in the training data (have {available})")
    train_by_domain = {d: domain_rows(prepared["train"], d) for d in domains}
    validation_by_domain = {d: domain_rows(prepared["validation"], d) for d in domains}
    test = _take(prepared["test"], [row for row, value in enumerate(_column(prepared["test"], "domain"))
                                    if value in domains], f"domains {domains}")
    budget = min(len(rows) for rows in train_by_domain.values())
    if config.max_train_samples:
        budget = min(budget, config.max_train_samples)

    cells = [Cell(arm=source, seed=seed, train=_seeded_cap(train_by_domain[source], budget, seed),
                  validation=validation_by_domain[source])
             for seed in config.seeds for source in domains]
    per_model = run_cells(config, cells, test, names, desc="transfer")
    # One row per (model, test domain): the headline accuracy columns give way to each domain's.
    long = per_model.drop(columns=["accuracy", "macro_f1"]).melt(
        id_vars=["seed", "arm", "n_train", "train_seconds"], value_vars=[f"accuracy_{d}" for d in domains],
        var_name="test_domain", value_name="accuracy").rename(columns={"arm": "train_domain"})
    long["test_domain"] = long["test_domain"].str.removeprefix("accuracy_")
    long = long[["seed", "train_domain", "test_domain", "n_train", "accuracy", "train_seconds"]]

    matrix = long.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="mean")
    spread = long.pivot_table(index="train_domain", columns="test_domain", values="accuracy", aggfunc="std")
    matrix, spread = matrix.loc[domains, domains], spread.reindex(index=domains, columns=domains)
    in_domain = pd.Series({d: matrix.loc[d, d] for d in domains})
    loss = matrix.rsub(in_domain, axis="columns")  # loss[s, t] = in_domain[t] - matrix[s, t]

    # Loss per seed (same seed's in-domain model), so its interval carries the seed noise of both cells.
    own = long[long["train_domain"] == long["test_domain"]].set_index(["seed", "test_domain"])["accuracy"]
    long["loss"] = [own[(seed, target)] - accuracy
                    for seed, target, accuracy in zip(long["seed"], long["test_domain"], long["accuracy"])]
    summary = summarize(long, ["train_domain", "test_domain"], also=["loss"])
    loss_summary = summarize(long, ["train_domain", "test_domain"], metric="loss")
    figure = plots.plot_transfer_heatmap(matrix, path=_figure_path(config, "transfer_matrix"))
    result = TransferResult(cells=long, matrix=matrix, spread=spread, loss=loss, summary=summary,
                            loss_summary=loss_summary, figure=figure,
                            reading=_transfer_reading(matrix, spread, loss, long, budget))
    design = _design(config, {"train domain": domains, "test domain": domains},
                     "the model's initialisation, batch order and which rows fill the budget",
                     {"rows per domain": budget})
    _save_transfer(config, result, design, budget)
    return result


def _transfer_reading(matrix: pd.DataFrame, spread: pd.DataFrame, loss: pd.DataFrame, cells: pd.DataFrame,
                      budget: int) -> str:
    from . import metrics

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
    lines = [
        f"Each model trained on {budget} rows of one domain, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}).",
        f"Mean in-domain accuracy {in_mean:.3f}; mean cross-domain accuracy {cross_mean:.3f} "
        f"(transfer costs {in_mean - cross_mean:+.3f} on average).",
        f"Best transfer: {best[0]} → {best[1]} (loss {loss.loc[best]:+.3f}); worst: {worst[0]} → {worst[1]} "
        f"(loss {loss.loc[worst]:+.3f}).",
    ]
    if len(noise):
        lines.append(f"The median seed-to-seed standard deviation of a cell is {float(noise.median()):.3f}: "
                     "single cells that differ by less than about twice that are inside the seed noise.")
    else:
        lines.append("With one seed there is no estimate of seed noise: treat differences under a few points as "
                     "unresolved.")
    close = [pair for pair in off if pair in KNOWN_CLOSE_PAIRS]
    far = [pair for pair in off if pair in KNOWN_FAR_PAIRS]
    if close and far:
        def per_seed_loss(pairs: list[tuple[str, str]]) -> list[float]:
            chosen = cells[[(s, t) in pairs for s, t in zip(cells["train_domain"], cells["test_domain"])]]
            return chosen.groupby("seed")["loss"].mean().tolist()

        test = metrics.differs_beyond_noise(per_seed_loss(far), per_seed_loss(close))
        close_loss, far_loss = test["b"]["mean"], test["a"]["mean"]
        if not test["beyond_noise"]:
            agrees = "does not clearly reproduce"
        else:
            agrees = "agrees with" if close_loss < far_loss else "runs against"
        lines.append(f"Blitzer et al. (2007) found electronics ↔ kitchen transfer well and books/dvd ↔ "
                     f"electronics/kitchen poorly: here the close pairs lose {close_loss:+.3f} and the far pairs "
                     f"{far_loss:+.3f} on average per seed; their difference is "
                     f"{_verdict(test['beyond_noise'], test['p_value'], len(seeds))}, so this {agrees} that pattern.")
    return "\n\n".join(lines)


def _save_transfer(config: Config, result: TransferResult, design: dict[str, Any], budget: int) -> None:
    matrix, spread = result.matrix, result.spread
    accuracy = pd.DataFrame([[f"{matrix.loc[s, t]:.3f}" + (f" ± {spread.loc[s, t]:.3f}" if pd.notna(spread.loc[s, t])
                                                          else "") for t in matrix.columns] for s in matrix.index],
                            index=matrix.index, columns=matrix.columns)
    loss = result.loss_summary.assign(text=[
        f"{row.mean:+.3f}" + (f" [{row.ci_low:+.2f}, {row.ci_high:+.2f}]" if pd.notna(row.ci_low) else "")
        for row in result.loss_summary.itertuples()]).pivot(index="train_domain", columns="test_domain", values="text")
    loss = loss.reindex(index=result.matrix.index, columns=result.matrix.columns)
    table = (_design_markdown(design) + f"\n\nAccuracy (mean ± sd over seeds; diagonal = in-domain), {budget} "
             "training rows per domain:\n\n" + _matrix_markdown(accuracy)
             + "\n\nTransfer loss (in-domain accuracy of the test domain minus this cell; mean and 95% interval "
               "over seeds):\n\n" + _matrix_markdown(loss))
    frames = {"cells": result.cells, "summary": result.summary, "loss_summary": result.loss_summary,
              "matrix": result.matrix.reset_index()}
    save_study(config, "transfer_matrix", frames, {
        **design,
        "budget_per_domain": budget,
        "matrix": result.matrix.round(4).to_dict(),
        "loss": result.loss.round(4).to_dict(),
        "table_markdown": table,
        "reading": result.reading,
    })


def _matrix_markdown(texts: pd.DataFrame) -> str:
    """A train × test table of ready-made cell texts, the diagonal (in-domain) in bold."""
    lines = ["| train ↓ / test → | " + " | ".join(texts.columns) + " |", "|---|" + "---:|" * len(texts.columns)]
    for source in texts.index:
        cells = [f"**{texts.loc[source, target]}**" if source == target else texts.loc[source, target]
                 for target in texts.columns]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- few-shot target plus other data ---------------------------------------------------------------------------------

def mixing_arms(config: Config) -> list[tuple[str, dict[str, Any]]]:
    """(arm name, config changes) per mixing strategy of the study; temperature once per study temperature."""
    arms = []
    for strategy in config.study_strategies:
        if strategy == "temperature":
            arms += [(f"temperature T={t:g}", {"mixing_strategy": "temperature", "mixing_temperature": t})
                     for t in config.study_temperatures]
        else:
            arms.append((strategy, {"mixing_strategy": strategy}))
    return arms


def few_shot_budget(config: Config, k: Optional[int], classes: int, target_rows: int) -> Optional[int]:
    """Training rows of every arm at one k: `max_train_samples`, raised to the k-shot target's own rows so the
    target-only arm always trains on every target row it was given (None: no cap, as the config says)."""
    if config.max_train_samples is None:
        return None
    return max(config.max_train_samples, target_rows if k is None else min(k * classes, target_rows))


def few_shot_cells(config: Config, train: Dataset, validation: Dataset) -> list[Cell]:
    """For each k, seed and mixing arm: the target cut to k rows per class (the same rows in every arm of a seed),
    other domains mixed in by the arm's strategy within the k's budget (`few_shot_budget`)."""
    from . import mix

    target = config.target_domain
    classes = len(train.features["label"].names)
    target_rows = _column(train, "domain").count(target)
    cells = []
    for k in config.study_k_values:
        budget = few_shot_budget(config, k, classes, target_rows)
        for seed in config.seeds:
            for arm, changes in mixing_arms(config):
                mixed, report = mix.mix(train, config.replace(few_shot_k=k, max_train_samples=budget, **changes),
                                        seed=seed)
                from_target = next(group for group in report.groups if group.is_target)
                cells.append(Cell(arm=arm, seed=seed, train=mixed, validation=validation, facts={
                    "k_label": "all" if k is None else str(k),
                    # "all" sits on the k axis at the target's mean rows per class
                    "k": round(target_rows / classes) if k is None else k,
                    "target_rows": from_target.achieved_rows,
                    "target_share": round(from_target.achieved_share, 4),
                }))
    return cells


def few_shot_study(config: Config) -> StudyResult:
    """Does other data help a small target? Target-only against target + other domains per mixing strategy, for
    each k per class, over seeds; measured on the target's test rows (other domains' rows reported beside)."""
    from . import plots

    prepared, names = _prepared(config)
    target = _target(config, prepared, "few_shot_study")
    validation = domain_rows(prepared["validation"], target)
    cells = run_cells(config, few_shot_cells(config, prepared["train"], validation), prepared["test"], names,
                      headline=target, desc="few-shot")
    groups = _test_groups(cells, target)
    summary = summarize(cells, ["k_label", "k", "arm"], also=["target_rows", *(f"accuracy_{g}" for g in groups)])
    summary["target_rows"] = summary["target_rows"].round(1)  # a mean over seeds: 0.7 target rows, not 0.666667
    reference = "target_only"
    comparisons = compare_arms(cells, reference, within=["k_label"])
    figure = plots.plot_few_shot_curves(summary.rename(columns={"arm": "strategy"}),
                                        path=_figure_path(config, "few_shot_curves"))
    design = _design(config, {"k per class": [k if k is not None else "all" for k in config.study_k_values],
                              "arm": [arm for arm, _ in mixing_arms(config)]},
                     "the model's initialisation, batch order and which k target rows are drawn",
                     {"target_domain": target, "validation": f"{len(validation)} {target} rows"})
    labels = {"k_label": "k", "arm": "arm", "target_rows": "target rows (with repeats)"}
    table = _results_markdown(summary, comparisons, labels, ["k_label"], groups, target)
    return _finish(config, "few_shot_mixing", cells, summary, comparisons, design, table,
                   _few_shot_reading(summary, comparisons, target, cells, reference), figure)


def _few_shot_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, target: str, cells: pd.DataFrame,
                      reference: str) -> str:
    budgets = summary.groupby("k_label", sort=False)["n_train"].max()
    lines = [f"Measured on {int(cells['n_test'].iloc[0])} {target} test rows; every arm of a k trains on the same "
             "number of rows at most (the budget: "
             + ", ".join(f"{budget:g} at k = {k_label}" for k_label, budget in budgets.items()) + "), seeds "
             f"{', '.join(str(seed) for seed in sorted(cells['seed'].unique()))}."]
    for k_label, at_k in summary.groupby("k_label", sort=False):
        lead = _reference_line(at_k, at_k["arm"] == reference, "target-only") if (at_k["arm"] == reference).any() \
            else "no target-only arm"
        lines.append(f"k = {k_label}: {lead}. "
                     + _comparison_sentence(comparisons[comparisons["k_label"] == k_label]))
    if len(comparisons):
        better, worse, unresolved = tally_comparisons(comparisons)
        lines.append(f"Over all (k, strategy) pairs, other data beat target-only beyond the seed noise in {better} "
                     f"of {len(comparisons)}, lost beyond it in {worse}, and could not be told apart in "
                     f"{unresolved}.")
    return "\n\n".join(lines)


# --- data quality: annotator agreement -------------------------------------------------------------------------------

def level_name(level: float) -> str:
    """An agreement level as a percentage name: 0.66 -> '66%'."""
    return f"{level:.0%}"


def agreement_arms(train: Dataset, levels: Sequence[float], *, seed: int,
                   limit: Optional[int] = None) -> dict[str, Dataset]:
    """Nested training sets: arm "≥t" holds every training row whose annotator agreement is at least t.

    With `limit`, the widest arm is cut to `limit` rows keeping each (agreement, label) stratum's share (seeded);
    every arm draws from that cut, so the arms stay nested and keep the natural proportions of the levels.
    """
    agreement = _column(train, "agreement")
    if all(value is None for value in agreement):
        raise ValueError("agreement_arms needs rows with an annotator agreement (financial_phrasebank); these "
                         "training rows have none")
    lowest = min(levels) - _LEVEL_SLACK
    candidates = _take(train, [row for row, value in enumerate(agreement) if value is not None and value >= lowest],
                       f"agreement >= {lowest}")
    ranked = _ranked_strata(candidates, seed, columns=("agreement", "label"))
    counts = _proportional({key: len(rows) for key, rows in ranked.items()}, limit or len(candidates))
    kept = sorted(row for key, rows in ranked.items() for row in rows[:counts[key]])
    kept_agreement = _column(candidates, "agreement")
    return {f"≥{level_name(level)}": _take(candidates, [row for row in kept
                                                        if kept_agreement[row] >= level - _LEVEL_SLACK],
                                           f"agreement arm {level} {seed} {limit}")
            for level in sorted(levels, reverse=True)}


def clean_data(config: Config, **changes: Any) -> DatasetDict:
    """The config's data with some settings changed (other sources, no caps), loaded and cleaned afresh."""
    from . import clean, data

    own = config.replace(**changes)
    cleaned, _ = clean.clean(data.load_data(own), own)
    return cleaned


def agreement_study(config: Config, source: str = "financial_phrasebank") -> StudyResult:
    """Annotator agreement as data quality: train on the unanimous rows, then add lower-agreement rows level by
    level (nested arms); measured on the unanimous (AllAgree) test rows, whose labels are the most trustworthy
    yardstick. The other levels' test rows are reported beside them."""
    from . import plots

    dataset = clean_data(config, sources=[source], target_domain=None, few_shot_k=None, mixing_strategy="concat",
                         mixing_ratios={})
    names = list(dataset["train"].features["label"].names)
    levels = sorted(config.study_agreement_levels, reverse=True)
    top = level_name(max(levels))
    test_groups = [level_name(value) for value in _column(dataset["test"], "agreement")]
    validation_agreement = _column(dataset["validation"], "agreement")
    validation = _take(dataset["validation"], [row for row, value in enumerate(validation_agreement)
                                               if value >= max(levels) - _LEVEL_SLACK], "validation at top level")
    cells = []
    for seed in config.seeds:
        arms = agreement_arms(dataset["train"], levels, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=validation, facts={"min_agreement": level})
                  for (arm, rows), level in zip(arms.items(), levels)]
    results = run_cells(config, cells, dataset["test"], names, headline=top, groups=test_groups, desc="agreement")
    groups = sorted(_test_groups(results, top), key=lambda name: -float(name.rstrip("%")))
    summary = summarize(results, ["arm", "min_agreement"], also=[f"accuracy_{g}" for g in groups])
    reference = f"≥{top}"
    comparisons = compare_arms(results, reference)
    curves = pd.concat([summarize(results, ["min_agreement"], metric=f"accuracy_{group}").assign(
        series=f"test rows at {group}") for group in [top, *groups]])
    figure = plots.plot_quality_curve(curves.rename(columns={"min_agreement": "x"}),
                                      path=_figure_path(config, "quality_agreement"),
                                      xlabel="lowest annotator agreement in training",
                                      title="Adding lower-agreement rows (Financial PhraseBank)")
    design = _design(config, {"lowest agreement level in training": levels},
                     "the model's initialisation, batch order and (with a budget) which rows are kept",
                     {"source": source, "test yardstick": f"{top}-agreement test rows",
                      "validation": f"{len(validation)} {top}-agreement rows"})
    table = _results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, f"{top}-agreement")
    return _finish(config, "quality_agreement", results, summary, comparisons, design, table,
                   _agreement_reading(summary, comparisons, reference, top, groups), figure)


def _agreement_reading(summary: pd.DataFrame, comparisons: pd.DataFrame, reference: str, top: str,
                       groups: list[str]) -> str:
    rows = ", ".join(f"{row.arm} {row.n_train:g}" for row in summary.itertuples())
    lines = [
        f"Measured on the {top}-agreement test rows: where every annotator agreed, the gold label is least in "
        "doubt, so a model is not marked wrong for siding with a defensible minority reading.",
        _reference_line(summary, summary["arm"] == reference, f"Training on {reference} rows only") + ". "
        + _comparison_sentence(comparisons),
        f"The arms are nested and grow ({rows} training rows), so a difference mixes more data with noisier "
        "labels; the study does not separate the two.",
    ]
    if groups:
        lowest = groups[-1]
        narrow, wide = summary.iloc[0], summary.iloc[-1]
        lines.append(f"On the {lowest}-agreement test rows, whose labels are contested, mean accuracy is "
                     f"{_number(narrow[f'accuracy_{lowest}'])} for {narrow['arm']} and "
                     f"{_number(wide[f'accuracy_{lowest}'])} for {wide['arm']} (no noise test on these rows).")
    return "\n\n".join(lines)


# --- data quality: helpfulness votes ---------------------------------------------------------------------------------

def helpfulness_pools(train: Dataset, *, min_votes: int = 3, high: float = 0.75,
                      low: float = 0.5) -> dict[str, Dataset]:
    """Reviews by their readers' verdict: "high" (at least `min_votes` votes, helpful share ≥ `high`), "low"
    (share < `low`) and "unrated" (no votes). Reviews with fewer votes or a share in between are left out."""
    helpful, total = _column(train, "helpful_votes"), _column(train, "total_votes")
    if all(value is None for value in total):
        raise ValueError("helpfulness_pools needs helpfulness votes (blitzer_mds); these training rows have none")
    bucket = {"high": [], "low": [], "unrated": []}
    for row, (votes, out_of) in enumerate(zip(helpful, total)):
        if not out_of:
            bucket["unrated"].append(row)
        elif out_of >= min_votes and votes / out_of >= high:
            bucket["high"].append(row)
        elif out_of >= min_votes and votes / out_of < low:
            bucket["low"].append(row)
    return {name: _take(train, rows, f"helpfulness {name} {min_votes} {high} {low}") for name, rows in bucket.items()}


# Each arm's share of rows from each pool; the low pool's share is the x axis of the helpfulness curve.
HELPFULNESS_RECIPES = {"high": {"high": 1.0}, "high+low": {"high": 0.5, "low": 0.5}, "low": {"low": 1.0},
                        "unrated": {"unrated": 1.0}}


def helpfulness_study(config: Config, *, min_votes: int = 3, high: float = 0.75, low: float = 0.5) -> StudyResult:
    """Readers' helpfulness votes as data quality: equal-size training sets of highly rated, poorly rated, half of
    each, and unrated reviews, with the same (domain, label) make-up; measured on every test row."""
    from . import plots

    prepared, names = _prepared(config)
    pools = helpfulness_pools(prepared["train"], min_votes=min_votes, high=high, low=low)
    cells = []
    for seed in config.seeds:
        arms = equal_size_arms(pools, HELPFULNESS_RECIPES, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=prepared["validation"],
                       facts={"low_share": HELPFULNESS_RECIPES[arm].get("low", 0.0)}) for arm, rows in arms.items()]
    results = run_cells(config, cells, prepared["test"], names, desc="helpfulness")
    groups = _test_groups(results, None)
    summary = summarize(results, ["arm", "low_share"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "high")
    rated = summary[summary["arm"] != "unrated"].assign(series="rated reviews")
    figure = plots.plot_quality_curve(_with_reference_band(rated, summary[summary["arm"] == "unrated"], "low_share",
                                                           "unrated (reference)"),
                                      path=_figure_path(config, "quality_helpfulness"),
                                      xlabel="share of low-helpfulness reviews in training",
                                      title="Helpfulness votes as data quality (equal sizes)")
    design = _design(config, {"training reviews": list(HELPFULNESS_RECIPES)},
                     "the model's initialisation, batch order and which reviews of each bucket are drawn",
                     {"high": f"≥ {min_votes} votes, ≥ {high:.0%} helpful",
                      "low": f"≥ {min_votes} votes, < {low:.0%} helpful", "unrated": "no votes",
                      "sizes": "equal per (domain, label) stratum"})
    table = _results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, "test")
    lines = [f"Every arm trains on {summary['n_train'].iloc[0]:g} reviews with the same domain and label make-up "
             f"(helpfulness goes with the label: poorly rated reviews are mostly negative, so unmatched sets "
             f"would compare labels, not quality); measured on {int(results['n_test'].iloc[0])} test reviews.",
             _reference_line(summary, summary["arm"] == "high", "Training on highly rated reviews") + ". "
             + _comparison_sentence(comparisons)]
    return _finish(config, "quality_helpfulness", results, summary, comparisons, design, table, "\n\n".join(lines),
                   figure)


def _with_reference_band(curve: pd.DataFrame, reference: pd.DataFrame, x: str, series: str) -> pd.DataFrame:
    """`curve` (one series) plus the reference arm, which has no `x` value of its own, repeated at each of the
    curve's `x` values so plot_quality_curve draws it as a flat band; `x` renamed to the plot's "x"."""
    band = pd.concat([reference.assign(**{x: value}) for value in sorted(curve[x])]).assign(series=series)
    return pd.concat([curve, band]).rename(columns={x: "x"})


# --- data quality: injected label noise in the other data ------------------------------------------------------------

def inject_label_noise(rows: Dataset, rate: float, *, seed: int, keep_domain: str) -> Dataset:
    """A copy where exactly round(rate · n) of the n rows outside `keep_domain` carry a wrong label (seeded).

    The kept domain is untouched. One seeded ranking and one seeded wrong label per row serve every rate, so the
    rows flipped at a lower rate are flipped, to the same label, at every higher rate.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"inject_label_noise: rate must be in [0, 1), got {rate}")
    feature = rows.features["label"]
    classes = feature.num_classes if isinstance(feature, ClassLabel) else len(set(_column(rows, "label")))
    labels = _column(rows, "label")
    others = [row for row, domain in enumerate(_column(rows, "domain")) if domain != keep_domain]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(others))
    shifts = rng.integers(1, classes, size=len(others))  # a shift of 1..classes-1 always lands on another class
    for position in order[:round(rate * len(others))]:
        row = others[position]
        labels[row] = (labels[row] + int(shifts[position])) % classes
    table = rows.with_format("arrow")[:]
    table = table.set_column(table.column_names.index("label"), "label", pa.array(labels, type=pa.int64()))
    # Like clean.take_rows: a fingerprint derived from the parent's and what decided the change, not a full hash.
    digest = hashlib.blake2b(f"{rows._fingerprint}|noise {rate} {seed} {keep_domain}".encode(), digest_size=8)
    return Dataset(table, info=rows.info.copy(), split=rows.split, fingerprint=digest.hexdigest())


def label_noise_study(config: Config) -> StudyResult:
    """Label noise in the other data only: the target (few_shot_k rows per class, if set) stays clean, a share of
    the other domains' labels is flipped, then the mix is built as the config says; against target-only."""
    from . import mix, plots

    prepared, names = _prepared(config)
    target = _target(config, prepared, "label_noise_study")
    if config.mixing_strategy == "target_only":
        raise ValueError("label_noise_study mixes other data into the target: set mixing_strategy to concat, "
                         "proportional, temperature, uniform or fixed (target_only is its reference arm)")
    validation = domain_rows(prepared["validation"], target)
    cells = []
    for seed in config.seeds:
        for rate in config.study_noise_levels:
            noisy = inject_label_noise(prepared["train"], rate, seed=seed, keep_domain=target)
            mixed, _ = mix.mix(noisy, config, seed=seed)
            cells.append(Cell(arm=f"noise {rate:.0%}", seed=seed, train=mixed, validation=validation,
                              facts={"noise": rate}))
        alone, _ = mix.mix(prepared["train"], config.replace(mixing_strategy="target_only"), seed=seed)
        cells.append(Cell(arm="target_only", seed=seed, train=alone, validation=validation, facts={"noise": None}))
    results = run_cells(config, cells, prepared["test"], names, headline=target, desc="label noise")
    groups = _test_groups(results, target)
    summary = summarize(results, ["arm", "noise"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "target_only")
    noisy = summary[summary["arm"] != "target_only"].assign(series="target + noisy other data")
    figure = plots.plot_quality_curve(_with_reference_band(noisy, summary[summary["arm"] == "target_only"], "noise",
                                                           "target only (reference)"),
                                      path=_figure_path(config, "quality_label_noise"),
                                      xlabel="share of other-data labels flipped",
                                      title=f"Label noise in the other data ({target} test rows)")
    design = _design(config, {"other-data label noise": list(config.study_noise_levels)},
                     "the model's initialisation, batch order, the few-shot target rows and which labels flip",
                     {"target_domain": target, "few_shot_k": config.few_shot_k,
                      "mixing_strategy": config.mixing_strategy, "mixing_temperature": config.mixing_temperature})
    table = _results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, target)
    noisy_only = comparisons[comparisons["arm"] != "target_only"]
    lines = [f"Only the other domains' labels are flipped; the {target} rows stay clean. Measured on "
             f"{int(results['n_test'].iloc[0])} {target} test rows.",
             _reference_line(summary, summary["arm"] == "target_only", "Target-only") + ". "
             + _comparison_sentence(noisy_only)]
    clean_arm, worst_arm = noisy.iloc[0], noisy.iloc[-1]
    if len(noisy) > 1:
        lines.append(f"From {clean_arm['arm']} to {worst_arm['arm']}, target accuracy moves "
                     f"{worst_arm['mean'] - clean_arm['mean']:+.3f} "
                     f"({_number(clean_arm['mean'])} → {_number(worst_arm['mean'])}).")
    return _finish(config, "quality_label_noise", results, summary, comparisons, design, table, "\n\n".join(lines),
                   figure)


# --- time: stale vs contemporaneous data -----------------------------------------------------------------------------

@dataclass
class TimeSplit:
    """Every dated row once, split by date: older rows, and recent ones split into a training pool, validation
    and test. No text (after case/punctuation folding) occurs twice across the parts."""

    cut: str  # ISO date: rows dated before it are older, the others recent
    older: Dataset  # dated before the cut: the stale training pool
    recent: Dataset  # dated from the cut on, outside validation and test: the contemporaneous training pool
    validation: Dataset  # recent rows for checkpoint choice, the same for every arm
    test: Dataset  # held-out recent rows
    undated: int  # rows left out for having no date
    duplicates: int  # rows left out because their folded text occurs in an earlier row


def time_split(dataset: DatasetDict, config: Config, recent_from: str = "2006-01-01") -> TimeSplit:
    """A split by date built from every row of every split (the carved splits are random, not by time).

    Rows are pooled; undated rows and later repeats of a folded text are dropped, so no text can sit on both sides.
    Rows dated on or after `recent_from` are split, stratified by (domain, label) with `config.seed` (fixed over
    the study's seeds), into test (`test_split_percentage`, at most `max_test_samples`), validation
    (`validation_split_percentage`, at most `max_eval_samples`) and the contemporaneous training pool.
    """
    from .clean import dedupe_key

    pooled = concatenate_datasets([dataset[split] for split in dataset])
    seen: set[str] = set()
    dated, undated, duplicates = [], 0, 0
    for row, (date, text) in enumerate(zip(_column(pooled, "date"), _column(pooled, "text"))):
        key = dedupe_key(text)
        if not date:
            undated += 1
        elif key in seen:
            duplicates += 1
        else:
            dated.append(row)
        seen.add(key)
    dates = _column(pooled, "date")
    older = _take(pooled, [row for row in dated if dates[row] < recent_from], f"older than {recent_from}")
    recent = _take(pooled, [row for row in dated if dates[row] >= recent_from], f"from {recent_from}")

    ranked = _ranked_strata(recent, config.seed)
    sizes = {key: len(rows) for key, rows in ranked.items()}
    held = {}
    for split, percentage, cap in (("test", config.test_split_percentage, config.max_test_samples),
                                   ("validation", config.validation_split_percentage, config.max_eval_samples)):
        count = round(len(recent) * percentage / 100)
        held[split] = _proportional(sizes, min(count, cap) if cap else count)
    test_rows, validation_rows, pool_rows = [], [], []
    for key, rows in ranked.items():
        n_test, n_validation = held["test"][key], held["validation"][key]
        test_rows += rows[:n_test]
        validation_rows += rows[n_test:n_test + n_validation]
        pool_rows += rows[n_test + n_validation:]
    return TimeSplit(cut=recent_from, older=older, recent=_take(recent, sorted(pool_rows), "recent pool"),
                     validation=_take(recent, sorted(validation_rows), "recent validation"),
                     test=_take(recent, sorted(test_rows), "recent test"), undated=undated, duplicates=duplicates)


# Each arm's share of rows from each period; the older share is the x axis of the time curve.
TIME_RECIPES = {"older": {"older": 1.0}, "mixed": {"older": 0.5, "recent": 0.5}, "contemporaneous": {"recent": 1.0}}


def time_split_of(config: Config, recent_from: str = "2006-01-01") -> TimeSplit:
    """`time_split` of every row the config's sources hold, uncapped: the eval and test caps apply to the split by
    date, not to the random carved splits."""
    return time_split(clean_data(config, max_eval_samples=None, max_test_samples=None), config, recent_from)


def time_study(config: Config, split: Optional[TimeSplit] = None) -> StudyResult:
    """What stale data costs: a held-out test set of recent reviews; equal-size training sets of older reviews,
    contemporaneous ones (disjoint from test) and half of each, with the same (domain, label) make-up.

    `split` (default: `time_split_of(config)`, cut at 2006) is the split by date to train and test on.
    """
    from . import plots

    split = split or time_split_of(config)
    names = list(split.test.features["label"].names)
    recent_from = split.cut
    pools = {"older": split.older, "recent": split.recent}
    cells = []
    for seed in config.seeds:
        arms = equal_size_arms(pools, TIME_RECIPES, seed=seed, limit=config.max_train_samples)
        cells += [Cell(arm=arm, seed=seed, train=rows, validation=split.validation,
                       facts={"older_share": TIME_RECIPES[arm].get("older", 0.0)}) for arm, rows in arms.items()]
    results = run_cells(config, cells, split.test, names, desc="time")
    groups = _test_groups(results, None)
    summary = summarize(results, ["arm", "older_share"], also=[f"accuracy_{g}" for g in groups])
    comparisons = compare_arms(results, "contemporaneous")
    figure = plots.plot_quality_curve(summary.assign(series=f"test: reviews from {recent_from[:4]} on").rename(
        columns={"older_share": "x"}), path=_figure_path(config, "time_staleness"),
        xlabel=f"share of training reviews dated before {recent_from}", title="Stale vs contemporaneous data")
    design = _design(config, {"training reviews": list(TIME_RECIPES)},
                     "the model's initialisation, batch order and which reviews of each period are drawn",
                     {"cut": recent_from, "test": f"{len(split.test)} reviews from {recent_from} on",
                      "validation": f"{len(split.validation)} reviews from {recent_from} on",
                      "sizes": "equal per (domain, label) stratum"})
    table = _results_markdown(summary, comparisons, {"arm": "arm"}, [], groups, "test")
    kept = len(split.older) + len(split.recent) + len(split.validation) + len(split.test)
    lines = [f"A split by date built from all {kept} dated, distinct reviews ({split.undated} undated and "
             f"{split.duplicates} repeated texts left out): {len(split.test)} reviews from {recent_from} on are "
             f"the test set; every arm trains on {summary['n_train'].iloc[0]:g} reviews with the same domain and "
             "label make-up.",
             _reference_line(summary, summary["arm"] == "contemporaneous", "Contemporaneous training data") + ". "
             + _comparison_sentence(comparisons)]
    return _finish(config, "time", results, summary, comparisons, design, table, "\n\n".join(lines), figure)
