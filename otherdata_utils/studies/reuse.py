"""What a study's run folder already holds: each cell's store key as `run_cells` computes it, which cells are stored,
and a plan that counts the cells it will reuse.

Takes a study's cells (`engine.Cell`) and its plan (`engine.StudyPlan`); hands the studies `stored_cells`,
`forget_cells` and `with_reuse`, and the notebooks (through each study's `plan`) the reuse counts.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from datasets import Dataset

from .. import runs
from ..config import Config
from ..execution import threads_per_cell
from .engine import Cell, StudyPlan, cell_job
from .store import CellStore


def cell_keys(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
              headline: Optional[str] = None, groups: Optional[Sequence[str]] = None) -> list[str]:
    """Each cell's store key, as `run_cells` with the same arguments computes it."""
    threads = threads_per_cell(config.execution)
    return [cell_job(config, cell, test, label_names, headline=headline, groups=groups, threads=threads).key
            for cell in cells]


def stored_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
                 headline: Optional[str] = None, groups: Optional[Sequence[str]] = None) -> list[bool]:
    """Whether each cell is already in the run folder's cell store: what `run_cells` (with the same arguments)
    would read back instead of training."""
    store = CellStore(runs.run_folder(config).cells)
    return [store.path(key).is_file()
            for key in cell_keys(config, cells, test, label_names, headline=headline, groups=groups)]


def forget_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str]) -> None:
    """Drop the cells from the store (`CellStore.forget`): the next `run_cells` trains them again."""
    store = CellStore(runs.run_folder(config).cells)
    for key in cell_keys(config, cells, test, label_names):
        store.forget(key)


@dataclass(frozen=True)
class PlannedCells:
    """A study's cells as `run_cells` takes them, built from the run folder's prepared data: what a plan counts
    against the cell store."""

    cells: list[Cell]
    test: Dataset
    label_names: list[str]
    headline: Optional[str] = None
    groups: Optional[Sequence[str]] = None


def with_reuse(plan: StudyPlan, config: Config, planned: Callable[[Config], PlannedCells]) -> StudyPlan:
    """`plan` with the cells the run folder's store will give back and those left to train, where it holds any
    (a re-run, or a study grown by a seed or a k); `planned` builds the cells only then."""
    folder = runs.run_folder(config).cells
    if not folder.is_dir() or not any(folder.glob("*.json")):
        return plan
    built = planned(config)
    keys = cell_keys(config, built.cells, built.test, built.label_names, headline=built.headline,
                     groups=built.groups)
    store = CellStore(folder)
    reused = sum(store.path(key).is_file() for key in set(keys))
    return replace(plan, reused=reused, to_train=len(set(keys)) - reused)
