"""Study designs a referee would accept: agreement arms of one size, label noise only in the other data, time arms a
year apart, learning rates chosen on validation (additive language arms: tests/integration/test_adaptation.py). Real data subsets;
no model trained."""
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from datasets import Dataset

from otherdata_utils import data, studies
from otherdata_utils.config import Config, load_config
from otherdata_utils.studies import peft_tuning, quality, temporal
from study_checks import plan_matches_cells

TARGET = "electronics"
REPO = Path(__file__).resolve().parents[2]


def _col(rows: Dataset, name: str) -> list:
    return rows[name][:]


def _base_id(row_id: str) -> str:
    """A row id without the '#rN' suffix that marks a repeated row."""
    return row_id.split("#r")[0]


@pytest.fixture(scope="module")
def config(data_dir, tmp_path_factory) -> Config:
    return load_config(None, {"sources": ["blitzer_mds"], "target_domain": TARGET, "data_dir": str(data_dir),
                              "output_dir": str(tmp_path_factory.mktemp("runs")), "max_train_samples": 120,
                              "max_eval_samples": 40, "max_test_samples": 80, "seed": 42, "replicates": {"seeds": [1, 2]},
                              "quiet": True})


@pytest.fixture(scope="module")
def phrasebank(config) -> Dataset:
    return studies.clean_data(config, sources=["financial_phrasebank"], target_domain=None, few_shot_k=None,
                              mixing_strategy="concat")["train"]


# --- quality: agreement, label noise ----------------------------------------------------------------------------------

def test_agreement_arms_have_one_size_and_label_make_up_and_falling_agreement(phrasebank):
    levels = [1.0, 0.75, 0.66, 0.5]
    pools = quality.agreement_pools(phrasebank, levels)
    assert [len(rows) for rows in pools.values()] == sorted(len(rows) for rows in pools.values())  # nested pools
    for seed in (1, 2):
        arms = quality.equal_agreement_arms(phrasebank, levels, seed=seed)
        assert list(arms) == ["≥100%", "≥75%", "≥66%", "≥50%"]
        # uncapped, every arm is as large as the smallest (unanimous) pool, with its label counts
        assert {len(rows) for rows in arms.values()} == {len(pools["≥100%"])}
        assert len({frozenset(Counter(_col(rows, "label")).items()) for rows in arms.values()}) == 1
        mean_agreement = [sum(_col(rows, "agreement")) / len(rows) for rows in arms.values()]
        assert mean_agreement[0] == pytest.approx(1.0)
        assert all(high > low + 0.01 for high, low in zip(mean_agreement, mean_agreement[1:]))
        for level, rows in zip(levels, arms.values()):
            assert min(_col(rows, "agreement")) >= level - 1e-6
    capped = quality.equal_agreement_arms(phrasebank, levels, seed=1, limit=150)
    assert {len(rows) for rows in capped.values()} == {150}
    assert len({frozenset(Counter(_col(rows, "label")).items()) for rows in capped.values()}) == 1
    # the nested design notebook 08 sets beside it: sizes grow with the arms
    nested = quality.agreement_arms(phrasebank, levels, seed=1, limit=400)
    assert [len(rows) for rows in nested.values()] == sorted(len(rows) for rows in nested.values())
    assert len(nested["≥100%"]) < len(nested["≥50%"]) == 400


