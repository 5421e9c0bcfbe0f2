"""Studies: how arms are built (noise, time, agreement, helpfulness), what each study returns, and each study's
params file run end to end through the runner. Training uses the tiny random model on tens of real rows."""
import json
from collections import Counter

import pandas as pd
import pytest
from datasets import Dataset

from otherdata_utils import data, metrics, pipeline, runs, studies
from otherdata_utils.studies import tables
from otherdata_utils.clean import dedupe_key
from otherdata_utils.config import ConfigError, load_config

TARGET = "electronics"
# Tens of rows, one epoch, two seeds: enough to exercise every path, not to learn anything.
TINY = {"model_name_or_path": "tiny-random", "max_seq_length": 32, "per_device_train_batch_size": 8,
        "num_train_epochs": 1, "learning_rate": 1e-3, "eval_strategy": "no", "save_strategy": "no", "replicates": {"seeds": [1, 2]},
        "quiet": True, "max_train_samples": 24, "max_eval_samples": 8, "max_test_samples": 24}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def blitzer(tmp_path_factory, data_dir):
    """Blitzer's four domains prepared once into a run folder, with tiny study settings."""
    config = load_config(None, {**TINY, "sources": ["blitzer_mds"], "target_domain": TARGET, "data_dir": str(data_dir),
                                "output_dir": str(tmp_path_factory.mktemp("runs") / "studies")})
    prepared = pipeline.prepare_data(config).dataset
    return config, prepared


def _col(rows: Dataset, name: str) -> list:
    """A column as a list (indexing a lazy datasets Column row by row is slow)."""
    return rows[name][:]


def _ids(rows: Dataset) -> set[str]:
    """Row ids without the '#rN' suffix that marks a repeated row."""
    return {row_id.split("#r")[0] for row_id in _col(rows, "id")}


def _assert_summary_is_seed_summary_of_cells(result, by):
    for _, row in result.summary.iterrows():
        chosen = result.cells
        for column in by:
            chosen = chosen[chosen[column] == row[column]]
        expected = metrics.seed_summary(chosen["accuracy"].tolist())
        assert row["n"] == expected["n"] == len(result.design["seeds"])
        for key in ("mean", "std", "ci_low", "ci_high"):
            assert row[key] == pytest.approx(expected[key]), (row.to_dict(), key)


def _assert_study_recorded(config, result, figure):
    study = json.loads(runs.run_folder(config).metrics.read_text())["studies"][result.name]
    assert study["table_markdown"] == result.table_markdown and study["reading"] == result.reading
    assert (result.folder / "cells.csv").is_file() and (result.folder / "summary.csv").is_file()
    assert len(pd.read_csv(result.folder / "cells.csv")) == len(result.cells)
    assert (runs.run_folder(config).figures / figure).is_file()


# --- how arms are built (no training) -------------------------------------------------------------------------------

def test_noise_injection_flips_exactly_the_requested_share_of_other_data_labels_only(blitzer):
    _, prepared = blitzer
    train = prepared["train"]
    domains, labels = _col(train, "domain"), _col(train, "label")
    others = sum(domain != TARGET for domain in domains)
    flipped = {}
    for rate in (0.1, 0.3):
        noisy = studies.inject_label_noise(train, rate, seed=7, keep_domain=TARGET)
        flipped[rate] = {row for row, (old, new) in enumerate(zip(labels, _col(noisy, "label"))) if old != new}
        assert len(flipped[rate]) == round(rate * others)
        assert all(domains[row] != TARGET for row in flipped[rate])
    assert flipped[0.1] < flipped[0.3]  # one ranking for every rate: the 10% flips are among the 30% ones
    first, again = (_col(studies.inject_label_noise(train, 0.1, seed=7, keep_domain=TARGET), "label")
                    for _ in range(2))
    assert first == again
    assert _col(studies.inject_label_noise(train, 0.1, seed=8, keep_domain=TARGET), "label") != first
    assert _col(studies.inject_label_noise(train, 0.0, seed=7, keep_domain=TARGET), "label") == labels


