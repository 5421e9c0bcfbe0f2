"""Data schema: the record features every source is read into, the checks a table must pass, seeded splits.

Takes a source's rows as a `Table`; hands on a DatasetDict ("train", "validation", "test") in `record_features`.
"""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

import datasets
import pyarrow
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from ..config import Config, split_percentages_problem

SPLITS = ("train", "validation", "test")
BINARY_LABELS = ["neg", "pos"]
THREE_WAY_LABELS = ["negative", "neutral", "positive"]

# Per-row columns a loader fills; `source` is constant per source and added when the Dataset is built.
ROW_COLUMNS = ("id", "text", "label", "domain", "split", "agreement", "date", "helpful_votes", "total_votes",
               "rating")

# Where a row came from, for messages: (file, "line" | "row" | "", number).
Where = tuple[str, str, int]


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


def at(where: Where) -> str:
    """A row's place for a message: "file, line 3", "file, row 3" or just the file."""
    path, unit, number = where
    return f"{path}, {unit} {number}" if unit else path


@dataclass
class Table:
    """One source's rows before splitting, column by column, with where each row came from."""

    source: str
    label_names: list[str]
    columns: dict[str, list] = field(default_factory=lambda: {name: [] for name in ROW_COLUMNS})
    where: list[Where] = field(default_factory=list)

    def add(self, where: Where, *, id: str, text: Optional[str], label: int, domain: str,
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


def values(dataset: Dataset, name: str) -> list:
    """A column as a list; iterating `dataset[name]` itself goes row by row through the formatter, far slower."""
    return dataset[name][:]


# ----------------------------------------------------------------------------------------------------- checks


def check_percentages(validation_percentage: float, test_percentage: float) -> None:
    if problem := split_percentages_problem(validation_percentage, test_percentage):
        raise DataError(problem)


def check_texts(table: Table, max_text_chars: int) -> None:
    texts = table.columns["text"]
    if texts and max(map(len, texts)) > max_text_chars:
        row = next(i for i, text in enumerate(texts) if len(text) > max_text_chars)
        raise DataError(
            f"{at(table.where[row])}: text is {len(texts[row]):,} characters, over max_text_chars={max_text_chars:,}; "
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
            raise DataError(f"{at(table.where[row])}: text holds a lone UTF-16 surrogate (an escape such as "
                            "\\ud83d without its pair); fix that row in the file") from None


def check_unique_ids(table: Table) -> None:
    ids = table.columns["id"]
    if len(set(ids)) == len(ids):
        return
    first: dict[str, int] = {}
    for row, id_ in enumerate(ids):
        if id_ in first:
            raise DataError(f"{at(table.where[row])}: id {id_!r} repeats {at(table.where[first[id_]])}; make the "
                            "file's id column unique, or drop it (ids then come from row numbers)")
        first[id_] = row


def check_two_classes(train: Dataset, table: Table) -> None:
    present = set(values(train, "label"))
    if len(present) == 1:
        name = table.label_names[present.pop()]
        files = sorted({where[0] for where in table.where})
        raise DataError(f"{', '.join(files)}: the training data of {table.source!r} holds only class {name!r} "
                        f"({len(train)} rows); a classifier needs two classes or more: check label_column and "
                        "label_map, or whether the file holds one split only (split)")


def check_ids_across_sources(loaded: list[tuple[str, DatasetDict]]) -> None:
    owner: dict[str, str] = {}
    for label, dsd in loaded:
        for split in SPLITS:
            for id_ in values(dsd[split], "id"):
                if id_ in owner:
                    raise DataError(
                        f"id {id_!r} occurs in both {owner[id_]!r} and {label!r}: a source is listed twice, or "
                        "two local files share a name; list each source once, or set source to tell files apart")
                owner[id_] = label


# --------------------------------------------------------------------------------------------------- building


def to_dataset_dict(table: Table, splits: list[str]) -> DatasetDict:
    """The table's rows as a DatasetDict, each row in the split named for it."""
    features = record_features(table.label_names)
    rows_by_split: dict[str, list[int]] = {split: [] for split in SPLITS}
    for row, split in enumerate(splits):
        rows_by_split[split].append(row)
    parts = {}
    for split, rows in rows_by_split.items():
        data = {name: [table.columns[name][row] for row in rows] for name in ROW_COLUMNS}
        data["split"] = [split] * len(rows)
        data["source"] = [table.source] * len(rows)
        parts[split] = build_dataset(data, features)
    return DatasetDict(parts)


def build_dataset(data: dict[str, list], features: Features) -> Dataset:
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


def assign_splits(table: Table, seed: int, validation_percentage: float, test_percentage: float) -> list[str]:
    """Each row's split: its own where the source gives one, else train, with missing splits carved from train."""
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


def carve_missing_splits(dsd: DatasetDict, config: Config) -> DatasetDict:
    """Validation (or test) carved from train where the combined data has none."""
    shares = {split: percentage / 100 for split, percentage in
              (("test", config.test_split_percentage), ("validation", config.validation_split_percentage))
              if len(dsd[split]) == 0}
    if not shares:
        return dsd
    train = dsd["train"]
    moved = _carve(values(train, "id"), values(train, "domain"), values(train, "label"), list(range(len(train))),
                   shares, config.seed)
    result = DatasetDict({"train": train.select([row for row in range(len(train)) if row not in moved])})
    for split in ("validation", "test"):
        if split not in shares:
            result[split] = dsd[split]
            continue
        carved = train.select(sorted(row for row, target in moved.items() if target == split)).to_dict()
        carved["split"] = [split] * len(carved["id"])
        result[split] = build_dataset(carved, train.features)
    return DatasetDict({split: result[split] for split in SPLITS})


def stratified_sample(dataset: Dataset, size: int, seed: int, salt: str) -> list[int]:
    """Row indices of a seeded sample of `size` rows, each (domain, label) stratum kept in proportion."""
    strata = _strata(values(dataset, "domain"), values(dataset, "label"), list(range(len(dataset))))
    total = len(dataset)
    quotas = {key: size * len(rows) / total for key, rows in strata.items()}
    counts = {key: math.floor(quota) for key, quota in quotas.items()}
    # Largest remainders get the rows left over, so the sample has exactly `size` rows.
    leftover = size - sum(counts.values())
    for key in sorted(quotas, key=lambda key: (counts[key] - quotas[key], key))[:leftover]:
        counts[key] += 1
    ids = values(dataset, "id")
    keep = []
    for key, rows in strata.items():
        keep.extend(sorted(rows, key=lambda row: _rank(seed, salt, ids[row]))[:counts[key]])
    return sorted(keep)
