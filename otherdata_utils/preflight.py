"""Pre-flight: what a run can check before its run folder is touched (data, model, the folder's earlier run).

Takes a validated `Config`; hands the runner a `RunPlan` (the notebooks left to run, whether training resumes), or
raises `PreflightError`, one line that names the file, row or parameter and what to do.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from transformers import AutoConfig

from . import data, modeling, pipeline, selection
from .config import Config
from .io import atomic_write_json, read_json
from .runs import RunFolder, run_folder
from .trackers import check_trackers

# Parameters that change how a run is carried out or where things are, not what it computes: a run resumes across
# them (a moved run folder, another copy of the same data: the data fingerprint is compared instead). `execution`
# is keyed into each stored cell (its thread count), so a cell trained at other threads is trained again.
RESUME_NEUTRAL = ("notebooks", "quiet", "resume_from_checkpoint", "output_dir", "runs_dir", "data_dir", "cache_dir",
                  "execution")
# What an existing run folder refuses to change: the parameters its prepared data were made with (01_data's
# splits, caps, cleaning, seed). Every study cell is keyed by its rows, but a cell's rows come from those splits:
# a run that changed them would pair new cells with old ones drawn from other data. The user starts over (--fresh)
# or gives a new --out. Every other parameter (replicates, study blocks, fine-tuning settings such as
# learning_rate, mixing) goes through: the notebooks after the data steps run again, and the cell store trains
# only the cells the change touches (`studies.store`: a cell's key holds what determines it).
DATA_PARAMS = pipeline.STEP_PARAMS["data"]
# The notebooks that make the prepared data: kept as done when only parameters after them changed.
DATA_STEPS = ("00_setup", "01_data")


class PreflightError(ValueError):
    """The run cannot start; the run folder is untouched. The message names the file, row or parameter."""


@dataclass
class RunPlan:
    """What the runner will do in `run_dir`: `notebooks` to execute in order; `done` ones an earlier run with the
    same data finished (skipped); `resuming` that run (training continues from its last checkpoint unless `changed`
    is set); `replace` an earlier run folder the user asked to start over (--fresh); `changed` the parameters that
    differ from the folder's run (old, new): the notebooks after the data steps then run again."""

    run_dir: Path
    notebooks: list[str]
    done: list[str]
    resuming: bool
    replace: bool
    data_rows: int
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def check(config: Config, *, fresh: bool = False) -> RunPlan:
    """Every pre-flight check, cheapest first: trackers installed, data (loaded as 01_data loads it), model, then
    the run folder."""
    check_trackers(config)
    fingerprint, rows = check_data(config)
    check_model(config)
    return plan_run(config, fingerprint, rows=rows, fresh=fresh)


def check_data(config: Config) -> tuple[dict[str, Any], int]:
    """Load every source with `data.load_data` (its checks name file and row), then the parameters naming groups.

    Returns the raw data's fingerprint (as the run folder's data fingerprint records it) and its row count.
    """
    try:
        raw = data.load_data(config)
        data.load_intermediate_data(config)  # read now: a fault in an intermediate source stops the run here
    except data.DataError as error:
        raise PreflightError(_one_line(str(error))) from None
    except OSError as error:  # unreadable file or folder (permissions, a broken disk)
        raise PreflightError(_one_line(f"{error.filename or 'data'}: {error.strerror or error}; check the file "
                                       "and its permissions")) from None
    column = config.mix_by
    present = sorted(set(raw["train"][column][:]))
    sources = ", ".join(spec.label for spec in config.source_specs)
    if config.target_domain is not None and config.target_domain not in present:
        raise PreflightError(
            f"parameter 'target_domain': {config.target_domain!r} is not a {column} of the training data of "
            f"{sources} ({column}s: {', '.join(present)}); set target_domain to one of them, or add a source that "
            "holds it")
    unknown = sorted(set(config.mixing_ratios) - set(present))
    if config.mixing_strategy == "fixed" and unknown:
        raise PreflightError(
            f"parameter 'mixing_ratios' names {unknown}, which are not {column}s of the training data of {sources} "
            f"({column}s: {', '.join(present)})")
    domains = sorted(set(raw["train"]["domain"][:]))
    unknown = sorted(set(config.pretrain_domains) - set(domains))
    if unknown:
        raise PreflightError(
            f"parameter 'pretrain_domains' names {unknown}, which are not domains of the training data of {sources} "
            f"(domains: {', '.join(domains)}); continued pretraining reads those domains' training texts")
    if config.selection_target_texts is not None:
        try:
            selection.read_target_texts(config.selection_target_texts)
        except ValueError as error:
            raise PreflightError(_one_line(f"parameter {error}")) from None
    return data.fingerprint(raw), sum(len(split) for split in raw.values())


