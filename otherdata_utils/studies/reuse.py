"""What a study's run folder already holds: each cell's store key as `run_cells` computes it, which cells are stored,
and a plan that counts the cells it will reuse.

Takes a study's cells (`engine.Cell`) and its plan (`engine.StudyPlan`); hands the studies `stored_rows`,
`stored_cells`, `forget_cells` and `with_reuse`, and the notebooks (through each study's `plan`) the reuse counts.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence, Union

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


def stored_rows(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
                headline: Optional[str] = None, groups: Optional[Sequence[str]] = None
                ) -> list[Optional[dict[str, Any]]]:
    """Each cell's row as the run folder's cell store holds it, or None: what `run_cells` (with the same arguments)
    would read back instead of training."""
    store = CellStore(runs.run_folder(config).cells)
    return [store.read(key) for key in cell_keys(config, cells, test, label_names, headline=headline, groups=groups)]


def stored_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str], *,
                 headline: Optional[str] = None, groups: Optional[Sequence[str]] = None) -> list[bool]:
    """Whether each cell is already in the run folder's cell store (`stored_rows`)."""
    return [row is not None for row in stored_rows(config, cells, test, label_names, headline=headline,
                                                   groups=groups)]


def forget_cells(config: Config, cells: Sequence[Cell], test: Dataset, label_names: list[str]) -> None:
    """Drop the cells from the store (`CellStore.forget`): the next `run_cells` trains them again."""
    store = CellStore(runs.run_folder(config).cells)
    for key in cell_keys(config, cells, test, label_names):
        store.forget(key)


@dataclass(frozen=True)
class PlannedCells:
    """Cells as one `run_cells` call takes them, built from the run folder's data: what a plan counts against the
    cell store. `note` says what the count leaves out or folds in (e.g. an MLM run inside its cell)."""

    cells: list[Cell]
    test: Dataset
    label_names: list[str]
    headline: Optional[str] = None
    groups: Optional[Sequence[str]] = None
    note: Optional[str] = None


def with_reuse(plan: StudyPlan, config: Config,
               planned: Callable[[Config], Union[PlannedCells, Sequence[PlannedCells]]]) -> StudyPlan:
    """`plan` with the cells the run folder's store will give back and those left to train, where it holds any
    (a re-run, or a study grown by a seed or a k); `planned` builds the cells (of each `run_cells` call, for a study
    that makes several) only then."""
    folder = runs.run_folder(config).cells
    if not folder.is_dir() or not any(folder.glob("*.json")):
        return plan
    built = planned(config)
    parts = [built] if isinstance(built, PlannedCells) else list(built)
    keys = {key for part in parts for key in cell_keys(config, part.cells, part.test, part.label_names,
                                                       headline=part.headline, groups=part.groups)}
    store = CellStore(folder)
    reused = sum(store.read(key) is not None for key in keys)  # what run_cells reads back: a torn file trains
    notes = "; ".join(part.note for part in parts if part.note)
    return replace(plan, reused=reused, to_train=len(keys) - reused, reuse_note=notes or None)
