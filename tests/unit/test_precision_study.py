"""The precision study's design on in-memory rows (no data folder, no model): its arms differ only in
`mixed_precision`, every arm of a replicate trains on the same rows, and its plan counts arms × replicates."""
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.precision import resolve_precision
from otherdata_utils.studies import few_shot, precision, setting_arms
from otherdata_utils.studies.engine import rows_fingerprint
from otherdata_utils.studies.store import ordered_fingerprint

REPO = Path(__file__).resolve().parents[2]
CROSSED = {"replicates": {"split_seeds": [1, 2, 3], "seeds": [1, 2]}}


def _rows(split: str, per_class: int) -> Dataset:
    """`per_class` rows per label in each of two domains, ids unique per split."""
    rows = [(f"{split}-{domain}-{label}-{i}", f"{domain} text {label} {i}", label, domain, "reviews")
            for domain in ("kitchen", "books") for label in (0, 1) for i in range(per_class)]
    features = Features({"id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                         "source": Value("string")})
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features)


PREPARED = DatasetDict(train=_rows("train", 20), validation=_rows("validation", 3), test=_rows("test", 5))


def _differences(a, b) -> set[str]:
    first, second = a.to_params(), b.to_params()
    return {name for name in first if first[name] != second[name]}


def test_arms_are_fp32_then_each_requested_precision_and_differ_only_in_mixed_precision():
    config = load_config(None, {**CROSSED, "study.precision.arms": ["bf16", "auto"]})
    arms = precision.precision_arms(config)
    assert [arm for arm, _, _ in arms] == ["fp32", "bf16", "auto"]
    modes = [facts["mixed_precision"] for _, _, facts in arms]
    assert modes[:2] == ["no", "bf16"]
    assert modes[2] == resolve_precision("auto", precision.cell_device()).mode  # auto resolved on this host
    for _, arm_config, facts in arms:
        assert arm_config.mixed_precision == facts["mixed_precision"]
        assert _differences(arms[0][1], arm_config) <= {"mixed_precision"}
    assert _differences(arms[0][1], arms[1][1]) == {"mixed_precision"}


def test_the_plan_trains_every_arm_on_every_split_seed_and_seed():
    config = load_config(None, {**CROSSED, "study.precision.arms": ["bf16"]})
    plan = precision.plan(config)
    assert plan.arms == ["fp32", "bf16"]
    assert plan.replicates == [(split, seed) for split in (1, 2, 3) for seed in (1, 2)]
    assert plan.cells == {"fine-tuned": 12} and plan.table_rows == 12
    assert plan.reused is None  # nothing stored yet: the run folder is not read


def test_every_arm_of_a_replicate_trains_on_the_same_mixed_rows_and_split_seeds_draw_others():
    config = load_config(None, {**CROSSED, "max_train_samples": 30, "mixing_strategy": "proportional"})
    base, test, _ = precision.replicate_cells(config, PREPARED)
    cells = precision.precision_cells(config, base)
    assert len(cells) == 12 and test is PREPARED["test"]
    by_replicate = {}
    for cell in cells:
        by_replicate.setdefault((cell.split_seed, cell.seed), []).append(cell)
        assert cell.fit is precision.precision_fit and len(cell.train) == 30
        assert cell.facts["mixed_precision"] == cell.config.mixed_precision
    for pair in by_replicate.values():
        assert [cell.arm for cell in pair] == ["fp32", "bf16"]
        assert len({ordered_fingerprint(cell.train) for cell in pair}) == 1
        assert _differences(pair[0].config, pair[1].config) == {"mixed_precision"}
    drawn = {split: ordered_fingerprint(by_replicate[(split, 1)][0].train) for split in (1, 2, 3)}
    assert len(set(drawn.values())) == 3  # each split seed its own draw
    assert ordered_fingerprint(by_replicate[(2, 1)][0].train) == ordered_fingerprint(by_replicate[(2, 2)][0].train)


def test_at_k_the_cells_train_on_the_few_shot_studys_k_shot_target_rows_and_score_on_target_test_rows():
    config = load_config(None, {**CROSSED, "target_domain": "kitchen", "study.precision.k": 4,
                                "study.few_shot.steps": "equal_target_visits"})
    base, test, text = precision.replicate_cells(config, PREPARED)
    cells = precision.precision_cells(config, base)
    assert len(cells) == 12 and "4 kitchen rows per class" in text
    assert set(test["domain"]) == {"kitchen"} and len(test) == 10
    for cell in cells:
        assert set(cell.train["domain"]) == {"kitchen"} and len(cell.train) == 8  # 4 per class, no other rows
        assert sorted(cell.train["label"]) == [0] * 4 + [1] * 4
        assert set(cell.validation["domain"]) == {"kitchen"}
    few_shot_draw = few_shot.few_shot_splits(setting_arms.few_shot_view(config, 4), PREPARED["train"])
    assert {(split.split_seed, rows_fingerprint(split.target)) for split in few_shot_draw} == {
        (cell.split_seed, rows_fingerprint(cell.train)) for cell in cells}  # the same rows (mixing shuffles them)
    assert len({rows_fingerprint(split.target) for split in few_shot_draw}) == 3


def test_bad_precision_parameters_are_refused_naming_the_parameter():
    with pytest.raises(ConfigError, match="study.precision.arms"):
        load_config(None, {"study.precision.arms": ["bf16", "bf16"]})
    with pytest.raises(ConfigError, match="study.precision.arms"):
        load_config(None, {"study.precision.arms": ["no"]})  # fp32 is the reference, always there
    with pytest.raises(ConfigError, match="study.precision.margin"):
        load_config(None, {"study.precision.margin": 0})
    if precision.cell_device() == "cpu":
        with pytest.raises(ConfigError, match="study.precision.arms: 'fp16' cannot run here: .*needs a GPU"):
            precision.precision_arms(load_config(None, {"study.precision.arms": ["fp16"]}))


@pytest.mark.parametrize("name, models", [("study_precision_default", 12), ("study_precision_kitchen", 20)])
def test_the_published_params_files_plan_fp32_and_bf16_on_every_replicate(name, models):
    config = load_config(REPO / "params" / f"{name}.yaml")
    plan = precision.plan(config)
    assert plan.arms == ["fp32", "bf16"] and plan.models == models
    assert precision.precision_params(config).margin == 0.01
    assert "15_precision" in config.notebooks


def _cells_frame(bf16_wrong: int) -> pd.DataFrame:
    """Three replicates on 100 shared test rows: fp32 right on 80, bf16 on 80 less `bf16_wrong` (rows fp32 got);
    bf16 trains in 2 s against fp32's 3, 4 and 5 s."""
    rows = []
    for split, fp32_seconds in zip((1, 2, 3), (3.0, 4.0, 5.0)):
        fp32 = [True] * 80 + [False] * 20
        bf16 = [False] * bf16_wrong + [True] * (80 - bf16_wrong) + [False] * 20
        for arm, correct, seconds in (("fp32", fp32, fp32_seconds), ("bf16", bf16, 2.0)):
            rows.append({"split_seed": split, "seed": 1, "arm": arm, "accuracy": sum(correct) / 100,
                         "correct": "".join("1" if c else "0" for c in correct), "train_seconds": seconds,
                         "test_rows": "same", "train_dtype": "bfloat16" if arm == "bf16" else "float32",
                         "eval_dtype": "bfloat16" if arm == "bf16" else "float32"})
    return pd.DataFrame(rows)


def test_the_comparison_gives_the_bootstrap_delta_the_tost_at_the_margin_and_the_time_ratio():
    identical = precision.parity_comparisons(_cells_frame(0), margin=0.01).iloc[0]
    assert identical["delta"] == 0 and identical["equivalent"]
    assert identical["equivalence"] == "equivalent within ±0.010"
    assert identical["time_ratio"] == pytest.approx(2.0)  # median of 3/2, 4/2, 5/2
    assert identical["train_dtype"] == "bfloat16" and identical["n_rows"] == 300

    worse = precision.parity_comparisons(_cells_frame(3), margin=0.01).iloc[0]  # 3 points lost on every replicate
    assert worse["delta"] == pytest.approx(-0.03) and worse["p_holm"] != worse["p_holm"]  # no spread: no t test
    assert worse["boot_low"] < worse["tost_low"] < -0.01 and worse["tost_high"] < 0
    assert not worse["equivalent"] and worse["equivalence"] == "equivalence not shown"
    assert precision.parity_comparisons(_cells_frame(3), margin=0.1).iloc[0]["equivalent"]  # inside ±10 points
    table = precision.parity_markdown(precision.parity_comparisons(_cells_frame(3), margin=0.01))
    assert "| bf16 | -0.030 [" in table and "| equivalence not shown | bfloat16 / bfloat16 | 2.00× |" in table
