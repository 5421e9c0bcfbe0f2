"""The environment record a run folder holds: environment.json carries the constraints file and its check (it asks
`uname` for the processor, a process of its own, so it is no unit test)."""
from __future__ import annotations

from otherdata_utils import pipeline
from otherdata_utils.constraints import CONSTRAINTS_ENV


def test_environment_json_carries_the_constraints_record(tmp_path, monkeypatch):
    path = tmp_path / "constraints.txt"
    path.write_text("torch==0.0.1\n", encoding="utf-8")
    monkeypatch.setenv(CONSTRAINTS_ENV, str(path))
    recorded = pipeline.environment_info()["constraints"]
    assert recorded["path"] == str(path.resolve()) and recorded["matches"] is False
    assert [m["package"] for m in recorded["mismatches"]] == ["torch"]
