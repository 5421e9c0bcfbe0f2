"""Getting the other data: a named source's Hub copy written into a data dir in the layout its reader expects.

Takes source names and a data dir; hands on one folder per source (``data_dir/<name>/``) that `named` then reads
offline. The conversion from Hub rows to files is a pure function per source (`layout_files`); only `fetch` downloads.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

from datasets import DatasetDict

from ..config import DATA_DIR_ENV, SHARED_DATA, default_data_dir, project_root
from ..io import atomic_dir
from .copies import FPB_FILES, FPB_HUB_CONFIG, FPB_SUBSETS, XLMT_LANGUAGES
from .named import NAMED_SOURCES, NamedSource, hub_dataset, hub_rows, parse_name
from .schema import BINARY_LABELS, THREE_WAY_LABELS, DataError
from .sources import sources_table

# The Hub rows of a source: config name (None: the default config) -> its DatasetDict.
HubCopy = dict[Optional[str], DatasetDict]
# A source's folder as files: path relative to data_dir/<name> -> bytes.
Files = dict[str, bytes]


def _labelled(named: NamedSource, hub: HubCopy, config: Optional[str] = None,
              text_column: Optional[str] = None) -> Iterator[tuple[str, int, str, int]]:
    """(split, index, text, label id) of every labelled row of one config, in the schema's split names."""
    for split, index, text, label, _ in hub_rows(named, hub[config], config, text_column or named.hub_text_column):
        yield split, index, text, label


LINE_BREAKS, TSV_BREAKS = "\n\r", "\n\r\t"  # what a one-row-a-line file (or a TSV cell) cannot hold


def _line(text: str, name: str, split: str, index: int, forbidden: str = LINE_BREAKS) -> str:
    """A text that must fit on one line of a line-per-row file, as is."""
    if any(character in text for character in forbidden):
        raise DataError(f"{name} {split} row {index + 1}: the text holds a line break or tab, which the local "
                        f"layout of {name} (one row a line) cannot hold; read it from the Hub instead ({DATA_DIR_ENV}=)")
    return text


def _gzip(text: str) -> bytes:
    # mtime 0 and no file name: the same rows give the same bytes, so a second fetch can tell it changed nothing
    return gzip.compress(text.encode("utf-8"), mtime=0)


def _imdb_files(named: NamedSource, hub: HubCopy) -> Files:
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for split, index, text, label in _labelled(named, hub):
        # The Hub copy has neither review ids nor ratings: the row's index in its split stands in for the id.
        lines.setdefault(split, []).append(json.dumps({"id": index, "rating": None, "label": label, "text": text},
                                                      ensure_ascii=False))
    return {f"imdb_{split}.jsonl.gz": _gzip("".join(line + "\n" for line in rows)) for split, rows in lines.items()
            if split in ("train", "test")}


def _sst2_files(named: NamedSource, hub: HubCopy) -> Files:
    files = {"train": ("train.tsv", "sentence"), "validation": ("dev.tsv", "content"), "test": ("test.tsv", "content")}
    rows: dict[str, list[str]] = {split: [] for split in files}
    for split, index, text, label in _labelled(named, hub):
        rows[split].append(f"{label}\t{_line(text, named.name, split, index, TSV_BREAKS)}\n")
    # Hidden test labels (-1) are not rows: without a labelled test split the reader carves test from train.
    return {file_name: f"label\t{column}\n{''.join(rows[split])}".encode("utf-8")
            for split, (file_name, column) in files.items() if rows[split]}


def _rt_polarity_files(named: NamedSource, hub: HubCopy) -> Files:
    # The authors' release has no splits: the Hub's train, validation and test go back into one file per class.
    lines: list[list[str]] = [[] for _ in BINARY_LABELS]
    for split, index, text, label in _labelled(named, hub):
        lines[label].append(_line(text, named.name, split, index) + "\n")
    return {f"rt-polarity.{name}": "".join(lines[label]).encode("utf-8") for label, name in enumerate(BINARY_LABELS)}


def _customer_reviews_files(named: NamedSource, hub: HubCopy) -> Files:
    lines = [f"{label} {_line(text, named.name, split, index)}\n" for split, index, text, label in _labelled(named, hub)]
    return {"custrev.all": "".join(lines).encode("utf-8")}


def _financial_phrasebank_files(named: NamedSource, hub: HubCopy) -> Files:
    files: Files = {}
    for subset, level in FPB_SUBSETS.items():
        config = FPB_HUB_CONFIG.format(subset)
        file_name, encoding = next((name, encoding) for name, file_level, encoding in FPB_FILES if file_level == level)
        lines = [f"{_line(text, named.name, config, index)}@{THREE_WAY_LABELS[label]}\n"
                 for _, index, text, label in _labelled(named, hub, config, "sentence")]
        try:
            files[file_name] = "".join(lines).encode(encoding)
        except UnicodeEncodeError as error:
            raise DataError(f"{named.name} {config}: {error.object[error.start:error.end]!r} cannot be written in "
                            f"{encoding}, the encoding the local layout's {file_name} has") from None
    return files


