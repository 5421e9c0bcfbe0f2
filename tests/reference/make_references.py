"""Regenerates the reference notebooks that `make test` re-executes with nbval and compares (`make refresh-references`).

Each reference is a CI-size run: the suite's notebooks executed with papermill from this folder, with the params file
and overrides injected into the notebook, so nbval re-executes them with the same values and needs nothing but the
repository. Only the outputs of the `# NBVAL_CHECK_OUTPUT` cells are kept: those are what nbval compares, and the
other cells' outputs (paths, versions, timings, figures) would only make every refresh's diff noisy.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import nbformat
import papermill

from otherdata_utils.config import load_config, project_root
from otherdata_utils.io import atomic_write_text
from otherdata_utils.run import CurveKernelManager

HERE = Path(__file__).resolve().parent
MARK = "# NBVAL_CHECK_OUTPUT"
# Where the references' runs land, relative to the project root: runs/ is ignored by git, and `make test` deletes this
# folder before nbval re-executes the references (a study would otherwise reuse the cells it finds there).
RUNS = "runs/_reference"
# What every reference sets besides its params file: the packaged UCI sentences (data_dir "": no data folder, so the
# references are the same with and without ../shared/data), no progress bars, and one thread per study cell (the
# default follows the machine's cores, and a sum over other threads can round differently).
COMMON = {"data_dir": "", "quiet": True, "execution": {"threads_per_cell": 1}}
# What the kernels run with, here and in `make test`'s nbval step (the Makefile reads the same file): one thread, so
# no sum is split differently, and AVX2 kernels in torch, MKL and oneDNN, which every x86-64 host CI may land on has,
# so an AVX-512 or AMX host computes what an AVX2-only one does.
PINNED_ENV = HERE / "pinned.env"


def pinned_environment() -> dict[str, str]:
    """The variables `PINNED_ENV` sets, one KEY=VALUE a line."""
    lines = PINNED_ENV.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
# name -> (params file, overrides): the CI study through notebooks 00-06, and the few-shot study (07) at CI size.
REFERENCES = {
    "ci": ("params/ci.yaml", {}),
    "few_shot": ("params/study_few_shot.yaml", {
        # the tiny random model learns at ci.yaml's learning rate, not at the MiniLM's 1e-4
        # and needs about 100 steps to leave chance, as a k-shot target-only arm never does
        "model_name_or_path": "tiny-random", "learning_rate": 1.0e-3, "max_train_samples": 320, "max_eval_samples": 8,
        "max_test_samples": None, "num_train_epochs": 6, "max_seq_length": 32, "per_device_train_batch_size": 16,
        "replicates": {"split_seeds": [1, 2], "seeds": [1]},
        "study": {"few_shot": {"k_values": [4], "strategies": ["target_only", "temperature"], "temperatures": [2.0],
                               "anchors": [], "test_rows": 60}}}),
}


def is_marked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def kept_for_review(notebook):
    """The executed notebook with only its marked cells' outputs, and no execution times."""
    for cell in notebook.cells:
        for volatile in ("papermill", "execution"):
            cell.metadata.pop(volatile, None)
        if cell.cell_type == "code" and not is_marked(cell):
            cell.outputs, cell.execution_count = [], None
    for cell in notebook.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a new random id every run
    notebook.metadata.pop("widgets", None)  # progress-bar widget state: new ids every run, nothing nbval compares
    papermill_metadata = notebook.metadata.get("papermill", {})
    for volatile in ("start_time", "end_time", "duration", "input_path", "output_path", "environment_variables"):
        papermill_metadata.pop(volatile, None)
    return notebook


def refresh(name: str) -> list[Path]:
    """Execute reference `name`'s notebooks in order into tests/reference/<name>/; returns the files written."""
    params_file, overrides = REFERENCES[name]
    overrides = {**COMMON, **overrides, "output_dir": f"{RUNS}/{name}"}
    config = load_config(params_file, overrides)
    shutil.rmtree(config.resolved_output_dir(), ignore_errors=True)
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    for stale in set(folder.glob("*.ipynb")) - {folder / f"{stem}.ipynb" for stem in config.notebooks}:
        stale.unlink()
    written = []
    for stem in config.notebooks:
        print(f"[{name}] {stem}", flush=True)
        executed = config.resolved_output_dir() / f"{stem}.reference.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        papermill.execute_notebook(str(project_root() / "notebooks" / f"{stem}.ipynb"), str(executed),
                                   parameters={"params_file": params_file, "overrides": overrides},
                                   kernel_name="python3", kernel_manager_class=CurveKernelManager, cwd=str(folder),
                                   progress_bar=False)
        notebook = kept_for_review(nbformat.read(executed, as_version=4))
        atomic_write_text(folder / f"{stem}.ipynb", nbformat.writes(notebook) + "\n")
        written.append(folder / f"{stem}.ipynb")
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"references to refresh: {', '.join(REFERENCES)} "
                                                                  "(default: all)")
    names = parser.parse_args(argv).names or list(REFERENCES)
    unknown = sorted(set(names) - set(REFERENCES))
    if unknown:
        parser.error(f"no reference named {', '.join(unknown)}; the references are {', '.join(REFERENCES)}")
    os.environ.update(pinned_environment())  # the kernels papermill starts inherit it
    for name in names:
        refresh(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
