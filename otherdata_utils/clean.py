"""Cleaning: normalise texts, drop empty and duplicate rows, find and remove train texts leaking into validation/test.

Takes the DatasetDict from `data`; hands on the cleaned DatasetDict and a `CleaningReport` for the run folder.
"""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import Dataset, DatasetDict

from .config import Config

SPLIT_ORDER = ("train", "validation", "test")
REQUIRED_COLUMNS = ("id", "text", "label", "domain", "source")

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_NON_WORD = re.compile(r"[\W_]+")
# Most texts are ASCII: str.translate with an ASCII-only table takes CPython's fast path, several times quicker
# than the regex, and gives the same key.
_ASCII_NON_WORD = str.maketrans({chr(i): " " for i in range(128) if not chr(i).isalnum()})


def normalize_text(text: str) -> str:
    """HTML line breaks and entities resolved, Unicode NFC, runs of whitespace collapsed to one space, stripped."""
    text = _HTML_BREAK.sub("\n", text)
    if "&" in text:
        text = html.unescape(text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def dedupe_key(text: str) -> str:
    """The near-duplicate key: case folded, every run of punctuation, symbols and whitespace folded to one space."""
    text = normalize_text(text).casefold()
    text = text.translate(_ASCII_NON_WORD) if text.isascii() else _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def _key_of_normalised(text: str) -> str:
    """`dedupe_key` for a text that is already normalised (skips the second normalisation on big data)."""
    text = text.casefold()
    text = text.translate(_ASCII_NON_WORD) if text.isascii() else _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _is_missing(text: Any) -> bool:
    """None, NaN or anything else that is not a string (a broken cell)."""
    return not isinstance(text, str)


# --- leakage ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeakPair:
    """One row of an earlier split whose text also occurs in a later split (train < validation < test).

    `exact`: the normalised texts are identical; otherwise they match only after case/punctuation folding.
    `text_hash` identifies the shared normalised text, `key_hash` the shared near-duplicate key.
    """

    id: str
    split: str
    source: str
    domain: str
    other_id: str
    other_split: str
    other_source: str
    other_domain: str
    exact: bool
    text_hash: str
    key_hash: str

    @property
    def same_source(self) -> bool:
        return self.source == self.other_source


@dataclass
class LeakageReport:
    """Texts shared across splits, within and across sources; `near` says whether folded matches were sought."""

    near: bool
    pairs: list[LeakPair] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # rows per split that were searched

    def leaked_ids(self, split: str = "train") -> set[str]:
        """Ids of `split` that share a text with any later split."""
        return {pair.id for pair in self.pairs if pair.split == split}

    def shared_texts(self, split: str, others: Union[str, Sequence[str]], *, exact_only: bool = False) -> int:
        """Distinct texts of `split` that also occur in any of `others` (exact texts, or near keys too)."""
        others = {others} if isinstance(others, str) else set(others)
        found = set()
        for pair in self.pairs:
            if exact_only and not pair.exact:
                continue
            if (pair.split == split and pair.other_split in others) or (
                pair.other_split == split and pair.split in others
            ):
                found.add(pair.text_hash if exact_only else pair.key_hash)
        return len(found)

    def to_frame(self, by: Literal["source", "domain"] = "source") -> pd.DataFrame:
        """One row per (split, group, other split, other group, match): pairs, distinct rows on each side, texts."""
        columns = ["split", by, "other_split", f"other_{by}", "match", "pairs", "rows", "other_rows", "texts"]
        groups: dict[tuple, list[LeakPair]] = defaultdict(list)
        for pair in self.pairs:
            mine, theirs = (pair.source, pair.other_source) if by == "source" else (pair.domain, pair.other_domain)
            match = "exact" if pair.exact else "near"
            groups[(pair.split, mine, pair.other_split, theirs, match)].append(pair)
        records = [
            (*key, len(pairs), len({p.id for p in pairs}), len({p.other_id for p in pairs}),
             len({p.text_hash if p.exact else p.key_hash for p in pairs}))
            for key, pairs in groups.items()
        ]
        frame = pd.DataFrame.from_records(records, columns=columns)
        order = {name: i for i, name in enumerate(SPLIT_ORDER)}
        return frame.sort_values(
            ["split", "other_split", by, f"other_{by}", "match"],
            key=lambda col: col.map(order) if col.name in ("split", "other_split") else col,
        ).reset_index(drop=True)

    def summary(self) -> str:
        if not self.pairs:
            kind = "exact or near-duplicate" if self.near else "exact"
            return f"No {kind} texts shared between splits ({sum(self.rows.values()):,} rows searched)."
        sentences = []
        for split, other in (("train", "validation"), ("train", "test"), ("validation", "test")):
            exact = self.shared_texts(split, other, exact_only=True)
            near = self.shared_texts(split, other) - exact if self.near else 0
            if exact or near:
                extra = f" plus {near} more after case/punctuation folding" if near else ""
                sentences.append(f"{_count(exact, 'distinct text occurs', 'distinct texts occur')} in both {split} "
                                 f"and {other}{extra}.")
        cross = sum(1 for pair in self.pairs if not pair.same_source)
        sentences.append(
            f"{_count(len(self.leaked_ids('train')), 'train row shares', 'train rows share')} a text with validation "
            f"or test; {cross} of the {_count(len(self.pairs), 'pair crosses', 'pairs cross')} sources."
        )
        return " ".join(sentences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "near": self.near,
            "rows": dict(self.rows),
            "leaked_train_rows": len(self.leaked_ids("train")),
            "counts": self.to_frame().to_dict(orient="records"),
            "pairs": [{**asdict(pair), "same_source": pair.same_source} for pair in self.pairs],
            "summary": self.summary(),
        }


@dataclass
class _SplitIndex:
    """Per-split columns as Python lists, with normalised texts and keys computed once."""

    ids: list[str]
    sources: list[str]
    domains: list[str]
    texts: list[str]
    keys: list[str]


def _columns(ds: Dataset, names: Sequence[str]) -> dict[str, list[Any]]:
    """Columns as Python lists through one Arrow table (several times faster than ds[name] on big splits)."""
    table = ds.with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in names}


