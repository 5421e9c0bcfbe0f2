"""Studies whose arms differ in one fine-tuning setting (precision's `mixed_precision`, the head's `pooling`): the
rows every arm of a replicate shares, and the arms as the config with that one setting changed.

Takes the run folder's prepared splits and the config; hands the precision and head studies `k_shot_cells` (the few-
shot study's target-only draw at k, called, not copied), `training_set_cells` (the config's mixed training set),
`target_test_rows`, `target_validation_rows`, `setting_arms` and `arm_cells`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

from datasets import Dataset, DatasetDict

from .. import mix
from ..config import Config
from . import few_shot
from .engine import Cell, replicates, target_domain
from .sampling import domain_rows


def few_shot_view(config: Config, k: int) -> Config:
    """The config as the few-shot study would read it for a target-only arm at k: its k-shot draws per split seed,
    its test rows and steps policy, without the other arms or anchors."""
    return config.replace(study={"few_shot": {"k_values": [k], "strategies": ["target_only"], "other_groups": [],
                                              "anchors": [], "other_doses": None, "recipes": []}})


def target_validation_rows(config: Config, prepared: DatasetDict, parameter: str) -> tuple[str, Dataset]:
    """The target domain (checked, `parameter` named when it is missing) and its prepared validation rows."""
    target = target_domain(config, prepared, parameter)
    return target, domain_rows(prepared["validation"], target, config.mix_by)


def k_shot_cells(config: Config, prepared: DatasetDict, k: int, reference: str, parameter: str
                 ) -> tuple[list[Cell], Dataset, str]:
    """One `reference` cell per (split seed, seed) on the few-shot study's target-only rows at k
    (`few_shot.few_shot_cells`: k target rows per class drawn with the split seed, its steps policy), the target's
    validation rows, and those rows in words. Reads no test row."""
    view = few_shot_view(config, k)
    target, validation = target_validation_rows(view, prepared, parameter)
    cells = [replace(cell, arm=reference) for cell in few_shot.few_shot_cells(view, prepared["train"], validation)]
    steps = few_shot.few_shot_params(view).steps
    return cells, validation, f"{k} {target} rows per class per split seed (steps policy {steps})"


def target_test_rows(config: Config, prepared: DatasetDict, k: int, parameter: str) -> Dataset:
    """The target's test rows as the few-shot study samples them at k (`few_shot.study_test_rows`)."""
    view = few_shot_view(config, k)
    target = target_domain(view, prepared, parameter)
    return few_shot.study_test_rows(view, domain_rows(prepared["test"], target, config.mix_by), target)


def training_set_cells(config: Config, prepared: DatasetDict, reference: str) -> list[Cell]:
    """One `reference` cell per (split seed, seed) on the config's training set (`mix.mix`, drawn with the split
    seed), validated on the prepared validation split."""
    training = {split: mix.mix(prepared["train"], config, seed=split)[0] for split, _ in replicates(config)}
    return [Cell(arm=reference, seed=seed, train=training[split], validation=prepared["validation"], split_seed=split)
            for split, seed in replicates(config)]


def setting_arms(config: Config, setting: str, values: Sequence[tuple[str, Any]],
                 facts: Optional[Sequence[dict[str, Any]]] = None) -> list[tuple[str, Config, dict[str, Any]]]:
    """(arm, the cell config, facts) per (arm name, value of `setting`): the config with that one setting changed,
    the value among the arm's facts (with the arm's own `facts` where given)."""
    extra = list(facts) if facts is not None else [{} for _ in values]
    return [(arm, config.replace(**{setting: value}), {setting: value, **more})
            for (arm, value), more in zip(values, extra)]


def arm_cells(base: Sequence[Cell], arms: Sequence[tuple[str, Config, dict[str, Any]]],
              fit: Optional[Callable[..., dict[str, Any]]] = None) -> list[Cell]:
    """Every replicate's cell once per arm: the same rows, the arm's config and facts, `fit` (None: the engine's
    fine-tune and score); arms of a replicate side by side, so drift on the host falls on pairs alike."""
    return [replace(cell, arm=arm, config=arm_config, facts={**cell.facts, **facts}, fit=fit, arguments={})
            for cell in base for arm, arm_config, facts in arms]