def _xlmt_files(named: NamedSource, hub: HubCopy) -> Files:
    files: Files = {}
    for language in XLMT_LANGUAGES:
        texts: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
        labels: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
        for split, _, text, label in _labelled(named, hub, language, "text"):
            # The reader decodes \uXXXX escapes (the English tweets are written so): line breaks travel as escapes.
            texts[split].append(text.replace("\n", "\\u000a").replace("\r", "\\u000d") + "\n")
            labels[split].append(f"{label}\n")
        for split, file_split in (("train", "train"), ("validation", "val"), ("test", "test")):
            files[f"{language}/{file_split}_text.txt"] = "".join(texts[split]).encode("utf-8")
            files[f"{language}/{file_split}_labels.txt"] = "".join(labels[split]).encode("utf-8")
    return files


# Per source with a Hub copy: its Hub configs (None: the default one) and the conversion into the local layout.
LAYOUTS: dict[str, tuple[list[Optional[str]], Callable[[NamedSource, HubCopy], Files]]] = {
    "imdb": ([None], _imdb_files),
    "sst2": ([None], _sst2_files),
    "rt_polarity": ([None], _rt_polarity_files),
    "customer_reviews": ([None], _customer_reviews_files),
    "financial_phrasebank": ([FPB_HUB_CONFIG.format(subset) for subset in FPB_SUBSETS], _financial_phrasebank_files),
    "xlmt_tweets": (list(XLMT_LANGUAGES), _xlmt_files),
}


def layout_files(name: str, hub: HubCopy) -> Files:
    """The files of ``data_dir/<name>/`` made from the source's Hub rows, as its local reader expects them."""
    named, _ = parse_name(name)
    if named.name not in LAYOUTS:
        raise DataError(f"{named.name} has no Hub copy to convert; get it from {named.original}")
    return LAYOUTS[named.name][1](named, hub)


def _source_files(named: NamedSource) -> Files:
    """Everything ``data_dir/<name>/`` should hold: the packaged copy as is, else the Hub copy converted."""
    if named.packaged is not None:
        return {path.name: path.read_bytes() for path in sorted(named.packaged.iterdir()) if path.is_file()}
    if named.name not in LAYOUTS:
        raise DataError(f"{named.name} has no Hugging Face Hub copy to fetch: download it from {named.original} and "
                        "lay it out like shared/data")
    configs, _ = LAYOUTS[named.name]
    return layout_files(named.name, {config: hub_dataset(named, config) for config in configs})


def _folder_files(folder: Path) -> Files:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_source(folder: Path, files: Files, *, force: bool = False) -> str:
    """Write a source's files as ``folder`` in one step; "unchanged" where it already holds them, "written" else.

    An existing folder that holds anything else is replaced only with ``force``.
    """
    if folder.is_dir():
        if _folder_files(folder) == files:
            return "unchanged"
        if not force:
            raise DataError(f"{folder}: a different copy is already there; keep it, or replace it with --force")
    with atomic_dir(folder) as tmp:
        for relative, content in files.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_bytes(content)
    return "written"


def fetch(name: str, data_dir: Path, *, force: bool = False) -> str:
    """A named source's copy written into ``data_dir/<name>/`` (a Hub copy needs the network): "written" or
    "unchanged"."""
    named, _ = parse_name(name)
    return write_source(Path(data_dir) / named.name, _source_files(named), force=force)


def fetch_target() -> Path:
    """Where `data fetch` writes without --data-dir: OTHERDATA_DATA_DIR, else shared/data beside the project, the
    folder the package then reads by default."""
    return Path(os.environ.get(DATA_DIR_ENV) or project_root().parent.joinpath(*SHARED_DATA))


def data_command(argv: list[str]) -> int:
    """``python -m otherdata_utils data {list,fetch}``: the named sources and where they come from; fetching them."""
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils data")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="each named source: original, licence, Hub copy, copy read here")
    listing.add_argument("--data-dir", type=Path, help=f"data dir to look in (default: {DATA_DIR_ENV}, else "
                                                        "shared/data beside the project)")
    getting = commands.add_parser("fetch", help="write sources' Hub copies into the data dir, laid out for reading")
    getting.add_argument("names", nargs="+", metavar="NAME", choices=list(NAMED_SOURCES))
    getting.add_argument("--data-dir", type=Path, help=f"where to write (default: {DATA_DIR_ENV}, else shared/data "
                                                       "beside the project)")
    getting.add_argument("--force", action="store_true", help="replace an existing, different copy")
    args = parser.parse_args(argv)
    if args.command == "list":
        shown = args.data_dir or default_data_dir()
        table = sources_table(Path(shown) if shown else None)[["copy", "hub_id", "licence", "original"]]
        print(f"named sources and the copy each is read from with data dir {shown or 'none (Hub copies)'}:")
        cells = [list(table.reset_index().columns)] + table.reset_index().astype(str).values.tolist()
        widths = [max(len(row[column]) for row in cells) for column in range(len(cells[0]))]
        for row in cells:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        return 0
    data_dir = args.data_dir or fetch_target()
    failed = 0
    for name in args.names:  # one source's failure does not undo or stop the others
        try:
            print(f"{name}: {fetch(name, data_dir, force=args.force)} {data_dir / name}")
        except DataError as error:
            print(f"python -m otherdata_utils data fetch: error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
