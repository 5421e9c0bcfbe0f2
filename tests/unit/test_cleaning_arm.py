"""The quality study's cleaning arm on in-memory rows (no model: a stand-in encoder embeds each row by its TRUE
label, so confident learning can find the flips): the noisy arm's rows less the flagged other rows, the target's rows
untouched, the flags scored against the true flips, and the plan names the arm."""
import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from otherdata_utils.config import ConfigError, load_config
from otherdata_utils.studies import quality


class TrueLabelEncoder:
    """Embeds a row near its true class's centre (the true label is the text's first word)."""

    def embed(self, texts):
        rng = np.random.default_rng(0)
        centres = {"neg": np.array([-3.0, 0.0]), "pos": np.array([3.0, 0.0])}
        return np.stack([centres[text.split()[0]] + rng.normal(size=2) for text in texts])


def _rows() -> Dataset:
    rows = [(f"{domain}-{label}-{i}", f"{('neg', 'pos')[label]} {domain} {i}", label, domain, "s")
            for domain in ("electronics", "books", "dvd") for label in (0, 1) for i in range(60)]
    features = Features({"id": Value("string"), "text": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"]), "domain": Value("string"),
                         "source": Value("string")})
    return Dataset.from_dict({name: [row[i] for row in rows] for i, name in enumerate(features)}, features=features)


CONFIG = {"target_domain": "electronics", "study.quality.noise_levels": [0.0, 0.3], "study.quality.cleaning": [0.3]}


def test_the_cleaned_arm_drops_the_flagged_other_rows_and_scores_the_flags(monkeypatch):
    monkeypatch.setattr(quality, "encoder_for", lambda config: TrueLabelEncoder())
    config = load_config(None, CONFIG)
    train = _rows()
    kept, facts = quality.cleaned_rows(config, train, 0.3, seed=1, target="electronics")
    noisy = quality.inject_label_noise(train, 0.3, seed=1, keep_domain="electronics", mark_flips=True)
    flipped = {row_id for row_id, flip in zip(noisy["id"], noisy["label_flipped"]) if flip}
    assert facts["flipped"] == len(flipped) == 72  # 30% of the 240 other rows
    assert facts["flag_recall"] >= 0.9 and facts["flag_precision"] >= 0.9  # the blobs separate: most flips found
    dropped = set(train["id"]) - set(kept["id"])
    assert len(dropped) == facts["flagged"] and all(not row_id.startswith("electronics") for row_id in dropped)
    assert "label_flipped" not in kept.column_names
    labels = dict(zip(noisy["id"], noisy["label"]))
    assert all(labels[row_id] == label for row_id, label in zip(kept["id"], kept["label"]))  # the noisy labels kept


def test_cleaning_levels_must_be_noise_levels_and_the_plan_names_the_arm():
    with pytest.raises(ConfigError, match="cleaning"):
        load_config(None, {**CONFIG, "study.quality.cleaning": [0.2]})
    plan = quality.plan(load_config(None, CONFIG))
    assert "noise 30%, flagged dropped" in plan.arms and plan.arms[-1] == "target_only"


def test_the_cleaning_table_pairs_cleaned_with_noisy_and_says_what_share_of_the_cost_it_won_back():
    import pandas as pd
    from otherdata_utils.studies.engine import compare_arms

    rows = []
    for seed in (1, 2, 3, 4, 5):
        rows += [{"arm": "target_only", "seed": seed, "accuracy": 0.80 + seed / 1000},
                 {"arm": "noise 30%", "seed": seed, "accuracy": 0.60 + seed / 500},
                 {"arm": "noise 30%, flagged dropped", "seed": seed, "accuracy": 0.75 + seed / 400, "flagged": 70.0,
                  "flag_precision": 0.5, "flag_recall": 0.6}]
    results = pd.DataFrame(rows)
    table = quality.cleaning_comparisons(results, [0.3])
    assert list(table["reference"]) == ["noise 30%"] and table["delta"].iloc[0] == pytest.approx(0.1515)
    sentence = quality.cleaning_sentence(results, table, compare_arms(results, "target_only"))
    assert "flagged 70 other rows a seed (precision 0.500, recall 0.600" in sentence
    assert "won back 77% of the noise's cost (-0.197 against target-only)" in sentence
