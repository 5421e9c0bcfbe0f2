"""Progress a user at a terminal can read: one line per finished cell or per stretch of training steps.

Hands the engine and the training loop `say`, which reaches the runner's terminal from inside a notebook kernel
(the runner names a progress log, `PROGRESS_ENV`, and prints each line appended to it) and prints elsewhere.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Optional

# Set by the runner for the kernels it starts: the file whose new lines it prints in its terminal. A kernel's own
# stdout and stderr go to the notebook, never to the terminal the runner was started from.
PROGRESS_ENV = "OTHERDATA_PROGRESS_LOG"


def to_runner() -> bool:
    """Whether a runner is showing this process's progress lines."""
    return bool(os.environ.get(PROGRESS_ENV))


def say(line: str) -> None:
    """One progress line: appended to the runner's progress log under a runner, else printed to stderr."""
    target = os.environ.get(PROGRESS_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as log:
            log.write(line.rstrip("\n") + "\n")
    else:
        print(line, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """`24 s`, `14 min`, `2.5 h`: rounded the way a person reads a wait."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def time_left(elapsed: float, done: int, remaining: int) -> Optional[str]:
    """`about 14 min left` at the pace so far (wall time per finished item, so parallel work counts as such);
    None before anything finished or when nothing is left."""
    if done <= 0 or remaining <= 0:
        return None
    return f"about {duration(elapsed / done * remaining)} left"


class StepLines:
    """Training steps for the terminal: a line every `every_seconds` (and at the last step) with the step, the
    last logged loss and the time left at the pace so far. Silent when `enabled` is false."""

    def __init__(self, total_steps: int, first_step: int = 0, *, enabled: bool, every_seconds: float = 30.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.total, self.first, self.enabled, self.every = total_steps, first_step, enabled, every_seconds
        self.started = self.last = self.clock()
        self.loss: Optional[float] = None

    def update(self, step: int) -> None:
        now = self.clock()
        if not self.enabled or (now - self.last < self.every and step < self.total):
            return
        self.last = now
        pace = (now - self.started) / max(step - self.first, 1)
        loss = f" · loss {self.loss:.4f}" if self.loss is not None else ""
        left = f" · about {duration(pace * (self.total - step))} left" if step < self.total else ""
        say(f"training step {step}/{self.total}{loss} · {duration(now - self.started)}{left}")
