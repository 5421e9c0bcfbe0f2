"""The training loop: learning, determinism, exact resume, early stopping, checkpoint rotation, prediction order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from otherdata_utils import checkpoints, modeling, train
from otherdata_utils.config import Config

LABELS = ["neg", "pos"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The tiny model at a learning rate it learns at, small batches, quiet, no checkpoints unless a test asks."""
    return Config(
        model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), quiet=True,
        max_seq_length=64, learning_rate=2e-3, per_device_train_batch_size=16, per_device_eval_batch_size=32,
        num_train_epochs=3, warmup_ratio=0.1, logging_steps=1, eval_strategy="epoch", save_strategy="no",
        seed=7,
    )


@pytest.fixture(scope="module")
def tokenizer(base_config: Config):
    return modeling.load_model_and_tokenizer(base_config, LABELS)[1]


@pytest.fixture(scope="module")
def tokenized(uci_sentences, base_config: Config, tokenizer) -> DatasetDict:
    """200 training and 96 validation sentences from all three UCI domains, tokenised."""
    splits = DatasetDict(train=uci_sentences["train"].shuffle(seed=0).select(range(200)),
                         validation=uci_sentences["validation"].shuffle(seed=0).select(range(96)))
    return modeling.tokenize_splits(splits, tokenizer, base_config)


def fit(config: Config, tokenized: DatasetDict, output_dir: Path, **kwargs
        ) -> tuple[torch.nn.Module, train.TrainResult]:
    """A fresh model (seeded as a new process would build it) trained under `config`."""
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    result = train.train(config, model, tokenizer, tokenized, output_dir=output_dir, label_names=LABELS, **kwargs)
    return model, result


def eval_entries(result: train.TrainResult) -> list[dict]:
    """Evaluation rows of the history without their (timing-dependent) throughput."""
    return [{k: v for k, v in row.items() if k != "eval_examples_per_second"}
            for row in result.history if "eval_loss" in row]


def max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    first, second = a.state_dict(), b.state_dict()
    assert first.keys() == second.keys()
    return max((first[k].float() - second[k].float()).abs().max().item() for k in first)


def test_training_loss_falls_on_real_sentences(base_config, tokenized, tmp_path):
    config = base_config.replace(num_train_epochs=5)
    _, result = fit(config, tokenized, tmp_path)
    losses = [row["loss"] for row in result.history if "loss" in row]
    assert len(losses) == result.global_step == 5 * 13
    assert np.mean(losses[:13]) > 0.65  # chance level for two balanced classes is ln 2 = 0.69
    assert np.mean(losses[-13:]) < 0.3
    assert result.epochs_completed == 5
    assert result.train_examples_per_second > 0 and result.train_tokens_per_second > result.train_examples_per_second


def separable_rows(n: int, seed: int) -> dict[str, list]:
    """Sentences of positive words (label pos) or negative words (label neg), in random order and length: a linear
    probe on the tokens separates them perfectly."""
    words = (["awful", "bad", "terrible", "poor", "boring", "worst"],
             ["great", "good", "lovely", "nice", "fine", "best"])
    rng = np.random.default_rng(seed)
    labels = [i % 2 for i in range(n)]
    texts = [" ".join(rng.choice(words[label], size=rng.integers(3, 8))) for label in labels]
    return {"text": texts, "label": labels}


def test_the_tiny_model_learns_a_separable_task_in_a_few_steps(base_config, tokenizer, tmp_path):
    # 64 rows, 2 epochs of 4 batches: 8 optimizer steps take the random model from chance to at least 90% on
    # held-out sentences. A loop that never steps, mixes up labels or evaluates another model stays near 50%.
    features = Features({"text": Value("string"), "label": ClassLabel(names=LABELS)})
    splits = DatasetDict(train=Dataset.from_dict(separable_rows(64, 0), features=features),
                         validation=Dataset.from_dict(separable_rows(40, 1), features=features))
    config = base_config.replace(num_train_epochs=2, learning_rate=2e-3)
    _, result = fit(config, modeling.tokenize_splits(splits, tokenizer, config), tmp_path)
    assert result.global_step == 8
    assert eval_entries(result)[-1]["eval_accuracy"] >= 0.9


def test_same_seed_gives_identical_weights_and_metrics(base_config, tokenized, tmp_path):
    first_model, first = fit(base_config, tokenized, tmp_path / "a")
    second_model, second = fit(base_config, tokenized, tmp_path / "b")
    assert max_weight_difference(first_model, second_model) == 0.0
    assert eval_entries(first) == eval_entries(second)
    assert [r["loss"] for r in first.history if "loss" in r] == [r["loss"] for r in second.history if "loss" in r]


