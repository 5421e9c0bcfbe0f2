"""One process at a time in a run folder: an OS lock (`fcntl.flock`) on runs/<name>/.lock that dies with its holder.

Hands the runner and the studies engine `hold_run_folder`, which stops a second process with one line naming the
holder (pid, host, start time, command), takes over a lock a killed process left, and lets a notebook kernel started
by the holding runner through (`LOCK_HOLDER_ENV`).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

# Set by the runner for the kernels it starts: the pid holding the lock, so a study in that kernel does not wait on
# (or refuse) its own runner's lock.
LOCK_HOLDER_ENV = "OTHERDATA_LOCK_HOLDER"
LOCK_FILE = ".lock"


class RunFolderBusy(RuntimeError):
    """Another live process holds the run folder."""


def holder_text(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}, "
            f"command: {holder.get('command')}")


def _read_holder(handle) -> Optional[dict[str, Any]]:
    handle.seek(0)
    text = handle.read()
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": text.strip()[:200]}


@contextmanager
def hold_run_folder(folder: Path, *, say=print) -> Iterator[dict[str, Any]]:
    """Hold `folder` for this process until the block ends; yields the holder record.

    Raises `RunFolderBusy` where another live process holds it. A record left in the file by a process that no
    longer holds the OS lock (killed) is taken over, and `say` reports it. Re-entrant: a block inside a block of
    the same process, or in a kernel whose runner (LOCK_HOLDER_ENV) holds the lock, passes through.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle) or {}
            allowed = {str(os.getpid()), os.environ.get(LOCK_HOLDER_ENV, "")}
            if str(holder.get("pid")) in allowed and holder.get("host") == socket.gethostname():
                yield holder  # our own runner, or an outer block of this process, holds it
                return
            raise RunFolderBusy(f"{folder} is in use by another process ({holder_text(holder)}); wait for it to "
                                "finish, stop it, or give this run another --out") from None
        left = _read_holder(handle)
        if left:
            say(f"{folder}: took over the lock left by a process that is gone ({holder_text(left)})")
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        try:
            yield holder
        finally:
            handle.seek(0)
            handle.truncate()  # an empty file: released cleanly, nothing to take over
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
