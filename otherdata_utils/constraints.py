"""The constraints file: the exact versions the published results were made with, and how an install compares to it.

Hands on the file `make` and Colab install with (`constraints_file`, `read_pins`) and, for each run's
environment.json, its path, sha256 and the installed versions that differ from it (`constraints_record`). Standard
library only: colab.py imports it before anything is installed.
"""
from __future__ import annotations

import hashlib
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

# The file the environment was installed with: make exports it, Colab's set-up sets it; empty means none was used.
CONSTRAINTS_ENV = "OTHERDATA_CONSTRAINTS"
CONSTRAINTS_NAME = "constraints.txt"
# In a clone (editable install) the file sits beside the package; an installed wheel has none.
PROJECT_CONSTRAINTS = Path(__file__).resolve().parents[1] / CONSTRAINTS_NAME
_PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")

Versions = Callable[[str], Optional[str]]


def normalised(name: str) -> str:
    """'jupyter_client' -> 'jupyter-client': a distribution name as PyPI compares names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_file() -> Optional[Path]:
    """$OTHERDATA_CONSTRAINTS when set (empty: installed without one), else the clone's constraints.txt if any."""
    named = os.environ.get(CONSTRAINTS_ENV)
    if named is not None:
        return Path(named) if named else None
    return PROJECT_CONSTRAINTS if PROJECT_CONSTRAINTS.is_file() else None


def read_pins(path: Path) -> dict[str, str]:
    """Normalised name -> pinned version, from a file of `name==version` lines (comments and blanks skipped)."""
    pins: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        pin = _PIN.fullmatch(text)
        if pin is None:
            raise ValueError(f"{path}, line {number}: expected one `name==version` pin, got {text!r}")
        pins[normalised(pin.group(1))] = pin.group(2)
    return pins


def installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def constraints_record(path: Optional[Path] = None, version: Versions = installed_version) -> dict[str, Any]:
    """Which constraints file this environment was installed with (path, sha256) and the installed distributions
    whose version differs from its pin. A pin for a distribution that is not installed is no mismatch: constraints
    only limit what is installed. Build tags do not count (torch 2.13.0+cpu matches torch==2.13.0, as in pip)."""
    path = constraints_file() if path is None else Path(path)
    if path is None:
        return {"path": None, "sha256": None, "matches": None, "mismatches": [],
                "note": f"no constraints file known ({CONSTRAINTS_ENV} is empty, or no {CONSTRAINTS_NAME} beside the "
                        "package): the installed versions are not compared with the published ones"}
    if not path.is_file():
        raise FileNotFoundError(f"{CONSTRAINTS_ENV}={path}: no such constraints file; point it at the "
                                f"{CONSTRAINTS_NAME} the environment was installed with, or set it empty")
    mismatches = []
    for name, pinned in sorted(read_pins(path).items()):
        found = version(name)
        if found is not None and found.split("+", 1)[0] != pinned.split("+", 1)[0]:
            mismatches.append({"package": name, "pinned": pinned, "installed": found})
    return {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "matches": not mismatches, "mismatches": mismatches}
