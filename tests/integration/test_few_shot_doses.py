"""The few-shot study's other-row doses, its other_only floor and its setfit+other anchor, on the packaged UCI
sentences (target yelp) with the tiny random model: dose pools nest, other_only holds no target row and trains once
for every k, and the study's table holds what its plan counts."""
import pandas as pd
import pytest
from datasets import Dataset

from otherdata_utils import pipeline, runs, studies
from otherdata_utils.config import load_config
from otherdata_utils.studies import few_shot
from otherdata_utils.studies.reuse import cell_keys

TARGET = "yelp"
TINY = {"model_name_or_path": "tiny-random", "max_seq_length": 24, "per_device_train_batch_size": 64,
        "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no", "save_strategy": "no", "quiet": True,
        "max_train_samples": 24, "max_eval_samples": 8, "max_test_samples": 30,
        "test_split_percentage": 70}  # fewer training rows: the "every other row" dose stays cheap

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ids(rows: Dataset) -> set[str]:
    """Row ids without the '#rN' suffix that marks a repeated row."""
    return {row_id.split("#r")[0] for row_id in rows["id"][:]}


def _target_ids(rows: Dataset) -> set[str]:
    return _ids(studies.domain_rows(rows, TARGET))


@pytest.fixture(scope="module")
def dosed(tmp_path_factory, packaged_data_dir):
    """Yelp at k = 2 and 4 per class, doses 0, 16 and every other row, other_only and setfit+other (8 other rows),
    each target row seen once (equal_target_visits); 2 split seeds × 1 seed; the study run once."""
    pytest.importorskip("setfit", reason="setfit is the optional `studies` extra: pip install -e '.[studies]'")
    config = load_config(None, {
        **TINY, "sources": ["uci_sentences"], "target_domain": TARGET, "data_dir": str(packaged_data_dir),
        "study.few_shot.k_values": [2, 4], "study.few_shot.strategies": ["target_only", "concat", "other_only"],
        "study.few_shot.other_doses": [0, 16, None], "study.few_shot.steps": "equal_target_visits",
        "study.few_shot.anchors": ["setfit+other"], "study.few_shot.setfit_other_rows": 8,
        "replicates": {"split_seeds": [3, 4], "seeds": [1]},
        "output_dir": str(tmp_path_factory.mktemp("runs") / "dosed")})
    prepared = pipeline.prepare_data(config).dataset
    return config, prepared, studies.few_shot_study(config)


def test_dose_pools_nest_within_a_split_seed_and_are_the_same_at_every_k(dosed):
    config, prepared, _ = dosed
    others = len(prepared["train"]) - len(studies.domain_rows(prepared["train"], TARGET))
    splits = studies.few_shot_splits(config, prepared["train"])
    pools = {(split.k_label, split.split_seed): split.pools for split in splits}
    for seed in (3, 4):
        small, every = pools[("2", seed)]
        assert (small.dose, len(small.other)) == ("16", 16) and (every.dose, len(every.other)) == ("all", others)
        assert _ids(small.other) < _ids(every.other)  # the dose-16 rows are among every other row's
        assert list(small.other["id"][:]) == list(every.other["id"][:16])  # the first 16 of one seeded order
        assert [list(pool.other["id"][:]) for pool in pools[("4", seed)]] == [
            list(pool.other["id"][:]) for pool in pools[("2", seed)]]
        assert TARGET not in set(every.other["domain"][:])
    assert _ids(pools[("2", 3)][0].other) != _ids(pools[("2", 4)][0].other)  # each split seed draws its own


def test_each_dosed_arm_adds_exactly_its_pool_to_the_splits_target_rows(dosed):
    config, prepared, _ = dosed
    splits = {(s.k_label, s.split_seed): s for s in studies.few_shot_splits(config, prepared["train"])}
    cells = studies.few_shot_cells(config, prepared["train"], prepared["validation"])
    assert [cell.arm for cell in cells[:3]] == ["target_only", "concat @16", "concat @all"]
    for cell in cells:
        split = splits[(cell.facts["k_label"], cell.split_seed)]
        assert _target_ids(cell.train) == _ids(split.target) and len(_target_ids(cell.train)) == 2 * int(
            cell.facts["k_label"])
        pool = {"target_only": Dataset.from_dict({"id": []}), "concat @16": split.pools[0].other,
                "concat @all": split.pools[1].other}[cell.arm]
        assert _ids(cell.train) - _ids(split.target) == _ids(pool), cell.arm
        assert len(cell.train) == len(split.target) + len(pool)  # equal target visits: each row once
        assert cell.facts["other_dose"] == {"target_only": "0", "concat @16": "16", "concat @all": "all"}[cell.arm]


