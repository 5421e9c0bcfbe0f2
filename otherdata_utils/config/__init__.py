"""The one config object: its schema, where its paths point, and how a params file becomes one.

Hands every later step `Config` (schema), `load_config` (loading) and the path rules (paths) from one import.
"""
from ..env import DATA_DIR_ENV
from ..params_text import ConfigError
from .loading import load_config
from .paths import (FOLDER_PARAMS, SHARED_DATA, default_data_dir, find_params_file, local_source_candidates,
                    project_root, resolve_path)
from .schema import (MOVED_KEYS, SUITE_NOTEBOOKS, TRACKER_PACKAGES, Config, MixingStrategy, Pooling, Replicates,
                     Truncation, split_percentages_problem)
from .sources import MonitorSpec, SourceSpec

__all__ = ["Config", "ConfigError", "DATA_DIR_ENV", "FOLDER_PARAMS", "MOVED_KEYS", "MixingStrategy", "MonitorSpec",
           "Pooling", "Replicates", "SHARED_DATA", "SUITE_NOTEBOOKS", "SourceSpec", "TRACKER_PACKAGES", "Truncation",
           "default_data_dir", "find_params_file", "load_config", "local_source_candidates", "project_root",
           "resolve_path", "split_percentages_problem"]
