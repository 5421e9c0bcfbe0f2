"""The machine every study runs: cells (an arm, a split seed, a seed, rows) trained and scored, replicate
summaries, arm comparisons paired on (split seed, seed).

Hands each study module `run_cells`, `summarize`, `compare_arms`, `study_design`, `plan_cells` and `finish`, which
ends every study in one `StudyResult`.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd
from datasets import Dataset, DatasetDict
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from .. import clean, data, metrics, modeling, pipeline, progress, runs, stats, train
from ..config import Config
from ..execution import chosen_executor, threads_per_cell
from ..folder_lock import hold_run_folder
from ..io import atomic_write_text
from .executor import CellJob, execute
from .sampling import column
from .store import CellStore, cell_key, clear_work, in_work_folder, library_versions, plain
from .tables import design_markdown, records


@dataclass
class CellScore:
    """One trained model scored on the test rows; `per_domain` holds the test rows' groups (domains by default)."""

    accuracy: float
    macro_f1: float
    per_domain: dict[str, dict[str, float]]
    n_train: int
    train_seconds: float
    correct: list[bool] = field(default_factory=list)  # per test row, in test order: McNemar / bootstrap input


def fit_and_score(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                  label_names: list[str], *, groups: Optional[Sequence[str]] = None,
                  work_dir: Optional[Path] = None) -> CellScore:
    """Train one model on `train_rows` (validation drives best-checkpoint choice), score it per group on test.

    `groups` gives one group name per test row (e.g. an agreement level); without it the groups are the domains.
    `work_dir` takes the training loop's files (the engine gives each cell one under the run folder); without it
    a folder under the run folder's work/ is used and removed.
    """
    if work_dir is None:
        return in_work_folder(runs.run_folder(config).work, f"fit-{os.getpid()}", lambda folder: fit_and_score(
            config, train_rows, validation_rows, test_rows, label_names, groups=groups, work_dir=folder))
    model, tokenizer = modeling.load_model_and_tokenizer(config, label_names)
    tokenized = modeling.tokenize_splits(
        DatasetDict(train=train_rows, validation=validation_rows, test=test_rows), tokenizer, config)
    started = time.perf_counter()
    train.train(config, model, tokenizer, tokenized, output_dir=Path(work_dir), label_names=label_names)
    seconds = time.perf_counter() - started
    scores, predictions = train.evaluate(model, tokenized["test"], tokenizer, config, label_names)
    per_group = metrics.per_domain_metrics(predictions.labels, predictions.predicted,
                                           column(test_rows, "domain") if groups is None else list(groups),
                                           label_names)
    return CellScore(accuracy=scores["accuracy"], macro_f1=scores["macro_f1"],
                     per_domain=per_group["per_domain"], n_train=len(train_rows), train_seconds=seconds,
                     correct=[int(a) == int(b) for a, b in zip(predictions.labels, predictions.predicted)])


