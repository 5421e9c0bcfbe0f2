"""Model-side studies: LoRA/AdaLoRA through the training loop and back out as a plain model, language arms and what
the English tokenizer reads, continued-pretraining texts, and each study's params file run end to end."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import DatasetDict
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)
from transformers import pipeline as hf_pipeline

from otherdata_utils import adapters, data, modeling, studies, train
from otherdata_utils.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
LABELS = ["neg", "pos"]
# The tiny random BERT (conftest): 2 layers of width 128.
LAYERS, HIDDEN = 2, 128


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lora_config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """LoRA on every linear layer of the tiny model: with a frozen random encoder, adapters on query and value
    alone barely move the loss in a few epochs."""
    return Config(
        model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), quiet=True,
        max_seq_length=64, learning_rate=1e-2, per_device_train_batch_size=16, num_train_epochs=6, logging_steps=1,
        eval_strategy="epoch", save_strategy="no", metric_for_best_model="loss", greater_is_better=False, seed=7,
        peft_method="lora", lora_r=16, lora_target_modules=["query", "key", "value", "dense"],
        mixed_precision="no",  # fp32: the merged folder and pipeline() (fp32) are compared with it row by row
    )


@pytest.fixture(scope="module")
def tokenized(uci_sentences: DatasetDict, lora_config: Config) -> DatasetDict:
    """200 training and 96 validation UCI sentences, tokenised."""
    _, tokenizer = modeling.load_model_and_tokenizer(lora_config.replace(peft_method="none"), LABELS)
    splits = DatasetDict(train=uci_sentences["train"].shuffle(seed=0).select(range(200)),
                         validation=uci_sentences["validation"].shuffle(seed=0).select(range(96)))
    return modeling.tokenize_splits(splits, tokenizer, lora_config)


def fit(config: Config, tokenized: DatasetDict, output_dir: Path, **kwargs):
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    result = train.train(config, model, tokenizer, tokenized, output_dir=output_dir, label_names=LABELS, **kwargs)
    return model, tokenizer, result


@pytest.fixture(scope="module")
def lora_trained(lora_config: Config, tokenized: DatasetDict, tmp_path_factory: pytest.TempPathFactory):
    return fit(lora_config, tokenized, tmp_path_factory.mktemp("lora"))


# --- PEFT -------------------------------------------------------------------------------------------------------------

def test_lora_trains_exactly_the_adapters_and_the_new_head(lora_config: Config) -> None:
    model, _ = modeling.load_model_and_tokenizer(lora_config.replace(lora_r=4, lora_target_modules=[]), ["a", "b", "c"])
    counts = adapters.parameter_counts(model)
    # peft's default for BERT adapts query and value (128 → 128): A is r × 128, B is 128 × r; the head is 128 × 3 + 3.
    lora_params = LAYERS * 2 * (4 * HIDDEN + HIDDEN * 4)
    assert counts["trainable_params"] == lora_params + HIDDEN * 3 + 3 == 4483
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or "classifier" in name for name in trainable)
    assert adapters.is_peft_model(model)


def test_lora_model_learns_and_training_restores_its_best_epoch(lora_trained, tokenized, lora_config) -> None:
    model, tokenizer, result = lora_trained
    losses = [row["loss"] for row in result.history if "loss" in row]
    assert len(losses) == 6 * 13
    assert np.mean(losses[-13:]) < np.mean(losses[:13]) - 0.04
    eval_losses = {row["step"]: row["eval_loss"] for row in result.history if "eval_loss" in row}
    assert result.best_step == min(eval_losses, key=eval_losses.get) != max(eval_losses)  # restoring matters
    assert (result.best_model_dir / adapters.ADAPTER_DIR / "adapter_model.safetensors").is_file()
    scores, _ = train.evaluate(model, tokenized["validation"], tokenizer, lora_config, LABELS)
    assert scores["loss"] == pytest.approx(eval_losses[result.best_step], abs=1e-5)


def test_lora_resumed_run_ends_like_an_uninterrupted_one(lora_config, tokenized, tmp_path) -> None:
    config = lora_config.replace(num_train_epochs=2, save_strategy="steps", save_steps=5)
    whole, _, whole_result = fit(config, tokenized, tmp_path / "whole")
    fit(config, tokenized, tmp_path / "resumed", stop_after_steps=7)
    assert (tmp_path / "resumed" / "checkpoints" / "step-7").is_dir()
    resumed, _, resumed_result = fit(config.replace(resume_from_checkpoint="auto"), tokenized, tmp_path / "resumed")
    assert resumed_result.global_step == whole_result.global_step == 26
    first, second = whole.state_dict(), resumed.state_dict()
    assert max((first[k] - second[k]).abs().max().item() for k in first) <= 1e-6


def test_saved_lora_model_is_plain_and_pipeline_predicts_like_the_trained_model(lora_trained, tokenized, lora_config,
                                                                                uci_sentences, tmp_path) -> None:
    model, tokenizer, _ = lora_trained
    folder = modeling.save_model(adapters.plain_model(model), tokenizer, tmp_path / "model")
    assert (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder)
    assert not any("lora" in name for name in reloaded.state_dict())
    assert adapters.is_peft_model(model)  # merging worked on a copy: the trained model keeps its adapters
    expected = train.predict(model, tokenized["validation"], tokenizer, lora_config)
    texts = uci_sentences["validation"].shuffle(seed=0).select(range(96))["text"][:]  # the rows `tokenized` holds
    classifier = hf_pipeline("text-classification", model=str(folder), tokenizer=str(folder), device=-1)
    labels = [output["label"] for output in classifier(texts, truncation=True, max_length=64)]
    assert labels == [LABELS[i] for i in expected.predicted]


def test_adalora_prunes_ranks_to_its_budget_while_training(lora_config, tokenized, tmp_path) -> None:
    config = lora_config.replace(peft_method="adalora", lora_r=4, lora_target_modules=[], num_train_epochs=2)
    model, _, result = fit(config, tokenized, tmp_path)
    schedule = model.peft_config["default"]
    assert (schedule.init_r, schedule.target_r, schedule.total_step) == (6, 4, result.global_step)
    kept = sum(sum(mask) for mask in schedule.rank_pattern.values())
    # 4 adapted matrices (query, value × 2 layers) start at rank 6 (24 in all); the budget is 4 on average.
    assert len(schedule.rank_pattern) == 4 and kept <= 4 * 4 < 6 * 4


def test_an_adalora_checkpoint_restores_after_its_ranks_were_reallocated(lora_config, tokenized, tmp_path) -> None:
    """The best epoch's adapter is saved with the rank pattern of that moment; training then re-allocates ranks.
    Restoring must cut the model to the checkpoint's pattern, not the live one (a real MiniLM run failed so)."""
    config = lora_config.replace(peft_method="adalora", lora_r=4, lora_target_modules=[], num_train_epochs=2,
                                 load_best_model_at_end=False)  # the adapters keep their full initial rank
    model, _, _ = fit(config, tokenized, tmp_path / "run")
    live = model.peft_config["default"]
    saved_pattern = {name: list(mask) for name, mask in live.rank_pattern.items()}
    adapters.save_adapter(model, tmp_path / "best")
    saved = load_file(str(tmp_path / "best" / adapters.ADAPTER_DIR / "adapter_model.safetensors"))
    # a later re-allocation: every module keeps another number of ranks than the checkpoint holds
    kept = {name: sum(mask) % len(mask) + 1 for name, mask in saved_pattern.items()}
    live.rank_pattern = {name: [True] * kept[name] + [False] * (len(mask) - kept[name])
                         for name, mask in saved_pattern.items()}
    assert adapters.restore_adapter(model, tmp_path / "best")
    restored = {name: tensor for name, tensor in model.state_dict().items() if "lora_E" in name}
    assert restored and all(tensor.shape == saved[name.replace(".default", "")].shape
                            for name, tensor in restored.items())


