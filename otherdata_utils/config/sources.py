"""What a run reads: a data source (a named data set or a local file, with its label options) and the dated
stream notebook 14 monitors.

Hands the run config (`config.schema`) its `SourceSpec` and `MonitorSpec`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SourceSpec(BaseModel):
    """One data source: a named data set (``imdb``, ``uci_sentences:yelp``) or a local file.

    A local file names its ``path`` (CSV, TSV, JSONL, plain or .gz, parquet, or an ``aclImdb/`` folder), which
    columns hold text and label, how raw label values map to class ids, and the domain its rows belong to.

    A source without the target's classes (those of the first source with neither option) says how it is used:
    ``label_mapping`` maps each of its classes to a target class (null drops its rows), e.g. ``{neg: negative, pos:
    positive}`` beside a 3-class target; ``intermediate`` fine-tunes on it first with its own classes and head, and
    the target's fine-tuning starts from that encoder with a fresh head (STILTs, Phang et al. 2018).
    """

    model_config = ConfigDict(extra="forbid")

    name: Optional[str] = None  # named source, optionally with a subset: "blitzer_mds:books"
    path: Optional[str] = None  # local file or folder; relative: beside the params file, then in data_dir
    format: Optional[Literal["csv", "tsv", "jsonl", "parquet", "aclimdb"]] = None  # guessed from the path
    text_column: str = "text"
    label_column: str = "label"
    label_map: Optional[dict[str, int]] = None  # raw label value (as text) -> class id
    label_names: Optional[list[str]] = None  # class names in id order
    domain: Optional[str] = None  # domain name for every row of a local file
    source: Optional[str] = None  # source name for reports; defaults to the file name
    split: Optional[Literal["train", "validation", "test"]] = None  # a file that holds one split only
    encoding: str = "utf-8"  # text encoding of a local file
    label_mapping: Optional[dict[str, Optional[str]]] = None  # own class name -> target class name (null: drop rows)
    intermediate: bool = False  # fine-tune on this source first, with its own classes and head

    @model_validator(mode="after")
    def _name_or_path(self) -> "SourceSpec":
        if (self.name is None) == (self.path is None):
            raise ValueError("a source needs exactly one of 'name' (a named data set) or 'path' (a local file)")
        if self.intermediate and self.label_mapping is not None:
            raise ValueError(f"source {self.label!r} sets both label_mapping and intermediate: map its classes into "
                             "the target's, or fine-tune on it first with its own classes (intermediate), not both")
        if self.label_mapping is not None and not any(self.label_mapping.values()):
            raise ValueError(f"source {self.label!r}: label_mapping maps no class to a target class; map at least "
                             "one, e.g. {neg: negative, pos: positive}")
        return self

    @property
    def label(self) -> str:
        """Short human name: the named source, or the file's own source name."""
        if self.name:
            return self.name
        return self.source or Path(self.path or "").name


class MonitorSpec(BaseModel):
    """A dated text stream a trained classifier scores in batches (notebook 14): one class's share per period, with
    a control limit set on a baseline period. `stream` is a named source with dates (``blitzer_mds:kitchen``) or a
    CSV / TSV / JSONL / parquet file (relative to the params file) with a time and a text column."""

    model_config = ConfigDict(extra="forbid")

    stream: str
    text_column: str = "text"
    time_column: str = "date"
    label: str  # the class whose share is watched, e.g. neg
    frequency: Literal["D", "W", "M"] = "D"  # periods: days, weeks (to Sunday) or months
    baseline_end: str  # last day of the baseline period (ISO date): its share sets the control limit
    start: Optional[str] = None  # first day read (ISO date); null = the stream's first
    model: Optional[str] = None  # a saved classifier folder; null = this run's model (03_finetune)
    batch_size: int = Field(256, ge=1)  # texts scored per batch
