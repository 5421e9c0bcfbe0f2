"""The run clock adds up a resumed run's invocations and states host class, precision and layout in one line."""
import json

from otherdata_utils.clock import clock_line, record_invocation
from otherdata_utils.config import Config
from otherdata_utils.precision import host_class


def test_a_resumed_run_adds_its_invocations_and_the_line_names_host_precision_and_layout(tmp_path):
    config = Config(run_name="clocked", output_dir=str(tmp_path / "run"), mixed_precision="no",
                    execution={"executor": "serial", "threads_per_cell": 2})
    (tmp_path / "run").mkdir()
    assert clock_line(tmp_path / "run") is None
    record_invocation(config, 600.0, ["00_setup", "01_data"], completed=False)
    record_invocation(config, 1242.04, ["02_clean"], completed=True)
    clock = json.loads((tmp_path / "run" / "clock.json").read_text())
    assert [i["wall_seconds"] for i in clock["invocations"]] == [600.0, 1242.0]
    assert clock["total_wall_seconds"] == 1842.0
    line = clock_line(tmp_path / "run")
    assert line.endswith(f": 30.7 min wall over 2 invocations on {host_class()}, fp32, serial, 2 thread(s) per cell")