def test_noise_injection_moves_a_three_class_label_to_another_class():
    features = data.record_features(["negative", "neutral", "positive"])
    rows = Dataset.from_dict({name: [None] * 300 for name in features} | {
        "id": [str(i) for i in range(300)], "text": ["t"] * 300, "label": [i % 3 for i in range(300)],
        "domain": ["target"] * 100 + ["other"] * 200, "source": ["s"] * 300, "split": ["train"] * 300},
        features=features)
    noisy = studies.inject_label_noise(rows, 0.5, seed=1, keep_domain="target")
    changed = [(old, new) for old, new in zip(_col(rows, "label"), _col(noisy, "label")) if old != new]
    assert len(changed) == 100
    assert {new for old, new in changed if old == 0} == {1, 2}  # either other class, never the same one


def test_time_split_keeps_test_texts_out_of_training_and_arms_are_equal_sized(blitzer):
    config, _ = blitzer
    split = studies.time_split_of(config)
    assert split.undated == 1
    assert all(date >= "2006-01-01" for part in (split.recent, split.validation, split.test)
               for date in _col(part, "date"))
    assert all(date < "2006-01-01" for date in _col(split.older, "date"))
    assert len(split.test) == config.max_test_samples and len(split.validation) == config.max_eval_samples
    test_keys = {dedupe_key(text) for text in _col(split.test, "text")}
    for seed in config.replicates.seeds:
        arms = studies.equal_size_arms({"older": split.older, "recent": split.recent}, studies.TIME_RECIPES,
                                       seed=seed, limit=config.max_train_samples)
        assert {len(rows) for rows in arms.values()} == {config.max_train_samples}
        make_up = {arm: Counter(zip(_col(rows, "domain"), _col(rows, "label"))) for arm, rows in arms.items()}
        assert make_up["older"] == make_up["mixed"] == make_up["contemporaneous"]
        for rows in arms.values():
            assert not test_keys & {dedupe_key(text) for text in _col(rows, "text")}
        assert all(date < "2006-01-01" for date in _col(arms["older"], "date"))
        assert all(date >= "2006-01-01" for date in _col(arms["contemporaneous"], "date"))
        older_in_mixed = sum(date < "2006-01-01" for date in _col(arms["mixed"], "date"))
        assert abs(older_in_mixed - config.max_train_samples / 2) <= len(make_up["mixed"])


def test_agreement_arms_are_nested_and_keep_each_levels_share_under_a_budget(blitzer):
    config, _ = blitzer
    phrasebank = studies.clean_data(config, sources=["financial_phrasebank"], target_domain=None, few_shot_k=None,
                                    mixing_strategy="concat")["train"]
    levels = [1.0, 0.75, 0.66, 0.5]
    full = studies.agreement_arms(phrasebank, levels, seed=1)
    agreement = Counter(round(value, 2) for value in _col(phrasebank, "agreement"))
    assert [len(rows) for rows in full.values()] == [
        sum(n for level, n in agreement.items() if level >= threshold) for threshold in levels]
    capped = studies.agreement_arms(phrasebank, levels, seed=1, limit=200)
    assert list(capped) == ["≥100%", "≥75%", "≥66%", "≥50%"]
    sizes = [len(rows) for rows in capped.values()]
    assert sizes[-1] == 200 and sizes == sorted(sizes)
    arms = [_ids(rows) for rows in capped.values()]
    assert all(narrow < wide for narrow, wide in zip(arms, arms[1:]))
    assert {round(value, 2) for value in _col(capped["≥100%"], "agreement")} == {1.0}
    # each level keeps its share of the full data within rounding (one row per (level, label) stratum)
    for threshold, rows in zip(levels, capped.values()):
        share = len(full[f"≥{studies.level_name(threshold)}"]) / len(full["≥50%"])
        assert abs(len(rows) - 200 * share) <= 6


def test_helpfulness_arms_are_equal_size_with_the_same_domain_and_label_make_up(blitzer):
    config, prepared = blitzer
    pools = studies.helpfulness_pools(prepared["train"])
    votes = {name: list(zip(_col(rows, "helpful_votes"), _col(rows, "total_votes"))) for name, rows in pools.items()}
    assert all(total >= 3 and helpful / total >= 0.75 for helpful, total in votes["high"])
    assert all(total >= 3 and helpful / total < 0.5 for helpful, total in votes["low"])
    assert all(not total for _, total in votes["unrated"]) and all(len(pool) > 100 for pool in votes.values())
    arms = studies.equal_size_arms(pools, studies.HELPFULNESS_RECIPES, seed=1, limit=config.max_train_samples)
    assert {len(rows) for rows in arms.values()} == {config.max_train_samples}
    assert len({frozenset(Counter(zip(_col(rows, "domain"), _col(rows, "label"))).items())
                for rows in arms.values()}) == 1
    assert _ids(arms["high"]) <= _ids(pools["high"]) and _ids(arms["low"]) <= _ids(pools["low"])
    assert len(_ids(arms["high+low"]) & _ids(pools["high"])) == pytest.approx(config.max_train_samples / 2, abs=8)