def fine_tune_cell(config: Config, train_rows: Dataset, validation_rows: Dataset, test_rows: Dataset,
                   label_names: list[str], work_dir: Path, *, headline: Optional[str] = None,
                   groups: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """The engine's default cell fit: fine-tune and score (`fit_and_score`), as the cells table's measured columns."""
    score = fit_and_score(config, train_rows, validation_rows, test_rows, label_names, groups=groups,
                          work_dir=work_dir)
    return measured_columns(score, headline, len(test_rows), rows_fingerprint(test_rows))


def cell_config(config: Config, seed: int) -> Config:
    """A study cell trains quietly without keeping checkpoints: only its scores are kept."""
    return config.replace(seed=seed, save_strategy="no", resume_from_checkpoint=None, report_to="none", quiet=True)


# --- running cells, aggregating, comparing ---------------------------------------------------------------------------

CellFit = Callable[..., dict[str, Any]]  # fit(config, train, validation, test, label_names, work_dir, **arguments)


@dataclass(frozen=True)
class Cell:
    """One model to train: its arm, its seed, its rows, and the facts that describe it in the tables.

    `split_seed` names the draw of rows the cell trains on (None: the rows follow `seed`, one seed varies both).
    `fit` (a module-level function, so a Ray worker finds it by name) returns the cell's measured columns, with
    `arguments` (plain values or Datasets) as its keywords; None fine-tunes and scores (`fine_tune_cell`).
    `config` is the cell's own, where it trains with other settings than the study's.
    """

    arm: str
    seed: int
    train: Dataset
    validation: Dataset
    facts: dict[str, Any] = field(default_factory=dict)
    split_seed: Optional[int] = None
    fit: Optional[CellFit] = None
    arguments: dict[str, Any] = field(default_factory=dict)
    config: Optional[Config] = None


def seeds(config: Config) -> list[int]:
    """The training seeds every study replicates over (`replicates.seeds`)."""
    return list(config.replicates.seeds)


def split_seeds(config: Config) -> list[int]:
    """The row draws a study replicates over: `replicates.split_seeds`, or the seeds where splits follow seeds."""
    return list(config.replicates.split_seeds or config.replicates.seeds)


def replicates(config: Config) -> list[tuple[int, int]]:
    """(split seed, seed) of every replicate: each split seed with each seed, or each seed as its own split. The
    one place a study reads `replicates`; a study whose rows follow seeds refuses split seeds at load."""
    given = config.replicates
    if given.split_seeds is None:
        return [(seed, seed) for seed in given.seeds]
    return [(split, seed) for split in given.split_seeds for seed in given.seeds]


def correct_text(correct: Sequence[bool]) -> str:
    """Per-row correctness as one string of 0/1 (a cells-table column; `correct_rows` reads it back)."""
    return "".join("1" if value else "0" for value in correct)


def correct_rows(text: str) -> list[bool]:
    return [char == "1" for char in text]


def rows_fingerprint(rows: Dataset) -> str:
    """A short hash of the rows' ids (repeat suffixes dropped, order ignored): equal for the same rows."""
    ids = sorted({row_id.split("#r")[0] for row_id in column(rows, "id")})
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]


def run_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
              headline: Optional[str] = None, groups: Optional[Sequence[str]] = None,
              desc: str = "cells") -> pd.DataFrame:
    """Train and score every cell not already in the run folder's cell store; one row per cell, in `cells`' order.

    `accuracy` and `macro_f1` are measured on the `headline` group's test rows (all test rows when None);
    `accuracy_all` on every test row, `accuracy_<group>` on each group's (domains, or `groups`). `split_seed` names
    the replicate's row draw, `test_rows` the test rows' fingerprint and `correct` each test row's correctness
    (`correct_text`) over all test rows, so arms can also be compared row by row.

    Each cell is keyed by what determines it (`store.cell_key`) and written to the store as it finishes, by the
    executor `config.execution` names; a re-run reads finished cells back and trains only the others. The run
    folder is held (`folder_lock`) while cells run.
    """
    folder = runs.run_folder(config)
    threads = threads_per_cell(config.execution)
    jobs, keys = {}, []
    for cell in cells:
        job = cell_job(config, cell, test, label_names, headline=headline, groups=groups, threads=threads)
        jobs.setdefault(job.key, job)
        keys.append(job.key)
    store = CellStore(folder.cells)
    with hold_run_folder(folder.root, say=progress.say):
        rows = {key: store.read(key) for key in jobs}
        todo = [job for key, job in jobs.items() if rows[key] is None]
        reused = len(jobs) - len(todo)
        executor, why = chosen_executor(config.execution)
        progress.say(f"{desc}: {reused} of {len(jobs)} cells reused from {folder.cells}, {len(todo)} to train "
                     f"({executor}, {threads} thread(s) per cell{f'; {why}' if why else ''})")
        clear_work(folder.work)
        lines = progress.to_runner() or "ipykernel" not in sys.modules  # Jupyter keeps its bar instead
        bar = tqdm(total=len(todo), desc=desc, disable=runs.is_quiet(config))
        started = time.perf_counter()
        for done, (job, measured, seconds) in enumerate(
                execute(todo, config.execution, threads, test, label_names, folder.work), start=1):
            store.write(job.key, {**job.row, **measured}, job.inputs, seconds)
            rows[job.key] = store.read(job.key)  # the stored form: a resumed table equals an uninterrupted one
            bar.update(1)
            if lines:
                left = progress.time_left(time.perf_counter() - started, done, len(todo) - done)
                progress.say(" · ".join([f"cell {reused + done}/{len(jobs)}", job.label,
                                         progress.duration(seconds), *([left] if left else [])]))
        bar.close()
    return pd.DataFrame([rows[key] for key in keys])