@pytest.mark.parametrize(
    ("stop_after", "accumulation"),
    [(18, 1), (13, 1), (4, 2)],
    ids=["middle-of-epoch-2", "end-of-epoch-1", "middle-of-epoch-1-with-accumulation"],
)
def test_resumed_run_ends_like_an_uninterrupted_one(base_config, tokenized, tmp_path, stop_after, accumulation):
    config = base_config.replace(num_train_epochs=2, gradient_accumulation_steps=accumulation,
                                 save_strategy="steps", save_steps=5, load_best_model_at_end=False)
    whole_model, whole = fit(config, tokenized, tmp_path / "whole")

    _, stopped = fit(config, tokenized, tmp_path / "resumed", stop_after_steps=stop_after)
    assert stopped.global_step == stop_after
    assert (tmp_path / "resumed" / "checkpoints" / f"step-{stop_after}").is_dir()
    resumed_model, resumed = fit(config.replace(resume_from_checkpoint="auto"), tokenized, tmp_path / "resumed")

    assert resumed.global_step == whole.global_step
    assert max_weight_difference(whole_model, resumed_model) <= 1e-6
    assert len(eval_entries(whole)) == 2
    assert eval_entries(resumed) == [pytest.approx(row, abs=1e-6) for row in eval_entries(whole)]


@pytest.fixture(scope="module")
def early_stopped(base_config, tokenized, tmp_path_factory):
    """Trained far past its best validation loss, evaluating and checkpointing every 4 steps."""
    config = base_config.replace(
        num_train_epochs=30, eval_strategy="steps", eval_steps=4, save_strategy="steps",
        save_steps=4, save_total_limit=2, metric_for_best_model="loss", greater_is_better=False,
        early_stopping_patience=3, load_best_model_at_end=True,
    )
    output_dir = tmp_path_factory.mktemp("early")
    model, result = fit(config, tokenized, output_dir)
    return config, model, result, output_dir


def test_early_stopping_stops_and_restores_the_best_model(early_stopped, tokenized, tokenizer):
    config, model, result, output_dir = early_stopped
    losses = {row["step"]: row["eval_loss"] for row in result.history if "eval_loss" in row}
    best_step = min(losses, key=losses.get)
    assert result.stopped_early
    assert result.global_step == max(losses) == best_step + 3 * 4 < 30 * 13
    assert (result.best_step, result.best_metric) == (best_step, losses[best_step])
    assert result.best_model_dir == output_dir / "best_model"
    scores, _ = train.evaluate(model, tokenized["validation"], tokenizer, config, LABELS)
    assert scores["loss"] == pytest.approx(losses[best_step], abs=1e-5)


def test_checkpoint_rotation_keeps_save_total_limit_and_the_best(early_stopped):
    config, _, result, output_dir = early_stopped
    kept = [p.name for p in checkpoints.list_checkpoints(output_dir)]
    newest = [f"step-{result.global_step - 4}", f"step-{result.global_step}"]
    assert kept == [f"step-{result.best_step}", *newest]
    assert not list((output_dir / "checkpoints").glob(".*"))


def test_predictions_come_back_in_the_splits_order(base_config, tokenized, tokenizer):
    # fp32: in bf16 autocast a row's logits move by ~1e-3 with its batch's padding, which this check is not about
    base_config = base_config.replace(mixed_precision="no")
    model, _ = modeling.load_model_and_tokenizer(base_config, LABELS)
    split = tokenized["validation"]
    predictions = train.predict(model, split, tokenizer, base_config)
    model.eval()
    with torch.inference_mode():
        one_by_one = torch.cat([model(input_ids=torch.tensor([row["input_ids"]])).logits for row in split])
    assert predictions.ids == split["id"]
    assert predictions.labels.tolist() == split["labels"]
    assert np.abs(predictions.logits - one_by_one.numpy()).max() < 1e-4
    assert predictions.predicted.tolist() == one_by_one.argmax(-1).tolist()
    assert predictions.probabilities.sum(axis=1) == pytest.approx(np.ones(len(split)), abs=1e-6)
    unlabelled = train.predict(model, split.remove_columns("labels"), tokenizer, base_config)
    assert unlabelled.labels is None and np.array_equal(unlabelled.predicted, predictions.predicted)


