"""Label spaces: which classes are the target's, sources mapped into them, and the one error for a source that fits none.

Takes each loaded source with its `SourceSpec`; hands on the sources in the target's classes (intermediate ones apart).
"""
from __future__ import annotations

import difflib
from typing import Optional

from datasets import DatasetDict

from ..config import SourceSpec
from .schema import SPLITS, DataError, build_dataset, record_features, values

Loaded = list[tuple[SourceSpec, DatasetDict]]


def class_names(dsd: DatasetDict) -> list[str]:
    """A loaded source's class names in id order."""
    return list(dsd["train"].features["label"].names)


def target_classes(loaded: Loaded) -> tuple[str, list[str]]:
    """The source that defines the target's classes (the first listed with neither label_mapping nor intermediate,
    as `Config` requires one) and those classes."""
    spec, dsd = next((spec, dsd) for spec, dsd in loaded if spec.label_mapping is None and not spec.intermediate)
    return spec.label, class_names(dsd)


def into_target_space(loaded: Loaded) -> list[tuple[str, DatasetDict]]:
    """The target's sources (intermediate ones left out), each in the target's classes: a source with the target's
    classes as it is, one with `label_mapping` mapped. Any other source is a `DataError` naming its classes, the
    target's and the two ways to use it."""
    target_source, target = target_classes(loaded)
    result = []
    for spec, dsd in loaded:
        if spec.intermediate:
            continue
        if spec.label_mapping is not None:
            result.append((spec.label, map_labels(dsd, spec, target)))
            continue
        own = class_names(dsd)
        if own != target:
            suggestion = ", ".join(f"{name}: {_closest(name, target) or 'null'}" for name in own)
            raise DataError(
                f"source {spec.label!r} has classes {own}, but the target's classes (those of {target_source!r}, the "
                f"first source listed without label_mapping or intermediate) are {target}: map its classes into the "
                f"target's with label_mapping on the source (e.g. label_mapping: {{{suggestion}}}; null drops a "
                "class's rows), or set intermediate: true to fine-tune on it first with its own classes and head")
        result.append((spec.label, dsd))
    return result


def intermediate_classes(loaded: Loaded) -> Optional[list[str]]:
    """The classes the intermediate sources share (they are fine-tuned on together, as one task); None without any."""
    intermediate = [(spec.label, class_names(dsd)) for spec, dsd in loaded if spec.intermediate]
    if not intermediate:
        return None
    first_source, first = intermediate[0]
    for source, own in intermediate[1:]:
        if own != first:
            raise DataError(f"intermediate sources {first_source!r} and {source!r} have different classes: {first} vs "
                            f"{own}; intermediate sources are fine-tuned on together, as one task: mark only sources "
                            "with the same classes intermediate")
    return first


def map_labels(dsd: DatasetDict, spec: SourceSpec, target: list[str]) -> DatasetDict:
    """The source's rows with its classes renamed to the target's by `spec.label_mapping`; rows of a class mapped
    to None are dropped. Texts, ids and every other column are kept."""
    mapping = spec.label_mapping or {}
    own = class_names(dsd)
    unknown = [name for name in mapping if name not in own]
    if unknown:
        raise DataError(f"source {spec.label!r}: label_mapping names {unknown}, which are not its classes; its "
                        f"classes are {own}")
    left_out = [name for name in own if name not in mapping]
    if left_out:
        raise DataError(f"source {spec.label!r}: label_mapping leaves out its class(es) {left_out}; map each to one "
                        f"of the target's classes {target}, or to null to drop its rows")
    outside = {name: to for name, to in mapping.items() if to is not None and to not in target}
    if outside:
        raise DataError(f"source {spec.label!r}: label_mapping maps to {sorted(set(outside.values()))}, which are not "
                        f"target classes; the target's classes are {target}")
    new_id = [None if mapping[name] is None else target.index(mapping[name]) for name in own]
    features = record_features(target)
    mapped = {}
    for split in SPLITS:
        columns = dsd[split].to_dict()
        keep = [row for row, label in enumerate(values(dsd[split], "label")) if new_id[label] is not None]
        columns = {name: [column[row] for row in keep] for name, column in columns.items()}
        columns["label"] = [new_id[label] for label in columns["label"]]
        mapped[split] = build_dataset(columns, features)
    return DatasetDict(mapped)


def _closest(name: str, candidates: list[str]) -> Optional[str]:
    """The candidate most like `name` (neg -> negative), for an example mapping in a message."""
    match = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1, cutoff=0.5)
    return candidates[[c.lower() for c in candidates].index(match[0])] if match else None
