"""A run folder records the params overlay's values; the notebook kernels it starts do not read the overlay again."""
import asyncio
from pathlib import Path

import yaml
from jupyter_client.manager import AsyncKernelManager

from otherdata_utils import run
from otherdata_utils.config import load_config
from otherdata_utils.env import PARAMS_OVERLAY_ENV
from otherdata_utils.runs import BATCH_ENV

REPO = Path(__file__).resolve().parents[2]


def test_a_run_folder_records_the_params_overlays_values_and_its_kernels_do_not_read_it_again(tmp_path, monkeypatch):
    overlay = tmp_path / "hub.yaml"
    overlay.write_text("sources: [customer_reviews, rt_polarity]\ntarget_domain: customer_reviews\n")
    monkeypatch.setenv(PARAMS_OVERLAY_ENV, str(overlay))
    config = load_config(REPO / "params" / "ci.yaml", {"output_dir": str(tmp_path / "run"), "seed": 5})
    recorded = yaml.safe_load(run.prepare_run(config).read_text())
    assert (recorded["sources"], recorded["target_domain"]) == (["customer_reviews", "rt_polarity"], "customer_reviews")
    assert (recorded["run_name"], recorded["seed"]) == ("ci", 5)

    # The notebooks read that params.yaml: the overlay read over it again would undo values such as a --set seed.
    started = {}

    async def record(manager, **kw):
        started.update(kw["env"])

    monkeypatch.setattr(AsyncKernelManager, "start_kernel", record)
    asyncio.run(run.CurveKernelManager().start_kernel())
    assert PARAMS_OVERLAY_ENV not in started and started[BATCH_ENV] == "1"
