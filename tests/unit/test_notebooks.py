"""The notebook suite as users and papermill see it: one parameters cell, a python3 kernel, no stored outputs."""
import json
from pathlib import Path

import pytest

from otherdata_utils.config import SUITE_NOTEBOOKS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL_NOTEBOOKS = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def _cells(name):
    return json.loads((NOTEBOOKS / name).read_text())["cells"]


def test_the_suite_has_every_step_notebook():
    assert {f"{stem}.ipynb" for stem in SUITE_NOTEBOOKS} <= set(ALL_NOTEBOOKS)


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_has_exactly_one_parameters_cell_of_plain_values(name):
    cells = _cells(name)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged 'parameters'"
    source = "".join(cells[tagged[0]]["source"])
    for line in source.splitlines():
        assert "(" not in line.split("#")[0], f"{name}: parameters cell computes something: {line!r}"
    # papermill injects after the parameters cell, so the config must be built in the next cell
    assert "load_config(params_file, overrides)" in "".join(cells[tagged[0] + 1]["source"])


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_uses_the_python3_kernel_and_is_committed_without_outputs(name):
    notebook = json.loads((NOTEBOOKS / name).read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name}: stored outputs"


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_opens_with_a_colab_badge_and_an_install_cell_that_is_a_no_op_locally(name):
    cells = _cells(name)
    assert "colab-badge.svg" in "".join(cells[0]["source"])
    install = "".join(cells[1]["source"])
    assert '"google.colab" in sys.modules' in install and "restart the runtime" in install
