"""The precision study end to end at CI size: the tiny random BERT on tens of the packaged UCI sentences, fp32 and
bf16 cells trained in one process, the bf16 ones really computing in bf16, and a comparisons table with the
bootstrap Δ, Holm p, MDE, TOST and time ratio; a re-run plans nothing to train."""
import json

import pandas as pd
import pytest

from otherdata_utils import runs
from otherdata_utils.config import load_config
from otherdata_utils.studies import precision

# UCI sentences repeat across splits: preparing them warns of the leakage it removes, as expected
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:leakage")]

TINY = {"model_name_or_path": "tiny-random", "max_seq_length": 32, "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 32, "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no",
        "save_strategy": "no", "quiet": True, "max_train_samples": 24, "max_eval_samples": 8, "max_test_samples": 40,
        "mixing_strategy": "proportional", "replicates": {"split_seeds": [1, 2], "seeds": [1]},
        "study": {"precision": {"arms": ["bf16"], "margin": 0.02}}}


def test_fp32_and_bf16_cells_run_in_their_own_precision_and_are_compared_with_a_tost(tmp_path, packaged_data_dir):
    config = load_config(None, {**TINY, "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir),
                                "output_dir": str(tmp_path / "run")})
    result = precision.precision_study(config)
    cells = result.cells
    assert list(cells["arm"]) == ["fp32", "bf16"] * 2
    assert list(cells["mixed_precision"]) == ["no", "bf16"] * 2
    assert list(cells["train_dtype"]) == ["float32", "bfloat16"] * 2  # what the linear layers computed in
    assert list(cells["eval_dtype"]) == ["float32", "bfloat16"] * 2
    assert cells["n_test"].eq(40).all() and cells["test_rows"].nunique() == 1  # every cell on the same test rows
    assert cells["correct"].str.len().eq(40).all()
    for column in ("accuracy", "macro_f1", "train_seconds"):
        assert cells[column].notna().all()

    comparison = result.comparisons.iloc[0]
    assert len(result.comparisons) == 1 and comparison["arm"] == "bf16" and comparison["reference"] == "fp32"
    for column in ("delta", "ci_low", "ci_high", "p_holm", "mde", "boot_low", "boot_high", "tost_low", "tost_high",
                   "equivalence", "time_ratio", "train_dtype"):
        assert column in result.comparisons.columns, column
    fp32, bf16 = (cells[cells["arm"] == arm].set_index("split_seed") for arm in ("fp32", "bf16"))
    assert comparison["delta"] == pytest.approx((bf16["accuracy"] - fp32["accuracy"]).mean())
    assert comparison["time_ratio"] == pytest.approx((fp32["train_seconds"] / bf16["train_seconds"]).median())
    assert comparison["boot_covers"] == "replicates + test rows" and comparison["n_rows"] == 80
    # the TOST reads the 90% interval: inside the 95% one, and the verdict follows it at the stated margin
    assert comparison["boot_low"] <= comparison["tost_low"] <= comparison["tost_high"] <= comparison["boot_high"]
    inside = -0.02 < comparison["tost_low"] and comparison["tost_high"] < 0.02
    assert comparison["equivalent"] == inside
    assert comparison["equivalence"] == ("equivalent within ±0.020" if inside else "equivalence not shown")
    assert comparison["train_dtype"] == "bfloat16"

    assert "TOST 90% CI" in result.table_markdown and "train time fp32/arm (this host, median)" in result.table_markdown
    assert "bf16 (computed in bfloat16 while training)" in result.reading
    recorded = json.loads(runs.run_folder(config).metrics.read_text())["studies"]["precision"]
    assert recorded["margin"] == 0.02 and recorded["comparisons"][0]["equivalence"] == comparison["equivalence"]
    assert len(pd.read_csv(result.folder / "comparisons.csv")) == 1

    done = precision.plan(config)
    assert (done.reused, done.to_train) == (4, 0)  # a re-run trains nothing
    grown = precision.plan(config.replace(replicates={"split_seeds": [1, 2, 3]}))
    assert (grown.reused, grown.to_train) == (4, 2)  # only the new split seed's fp32 and bf16 cells


def test_at_k_every_arm_trains_on_the_few_shot_draw_of_the_target_and_scores_on_its_test_rows(
        tmp_path, packaged_data_dir):
    config = load_config(None, {**TINY, "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir),
                                "output_dir": str(tmp_path / "run"), "target_domain": "yelp", "max_test_samples": None,
                                "study": {"precision": {"arms": ["bf16"], "k": 4},
                                          "few_shot": {"steps": "equal_target_visits", "test_rows": 30}}})
    result = precision.precision_study(config)
    cells = result.cells
    assert list(cells["arm"]) == ["fp32", "bf16"] * 2 and list(cells["k_label"]) == ["4"] * 4
    assert cells["n_train"].eq(8).all() and cells["n_test"].eq(30).all()  # 4 yelp rows per class; 30 yelp test rows
    assert cells.groupby("split_seed")["target_ids"].nunique().eq(1).all()  # both arms of a split: the same rows
    assert cells["target_ids"].nunique() == 2  # each split seed its own draw
    assert list(cells["train_dtype"]) == ["float32", "bfloat16"] * 2
    assert "4 yelp rows per class per split seed" in result.table_markdown