def test_under_equal_steps_every_dose_trains_as_many_rows_as_the_largest(dosed):
    config, prepared, _ = dosed
    config = config.replace(study={"few_shot": {"steps": "equal_steps", "k_values": [4]}})
    split = studies.few_shot_splits(config, prepared["train"])[0]
    cells = [c for c in studies.few_shot_cells(config, prepared["train"], prepared["validation"])
             if c.split_seed == split.split_seed]
    total = len(split.target) + len(split.pools[-1].other)
    assert {cell.arm: len(cell.train) for cell in cells} == {"target_only": total, "concat @16": total,
                                                             "concat @all": total}
    by_arm = {cell.arm: cell.train for cell in cells}
    assert _ids(by_arm["concat @16"]) - _ids(split.target) == _ids(split.pools[0].other)
    # the smaller dose fills the same steps with repeats of the 8 target rows
    assert len(studies.domain_rows(by_arm["concat @16"], TARGET)) == total - 16


def test_other_only_cells_hold_no_target_row_and_one_key_serves_every_k(dosed):
    config, prepared, _ = dosed
    splits = studies.few_shot_splits(config, prepared["train"])
    floor = few_shot.other_only_cells(config, splits, prepared["validation"])
    assert len(floor) == 2 * 2 * 2  # 2 k × 2 split seeds × 2 doses
    for cell, shown in floor:
        assert TARGET not in set(cell.train["domain"][:]) and cell.facts["target_rows"] == 0
        assert "k_label" not in cell.facts and shown["k_label"] in ("2", "4")
    keys = cell_keys(config, [cell for cell, _ in floor], prepared["test"], prepared["train"].features["label"].names)
    assert len(set(keys)) == 2 * 2  # per (split seed, dose): the same model at k = 2 and 4


def test_the_dosed_study_tables_what_its_plan_counts_and_trains_each_distinct_cell_once(dosed):
    config, _, result = dosed
    cells, plan = result.cells, studies.few_shot.plan(config)
    assert len(cells) == plan.table_rows == 2 * (2 * (3 + 2 + 1))  # 2 splits × 2 k × (3 arms + 2 floors + setfit)
    assert plan.cells == {"fine-tuned": 12, "other-only": 8, "SetFit+other": 4}
    stored = len(list(runs.run_folder(config).cells.glob("*.json")))
    assert stored == 12 + 4 + 4 and (plan.reused, plan.to_train) == (20, 0)  # other_only trained once per dose
    floor = cells[cells["arm"].str.startswith("other_only")]
    assert set(floor["target_rows"]) == {0} and set(floor["k_label"]) == {"2", "4"}
    same_model = floor.pivot_table(index=["split_seed", "arm"], columns="k_label", values="accuracy")
    assert (same_model["2"] == same_model["4"]).all()
    setfit = cells[cells["arm"] == "setfit+other"]
    assert sorted(setfit["n_train"]) == [2 * 2 + 8] * 2 + [2 * 4 + 8] * 2 and set(setfit["other_rows"]) == {8}
    comparisons = result.comparisons.set_index(["k_label", "arm"])
    assert len(comparisons) == 2 * 5 and (comparisons.index.get_level_values("arm") != "target_only").all()
    assert set(comparisons.loc[("2", slice(None)), "family"].items()) >= {
        (("2", "concat @16"), "other data"), (("2", "other_only @all"), "anchors"), (("2", "setfit+other"), "anchors")}
    assert result.design["scientific"]["other-row dose"] == [0, 16, "all"]
    assert "every other row" in result.design["fixed"]["other-row pools"]
    assert "more other rows means more steps" in result.design["fixed"]["steps policy"]
    assert (runs.run_folder(config).figures / "few_shot_dose_curves.png").is_file()
    figure = few_shot.dose_figure(result.summary)
    assert [ax.get_title() for ax in figure.axes] == ["k = 2", "k = 4"]
    assert "doses 16, all" in result.reading and "plain transfer" in result.reading
    assert "other_only, setfit+other adjusted with the anchors" in result.design["fixed"]["Holm families"]
    assert list(pd.read_csv(result.folder / "cells.csv")["arm"]) == list(cells["arm"])
