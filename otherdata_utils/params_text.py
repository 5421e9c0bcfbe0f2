"""Parameters as text: a params YAML file, papermill's overrides, a --set key=value, read into plain values.

Every problem is a `ConfigError` naming the file, line or value; config.py validates the values and builds the Config.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    """A parameter is unknown, ill-typed or impossible; the message names it and what is allowed."""


def parse_overrides(overrides: Union[dict[str, Any], str, None]) -> dict[str, Any]:
    """Overrides as a dict: a mapping as is, a YAML/JSON mapping given as text parsed; anything else is a
    `ConfigError` saying what was given."""
    if overrides is None:
        return {}
    if isinstance(overrides, str):
        try:
            parsed = yaml.safe_load(overrides) if overrides.strip() else {}
        except yaml.YAMLError as error:
            raise ConfigError(f"overrides {overrides!r}: not YAML/JSON text ({error.__class__.__name__}); write a "
                              'mapping such as {"seed": 1}') from None
        overrides = {} if parsed is None else parsed
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a mapping of parameter names to values (or such a mapping as "
                          f"YAML/JSON text), got a {type(overrides).__name__}: {overrides!r}")
    return dict(overrides)


def read_params_file(path: Union[str, Path]) -> dict[str, Any]:
    """A params YAML file as a dict; a missing file or a syntax error is a `ConfigError` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); save the params file as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}:{where}: YAML syntax error: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected 'key: value' lines at the top level, got a {type(loaded).__name__}")
    return loaded


def parse_override(assignment: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (numbers, lists, null)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. --set learning_rate=1e-4")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as text; on a command line it is meant as a number
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value