def test_label_noise_cells_flip_other_domains_only_and_never_a_target_row(config, data_dir):
    splits = data.load_source("blitzer_mds", data_dir)
    train = splits["train"]
    original = dict(zip(_col(train, "id"), _col(train, "label")))
    noise_config = config.replace(few_shot_k=8, mixing_strategy="temperature", mixing_temperature=2.0,
                                  study={"quality": {"noise_levels": [0.0, 0.3]}}, max_train_samples=400)
    cells = quality.label_noise_cells(noise_config, train, splits["validation"], TARGET)
    assert [(cell.seed, cell.arm) for cell in cells] == [
        (seed, arm) for seed in (1, 2) for arm in ("noise 0%", "noise 30%", "target_only")]
    for seed in (1, 2):
        by_arm = {cell.arm: cell.train for cell in cells if cell.seed == seed}
        # every noise level mixes in the same target rows, drawn from the k = 8 per class of target-only (which
        # repeats them up to the budget; the temperature mix may keep fewer)
        target_ids = {arm: {_base_id(row_id) for row_id, domain in zip(_col(rows, "id"), _col(rows, "domain"))
                            if domain == TARGET} for arm, rows in by_arm.items()}
        assert target_ids["noise 0%"] == target_ids["noise 30%"] <= target_ids["target_only"]
        assert len(target_ids["target_only"]) == 16
        for arm, rows in by_arm.items():
            flipped = Counter(domain for row_id, domain, label in zip(_col(rows, "id"), _col(rows, "domain"),
                                                                      _col(rows, "label"))
                              if original[_base_id(row_id)] != label)
            others = sum(domain != TARGET for domain in _col(rows, "domain"))
            assert flipped[TARGET] == 0, arm
            if arm == "noise 30%":
                assert sum(flipped.values()) == pytest.approx(0.3 * others, abs=0.08 * others)
            else:
                assert not flipped


# --- time: the widest gap ---------------------------------------------------------------------------------------------

def test_time_arms_lie_a_year_apart_and_the_test_rows_in_the_recent_period(config, data_dir):
    split = studies.time_split_of(config)
    assert (split.older_before, split.cut) == ("2005-01-01", "2006-01-01")
    assert split.gap > 1400  # the 1,524 reviews of 2005, less repeated texts
    ranges = split.date_ranges()
    assert ranges["older pool"][1] < "2005-01-01" <= "2006-01-01" <= ranges["recent pool"][0]
    assert ranges["test"][0] >= "2006-01-01" and ranges["validation"][0] >= "2006-01-01"
    cells = [studies.Cell(arm=arm, seed=seed, train=rows, validation=split.validation)
             for seed in config.replicates.seeds
             for arm, rows in studies.equal_size_arms({"older": split.older, "recent": split.recent},
                                                      studies.TIME_RECIPES, seed=seed,
                                                      limit=config.max_train_samples).items()]
    dates = temporal.date_table(cells, split).set_index("rows")
    assert list(dates.index) == ["older", "mixed", "contemporaneous", "validation", "test"]
    older_latest = date.fromisoformat(dates.loc["older", "latest"])
    assert (date.fromisoformat(dates.loc["contemporaneous", "earliest"]) - older_latest).days >= 365
    assert (date.fromisoformat(dates.loc["test", "earliest"]) - older_latest).days >= 365
    assert dates.loc["older", "dated_before_cut"] == dates.loc["older", "count"] == 2 * config.max_train_samples
    assert dates.loc["contemporaneous", "dated_before_cut"] == 0
    assert dates.loc["mixed", "dated_before_cut"] == pytest.approx(config.max_train_samples, abs=8)
    with pytest.raises(ValueError, match="older_before"):
        studies.time_split(data.load_source("blitzer_mds", data_dir), config, "2005-01-01", "2006-01-01")


# --- PEFT: learning rate chosen on validation -------------------------------------------------------------------------


