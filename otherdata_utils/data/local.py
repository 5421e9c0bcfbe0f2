"""Local files as data sources: a CSV / TSV / JSONL / parquet file or an aclImdb folder, read through `files`.

Takes a `SourceSpec` with a path; hands on a `Table` whose reading errors are `DataError`s naming file, row, parameter.
"""
from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Optional

from ..config import SourceSpec, local_source_candidates
from ..files import FileReadError, Records, decode, file_format, read_records
from ..files import read_json as read_json_document
from ..files import read_lines as read_text_lines
from .schema import BINARY_LABELS, DataError, Table, at

_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "dev": "validation", "test": "test"}
# What a data user changes when a file cannot be read; a reason not listed carries its remedy in the reader's message.
_REMEDIES = {
    "missing": "data_dir must hold each named source laid out like shared/data",
    "unknown_encoding": "set encoding to a Python codec name such as 'utf-8', 'iso-8859-1' or 'cp1252'",
    "encoding": "set encoding to the file's encoding, e.g. encoding: iso-8859-1 or cp1252",
    "fields": "check the delimiter (format: csv or tsv) and the quoting of that row",
    "not_object": 'each line holds one object such as {"text": ..., "label": ...}',
}


def data_error(error: FileReadError) -> DataError:
    """The reader's error with the remedy a params file can apply."""
    remedy = _REMEDIES.get(error.reason)
    return DataError(f"{error}; {remedy}" if remedy else str(error))


def read_file(path: Path, fmt: str, encoding: str = "utf-8") -> Records:
    try:
        return read_records(path, fmt, encoding)
    except FileReadError as error:
        raise data_error(error) from None


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    try:
        return read_text_lines(path, encoding)
    except FileReadError as error:
        raise data_error(error) from None


def read_json(path: Path, encoding: str = "utf-8") -> Any:
    try:
        return read_json_document(path, encoding)
    except FileReadError as error:
        raise data_error(error) from None


