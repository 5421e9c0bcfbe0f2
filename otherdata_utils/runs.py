"""The run folder's layout: the one place that names where each artefact of a run lives, and whether a run is a
batch run (the runner's notebooks) or interactive.

Takes a `Config` (or a run folder path); hands every other module a `RunFolder` to ask for paths, so no module
spells a run-folder path of its own, and `is_quiet` to decide on progress bars.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .config import Config

# Set to 1 by the runner for the notebook kernels it starts: with `quiet` left unset their steps show no progress bars.
BATCH_ENV = "OTHERDATA_BATCH"


@dataclass(frozen=True)
class RunFolder:
    """Where each artefact of a run lives; nothing a run makes is written elsewhere."""

    root: Path

    # --- written by the runner
    @property
    def params(self) -> Path:
        """The resolved parameters every notebook of the run reads."""
        return self.root / "params.yaml"

    @property
    def run_state(self) -> Path:
        """The notebooks finished so far and the failure that stopped the run, if one did."""
        return self.root / "run_state.json"

    @property
    def notebooks(self) -> Path:
        """The executed notebooks, outputs kept."""
        return self.root / "notebooks"

    def executed_notebook(self, name: str) -> Path:
        return self.notebooks / name

    def partial_notebook(self, name: str) -> Path:
        """A notebook still executing; renamed to `executed_notebook(name)` when its run ends, so a killed run
        leaves no complete-looking copy."""
        return self.notebooks / f"{Path(name).stem}.partial.ipynb"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def clock(self) -> Path:
        """Each runner invocation's wall time, host class, precision and layout (`clock.record_invocation`)."""
        return self.root / "clock.json"

    # --- written by the steps
    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def clean_data(self) -> Path:
        return self.data / "clean"

    @property
    def train_set(self) -> Path:
        return self.data / "train_mixed"

    @property
    def reports(self) -> Path:
        """Data-step reports: fingerprint, cleaning and leakage, selection, mix, augmentation."""
        return self.root / "reports"

    @property
    def data_fingerprint(self) -> Path:
        return self.reports / "data_fingerprint.json"

    @property
    def cleaning_report(self) -> Path:
        return self.reports / "cleaning.json"

    @property
    def mix_report(self) -> Path:
        return self.reports / "mix.json"

    @property
    def selection_report(self) -> Path:
        """Which other rows the selection step chose (`selection.Selection.report`); absent under selection all."""
        return self.reports / "selection.json"

    @property
    def selection_markdown(self) -> Path:
        return self.reports / "selection.md"

    @property
    def label_error_report(self) -> Path:
        """What confident learning flagged in the other data (`other_label_errors` flag or drop)."""
        return self.reports / "label_errors.json"

    @property
    def augmentation_report(self) -> Path:
        return self.reports / "augmentation.json"

    @property
    def steps(self) -> Path:
        """What each step's output was made with (`step_records.STEP_PARAMS`), one small JSON per step."""
        return self.root / "steps"

    def step_record(self, step: str) -> Path:
        """The parameters `step`'s output was made with: a later step that finds other values (or no record)
        rebuilds that output instead of using it."""
        return self.steps / f"{step}.json"

    @property
    def training(self) -> Path:
        """The training loop's own folder: checkpoints, the best model so far, the loss history."""
        return self.root / "training"

    @property
    def history(self) -> Path:
        return self.training / "history.json"

    @property
    def pretraining(self) -> Path:
        """The encoder continued MLM pretraining adapted before fine-tuning (a model folder: encoder, MLM head,
        tokenizer); fine-tuning starts from it with a fresh classification head."""
        return self.root / "pretraining"

    @property
    def intermediate(self) -> Path:
        """The encoder intermediate-task training left (encoder and tokenizer, its task's head dropped); the target's
        fine-tuning starts from it with a fresh classification head."""
        return self.root / "intermediate"

    @property
    def intermediate_training(self) -> Path:
        """The intermediate task's training loop folder: checkpoints, best model, loss history."""
        return self.root / "intermediate_training"

    @property
    def model(self) -> Path:
        """The fine-tuned model, saved for serving (with its model card)."""
        return self.root / "model"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def figure(self, stem: str) -> Path:
        return self.figures / f"{stem}.png"

    def split_figure(self, kind: str, split: str) -> Path:
        """One split's evaluation figure: kind is confusion, per_domain, calibration or length."""
        return self.figure(f"{kind}_{split}")

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def split_predictions(self, split: str) -> Path:
        return self.predictions / f"{split}.csv"

    @property
    def studies(self) -> Path:
        return self.root / "studies"

    @property
    def monitoring(self) -> Path:
        """A monitored stream's scored texts (scores.csv) and per-period table (periods.csv)."""
        return self.root / "monitoring"

    def study(self, name: str) -> Path:
        """One study's tables (CSV and markdown) and its record."""
        return self.studies / name

    @property
    def cells(self) -> Path:
        """Every finished study cell, one JSON per key (`studies.store`): a re-run trains only the missing ones."""
        return self.root / "cells"

    @property
    def encoders(self) -> Path:
        """Encoders a study trains once and fine-tunes several cells from (routing's intermediate encoder), one
        folder per key of what determined it; kept so that a grown study fine-tunes new cells from the same one."""
        return self.root / "encoders"

    @property
    def work(self) -> Path:
        """Cells' scratch folders (training output of a model whose scores only are kept); emptied at each start."""
        return self.root / "work"

    @property
    def progress_log(self) -> Path:
        """The lines the runner shows in its terminal (finished cells, training steps), as a record of the run."""
        return self.root / "progress.log"


def run_folder(config: Config) -> RunFolder:
    """The run folder of a config (its output_dir, else runs_dir/run_name)."""
    return RunFolder(config.resolved_output_dir())


def is_quiet(config: Config, *, batch: Optional[bool] = None) -> bool:
    """Whether to hide progress bars: `quiet` where the params set it; left unset (null), quiet in a batch run and
    progress bars in interactive use (JupyterLab, a script). `batch` None: a batch run is one whose environment
    has OTHERDATA_BATCH set to anything but 0, as the runner sets it for its notebook kernels."""
    if config.quiet is not None:
        return config.quiet
    if batch is None:
        batch = os.environ.get(BATCH_ENV, "0") not in ("", "0")
    return batch