def cell_job(config: Config, cell: Cell, test: Dataset, label_names: list[str], *, headline: Optional[str],
             groups: Optional[Sequence[str]], threads: int) -> CellJob:
    """A cell as the executor takes it, keyed by everything that determines its result (`store.cell_key`)."""
    split = cell.seed if cell.split_seed is None else cell.split_seed
    own = cell_config(cell.config or config, cell.seed)
    fit, arguments = ((cell.fit, dict(cell.arguments)) if cell.fit is not None else
                      (fine_tune_cell, {"headline": headline, "groups": None if groups is None else list(groups)}))
    inputs = {"fine_tuning": own, "fit": fit, "arguments": arguments, "arm": cell.arm, "split_seed": split,
              "seed": cell.seed, "facts": cell.facts, "train": cell.train, "validation": cell.validation,
              "test": test, "label_names": list(label_names), "libraries": library_versions(), "threads": threads}
    k_label = cell.facts.get("k_label")
    label = " · ".join([cell.arm, *([f"k {k_label}"] if k_label is not None else []), f"split {split}",
                        *([f"seed {cell.seed}"] if cell.split_seed is not None else [])])
    return CellJob(key=cell_key(inputs), fit=fit, config=own, train=cell.train, validation=cell.validation,
                   arguments=arguments, row={"split_seed": split, "seed": cell.seed, "arm": cell.arm, **cell.facts},
                   inputs=plain(inputs), label=label)


def cell_row(arm: str, split_seed: int, seed: int, facts: dict[str, Any], score: CellScore,
             headline: Optional[str], n_test: int, test_fingerprint: str) -> dict[str, Any]:
    """One cells-table row from a score (a fine-tuned cell's, or an anchor's scored on the same test rows)."""
    return {"split_seed": split_seed, "seed": seed, "arm": arm, **facts,
            **measured_columns(score, headline, n_test, test_fingerprint)}


def measured_columns(score: CellScore, headline: Optional[str], n_test: int, test_fingerprint: str
                     ) -> dict[str, Any]:
    """A score's cells-table columns: the headline group's accuracy and F1, every group's accuracy, seconds, the
    test rows' fingerprint and per-row correctness."""
    if headline is not None and headline not in score.per_domain:
        raise ValueError(f"no test rows in group {headline!r} to measure the study on; test groups: "
                         f"{sorted(score.per_domain)}")
    head = score.per_domain[headline] if headline is not None else {
        "accuracy": score.accuracy, "macro_f1": score.macro_f1, "n": n_test}
    return {
        "n_train": score.n_train,
        "accuracy": head["accuracy"], "macro_f1": head["macro_f1"], "n_test": head["n"],
        "accuracy_all": score.accuracy, "macro_f1_all": score.macro_f1,
        **{f"accuracy_{group}": result["accuracy"] for group, result in score.per_domain.items()},
        "train_seconds": round(score.train_seconds, 2), "test_rows": test_fingerprint,
        "correct": correct_text(score.correct),
    }