def _index_split(columns: dict[str, list[Any]]) -> _SplitIndex:
    texts = ["" if _is_missing(t) else normalize_text(t) for t in columns["text"]]
    return _SplitIndex(
        ids=columns["id"], sources=columns["source"], domains=columns["domain"], texts=texts,
        # a text of punctuation only has an empty key: keep it apart from every other such text
        keys=[_key_of_normalised(t) or t for t in texts],
    )


def _leakage(indexes: dict[str, _SplitIndex], *, near: bool) -> LeakageReport:
    """Pairs of rows in different splits with the same text (or key), by dict look-up, never pairwise.

    The one search for leakage: `find_leakage` runs it over whole splits, `clean` over the rows it kept.
    """
    splits = [s for s in SPLIT_ORDER if s in indexes] + sorted(s for s in indexes if s not in SPLIT_ORDER)
    by_key: dict[str, dict[str, list[int]]] = {}
    for split in splits:
        index = indexes[split]
        table: dict[str, list[int]] = defaultdict(list)
        for row, (text, key) in enumerate(zip(index.texts, index.keys)):
            if text:
                table[key if near else text].append(row)
        by_key[split] = table
    pairs = []
    for i, split in enumerate(splits):
        mine = indexes[split]
        for other_split in splits[i + 1:]:
            theirs = indexes[other_split]
            other_table = by_key[other_split]
            for key, rows in by_key[split].items():
                for other_row in other_table.get(key, ()):
                    for row in rows:
                        text, other_text = mine.texts[row], theirs.texts[other_row]
                        pairs.append(LeakPair(
                            id=mine.ids[row], split=split, source=mine.sources[row], domain=mine.domains[row],
                            other_id=theirs.ids[other_row], other_split=other_split,
                            other_source=theirs.sources[other_row], other_domain=theirs.domains[other_row],
                            exact=text == other_text, text_hash=_short_hash(other_text),
                            key_hash=_short_hash(mine.keys[row]),
                        ))
    return LeakageReport(near=near, pairs=pairs, rows={split: len(index.ids) for split, index in indexes.items()})


def find_leakage(dsd: DatasetDict, *, near: bool = True) -> LeakageReport:
    """Every pair of rows in different splits that share a normalised text (or, with `near`, a `dedupe_key`)."""
    _check_columns(dsd)
    indexes = {split: _index_split(_columns(ds, ["id", "source", "domain", "text"])) for split, ds in dsd.items()}
    return _leakage(indexes, near=near)


# --- cleaning -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drop:
    """Rows one cleaning step dropped from one (source, split), and why."""

    step: str
    source: str
    split: str
    dropped: int
    reason: str


