"""Where a study kind registers its parameters: kind -> its pydantic params model, whether it replicates over split
seeds, and its plan; the config's `study:` block is validated against what is registered here.

Hands study modules `register_study` and `study_params`, and the loading step `check_study_block`.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .params_text import ConfigError, format_validation_error, unknown_key_message


class StudyParams(BaseModel):
    """Base of every study kind's parameters: unknown keys are an error, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass(frozen=True)
class StudyKind:
    """One registered study: its `study.<kind>` params model, whether its replicates may draw rows by split seed
    (else each seed draws its own rows and `replicates.split_seeds` is refused), and `plan(config)`."""

    kind: str
    params: type[StudyParams]
    uses_split_seeds: bool
    plan: Optional[Callable[[Any], Any]] = None


_KINDS: dict[str, StudyKind] = {}  # filled as study modules are imported: the one registration point
P = TypeVar("P", bound=StudyParams)


def register_study(kind: str, params: type[P], *, uses_split_seeds: bool,
                   plan: Optional[Callable[[Any], Any]] = None) -> type[P]:
    """Make `kind` a key of the params file's `study:` block, validated by `params`. Registering a kind again
    replaces it (a re-imported module, a test's toy study)."""
    _KINDS[kind] = StudyKind(kind, params, uses_split_seeds, plan)
    return params


def registered_kinds() -> dict[str, StudyKind]:
    return dict(_KINDS)


def study_kind(kind: str) -> StudyKind:
    if kind not in _KINDS:
        raise ConfigError(f"unknown study kind {kind!r}; registered kinds: {sorted(_KINDS)}")
    return _KINDS[kind]


def study_params(config: Any, kind: str, params: Optional[type[P]] = None) -> P:
    """The config's `study.<kind>` block as its params model (defaults where the block or a key is absent)."""
    model = params or study_kind(kind).params
    if kind in config.study and config.replicates.split_seeds is not None and not study_kind(kind).uses_split_seeds:
        check_study_block({kind: config.study[kind]}, config.replicates.split_seeds, "parameters")
    return validated_block(model, config.study.get(kind) or {}, f"study.{kind}", "parameters")


def validated_block(model: type[P], values: Any, where: str, origin: str) -> P:
    """`values` as `model`; any problem is one `ConfigError` naming `origin` and `where.key`, with the closest key."""
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: parameter {where!r} must be a mapping of its parameters, got {values!r}")
    unknown = [key for key in values if key not in model.model_fields]
    if unknown:
        raise ConfigError("\n".join(unknown_key_message(f"{where}.{key}", key, model.model_fields, origin)
                                    for key in unknown))
    try:
        return model(**values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, origin, prefix=where + ".")) from None


def check_study_block(study: dict[str, Any], split_seeds: Optional[list[int]], origin: str) -> dict[str, Any]:
    """Every `study.<kind>` block validated by its kind's model, with every parameter written out (defaults too):
    what params.yaml records. A kind whose replicates follow seeds refuses `replicates.split_seeds`."""
    if not isinstance(study, dict):
        raise ConfigError(f"{origin}: parameter 'study' must map study kinds to their parameters, e.g. "
                          "{few_shot: {k_values: [8, 32]}}")
    full = {}
    for kind, values in study.items():
        if kind not in _KINDS and not _KINDS:
            full[kind] = values or {}  # no study module imported here: its study validates it when reading it
            continue
        if kind not in _KINDS:
            close = difflib.get_close_matches(str(kind), _KINDS, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{origin}: unknown study kind 'study.{kind}'.{hint} Study kinds: {', '.join(_KINDS)}")
        if split_seeds is not None and not _KINDS[kind].uses_split_seeds:
            raise ConfigError(f"{origin}: parameter 'replicates.split_seeds' is set, but the {kind} study draws its "
                              "rows with each seed (`replicates.seeds`), so split seeds would never train; remove "
                              "replicates.split_seeds")
        full[kind] = validated_block(_KINDS[kind].params, values or {}, f"study.{kind}", origin).model_dump(mode="json")
    return full


def distinct_values(values: list, allowed: str, valid: Callable[[Any], bool]) -> list:
    """`values` when each passes `valid` and none repeats; else a ValueError saying what is allowed (a study
    params model's list validators call this)."""
    bad = [value for value in values if not valid(value)]
    if bad:
        raise ValueError(f"every value must be {allowed}; {bad} is not")
    if len(set(values)) != len(values):
        raise ValueError(f"values repeat in {values}; list each once")
    return values
