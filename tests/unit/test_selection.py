"""Selection of other rows on toy texts: DSIR's log weights and Gumbel-top-k, budgets and seeds, the config step,
the report and the config's errors (no data, no model)."""
import json
import math

import numpy as np
import pytest
from datasets import Dataset

from otherdata_utils import selection
from otherdata_utils.config import Config, ConfigError, load_config
from otherdata_utils.runs import RunFolder

KITCHEN = ["the chef knife stays sharp in the kitchen", "this blender crushes ice for smoothies",
           "the nonstick pan cleans easily after cooking", "great coffee maker brews hot coffee fast"]
ON_TARGET = [f"{text} and the {extra} works" for text in KITCHEN for extra in ("pan", "knife", "blender")]
OFF_TARGET = [f"lol {team} won the game tonight #{team} @fan{i}" for i, team in
              enumerate(["sox", "cubs", "mets", "jets", "nets", "bulls", "bears", "kings", "suns", "heat", "magic",
                         "jazz"])]


def candidates() -> Dataset:
    texts = OFF_TARGET + ON_TARGET  # off-target first, so order alone cannot explain a choice
    return Dataset.from_dict({"text": texts, "domain": ["tweets"] * len(OFF_TARGET) + ["reviews"] * len(ON_TARGET),
                              "source": ["tw"] * len(OFF_TARGET) + ["rv"] * len(ON_TARGET)})


def test_importance_takes_the_rows_sharing_the_target_vocabulary_first():
    pool = candidates()
    chosen = selection.select_other_rows(KITCHEN, pool, "importance", 12, seed=0)
    assert selection.chosen_share(chosen, "reviews") == 1.0
    assert chosen.rows["domain"] == ["reviews"] * 12
    weights = chosen.scores
    assert weights[len(OFF_TARGET):].min() > weights[:len(OFF_TARGET)].max()


def test_importance_log_weight_is_counts_dot_log_probability_ratio():
    # one target text "apple pie": unigrams apple, pie and the bigram "apple pie", each p_target = 1/3;
    # the pool adds "zebra", so each of the four n-grams has p_pool = 1/4
    assert len(set(selection.ngram_counts(["apple pie zebra"]).indices)) == 5  # 5 n-grams, no bucket shared
    raw = selection.importance_log_weights(["apple pie"], ["apple pie", "zebra"], length_normalised=False)
    eps = selection.PROBABILITY_FLOOR
    expected = [3 * (math.log(1 / 3 + eps) - math.log(1 / 4 + eps)), math.log(eps) - math.log(1 / 4 + eps)]
    assert raw == pytest.approx(expected, rel=1e-9)
    # normalised to the pool's mean length (2 n-grams): × 2/3 for the 3-gram row, × 2 for the 1-gram row
    normalised = selection.importance_log_weights(["apple pie"], ["apple pie", "zebra"])
    assert normalised == pytest.approx([expected[0] * 2 / 3, expected[1] * 2], rel=1e-9)


def test_gumbel_top_k_draws_distinct_rows_in_proportion_to_their_weights():
    rng = np.random.default_rng(0)
    firsts = [int(selection.gumbel_top_k(np.log([3.0, 1.0]), 1, rng)[0]) for _ in range(4000)]
    assert firsts.count(0) / 4000 == pytest.approx(0.75, abs=0.03)
    drawn = selection.gumbel_top_k(np.zeros(10), 10, np.random.default_rng(1))
    assert sorted(drawn.tolist()) == list(range(10))
    assert len(selection.gumbel_top_k(np.zeros(3), 5, np.random.default_rng(1))) == 3


def test_random_selection_is_seeded_and_keeps_candidate_order():
    pool = candidates()
    first = selection.select_other_rows(KITCHEN, pool, "random", 8, seed=3)
    again = selection.select_other_rows(KITCHEN, pool, "random", 8, seed=3)
    other = selection.select_other_rows(KITCHEN, pool, "random", 8, seed=4)
    assert first.indices == again.indices != other.indices
    assert first.indices == sorted(first.indices) and len(set(first.indices)) == 8
    assert first.rows["text"] == [pool["text"][i] for i in first.indices]
    assert np.isnan(first.scores).all()


def test_a_budget_above_the_candidates_keeps_them_all_and_all_takes_no_budget():
    pool = candidates()
    for method in ("random", "importance"):
        assert selection.select_other_rows(KITCHEN, pool, method, 1000, seed=0).indices == list(range(len(pool)))
    assert selection.select_other_rows(KITCHEN, pool, "all", None, seed=0).indices == list(range(len(pool)))
    with pytest.raises(ValueError, match="other_selection 'all' keeps every candidate"):
        selection.select_other_rows(KITCHEN, pool, "all", 5, seed=0)
    with pytest.raises(ValueError, match="other_selection 'importance' needs other_rows"):
        selection.select_other_rows(KITCHEN, pool, "importance", None, seed=0)
    with pytest.raises(ValueError, match="needs an encoder"):
        selection.select_other_rows(KITCHEN, pool, "similarity", 4, seed=0)


