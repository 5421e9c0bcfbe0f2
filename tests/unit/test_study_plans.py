"""Study designs on fixed inputs: the learning-rate choice, the design paragraph, and the plans of the published routing
and financial studies."""
from pathlib import Path

import pytest

from otherdata_utils import studies
from otherdata_utils.config import load_config
from otherdata_utils.studies import peft_tuning

REPO = Path(__file__).resolve().parents[2]


def test_learning_rate_choice_takes_the_validation_best_and_the_first_on_a_tie():
    scores = {5e-4: 0.61, 1e-3: 0.74, 2e-3: 0.70}
    rate, table = peft_tuning.choose_learning_rate([5e-4, 1e-3, 2e-3], scores.get)
    assert rate == 1e-3
    assert table["chosen"].tolist() == [False, True, False]
    assert table["validation_score"].tolist() == [0.61, 0.74, 0.70]
    tied, _ = peft_tuning.choose_learning_rate([5e-5, 1e-4], lambda _: 0.5)
    assert tied == 5e-5
    with pytest.raises(ValueError, match="positive rates"):
        peft_tuning.choose_learning_rate([], scores.get)


def test_design_paragraph_names_seed_only_replicates_without_a_cross_product():
    from otherdata_utils.studies.tables import design_markdown
    base = {"scientific": {"arm": ["a", "b"]}, "fixed": {"lr": 1e-4}, "nuisance": "not tuned"}
    alone = design_markdown({**base, "seeds": [1, 2, 3], "split_seeds": [1, 2, 3], "replicates": 3})
    assert "*Replicates:* 3 = seeds 1, 2, 3, each drawing its own rows" in alone and "×" not in alone
    crossed = design_markdown({**base, "seeds": [7], "split_seeds": [1, 2], "replicates": 2})
    assert "*Replicates:* 2 = split seeds 1, 2 × seeds 7" in crossed


def test_the_routing_and_financial_plans_count_what_their_notebooks_once_miscounted():
    routing = studies.routing.plan(load_config(REPO / "results" / "study_routing" / "params.yaml"))
    assert routing.cells == {"fine-tuned": 45, "probe": 15, "SetFit": 10}  # 70, not 75: no SetFit at k = all
    financial = studies.few_shot.plan(load_config(REPO / "results" / "study_financial" / "params.yaml"))
    assert financial.cells["fine-tuned"] == 40  # +english and +sst2 counted: 4 arms × 2 k × 5 splits
    assert "models to train: 60 (40 fine-tuned, 10 probe, 10 SetFit)" in financial.describe()