def test_peft_learning_rates_are_chosen_on_validation_rows_never_test(monkeypatch):
    validation = Dataset.from_dict({"text": ["v"] * 4, "label": [0, 1, 0, 1], "domain": ["d"] * 4})
    train = Dataset.from_dict({"text": ["t"] * 4, "label": [0, 1, 0, 1], "domain": ["d"] * 4})
    best = {"none": 1e-4, "lora": 2e-3}
    seen, calls = [], []

    def scored_on_validation(config, cells, test, label_names, **_):
        assert test is validation
        calls.append(len(cells))
        rows = []
        for cell in cells:  # one row per cell, in the cells' order, as run_cells returns them
            assert cell.seed == 7
            seen.append((cell.arm, cell.config.learning_rate))
            rate, method = cell.config.learning_rate, cell.config.peft_method
            rows.append({"accuracy": 0.0, "macro_f1": 1.0 - abs(rate - best[method]) * 100})
        return pd.DataFrame(rows)

    monkeypatch.setattr(peft_tuning, "run_cells", scored_on_validation)
    config = Config(metric_for_best_model="macro_f1", learning_rate=5e-5, study={"peft": {
        "learning_rate": 1e-3, "learning_rate_grid": {"none": [5e-5, 1e-4, 2e-4], "lora": [5e-4, 1e-3, 2e-3]}}})
    arms = [(arm, config.replace(peft_method=method, learning_rate=rate), {"peft_method": method,
                                                                           "learning_rate": rate})
            for arm, method, rate in (("full", "none", 5e-5), ("lora", "lora", 1e-3), ("adalora", "adalora", 1e-3))]
    chosen, selection = peft_tuning.select_learning_rates(config, arms, train, validation, ["a", "b"], None, seed=7)
    assert [(arm, arm_config.learning_rate, facts["learning_rate"]) for arm, arm_config, facts in chosen] == [
        ("full", 1e-4, 1e-4), ("lora", 2e-3, 2e-3), ("adalora", 1e-3, 1e-3)]
    assert len(seen) == 6  # three rates each for full and lora; adalora has no grid and keeps its set rate
    assert calls == [6]  # the whole grid in one call, so the executor trains its models side by side
    assert chosen[0][2]["validation_score"] == pytest.approx(1.0)
    picked = selection[selection["chosen"]].set_index("arm")
    assert picked.loc["full", "learning_rate"] == 1e-4 and picked.loc["adalora", "how"] == "set, not tuned"
    assert len(selection) == 7


# --- financial sentiment: other data per group, binary data mapped in, unanimous test rows --------------------------

def test_financial_few_shot_arms_add_one_other_group_each_at_equal_steps_and_score_unanimous_rows(data_dir, tmp_path):
    run = load_config(REPO / "params" / "study_financial.yaml",
                      {"data_dir": str(data_dir), "output_dir": str(tmp_path), "study.few_shot.k_values": [8],
                       "replicates.split_seeds": [1], "study.few_shot.other_rows": 96, "quiet": True})
    prepared, _ = studies.clean_data(run), None
    assert prepared["train"].features["label"].names == ["negative", "neutral", "positive"]
    sst2 = [label for label, source in zip(_col(prepared["train"], "label"), _col(prepared["train"], "source"))
            if source == "sst2"]
    assert set(sst2) == {0, 2}  # neg/pos mapped to negative/positive: neutral only from finance and tweets
    cells = studies.few_shot_cells(run, prepared["train"], prepared["validation"])
    by_arm = {cell.arm: cell for cell in cells}
    assert sorted(by_arm) == ["+english", "+sst2", "concat", "target_only"]
    assert len({len(cell.train) for cell in cells}) == 1  # equal steps: every arm trains as many rows
    for group in ("english", "sst2"):
        domains = Counter(_col(by_arm[f"+{group}"].train, "domain"))
        assert set(domains) == {"finance", group} and domains[group] == 96
    target_ids = {_base_id(i) for i, d in zip(_col(by_arm["target_only"].train, "id"),
                                              _col(by_arm["target_only"].train, "domain")) if d == "finance"}
    for cell in cells:  # every arm keeps the same 24 k-shot finance rows
        assert {_base_id(i) for i, d in zip(_col(cell.train, "id"), _col(cell.train, "domain"))
                if d == "finance"} == target_ids
    assert len(target_ids) == 8 * 3
    test = studies.few_shot.study_test_rows(run, prepared["test"], "finance")
    assert set(_col(test, "agreement")) == {1.0} and set(_col(test, "domain")) == {"finance"}
    assert len(test) == studies.few_shot.few_shot_params(run).test_rows


# --- plan(): exactly what a study trains --------------------------------------------------------------------------

# transfer and language read their domains from the run's prepared data, which a published folder does not hold
PUBLISHED = sorted(path.parent.name for path in (REPO / "results").glob("*/studies")
                   if not {"transfer", "language"} & set(load_config(path.parent / "params.yaml").study))


@pytest.mark.parametrize("name", PUBLISHED)
def test_a_published_studys_plan_counts_the_models_its_cells_table_holds(name):
    plan_matches_cells(load_config(REPO / "results" / name / "params.yaml"), REPO / "results" / name)