def summarize(cells: pd.DataFrame, by: Sequence[str], metric: str = "accuracy",
              also: Sequence[str] = ()) -> pd.DataFrame:
    """Per group of `by`: `metric`'s mean, std, 95% interval and replicate count `n` (metrics.seed_summary over
    every (split seed, seed) cell), in first-seen order, with the mean training rows and the `also` columns' means.

    Intervals are the t interval as computed, never clipped to [0, 1]: one that runs past 1.0 shows how little
    few replicates say, which a clipped one would hide.
    """
    rows = []
    for key, group in cells.groupby(list(by), sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        stats = metrics.seed_summary(group[metric].tolist())
        rows.append({**dict(zip(by, key)), "n_train": round(float(group["n_train"].mean()), 1),
                     **{name: stats[name] for name in ("mean", "std", "ci_low", "ci_high", "n")},
                     **{name: float(group[name].mean()) for name in also}})
    return pd.DataFrame(rows)


REPLICATE_COLUMNS = ("split_seed", "seed")  # a replicate: which rows were drawn, then how the model was initialised


def replicate_columns(cells: pd.DataFrame) -> list[str]:
    """The columns that name a replicate in `cells`: split seed and seed, or seed alone where splits follow it."""
    present = [name for name in REPLICATE_COLUMNS if name in cells.columns]
    if not present:
        raise KeyError(f"cells name no replicate: they need a 'seed' column (and 'split_seed'); "
                       f"columns are {list(cells.columns)}")
    return present


def compare_arms(cells: pd.DataFrame, reference: str, *, within: Sequence[str] = (), metric: str = "accuracy",
                 arm_column: str = "arm", anchors: Sequence[str] = stats.ANCHOR_ARMS,
                 margin: Optional[float] = stats.EQUIVALENCE_MARGIN) -> pd.DataFrame:
    """Each arm against `reference` (within each value of `within`), paired on (split_seed, seed), by
    `stats.compare_paired`: Δ (arm minus reference) with its 95% interval, p (paired t over replicates), Holm within
    the other-data and the anchor families apart, the MDE at the α Holm's first step applies, the TOST at ±`margin`
    and the verdict.

    The interval covers replicates and test rows (`stats.paired_variance_sum`) where `metric` is accuracy and the
    cells' per-row correctness covers exactly the rows it is measured on (`row_correctness`); else it covers
    replicates, and the table's `interval_covers` says so.
    """
    correctness = row_correctness(cells) if metric == "accuracy" else None
    frame = cells if correctness is None else cells.assign(
        correct_rows=pd.Series(correctness, index=cells.index, dtype=object))
    return stats.compare_paired(frame, reference, arm_column, metric, replicate_columns(cells), within,
                                correct=None if correctness is None else "correct_rows", anchors=anchors,
                                margin=margin, shared_rows="test_rows" in cells and cells["test_rows"].nunique() == 1)


def row_correctness(cells: pd.DataFrame) -> Optional[list[list[bool]]]:
    """Each cell's per-row correctness where every cell's covers the rows its `accuracy` is measured on (as many rows
    as `n_test`, its mean the cell's accuracy); None where the cells hold none, or hold it over all test rows while
    `accuracy` is a headline group's (the group's rows are not recorded, so no interval can take them)."""
    if "correct" not in cells.columns or cells["correct"].isna().any():
        return None
    rows = [correct_rows(str(text)) for text in cells["correct"]]
    counts = cells["n_test"] if "n_test" in cells.columns else [len(row) for row in rows]
    if any(not row or len(row) != int(count) or abs(sum(row) / len(row) - accuracy) > 1e-6
           for row, count, accuracy in zip(rows, counts, cells["accuracy"])):
        return None
    return rows


def compare_rows(cells: pd.DataFrame, reference: str, *, within: Sequence[str] = (), arm_column: str = "arm",
                 n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each arm against `reference` on the shared test rows (the cells' `correct` column): the paired bootstrap
    interval of the accuracy delta over replicates and test rows (`stats.paired_bootstrap`), and where there is
    one replicate the exact McNemar p. The rows are every test row a cell was scored on, not the headline's."""
    if cells["test_rows"].nunique() != 1:
        raise ValueError("compare_rows pairs models row by row, but the cells were scored on different test rows "
                         f"({sorted(cells['test_rows'].unique())})")
    keys, rows = replicate_columns(cells), []
    groups = cells.groupby(list(within), sort=False) if within else [((), cells)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        baseline = group.loc[group[arm_column] == reference, [*keys, "correct"]]
        for arm, scores in group.groupby(arm_column, sort=False):
            if arm == reference:
                continue
            pairs = baseline.merge(scores[[*keys, "correct"]], on=keys, suffixes=("_reference", "_arm"))
            if pairs.empty:
                continue
            a = [correct_rows(text) for text in pairs["correct_reference"]]
            b = [correct_rows(text) for text in pairs["correct_arm"]]
            boot = stats.paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
            mcnemar = stats.mcnemar_exact(a[0], b[0]).p if len(pairs) == 1 else float("nan")
            rows.append({**dict(zip(within, key)), arm_column: arm, "reference": reference,
                         "n_replicates": boot.n_replicates, "n_rows": boot.n_rows, "delta": boot.delta,
                         "ci_low": boot.ci_low, "ci_high": boot.ci_high, "interval_covers": boot.covers,
                         "mcnemar_p": mcnemar})
    return pd.DataFrame(rows, columns=[*within, arm_column, "reference", "n_replicates", "n_rows", "delta",
                                       "ci_low", "ci_high", "interval_covers", "mcnemar_p"])


def reported_groups(cells: pd.DataFrame, headline: Optional[str]) -> list[str]:
    """The per-group accuracy columns worth a table column: every group but the headline, when there are few."""
    groups = [name.removeprefix("accuracy_") for name in cells.columns
              if name.startswith("accuracy_") and name != "accuracy_all"]
    others = [group for group in groups if group != headline]
    return others if len(others) <= 5 else []


# --- results and what is written ---------------------------------------------------------------------------------

@dataclass
class StudyResult:
    """A finished study, whichever it is: per-model cells, the replicate summary, arm-vs-reference comparisons, the
    design, the table and reading written, the figure, the folder, and the study's own extra tables by name."""

    name: str
    cells: pd.DataFrame  # one row per trained model (transfer: per model and test domain)
    summary: pd.DataFrame  # per arm (and x): mean, std, ci_low, ci_high, n replicates
    comparisons: pd.DataFrame  # per arm: paired difference to the reference arm, interval, Holm p, MDE, verdict
    design: dict[str, Any]  # scientific, nuisance and fixed parameters, split seeds and seeds
    table_markdown: str
    reading: str
    figure: Figure
    folder: Path  # runs/<name>/studies/<study>/
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # e.g. "coverage", "learning_rates", "matrix"


@dataclass(frozen=True)
class StudyPlan:
    """Exactly what a study will train: its arms, its (split seed, seed) replicates, and the models by kind, where
    `cells` counts the models scored as cells (a probe fitted once per split counts once per seed, as its cells
    table repeats it) and `extra` the models trained but not scored as cells (MLM pretraining, learning-rate
    selection). `rows_per_cell`: rows each scored model takes in the cells table(s) (transfer: one per test
    domain)."""

    kind: str
    arms: list[str]
    replicates: list[tuple[int, int]]
    cells: dict[str, int]  # model kind (fine-tuned, probe, SetFit) -> scored models
    extra: dict[str, int] = field(default_factory=dict)  # e.g. MLM pretraining runs -> count
    rows_per_cell: int = 1
    # where the run folder already holds stored cells: how many of the study's distinct cells it reuses, and how many
    # it trains (None: nothing stored yet, everything trains)
    reused: Optional[int] = None
    to_train: Optional[int] = None
    reuse_note: Optional[str] = None  # what that count leaves out or folds in (`reuse.PlannedCells.note`)

    @property
    def models(self) -> int:
        """Every model trained: the cells and the extra models."""
        return sum(self.cells.values()) + sum(self.extra.values())

    @property
    def table_rows(self) -> int:
        """The rows the study's cells table(s) will hold."""
        return sum(self.cells.values()) * self.rows_per_cell

    def describe(self) -> str:
        """The plan in a few lines, for a notebook or the runner to print before training."""
        splits = sorted({split for split, _ in self.replicates})
        seeds_used = sorted({seed for _, seed in self.replicates})
        crossed = any(split != seed for split, seed in self.replicates)
        replicate_text = (f"{len(self.replicates)} (split seeds {', '.join(map(str, splits))} × seeds "
                          f"{', '.join(map(str, seeds_used))})" if crossed else
                          f"{len(self.replicates)} (seeds {', '.join(map(str, seeds_used))}, each drawing its rows)")
        trained = ", ".join(f"{count} {kind}" for kind, count in {**self.cells, **self.extra}.items() if count)
        lines = [f"arms: {', '.join(self.arms)}", f"replicates: {replicate_text}",
                 f"models to train: {self.models} ({trained})"]
        if self.reused is not None:
            lines.append(f"stored in the run folder: {self.reused} of {self.reused + self.to_train} cells reused, "
                         f"{self.to_train} to train" + (f" ({self.reuse_note})" if self.reuse_note else ""))
        return "\n".join(lines)


def plan_cells(kind: str, arms: Sequence[str], config: Config, per_replicate: dict[str, int],
               extra_per_replicate: Optional[dict[str, int]] = None, *, rows_per_cell: int = 1) -> StudyPlan:
    """A plan whose every replicate trains the same models: `per_replicate` cells (and extra models) by kind."""
    pairs = replicates(config)
    return StudyPlan(kind, list(arms), pairs, {name: count * len(pairs) for name, count in per_replicate.items()},
                     {name: count * len(pairs) for name, count in (extra_per_replicate or {}).items()},
                     rows_per_cell)


TRAINING_SETTINGS = ("model_name_or_path", "max_seq_length", "truncation", "learning_rate", "num_train_epochs",
                     "per_device_train_batch_size", "eval_strategy", "max_train_samples")


def study_design(config: Config, scientific: dict[str, Any], seed_varies: str, fixed: dict[str, Any], *,
                 tuned: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The study's parameters in the tuning playbook's terms: what is compared, what is tuned per arm (`tuned`:
    setting -> how it is chosen; none by default, a caveat for arms whose best learning rate may differ), what every
    cell shares (the training settings not tuned, then `fixed`), and the replicates."""
    tuned = tuned or {}
    training = {name: getattr(config, name) for name in TRAINING_SETTINGS if name not in tuned}
    nuisance = f"{', '.join(tuned)} tuned per arm" if tuned else "not tuned per arm"
    return {"scientific": scientific, "nuisance": f"{nuisance}; the seed varies {seed_varies}",
            **({"tuned": tuned} if tuned else {}),
            "fixed": {**training, **fixed}, "seeds": seeds(config), "split_seeds": split_seeds(config),
            "replicates": len(replicates(config)), "execution": execution_record(config)}


def execution_record(config: Config) -> dict[str, Any]:
    """How the cells were carried out: the executor and the threads each cell was pinned to (part of every cell's
    key, so a stored cell was trained at this thread count)."""
    return {"executor": chosen_executor(config.execution)[0], "threads_per_cell": threads_per_cell(config.execution)}


def finish(config: Config, name: str, cells: pd.DataFrame, summary: pd.DataFrame, comparisons: pd.DataFrame,
           design: dict[str, Any], table: str, reading: str, figure: Figure, *,
           extra: Optional[dict[str, pd.DataFrame]] = None, record: Optional[dict[str, Any]] = None) -> StudyResult:
    """How every study ends: the design paragraph (`tables.design_markdown`, the one place it is written) above
    `table`, each table as studies/<name>/<table>.csv (atomic writes), the study's entry in metrics.json, and its
    `StudyResult`.

    `extra` holds the study's own tables (written beside cells, summary and comparisons, and recorded in
    metrics.json as rows); `record` other plain values for its metrics.json entry, which win over an extra table's
    rows of the same name (a table kept in another JSON form). Per-row correctness goes to correct.csv (one row per
    cell), out of cells.csv, which stays readable.
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & {"cells", "summary", "comparisons", "correct"})
    if clash:
        raise ValueError(f"{name}: extra tables {clash} would overwrite the tables every study writes; rename them")
    reference = comparisons["reference"].iloc[0] if len(comparisons) else None
    table_markdown = design_markdown(design, reference, comparisons) + "\n\n" + table
    frames = {"cells": cells.drop(columns=["correct"], errors="ignore"), "summary": summary,
              "comparisons": comparisons, **extra}
    if "correct" in cells.columns:
        keys = [column for column in cells.columns if column in ("arm", "k_label", *REPLICATE_COLUMNS, "test_rows")]
        frames["correct"] = cells[[*keys, "correct"]]
    folder = runs.run_folder(config).study(name)
    for file_name, frame in frames.items():
        if len(frame.columns):  # a study without arm comparisons (transfer) writes no empty comparisons.csv
            atomic_write_text(folder / f"{file_name}.csv", frame.to_csv(index=False))
    pipeline.update_study(config, name, {
        **design,
        "summary": records(summary),
        "comparisons": records(comparisons),
        **{table_name: records(frame) for table_name, frame in extra.items()},
        **(record or {}),
        "table_markdown": table_markdown,
        "reading": reading,
    })
    return StudyResult(name=name, cells=cells, summary=summary, comparisons=comparisons, design=design,
                       table_markdown=table_markdown, reading=reading, figure=figure, folder=folder, extra=extra)


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
