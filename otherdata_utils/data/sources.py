"""Data step entry points: load one source (named or a local file) or every source of a config, and describe them.

Hands on a `datasets.DatasetDict` with splits "train", "validation", "test" whose rows all share `record_features`.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import pandas
from datasets import Dataset, DatasetDict

from ..config import Config, SourceSpec
from .labels import intermediate_classes, into_target_space
from .local import read_local
from .named import NAMED_SOURCES, find_copy, parse_name, read_named
from .schema import (SPLITS, DataError, assign_splits, carve_missing_splits, check_ids_across_sources,
                     check_percentages, check_texts, check_two_classes, check_unique_ids, stratified_sample,
                     to_dataset_dict, values)


def load_source(spec: Union[SourceSpec, str], data_dir: Optional[Path], *, seed: int = 42,
                validation_percentage: float = 10.0, test_percentage: float = 20.0,
                max_text_chars: int = 100_000) -> DatasetDict:
    """One source as a DatasetDict: a named data set ("imdb", "blitzer_mds:books,dvd") or a local file.

    Named sources read ``data_dir/<name>``; with ``data_dir`` None they come from the Hugging Face Hub. Texts are
    kept as the files hold them (only format escapes are decoded): normalising and dropping empty or duplicate
    texts is `clean`'s job.

    Missing splits are carved: validation and test from a source without splits (percentages of the whole
    source), validation (or test) from train where only that one is missing. Carving is stratified by (domain,
    label); inside a stratum rows are ranked by a seeded hash of their id, so a row's split depends on the seed
    and its stratum, not on file order or on which other subsets were loaded (``blitzer_mds:books`` and
    ``blitzer_mds`` put every books review in the same split). A local file with ``split`` set holds that split
    only and nothing is carved from it (`load_data` carves when the combined data lacks a split).
    """
    if isinstance(spec, str):
        spec = SourceSpec(name=spec)
    check_percentages(validation_percentage, test_percentage)
    if spec.name is not None:
        table = read_named(spec.name, data_dir)
        carve = True
    else:
        table = read_local(spec, data_dir)
        carve = spec.split is None
    check_texts(table, max_text_chars)
    check_unique_ids(table)
    splits = list(table.columns["split"])
    if carve:
        splits = assign_splits(table, seed, validation_percentage, test_percentage)
    dsd = to_dataset_dict(table, splits)
    check_two_classes(dsd["train"], table)
    return dsd


def load_data(config: Config) -> DatasetDict:
    """The target's sources (all but `intermediate` ones), each in the target's classes, concatenated, then capped.

    The target's classes are those of the first source listed with neither `label_mapping` nor `intermediate`; a
    source with `label_mapping` is mapped into them (`labels.map_labels`), and any other source must have them.
    Where the combined data has no validation (or test) rows, as with local files that each hold one split, that
    split is carved from train. ``max_eval_samples`` / ``max_test_samples`` keep a seeded sample stratified by
    (domain, label).
    """
    return _combined(into_target_space(_load_each(config, config.target_specs)), config)


def load_intermediate_data(config: Config) -> Optional[DatasetDict]:
    """The `intermediate` sources, in their own (shared) classes, loaded and capped as `load_data` does; None
    when no source is marked intermediate."""
    loaded = _load_each(config, [spec for spec in config.source_specs if spec.intermediate])
    if intermediate_classes(loaded) is None:
        return None
    return _combined([(spec.label, dsd) for spec, dsd in loaded], config)


def _load_each(config: Config, specs: list[SourceSpec]) -> list[tuple[SourceSpec, DatasetDict]]:
    data_dir = config.resolved_data_dir()
    return [(spec, load_source(spec, data_dir, seed=config.seed,
                               validation_percentage=config.validation_split_percentage,
                               test_percentage=config.test_split_percentage, max_text_chars=config.max_text_chars))
            for spec in specs]


def _combined(loaded: list[tuple[str, DatasetDict]], config: Config) -> DatasetDict:
    """Sources with the same classes as one DatasetDict: ids checked unique, missing splits carved, caps applied."""
    check_ids_across_sources(loaded)
    combined = DatasetDict({split: datasets.concatenate_datasets([dsd[split] for _, dsd in loaded])
                            for split in SPLITS})
    if len(combined["train"]) == 0:
        raise DataError(f"no training rows in {[label for label, _ in loaded]}: every source holds validation or "
                        "test rows only; add a source (or a file with split: train) that holds training data")
    combined = carve_missing_splits(combined, config)
    caps = {"validation": (config.max_eval_samples, "eval"), "test": (config.max_test_samples, "test")}
    for split, (cap, salt) in caps.items():
        if cap is not None and len(combined[split]) > cap:
            combined[split] = combined[split].select(stratified_sample(combined[split], cap, config.seed, salt))
    return combined


def fingerprint(dsd: DatasetDict) -> dict[str, dict[str, dict[str, Any]]]:
    """Per split and source: row count and a short sha256 of (id, text, label), independent of row order."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for split, dataset in dsd.items():
        groups: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for id_, text, label, source in zip(*(values(dataset, name) for name in ("id", "text", "label", "source"))):
            groups[source].append((id_, text, label))
        result[split] = {}
        for source, rows in sorted(groups.items()):
            digest = hashlib.sha256()
            for id_, text, label in sorted(rows):
                digest.update(f"{id_}\x1f{text}\x1f{label}\x1e".encode("utf-8"))
            result[split][source] = {"rows": len(rows), "sha256": digest.hexdigest()[:16]}
    return result


def copies_read(config: Config) -> dict[str, str]:
    """For each named source of a config, the copy its rows are read from (data dir, packaged or Hub), in words."""
    data_dir = config.resolved_data_dir()
    return {spec.label: str(find_copy(parse_name(spec.name)[0], data_dir))
            for spec in config.source_specs if spec.name is not None}


def sources_table(data_dir: Optional[Path]) -> pandas.DataFrame:
    """Every named source: classes, subsets, where the original lives, its licence and Hub copy, and the copy that
    would be read with ``data_dir`` ("data dir", "packaged", "hub" or "missing")."""
    return pandas.DataFrame([{
        "source": named.name,
        "classes": named.classes,
        "subsets": ", ".join(named.domains),
        "original": named.original,
        "licence": named.licence,
        "hub_id": named.hub_id or "none",
        "local_copy": data_dir is not None and (Path(data_dir) / named.name).is_dir(),
        "copy": find_copy(named, data_dir).kind,
        "description": named.description,
    } for named in NAMED_SOURCES.values()]).set_index("source")


def label_names(dsd: Union[DatasetDict, Dataset]) -> list[str]:
    """Class names in id order."""
    dataset = next(iter(dsd.values())) if isinstance(dsd, DatasetDict) else dsd
    return list(dataset.features["label"].names)
