"""Study designs on fixed inputs: the learning-rate choice, the design paragraph, and the plans of the published routing
and financial studies."""
from pathlib import Path

import pytest

from otherdata_utils import studies
from otherdata_utils.config import ConfigError, load_config
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


# --- the few-shot study's doses, other_only and setfit+other (no data: params and plans only) ----------------------

DOSED = {"study.few_shot.k_values": [8, 32, None], "study.few_shot.other_doses": [1000, 0, None, 256],
         "study.few_shot.strategies": ["concat", "target_only", "temperature", "other_only"],
         "study.few_shot.temperatures": [2.0, 5.0], "study.few_shot.other_groups": ["imdb"],
         "study.few_shot.anchors": ["probe", "setfit", "setfit+other"], "study.few_shot.setfit_max_k": 32,
         "replicates": {"split_seeds": [1, 2, 3], "seeds": [7]}}


def _dosed(tmp_path, **changes):
    return load_config(None, {**DOSED, "output_dir": str(tmp_path), **changes})


def test_dose_labels_run_each_dose_above_zero_ascending_with_every_other_row_last(tmp_path):
    assert studies.few_shot.dose_labels(_dosed(tmp_path)) == ["256", "1000", "all"]
    assert studies.few_shot.dose_labels(_dosed(tmp_path, **{"study.few_shot.other_doses": None})) == [None]


def test_a_dosed_plan_runs_each_additive_arm_and_other_only_per_dose_and_target_only_once(tmp_path):
    plan = studies.few_shot.plan(_dosed(tmp_path))
    doses = ["256", "1000", "all"]
    assert plan.arms == [f"concat @{d}" for d in doses] + ["target_only"] + [
        f"temperature T={t} @{d}" for t in (2, 5) for d in doses] + [f"+imdb @{d}" for d in doses] + [
        f"other_only @{d}" for d in doses] + ["probe", "setfit", "setfit+other"]
    # per replicate and k: target-only + (concat, 2 temperatures, +imdb) × 3 doses = 13 fine-tuned; other_only 3;
    # SetFit and setfit+other at k = 8 and 32 only (setfit_max_k; never at all)
    assert plan.cells == {"fine-tuned": 3 * 13 * 3, "other-only": 3 * 3 * 3, "probe": 3 * 3, "SetFit": 2 * 3,
                          "SetFit+other": 2 * 3}
    assert "models to train: 165 (117 fine-tuned, 27 other-only, 9 probe, 6 SetFit, 6 SetFit+other)" in plan.describe()


def test_without_doses_other_only_runs_once_per_k_on_the_one_pool(tmp_path):
    plan = studies.few_shot.plan(_dosed(tmp_path, **{"study.few_shot.other_doses": None,
                                                     "study.few_shot.other_rows": 256}))
    assert plan.cells["fine-tuned"] == 3 * (1 + 4) * 3 and plan.cells["other-only"] == 3 * 3
    assert "other_only" in plan.arms and "concat" in plan.arms


@pytest.mark.parametrize("doses, message", [
    ([0, -5], r"'study.few_shot.other_doses' every value must be ≥ 0 or null \(every other row\); \[-5\] is not"),
    ([256, 256], r"values repeat in \[256, 256\]"),
    ([0], r"holds no dose above 0 \(0 is target-only, which always runs\)"),
])
def test_other_doses_refuse_negative_repeated_or_only_zero_doses(tmp_path, doses, message):
    with pytest.raises(ConfigError, match=message):
        studies.few_shot.few_shot_params(_dosed(tmp_path, **{"study.few_shot.other_doses": doses}))


def test_other_rows_and_other_doses_are_not_both_set(tmp_path):
    with pytest.raises(ConfigError, match=r"other_rows \(96\) and other_doses \(\[256\]\) both size the other-row"):
        studies.few_shot.few_shot_params(_dosed(tmp_path, **{"study.few_shot.other_doses": [256],
                                                             "study.few_shot.other_rows": 96}))


def test_the_setfit_other_anchor_states_its_rows_and_pairs(tmp_path):
    text = studies.few_shot.setfit_other_text(_dosed(tmp_path, **{"study.few_shot.setfit_other_rows": 48}))
    assert "plus 48 of the split's other rows" in text and "40 × (k·classes + 48) pairs" in text