def test_peft_works_on_a_roberta_style_model_without_bert_names(lora_config) -> None:
    roberta = XLMRobertaForSequenceClassification(XLMRobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=3))
    wrapped = adapters.apply_peft(roberta, lora_config.replace(lora_r=2, lora_target_modules=[]))
    # query and value adapters (2 × 32 × 2 each) plus RoBERTa's two-layer head (32 × 32 + 32, then 32 × 3 + 3).
    head = 32 * 32 + 32 + 32 * 3 + 3
    assert adapters.parameter_counts(wrapped)["trainable_params"] == 2 * 2 * (2 * 32 * 2) + head
    assert type(adapters.plain_model(wrapped)) is XLMRobertaForSequenceClassification


def test_unknown_target_modules_fail_with_a_hint(lora_config) -> None:
    with pytest.raises(ValueError, match="lora_target_modules"):
        modeling.load_model_and_tokenizer(lora_config.replace(lora_target_modules=["q_proj"]), LABELS)


# --- language arms and tokenizer coverage -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tweets(data_dir: Path) -> DatasetDict:
    return data.load_source("xlmt_tweets:english,french,arabic", data_dir)


def test_language_arms_keep_every_english_row_of_a_seed_and_add_the_others(tweets: DatasetDict) -> None:
    arms = studies.language_arms(tweets["train"], "english", 60, 0.5, seed=3)
    assert list(arms) == ["english", "english+arabic", "english+french", "english+all"]
    assert [len(rows) for rows in arms.values()] == [60, 120, 120, 120]
    make_up = {arm: Counter(rows["domain"]) for arm, rows in arms.items()}
    assert make_up["english+french"] == {"english": 60, "french": 60}
    assert make_up["english+all"] == {"english": 60, "arabic": 30, "french": 30}
    english = {arm: [i for i, d in zip(rows["id"], rows["domain"]) if d == "english"] for arm, rows in arms.items()}
    assert english["english+arabic"] == english["english+all"]
    assert set(english["english+all"]) == set(english["english"])
    assert len(studies.language_arms(tweets["train"], "english", 60, 0.75, seed=3)["english+french"]) == 80
    assert max(Counter(arms["english+all"]["label"]).values()) - min(Counter(arms["english+all"]["label"]).values()) <= 1


