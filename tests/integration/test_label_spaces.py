"""Other data with another label space: sources mapped into the target's classes, the error for one that fits
none, and intermediate-task training (STILTs) before the target's fine-tuning."""
import json
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from otherdata_utils import clean, pipeline, preflight, report
from otherdata_utils.config import Config, ConfigError, SourceSpec
from otherdata_utils.data import DataError, load_data, load_intermediate_data, load_source
from otherdata_utils.runs import run_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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


def test_pre_flight_stops_a_run_whose_source_has_other_classes_before_the_run_folder_is_touched(data_dir, tmp_path):
    config = Config(sources=["financial_phrasebank:allagree", "uci_sentences:yelp"], data_dir=str(data_dir),
                    output_dir=str(tmp_path / "run"))
    with pytest.raises(preflight.PreflightError, match=r"source 'uci_sentences:yelp' has classes \['neg', 'pos'\], "
                                                       r"but the target's classes .* are \['negative', 'neutral', "
                                                       r"'positive'\]: .*label_mapping: \{neg: negative, pos: "
                                                       r"positive\}.*intermediate: true"):
        preflight.check_data(config)
    assert not (tmp_path / "run").exists()


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


# --- intermediate-task training, then the target's fine-tuning from that encoder -----------------------------------

ENCODER_WEIGHT = "encoder.layer.0.attention.self.query.weight"


@pytest.fixture(scope="module")
def stilts_run(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
               finetuned_through_pipeline) -> Config:
    """A binary yelp target fine-tuned after 6 steps on 3-class English tweets (their own classes and head)."""
    run = Config(sources=["uci_sentences:yelp", SourceSpec(name="xlmt_tweets:english", intermediate=True)],
                 data_dir=str(data_dir), model_name_or_path=str(tiny_model_dir),
                 cache_dir=str(tmp_path_factory.mktemp("cache")), output_dir=str(tmp_path_factory.mktemp("runs") / "s"),
                 quiet=True, max_train_samples=100, max_eval_samples=30, max_test_samples=30, max_seq_length=32,
                 per_device_train_batch_size=8, max_steps=6, learning_rate=1e-3, save_strategy="no")
    return finetuned_through_pipeline(run)


def test_target_fine_tuning_starts_from_the_intermediate_encoder_with_a_fresh_head(stilts_run, tiny_model_dir):
    paths = run_folder(stilts_run)
    metrics = json.loads(paths.metrics.read_text())
    intermediate = metrics["intermediate"]
    assert intermediate["started_from"] == str(tiny_model_dir)
    assert intermediate["sources"] == ["xlmt_tweets:english"]
    assert intermediate["label_names"] == ["negative", "neutral", "positive"]
    assert intermediate["global_step"] == 6
    assert intermediate["leaked_into_target_evaluation"] == 0  # tweets and yelp reviews share no text
    assert metrics["train"]["started_from"] == intermediate["encoder"] == str(paths.intermediate)
    # The intermediate folder holds the encoder only: its 3-class head stayed behind, the target got a new one.
    encoder = load_file(paths.intermediate / "model.safetensors")
    assert not any(name.startswith("classifier") for name in encoder)
    base = load_file(tiny_model_dir / "model.safetensors")
    base_weight = next(value for name, value in base.items() if name.endswith(ENCODER_WEIGHT))
    assert not torch.equal(encoder[ENCODER_WEIGHT], base_weight)
    target = json.loads((paths.model / "config.json").read_text())
    assert target["id2label"] == {"0": "neg", "1": "pos"}
    assert load_file(paths.model / "model.safetensors")["classifier.weight"].shape[0] == 2
    assert "## Intermediate task\n\n- 6 fine-tuning steps from" in report.write_report(paths.root).read_text()


def test_intermediate_encoder_is_reused_for_the_same_inputs(stilts_run):
    paths = run_folder(stilts_run)
    made = (paths.intermediate / "model.safetensors").stat().st_mtime_ns
    target = pipeline.load_prepared(stilts_run)
    assert pipeline.train_intermediate(stilts_run, stilts_run.model_name_or_path, target) == paths.intermediate
    assert (paths.intermediate / "model.safetensors").stat().st_mtime_ns == made


def test_intermediate_texts_in_the_target_evaluation_rows_are_dropped(data_dir, tiny_model_dir, tmp_path):
    """An intermediate task whose file repeats 10 of the target's test sentences (as SST-2 repeats rt_polarity's
    snippets): the target's yardstick is not trained on in that stage either. One optimizer step: only the rows it
    trained on matter here."""
    run = Config(sources=["uci_sentences:yelp", SourceSpec(path=str(tmp_path / "tweets.jsonl"), intermediate=True,
                                                           label_names=["negative", "neutral", "positive"])],
                 data_dir=str(data_dir), model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"),
                 output_dir=str(tmp_path / "run"), quiet=True, max_seq_length=16, max_steps=1, eval_strategy="no",
                 save_strategy="no", load_best_model_at_end=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = pipeline.prepare_data(run).dataset
    tweets = load_source("xlmt_tweets:english", data_dir)["train"].select(range(60))
    rows = [{"text": text, "label": label} for text, label in zip(tweets["text"], tweets["label"])]
    rows += [{"text": text, "label": 1} for text in target["test"]["text"][:10]]
    (tmp_path / "tweets.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    pipeline.train_intermediate(run, run.model_name_or_path, target)
    intermediate = json.loads(run_folder(run).metrics.read_text())["intermediate"]
    cleaned, _ = clean.clean(load_intermediate_data(run), run)
    leaked = [text for text in cleaned["train"]["text"] if text in set(target["test"]["text"])]
    assert intermediate["leaked_into_target_evaluation"] == len(leaked) > 0
    assert intermediate["train_data"]["tweets.jsonl"]["rows"] == len(cleaned["train"]) - len(leaked)
