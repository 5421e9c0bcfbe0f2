"""A new study is one small module in the studies package: `otherdata_utils.studies` finds and imports it (no edit
anywhere else), the config validates its block at load, and its cells run through the engine's `run_cells` and
`finish` like any other study's (here with a fake fit: no model, no data)."""
import json
import sys
import time

import pytest

from otherdata_utils import studies, study_registry
from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.execution import threads_per_cell

# The whole study module, as a new study would add it under otherdata_utils/studies/ (here written to a folder the
# package is told to search too, so the source tree is left alone).
TOY_MODULE = '''"""A toy study: each arm adds a set lift to a coin's accuracy.

Hands on its params, its plan and its `StudyResult`.
"""
from datasets import Dataset
from matplotlib.figure import Figure

from otherdata_utils.study_registry import StudyParams, register_study, study_params
from otherdata_utils.studies import engine


class ToyParams(StudyParams):
    """`study.toy`: how much each arm adds to a coin's accuracy."""

    lifts: list[float] = [0.0, 0.1]


def toy_fit(config, train, validation, test, label_names, work_dir, *, lift):
    """A fake fit: accuracy set by the arm's lift and the cell's seed; the first test row right, the second wrong."""
    score = engine.CellScore(accuracy=0.5 + lift + config.seed / 100, macro_f1=0.5, per_domain={},
                             n_train=len(train), train_seconds=0.0, correct=[True, False])
    return engine.measured_columns(score, None, len(test), engine.rows_fingerprint(test))


def plan(config) -> engine.StudyPlan:
    arms = [f"lift {lift:g}" for lift in study_params(config, "toy").lifts]
    return engine.plan_cells("toy", arms, config, {"fine-tuned": len(arms)})


def toy_study(config) -> engine.StudyResult:
    rows = Dataset.from_dict({"id": ["a", "b"], "text": ["heads", "tails"], "label": [0, 1]})
    cells = [engine.Cell(arm=f"lift {lift:g}", seed=seed, train=rows, validation=rows, fit=toy_fit,
                         arguments={"lift": lift})
             for _, seed in engine.replicates(config) for lift in study_params(config, "toy").lifts]
    results = engine.run_cells(config, cells, rows, ["heads", "tails"], desc="toy")
    summary = engine.summarize(results, ["arm"])
    comparisons = engine.compare_arms(results, "lift 0")
    design = engine.study_design(config, {"arm": list(summary["arm"])}, "nothing (a toy)", {})
    return engine.finish(config, "toy", results, summary, comparisons, design, "(table)", "(reading)", Figure())


register_study("toy", ToyParams, uses_split_seeds=False, plan=plan)
'''


@pytest.fixture
def toy_module(monkeypatch, tmp_path):
    """The toy module placed in a folder the studies package also searches; its kind and module forgotten after."""
    folder = tmp_path / "more_studies"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY_MODULE)
    monkeypatch.setattr(study_registry, "_KINDS", dict(study_registry._KINDS))
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "otherdata_utils.studies.toy", raising=False)
    studies._import_every_module()  # what importing otherdata_utils.studies does
    yield sys.modules["otherdata_utils.studies.toy"]
    vars(studies).pop("toy", None)  # the import set it on the package; monkeypatch would put it back on undo


def test_a_toy_study_module_is_found_validated_at_load_and_runs_through_run_cells_and_finish(toy_module, tmp_path):
    assert len(TOY_MODULE.splitlines()) <= 60
    started = time.perf_counter()
    config = load_config(None, {"output_dir": str(tmp_path / "run"), "replicates.seeds": [1, 2, 3],
                                "study.toy.lifts": [0.0, 0.2]})
    plan = study_registry.study_kind("toy").plan(config)
    assert plan.models == 6 and plan.replicates == [(1, 1), (2, 2), (3, 3)]
    result = studies.toy.toy_study(config)
    assert len(result.cells) == plan.table_rows == 6
    assert set(zip(result.cells["split_seed"], result.cells["seed"])) == set(plan.replicates)
    assert list(result.cells["accuracy"]) == pytest.approx([0.51, 0.71, 0.52, 0.72, 0.53, 0.73])
    assert result.comparisons["delta"].iloc[0] == pytest.approx(0.2)
    assert result.table_markdown.startswith("*Scientific:* arm = ['lift 0', 'lift 0.2']")
    folder = tmp_path / "run" / "studies" / "toy"
    assert sorted(path.name for path in folder.glob("*.csv")) == ["cells.csv", "comparisons.csv", "correct.csv",
                                                                   "summary.csv"]
    assert len(list((tmp_path / "run" / "cells").glob("*.json"))) == 6  # each cell in the store
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())["studies"]["toy"]["execution"]
    assert recorded == {"executor": "serial", "threads_per_cell": threads_per_cell(config.execution)}
    assert time.perf_counter() - started < 2
    with pytest.raises(ConfigError, match="unknown parameter 'study.toy.lift'. Did you mean 'lifts'"):
        load_config(None, {"study.toy.lift": [0.1]})
    with pytest.raises(ConfigError, match="'replicates.split_seeds' is set, but the toy study"):
        load_config(None, {"replicates.split_seeds": [1], "study.toy.lifts": [0.1]})
