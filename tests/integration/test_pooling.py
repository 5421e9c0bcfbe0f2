"""`pooling: mean`: the packaged MiniLM's own sentence embedding, training through our loop (full and LoRA), saving,
reloading, serving with Predictor and transformers.pipeline()."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from otherdata_utils import adapters, modeling, train
from otherdata_utils.config import Config
from otherdata_utils.model_card import INFERENCE_NAME, write_inference_settings, write_model_card
from otherdata_utils.pooling import PooledEncoderForSequenceClassification
from otherdata_utils.predictor import ModelLoadError, Predictor

LABELS = ["neg", "pos"]
SENTENCES = ["The battery lasts all day and the screen is sharp.", "Terrible service, we left before dessert.",
             "ok", "An odd, slow film that grew on me by the end, though the score was far too loud."]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pooled_inputs(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    """The vectors the classification head receives (dropout off in eval mode): what `pooling` hands it."""
    seen = []
    handle = model.classifier.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    try:
        with torch.inference_mode():
            model(**tokenizer(texts, padding=True, return_tensors="pt"))
    finally:
        handle.remove()
    return seen[0]


def test_mean_pooling_gives_the_packaged_minilms_sentence_transformers_embedding():
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    folder = modeling.packaged_model_path()
    if not (folder / "modules.json").is_file():
        pytest.skip(f"{folder} holds no sentence-transformers modules.json")
    model, tokenizer = modeling.load_model_and_tokenizer(Config(pooling="mean", quiet=True), LABELS)
    assert isinstance(model, PooledEncoderForSequenceClassification)
    assert model.config.pooling_modes == ["mean_tokens"]
    assert model.config.pooling_source == str(folder / "1_Pooling" / "config.json")
    ours = pooled_inputs(model.eval(), tokenizer, SENTENCES).numpy()
    full = SentenceTransformer(str(folder), device="cpu")
    # the folder's modules are Transformer, Pooling, Normalize: its sentence embedding before L2 normalisation is what
    # a head on it reads (normalize_embeddings=False would still run the Normalize module)
    embedding = SentenceTransformer(modules=[full[0], full[1]], device="cpu")
    theirs = embedding.encode(SENTENCES, normalize_embeddings=False, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (4, 384)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # and the frozen probe's vector is the same one, unit length
    normalised = full.encode(SENTENCES, convert_to_numpy=True)
    np.testing.assert_allclose(ours / np.linalg.norm(ours, axis=1, keepdims=True), normalised, atol=1e-5)


def test_cls_pooling_still_builds_transformers_own_classifier(tiny_model_dir):
    model, _ = modeling.load_model_and_tokenizer(Config(model_name_or_path=str(tiny_model_dir), quiet=True), LABELS)
    assert type(model) is transformers.BertForSequenceClassification


def toy_rows(n: int, seed: int) -> Dataset:
    """Sentences of positive or negative words in random order and length: separable from the words alone."""
    words = (["awful", "bad", "terrible", "poor", "boring", "worst"],
             ["great", "good", "lovely", "nice", "fine", "best"])
    rng = np.random.default_rng(seed)
    labels = [i % 2 for i in range(n)]
    texts = [" ".join(rng.choice(words[label], size=rng.integers(3, 8))) for label in labels]
    return Dataset.from_dict({"text": texts, "label": labels},
                             features=Features({"text": Value("string"), "label": ClassLabel(names=LABELS)}))


@pytest.fixture(scope="module")
def mean_config(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return Config(model_name_or_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), quiet=True,
                  pooling="mean", max_seq_length=32, learning_rate=2e-3, per_device_train_batch_size=16,
                  per_device_eval_batch_size=32, num_train_epochs=2, warmup_ratio=0.1, logging_steps=1,
                  eval_strategy="epoch", save_strategy="no", seed=7,
                  mixed_precision="no")  # fp32: the reloaded folder and pipeline() are compared with it to 1e-6


def fit(config: Config, output_dir: Path) -> tuple[torch.nn.Module, object, train.TrainResult]:
    model, tokenizer = modeling.load_model_and_tokenizer(config, LABELS)
    splits = modeling.tokenize_splits(DatasetDict(train=toy_rows(64, 0), validation=toy_rows(40, 1)), tokenizer,
                                      config)
    result = train.train(config, model, tokenizer, splits, output_dir=output_dir, label_names=LABELS)
    return model, tokenizer, result


def last_accuracy(result: train.TrainResult) -> float:
    return [row for row in result.history if "eval_accuracy" in row][-1]["eval_accuracy"]


@pytest.fixture(scope="module")
def mean_trained(mean_config: Config, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model with pooling mean trained 8 steps on the toy task, saved as 03_finetune saves it: the model,
    its tokenizer, the folder and the last validation accuracy."""
    model, tokenizer, result = fit(mean_config, tmp_path_factory.mktemp("training"))
    folder = modeling.save_model(adapters.plain_model(model), tokenizer, tmp_path_factory.mktemp("mean") / "model")
    write_inference_settings(folder, mean_config)
    write_model_card(folder, base_model="tiny-random-bert", sources=["toy"], params=mean_config.to_params())
    return model.cpu().eval(), tokenizer, folder, last_accuracy(result)  # the loop may have moved it to a GPU


