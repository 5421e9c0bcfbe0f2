"""Continued MLM pretraining of a tiny random BERT on real UCI sentences: it learns, repeats, hands on its encoder."""
import json
import math
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file

from otherdata_utils import pipeline, report
from otherdata_utils.config import Config
from otherdata_utils.pretrain import (
    PretrainResult,
    continue_pretraining,
    pretrain_from_config,
    pretrained_model_config,
    unlabelled_texts,
)
from otherdata_utils.runs import run_folder

ENCODER_WEIGHT = "bert.encoder.layer.0.attention.self.query.weight"
POOLER_WEIGHT = "bert.pooler.dense.weight"
STEPS = 25
BATCH = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def yelp_texts(uci_sentences: datasets.DatasetDict) -> list[str]:
    return unlabelled_texts(uci_sentences, domains=["yelp"])[:200]


@pytest.fixture(scope="module")
def config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")),
                  quiet=True, logging_steps=5)


@pytest.fixture(scope="module")
def pretrained(config: Config, yelp_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> PretrainResult:
    return continue_pretraining(config, yelp_texts, output_dir=tmp_path_factory.mktemp("mlm") / "adapted",
                                max_steps=STEPS, learning_rate=2e-3, batch_size=BATCH, max_seq_length=32, seed=7)


def test_mlm_training_lowers_heldout_loss_from_random_head(pretrained: PretrainResult) -> None:
    # A random head over the 30,522-token vocabulary scores about ln(30522) = 10.3 nats per masked token;
    # falling a full nat below that on texts never trained on takes learning, not luck.
    assert pretrained.head_initialised_fresh
    assert pretrained.heldout_loss_before == pytest.approx(10.3, abs=0.3)
    assert pretrained.heldout_loss_after < pretrained.heldout_loss_before - 1.0
    assert pretrained.loss_history[-1]["loss"] < pretrained.loss_history[0]["loss"] - 0.5
    assert [entry["step"] for entry in pretrained.loss_history] == [5, 10, 15, 20, 25]
    assert (pretrained.train_texts, pretrained.heldout_texts) == (180, 20)
    # One pass over 180 texts in batches of 8 is 23 batches (the last one of 4); 2 full batches follow.
    assert pretrained.examples_seen == 180 + 2 * BATCH


def test_same_seed_gives_identical_loss_history(config: Config, yelp_texts: list[str], tmp_path: Path) -> None:
    def run(seed: int, name: str) -> PretrainResult:
        return continue_pretraining(config.replace(logging_steps=1), yelp_texts[:40], output_dir=tmp_path / name,
                                    max_steps=3, learning_rate=1e-3, batch_size=BATCH, max_seq_length=32, seed=seed)

    runs = [run(3, "first"), run(3, "second")]
    other = run(4, "other")
    assert runs[0].loss_history == runs[1].loss_history
    assert runs[0].heldout_loss_after == runs[1].heldout_loss_after
    assert [e["loss"] for e in other.loss_history] != [e["loss"] for e in runs[0].loss_history]


def test_saved_folder_loads_as_classifier_with_the_adapted_encoder(pretrained: PretrainResult,
                                                                  tiny_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    original = load_file(tiny_model_dir / "model.safetensors")
    adapted = load_file(pretrained.output_dir / "model.safetensors")
    classifier, loading = AutoModelForSequenceClassification.from_pretrained(
        pretrained.output_dir, num_labels=2, output_loading_info=True)
    state = classifier.state_dict()
    # Only the new classification layer is fresh: every encoder weight name matched the saved folder.
    assert sorted(loading["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(state[ENCODER_WEIGHT], adapted[ENCODER_WEIGHT])
    assert not torch.allclose(state[ENCODER_WEIGHT], original[ENCODER_WEIGHT])
    # MLM training leaves the pooler out; the checkpoint's own pooler is carried over, not re-drawn.
    assert torch.equal(state[POOLER_WEIGHT], original[POOLER_WEIGHT])


def test_unlabelled_texts_refuses_eval_text_and_keeps_requested_domains(uci_sentences: datasets.DatasetDict) -> None:
    with pytest.raises(ValueError, match="leaks"):
        unlabelled_texts(uci_sentences, domains=["yelp"], splits=("train", "test"))
    texts = unlabelled_texts(uci_sentences, domains=["yelp", "amazon"])
    train = uci_sentences["train"]
    wanted = {t for t, d in zip(train["text"], train["domain"]) if d in ("yelp", "amazon")}
    assert set(texts) == wanted and len(texts) == len(wanted)
    with_test = unlabelled_texts(uci_sentences, domains=["yelp"], splits=("train", "test"), allow_eval_text=True)
    assert len(with_test) > len(unlabelled_texts(uci_sentences, domains=["yelp"]))
    with pytest.raises(ValueError, match="no domain"):
        unlabelled_texts(uci_sentences, domains=["books"])


def test_unlabelled_texts_limit_is_a_seeded_sample(uci_sentences: datasets.DatasetDict) -> None:
    everything = unlabelled_texts(uci_sentences, domains=["imdb"])
    sample = unlabelled_texts(uci_sentences, domains=["imdb"], limit=50, seed=1)
    assert len(sample) == 50 and set(sample) <= set(everything)
    assert sample == unlabelled_texts(uci_sentences, domains=["imdb"], limit=50, seed=1)
    assert sample != unlabelled_texts(uci_sentences, domains=["imdb"], limit=50, seed=2)


def test_pretrain_from_config_runs_tapt_on_target_training_text(config: Config, uci_sentences: datasets.DatasetDict,
                                                                tmp_path: Path) -> None:
    assert pretrain_from_config(config, uci_sentences, output_dir=tmp_path / "none") is None
    tapt = config.replace(target_domain="amazon", pretrain_steps=2, pretrain_max_texts=40,
                          per_device_train_batch_size=BATCH, max_seq_length=32)
    result = pretrain_from_config(tapt, uci_sentences, output_dir=tmp_path / "tapt")
    assert result is not None and result.steps == 2
    assert result.train_texts + result.heldout_texts == 40
    assert pretrained_model_config(tapt, result).model_name_or_path == str(tmp_path / "tapt")


# --- continued pretraining as a step of fine-tuning (pretrain_steps > 0) ------------------------------------------------

@pytest.fixture(scope="module")
def tapt_run(config: Config, packaged_data_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             finetuned_through_pipeline) -> Config:
    """Data, mixing and fine-tuning of a run that asks for 4 MLM steps on yelp training sentences (TAPT) first."""
    run = config.replace(sources=["uci_sentences"], data_dir=str(packaged_data_dir), target_domain="yelp",
                         output_dir=str(tmp_path_factory.mktemp("runs") / "tapt"), max_train_samples=150,
                         max_eval_samples=30, max_test_samples=30, max_seq_length=32, per_device_train_batch_size=BATCH,
                         num_train_epochs=1, save_strategy="no", pretrain_steps=4, pretrain_max_texts=40,
                         pretrain_learning_rate=2e-3)
    return finetuned_through_pipeline(run)


def test_finetune_with_pretrain_steps_starts_from_the_encoder_adapted_in_the_run_folder(tapt_run: Config) -> None:
    paths = run_folder(tapt_run)
    metrics = json.loads(paths.metrics.read_text())
    pretraining = metrics["pretraining"]
    yelp_texts = unlabelled_texts(pipeline.load_prepared(tapt_run), domains=["yelp"], limit=40, seed=tapt_run.seed)
    assert pretraining["steps"] == 4 and pretraining["base_model"] == tapt_run.model_name_or_path
    assert pretraining["train_texts"] + pretraining["heldout_texts"] == len(yelp_texts) == 40
    assert math.isfinite(pretraining["heldout_loss_before"]) and math.isfinite(pretraining["heldout_loss_after"])
    # The tiny model has no MLM head: a random one scores about ln(30522) = 10.3 nats per masked token.
    assert pretraining["head_initialised_fresh"]
    assert pretraining["heldout_loss_before"] == pytest.approx(10.3, abs=0.3)
    assert pretraining["heldout_loss_after"] < pretraining["heldout_loss_before"]
    assert pretraining["encoder"] == metrics["train"]["started_from"] == str(paths.pretraining)
    assert (paths.pretraining / "model.safetensors").is_file() and (paths.model / "model.safetensors").is_file()
    # Fine-tuning put a new two-class head on the encoder; the MLM head stayed behind in the pretraining folder.
    classifier = load_file(paths.model / "model.safetensors")
    assert classifier["classifier.weight"].shape[0] == 2 and "cls.predictions.bias" not in classifier
    assert "## Continued pretraining" in report.write_report(paths.root).read_text()


def test_adapted_encoder_is_reused_for_the_same_parameters_and_made_again_for_others(tapt_run: Config) -> None:
    paths = run_folder(tapt_run)
    weights = paths.pretraining / "model.safetensors"
    made, recorded = weights.stat().st_mtime_ns, json.loads(paths.metrics.read_text())["pretraining"]
    prepared = pipeline.load_prepared(tapt_run)
    assert pipeline.adapt_encoder(tapt_run, prepared) == paths.pretraining
    assert weights.stat().st_mtime_ns == made
    assert json.loads(paths.metrics.read_text())["pretraining"] == recorded  # not even its timings changed

    other = tapt_run.replace(pretrain_learning_rate=1e-3)
    assert pipeline.adapt_encoder(other, prepared) == paths.pretraining
    remade = json.loads(paths.metrics.read_text())["pretraining"]
    assert weights.stat().st_mtime_ns != made
    assert remade["params"]["pretrain_learning_rate"] == 1e-3
    assert remade["heldout_loss_after"] != recorded["heldout_loss_after"]