def check_model(config: Config) -> str:
    """The model resolves (local folder, packaged default, tiny test model or Hub id) and its config loads."""
    name = config.model_name_or_path
    try:
        path = modeling.resolve_model_path(name, config.resolved_cache_dir())
        with modeling.quiet_transformers():
            AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (ValueError, OSError) as error:
        message = _one_line(str(error))
        if "model_name_or_path" not in message:
            message = f"model_name_or_path={name!r}: {message}"
        raise PreflightError(message) from None
    return path


def plan_run(config: Config, fingerprint: Optional[dict[str, Any]], *, rows: int = 0,
             fresh: bool = False) -> RunPlan:
    """Fresh run, or resume of the run in the same folder; refuse a folder made with other data.

    A folder holding run_state.json was made by this runner. With the same resolved parameters (but for
    `RESUME_NEUTRAL` ones) and the same data fingerprint, the notebooks it finished are skipped and training
    resumes from its checkpoints. With other parameters that are not `DATA_PARAMS` (a study grown by a seed or a k,
    another learning rate), the data steps stay done and every later notebook runs again: its study reuses the
    stored cells the change left alone. Other data or `DATA_PARAMS` are refused, so a run folder never mixes two
    runs' data: the user gives a new --out, or --fresh to delete the old run first.
    """
    paths = run_folder(config)
    run_dir = paths.root
    looks_like_run = paths.run_state.is_file() or paths.params.is_file()
    if fresh:
        if run_dir.exists() and not looks_like_run:
            raise PreflightError(f"--fresh: {run_dir} holds no run (no {paths.run_state.name} or {paths.params.name}), "
                                 "so it is not deleted; give --out a folder of its own")
        return RunPlan(run_dir, list(config.notebooks), [], resuming=False, replace=run_dir.exists(), data_rows=rows)
    if not paths.run_state.is_file():
        return RunPlan(run_dir, list(config.notebooks), [], resuming=False, replace=False, data_rows=rows)

    try:
        state = read_json(paths.run_state)
        before = yaml.safe_load(paths.params.read_text(encoding="utf-8"))
        if not isinstance(before, dict):
            raise TypeError(f"{paths.params.name} holds no parameters")
        done_before = list(state["notebooks_done"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise PreflightError(f"{run_dir}: cannot read its earlier run ({type(error).__name__}: {_one_line(str(error))}"
                             "); give a new --out, or add --fresh to delete it and start over") from None
    changed = changed_params(before, config.resolved().to_params())
    refused = {key: values for key, values in changed.items() if key in DATA_PARAMS}
    if refused:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(refused.items())[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise PreflightError(
            f"{run_dir} holds a run with other parameters ({shown}{more}), which its prepared data were made with; "
            f"re-run with its parameters ({paths.params}) to resume it, give a new --out, or add --fresh to delete "
            "it and start over")
    if fingerprint is not None and paths.data_fingerprint.is_file():
        old = read_json(paths.data_fingerprint).get("raw") or {}
        if old != fingerprint:
            sources = sorted({source for split in {*old, *fingerprint}
                              for source in {*old.get(split, {}), *fingerprint.get(split, {})}
                              if old.get(split, {}).get(source) != fingerprint.get(split, {}).get(source)})
            raise PreflightError(
                f"{run_dir}: the data changed since this run folder was made (source(s) {', '.join(sources)}: other "
                "rows or texts); give a new --out, or add --fresh to delete the old run and start over")
    kept = [name for name in done_before if not changed or name in DATA_STEPS]
    done = [name for name in config.notebooks if name in kept]
    todo = [name for name in config.notebooks if name not in kept]
    return RunPlan(run_dir, todo, done, resuming=True, replace=False, data_rows=rows, changed=changed)


def changed_params(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Parameters whose values differ (old, new), leaving out `RESUME_NEUTRAL` ones.

    A parameter the earlier run's params.yaml lacks (added to the package since) counts as its default there.
    """
    defaults = Config().to_params()
    keys = [key for key in after if key not in RESUME_NEUTRAL]
    old = {key: before.get(key, defaults.get(key)) for key in keys}
    return {key: (old[key], after[key]) for key in keys if old[key] != after[key]}


# --- the run state the runner keeps, and the folder it replaces --------------------------------------------------------

def write_run_state(run_dir: Path, done: list[str], *, failed: Optional[dict[str, str]] = None) -> Path:
    """run_state.json: the notebooks finished so far, in order, and the failure that stopped the run, if one did."""
    return atomic_write_json(RunFolder(Path(run_dir)).run_state, {"notebooks_done": list(done), "failed": failed})


def remove_run_folder(run_dir: Path) -> None:
    """Delete an earlier run folder (--fresh): renamed aside first, so a kill never leaves half of it in place."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    aside = run_dir.with_name(f".{run_dir.name}.deleting-{os.getpid()}")
    os.rename(run_dir, aside)
    shutil.rmtree(aside)


def _one_line(message: str) -> str:
    return " ".join(message.split()) if "\n" in message else message
