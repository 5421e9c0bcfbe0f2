"""Selection on real data: given Blitzer kitchen reviews as the target and Blitzer electronics reviews and English
tweets (XLM-T) as candidates in equal numbers, similarity (packaged MiniLM) and importance (DSIR) both take mostly
electronics, far above random's half; notebook 02's mixing step mixes only the rows selected."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, concatenate_datasets

from otherdata_utils import data, modeling, pipeline, preflight, selection
from otherdata_utils.config import load_config
from otherdata_utils.runs import run_folder

# Measured on these rows (2026-12-07): importance 78.8% electronics at 500 of 2,000 candidates (random 46.6%),
# similarity 75.5% at 200 of 600 (random 49.0%). On two other draws of 300 + 300 the per-target-row kNN took 71.5%
# and 72.5% (ranking by mean cosine 72.5%, 74%; by max cosine 79.5%, 86%): the rows are fixed here, the bound
# holds on every draw seen.
MIN_ELECTRONICS_SHARE = 0.70
MIN_GAIN_OVER_RANDOM = 0.20


def _rows(dataset: Dataset, n: int, seed: int) -> Dataset:
    picked = np.random.default_rng(seed).choice(len(dataset), size=n, replace=False)
    return dataset.select(sorted(int(i) for i in picked)).select_columns(["text", "domain", "source"])


@pytest.fixture(scope="module")
def kitchen_electronics_tweets(data_dir: Path) -> tuple[list[str], Dataset, Dataset]:
    """300 kitchen training reviews (the target texts) and the candidate pools: 1,000 + 1,000 and 300 + 300."""
    blitzer = data.load_source("blitzer_mds:kitchen,electronics", data_dir)["train"]
    tweets = data.load_source("xlmt_tweets:english", data_dir)["train"]
    domains = np.asarray(blitzer["domain"])
    kitchen = blitzer.select(np.flatnonzero(domains == "kitchen_&_housewares"))
    electronics = blitzer.select(np.flatnonzero(domains == "electronics"))
    target = list(_rows(kitchen, 300, seed=0)["text"])
    large = concatenate_datasets([_rows(electronics, 1000, seed=1), _rows(tweets, 1000, seed=2)])
    small = concatenate_datasets([_rows(electronics, 300, seed=3), _rows(tweets, 300, seed=4)])
    return target, large, small


def test_importance_takes_mostly_electronics_for_a_kitchen_target(kitchen_electronics_tweets):
    target, candidates, _ = kitchen_electronics_tweets
    chosen = selection.select_other_rows(target, candidates, "importance", 500, seed=0)
    random = selection.select_other_rows(target, candidates, "random", 500, seed=0)
    share, baseline = (selection.chosen_share(s, "electronics") for s in (chosen, random))
    print(f"importance: {share:.1%} electronics; random: {baseline:.1%}")
    assert share >= MIN_ELECTRONICS_SHARE
    assert share - baseline >= MIN_GAIN_OVER_RANDOM
    assert chosen.report()["scores"]["chosen"]["median"] > chosen.report()["scores"]["rejected"]["median"]


def test_similarity_takes_mostly_electronics_for_a_kitchen_target(kitchen_electronics_tweets):
    target, _, candidates = kitchen_electronics_tweets
    encoder = selection.FrozenEncoder(str(modeling.packaged_model_path()), max_length=128)
    chosen = selection.select_other_rows(target, candidates, "similarity", 200, seed=0, encoder=encoder)
    random = selection.select_other_rows(target, candidates, "random", 200, seed=0)
    share, baseline = (selection.chosen_share(s, "electronics") for s in (chosen, random))
    print(f"similarity: {share:.1%} electronics; random: {baseline:.1%}; k reached "
          f"{chosen.details['neighbours_per_target_row']}")
    assert share >= MIN_ELECTRONICS_SHARE
    assert share - baseline >= MIN_GAIN_OVER_RANDOM
    assert chosen.report()["top"][0]["domain"] == "electronics"


def test_the_mixing_step_mixes_only_the_selected_rows_and_writes_the_report(packaged_data_dir: Path,
                                                                               tmp_path: Path):
    """Notebook 02's step on the packaged UCI sentences and a user's own CSV: yelp the target, 150 of the amazon,
    imdb and CSV rows kept by importance, mixed by concat (every kept row once); under other_selection all the
    report is gone again."""
    own = tmp_path / "my_reviews.csv"
    own.write_text("text,label\n" + "".join(f"review {i}: the service at this place was {word},{label}\n"
                                            for i in range(40) for word, label in [("great" if i % 2 else "awful",
                                                                                     "pos" if i % 2 else "neg")]))
    config = load_config(None, {
        "sources": ["uci_sentences", {"path": str(own), "domain": "mine", "split": "train"}],
        "data_dir": str(packaged_data_dir), "target_domain": "yelp",
        "mixing_strategy": "concat", "other_selection": "importance", "other_rows": 150,
        "output_dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), "quiet": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UCI sentences repeat across splits: a leakage warning is expected
        prepared = pipeline.prepare_data(config).dataset
    built = pipeline.build_training_set(config)
    yelp_rows = prepared["train"]["domain"].count("yelp")
    domains = built.train["domain"]
    assert domains.count("yelp") == yelp_rows and len(domains) - yelp_rows == 150
    assert set(built.train["id"]) - set(prepared["train"]["id"]) == set()
    paths = run_folder(config)
    written = json.loads(paths.selection_report.read_text())
    assert written["chosen"] == 150 and written["candidates"] == len(prepared["train"]) - yelp_rows
    assert sum(row["chosen"] for row in written["counts"]["domain"]) == 150
    by_source = {row["source"]: row for row in written["counts"]["source"]}
    assert by_source["my_reviews.csv"]["available"] == 40 and set(by_source) == {"uci_sentences", "my_reviews.csv"}
    assert paths.figure("selection").is_file() and "## Selection of other rows" in paths.selection_markdown.read_text()
    everything = pipeline.build_training_set(config.replace(other_selection="all", other_rows=None))
    assert len(everything.train) == len(prepared["train"]) and everything.selection is None
    assert not paths.selection_report.exists()


def test_preflight_stops_on_a_target_text_file_it_cannot_read(packaged_data_dir: Path, tmp_path: Path):
    config = load_config(None, {
        "sources": ["uci_sentences"], "data_dir": str(packaged_data_dir), "target_domain": "yelp",
        "other_selection": "importance", "other_rows": 100, "selection_target_texts": str(tmp_path / "none.txt"),
        "output_dir": str(tmp_path / "run")})
    with pytest.raises(preflight.PreflightError, match=r"parameter selection_target_texts: .*none.txt: input file "
                                                       "not found"):
        preflight.check_data(config)
