"""Carries out a study's cells: one after another in this process, or as Ray tasks (`execution.executor: ray`).

Takes `CellJob`s (a module-level fit function, its plain arguments and rows); yields each finished cell's measured
columns as it finishes, so the engine stores it at once. Threads are pinned the same way on both paths.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from datasets import Dataset

from ..config import Config
from ..execution import Execution, available_cores, chosen_executor
from .store import in_work_folder


@dataclass(frozen=True)
class CellJob:
    """One cell to train: `fit(config, train, validation, test, label_names, work_dir, **arguments)` returns the
    cell's measured columns; `fit` is a module-level function so that it pickles by name for a Ray worker."""

    key: str
    fit: Callable[..., dict[str, Any]]
    config: Config
    train: Dataset
    validation: Dataset
    arguments: dict[str, Any] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict)  # the cells-table columns that name it: seeds, arm, facts
    inputs: dict[str, Any] = field(default_factory=dict)  # its key's inputs as plain JSON, kept beside its row
    label: str = ""  # how the progress line names the cell

    @property
    def cost(self) -> float:
        """Training rows × epochs: the longest cells go to Ray first, so no worker is left with one at the end."""
        return len(self.train) * max(float(self.config.num_train_epochs), 1.0)


def thread_environment(threads: int) -> dict[str, str]:
    """What a worker's native libraries read at start-up: OpenMP and MKL pools of `threads`, no tokenizer pool."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}


def pin_threads(threads: int) -> None:
    """Every cell trains with `threads` intra-op threads (torch, OpenMP, MKL) and one inter-op thread where torch
    still allows setting it (only before its first parallel work), whatever executor runs it."""
    os.environ.update(thread_environment(threads))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass


def run_job(job: CellJob, test: Dataset, label_names: list[str], work_root: str,
            threads: int) -> tuple[dict[str, Any], float]:
    """One cell, where it runs (this process or a Ray worker): its measured columns and its wall seconds."""
    pin_threads(threads)
    started = time.perf_counter()
    measured = in_work_folder(Path(work_root), job.key, lambda folder: job.fit(
        job.config, job.train, job.validation, test, label_names, folder, **job.arguments))
    return measured, time.perf_counter() - started


def portable(rows: Any) -> Any:
    """A Dataset whose rows travel with it: a memory-mapped one would pickle only its cache file's path, which a
    worker on another machine does not have."""
    if isinstance(rows, Dataset):
        return Dataset.from_dict(rows.to_dict(), features=rows.features)
    return rows


def execute(jobs: Sequence[CellJob], execution: Execution, threads: int, test: Dataset, label_names: list[str],
            work_root: Path) -> Iterator[tuple[CellJob, dict[str, Any], float]]:
    """Each job's (job, measured columns, seconds), in the order they finish."""
    if chosen_executor(execution)[0] == "ray":
        yield from _execute_on_ray(jobs, execution, threads, test, label_names, work_root)
        return
    for job in jobs:
        measured, seconds = run_job(job, test, label_names, str(work_root), threads)
        yield job, measured, seconds


def _ray():
    # Ray is the optional `ray` extra and takes seconds to import: only a study run with executor ray needs it.
    try:
        import ray
    except ImportError:
        raise ImportError("execution.executor: ray needs Ray: pip install -e '.[ray]' (the `ray` extra), or set "
                          "execution.executor: serial") from None
    return ray


def _execute_on_ray(jobs: Sequence[CellJob], execution: Execution, threads: int, test: Dataset,
                    label_names: list[str], work_root: Path) -> Iterator[tuple[CellJob, dict[str, Any], float]]:
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "runtime_env": {"env_vars": thread_environment(threads)}}
        if execution.ray_address is None:
            options["num_cpus"] = available_cores()
        ray.init(address=execution.ray_address, **options)
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(run_job)
        shared_test = ray.put(portable(test))
        pending = {}
        for job in sorted(jobs, key=lambda job: -job.cost):
            travelling = replace(job, train=portable(job.train), validation=portable(job.validation),
                                 arguments={name: portable(value) for name, value in job.arguments.items()})
            pending[remote.remote(travelling, shared_test, label_names, str(work_root), threads)] = job
        try:
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    job = pending.pop(ref)
                    measured, seconds = ray.get(ref)
                    yield job, measured, seconds
        finally:
            for ref in pending:  # a failed cell, or the driver stopped: the others need not go on
                ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()
