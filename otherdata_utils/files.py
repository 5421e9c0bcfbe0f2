"""The one reader of local data files: CSV, TSV, JSONL (each plain or .gz) and parquet, decoded as declared.

Hands on `Records` (columns, each row's line) or a `FileReadError` naming file and line, for each caller to word.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

PathLike = Union[str, Path]
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_FORMAT_SUFFIXES = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "ndjson": "jsonl",
                    "parquet": "parquet", "pq": "parquet"}


class FileReadError(ValueError):
    """A file that cannot be read as its format says; the message names the file and, where known, the line.

    `reason` lets a caller add its own remedy, or say it in its own words from `path`, `line` and `byte`: missing,
    gzip, unknown_encoding, encoding, empty, no_rows, header, fields, syntax, not_object or parquet.
    """

    def __init__(self, message: str, *, path: PathLike, reason: str, line: Optional[int] = None,
                 byte: Optional[int] = None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.byte = byte


@dataclass
class Records:
    """A file read as columns, with each row's 1-based line (text formats) or row number (parquet)."""

    path: Path
    format: str
    columns: dict[str, list]
    positions: list[int]

    @property
    def unit(self) -> str:
        return "row" if self.format == "parquet" else "line"

    def where(self, row: int) -> tuple[str, str, int]:
        """(file, "line" or "row", number) of a 0-based row, for messages."""
        return (str(self.path), self.unit, self.positions[row])


def is_gzipped(path: PathLike) -> bool:
    return Path(path).suffix.lower() == ".gz"


def file_type(path: PathLike) -> str:
    """The name's type without a trailing .gz: "jsonl" for ``reviews.jsonl.gz``, "" for a name without one."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1].lstrip(".") if suffixes else ""


def file_format(path: PathLike) -> Optional[str]:
    """csv, tsv, jsonl or parquet from the file name (``.tab``, ``.ndjson``, ``.pq`` too); None for other names."""
    return _FORMAT_SUFFIXES.get(file_type(path))


def read_bytes(path: PathLike) -> bytes:
    """A file's bytes, decompressed when its name ends in .gz."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise FileReadError(f"{path}: input file {what}", path=path, reason="missing")
    data = path.read_bytes()
    if is_gzipped(path):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise FileReadError(f"{path}: not a readable gzip file ({error}); check the file, or drop the .gz "
                                "suffix if it is not compressed", path=path, reason="gzip") from None
    return data


def decode(data: bytes, path: PathLike, encoding: str) -> str:
    """Bytes as text in the declared encoding; a UTF-8 byte-order mark is dropped, not read as text."""
    try:
        # A UTF-8 byte-order mark would otherwise become part of the first column name.
        codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    except LookupError:
        raise FileReadError(f"{path}: unknown encoding {encoding!r}", path=path, reason="unknown_encoding") from None
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        where = " of the decompressed text" if is_gzipped(path) else ""
        raise FileReadError(f"{path}: byte {error.start}{where} (line {line}) is not valid {encoding} "
                            f"({data[error.start:error.start + 1]!r})", path=path, reason="encoding", line=line,
                            byte=error.start) from None


def read_lines(path: PathLike, encoding: str = "utf-8") -> list[str]:
    """A text file's lines, split on "\\n" only: str.splitlines() also breaks at U+0085 and friends inside rows."""
    lines = [line.removesuffix("\r") for line in decode(read_bytes(path), path, encoding).split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_json(path: PathLike, encoding: str = "utf-8") -> Any:
    """One JSON document (plain or .gz), such as a data set's metadata or a file of lists of rows."""
    text = decode(read_bytes(path), path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FileReadError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})", path=path, reason="syntax",
                            line=error.lineno) from None


