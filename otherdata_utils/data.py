"""Data step: named data sets (local copies or the Hugging Face Hub) and local files, read into one record schema.

Hands on a `datasets.DatasetDict` with splits "train", "validation", "test" whose rows all share `record_features`.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import gzip
import hashlib
import io
import json
import math
import re
import sys
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import datasets
import pandas
import pyarrow
import pyarrow.parquet
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .config import DATA_DIR_ENV, Config, SourceSpec

SPLITS = ("train", "validation", "test")
BINARY_LABELS = ["neg", "pos"]
THREE_WAY_LABELS = ["negative", "neutral", "positive"]

# Per-row columns a loader fills; `source` is constant per source and added when the Dataset is built.
_ROW_COLUMNS = ("id", "text", "label", "domain", "split", "agreement", "date", "helpful_votes", "total_votes",
                "rating")
_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "dev": "validation", "test": "test"}
_HUB_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
_FORMAT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                    ".parquet": "parquet", ".pq": "parquet"}


class DataError(ValueError):
    """Bad input data or a bad data parameter; the message names the file, the row and the parameter to change."""


def record_features(label_names: list[str]) -> Features:
    """The one schema every source is read into; equal label names give equal Features, so splits concatenate."""
    return Features({
        "id": Value("string"),
        "text": Value("string"),
        "label": ClassLabel(names=list(label_names)),
        "domain": Value("string"),
        "source": Value("string"),
        "split": Value("string"),
        "agreement": Value("float32"),
        "date": Value("string"),
        "helpful_votes": Value("int32"),
        "total_votes": Value("int32"),
        "rating": Value("float32"),
    })


# Where a row came from, for messages: (file, "line" | "row" | "", number).
_Where = tuple[str, str, int]


def _at(where: _Where) -> str:
    path, unit, number = where
    return f"{path}, {unit} {number}" if unit else path


@dataclass
class _Table:
    """One source's rows before splitting, column by column, with where each row came from."""

    source: str
    label_names: list[str]
    columns: dict[str, list] = field(default_factory=lambda: {name: [] for name in _ROW_COLUMNS})
    where: list[_Where] = field(default_factory=list)

    def add(self, where: _Where, *, id: str, text: Optional[str], label: int, domain: str,
            split: Optional[str] = None, agreement: Optional[float] = None, date: Optional[str] = None,
            helpful_votes: Optional[int] = None, total_votes: Optional[int] = None,
            rating: Optional[float] = None) -> None:
        row = {"id": id, "text": "" if text is None else str(text), "label": label, "domain": domain,
               "split": split, "agreement": agreement, "date": date, "helpful_votes": helpful_votes,
               "total_votes": total_votes, "rating": rating}
        for name, value in row.items():
            self.columns[name].append(value)
        self.where.append(where)

    def __len__(self) -> int:
        return len(self.where)


@dataclass(frozen=True)
class NamedSource:
    """A data set known by name: where its local copy and its Hub copy live and how they map to the schema."""

    name: str
    description: str
    citation: str
    label_names: list[str]
    domains: list[str]  # subset names accepted after "name:" (domains; agreement levels for financial_phrasebank)
    hub_id: Optional[str]  # Hugging Face Hub copy used when no data dir is set; None: local copy only
    loader: Callable[[Path, list[str]], _Table]  # reads data_dir/<name> for the chosen subsets
    hub_loader: Optional[Callable[["NamedSource", list[str]], _Table]] = None
    domain: Optional[str] = None  # domain of every row where subsets are not domains
    aliases: dict[str, str] = field(default_factory=dict)  # other accepted subset names
    hub_text_column: str = "text"
    hub_revision: Optional[str] = None  # script-based Hub repos load from their parquet export


# --------------------------------------------------------------------------------------------- public API


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
    _check_percentages(validation_percentage, test_percentage)
    if spec.name is not None:
        table = _read_named(spec.name, data_dir)
        carve = True
    else:
        table = _read_local(spec, data_dir)
        carve = spec.split is None
    _check_texts(table, max_text_chars)
    _check_unique_ids(table)
    splits = list(table.columns["split"])
    if carve:
        splits = _assign_splits(table, seed, validation_percentage, test_percentage)
    dsd = _to_dataset_dict(table, splits)
    _check_two_classes(dsd["train"], table)
    return dsd


def load_data(config: Config) -> DatasetDict:
    """Every source of the config, loaded with its data dir, seed and split settings, concatenated, then capped.

    All sources must share class names. Where the combined data has no validation (or test) rows, as with local
    files that each hold one split, that split is carved from train. ``max_eval_samples`` / ``max_test_samples``
    keep a seeded sample stratified by (domain, label).
    """
    data_dir = config.resolved_data_dir()
    loaded = [(spec.label, load_source(spec, data_dir, seed=config.seed,
                                       validation_percentage=config.validation_split_percentage,
                                       test_percentage=config.test_split_percentage,
                                       max_text_chars=config.max_text_chars))
              for spec in config.source_specs]
    first_label, first = loaded[0]
    for other_label, other in loaded[1:]:
        if label_names(other) != label_names(first):
            raise DataError(
                f"sources {first_label!r} and {other_label!r} have different classes: {label_names(first)} vs "
                f"{label_names(other)}; load sources with the same classes together (for a local file set "
                f"label_names / label_map to {label_names(first)})")
    _check_ids_across_sources(loaded)
    combined = DatasetDict({split: datasets.concatenate_datasets([dsd[split] for _, dsd in loaded])
                            for split in SPLITS})
    if len(combined["train"]) == 0:
        raise DataError(f"no training rows in {[label for label, _ in loaded]}: every source holds validation or "
                        "test rows only; add a source (or a file with split: train) that holds training data")
    combined = _carve_missing_splits(combined, config)
    caps = {"validation": (config.max_eval_samples, "eval"), "test": (config.max_test_samples, "test")}
    for split, (cap, salt) in caps.items():
        if cap is not None and len(combined[split]) > cap:
            combined[split] = combined[split].select(_stratified_sample(combined[split], cap, config.seed, salt))
    return combined


