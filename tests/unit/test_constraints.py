"""The constraints a run was installed with: environment.json names the file (path, sha256) and every installed
version that differs from its pin."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from otherdata_utils.constraints import CONSTRAINTS_ENV, PROJECT_CONSTRAINTS, constraints_record, read_pins

PINS = """# published versions
torch==2.13.0
Jupyter_Client==8.6.3
transformers==5.25.0

datasets==5.2.0  # not installed in this fake environment
"""


def installed(versions: dict[str, str]):
    return lambda name: versions.get(name)


def write_pins(folder: Path, text: str = PINS) -> Path:
    path = folder / "constraints.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_matching_install_records_the_file_and_its_sha256(tmp_path):
    path = write_pins(tmp_path)
    # a CPU or CUDA build of the pinned torch matches it, as pip's `==` does
    record = constraints_record(path, installed({"torch": "2.13.0+cpu", "jupyter-client": "8.6.3",
                                                 "transformers": "5.25.0"}))
    assert record == {"path": str(path.resolve()), "sha256": hashlib.sha256(PINS.encode()).hexdigest(),
                      "matches": True, "mismatches": []}


def test_each_installed_version_that_differs_is_listed_and_a_missing_one_is_not(tmp_path):
    record = constraints_record(write_pins(tmp_path), installed({"torch": "2.12.1+cu128", "jupyter-client": "8.6.3",
                                                                "transformers": "5.24.0"}))
    assert record["matches"] is False
    assert record["mismatches"] == [{"package": "torch", "pinned": "2.13.0", "installed": "2.12.1+cu128"},
                                    {"package": "transformers", "pinned": "5.25.0", "installed": "5.24.0"}]


def test_the_environment_names_the_file_and_empty_means_installed_without_one(tmp_path, monkeypatch):
    path = write_pins(tmp_path)
    monkeypatch.setenv(CONSTRAINTS_ENV, str(path))
    assert constraints_record(version=installed({}))["path"] == str(path.resolve())
    monkeypatch.setenv(CONSTRAINTS_ENV, "")
    record = constraints_record(version=installed({}))
    assert (record["path"], record["sha256"], record["matches"]) == (None, None, None)
    assert "no constraints file known" in record["note"]
    monkeypatch.setenv(CONSTRAINTS_ENV, str(tmp_path / "absent.txt"))
    with pytest.raises(FileNotFoundError, match=f"{CONSTRAINTS_ENV}={tmp_path / 'absent.txt'}: no such constraints"):
        constraints_record(version=installed({}))


def test_without_the_variable_a_clone_uses_its_own_constraints_file(monkeypatch):
    monkeypatch.delenv(CONSTRAINTS_ENV, raising=False)
    assert constraints_record(version=installed({}))["path"] == str(PROJECT_CONSTRAINTS)


def test_a_line_that_is_no_pin_is_named_with_its_file_and_line(tmp_path):
    path = write_pins(tmp_path, "torch==2.13.0\ntransformers>=5\n")
    with pytest.raises(ValueError, match=r"constraints.txt, line 2: expected one `name==version` pin, "
                                         r"got 'transformers>=5'"):
        read_pins(path)


@pytest.mark.skipif(os.environ.get(CONSTRAINTS_ENV) == "", reason="installed unpinned (make CONSTRAINTS=)")
def test_this_environment_matches_the_published_constraints():
    """The venv the suite runs in was installed by make with constraints.txt (CI too): a drift shows up here."""
    record = constraints_record(PROJECT_CONSTRAINTS)
    assert record["mismatches"] == []
