"""Model resolution, truncation strategies, tokenisation cache, length-grouped batches and dynamic padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from otherdata_utils import modeling
from otherdata_utils.config import Config

LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                  quiet=True, max_seq_length=64)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def uci_rows(uci_sentences) -> Dataset:
    """The 2,100 UCI training sentences."""
    return uci_sentences["train"]


@pytest.fixture(scope="module")
def uci_lengths(uci_rows, tokenizer, config: Config) -> np.ndarray:
    """Token counts of the 2,100 UCI training sentences."""
    return np.asarray(modeling.tokenize_splits(DatasetDict(train=uci_rows), tokenizer, config)["train"]["length"])


# --- model resolution


def test_default_resolves_to_the_packaged_minilm_and_loads_with_a_new_head():
    path = Path(modeling.resolve_model_path("default", Path("unused")))
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    model, tokenizer = modeling.load_model_and_tokenizer(Config(model_name_or_path="default", quiet=True),
                                                         ["negative", "neutral", "positive"])
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (384, 6)
    assert model.classifier.out_features == 3
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert tokenizer("Hello")["input_ids"][0] == tokenizer.cls_token_id


def test_tiny_random_is_built_once_and_reused(tmp_path):
    first = Path(modeling.resolve_model_path("tiny-random", tmp_path))
    built_at = (first / "model.safetensors").stat().st_mtime_ns
    second = Path(modeling.resolve_model_path("tiny-random", tmp_path))
    assert first == second == tmp_path / "tiny-random-bert"
    assert (second / "model.safetensors").stat().st_mtime_ns == built_at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-random-bert"]  # no temporary folders left
    model = AutoModelForSequenceClassification.from_pretrained(first)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (128, 2)


def test_describe_model_reports_sizes_and_counts_parameters_without_loading(tiny_model_dir):
    described = modeling.describe_model(str(tiny_model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    assert described["parameters"] == sum(p.numel() for p in model.parameters())
    assert (described["model_type"], described["num_hidden_layers"], described["hidden_size"]) == ("bert", 2, 128)
    assert modeling.describe_model(str(modeling.packaged_model_path()))["parameters"] == 22_713_216


def test_a_saved_two_label_model_loads_with_three_labels(tiny_model_dir):
    model, _ = modeling.load_model_and_tokenizer(
        Config(model_name_or_path=str(tiny_model_dir), quiet=True), ["a", "b", "c"])
    assert model.classifier.out_features == 3


def test_local_folders_and_hub_ids_resolve_and_a_missing_path_is_named(tiny_model_dir, tmp_path):
    assert modeling.resolve_model_path(str(tiny_model_dir), tmp_path) == str(tiny_model_dir.resolve())
    assert modeling.resolve_model_path("prajjwal1/bert-tiny", tmp_path) == "prajjwal1/bert-tiny"
    with pytest.raises(ValueError, match="model_name_or_path='./models/missing'.*no model folder"):
        modeling.resolve_model_path("./models/missing", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no config.json"):
        modeling.resolve_model_path(str(tmp_path / "empty"), tmp_path)


# --- tokenisation


@pytest.mark.parametrize("strategy", ["head", "tail", "head_tail"])
def test_truncation_keeps_the_right_tokens_between_special_tokens(strategy, uci_rows, tokenizer, config):
    chars = [len(text) for text in uci_rows["text"]]
    rows = uci_rows.select([int(np.argmax(chars)), int(np.argmin(chars))])
    whole = tokenizer(rows[0]["text"], add_special_tokens=False)["input_ids"]
    assert len(whole) > 30
    settings = config.replace(max_seq_length=16, truncation=strategy, head_tokens=4)
    kept = modeling.tokenize_splits(DatasetDict(test=rows), tokenizer, settings)["test"]
    expected = {"head": whole[:14], "tail": whole[-14:], "head_tail": whole[:4] + whole[-10:]}[strategy]
    assert kept[0]["input_ids"] == [tokenizer.cls_token_id, *expected, tokenizer.sep_token_id]
    assert kept[0]["length"] == 16 and kept[0]["attention_mask"] == [1] * 16
    short = tokenizer(rows[1]["text"])["input_ids"]
    assert kept[1]["input_ids"] == short  # short texts are never cut
    assert kept["id"] == rows["id"] and kept["labels"] == rows["label"]


def test_tokenisation_is_cached_and_reused_until_a_setting_changes(uci_rows, tokenizer, config, monkeypatch):
    splits = DatasetDict(train=uci_rows.select(range(300)))
    first = modeling.tokenize_splits(splits, tokenizer, config)["train"]

    def must_not_run(*args, **kwargs):
        raise AssertionError("tokenised again although the cache holds this split")

    with monkeypatch.context() as patched:
        patched.setattr(modeling, "encode_batch", must_not_run)
        again = modeling.tokenize_splits(splits, tokenizer, config)["train"]
    assert again.cache_files == first.cache_files and again._fingerprint == first._fingerprint
    assert again["input_ids"] == first["input_ids"]
    for changed in (config.replace(max_seq_length=32), config.replace(truncation="tail")):
        redone = modeling.tokenize_splits(splits, tokenizer, changed)["train"]
        assert redone.cache_files != first.cache_files


# --- batches


def padding_ratio(batches: list[list[int]], lengths: np.ndarray) -> float:
    """Share of pad tokens when every batch is padded to its longest example."""
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1 - sum(lengths[b].sum() for b in batches) / padded


def test_length_grouped_batches_hold_every_example_once_per_epoch(uci_lengths):
    sampler = modeling.LengthGroupedBatchSampler(uci_lengths, 16, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 132  # ceil(2100 / 16)
        assert sorted(i for batch in batches for i in batch) == list(range(2100))
        assert [len(b) for b in batches[:-1]] == [16] * 131  # accelerate's sharding drops a short batch not last
    dropping = modeling.LengthGroupedBatchSampler(uci_lengths, 16, seed=3, drop_last=True)
    assert len(list(dropping)) == len(dropping) == 131 and {len(b) for b in dropping} == {16}


def test_length_grouped_order_is_seeded_and_changes_each_epoch(uci_lengths):
    def order(seed: int, epoch: int) -> list[list[int]]:
        sampler = modeling.LengthGroupedBatchSampler(uci_lengths, 16, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(3, 0) == order(3, 0)
    assert order(3, 1) == order(3, 1)
    assert order(3, 0) != order(3, 1)
    assert order(3, 0) != order(4, 0)


def test_length_grouped_batches_pad_far_less_than_random_batches(uci_lengths):
    grouped = list(modeling.LengthGroupedBatchSampler(uci_lengths, 16, seed=0))
    random = list(modeling.RandomBatchSampler(len(uci_lengths), 16, seed=0))
    assert padding_ratio(random, uci_lengths) > 0.4
    assert padding_ratio(grouped, uci_lengths) < 0.05
    assert uci_lengths[grouped[0]].max() == uci_lengths.max()  # the longest batch first: out-of-memory shows early


def test_training_loader_pads_each_batch_to_its_own_longest_example(uci_rows, tokenizer, config):
    split = modeling.tokenize_splits(DatasetDict(train=uci_rows.select(range(200))), tokenizer, config)["train"]
    loader = modeling.make_dataloader(split, tokenizer, batch_size=16, shuffle=True, group_by_length=True, seed=0)
    loader.batch_sampler.set_epoch(0)
    lengths = np.asarray(split["length"])
    for indices, batch in zip(loader.batch_sampler, loader):
        assert set(batch) == {"input_ids", "attention_mask", "labels"}
        assert batch["input_ids"].shape == (len(indices), lengths[indices].max())
        assert batch["attention_mask"].sum(dim=1).tolist() == lengths[indices].tolist()
        assert batch["labels"].tolist() == [split[i]["labels"] for i in indices]


def test_evaluation_loader_goes_longest_first_and_says_which_rows_it_holds(uci_rows, tokenizer, config):
    split = modeling.tokenize_splits(DatasetDict(test=uci_rows.select(range(100))), tokenizer, config)["test"]
    loader = modeling.make_dataloader(split, tokenizer, batch_size=32, shuffle=False, group_by_length=True, seed=0)
    lengths = np.asarray(split["length"])
    assert sorted(loader.sampler) == list(range(100))
    assert lengths[loader.sampler].tolist() == sorted(lengths, reverse=True)
    widths = [batch["input_ids"].shape[1] for batch in loader]
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0]


# --- saving


def test_save_model_replaces_an_existing_folder_whole(tiny_model_dir, tmp_path):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    target = modeling.save_model(model, tokenizer, tmp_path / "model")
    with torch.no_grad():
        model.classifier.bias.fill_(0.5)
    modeling.save_model(model, tokenizer, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    reloaded = AutoModelForSequenceClassification.from_pretrained(target)
    assert reloaded.classifier.bias.tolist() == [0.5, 0.5]
    assert any(target.glob("*.safetensors")) and (target / "tokenizer.json").is_file()