@pytest.fixture(scope="module")
def mean_folder(mean_trained) -> Path:
    return mean_trained[2]


def test_a_mean_pooled_model_learns_in_our_loop_and_reloads_with_the_same_logits(mean_trained):
    model, tokenizer, folder, accuracy = mean_trained
    # 8 optimizer steps take the random tiny model from chance to ≥ 90% on held-out toy sentences; a head that never
    # reaches the pooled tokens, or a loss that ignores the labels, stays near 50%
    assert accuracy >= 0.9
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "otherdata_pooled_encoder" and config["pooling_modes"] == ["mean_tokens"]
    assert "no sentence-transformers modules.json" in config["pooling_source"]  # the tiny model is a plain folder
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(reloaded) is PooledEncoderForSequenceClassification
    assert not any(name.startswith("encoder.pooler") for name in reloaded.state_dict())
    batch = tokenizer(list(toy_rows(8, 2)["text"]), padding=True, return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, atol=1e-6, rtol=0)


def test_a_mean_pooled_folder_fine_tunes_further_only_as_mean(mean_config, mean_folder):
    again, _ = modeling.load_model_and_tokenizer(mean_config.replace(model_name_or_path=str(mean_folder)),
                                                 ["a", "b", "c"])
    assert type(again) is PooledEncoderForSequenceClassification and again.classifier.out_features == 3
    with pytest.raises(ValueError, match="trained with pooling: mean; set pooling: mean"):
        modeling.load_model_and_tokenizer(mean_config.replace(model_name_or_path=str(mean_folder), pooling="cls"),
                                          LABELS)


def test_predictor_and_pipeline_serve_a_mean_pooled_folder(mean_folder):
    folder = mean_folder
    predictor = Predictor.load(folder)
    texts = list(toy_rows(40, 1)["text"])
    served = predictor.predict(texts)
    assert np.mean([row["label"] == LABELS[i % 2] for i, row in enumerate(served)]) >= 0.9
    assert predictor.metadata()["pooling"] == "mean" and predictor.max_length == 32
    from_pipeline = transformers.pipeline("text-classification", model=str(folder), device="cpu")(texts)
    assert [row["label"] for row in from_pipeline] == [row["label"] for row in served]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(from_pipeline, served)) <= 1e-5
    card = (folder / "README.md").read_text()
    assert "import otherdata_utils.pooling" in card and "`otherdata` package is installed" in card
    settings = json.loads((folder / INFERENCE_NAME).read_text())
    (folder.parent / "mixed").mkdir()
    for file in folder.iterdir():
        (folder.parent / "mixed" / file.name).write_bytes(file.read_bytes())
    (folder.parent / "mixed" / INFERENCE_NAME).write_text(json.dumps({**settings, "pooling": "cls"}))
    with pytest.raises(ModelLoadError, match="training used pooling: cls, but config.json holds a mean-pooled"):
        Predictor.load(folder.parent / "mixed")


def test_lora_with_mean_pooling_adapts_query_and_value_and_learns(mean_config, tmp_path):
    config = mean_config.replace(peft_method="lora", lora_r=8, learning_rate=5e-3, num_train_epochs=3)
    model, tokenizer, result = fit(config, tmp_path / "training")
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable if ".lora_" in name}
    assert adapted == {"query", "value"}  # peft's BERT default, found through the encoder's model type
    assert any("classifier" in name for name in trainable)
    assert last_accuracy(result) >= 0.85
    folder = modeling.save_model(adapters.plain_model(model), tokenizer, tmp_path / "model")
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(reloaded) is PooledEncoderForSequenceClassification
    batch = tokenizer(list(toy_rows(8, 4)["text"]), padding=True, return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(**batch).logits, model.cpu().eval()(**batch).logits, atol=1e-5, rtol=0)