def test_few_shot_cells_give_every_arm_of_a_seed_the_same_k_target_rows(blitzer):
    config, prepared = blitzer
    config = config.replace(study={"few_shot": {"k_values": [4], "strategies": ["target_only", "uniform"]}})
    target_validation = studies.domain_rows(prepared["validation"], TARGET)
    cells = studies.few_shot_cells(config, prepared["train"], target_validation)
    assert [(cell.seed, cell.arm) for cell in cells] == [(1, "target_only"), (1, "uniform"), (2, "target_only"),
                                                         (2, "uniform")]
    for seed in config.replicates.seeds:
        alone, uniform = [cell.train for cell in cells if cell.seed == seed]
        assert set(_col(alone, "domain")) == {TARGET} and len(alone) == config.max_train_samples
        assert len(_ids(alone)) == 8  # k = 4 per class, repeated up to the budget
        assert _ids(studies.domain_rows(uniform, TARGET)) <= _ids(alone)
    assert _ids(cells[0].train) != _ids(cells[2].train)  # another seed draws other target rows


def test_a_k_whose_target_rows_exceed_the_budget_raises_it_for_every_arm(blitzer):
    config, prepared = blitzer
    config = config.replace(study={"few_shot": {"k_values": [16], "strategies": ["target_only", "concat"]}},
                            replicates={"seeds": [1]})
    assert 16 * 2 > config.max_train_samples
    alone, concat = [cell.train for cell in studies.few_shot_cells(config, prepared["train"], prepared["validation"])]
    assert len(alone) == len(concat) == 32
    assert len(_ids(alone)) == 32  # every target row once: none repeated, none left out
    assert studies.few_shot_budget(config, None, 2, 700) == 700  # "all": every target row
    assert studies.few_shot_budget(config.replace(max_train_samples=None), 16, 2, 700) is None


def test_comparisons_say_whether_a_difference_is_beyond_the_replicate_noise():
    cells = pd.DataFrame({"seed": [1, 2, 3] * 3, "arm": ["ref"] * 3 + ["clear"] * 3 + ["noisy"] * 3,
                          "n_train": 10, "accuracy": [0.70, 0.71, 0.69, 0.80, 0.82, 0.79, 0.60, 0.80, 0.75]})
    comparisons = studies.compare_arms(cells, "ref")
    verdicts = {arm: verdict.split(" ")[0] for arm, verdict in zip(comparisons["arm"], comparisons["verdict"])}
    assert verdicts == {"clear": "helps", "noisy": "cannot"}
    sentence = studies.comparison_sentence(comparisons)
    assert sentence == ("Helps: clear +0.103 [+0.089, +0.118]: helps (+0.103, p_adj=0.002). Cannot tell: noisy "
                        "+0.017 [-0.237, +0.270]: cannot tell: differences up to 0.270 not excluded (p_adj=0.804).")


