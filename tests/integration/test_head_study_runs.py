"""The head study end to end at CI size: the tiny random BERT on the packaged UCI sentences, cls and mean pooling
cells at k = 4 and all (capped), every cell scored on yelp's validation rows and none on test rows, comparisons with
the bootstrap interval per k, and this target's side of the rule in metrics.json; a re-run plans nothing to train."""
import json

import pytest

from otherdata_utils import runs
from otherdata_utils.config import load_config
from otherdata_utils.studies import head
from otherdata_utils.studies.engine import prepared_data, rows_fingerprint
from otherdata_utils.studies.sampling import domain_rows

# UCI sentences repeat across splits: preparing them warns of the leakage it removes, as expected
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.filterwarnings("ignore:leakage")]

TINY = {"model_name_or_path": "tiny-random", "max_seq_length": 32, "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 32, "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no",
        "save_strategy": "no", "quiet": True, "max_eval_samples": 60, "max_test_samples": 60,
        "target_domain": "yelp", "replicates": {"split_seeds": [1, 2], "seeds": [1]},
        "study": {"head": {"k_values": [4, None], "max_all_rows": 16}, "few_shot": {"steps": "equal_target_visits"}}}


def test_cls_and_mean_cells_are_scored_on_validation_rows_only_and_the_rule_is_recorded(tmp_path, packaged_data_dir):
    config = load_config(None, {**TINY, "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir),
                                "output_dir": str(tmp_path / "run")})
    result = head.head_study(config)
    cells = result.cells
    assert list(cells["arm"]) == ["cls", "mean"] * 4 and list(cells["pooling"]) == ["cls", "mean"] * 4
    assert list(cells["k_label"]) == ["4"] * 4 + ["all"] * 4
    assert list(cells["n_train"]) == [8] * 4 + [16] * 4  # 4 yelp rows per class; all yelp rows capped at 16
    assert cells.groupby(["k_label", "split_seed"])["target_ids"].nunique().eq(1).all()  # both arms: the same rows

    prepared, _ = prepared_data(config)
    validation = domain_rows(prepared["validation"], "yelp")
    test = domain_rows(prepared["test"], "yelp")
    assert set(cells["test_rows"]) == {rows_fingerprint(validation)} != {rows_fingerprint(test)}
    assert cells["n_test"].eq(len(validation)).all() and cells["correct"].str.len().eq(len(validation)).all()

    comparisons = result.comparisons
    assert list(comparisons["k_label"]) == ["4", "all"] and set(comparisons["arm"]) == {"mean"}
    mean, cls = (cells[cells["arm"] == arm].set_index(["k_label", "split_seed"])["accuracy"] for arm in ("mean", "cls"))
    for row in comparisons.itertuples():
        assert row.delta == pytest.approx((mean - cls).loc[row.k_label].mean())
        assert row.boot_covers == "replicates + validation rows" and row.n_rows == 2 * len(validation)
    assert "test rows untouched" in result.table_markdown and "validation accuracy" in result.table_markdown

    recorded = json.loads(runs.run_folder(config).metrics.read_text())["studies"]["head"]
    side = (mean - cls).groupby(level="k_label").mean()
    assert recorded["mean_minus_cls"] == pytest.approx(side.mean()) and recorded["scored_on"] == "validation"
    assert recorded["rule"] == head.RULE and recorded["target"] == "yelp"
    assert recorded["choice_on_this_target"] == ("mean" if side.mean() >= 0 else "cls")
    assert head.recorded_choice([config])["choice"] == recorded["choice_on_this_target"]

    done = head.plan(config)
    assert (done.reused, done.to_train) == (8, 0)  # a re-run trains nothing
