"""How a study's cells best use the cores: a slice of cells run serially (all cores per cell) and on Ray workers
(one core per cell), the same cells, timed end to end through the study engine's executor.

Hands on each layout's wall time and each cell's scores, for `tables.summarise_study_layout` to compare.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from .. import data
from ..config import Config
from ..execution import Execution, available_cores
from ..studies.engine import cell_config, fine_tune_cell
from ..studies.executor import CellJob, execute
from .workload import BenchSettings, log

# what a cell's scores are compared on: every test row's correctness and the summaries (not its seconds)
SCORE_COLUMNS = ("accuracy", "macro_f1", "n_train", "n_test", "test_rows", "correct")


def slice_jobs(settings: BenchSettings, data_dir: Path, workdir: Path) -> tuple[list[CellJob], Dataset, list[str]]:
    """`settings.study_cells` UCI-sentence cells, one per seed, each on its own seeded draw of training rows, all
    scored on the same test rows: the shape of the transfer and few-shot studies' cells, small enough for a bench."""
    source = data.load_source("uci_sentences", Path(data_dir), seed=settings.seed)
    label_names = list(source["train"].features["label"].names)
    test = source["test"].shuffle(seed=settings.seed).select(range(settings.study_test_rows))
    validation = source["validation"].select(range(min(16, len(source["validation"]))))  # read by no cell
    config = Config(model_name_or_path=settings.model, max_seq_length=64, per_device_train_batch_size=16,
                    learning_rate=1e-4, num_train_epochs=2, warmup_ratio=0.1, eval_strategy="no",
                    save_strategy="no", load_best_model_at_end=False, quiet=True, seed=settings.seed,
                    cache_dir=str(workdir / "cache"), output_dir=str(workdir / "run"))
    jobs = []
    for seed in range(1, settings.study_cells + 1):
        rows = source["train"].shuffle(seed=seed).select(range(settings.study_train_rows)).flatten_indices()
        jobs.append(CellJob(key=f"seed-{seed}", fit=fine_tune_cell, config=cell_config(config, seed), train=rows,
                            validation=validation, arguments={"headline": None, "groups": None},
                            label=f"seed {seed}"))
    return jobs, test, label_names


def run_layout(jobs: list[CellJob], execution: Execution, threads: int, test: Dataset, label_names: list[str],
               work_root: Path) -> dict[str, Any]:
    """Every job through the executor as a study runs them; wall time from the first job handed over to the last
    result back (Ray's start-up included: a study pays it too), and each cell's scores."""
    before = torch.get_num_threads()
    work_root.mkdir(parents=True, exist_ok=True)
    cells: dict[str, dict[str, Any]] = {}
    cell_seconds: dict[str, float] = {}
    tick = time.perf_counter()
    try:
        for job, measured, seconds in execute(jobs, execution, threads, test, label_names, work_root):
            cells[job.key] = {column: measured[column] for column in SCORE_COLUMNS}
            cell_seconds[job.key] = seconds
            log(f"study layout {execution.executor} ({threads} thread(s) per cell): {job.label} in {seconds:.1f} s")
    finally:
        torch.set_num_threads(before)  # the serial path pins this process's threads to the cell's count
    return {"executor": execution.executor, "threads_per_cell": threads,
            "workers": 1 if execution.executor == "serial" else available_cores() // threads,
            "seconds": time.perf_counter() - tick, "cell_seconds": cell_seconds, "cells": cells}


def compare_layouts(settings: BenchSettings, data_dir: Path, workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same slice serially at every core per cell, then on Ray at one core per cell (a worker per core)."""
    cores = available_cores()
    jobs, test, label_names = slice_jobs(settings, data_dir, workdir)
    log(f"study layout: {len(jobs)} cells serially at {cores} threads, then on Ray at {cores} workers × 1 thread")
    serial = run_layout(jobs, Execution(executor="serial"), cores, test, label_names, workdir / "serial")
    ray = run_layout(jobs, Execution(executor="ray"), 1, test, label_names, workdir / "ray")
    return serial, ray