def test_arm_tables_and_results_tables_word_the_same_verdicts_the_same_way():
    """The model-side studies' arm table and the data studies' results table share one verdict wording."""
    cells = pd.DataFrame({"seed": [1, 2, 3] * 3, "arm": ["ref"] * 3 + ["clear"] * 3 + ["flat"] * 3,
                          "n_train": 10, "accuracy": [0.70, 0.71, 0.69, 0.80, 0.82, 0.79, 0.70, 0.70, 0.70]})
    summary = studies.summarize(cells, ["arm"])
    comparisons = studies.compare_arms(cells, "ref")
    arm_rows = tables.arm_table(summary, comparisons, "test", {}).splitlines()
    result_rows = tables.results_markdown(summary, comparisons, {"arm": "arm"}, [], [], "test").splitlines()
    # the MDE at alpha / 2 (two tests in the family); the TOST beside the verdict
    clear = ("| +0.103 [+0.089, +0.118] | 0.002 | 0.027 | helps (+0.103, p_adj=0.002); TOST: equivalence not shown "
             "(90% [+0.094, +0.113]) |")
    assert arm_rows[3].endswith(clear) and result_rows[3].endswith(clear)
    assert "| reference |" in arm_rows[2] and "| reference |" in result_rows[2]
    lines = tables.comparison_lines(summary, comparisons, "ref")
    assert lines[0] == "ref reaches 0.700 (95% CI 0.675–0.725) over 3 replicate(s)."
    assert lines[1] == "- clear: +0.103 [+0.089, +0.118]: helps (+0.103, p_adj=0.002)"
    assert lines[-1] == ("1 of 2 arm(s) beat ref (Holm-adjusted p < 0.05), 0 lost to it, 1 could not be told apart "
                         "from it at this size.")


def test_study_parameters_are_validated_with_a_clear_message():
    with pytest.raises(ConfigError, match="'study.quality.noise_levels' every value must be in \\[0, 1\\)"):
        load_config(None, {"study.quality.noise_levels": [0.1, 1.0]})
    with pytest.raises(ConfigError, match="'study.few_shot.k_values' every value must be ≥ 1 or null"):
        load_config(None, {"study": {"few_shot": {"k_values": [0, 8]}}})
    config = load_config(None, {"study.few_shot.k_values": [8, None]})
    assert studies.few_shot.few_shot_params(config).k_values == [8, None]


# --- each study on the tiny model -----------------------------------------------------------------------------------

def test_transfer_matrix_trains_each_domain_per_seed_and_tests_on_every_domain(blitzer):
    config, _ = blitzer
    result = studies.transfer_matrix(config, ["books", "electronics"])
    assert len(result.cells) == 2 * 2 * 2  # seeds × train domains × test domains
    matrix = result.extra["matrix"].set_index("train_domain")
    assert list(matrix.index) == list(matrix.columns) == ["books", "electronics"]
    assert result.extra["loss"].set_index("train_domain").loc["books", "books"] == 0
    assert result.comparisons.empty and "books | **" in result.table_markdown  # no arms: the matrix is the table
    for _, row in result.summary.iterrows():
        pair = result.cells[(result.cells["train_domain"] == row["train_domain"])
                            & (result.cells["test_domain"] == row["test_domain"])]
        assert row["ci_low"] == pytest.approx(metrics.seed_summary(pair["accuracy"].tolist())["ci_low"])
    assert (runs.run_folder(config).figures / "transfer_matrix.png").is_file()
    assert "2 replicate(s) (seeds 1, 2)" in result.reading  # seed-only replicates named as such


def test_few_shot_study_returns_one_cell_per_k_arm_and_seed_with_seed_intervals(blitzer):
    config, _ = blitzer
    result = studies.few_shot_study(config.replace(study={"few_shot": {"k_values": [4], "strategies": ["target_only", "uniform"]}}))
    assert sorted(zip(result.cells["seed"], result.cells["arm"])) == [
        (1, "target_only"), (1, "uniform"), (2, "target_only"), (2, "uniform")]
    assert set(result.cells["n_test"]) == {6}  # the target's share of 24 stratified test rows
    assert {"accuracy_books", "accuracy_dvd", f"accuracy_{TARGET}"} <= set(result.cells.columns)
    _assert_summary_is_seed_summary_of_cells(result, ["k_label", "arm"])
    assert list(result.comparisons["arm"]) == ["uniform"]
    _assert_study_recorded(config, result, "few_shot_curves.png")


def test_agreement_study_measures_on_unanimous_test_rows_with_nested_arms(blitzer):
    config, _ = blitzer
    result = studies.agreement_study(config.replace(study={"quality": {"agreement_levels": [1.0, 0.5]}}))
    assert sorted(set(result.cells["arm"])) == ["≥100%", "≥50%"] and sorted(set(result.cells["seed"])) == [1, 2]
    wide = result.cells[result.cells["arm"] == "≥50%"]
    assert set(wide["n_train"]) == {config.max_train_samples}
    assert (result.cells["accuracy"] == result.cells["accuracy_100%"]).all()
    _assert_summary_is_seed_summary_of_cells(result, ["arm"])
    _assert_study_recorded(config, result, "quality_agreement.png")