def test_knn_selection_takes_each_target_rows_nearest_before_any_second_neighbour():
    targets = np.array([[1.0, 0.0], [0.0, 1.0]])
    # candidate 0 and 1 are near target 0; candidate 2 is the only one near target 1, if far from it
    pool = np.array([[1.0, 0.0], [0.99, 0.14], [0.6, 0.8], [-1.0, 0.0]])
    chosen, best, depth = selection.knn_selection(targets, pool / np.linalg.norm(pool, axis=1, keepdims=True), 2)
    assert sorted(chosen.tolist()) == [0, 2] and depth == 1
    assert best[3] == pytest.approx(0.0, abs=1e-9)


def training_rows() -> Dataset:
    pool = candidates()
    texts = KITCHEN * 2 + list(pool["text"])
    domains = ["kitchen"] * 8 + list(pool["domain"])
    return Dataset.from_dict({"id": [f"r{i}" for i in range(len(texts))], "text": texts, "domain": domains,
                              "source": ["k"] * 8 + list(pool["source"]),
                              "label": [0, 1] * 4 + [i % 2 for i in range(len(pool))]})


def test_the_config_step_keeps_every_target_row_and_cuts_the_others_to_the_budget():
    train = training_rows()
    config = Config(target_domain="kitchen", other_selection="importance", other_rows=6, seed=5)
    kept, chosen = selection.select_for_config(train, config)
    assert kept["domain"].count("kitchen") == 8
    assert [d for d in kept["domain"] if d != "kitchen"] == ["reviews"] * 6
    assert kept["id"] == sorted(kept["id"], key=lambda row_id: int(row_id[1:]))  # training order kept
    unchanged, none = selection.select_for_config(train, Config(target_domain="kitchen"))
    assert unchanged is train and none is None


def test_the_config_step_reads_unlabelled_target_text_from_a_file(tmp_path):
    lines = tmp_path / "target.txt"
    lines.write_text("\n".join(OFF_TARGET[:4]) + "\n\n")
    table = tmp_path / "target.csv"
    table.write_text("id,text\n" + "\n".join(f"{i},{text}" for i, text in enumerate(OFF_TARGET[:4])) + "\n")
    assert selection.read_target_texts(lines) == selection.read_target_texts(table) == OFF_TARGET[:4]
    config = Config(other_selection="importance", other_rows=6, selection_target_texts=str(table))
    kept, chosen = selection.select_for_config(training_rows(), config)
    assert chosen.target_rows == 4 and len(chosen.candidates) == len(training_rows())  # no target domain: all
    assert selection.chosen_share(chosen, "tweets") == 1.0
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence\nhello\n")
    with pytest.raises(ValueError, match=r"selection_target_texts .*bad.csv.*no 'text' column"):
        selection.read_target_texts(bad)
    with pytest.raises(ValueError, match=r"selection_target_texts: .*missing.txt: input file not found"):
        selection.read_target_texts(tmp_path / "missing.txt")


def test_the_report_counts_groups_summarises_scores_and_is_written_into_the_run_folder(tmp_path):
    chosen = selection.select_other_rows(KITCHEN, candidates(), "importance", 14, seed=0)
    report = chosen.report(examples=3)
    assert report["counts"]["domain"] == [
        {"domain": "reviews", "available": 12, "chosen": 12, "share_of_chosen": 12 / 14, "kept": 1.0},
        {"domain": "tweets", "available": 12, "chosen": 2, "share_of_chosen": 2 / 14, "kept": 2 / 12}]
    assert report["scores"]["chosen"]["mean"] > report["scores"]["rejected"]["max"]
    assert [row["domain"] for row in report["top"]] == ["reviews"] * 3
    assert [row["domain"] for row in report["bottom"]] == ["tweets"] * 3
    paths = RunFolder(tmp_path / "run")
    selection.write_selection_report(chosen, paths)
    assert json.loads(paths.selection_report.read_text())["chosen"] == 14
    assert "| reviews | 12 | 12 | 85.7% | 100.0% |" in paths.selection_markdown.read_text()
    assert paths.figure("selection").stat().st_size > 1000
    selection.write_selection_report(None, paths)
    assert not paths.selection_report.exists() and not paths.figure("selection").exists()


@pytest.mark.parametrize(("params", "expected"), [
    ({"other_selection": "best", "other_rows": 3}, "'other_selection' must be one of 'all', 'random'"),
    ({"other_selection": "random", "other_rows": 0}, "'other_rows' must be ≥ 1"),
    ({"other_selection": "importance", "target_domain": "kitchen"}, "other_selection 'importance' needs other_rows"),
    ({"other_rows": 256}, "other_rows set, but other_selection is 'all'"),
    ({"selection_target_texts": "t.txt"}, "selection_target_texts set, but other_selection is 'all'"),
    ({"other_selection": "similarity", "other_rows": 3}, "set target_domain (its training rows are the target"),
])
def test_selection_parameters_fail_with_one_error_naming_the_parameter(params, expected):
    with pytest.raises(ConfigError) as error:
        Config.from_params(params)
    assert expected in str(error.value)


def test_a_relative_target_text_file_is_found_beside_the_params_file(tmp_path, monkeypatch):
    (tmp_path / "texts.txt").write_text("a kitchen review\n")
    params = tmp_path / "run.yaml"
    params.write_text("target_domain: kitchen\nother_selection: importance\nother_rows: 10\n"
                      "selection_target_texts: texts.txt\n")
    monkeypatch.chdir(tmp_path.parent)
    assert load_config(params).selection_target_texts == str((tmp_path / "texts.txt").resolve())
