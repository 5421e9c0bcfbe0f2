"""Checks on a study's run folder that tests of several tiers share (tests/ is on pytest's pythonpath).

Hands on `plan_matches_cells`: a study's plan() against the cells tables its run wrote.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from otherdata_utils import studies  # noqa: F401  (importing it registers every study kind `study_kind` looks up)
from otherdata_utils.config import Config
from otherdata_utils.study_registry import study_kind


def plan_matches_cells(config: Config, folder: Path) -> None:
    """Every study kind of `config`: plan()'s table rows are the rows of the study's cells tables (a row per scored
    model; transfer's a row per model and test domain) and its replicates the distinct (split seed, seed) pairs."""
    tables = [pd.read_csv(path) for path in sorted((folder / "studies").glob("*/cells.csv"))]
    assert config.study and tables, f"{folder}: no study block or no cells table to hold a plan against"
    # A block that only configures another kind's rows (precision's few_shot: how k-shot rows are drawn) has no
    # study folder of its own and is not run.
    run = [kind for kind in config.study if (folder / "studies" / kind).is_dir()] or list(config.study)
    for kind in run:
        plan = study_kind(kind).plan(config)
        assert sum(len(table) for table in tables) == plan.table_rows, kind
        assert set().union(*(set(zip(t["split_seed"], t["seed"])) for t in tables)) == set(plan.replicates), kind
