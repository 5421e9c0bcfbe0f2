"""The unit tier's promise, enforced: no data folder, no model, no subprocess (`make test-fast` runs it on a clone
with nothing beside it). A test that needs one of them belongs in tests/integration or tests/e2e."""
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    pytest.fail("a unit test reads no data folder: move it to tests/integration")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    pytest.fail("a unit test builds no model: move it to tests/integration")


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process start goes through Popen (subprocess.run, check_output, ...): refuse it."""
    def refuse(*args, **kwargs):
        raise AssertionError("a unit test starts no process: move it to tests/e2e")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
