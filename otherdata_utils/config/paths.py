"""Where things are: the project root, the data, runs and cache roots, params files, and paths inside a params file
made absolute against its folder.

Hands the schema (`config.schema`) and the loading step (`config.loading`) every path rule; nothing else resolves roots.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from ..env import DATA_DIR_ENV

# Parameters naming a folder: a params file's relative value is relative to the file's folder.
FOLDER_PARAMS = ("data_dir", "runs_dir", "output_dir", "cache_dir")
SHARED_DATA = ("shared", "data")  # the data dir beside the project root: read by default, `data fetch` writes there


def project_root(start: Optional[Path] = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) holding both params/ and notebooks/; else the checkout
    this package runs from (started from another folder, the suite's notebooks are still found); else cwd."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(__file__).resolve().parents[2]):
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return here


def default_data_dir() -> Optional[str]:
    """The data root every entry point shares when a config names none: OTHERDATA_DATA_DIR, else shared/data beside
    the project root where it exists. None (also for an empty OTHERDATA_DATA_DIR=): the Hugging Face Hub."""
    if DATA_DIR_ENV in os.environ:
        return os.environ[DATA_DIR_ENV] or None
    shared = project_root().parent.joinpath(*SHARED_DATA)
    return str(shared) if shared.is_dir() else None


def local_source_candidates(path: str, data_dir: Optional[Path]) -> list[Path]:
    """Where a local source's path may point, in order: itself if absolute; else data_dir, the current folder, the
    project root (a params file's relative paths were made absolute against its folder by `anchored`)."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return [given]
    bases = ([Path(data_dir)] if data_dir is not None else []) + [Path.cwd(), project_root()]
    return list(dict.fromkeys(base / given for base in bases))


def resolve_path(path: Union[str, Path]) -> Path:
    """`path` as given where absolute; relative, made absolute against the project root (`absolute_path`)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else absolute_path(path, project_root())


def absolute_path(path: Union[str, Path], base: Path) -> Path:
    """`path` made absolute against `base` as the user spelled it: "." and ".." removed, symbolic links kept. A run
    records the folder the user named: a data folder reached through a link (../shared -> the data) stays the link,
    which still finds the data once the link is re-pointed. Where removing a ".." by spelling would land elsewhere
    than the file system goes (a ".." right after a linked folder climbs out of the link's target), the resolved
    path instead: both name the same folder, and that one is right."""
    joined = base / Path(path).expanduser()
    spelled = Path(os.path.normpath(joined))
    resolved = joined.resolve()
    return spelled if spelled.resolve() == resolved else resolved


def find_params_file(path: Union[str, Path]) -> Path:
    """`path` as given; relative and missing from the current folder, the project root's file of that name."""
    path = Path(path).expanduser()
    in_root = project_root() / path
    if not path.is_absolute() and not path.exists() and in_root.exists():
        return in_root
    return path


def anchored(params: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A params file's folder and model paths made absolute against its folder (local sources: `load_config`)."""
    anchored = dict(params)
    for key in FOLDER_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value:  # "" (data_dir) means none: the Hub
            anchored[key] = str(absolute_path(value, folder))
    return {**anchored, **located_model_paths(params, [folder])}


def located_model_paths(params: dict[str, Any], bases: list[Path]) -> dict[str, Any]:
    """model_name_or_path, resume_from_checkpoint and back-translation models that are relative folders under one of
    `bases`, made absolute: a notebook runs in notebooks/ and would not find them."""
    located: dict[str, Any] = {}
    for key in ("model_name_or_path", "resume_from_checkpoint"):
        if params.get(key) is not None:
            located[key] = located_path(params[key], bases)
    if isinstance(params.get("monitoring"), dict):  # a stream file or model folder named relative to the file
        monitor = params["monitoring"]
        located["monitoring"] = {**monitor, **{key: located_path(monitor[key], bases)
                                               for key in ("stream", "model") if monitor.get(key) is not None}}
    if isinstance(params.get("back_translation_models"), list):
        located["back_translation_models"] = [located_path(name, bases) for name in params["back_translation_models"]]
    return located


def located_path(value: Any, bases: list[Path]) -> Any:
    """`value` made absolute against the first base that holds it, when it looks like a path: bare names are Hub
    ids or keywords ("default", "tiny-random", "auto") even where a folder of that name exists."""
    if not isinstance(value, str) or not (value.startswith((".", "~")) or "/" in value):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    found = next((base / path for base in bases if (base / path).exists()), None)
    return str(found.resolve()) if found else value
