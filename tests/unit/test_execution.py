"""`execution.executor: auto` on a given host: Ray with a one-thread worker per core where there are several cores
and Ray is installed, serially on every core elsewhere, with the reason the progress line shows."""
import pytest

from otherdata_utils import execution
from otherdata_utils.execution import Execution, chosen_executor, threads_per_cell


@pytest.mark.parametrize("cores, installed, expected, reason", [
    ("2", True, ("ray", 1), "auto: 2 cores and Ray installed, so a one-thread worker per core"),
    ("4", False, ("serial", 4), "auto: 4 cores, but Ray is not installed; pip install -e '.[ray]'"),
    ("1", True, ("serial", 1), ""),  # one core: nothing to choose, nothing to say
])
def test_auto_runs_cells_on_ray_only_with_several_cores_and_ray_installed(monkeypatch, cores, installed, expected,
                                                                          reason):
    monkeypatch.setenv("OMP_NUM_THREADS", cores)
    monkeypatch.setattr(execution, "ray_installed", lambda: installed)
    auto = Execution()
    assert auto.executor == "auto"
    chosen, why = chosen_executor(auto)
    assert (chosen, threads_per_cell(auto)) == expected
    assert why.startswith(reason)


def test_a_named_executor_or_a_ray_cluster_overrides_auto(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(execution, "ray_installed", lambda: True)
    assert chosen_executor(Execution(executor="serial")) == ("serial", "")
    assert threads_per_cell(Execution(executor="serial")) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert chosen_executor(Execution(ray_address="auto"))[0] == "ray"


def test_the_ray_check_does_not_import_ray():
    import sys

    had = "ray" in sys.modules
    execution.ray_installed()
    assert ("ray" in sys.modules) == had
