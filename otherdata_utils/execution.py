"""How a study's cells are carried out: one after another in this process, or as Ray tasks; threads per cell.

Hands the config its `execution:` block (`Execution`) and the studies engine the thread count every cell runs with
(`threads_per_cell`), the same rule in both executors so their cells give the same results.
"""
from __future__ import annotations

import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class Execution(BaseModel):
    """`execution: {executor: ray, ray_address: auto, threads_per_cell: 1}` in a params file."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    executor: Literal["serial", "ray"] = "serial"  # serial: cells one after another in the notebook's process
    ray_address: Optional[str] = None  # null: a local Ray started for the run; "auto" or "host:port": a cluster
    threads_per_cell: Optional[int] = Field(None, ge=1)  # null: `threads_per_cell`'s rule


def available_cores() -> int:
    """Cores this process may run on: OMP_NUM_THREADS where the user set it, else the CPU affinity's size."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_cell(execution: Execution) -> int:
    """The threads one cell trains with: the configured count; unset, every available core for serial cells (one
    cell at a time) and 1 for Ray (a worker per core). A cell's results depend on it, so it is part of its key."""
    if execution.threads_per_cell is not None:
        return execution.threads_per_cell
    return available_cores() if execution.executor == "serial" else 1