def test_a_language_arm_larger_than_a_language_is_refused(tweets: DatasetDict) -> None:
    with pytest.raises(ValueError, match="max_train_samples"):
        studies.language_arms(tweets["train"], "english", 5000, 0.5, seed=1)


def test_english_vocabulary_spells_arabic_letter_by_letter_and_reads_english_in_words(tweets: DatasetDict) -> None:
    tokenizer = AutoTokenizer.from_pretrained(modeling.packaged_model_path())
    train_rows = tweets["train"]
    texts = {language: [t for t, d in zip(train_rows["text"], train_rows["domain"]) if d == language][:300]
             for language in ("english", "arabic")}
    coverage = studies.tokenizer_coverage(tokenizer, texts).set_index("language")
    # The vocabulary holds single Arabic letters, so almost nothing becomes [UNK]: Arabic is spelled out instead.
    assert coverage.loc["arabic", "single_letter_share"] > 0.8 and coverage.loc["arabic", "tokens_per_word"] > 4
    assert coverage.loc["arabic", "latin_letter_share"] < 0.2
    assert coverage.loc["english", "single_letter_share"] < 0.1 and coverage.loc["english", "tokens_per_word"] < 1.6
    assert coverage["unk_share"].max() < 0.01
    # Devanagari (the Hindi tweets here are romanised): a word with one letter the vocabulary lacks becomes a
    # single [UNK] ("मौसम", "अच्छा"); the others are spelled letter by letter (ब ##ह ##त, ह).
    devanagari = studies.tokenizer_coverage(tokenizer, {"hindi": ["मौसम बहुत अच्छा है"]}).iloc[0]
    assert devanagari["unk_share"] == pytest.approx(2 / 6) and devanagari["single_letter_share"] == pytest.approx(4 / 6)


# --- continued pretraining texts ----------------------------------------------------------------------------------

def test_pretraining_reads_training_texts_of_the_named_domains_only(uci_sentences: DatasetDict) -> None:
    config = Config(target_domain="yelp", pretrain_domains=["amazon"], pretrain_max_texts=500)
    assert studies.pretraining_arms(config, "yelp") == ["none", "tapt", "dapt"]
    train_texts = {d: {t for t, dd in zip(uci_sentences["train"]["text"], uci_sentences["train"]["domain"]) if dd == d}
                   for d in ("amazon", "yelp")}
    dapt = studies.pretraining_texts(config, uci_sentences, "dapt", "yelp", seed=1)
    tapt = studies.pretraining_texts(config, uci_sentences, "tapt", "yelp", seed=1)
    assert len(dapt) == 500 and set(dapt) <= train_texts["amazon"]
    assert len(tapt) == 500 and set(tapt) <= train_texts["yelp"]
    with pytest.raises(ValueError, match="holds the target"):
        studies.pretraining_arms(config.replace(pretrain_domains=["yelp"]), "yelp")


def test_online_language_params_validate_and_name_a_multilingual_model() -> None:
    config = load_config(REPO / "params" / "study_language_online.yaml")
    assert "xlm-roberta" in config.model_name_or_path and config.notebooks[-1] == "10_language"
    assert "cannot run on the offline machine" in (REPO / "params" / "study_language_online.yaml").read_text()


# --- end to end: each params file through the runner --------------------------------------------------------------


