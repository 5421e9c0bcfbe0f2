"""Data step: named data sets (local copies or the Hugging Face Hub) and local files, read into one record schema.

Hands on a DatasetDict ("train", "validation", "test") in `record_features`; `otherdata_utils.files` is the one
local-file reader; `fetch` writes Hub copies into a data dir in the layout the readers expect.
"""
from ..files import FileReadError, Records, read_records
from .named import NAMED_SOURCES, NamedSource
from .schema import BINARY_LABELS, SPLITS, THREE_WAY_LABELS, DataError, record_features
from .sources import copies_read, fingerprint, label_names, load_data, load_intermediate_data, load_source, sources_table

__all__ = [
    "BINARY_LABELS", "NAMED_SOURCES", "SPLITS", "THREE_WAY_LABELS", "DataError", "FileReadError", "NamedSource",
    "copies_read",
    "Records", "fingerprint", "label_names", "load_data", "load_intermediate_data", "load_source", "read_records",
    "record_features", "sources_table",
]
