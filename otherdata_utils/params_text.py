"""Parameters as text: a params YAML file, papermill's overrides, a --set key=value, read into plain values.

Every problem is a `ConfigError` naming the file, line or value; `config` validates the values and builds the Config.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError


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


def dotted_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"study.few_shot.k_values": [4]}`` as ``{"study": {"few_shot": {"k_values": [4]}}}``: a dotted key names a
    parameter inside a block (``--set study.few_shot.k_values=[4]``, papermill's overrides, a notebook's)."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        *blocks, name = str(key).split(".")
        level = nested
        for block in blocks:
            level = level.setdefault(block, {})
            if not isinstance(level, dict):
                raise ConfigError(f"overrides: {key!r} sets a parameter inside {block!r}, which is also given a "
                                  "value of its own; give one of the two")
        level[name] = merged(level[name], value) if isinstance(level.get(name), dict) and isinstance(value, dict) \
            else value
    return nested


def merged(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """`layer` over `base`, key by key; a mapping inside both is merged the same way (a block's other keys stay)."""
    out = dict(base)
    for key, value in layer.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def unknown_key_message(where: str, key: str, valid: Sequence[str], origin: str, moved: str = "") -> str:
    """One line naming `origin`, the unknown `where` and the closest valid keys (or, for an old key, its new place)."""
    if moved:
        return f"{origin}: parameter {where!r} moved to {moved!r}; write it there"
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{origin}: unknown parameter {where!r}.{hint} Valid parameters: {', '.join(valid)}"


def format_validation_error(error: ValidationError, origin: str, prefix: str = "") -> str:
    """One line per problem of a pydantic error, naming `origin` and the parameter (``prefix`` + its location)."""
    lines = []
    for problem in error.errors():
        key = prefix + ".".join(str(part) for part in problem["loc"]) or "(config)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "literal_error":
            message = f"must be one of {problem['ctx']['expected']}"
        given = problem.get("input")
        given_text = f" (got {given!r})" if not isinstance(given, dict) else ""
        lines.append(f"{origin}: parameter {key!r} {message}{given_text}")
    return "\n".join(lines)