def fingerprint(dsd: DatasetDict) -> dict[str, dict[str, dict[str, Any]]]:
    """Per split and source: row count and a short sha256 of (id, text, label), independent of row order."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for split, dataset in dsd.items():
        groups: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for id_, text, label, source in zip(*(_values(dataset, name) for name in ("id", "text", "label", "source"))):
            groups[source].append((id_, text, label))
        result[split] = {}
        for source, rows in sorted(groups.items()):
            digest = hashlib.sha256()
            for id_, text, label in sorted(rows):
                digest.update(f"{id_}\x1f{text}\x1f{label}\x1e".encode("utf-8"))
            result[split][source] = {"rows": len(rows), "sha256": digest.hexdigest()[:16]}
    return result


def sources_table(data_dir: Optional[Path]) -> pandas.DataFrame:
    """Every named source: classes, subsets, Hub copy and whether ``data_dir`` holds a local copy."""
    return pandas.DataFrame([{
        "source": named.name,
        "classes": ", ".join(named.label_names),
        "subsets": ", ".join(named.domains),
        "hub_id": named.hub_id or "",
        "local_copy": data_dir is not None and (Path(data_dir) / named.name).is_dir(),
        "description": named.description,
    } for named in NAMED_SOURCES.values()]).set_index("source")


def label_names(dsd: Union[DatasetDict, Dataset]) -> list[str]:
    """Class names in id order."""
    dataset = next(iter(dsd.values())) if isinstance(dsd, DatasetDict) else dsd
    return list(dataset.features["label"].names)


# ------------------------------------------------------------------------------------ checks and building


def _values(dataset: Dataset, name: str) -> list:
    """A column as a list; iterating `dataset[name]` itself goes row by row through the formatter, far slower."""
    return dataset[name][:]


def _check_percentages(validation_percentage: float, test_percentage: float) -> None:
    if not (0 < validation_percentage < 100 and 0 < test_percentage < 100
            and validation_percentage + test_percentage < 100):
        raise DataError(
            f"validation_split_percentage={validation_percentage} and test_split_percentage={test_percentage} must "
            "each be between 0 and 100 and leave rows for training (sum < 100)")


def _check_texts(table: _Table, max_text_chars: int) -> None:
    texts = table.columns["text"]
    if texts and max(map(len, texts)) > max_text_chars:
        row = next(i for i, text in enumerate(texts) if len(text) > max_text_chars)
        raise DataError(
            f"{_at(table.where[row])}: text is {len(texts[row]):,} characters, over max_text_chars={max_text_chars:,}; "
            "a row that long is usually broken (an unclosed quote swallows the rows after it): fix the file, or "
            "raise max_text_chars if the text is real")
    if not any(text.strip() for text in texts):
        files = sorted({where[0] for where in table.where})
        raise DataError(f"{', '.join(files)}: every text is empty; check text_column (the column that holds the "
                        "texts)")
    for row, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Python strings can hold what Arrow cannot store: lone surrogates, e.g. from a JSON "\ud83d" escape.
            raise DataError(f"{_at(table.where[row])}: text holds a lone UTF-16 surrogate (an escape such as "
                            "\\ud83d without its pair); fix that row in the file") from None


def _check_unique_ids(table: _Table) -> None:
    ids = table.columns["id"]
    if len(set(ids)) == len(ids):
        return
    first: dict[str, int] = {}
    for row, id_ in enumerate(ids):
        if id_ in first:
            raise DataError(f"{_at(table.where[row])}: id {id_!r} repeats {_at(table.where[first[id_]])}; make the "
                            "file's id column unique, or drop it (ids then come from row numbers)")
        first[id_] = row


def _check_two_classes(train: Dataset, table: _Table) -> None:
    present = set(_values(train, "label"))
    if len(present) == 1:
        name = table.label_names[present.pop()]
        files = sorted({where[0] for where in table.where})
        raise DataError(f"{', '.join(files)}: the training data of {table.source!r} holds only class {name!r} "
                        f"({len(train)} rows); a classifier needs two classes or more: check label_column and "
                        "label_map, or whether the file holds one split only (split)")


def _check_ids_across_sources(loaded: list[tuple[str, DatasetDict]]) -> None:
    owner: dict[str, str] = {}
    for label, dsd in loaded:
        for split in SPLITS:
            for id_ in _values(dsd[split], "id"):
                if id_ in owner:
                    raise DataError(
                        f"id {id_!r} occurs in both {owner[id_]!r} and {label!r}: a source is listed twice, or "
                        "two local files share a name; list each source once, or set source to tell files apart")
                owner[id_] = label


def _to_dataset_dict(table: _Table, splits: list[str]) -> DatasetDict:
    features = record_features(table.label_names)
    rows_by_split: dict[str, list[int]] = {split: [] for split in SPLITS}
    for row, split in enumerate(splits):
        rows_by_split[split].append(row)
    parts = {}
    for split, rows in rows_by_split.items():
        data = {name: [table.columns[name][row] for row in rows] for name in _ROW_COLUMNS}
        data["split"] = [split] * len(rows)
        data["source"] = [table.source] * len(rows)
        parts[split] = _dataset(data, features)
    return DatasetDict(parts)


def _dataset(data: dict[str, list], features: Features) -> Dataset:
    """Built straight through Arrow: Dataset.from_dict(features=...) encodes row by row, several times slower."""
    table = pyarrow.Table.from_pydict({name: data[name] for name in features}, schema=features.arrow_schema)
    return Dataset(table, info=datasets.DatasetInfo(features=features))


# ------------------------------------------------------------------------------------- splits and sampling


def _rank(seed: int, salt: str, id_: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{salt}\x1f{id_}".encode("utf-8"), digest_size=8).digest()


def _strata(domains: list[str], labels: list[int], rows: list[int]) -> dict[tuple[str, int], list[int]]:
    strata: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in rows:
        strata[(domains[row], labels[row])].append(row)
    return strata


def _carve(ids: list[str], domains: list[str], labels: list[int], pool: list[int], shares: dict[str, float],
           seed: int) -> dict[int, str]:
    """Rows of `pool` moved to each split in `shares` (share of the pool), per (domain, label) stratum."""
    moved: dict[int, str] = {}
    for rows in _strata(domains, labels, pool).values():
        rows = sorted(rows, key=lambda row: _rank(seed, "split", ids[row]))
        start = 0
        for split, share in shares.items():
            count = min(int(len(rows) * share + 0.5), len(rows) - start)  # half up, unlike round()
            for row in rows[start:start + count]:
                moved[row] = split
            start += count
    return moved


def _assign_splits(table: _Table, seed: int, validation_percentage: float, test_percentage: float) -> list[str]:
    given = [split or "train" for split in table.columns["split"]]
    present = {split for split in table.columns["split"] if split}
    shares = {split: percentage / 100 for split, percentage in
              (("test", test_percentage), ("validation", validation_percentage)) if split not in present}
    if not shares:
        return given
    pool = [row for row, split in enumerate(given) if split == "train"]
    moved = _carve(table.columns["id"], table.columns["domain"], table.columns["label"], pool, shares, seed)
    for row, split in moved.items():
        given[row] = split
    return given


def _carve_missing_splits(dsd: DatasetDict, config: Config) -> DatasetDict:
    shares = {split: percentage / 100 for split, percentage in
              (("test", config.test_split_percentage), ("validation", config.validation_split_percentage))
              if len(dsd[split]) == 0}
    if not shares:
        return dsd
    train = dsd["train"]
    moved = _carve(_values(train, "id"), _values(train, "domain"), _values(train, "label"), list(range(len(train))),
                   shares, config.seed)
    result = DatasetDict({"train": train.select([row for row in range(len(train)) if row not in moved])})
    for split in ("validation", "test"):
        if split not in shares:
            result[split] = dsd[split]
            continue
        carved = train.select(sorted(row for row, target in moved.items() if target == split)).to_dict()
        carved["split"] = [split] * len(carved["id"])
        result[split] = _dataset(carved, train.features)
    return DatasetDict({split: result[split] for split in SPLITS})


def _stratified_sample(dataset: Dataset, size: int, seed: int, salt: str) -> list[int]:
    """Row indices of a seeded sample of `size` rows, each (domain, label) stratum kept in proportion."""
    strata = _strata(_values(dataset, "domain"), _values(dataset, "label"), list(range(len(dataset))))
    total = len(dataset)
    quotas = {key: size * len(rows) / total for key, rows in strata.items()}
    counts = {key: math.floor(quota) for key, quota in quotas.items()}
    # Largest remainders get the rows left over, so the sample has exactly `size` rows.
    leftover = size - sum(counts.values())
    for key in sorted(quotas, key=lambda key: (counts[key] - quotas[key], key))[:leftover]:
        counts[key] += 1
    ids = _values(dataset, "id")
    keep = []
    for key, rows in strata.items():
        keep.extend(sorted(rows, key=lambda row: _rank(seed, salt, ids[row]))[:counts[key]])
    return sorted(keep)


# ------------------------------------------------------------------------------------- reading local files


@dataclass
class _Records:
    """A file read as columns, with each row's 1-based line (text formats) or row number (parquet)."""

    path: Path
    columns: dict[str, list]
    positions: list[int]
    unit: str

    def where(self, row: int) -> _Where:
        return (str(self.path), self.unit, self.positions[row])

    def column(self, name: str, parameter: Optional[str] = None) -> list:
        """A column; missing, the message names the parameter to change (none: a named source's copy is off)."""
        if name not in self.columns:
            close = difflib.get_close_matches(name, list(self.columns), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            remedy = (f"set {parameter} to the column that holds the {parameter.removesuffix('_column')}s"
                      if parameter else "the local copy is not laid out like shared/data")
            raise DataError(f"{self.path}: no column {name!r}{hint}; columns present: {list(self.columns)}; {remedy}")
        return self.columns[name]


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a readable gzip file ({error}); check the file, or drop the .gz "
                            "suffix if it is not compressed") from None
    return data


