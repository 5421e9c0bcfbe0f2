"""Loading a run's config: defaults, a params file, the params overlay, then overrides, each layer checked for
unknown or moved keys and validated, with every path made absolute against the file that named it.

Hands every entry point (runner, notebooks, pre-flight, publish) `load_config`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from ..env import PARAMS_OVERLAY_ENV
from ..params_text import ConfigError, dotted_overrides, parse_overrides, read_params_file
from ..study_registry import check_study_block
from .paths import anchored, find_params_file
from .schema import Config, SourceSpec, check_known_keys, located_file, located_source, merged_layer

def load_config(path: Union[str, Path, None] = None, overrides: Union[dict[str, Any], str, None] = None) -> Config:
    """Defaults, then a params YAML file, then the params overlay that OTHERDATA_PARAMS_OVERLAY names (Colab's Hub
    data: `colab.setup` sets it), then overrides (``--set`` values or papermill parameters): each replaces the
    earlier values key by key, and inside `replicates` and `study.<kind>` parameter by parameter. A dotted key
    (``study.few_shot.k_values``) names a parameter inside a block. Overrides are a mapping, or a YAML/JSON mapping
    as text, which is what papermill's ``-p overrides '{"seed": 1}'`` passes.

    A relative `path` missing from the current folder is looked up in the project root, so ``params/ci.yaml`` works
    from the repo root and from notebooks/. Relative paths inside a file (the overlay too) resolve against that
    file's folder (a local source not there, against data_dir): pre-flight and every notebook then read the same files.

    Each registered study kind's block is validated by its model and written out in full (`check_study_block`);
    study kinds register as `otherdata_utils.studies` is imported, which every entry point does first. A kind not
    registered yet is validated where its study reads it (`study_registry.study_params`).
    """
    params: dict[str, Any] = {}
    origins: list[str] = []
    sources_folder = None  # the folder of the file whose `sources` are kept: their relative paths start there
    texts_folder = None  # likewise for `selection_target_texts`
    for file, origin in _params_files(path):
        layer = read_params_file(file)
        check_known_keys(layer, origin)  # named per file: a key unknown to the overlay is not blamed on `path`
        folder = file.resolve().parent
        params.update(anchored(layer, folder))
        origins.append(origin)
        if "sources" in layer:
            sources_folder = folder
        if "selection_target_texts" in layer:
            texts_folder = folder
    overrides = dotted_overrides(parse_overrides(overrides))
    if overrides:
        check_known_keys(overrides, "overrides")
        params = merged_layer(params, overrides)
        origins.append("overrides")
        if "sources" in overrides:
            sources_folder = None
        if "selection_target_texts" in overrides:
            texts_folder = None
    origin = " + ".join(origins) or "defaults"
    config = Config.from_params(params, origin=origin)
    config = config.replace(study=check_study_block(config.study, config.replicates.split_seeds, origin))
    texts = config.selection_target_texts
    if texts_folder is not None and texts and not Path(texts).expanduser().is_absolute():
        # found like a local source: beside the params file, then in data_dir; in neither, beside the file
        data_dir = config.resolved_data_dir()
        config = config.replace(selection_target_texts=located_file(
            texts, [texts_folder / texts] + ([data_dir / texts] if data_dir else []), missing=texts_folder / texts))
    relative = [isinstance(source, SourceSpec) and bool(source.path)
                and not Path(source.path).expanduser().is_absolute() for source in config.sources]
    if sources_folder is None or not any(relative):
        return config
    # Sources need the final data_dir: a file beside the params file wins, then data_dir; found in neither, the
    # path is kept beside the params file, so "file not found" names the folder the user meant.
    data_dir = config.resolved_data_dir()
    return config.replace(sources=[
        located_source(source, [sources_folder / source.path] + ([data_dir / source.path] if data_dir else []),
                        missing=sources_folder / source.path) if is_relative else source
        for source, is_relative in zip(config.sources, relative)])


def _params_files(path: Union[str, Path, None]) -> list[tuple[Path, str]]:
    """The params files `load_config` reads, in order, each with the name its errors give it: `path`, then the
    overlay OTHERDATA_PARAMS_OVERLAY names (unset or empty: none)."""
    files = []
    if path is not None:
        found = find_params_file(path)
        files.append((found, str(found)))
    overlay = os.environ.get(PARAMS_OVERLAY_ENV)
    if overlay:
        found = find_params_file(overlay)
        origin = f"{found} (the params overlay {PARAMS_OVERLAY_ENV} names)"
        if not found.is_file():
            raise ConfigError(f"{origin}: params file not found; point {PARAMS_OVERLAY_ENV} at a params file, or "
                              "unset it")
        files.append((found, origin))
    return files