def column(records: Records, name: str, parameter: Optional[str] = None) -> list:
    """A column; missing, the message names the parameter to change (none: a named source's copy is off)."""
    if name not in records.columns:
        close = difflib.get_close_matches(name, list(records.columns), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        remedy = (f"set {parameter} to the column that holds the {parameter.removesuffix('_column')}s"
                  if parameter else "the local copy is not laid out like shared/data")
        raise DataError(f"{records.path}: no column {name!r}{hint}; columns present: {list(records.columns)}; {remedy}")
    return records.columns[name]


def read_local(spec: SourceSpec, data_dir: Optional[Path]) -> Table:
    """The rows of a local file or aclImdb folder, labels mapped to class ids as the spec says."""
    path = _resolve_path(spec.path or "", data_dir)
    fmt = spec.format or ("aclimdb" if path.is_dir() else file_format(path))
    if fmt is None:
        raise DataError(f"{path}: unknown format; name the file *.csv, *.tsv, *.jsonl (each optionally .gz) or "
                        "*.parquet, or set format to one of csv, tsv, jsonl, parquet, aclimdb")
    source = spec.label
    if fmt == "aclimdb":
        return _read_aclimdb(path, spec, source)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; a {fmt} source needs a file (only format aclimdb reads a folder)")
    records = read_file(path, fmt, spec.encoding)
    texts = column(records, spec.text_column, "text_column")
    labels, names = _local_labels(column(records, spec.label_column, "label_column"), records, spec)
    if spec.domain is not None or "domain" not in records.columns:
        domains = [spec.domain or source] * len(records.positions)
    else:
        domains = _filled(records, "domain")
    splits = _row_splits(records, spec.split)
    own_ids = records.columns.get("id")
    table = Table(source, names)
    for row, (text, label) in enumerate(zip(texts, labels)):
        own = _cell_text(own_ids[row]) if own_ids is not None else None
        table.add(records.where(row), id=f"{source}:{own if own is not None else records.positions[row]}",
                  text=text, label=label, domain=domains[row], split=splits[row])
    return table


def _resolve_path(path: str, data_dir: Optional[Path]) -> Path:
    candidates = local_source_candidates(path, data_dir)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataError(f"{path}: file not found (looked for {', '.join(str(c) for c in candidates)}); check path: a "
                    "relative path resolves against the params file's folder, then data_dir (then, given as an "
                    "override, the current folder and the project root)")


def _cell_text(value: Any) -> Optional[str]:
    """A cell as the text label_map keys use: 1, 1.0 and "1" all read "1"; None, NaN and blanks read None."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _is_class_id(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None


def _local_labels(raw: list, records: Records, spec: SourceSpec) -> tuple[list[int], list[str]]:
    texts = [_cell_text(value) for value in raw]
    for row, text in enumerate(texts):
        if text is None:
            raise DataError(f"{at(records.where(row))}: empty label in column {spec.label_column!r}; fill it in or "
                            "remove the row (label_column names the label column)")
    if spec.label_map is not None:
        lookup = {str(key).strip(): value for key, value in spec.label_map.items()}
        ids = sorted(set(lookup.values()))
        if ids != list(range(len(ids))):
            raise DataError(f"{records.path}: label_map class ids must be 0, 1, ... without gaps, got {ids}")
        names = spec.label_names or ["/".join(key for key, value in lookup.items() if value == i) for i in ids]
        if len(names) < len(ids):
            raise DataError(f"{records.path}: label_names has {len(names)} names but label_map uses {len(ids)} "
                            "classes; give one name per class id")
    elif spec.label_names is not None:
        names = list(spec.label_names)
        lookup = {str(i): i for i in range(len(names))} | {name: i for i, name in enumerate(names)}
    elif all(_is_class_id(text) for text in texts):
        negative = next((row for row, text in enumerate(texts) if int(text) < 0), None)
        if negative is not None:
            raise DataError(f"{at(records.where(negative))}: label {texts[negative]} is negative; class ids start "
                            "at 0 (-1 often marks an unlabelled row): remove such rows, or set label_map")
        names = [str(i) for i in range(max(int(text) for text in texts) + 1)]
        lookup = {text: int(text) for text in set(texts)}
    else:
        # String labels: sorted distinct values become the class names, so ids follow alphabetical order.
        names = sorted(set(texts))
        lookup = {name: i for i, name in enumerate(names)}
    labels = []
    for row, text in enumerate(texts):
        label = lookup.get(text)
        if label is None:
            allowed = sorted(lookup)
            shown = ", ".join(repr(value) for value in allowed[:20]) + (", ..." if len(allowed) > 20 else "")
            raise DataError(f"{at(records.where(row))}: unknown label {text!r}; allowed values: {shown}; set "
                            "label_map (raw value -> class id) or label_names to cover it")
        labels.append(label)
    return labels, names


def _filled(records: Records, name: str) -> list[str]:
    """A file's own per-row column (here: domain), every cell filled in."""
    filled = []
    for row, value in enumerate(records.columns[name]):
        text = _cell_text(value)
        if text is None:
            raise DataError(f"{at(records.where(row))}: empty {name}; fill it in, or set {name} to give every "
                            f"row of the file the same {name}")
        filled.append(text)
    return filled


def _row_splits(records: Records, declared: Optional[str]) -> list[Optional[str]]:
    if declared is not None or "split" not in records.columns:
        return [declared] * len(records.positions)
    splits = []
    for row, value in enumerate(records.columns["split"]):
        split = _SPLIT_ALIASES.get((_cell_text(value) or "").lower())
        if split is None:
            raise DataError(f"{at(records.where(row))}: split {value!r} is not one of train, validation, test; fix "
                            "the file's split column, or set split for a file that holds one split only")
        splits.append(split)
    return splits


def _read_aclimdb(path: Path, spec: SourceSpec, source: str) -> Table:
    table = Table(source, list(spec.label_names or BINARY_LABELS))
    for split in ("train", "test"):
        for label, folder_name in enumerate(("neg", "pos")):
            folder = path / split / folder_name
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.txt")):
                match = re.fullmatch(r"(\d+)_(\d+)\.txt", file.name)
                if match is None:
                    raise DataError(f"{file}: expected a review file named <id>_<rating>.txt (the aclImdb layout)")
                try:
                    text = decode(file.read_bytes(), file, spec.encoding)
                except FileReadError as error:
                    raise data_error(error) from None
                table.add((str(file), "", 0), id=f"{source}:{split}:{folder_name}:{match[1]}", text=text,
                          label=label, domain=spec.domain or source, split=spec.split or split,
                          rating=float(match[2]))
    if not len(table):
        raise DataError(f"{path}: not an aclImdb folder: no <id>_<rating>.txt reviews in train/neg, train/pos, "
                        "test/neg or test/pos; set format if the folder is something else")
    return table