def read_records(path: PathLike, fmt: str, encoding: str = "utf-8") -> Records:
    """Every data row of a csv, tsv, jsonl or parquet file (plain or .gz) as columns; a file without rows fails.

    CSV follows RFC 4180 quoting; TSV has none (GLUE style: quotes inside sentences stay as they are); header names
    are stripped and must not repeat; blank lines are skipped. JSONL is split on "\\n" only; its columns are the
    keys in order of first appearance, None where a row lacks one.
    """
    path = Path(path)
    data = read_bytes(path)
    if fmt == "parquet":
        columns = _parquet_columns(path, data)
        positions = list(range(1, len(next(iter(columns.values()), [])) + 1))
    else:
        text = decode(data, path, encoding)
        if not text.strip():
            header = " (no header row)" if fmt in ("csv", "tsv") else ""
            raise FileReadError(f"{path}: empty file{header}", path=path, reason="empty")
        columns, positions = _jsonl_columns(path, text) if fmt == "jsonl" else _delimited_columns(path, text, fmt)
    if not positions:
        raise FileReadError(f"{path}: empty file (no data rows)", path=path, reason="no_rows")
    return Records(path, fmt, columns, positions)


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _delimited_columns(path: Path, text: str, fmt: str) -> tuple[dict[str, list], list[int]]:
    # TSV files (GLUE, SST-2) do not quote fields and their texts hold quote characters; CSV follows RFC 4180.
    delimiter, quoting = ("\t", csv.QUOTE_NONE) if fmt == "tsv" else (",", csv.QUOTE_MINIMAL)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header: Optional[list[str]] = None
    rows, positions = [], []
    old_limit = csv.field_size_limit()
    # Over-long fields are for the caller to report with their row (max_text_chars), not a csv.Error.
    csv.field_size_limit(sys.maxsize)
    try:
        end = 0
        for row in reader:
            start, end = end + 1, reader.line_num  # a quoted field can run over several lines: report the first
            if not row:
                continue  # a blank line
            if header is None:
                header = [name.strip() for name in row]
                repeated = sorted({name for name in header if header.count(name) > 1})
                if repeated:
                    raise FileReadError(f"{path}, line {start}: the header repeats column(s) "
                                        f"{', '.join(map(repr, repeated))}; give each column its own name",
                                        path=path, reason="header", line=start)
                continue
            if len(row) != len(header):
                hint = " (a TSV field cannot hold a tab)" if fmt == "tsv" else ""
                raise FileReadError(f"{path}, line {start}: {len(row)} fields where the header has "
                                    f"{len(header)}{hint}", path=path, reason="fields", line=start)
            rows.append(row)
            positions.append(start)
    except csv.Error as error:
        raise FileReadError(f"{path}, line {reader.line_num}: not valid {fmt.upper()} ({error}); check the quoting "
                            "of that row", path=path, reason="syntax", line=reader.line_num) from None
    finally:
        csv.field_size_limit(old_limit)
    columns = {name: [row[index] for row in rows] for index, name in enumerate(header or [])}
    return columns, positions


def _jsonl_columns(path: Path, text: str) -> tuple[dict[str, list], list[int]]:
    objects, positions = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise FileReadError(f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno}); each "
                                "line of a JSONL file holds one JSON object", path=path, reason="syntax",
                                line=number) from None
        if not isinstance(obj, dict):
            raise FileReadError(f"{path}, line {number}: expected a JSON object, got a JSON {json_type(obj)}",
                                path=path, reason="not_object", line=number)
        objects.append(obj)
        positions.append(number)
    names = list(dict.fromkeys(name for obj in objects for name in obj))
    return {name: [obj.get(name) for obj in objects] for name in names}, positions


def _parquet_columns(path: Path, data: bytes) -> dict[str, list]:
    try:
        # pyarrow only for parquet: a lean install that predicts and serves CSV and JSONL goes without it
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise FileReadError(f"{path}: reading parquet needs pyarrow, which this install lacks: pip install pyarrow, "
                            "or save the file as CSV or JSONL", path=path, reason="parquet") from None
    try:
        return pyarrow.parquet.read_table(pyarrow.BufferReader(data)).to_pydict()
    except (pyarrow.ArrowException, OSError) as error:
        raise FileReadError(f"{path}: not a readable parquet file ({error})", path=path, reason="parquet") from None
