"""The cell store: every finished cell of a study kept in its run folder under a key of what determined it.

Takes a cell's inputs (fine-tuning parameters, arm, seeds, facts, the ordered rows, label names, library versions,
threads); hands the engine `cell_key`, `CellStore` (read a finished cell back, write one atomically as it finishes)
and `work_folders` (per-cell scratch folders under the run folder, leftovers of a killed run removed).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import accelerate
import datasets
import sklearn
import torch
import transformers
from datasets import Dataset

from ..config import Config
from ..io import atomic_write_json, read_json
from ..modeling import training_pooling
from ..step_records import PARAMS_ADDED_LATER, TRAINING_PARAMS, training_precision
from .sampling import column

# The config fields a cell's result depends on: what fine-tuning reads (`step_records.TRAINING_PARAMS`, the 03 step's
# list) and what a cell adds to it: its own seed and target domain (the 03 step records them with its data), and the
# evaluation batch, checkpoint and logging settings its scoring runs under. A cell is retrained when one changes.
# Which rows a cell trains on is not here: the rows themselves are keyed (`ordered_fingerprint`), so a study
# parameter that picks rows (k, split seeds, mixing) moves only the cells whose rows it changes. `mixed_precision` is
# keyed as it resolves on this host (`auto` is bf16 on an AMX host, fp32 on an AVX2 one), so no host reuses a cell
# computed in another precision; `pooling` as it resolves for the model (`auto` is mean for the packaged MiniLM), so
# an auto cell and an explicit one of the same pooling are the same cell.
CELL_FIELDS = ("per_device_eval_batch_size", "save_strategy", "logging_steps", "target_domain", "seed")
FINE_TUNING_FIELDS = TRAINING_PARAMS + CELL_FIELDS
KEY_VERSION = 1  # raised when what a stored cell holds changes meaning: every older cell is then trained again


def library_versions() -> dict[str, str]:
    """The libraries whose versions can move a cell's numbers."""
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__, "datasets": datasets.__version__,
            "scikit-learn": sklearn.__version__}


def ordered_fingerprint(rows: Dataset) -> str:
    """A hash of the rows' ids, texts and labels (those present) in their order: training sees them in this order."""
    digest = hashlib.sha256()
    present = [column(rows, name) for name in ("id", "text", "label") if name in rows.column_names]
    for values in zip(*present):
        digest.update(("\x1f".join(map(str, values)) + "\x1e").encode())
    return digest.hexdigest()[:16]


def fine_tuning_parameters(config: Config) -> dict[str, Any]:
    params = {**config.to_params(), "mixed_precision": training_precision(config).mode,
              "pooling": training_pooling(config)}
    # A parameter added later is left out at its old behaviour's value, so cells stored before it existed keep
    # their keys (a pooling: cls cell is the same model it always was); other values key cells of their own.
    return {name: params[name] for name in FINE_TUNING_FIELDS
            if name in params and PARAMS_ADDED_LATER.get(name, object()) != params[name]}


def plain(value: Any) -> Any:
    """A key input as JSON: rows by their ordered fingerprint, functions by their qualified name."""
    if isinstance(value, Dataset):
        return {"rows": len(value), "fingerprint": ordered_fingerprint(value)}
    if isinstance(value, Config):
        return fine_tuning_parameters(value)
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def cell_key(inputs: dict[str, Any]) -> str:
    """The hash of a cell's inputs (`plain` JSON, sorted keys): equal inputs, equal key."""
    text = json.dumps({"key_version": KEY_VERSION, **plain(inputs)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class CellStore:
    """Finished cells as runs/<name>/cells/<key>.json: the cells-table row (and its column order), seconds, and the
    key's inputs."""

    folder: Path

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> Optional[dict[str, Any]]:
        """The stored row of a finished cell, or None. A file that does not read back is trained again."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            stored = read_json(path)
            row = stored["row"]
            # JSON keeps keys sorted; the row's own column order comes back from `columns`
            return {name: row[name] for name in stored.get("columns", row)}
        except (ValueError, KeyError, TypeError):
            return None

    def forget(self, key: str) -> None:
        """Drop a stored cell, so that the next run trains it again (e.g. an encoder cell whose files are gone)."""
        self.path(key).unlink(missing_ok=True)

    def write(self, key: str, row: dict[str, Any], inputs: dict[str, Any], seconds: float) -> Path:
        """Written under a temporary name and renamed: a cell killed mid-write is simply not there."""
        return atomic_write_json(self.path(key), {"key": key, "row": row, "columns": list(row),
                                                  "seconds": round(seconds, 2), "inputs": plain(inputs)})


def clear_work(root: Path) -> None:
    """Remove every cell work folder under `root` (what a killed run left); the holder of the run folder's lock
    calls it before its cells start."""
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)


def in_work_folder(root: Path, key: str, work: Callable[[Path], Any]) -> Any:
    """`work(folder)` in the cell's own scratch folder under `root`, removed when it returns or raises."""
    folder = Path(root) / key
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return work(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