def _decode(data: bytes, path: Path, encoding: str) -> str:
    try:
        # A UTF-8 byte-order mark would otherwise become part of the first column name.
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r}; set encoding to a Python codec name such as "
                        "'utf-8', 'iso-8859-1' or 'cp1252'") from None
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        where = " of the decompressed text" if path.suffix.lower() == ".gz" else ""
        raise DataError(f"{path}: byte {error.start}{where} (line {line}) is not valid {encoding} "
                        f"({data[error.start:error.start + 1]!r}); set encoding to the file's encoding, e.g. "
                        "encoding: iso-8859-1 or cp1252") from None


def _lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """A text file's lines, split on "\\n" only: str.splitlines() also breaks at U+0085 and friends inside rows."""
    text = _decode(_read_bytes(path), path, encoding)
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _format_of(path: Path, declared: Optional[str]) -> str:
    if declared is not None:
        return declared
    if path.is_dir():
        return "aclimdb"
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    fmt = _FORMAT_SUFFIXES.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise DataError(f"{path}: unknown format; name the file *.csv, *.tsv, *.jsonl (each optionally .gz) or "
                        "*.parquet, or set format to one of csv, tsv, jsonl, parquet, aclimdb")
    return fmt


def _read_file(path: Path, fmt: str, encoding: str) -> _Records:
    if fmt == "parquet":
        records = _read_parquet(path)
    elif fmt == "jsonl":
        records = _read_jsonl(path, _decode(_read_bytes(path), path, encoding))
    else:
        # TSV files (GLUE, SST-2) do not quote fields and their texts hold quote characters; CSV follows RFC 4180.
        delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
        records = _read_delimited(path, _decode(_read_bytes(path), path, encoding), delimiter, quoting)
    if not records.positions:
        raise DataError(f"{path}: empty file (no data rows)")
    return records


