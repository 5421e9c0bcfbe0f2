"""A new study registers in one small module: its params model, its plan and its cells; the config validates its
block at load and the engine finishes it like any other study (here with a fake fit: no model, no data)."""
import json
import time

import pandas as pd
import pytest
from matplotlib.figure import Figure

from otherdata_utils import study_registry
from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.execution import threads_per_cell
from otherdata_utils.studies import engine
from otherdata_utils.study_registry import StudyParams, register_study, study_params


# --- the toy study: what a new study module holds (params model, plan, cells, a fit) ------------------------------
class ToyParams(StudyParams):
    """`study.toy`: how much each arm adds to a coin's accuracy."""

    lifts: list[float] = [0.0, 0.1]


def toy_plan(config) -> engine.StudyPlan:
    arms = [f"lift {lift:g}" for lift in study_params(config, "toy").lifts]
    return engine.plan_cells("toy", arms, config, {"fine-tuned": len(arms)})


def toy_study(config) -> engine.StudyResult:
    rows = []
    for split, seed in engine.replicates(config):
        for lift in study_params(config, "toy").lifts:  # a fake fit: accuracy set by the arm and the seed
            score = engine.CellScore(accuracy=0.5 + lift + seed / 100, macro_f1=0.5, per_domain={}, n_train=10,
                                     train_seconds=0.0, correct=[True, False])
            rows.append(engine.cell_row(f"lift {lift:g}", split, seed, {}, score, None, 2, "toy-rows"))
    cells = pd.DataFrame(rows)
    summary = engine.summarize(cells, ["arm"])
    comparisons = engine.compare_arms(cells, "lift 0")
    design = engine.study_design(config, {"arm": list(summary["arm"])}, "nothing (a toy)", {})
    return engine.finish(config, "toy", cells, summary, comparisons, design, "(table)", "(reading)", Figure())


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setattr(study_registry, "_KINDS", dict(study_registry._KINDS))  # forgotten after the test
    register_study("toy", ToyParams, uses_split_seeds=False, plan=toy_plan)


def test_a_toy_study_registers_is_validated_at_load_and_runs_through_finish(toy_registered, tmp_path):
    started = time.perf_counter()
    config = load_config(None, {"output_dir": str(tmp_path), "replicates.seeds": [1, 2, 3],
                                "study.toy.lifts": [0.0, 0.2]})
    plan = study_registry.study_kind("toy").plan(config)
    assert plan.models == 6 and plan.replicates == [(1, 1), (2, 2), (3, 3)]
    result = toy_study(config)
    assert len(result.cells) == plan.models
    assert set(zip(result.cells["split_seed"], result.cells["seed"])) == set(plan.replicates)
    assert result.comparisons["delta"].iloc[0] == pytest.approx(0.2)
    assert (tmp_path / "studies" / "toy" / "cells.csv").is_file()
    recorded = json.loads((tmp_path / "metrics.json").read_text())["studies"]["toy"]["execution"]
    assert recorded == {"executor": "serial", "threads_per_cell": threads_per_cell(config.execution)}
    assert time.perf_counter() - started < 2
    with pytest.raises(ConfigError, match="unknown parameter 'study.toy.lift'. Did you mean 'lifts'"):
        load_config(None, {"study.toy.lift": [0.1]})
    with pytest.raises(ConfigError, match="'replicates.split_seeds' is set, but the toy study"):
        load_config(None, {"replicates.split_seeds": [1], "study.toy.lifts": [0.1]})
