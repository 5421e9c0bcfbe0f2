"""How a study's cells are carried out: one after another in this process, or as Ray tasks; threads per cell.

Hands the config its `execution:` block (`Execution`), the executor `auto` picks on this host with its reason
(`chosen_executor`), and the studies engine the thread count every cell runs with (`threads_per_cell`), the same
rule in both executors.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class Execution(BaseModel):
    """`execution: {executor: ray, ray_address: auto, threads_per_cell: 1}` in a params file."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # serial: cells one after another in the notebook's process; ray: a worker per core; auto: `chosen_executor`
    executor: Literal["auto", "serial", "ray"] = "auto"
    ray_address: Optional[str] = None  # null: a local Ray started for the run; "auto" or "host:port": a cluster
    threads_per_cell: Optional[int] = Field(None, ge=1)  # null: `threads_per_cell`'s rule


def available_cores() -> int:
    """Cores this process may run on: OMP_NUM_THREADS where the user set it, else the CPU affinity's size."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ray_installed() -> bool:
    """Whether Ray (the optional `ray` extra) can be imported, without importing it (that takes seconds)."""
    return importlib.util.find_spec("ray") is not None


def chosen_executor(execution: Execution) -> tuple[str, str]:
    """The executor that runs the cells ("serial" or "ray"), and a note for the progress line on why `auto` chose
    it where that is worth saying (several cores: Ray, or serial because Ray is not installed); "" otherwise.

    `auto` picks Ray on a host with several cores where Ray is installed: one-thread cells side by side use the
    cores better than one cell at a time on all of them (the kitchen few-shot slice measured 1.16× faster with
    2 workers × 1 thread than serially at 2 threads, params/study_few_shot_kitchen.yaml). Elsewhere it runs serially.
    """
    if execution.executor != "auto":
        return execution.executor, ""
    if execution.ray_address is not None:
        return "ray", f"auto: ray_address {execution.ray_address} names a Ray cluster"
    cores = available_cores()
    if cores < 2:
        return "serial", ""  # one core: one cell at a time whatever runs it
    if not ray_installed():
        return "serial", (f"auto: {cores} cores, but Ray is not installed; pip install -e '.[ray]' runs a "
                          "one-thread worker per core")
    return "ray", f"auto: {cores} cores and Ray installed, so a one-thread worker per core"


def threads_per_cell(execution: Execution) -> int:
    """The threads one cell trains with: the configured count; unset, every available core for serial cells (one
    cell at a time) and 1 for Ray (a worker per core). A cell's results depend on it, so it is part of its key."""
    if execution.threads_per_cell is not None:
        return execution.threads_per_cell
    return available_cores() if chosen_executor(execution)[0] == "serial" else 1