def _read_delimited(path: Path, text: str, delimiter: str, quoting: int) -> _Records:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    old_limit = csv.field_size_limit()
    # Over-long fields are reported by max_text_chars, with the row, rather than as a csv.Error.
    csv.field_size_limit(sys.maxsize)
    try:
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file (no header row)")
        header = [name.strip() for name in header]
        rows, positions = [], []
        end = reader.line_num
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {start}: {len(row)} fields where the header has {len(header)}; "
                                "check the delimiter (format: csv or tsv) and the quoting of that row")
            rows.append(row)
            positions.append(start)
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                        f"({error}); check the quoting of that row") from None
    finally:
        csv.field_size_limit(old_limit)
    columns = {name: [row[index] for row in rows] for index, name in enumerate(header)}
    return _Records(path, columns, positions, "line")


def _read_jsonl(path: Path, text: str) -> _Records:
    objects, positions = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno}); each "
                            "line of a JSONL file holds one JSON object") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object ({{\"text\": ..., \"label\": ...}}), "
                            f"got a {type(obj).__name__}")
        objects.append(obj)
        positions.append(number)
    names = list(dict.fromkeys(name for obj in objects for name in obj))
    return _Records(path, {name: [obj.get(name) for obj in objects] for name in names}, positions, "line")


def _read_parquet(path: Path) -> _Records:
    try:
        columns = pyarrow.parquet.read_table(path).to_pydict()
    except (pyarrow.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable parquet file ({error})") from None
    rows = len(next(iter(columns.values()), []))
    return _Records(path, columns, list(range(1, rows + 1)), "row")


def _resolve_path(path: str, data_dir: Optional[Path]) -> Path:
    given = Path(path).expanduser()
    if given.is_absolute():
        candidates = [given]
    else:
        candidates = ([Path(data_dir) / given] if data_dir is not None else []) + [Path.cwd() / given]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataError(f"{path}: file not found (looked for {', '.join(str(c) for c in candidates)}); check path: a "
                    "relative path resolves against data_dir, then the current folder")


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


def _local_labels(raw: list, records: _Records, spec: SourceSpec) -> tuple[list[int], list[str]]:
    texts = [_cell_text(value) for value in raw]
    for row, text in enumerate(texts):
        if text is None:
            raise DataError(f"{_at(records.where(row))}: empty label in column {spec.label_column!r}; fill it in or "
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
            raise DataError(f"{_at(records.where(negative))}: label {texts[negative]} is negative; class ids start "
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
            raise DataError(f"{_at(records.where(row))}: unknown label {text!r}; allowed values: {shown}; set "
                            "label_map (raw value -> class id) or label_names to cover it")
        labels.append(label)
    return labels, names


def _read_local(spec: SourceSpec, data_dir: Optional[Path]) -> _Table:
    path = _resolve_path(spec.path or "", data_dir)
    fmt = _format_of(path, spec.format)
    source = spec.label
    if fmt == "aclimdb":
        return _read_aclimdb(path, spec, source)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; a {fmt} source needs a file (only format aclimdb reads a folder)")
    records = _read_file(path, fmt, spec.encoding)
    texts = records.column(spec.text_column, "text_column")
    labels, names = _local_labels(records.column(spec.label_column, "label_column"), records, spec)
    if spec.domain is not None or "domain" not in records.columns:
        domains = [spec.domain or source] * len(records.positions)
    else:
        domains = _filled(records, "domain")
    splits = _row_splits(records, spec.split)
    own_ids = records.columns.get("id")
    table = _Table(source, names)
    for row, (text, label) in enumerate(zip(texts, labels)):
        own = _cell_text(own_ids[row]) if own_ids is not None else None
        table.add(records.where(row), id=f"{source}:{own if own is not None else records.positions[row]}",
                  text=text, label=label, domain=domains[row], split=splits[row])
    return table


def _filled(records: _Records, column: str) -> list[str]:
    """A file's own per-row column (here: domain), every cell filled in."""
    values = []
    for row, value in enumerate(records.columns[column]):
        text = _cell_text(value)
        if text is None:
            raise DataError(f"{_at(records.where(row))}: empty {column}; fill it in, or set {column} to give every "
                            f"row of the file the same {column}")
        values.append(text)
    return values


def _row_splits(records: _Records, declared: Optional[str]) -> list[Optional[str]]:
    if declared is not None or "split" not in records.columns:
        return [declared] * len(records.positions)
    splits = []
    for row, value in enumerate(records.columns["split"]):
        split = _SPLIT_ALIASES.get((_cell_text(value) or "").lower())
        if split is None:
            raise DataError(f"{_at(records.where(row))}: split {value!r} is not one of train, validation, test; fix "
                            "the file's split column, or set split for a file that holds one split only")
        splits.append(split)
    return splits


def _read_aclimdb(path: Path, spec: SourceSpec, source: str) -> _Table:
    table = _Table(source, list(spec.label_names or BINARY_LABELS))
    for split in ("train", "test"):
        for label, folder_name in enumerate(("neg", "pos")):
            folder = path / split / folder_name
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.txt")):
                match = re.fullmatch(r"(\d+)_(\d+)\.txt", file.name)
                if match is None:
                    raise DataError(f"{file}: expected a review file named <id>_<rating>.txt (the aclImdb layout)")
                table.add((str(file), "", 0), id=f"{source}:{split}:{folder_name}:{match[1]}",
                          text=_decode(file.read_bytes(), file, spec.encoding), label=label,
                          domain=spec.domain or source, split=spec.split or split, rating=float(match[2]))
    if not len(table):
        raise DataError(f"{path}: not an aclImdb folder: no <id>_<rating>.txt reviews in train/neg, train/pos, "
                        "test/neg or test/pos; set format if the folder is something else")
    return table


# ---------------------------------------------------------------------------------------- named sources


def _parse_name(text: str) -> tuple[NamedSource, list[str]]:
    name, _, subset_text = text.partition(":")
    name = name.strip()
    if name not in NAMED_SOURCES:
        close = difflib.get_close_matches(name, list(NAMED_SOURCES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"unknown data source {name!r}.{hint} Named sources: {', '.join(NAMED_SOURCES)}; for a file "
                        "of your own give path instead of name")
    named = NAMED_SOURCES[name]
    requested = [part.strip() for part in subset_text.split(",") if part.strip()]
    if not requested:
        return named, list(named.domains)
    if not named.domains:
        raise DataError(f"source {name!r} has no subsets, got {subset_text!r}; use name: {name}")
    subsets = []
    for part in requested:
        subset = named.aliases.get(part.lower(), part.lower())
        if subset not in named.domains:
            close = difflib.get_close_matches(part, named.domains + list(named.aliases), n=2)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise DataError(f"{name}: unknown subset {part!r}.{hint} Valid subsets: {', '.join(named.domains)}"
                            + (f" (aliases: {', '.join(named.aliases)})" if named.aliases else ""))
        if subset not in subsets:
            subsets.append(subset)
    return named, subsets


def _read_named(text: str, data_dir: Optional[Path]) -> _Table:
    named, subsets = _parse_name(text)
    if data_dir is None:
        if named.hub_loader is None:
            raise DataError(f"{named.name} has no Hugging Face Hub copy: set {DATA_DIR_ENV} (or data_dir in the "
                            "params) to a folder laid out like shared/data")
        return named.hub_loader(named, subsets)
    folder = Path(data_dir) / named.name
    if not folder.is_dir():
        hub = f"; or unset it to load {named.name} from the Hugging Face Hub" if named.hub_loader else ""
        raise DataError(f"{folder}: folder not found; data_dir ({data_dir}, or {DATA_DIR_ENV}) must hold one folder "
                        f"per named source, laid out like shared/data{hub}")
    return named.loader(folder, subsets)


def _parsed_label(text: str, lookup: dict[str, int], where: _Where) -> int:
    label = lookup.get(text.strip())
    if label is None:
        raise DataError(f"{_at(where)}: unknown label {text!r}; expected one of {', '.join(lookup)}")
    return label


_BINARY_IDS = {"0": 0, "1": 1}


def _read_imdb(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("imdb", BINARY_LABELS)
    for split in ("train", "test"):
        records = _read_file(folder / f"imdb_{split}.jsonl.gz", "jsonl", "utf-8")
        columns = [records.column(name) for name in ("id", "text", "label", "rating")]
        for row, (own_id, text, label, rating) in enumerate(zip(*columns)):
            where = records.where(row)
            label = _parsed_label(str(label), _BINARY_IDS, where)
            table.add(where, id=f"imdb:{split}:{BINARY_LABELS[label]}:{own_id}", text=text,
                      label=label, domain="imdb", split=split, rating=None if rating is None else float(rating))
    return table


_UCI_FILES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}


def _read_uci_sentences(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("uci_sentences", BINARY_LABELS)
    for domain in subsets:
        path = folder / _UCI_FILES[domain]
        for number, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t")
            where = (str(path), "line", number)
            if not tab:
                raise DataError(f"{_at(where)}: expected sentence<TAB>label")
            table.add(where, id=f"uci_sentences:{domain}:{number}", text=text,
                      label=_parsed_label(label, _BINARY_IDS, where), domain=domain)
    return table


_BLITZER_DOMAINS = ["books", "dvd", "electronics", "kitchen_&_housewares"]


def _read_blitzer_mds(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("blitzer_mds", BINARY_LABELS)
    records = _read_file(folder / "blitzer_mds_labelled.jsonl.gz", "jsonl", "utf-8")
    names = ("domain", "unique_id", "text", "label", "rating", "date", "helpful")
    for row, (domain, unique_id, text, label, rating, date, helpful) in enumerate(
            zip(*(records.column(name) for name in names))):
        if domain not in subsets:
            continue
        where = records.where(row)
        votes = re.fullmatch(r"\s*(\d+) of (\d+)\s*", helpful or "")
        if helpful and votes is None:
            raise DataError(f"{_at(where)}: helpful {helpful!r} is not 'x of y' votes")
        table.add(where, id=f"blitzer_mds:{domain}:{unique_id}", text=text,
                  label=_parsed_label(str(label), _BINARY_IDS, where), domain=domain, date=date or None,
                  helpful_votes=int(votes[1]) if votes else None, total_votes=int(votes[2]) if votes else None,
                  rating=None if rating is None else float(rating))
    return table


def _read_sst2(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("sst2", BINARY_LABELS)
    # GLUE layout: train.tsv names its text column "sentence", dev.tsv and test.tsv "content"; test is labelled here.
    for file_name, split, text_column in (("train.tsv", "train", "sentence"), ("dev.tsv", "validation", "content"),
                                          ("test.tsv", "test", "content")):
        records = _read_file(folder / file_name, "tsv", "utf-8")
        texts, labels = records.column(text_column), records.column("label")
        for row, (text, label) in enumerate(zip(texts, labels)):
            where = records.where(row)
            table.add(where, id=f"sst2:{split}:{where[2]}", text=text,
                      label=_parsed_label(label, _BINARY_IDS, where), domain="sst2", split=split)
    return table


def _read_rt_polarity(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("rt_polarity", BINARY_LABELS)
    for label, name in enumerate(BINARY_LABELS):
        path = folder / f"rt-polarity.{name}"
        # The original release was Windows-1252; this copy decodes as UTF-8 (checked), so UTF-8 it is.
        for number, line in enumerate(_lines(path, "utf-8"), start=1):
            table.add((str(path), "line", number), id=f"rt_polarity:{name}:{number}", text=line, label=label,
                      domain="rt_polarity")
    return table


def _read_customer_reviews(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("customer_reviews", BINARY_LABELS)
    path = folder / "custrev.all"
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        where = (str(path), "line", number)
        # Four lines hold a label and no sentence; they are kept here and dropped by cleaning (min_text_chars).
        table.add(where, id=f"customer_reviews:{number}", text=text, label=_parsed_label(label, _BINARY_IDS, where),
                  domain="customer_reviews")
    return table


# File, agreement level, encoding: only AllAgree is UTF-8 (README), the others ISO-8859-1.
_FPB_FILES = (("Sentences_AllAgree.txt", 1.0, "utf-8"), ("Sentences_75Agree.txt", 0.75, "iso-8859-1"),
              ("Sentences_66Agree.txt", 0.66, "iso-8859-1"), ("Sentences_50Agree.txt", 0.5, "iso-8859-1"))
_FPB_SUBSETS = {"allagree": 1.0, "75agree": 0.75, "66agree": 0.66, "50agree": 0.5}
_FPB_LABELS = {name: i for i, name in enumerate(THREE_WAY_LABELS)}

# One annotated sentence as read from a level's file (or Hub config): level, 1-based line, sentence, label id.
_FpbEntry = tuple[float, int, str, int, _Where]


def _read_financial_phrasebank(folder: Path, subsets: list[str]) -> _Table:
    entries: list[_FpbEntry] = []
    for file_name, level, encoding in _FPB_FILES:
        path = folder / file_name
        for number, line in enumerate(_lines(path, encoding), start=1):
            sentence, at, label = line.rpartition("@")
            where = (str(path), "line", number)
            if not at:
                raise DataError(f"{_at(where)}: expected sentence@label")
            entries.append((level, number, sentence, _parsed_label(label, _FPB_LABELS, where), where))
    return _phrasebank_table(entries, subsets)


def _phrasebank_table(entries: list[_FpbEntry], subsets: list[str]) -> _Table:
    """One row per unique sentence, at the highest agreement level it appears at, with that level's label.

    Lower-agreement files repeat the higher ones; a sentence listed twice with different labels in 50Agree
    takes the label of the higher level that lists it. Ids are the sentence's first line in the 50Agree file,
    which holds every sentence, so they do not change with the subset.
    """
    minimum = min(_FPB_SUBSETS[subset] for subset in subsets)
    line_in_all: dict[str, int] = {}
    for level, number, sentence, _, _ in entries:
        if level == 0.5:
            line_in_all.setdefault(sentence, number)
    best: dict[str, _FpbEntry] = {}
    for entry in sorted(entries, key=lambda entry: (-entry[0], entry[1])):
        best.setdefault(entry[2], entry)
    table = _Table("financial_phrasebank", THREE_WAY_LABELS)
    for sentence in sorted(best, key=lambda sentence: line_in_all.get(sentence, 0)):
        level, number, _, label, where = best[sentence]
        if level < minimum:
            continue
        own = line_in_all.get(sentence, f"{level}:{number}")
        table.add(where, id=f"financial_phrasebank:{own}", text=sentence, label=label, domain="finance",
                  agreement=level)
    return table


_XLMT_LANGUAGES = ["arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish"]
# \uXXXX escapes, surrogate pairs first so that emoji written as two escapes decode to one character.
_UNICODE_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")


def _unescape(text: str) -> str:
    """Literal ``\\u2019``-style escapes (English XLM-T tweets) as the characters they stand for."""
    def character(match: re.Match) -> str:
        if match[3] is None:
            high, low = int(match[1], 16), int(match[2], 16)
            return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
        code = int(match[3], 16)
        # A lone surrogate cannot be stored as UTF-8; leave such an escape as written.
        return match[0] if 0xD800 <= code <= 0xDFFF else chr(code)

    return _UNICODE_ESCAPE.sub(character, text) if "\\u" in text else text


def _read_xlmt_tweets(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("xlmt_tweets", THREE_WAY_LABELS)
    for language in subsets:
        for file_split, split in (("train", "train"), ("val", "validation"), ("test", "test")):
            text_path = folder / language / f"{file_split}_text.txt"
            label_path = folder / language / f"{file_split}_labels.txt"
            texts, labels = _lines(text_path), _lines(label_path)
            if len(texts) != len(labels):
                raise DataError(f"{text_path} has {len(texts)} lines but {label_path} has {len(labels)}; the two "
                                "files must be parallel, one line per tweet")
            for number, (text, label) in enumerate(zip(texts, labels), start=1):
                label_id = _parsed_label(label, {"0": 0, "1": 1, "2": 2}, (str(label_path), "line", number))
                table.add((str(text_path), "line", number), id=f"xlmt_tweets:{language}:{split}:{number}",
                          text=_unescape(text), label=label_id, domain=language, split=split)
    return table


def _read_chnsenticorp(folder: Path, subsets: list[str]) -> _Table:
    table = _Table("chnsenticorp", BINARY_LABELS)
    records = _read_file(folder / "ChnSentiCorp_htl_all.csv", "csv", "utf-8")
    for row, (label, review) in enumerate(zip(records.column("label"), records.column("review"))):
        where = records.where(row)
        table.add(where, id=f"chnsenticorp:{where[2]}", text=review, label=_parsed_label(label, _BINARY_IDS, where),
                  domain="chnsenticorp")
    return table


# ------------------------------------------------------------------------------------------------- the Hub


def _hub_dataset(named: NamedSource, config: Optional[str] = None) -> DatasetDict:
    try:
        return datasets.load_dataset(named.hub_id, name=config, revision=named.hub_revision)
    except Exception as error:  # network, missing repo or config, unsupported script: one remedy for all
        raise DataError(f"could not load {named.name} from the Hugging Face Hub ({named.hub_id}"
                        f"{', config ' + config if config else ''}): {type(error).__name__}: {error}; check the "
                        f"connection, or set {DATA_DIR_ENV} (or data_dir) to a local copy laid out like "
                        "shared/data") from None


def _hub_rows(named: NamedSource, dsd: DatasetDict, config: Optional[str], text_column: str,
              label_column: str = "label") -> Iterator[tuple[str, int, str, int, _Where]]:
    """(split, index, text, label id, where) for each labelled row of the Hub splits the schema knows."""
    for hub_split, rows in dsd.items():
        split = _HUB_SPLITS.get(hub_split)
        if split is None:
            continue  # e.g. imdb's unlabelled "unsupervised" split
        for name in (text_column, label_column):
            if name not in rows.column_names:
                raise DataError(f"{named.hub_id}{'/' + config if config else ''} {hub_split}: no column {name!r}; "
                                f"columns present: {rows.column_names}; the Hub copy changed: set {DATA_DIR_ENV} "
                                "to a local copy")
        for index, (text, label) in enumerate(zip(_values(rows, text_column), _values(rows, label_column))):
            if label is None or label < 0:
                continue  # hidden test labels (-1), as in GLUE's sst2
            where = (f"{named.hub_id}{'/' + config if config else ''} {hub_split}", "row", index + 1)
            if label >= len(named.label_names):
                raise DataError(f"{_at(where)}: label id {label} is outside {named.label_names}")
            yield split, index, text, int(label), where


def _read_hub_single_domain(named: NamedSource, subsets: list[str]) -> _Table:
    table = _Table(named.name, named.label_names)
    for split, index, text, label, where in _hub_rows(named, _hub_dataset(named), None, named.hub_text_column):
        table.add(where, id=f"{named.name}:{split}:{index}", text=text, label=label, domain=named.domain or named.name,
                  split=split)
    return table


def _read_hub_phrasebank(named: NamedSource, subsets: list[str]) -> _Table:
    entries: list[_FpbEntry] = []
    # Every level, whatever the subset: a sentence's agreement is the highest level that lists it.
    for subset, level in _FPB_SUBSETS.items():
        config = f"sentences_{subset}"
        for _, index, text, label, where in _hub_rows(named, _hub_dataset(named, config), config, "sentence"):
            entries.append((level, index + 1, text, label, where))
    return _phrasebank_table(entries, subsets)


def _read_hub_xlmt(named: NamedSource, subsets: list[str]) -> _Table:
    table = _Table(named.name, named.label_names)
    for language in subsets:
        for split, index, text, label, where in _hub_rows(named, _hub_dataset(named, language), language, "text"):
            table.add(where, id=f"xlmt_tweets:{language}:{split}:{index}", text=_unescape(text), label=label,
                      domain=language, split=split)
    return table


# ------------------------------------------------------------------------------------------- the registry


# Domains and ids of the local copies (Hub copies number rows by their 0-based index in the Hub split instead):
#   imdb                  imdb                                   imdb:<train|test>:<neg|pos>:<review id>
#   uci_sentences         amazon, imdb, yelp                     uci_sentences:<domain>:<line>
#   blitzer_mds           books, dvd, electronics,               blitzer_mds:<domain>:<unique_id>
#                         kitchen_&_housewares (alias kitchen)
#   sst2                  sst2, not "movies": its train split    sst2:<split>:<line>
#                         holds phrases, and rt_polarity shares
#                         its source texts
#   rt_polarity           rt_polarity                            rt_polarity:<neg|pos>:<line>
#   customer_reviews      customer_reviews                       customer_reviews:<line>
#   financial_phrasebank  finance                                financial_phrasebank:<line in 50Agree>
#   xlmt_tweets           the language (arabic, english, ...)    xlmt_tweets:<language>:<split>:<line>
#   chnsenticorp          chnsenticorp                           chnsenticorp:<line>
NAMED_SOURCES: dict[str, NamedSource] = {source.name: source for source in (
    NamedSource(
        "imdb", "Large Movie Review Dataset: 25k train / 25k test IMDB reviews, balanced; validation is "
        "carved from train", "Maas et al., Learning Word Vectors for Sentiment Analysis, ACL 2011",
        BINARY_LABELS, [], "stanfordnlp/imdb", _read_imdb, _read_hub_single_domain, domain="imdb"),
    NamedSource(
        "uci_sentences", "Sentiment Labelled Sentences: 1,000 sentences each from Amazon, IMDB and Yelp, no "
        "splits", "Kotzias et al., From Group to Individual Labels using Deep Features, KDD 2015",
        BINARY_LABELS, list(_UCI_FILES), None, _read_uci_sentences),
    NamedSource(
        "blitzer_mds", "Multi-Domain Sentiment v2.0: 2,000 Amazon reviews in each of four product domains, "
        "with date, helpful votes and rating; no splits",
        "Blitzer, Dredze & Pereira, Biographies, Bollywood, Boom-boxes and Blenders, ACL 2007",
        BINARY_LABELS, list(_BLITZER_DOMAINS), None, _read_blitzer_mds,
        aliases={"kitchen": "kitchen_&_housewares"}),
    NamedSource(
        "sst2", "Stanford Sentiment Treebank, binary (GLUE layout): phrase-level train, sentence-level "
        "validation and labelled test", "Socher et al., Recursive Deep Models for Semantic Compositionality "
        "Over a Sentiment Treebank, EMNLP 2013", BINARY_LABELS, [], "stanfordnlp/sst2", _read_sst2,
        _read_hub_single_domain, domain="sst2", hub_text_column="sentence"),
    NamedSource(
        "rt_polarity", "Sentence polarity v1.0: 5,331 positive and 5,331 negative Rotten Tomatoes snippets, "
        "no splits", "Pang & Lee, Seeing Stars, ACL 2005", BINARY_LABELS, [],
        "cornell-movie-review-data/rotten_tomatoes", _read_rt_polarity, _read_hub_single_domain,
        domain="rt_polarity"),
    NamedSource(
        "customer_reviews", "Customer reviews (CR) of electronics products: 3,775 sentences, no splits",
        "Hu & Liu, Mining and Summarizing Customer Reviews, KDD 2004", BINARY_LABELS, [], "SetFit/CR",
        _read_customer_reviews, _read_hub_single_domain, domain="customer_reviews"),
    NamedSource(
        "financial_phrasebank", "Financial PhraseBank v1.0: 4,838 unique financial news sentences, 3 classes, "
        "each at the highest annotator agreement it reached (subsets keep that level or above); no splits",
        "Malo et al., Good Debt or Bad Debt, JASIST 2014", THREE_WAY_LABELS, list(_FPB_SUBSETS),
        "takala/financial_phrasebank", _read_financial_phrasebank, _read_hub_phrasebank, domain="finance",
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "xlmt_tweets", "XLM-T / UMSAB multilingual tweet sentiment: 8 languages, 1,839 / 324 / 870 tweets each, "
        "3 balanced classes", "Barbieri, Espinosa Anke & Camacho-Collados, XLM-T, LREC 2022", THREE_WAY_LABELS,
        list(_XLMT_LANGUAGES), "cardiffnlp/tweet_sentiment_multilingual", _read_xlmt_tweets, _read_hub_xlmt,
        hub_revision="refs/convert/parquet"),
    NamedSource(
        "chnsenticorp", "ChnSentiCorp hotel reviews (Chinese): 7,766 reviews, no splits",
        "Tan Songbo, ChnSentiCorp", BINARY_LABELS, [], None, _read_chnsenticorp, domain="chnsenticorp"),
)}