@dataclass
class CleaningReport:
    """What each cleaning step changed or dropped, per (source, split); rows in − dropped = rows out."""

    settings: dict[str, Any]
    rows_in: dict[tuple[str, str], int]  # (source, split) -> rows
    rows_out: dict[tuple[str, str], int]
    normalised: dict[tuple[str, str], int]  # rows whose text normalisation changed
    drops: list[Drop]
    leakage: LeakageReport
    steps: list[str]

    def dropped(self, step: Optional[str] = None, *, split: Optional[str] = None, source: Optional[str] = None) -> int:
        return sum(
            d.dropped for d in self.drops
            if (step is None or d.step == step) and (split is None or d.split == split)
            and (source is None or d.source == source)
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per (step, source, split, reason) with the rows dropped."""
        frame = pd.DataFrame([asdict(d) for d in self.drops], columns=["step", "source", "split", "dropped", "reason"])
        return frame[frame["dropped"] > 0].reset_index(drop=True)

    def counts_frame(self) -> pd.DataFrame:
        """Wide: per (source, split) rows in, rows texts changed by normalisation, dropped by each step, rows out."""
        records = []
        for source, split in self.rows_in:
            record = {"source": source, "split": split, "rows_in": self.rows_in[(source, split)],
                      "normalised": self.normalised.get((source, split), 0)}
            for step in self.steps:
                record[f"dropped_{step}"] = self.dropped(step, split=split, source=source)
            record["rows_out"] = self.rows_out.get((source, split), 0)
            records.append(record)
        return pd.DataFrame.from_records(records)

    def summary(self) -> str:
        rows_in, rows_out = sum(self.rows_in.values()), sum(self.rows_out.values())
        parts = [f"Cleaning kept {rows_out:,} of {rows_in:,} rows."]
        changed = sum(self.normalised.values())
        if changed:
            parts.append(f"Normalisation changed {changed:,} texts (HTML breaks/entities, Unicode, whitespace).")
        labels = {"empty": ("empty or too short row", "empty or too short rows"),
                  "duplicate": ("exact duplicate within a split", "exact duplicates within a split"),
                  "near_duplicate": ("near duplicate within a split (case/punctuation folded)",
                                     "near duplicates within a split (case/punctuation folded)"),
                  "leakage": ("train row whose text also occurs in validation or test",
                              "train rows whose text also occurs in validation or test")}
        dropped = [_count(self.dropped(step), *labels[step]) for step in self.steps if self.dropped(step)]
        if dropped:
            parts.append("Dropped " + "; ".join(dropped) + ".")
        if not self.settings["remove_leakage"] and self.leakage.pairs:
            parts.append(f"Leakage was reported but not removed: {self.leakage.summary()}")
        elif self.leakage.pairs:
            parts.append(f"Before removal: {self.leakage.summary()}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        def rows(table: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
            return [{"source": source, "split": split, "rows": n} for (source, split), n in table.items()]

        return {
            "settings": dict(self.settings),
            "steps": list(self.steps),
            "rows_in": rows(self.rows_in),
            "rows_out": rows(self.rows_out),
            "normalised": rows(self.normalised),
            "drops": [asdict(d) for d in self.drops if d.dropped],
            "leakage": self.leakage.to_dict(),
            "summary": self.summary(),
        }


def _check_columns(dsd: DatasetDict) -> None:
    for split, ds in dsd.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
        if missing:
            raise ValueError(
                f"cleaning needs columns {list(REQUIRED_COLUMNS)}; split {split!r} lacks {missing} "
                f"(it has {ds.column_names}). Load data through otherdata_utils.data, which adds them."
            )


def _record(drops: list[Drop], step: str, split: str, sources: list[str], reasons: dict[int, str]) -> None:
    """Count the rows one step dropped from one split, per (source, reason)."""
    counts = Counter((sources[row], reason) for row, reason in reasons.items())
    for (source, reason), n in sorted(counts.items()):
        drops.append(Drop(step=step, source=source, split=split, dropped=n, reason=reason))


def _duplicates(keep: list[int], keys: list[str], labels: list[Any], what: str) -> dict[int, str]:
    """Rows whose key an earlier kept row already has (the first is kept), noting a conflicting label."""
    first: dict[str, int] = {}
    reasons = {}
    for row in keep:
        seen = first.setdefault(keys[row], row)
        if seen != row:
            conflict = " with a different label" if labels[seen] != labels[row] else ""
            reasons[row] = f"{what} as an earlier row{conflict}"
    return reasons


def take_rows(ds: Dataset, rows: Sequence[int], step: str, **columns: list[str]) -> Dataset:
    """Rows `rows` of `ds` (repeats allowed), some string columns replaced, built through Arrow.

    Same features and column order. The fingerprint derives from the parent's, the rows and `step` (which must
    name whatever decides the replaced values), instead of hashing the whole table as `Dataset(...)` and `select`
    would (seconds on IMDB).
    """
    table = ds.with_format("arrow")[list(rows)]
    for name, values in columns.items():
        table = table.set_column(table.column_names.index(name), name, pa.array(values, type=pa.string()))
    digest = hashlib.blake2b(f"{ds._fingerprint}|{step}".encode(), digest_size=8)
    digest.update(np.asarray(rows, dtype=np.int64).tobytes())
    return Dataset(table, info=ds.info.copy(), split=ds.split, fingerprint=digest.hexdigest())


def clean(dsd: DatasetDict, config: Config) -> tuple[DatasetDict, CleaningReport]:
    """Normalise, drop empty/short, exact and (if `near_dedupe`) near duplicates within each split, then leakage.

    Every split is normalised and de-duplicated inside itself (a repeated test row would count twice), but for test
    when `dedupe_test` is false (a benchmark's test set scored as published). Leakage
    (a train text that also occurs in validation or test, in any source) is removed from train only, when
    `remove_leakage`; validation and test are the yardstick and lose no row to it. Leakage matches on the
    near-duplicate key when `near_dedupe`, on the normalised text otherwise.
    """
    _check_columns(dsd)
    settings = {"min_text_chars": config.min_text_chars, "dedupe": config.dedupe,
                "near_dedupe": config.near_dedupe, "dedupe_test": config.dedupe_test,
                "remove_leakage": config.remove_leakage}
    splits = [s for s in SPLIT_ORDER if s in dsd] + sorted(s for s in dsd if s not in SPLIT_ORDER)
    steps = ["empty"] + (["duplicate"] if config.dedupe else []) + (["near_duplicate"] if config.near_dedupe else [])
    steps += ["leakage"] if config.remove_leakage else []
    drops: list[Drop] = []
    rows_in: Counter[tuple[str, str]] = Counter()
    normalised: Counter[tuple[str, str]] = Counter()
    full: dict[str, _SplitIndex] = {}
    kept: dict[str, list[int]] = {}

    for split in splits:
        columns = _columns(dsd[split], ["id", "source", "domain", "text", "label"])
        raw, labels = columns["text"], columns["label"]
        index = full[split] = _index_split(columns)
        for row, source in enumerate(index.sources):
            rows_in[(source, split)] += 1
            if not _is_missing(raw[row]) and raw[row] != index.texts[row]:
                normalised[(source, split)] += 1

        reasons = {}
        for row, text in enumerate(index.texts):
            if not text:
                reasons[row] = "empty or missing text"
            elif len(text) < config.min_text_chars:
                reasons[row] = f"shorter than {config.min_text_chars} characters after normalisation"
        _record(drops, "empty", split, index.sources, reasons)
        keep = [row for row in range(len(index.texts)) if row not in reasons]
        dedupe_here = split != "test" or config.dedupe_test
        if config.dedupe and dedupe_here:
            reasons = _duplicates(keep, index.texts, labels, "same text")
            _record(drops, "duplicate", split, index.sources, reasons)
            keep = [row for row in keep if row not in reasons]
        if config.near_dedupe and dedupe_here:
            reasons = _duplicates(keep, index.keys, labels, "same text after case/punctuation folding")
            _record(drops, "near_duplicate", split, index.sources, reasons)
            keep = [row for row in keep if row not in reasons]
        kept[split] = keep

    def subset(split: str) -> _SplitIndex:
        index, rows = full[split], kept[split]
        return _SplitIndex(*([column[row] for row in rows] for column in (
            index.ids, index.sources, index.domains, index.texts, index.keys)))

    leakage = _leakage({split: subset(split) for split in splits}, near=config.near_dedupe)
    if config.remove_leakage and "train" in kept:
        also_in: dict[int, set[str]] = defaultdict(set)
        row_of = {full["train"].ids[row]: row for row in kept["train"]}
        for pair in leakage.pairs:
            if pair.split == "train":
                also_in[row_of[pair.id]].add(pair.other_split)
        reasons = {row: "text also in " + " and ".join(s for s in splits if s in others)
                   for row, others in also_in.items()}
        _record(drops, "leakage", "train", full["train"].sources, reasons)
        kept["train"] = [row for row in kept["train"] if row not in reasons]

    out = DatasetDict({
        split: take_rows(dsd[split], kept[split], f"clean {settings}",
                         text=[full[split].texts[row] for row in kept[split]])
        for split in splits
    })
    rows_out = {key: 0 for key in rows_in}
    for split in splits:
        for row in kept[split]:
            rows_out[(full[split].sources[row], split)] += 1
    report = CleaningReport(settings=settings, rows_in=dict(rows_in), rows_out=dict(rows_out),
                            normalised=dict(normalised), drops=drops, leakage=leakage, steps=steps)
    return out, report


def _count(number: int, singular: str, plural: str) -> str:
    """'1 train row shares' / '4 train rows share': report sentences read as written, whatever the count."""
    return f"{number:,} {singular if number == 1 else plural}"
