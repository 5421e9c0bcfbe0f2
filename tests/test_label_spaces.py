"""Other data with another label space: sources mapped into the target's classes, the error for one that fits
none, and intermediate-task training (STILTs) before the target's fine-tuning."""
from collections import Counter

import pytest

from otherdata_utils.config import Config, ConfigError, SourceSpec
from otherdata_utils.data import DataError, load_data, load_intermediate_data, load_source

BINARY_INTO_THREE_WAY = {"neg": "negative", "pos": "positive"}


def test_binary_source_maps_into_the_three_way_target_keeping_its_texts_and_adding_no_neutral(data_dir):
    config = Config(sources=["financial_phrasebank:allagree",
                             SourceSpec(name="uci_sentences:yelp", label_mapping=BINARY_INTO_THREE_WAY)],
                    data_dir=str(data_dir))
    dsd = load_data(config)
    assert dsd["train"].features["label"].names == ["negative", "neutral", "positive"]
    own = load_source("uci_sentences:yelp", data_dir)
    for split in ("train", "validation", "test"):
        rows = dsd[split].filter(lambda row: row["source"] == "uci_sentences")
        expected = {id_: (text, ["negative", "positive"][label])
                    for id_, text, label in zip(own[split]["id"], own[split]["text"], own[split]["label"])}
        mapped = {id_: (text, "negative neutral positive".split()[label])
                  for id_, text, label in zip(rows["id"], rows["text"], rows["label"])}
        assert mapped == expected
    yelp_labels = Counter(dsd["train"].filter(lambda row: row["source"] == "uci_sentences")["label"])
    assert set(yelp_labels) == {0, 2}  # neutral comes from the target only
    assert sum(yelp_labels.values()) == 700
    finance_labels = Counter(dsd["train"].filter(lambda row: row["source"] == "financial_phrasebank")["label"])
    assert set(finance_labels) == {0, 1, 2}


def test_a_class_mapped_to_null_drops_its_rows(data_dir):
    config = Config(sources=["uci_sentences:yelp",
                             SourceSpec(name="xlmt_tweets:english",
                                        label_mapping={"negative": "neg", "neutral": None, "positive": "pos"})],
                    data_dir=str(data_dir))
    dsd = load_data(config)
    tweets = dsd["test"].filter(lambda row: row["source"] == "xlmt_tweets")
    # 870 balanced test tweets: 290 per class, the neutral third dropped
    assert Counter(tweets["label"]) == {0: 290, 1: 290}


@pytest.mark.parametrize("mapping, message", [
    ({"negative": "negative", "pos": "positive"}, r"label_mapping names \['negative'\], which are not its classes; "
                                                  r"its classes are \['neg', 'pos'\]"),
    ({"neg": "negative"}, r"label_mapping leaves out its class\(es\) \['pos'\]; map each to one of the target's "
                          r"classes \['negative', 'neutral', 'positive'\], or to null"),
    ({"neg": "negatif", "pos": "positive"}, r"label_mapping maps to \['negatif'\], which are not target classes"),
])
def test_a_label_mapping_that_does_not_fit_names_the_source_and_both_label_spaces(data_dir, mapping, message):
    config = Config(sources=["financial_phrasebank:allagree",
                             SourceSpec(name="uci_sentences:yelp", label_mapping=mapping)], data_dir=str(data_dir))
    with pytest.raises(DataError, match=r"source 'uci_sentences:yelp': " + message):
        load_data(config)


def test_config_refuses_a_source_both_mapped_and_intermediate_and_sources_without_a_target():
    with pytest.raises(ConfigError, match="source 'sst2' sets both label_mapping and intermediate"):
        Config.from_params({"sources": ["uci_sentences", {"name": "sst2", "intermediate": True,
                                                          "label_mapping": BINARY_INTO_THREE_WAY}]})
    with pytest.raises(ConfigError, match="no source holds the target's classes"):
        Config.from_params({"sources": [{"name": "sst2", "intermediate": True}]})


def test_intermediate_sources_stay_out_of_the_target_data_and_load_in_their_own_classes(data_dir):
    config = Config(sources=["uci_sentences:yelp", SourceSpec(name="xlmt_tweets:english", intermediate=True)],
                    data_dir=str(data_dir), max_eval_samples=60)
    assert set(load_data(config)["train"]["source"]) == {"uci_sentences"}
    intermediate = load_intermediate_data(config)
    assert intermediate["train"].features["label"].names == ["negative", "neutral", "positive"]
    assert (len(intermediate["train"]), len(intermediate["validation"])) == (1839, 60)
    assert load_intermediate_data(config.replace(sources=["uci_sentences:yelp"])) is None
