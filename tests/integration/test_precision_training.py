"""Mixed precision on the tiny model: bf16 trains and predicts inside Accelerate's autocast while the weights, their
gradients and the saved model stay fp32; "no" runs fp32 throughout; one process switches between them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict
from safetensors.torch import load_file

from otherdata_utils import modeling, pipeline, precision, step_records, train
from otherdata_utils.config import Config
from otherdata_utils.runs import run_folder

LABELS = ["neg", "pos"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(
        model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), quiet=True,
        max_seq_length=32, learning_rate=2e-3, per_device_train_batch_size=8, per_device_eval_batch_size=16,
        max_steps=4, warmup_ratio=0.0, logging_steps=2, eval_strategy="steps", eval_steps=4, save_strategy="no",
        load_best_model_at_end=False, seed=3,
    )


@pytest.fixture(scope="module")
def tokenized(uci_sentences, base_config: Config) -> DatasetDict:
    tokenizer = modeling.load_model_and_tokenizer(base_config, LABELS)[1]
    splits = DatasetDict(train=uci_sentences["train"].shuffle(seed=0).select(range(32)),
                         validation=uci_sentences["validation"].shuffle(seed=0).select(range(16)))
    return modeling.tokenize_splits(splits, tokenizer, base_config)


class Watch:
    """Forward hooks on the first attention query projection: what each forward computed in, and what dtype the
    weight it multiplies and its gradient had."""

    def __init__(self, model: torch.nn.Module):
        self.outputs, self.autocast, self.weights, self.grads = set(), set(), set(), set()
        query = model.base_model.encoder.layer[0].attention.self.query
        query.register_forward_hook(self.seen)
        query.weight.register_hook(lambda grad: self.grads.add(grad.dtype))

    def seen(self, module, inputs, output) -> None:
        self.outputs.add(output.dtype)
        self.autocast.add(torch.is_autocast_enabled("cpu"))
        self.weights.add(module.weight.dtype)


def trained(config: Config, tokenized: DatasetDict, output_dir: Path):
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    watch = Watch(model)
    result = train.train(config, model, tokenizer, tokenized, output_dir=output_dir, label_names=LABELS)
    return model, tokenizer, watch, result


@pytest.mark.parametrize("mode, computed_in", [("bf16", torch.bfloat16), ("no", torch.float32)])
def test_training_computes_in_the_chosen_precision_and_keeps_weights_and_saved_model_fp32(
        base_config, tokenized, tmp_path, mode, computed_in):
    config = base_config.replace(mixed_precision=mode)
    model, tokenizer, watch, result = trained(config, tokenized, tmp_path / "training")
    assert watch.outputs == {computed_in}
    assert watch.autocast == {mode == "bf16"}
    assert watch.weights == watch.grads == {torch.float32}  # master weights and their gradients stay fp32
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # the loss and metrics keep their format: plain floats, the same keys as ever
    logged = [row for row in result.history if "loss" in row]
    evaluated = [row for row in result.history if "eval_loss" in row]
    assert [row["step"] for row in logged] == [2, 4] and all(type(row["loss"]) is float for row in logged)
    assert len(evaluated) == 1 and type(evaluated[0]["eval_accuracy"]) is float
    saved = modeling.save_model(model, tokenizer, tmp_path / "model")
    weights = load_file(saved / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}


@pytest.mark.parametrize("mode, computed_in", [("bf16", torch.bfloat16), ("no", torch.float32)])
def test_prediction_computes_in_the_configs_precision_and_returns_fp32_probabilities(
        base_config, tokenized, mode, computed_in):
    config = base_config.replace(mixed_precision=mode)
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    watch = Watch(model)
    scores, predictions = train.evaluate(model, tokenized["validation"], tokenizer, config, LABELS)
    assert watch.outputs == {computed_in} and watch.autocast == {mode == "bf16"}
    assert predictions.logits.dtype == predictions.probabilities.dtype == "float32"
    assert predictions.probabilities.sum(axis=1) == pytest.approx([1.0] * 16, abs=1e-5)
    assert type(scores["loss"]) is float


def test_one_process_builds_accelerators_in_one_precision_after_another():
    for mode in ("bf16", "no", "bf16", "no"):
        choice = precision.PrecisionChoice(mode, mode, "cpu", "set in the config")
        accelerator = train.precision_accelerator(choice)
        assert accelerator.mixed_precision == mode
        with accelerator.autocast():
            assert torch.is_autocast_enabled("cpu") is (mode == "bf16")


def test_train_refuses_a_callers_accelerator_in_another_precision(base_config, tokenized, tmp_path):
    base_config = base_config.replace(mixed_precision="no")
    model, tokenizer = modeling.load_model_and_tokenizer(base_config, LABELS)
    accelerator = train.precision_accelerator(precision.PrecisionChoice("bf16", "bf16", "cpu", "set in the config"))
    with pytest.raises(ValueError, match="mixed_precision='no' resolves to 'no' here, but the accelerator"):
        train.train(base_config, model, tokenizer, tokenized, output_dir=tmp_path, label_names=LABELS,
                    accelerator=accelerator)


def test_environment_json_records_the_precision_choice_and_its_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(step_records.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f", "amx_bf16", "avx512_bf16"})
    config = Config(output_dir=str(tmp_path / "run"), mixed_precision="auto")
    pipeline.record_environment(config)
    recorded = json.loads(run_folder(config).environment.read_text())["precision"]
    assert recorded == {"requested": "auto", "mode": "bf16", "device": "cpu",
                        "reason": "the CPU has amx_bf16 and avx512_bf16 (native bf16 matmul)"}
