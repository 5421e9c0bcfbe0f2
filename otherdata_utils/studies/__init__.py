"""Studies of other data: each trains small models over seeds and scores them on untouched test rows.

Hands notebooks and the runner every study (one module each, all on `engine`) under `studies.<name>`: every module of
this package is imported here, so a new study registers its kind by being a module of it, with no edit here.
"""
from __future__ import annotations

import importlib
import pkgutil

from .engine import (Cell, CellScore, StudyPlan, StudyResult, cell_config, clean_data, compare_arms, compare_rows,
                     correct_rows, finish, fit_and_score, replicates, run_cells, split_seeds, summarize)
from .few_shot import (FewShotSplit, anchor_cells, few_shot_budget, few_shot_cells, few_shot_splits, few_shot_study,
                       mixing_arms)
from .language import (COVERAGE_TEXTS, arm_sizes, language_arms, language_budget, language_coverage,
                       language_study, tokenizer_coverage)
from .peft_tuning import ARM_OF_METHOD, peft_arms, peft_study
from .pretraining import continued_pretraining_study, pretraining_arms, pretraining_texts
from .quality import (HELPFULNESS_RECIPES, agreement_arms, agreement_study, helpfulness_pools, helpfulness_study,
                      inject_label_noise, label_noise_study, level_name)
from .routing import RoutingData, fit_and_route, routing_cells, routing_data, routing_study
from .sampling import balanced_order, domain_rows, equal_size_arms
from .tables import comparison_sentence, tally_comparisons
from .temporal import TIME_RECIPES, TimeSplit, time_split, time_split_of, time_study
from .transfer import transfer_matrix

__all__ = [
    "ARM_OF_METHOD", "COVERAGE_TEXTS", "Cell", "CellScore", "FewShotSplit", "HELPFULNESS_RECIPES", "RoutingData",
    "StudyPlan", "StudyResult", "TIME_RECIPES", "TimeSplit", "agreement_arms", "agreement_study", "anchor_cells",
    "arm_sizes", "balanced_order", "cell_config", "clean_data", "compare_arms", "compare_rows", "comparison_sentence",
    "continued_pretraining_study", "correct_rows", "domain_rows", "equal_size_arms", "few_shot_budget",
    "few_shot_cells", "few_shot_splits", "few_shot_study", "finish", "fit_and_route", "fit_and_score",
    "helpfulness_pools", "helpfulness_study", "inject_label_noise", "label_noise_study", "language_arms",
    "language_budget", "language_coverage", "language_study", "level_name", "mixing_arms", "peft_arms", "peft_study",
    "pretraining_arms", "pretraining_texts", "replicates", "routing_cells", "routing_data", "routing_study",
    "run_cells", "split_seeds", "summarize", "tally_comparisons", "time_split", "time_split_of", "time_study",
    "tokenizer_coverage", "transfer_matrix",
]


def _import_every_module() -> None:
    """Import each module of this package (the named imports above cover today's; this catches a new one), so every
    study kind is registered before a params file's `study:` block is validated."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_every_module()
