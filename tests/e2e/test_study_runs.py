"""Each study's params file through the runner at CI size: the models and replicates its plan names, its tables, figure,
metrics and report."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from otherdata_utils import anchors
from otherdata_utils.config import load_config
from otherdata_utils.studies import tables
from study_checks import plan_matches_cells


REPO = Path(__file__).resolve().parents[2]


CI_OVERRIDES = ["model_name_or_path=tiny-random", "replicates.seeds=[1,2]", "max_train_samples=16", "max_eval_samples=8",
                "max_test_samples=24", "num_train_epochs=1", "max_seq_length=32", "head_tokens=8",
                "per_device_train_batch_size=8"]


# One params file per study notebook: the runner is what these runs test, and the notebooks' code path is the same
# for every params file of a notebook. 05_domain_transfer runs in tests/e2e/test_runner.py (params/ci.yaml's transfer
# study); of 07_few_shot_mixing's four params files, the kitchen one (probe and SetFit anchors, k = all) runs here.
# Every params file, these and the others, goes through `run --check` in tests/integration/test_params_check.py.
STUDY_RUNS = {
    "study_few_shot_kitchen": (["study.few_shot.k_values=[4,null]", "replicates.split_seeds=[1,2]",
                                "replicates.seeds=[1]", "study.few_shot.anchors=[probe,setfit]",
                                "study.few_shot.setfit_max_k=2", "max_test_samples=null", "study.few_shot.test_rows=24",
                                "max_eval_samples=16"], ["few_shot_mixing"], "few_shot_curves.png"),
    "study_quality": (["study.quality.agreement_levels=[1.0,0.5]", "study.quality.noise_levels=[0.0,0.3]",
                       "few_shot_k=4"],
                      ["quality_agreement", "quality_helpfulness", "quality_label_noise"], "quality_label_noise.png"),
    "study_time": ([], ["time"], "time_staleness.png"),
    "study_routing": (["study.routing.k_values=[2]", "study.routing.other_rows=32", "study.routing.anchors=[probe]",
                       "max_eval_samples=40",
                       "max_test_samples=60"], ["routing"], "routing_in_scope_accuracy.png"),
}


def _run_study(params: str, out: Path, data_dir: Path) -> subprocess.CompletedProcess:
    overrides = [item for assignment in CI_OVERRIDES + STUDY_RUNS[params][0] for item in ("--set", assignment)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OTHERDATA_DATA_DIR": str(data_dir),
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "otherdata_utils", "run", f"params/{params}.yaml", "--out",
                           str(out), *overrides], cwd=REPO, env=env, text=True, capture_output=True, timeout=900)


@pytest.fixture(scope="module")
def study_runs(tmp_path_factory, data_dir):
    """Each study notebook's params file started through the runner, two at a time (kernel start-up is mostly
    waiting)."""
    root = tmp_path_factory.mktemp("study_runs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {params: pool.submit(_run_study, params, root / params, data_dir) for params in sorted(STUDY_RUNS)}
        yield {params: (root / params, future) for params, future in futures.items()}


@pytest.mark.parametrize("params", sorted(STUDY_RUNS))
def test_a_study_runs_exactly_the_models_and_replicates_its_plan_names(params, study_runs):
    out, future = study_runs[params]
    assert future.result().returncode == 0
    plan_matches_cells(load_config(out / "params.yaml"), out)


@pytest.mark.parametrize("params", sorted(STUDY_RUNS))
def test_study_params_file_runs_end_to_end_and_reports_its_study(params, study_runs):
    _, names, figure = STUDY_RUNS[params]
    out, future = study_runs[params]
    result = future.result()
    assert result.returncode == 0, f"runner failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # the params file's whole notebook list ran (setup, data, the study)
    ran = sorted(path.stem for path in (out / "notebooks").glob("*.ipynb"))
    assert ran == sorted(load_config(out / "params.yaml").notebooks) and "01_data" in ran
    recorded = json.loads((out / "metrics.json").read_text())["studies"]
    report = (out / "report.md").read_text()
    for name in names:
        assert (out / "studies" / name / "cells.csv").is_file()
        assert f"## Study: {name}" in report
        assert recorded[name]["table_markdown"] in report and recorded[name]["reading"] in report
        # every arm table carries the paired comparison: Δ with interval, Holm-adjusted p, MDE, verdict
        assert all(header in recorded[name]["table_markdown"] for header in tables.COMPARISON_HEADERS)
    assert (out / "figures" / figure).is_file() and f"](figures/{figure})" in report


def test_setfit_anchor_is_left_out_above_its_k_and_the_design_says_so(study_runs):
    """The kitchen run's CI size asks for SetFit up to k = 2 while its k are 4 and all: no SetFit cell, the probe
    anchors every split, and the design names the cells SetFit leaves out."""
    out, future = study_runs["study_few_shot_kitchen"]
    assert future.result().returncode == 0
    cells = pd.read_csv(out / "studies" / "few_shot_mixing" / "cells.csv")
    assert "setfit" not in set(cells["arm"]) and set(cells[cells["arm"] == "probe"]["k_label"]) == {"4", "all"}
    design = json.loads((out / "metrics.json").read_text())["studies"]["few_shot_mixing"]
    assert "SetFit is not run at k = all nor above k = 2 per class" in json.dumps(design, ensure_ascii=False)
    assert anchors.setfit_runs_at(8, 8) and anchors.setfit_runs_at(128, None)
    assert not anchors.setfit_runs_at(None, None) and not anchors.setfit_runs_at(32, 8)
    assert anchors.setfit_scope(["probe"], [None], None) is None  # not an anchor: nothing to say
    assert anchors.setfit_scope(["setfit"], [8, 32], None) is None  # runs at every k of the study
    assert anchors.setfit_scope(["setfit"], [8, 32], 8).startswith("SetFit is not run at k = all nor above k = 8")