def test_helpfulness_study_trains_equal_sized_arms(blitzer):
    config, _ = blitzer
    result = studies.helpfulness_study(config)
    assert list(result.summary["arm"]) == ["high", "high+low", "low", "unrated"]
    assert set(result.cells["n_train"]) == {config.max_train_samples} and len(result.cells) == 8
    _assert_summary_is_seed_summary_of_cells(result, ["arm"])
    _assert_study_recorded(config, result, "quality_helpfulness.png")


def test_label_noise_study_compares_noise_levels_with_target_only(blitzer):
    config, _ = blitzer
    result = studies.label_noise_study(config.replace(study={"quality": {"noise_levels": [0.0, 0.3]}}, few_shot_k=4,
                                                      mixing_strategy="uniform"))
    assert list(result.summary["arm"]) == ["noise 0%", "noise 30%", "target_only"]
    assert len(result.cells) == 3 * 2
    _assert_summary_is_seed_summary_of_cells(result, ["arm"])
    assert set(result.comparisons["arm"]) == {"noise 0%", "noise 30%"}
    _assert_study_recorded(config, result, "quality_label_noise.png")


def test_time_study_trains_older_mixed_and_contemporaneous_arms_of_equal_size(blitzer):
    config, _ = blitzer
    result = studies.time_study(config)
    assert list(result.summary["arm"]) == ["older", "mixed", "contemporaneous"]
    assert set(result.cells["n_train"]) == {config.max_train_samples}
    assert set(result.cells["n_test"]) == {config.max_test_samples}
    _assert_summary_is_seed_summary_of_cells(result, ["arm"])
    _assert_study_recorded(config, result, "time_staleness.png")


# --- each study's params file through the runner --------------------------------------------------------------------


# --- paired replicates: split seeds × seeds, additive few-shot arms, anchors ------------------------------------------

def test_compare_arms_pairs_cells_on_split_seed_and_seed_as_paired_t_does():
    from otherdata_utils import stats
    replicates = [(split, seed) for split in (1, 2, 3) for seed in (7, 8)]
    reference = [0.70, 0.72, 0.65, 0.69, 0.74, 0.71]
    arm = [0.73, 0.71, 0.70, 0.72, 0.75, 0.76]
    rows = [{"split_seed": split, "seed": seed, "arm": name, "accuracy": value}
            for name, values in (("ref", reference), ("more", arm))
            for (split, seed), value in zip(replicates, values)]
    cells = pd.DataFrame(rows).sample(frac=1, random_state=0)  # row order must not matter: pairs are by key
    table = studies.compare_arms(cells, "ref")
    expected = stats.paired_t(reference, arm)
    row = table.iloc[0]
    assert row["arm"] == "more" and row["n_replicates"] == 6
    assert row["delta"] == pytest.approx(expected.delta) and row["p"] == pytest.approx(expected.p)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    assert row["mde"] == pytest.approx(stats.minimum_detectable_effect(expected.sd_diff, 6))
    assert row["interval_covers"] == "replicates" and row["verdict"].startswith("helps")
    # pairing on the seed alone would merge the three splits: it is refused, not silently averaged
    with pytest.raises(ValueError, match="several rows for one arm and replicate"):
        stats.compare_paired(cells, "ref", "arm", "accuracy", ["seed"])


def test_compare_arms_adjusts_p_with_holm_across_every_k():
    rows = [{"split_seed": s, "seed": 1, "arm": arm, "k_label": k, "accuracy": 0.7 + bump + 0.01 * (s % 3)}
            for k in ("4", "8") for s in range(1, 6)
            for arm, bump in (("target_only", 0.0), ("concat", 0.02 + 0.005 * (s % 2)))]
    table = studies.compare_arms(pd.DataFrame(rows), "target_only", within=["k_label"])
    assert list(table["k_label"]) == ["4", "8"]
    assert list(table["p_holm"]) == pytest.approx([2 * p for p in table["p"]])


