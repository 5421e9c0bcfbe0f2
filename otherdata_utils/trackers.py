"""Experiment trackers for `report_to`: checked before any work (`check_trackers`, pre-flight) and built for the
training loop (`build_trackers`), never asking for a login.

Hands `train` the trackers Accelerate logs to, and pre-flight the check.
"""
from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from accelerate import Accelerator
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, GeneralTracker, get_available_trackers

from .config import TRACKER_PACKAGES, Config, ConfigError

TRACKER_PROJECT = "otherdata"  # the W&B project (unless WANDB_PROJECT), MLflow experiment, TensorBoard subfolder


def check_trackers(config: Config) -> None:
    """A `ConfigError` naming the pip package of each tracker in `report_to` that is not installed (before any work)."""
    available = {str(tracker) for tracker in get_available_trackers()}
    missing = [name for name in config.trackers if name not in available]
    if missing:
        raise ConfigError("report_to: " + "; ".join(f"{name!r} is not installed: pip install {TRACKER_PACKAGES[name]}"
                                                    for name in missing))


def build_trackers(config: Config, output_dir: Path) -> list[GeneralTracker]:
    """One tracker per `report_to` name, logging under output_dir/<name> and never asking for a login: W&B runs
    offline unless it has credentials or WANDB_MODE says otherwise; MLflow keeps a SQLite store in the run folder
    unless MLFLOW_TRACKING_URI points elsewhere."""
    trackers = []
    for name in config.trackers:
        folder = output_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        project, options = TRACKER_PROJECT, {}
        if name == "wandb":
            project = os.environ.get("WANDB_PROJECT", TRACKER_PROJECT)
            options = {"dir": str(output_dir), "name": config.run_name}  # W&B adds the wandb/ folder itself
            if "WANDB_MODE" not in os.environ and not _wandb_credentials():
                options["mode"] = "offline"
        elif name == "mlflow":
            options = {"run_name": config.run_name}
            if not os.environ.get("MLFLOW_TRACKING_URI"):
                import mlflow  # only runs that log to MLflow pay for importing it

                # SQLite, not ./mlruns files: MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE is set
                mlflow.set_tracking_uri(f"sqlite:///{(folder / 'mlflow.db').resolve().as_posix()}")
                options["logging_dir"] = str(folder.resolve() / "artifacts")
        elif name == "dvclive":
            options = {"dir": str(folder)}
        tracker_class = LOGGER_TYPE_TO_CLASS[name]
        trackers.append(tracker_class(project, folder, **options) if tracker_class.requires_logging_directory
                        else tracker_class(project, **options))
    return trackers


def _wandb_credentials() -> bool:
    """Whether W&B could log online without asking: a key or identity token in the environment, or the netrc entry
    `wandb login` writes for its host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def announce_offline_wandb(accelerator: Accelerator) -> None:
    """Where an offline W&B run logs, and how to upload it later."""
    for tracker in accelerator.trackers:
        if tracker.name == "wandb" and tracker.run.offline:
            folder = tracker.run.settings.sync_dir
            accelerator.print(f"wandb: logging offline to {folder}; upload it later with `wandb sync {folder}`")
