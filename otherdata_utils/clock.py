"""The run's clock: how long each runner invocation took, on which host class, in which precision and layout.

Written by the runner into the run folder as `clock.json` (one entry per invocation, so a resumed run adds up);
`publish` copies it beside the findings and `clock_line` says it in the one line a study's params file states
("measured: 30.7 min wall on AVX-512 + AMX, 2 cores, fp32, serial"). Timings compare only within a host class.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

from .config import Config
from .execution import chosen_executor, threads_per_cell
from .io import atomic_write_json, read_json
from .precision import host_class, resolve_precision
from .runs import RunFolder, run_folder

def record_invocation(config: Config, seconds: float, notebooks: list[str], *, completed: bool) -> Path:
    """Add one runner invocation to the run folder's clock.json (atomically), keeping the earlier ones."""
    path = run_folder(config).clock
    earlier = read_json(path)["invocations"] if path.is_file() else []
    choice = resolve_precision(config.mixed_precision)
    execution = config.execution
    entry = {
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(seconds, 1),
        "notebooks": notebooks,
        "completed": completed,
        "host_class": host_class(),
        "precision": choice.label,
        "precision_reason": choice.reason,
        "layout": f"{chosen_executor(execution)[0]}, {threads_per_cell(execution)} thread(s) per cell",
    }
    invocations = [*earlier, entry]
    return atomic_write_json(path, {"invocations": invocations,
                                    "total_wall_seconds": round(sum(i["wall_seconds"] for i in invocations), 1)})


def clock_line(run_dir: Path) -> Optional[str]:
    """The run's wall time in one line for a params file or a report; None where the run kept no clock."""
    path = RunFolder(Path(run_dir)).clock
    if not path.is_file():
        return None
    clock: dict[str, Any] = read_json(path)
    invocations = clock["invocations"]
    classes = sorted({i["host_class"] for i in invocations})
    precisions = sorted({i["precision"] for i in invocations})
    layouts = sorted({i["layout"] for i in invocations})
    minutes = clock["total_wall_seconds"] / 60
    resumed = f" over {len(invocations)} invocations" if len(invocations) > 1 else ""
    when = invocations[-1]["finished_at"][:10]
    return (f"measured {when}: {minutes:.1f} min wall{resumed} on {' / '.join(classes)}, "
            f"{' / '.join(precisions)}, {' / '.join(layouts)}")