@pytest.fixture(scope="module")
def uci_few_shot(tmp_path_factory, packaged_data_dir):
    """UCI sentences (target yelp) prepared once; a few-shot study of 2 split seeds × 1 seed with the probe."""
    config = load_config(None, {**TINY, "sources": ["uci_sentences"], "target_domain": "yelp",
                                "data_dir": str(packaged_data_dir), "max_train_samples": 24, "max_test_samples": 30,
                                "study.few_shot.k_values": [4],
                                "study.few_shot.strategies": ["target_only", "concat", "uniform"],
                                "replicates": {"split_seeds": [3, 4], "seeds": [1]}, "study.few_shot.anchors": ["probe"],
                                "output_dir": str(tmp_path_factory.mktemp("runs") / "uci_few_shot")})
    prepared = pipeline.prepare_data(config).dataset
    return config, prepared, studies.few_shot_study(config)


def test_every_few_shot_arm_of_a_split_keeps_exactly_the_splits_target_rows(uci_few_shot):
    config, prepared, _ = uci_few_shot
    splits = studies.few_shot_splits(config, prepared["train"])
    cells = studies.few_shot_cells(config, prepared["train"], prepared["validation"])
    assert [split.split_seed for split in splits] == [3, 4]
    assert _ids(splits[0].target) != _ids(splits[1].target)
    for split in splits:
        assert len(_ids(split.target)) == 8 and set(_col(split.target, "domain")) == {"yelp"}
        arms = [cell for cell in cells if cell.split_seed == split.split_seed]
        assert [cell.arm for cell in arms] == ["target_only", "concat", "uniform"]
        for cell in arms:
            assert _ids(studies.domain_rows(cell.train, "yelp")) == _ids(split.target), cell.arm
            assert len(cell.train) == config.max_train_samples  # equal steps: every arm as many rows
        others = {cell.arm: _ids(cell.train) - _ids(split.target) for cell in arms}
        assert others["target_only"] == set() and others["concat"] == _ids(split.other)
        assert others["uniform"] <= _ids(split.other) and others["uniform"]


def test_equal_target_visits_shows_each_target_row_once_and_adds_other_rows(uci_few_shot):
    config, prepared, _ = uci_few_shot
    config = config.replace(study={"few_shot": {"steps": "equal_target_visits"}})
    for cell in studies.few_shot_cells(config, prepared["train"], prepared["validation"]):
        target = studies.domain_rows(cell.train, "yelp")
        assert len(target) == len(_ids(target)) == 8, cell.arm
        assert len(cell.train) == {"target_only": 8, "concat": 24, "uniform": 24}[cell.arm]


def test_few_shot_study_pairs_arms_and_the_probe_on_the_same_rows_with_paired_columns(uci_few_shot):
    config, _, result = uci_few_shot
    cells = result.cells
    assert sorted(set(cells["arm"])) == ["concat", "probe", "target_only", "uniform"]
    assert len(cells) == 4 * 2 and set(zip(cells["split_seed"], cells["seed"])) == {(3, 1), (4, 1)}
    assert cells["test_rows"].nunique() == 1 and cells["correct"].str.len().nunique() == 1
    for _, split in cells.groupby("split_seed"):
        assert split["target_ids"].nunique() == 1 and set(split["target_unique"]) == {8}
    probe = cells[cells["arm"] == "probe"]
    assert set(probe["n_train"]) == {8} and set(probe["other_rows"]) == {0}
    for column in ("n_replicates", "delta", "ci_low", "ci_high", "interval_covers", "p_holm", "mde", "verdict"):
        assert column in result.comparisons.columns
    assert sorted(result.comparisons["arm"]) == ["concat", "probe", "uniform"]
    assert set(result.comparisons["n_replicates"]) == {2}
    assert "p_adj (Holm, per family)" in result.table_markdown and "MDE (α/m)" in result.table_markdown
    # the cells' correctness covers all 30 test rows, the accuracy the target's 10: the interval over replicates
    assert set(result.comparisons["interval_covers"]) == {"replicates"}
    assert result.comparisons.set_index("arm").loc["probe", "family"] == "anchors"
    assert "replicates" in result.reading
    rows = studies.compare_rows(cells, "target_only", within=["k_label"])
    assert set(rows["interval_covers"]) == {"replicates + test rows"} and set(rows["n_rows"]) == {2 * 30}
    _assert_study_recorded(config, result, "few_shot_curves.png")
    assert (result.folder / "correct.csv").is_file() and "correct" not in pd.read_csv(result.folder / "cells.csv")
