"""Atomic artefact writes: a file or folder is either the old one or the complete new one, never half of either."""
import os
import stat

import pytest

from otherdata_utils.io import ArtefactWriteError, atomic_dir, atomic_path, atomic_write_json, atomic_write_text


def test_a_written_file_replaces_the_old_one_and_leaves_no_temporary_beside_it(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_failure_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"accuracy": 0.9})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"accura')
            raise RuntimeError("killed mid-write")
    assert target.read_text() == '{\n  "accuracy": 0.9\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_os_error_names_the_artefact(tmp_path):
    target = tmp_path / "figure.png"
    with pytest.raises(ArtefactWriteError, match="could not write .*figure.png"):
        with atomic_path(target):
            raise OSError(28, "No space left on device")
    assert not target.exists()


def test_files_get_the_mode_a_plain_open_would_give_them(tmp_path):
    previous = os.umask(0o022)
    try:
        written = atomic_write_text(tmp_path / "RESULTS.md", "table")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_a_folder_swap_keeps_the_old_folder_whole_when_the_new_one_fails(tmp_path):
    model = tmp_path / "model"
    with atomic_dir(model) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_text("weights v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(model) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("killed before the weights were written")
    assert (model / "model.safetensors").read_text() == "weights v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert stat.S_IMODE(model.stat().st_mode) == 0o755
