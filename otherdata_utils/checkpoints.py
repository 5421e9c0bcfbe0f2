"""Checkpoints of the training loop: where the loop is (`LoopState`), saving it with the Accelerator state under
checkpoints/step-N atomically, finding one to resume from, and resuming.

Hands `train` (the loop) and the runner (which lists checkpoints to resume) these; it trains nothing itself.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from accelerate import Accelerator

from .io import atomic_write_json, read_json

CHECKPOINTS = "checkpoints"
LOOP_STATE = "loop_state.json"


@dataclass
class LoopState:
    """Where the loop is: enough to continue the same run from a checkpoint (written as loop_state.json)."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # batches of `epoch` already consumed on each process
    best_metric: Optional[float] = None
    best_step: Optional[int] = None
    patience_counter: int = 0
    total_steps: int = 0
    batches_per_epoch: int = 0
    # The loss summed since the last logged step (mean over processes) and its batches, so that a resumed run
    # logs the same mean losses as an uninterrupted one.
    running_loss: float = 0.0
    running_batches: int = 0
    history: list[dict] = field(default_factory=list)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints (they hold loop_state.json) under output_dir/checkpoints, oldest step first."""
    root = Path(output_dir) / CHECKPOINTS
    found = [p for p in root.glob("step-*") if re.fullmatch(r"step-\d+", p.name) and (p / LOOP_STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_checkpoint(resume_from_checkpoint: Optional[str], output_dir: Path) -> Optional[Path]:
    """None (start afresh), the latest checkpoint for "auto" (None if there is none yet), or the folder named."""
    if resume_from_checkpoint is None:
        return None
    if resume_from_checkpoint == "auto":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    folder = Path(resume_from_checkpoint).expanduser()
    if not (folder / LOOP_STATE).is_file():
        raise ValueError(
            f"resume_from_checkpoint={resume_from_checkpoint!r}: {folder} is not a complete checkpoint (no "
            f"{LOOP_STATE}); use 'auto' or one of {[str(p) for p in list_checkpoints(output_dir)]}"
        )
    return folder


def save_checkpoint(accelerator: Accelerator, output_dir: Path, state: LoopState, save_total_limit: int) -> Path:
    """Accelerator state (model, optimizer, scheduler, RNG) plus loop_state.json in checkpoints/step-N.

    Written under a temporary name and renamed when complete; then only the newest `save_total_limit`
    checkpoints are kept, and the best one.
    """
    root = Path(output_dir) / CHECKPOINTS
    final = root / f"step-{state.global_step}"
    partial = root / f".step-{state.global_step}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_json(partial / LOOP_STATE, asdict(state))
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
        for old in list_checkpoints(output_dir)[:-save_total_limit]:
            if old.name != f"step-{state.best_step}":
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resume(accelerator: Accelerator, checkpoint: Path, fresh: LoopState) -> LoopState:
    """The loop state saved in `checkpoint`, with the accelerator state loaded, if it fits this run's steps."""
    saved = read_json(checkpoint / LOOP_STATE)
    if (saved["total_steps"], saved["batches_per_epoch"]) != (fresh.total_steps, fresh.batches_per_epoch):
        raise ValueError(
            f"resume_from_checkpoint: {checkpoint} was saved by a run with {saved['total_steps']} steps of "
            f"{saved['batches_per_epoch']} batches per epoch, this one has {fresh.total_steps} and "
            f"{fresh.batches_per_epoch}; resume with the same data, batch sizes and epochs, or start afresh"
        )
    accelerator.load_state(str(checkpoint))
    return LoopState(**saved)
