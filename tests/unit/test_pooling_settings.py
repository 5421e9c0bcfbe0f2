"""Pooling without a trained model: the pooled vector by hand, the pooling a folder declares, the inference record."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, BertConfig

from otherdata_utils.config import Config, ConfigError
from otherdata_utils.model_card import ModelCardError, read_inference_settings, write_inference_settings
from otherdata_utils.pooling import (MASK_MEAN, PooledEncoderConfig, PooledEncoderForSequenceClassification,
                                     classifier_pooling, encoder_config, encoder_pooling, pool)

# two texts of hidden size 2: the second has one padding position whose (large) state must not count
HIDDEN = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]],
                       [[2.0, -2.0], [4.0, 6.0], [100.0, 100.0]]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_mean_pooling_averages_the_non_padding_tokens_only():
    assert pool(HIDDEN, MASK).tolist() == [[3.0, 2.0], [3.0, 2.0]]


def test_modes_concatenate_in_sentence_transformers_order_whatever_order_they_are_given():
    pooled = pool(HIDDEN, MASK, ["mean_tokens", "max_tokens", "cls_token"])
    # cls, then max (padding excluded: 4 and 6, not 100), then mean
    assert pooled.tolist() == [[1.0, 2.0, 5.0, 4.0, 3.0, 2.0], [2.0, -2.0, 4.0, 6.0, 3.0, 2.0]]
    sqrt_len = pool(HIDDEN, MASK, ["mean_sqrt_len_tokens"])
    assert torch.allclose(sqrt_len, torch.tensor([[9.0, 6.0], [6.0, 4.0]]) / torch.tensor([[3.0], [2.0]]).sqrt())


def test_an_unknown_mode_is_named():
    with pytest.raises(ValueError, match="weightedmean_tokens"):
        pool(HIDDEN, MASK, ["weightedmean_tokens"])


def sentence_transformers_folder(root: Path, **modes: bool) -> Path:
    (root / "1_Pooling").mkdir(parents=True)
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (root / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 8, **{f"pooling_mode_{name}": on for name, on in modes.items()}}))
    return root


def test_a_sentence_transformers_folder_declares_its_pooling(tmp_path):
    folder = sentence_transformers_folder(tmp_path / "st", cls_token=False, mean_tokens=True, max_tokens=True)
    declared = encoder_pooling(str(folder))
    assert declared.modes == ("max_tokens", "mean_tokens")
    assert declared.source == str(folder / "1_Pooling" / "config.json")


def test_a_folder_without_sentence_transformers_modules_gets_the_mask_mean_and_says_so(tmp_path):
    declared = encoder_pooling(str(tmp_path))
    assert declared.modes == MASK_MEAN and "no sentence-transformers modules.json" in declared.source
    assert encoder_pooling("org/hub-model").modes == MASK_MEAN


def test_a_pooling_we_do_not_compute_is_refused_naming_the_file(tmp_path):
    folder = sentence_transformers_folder(tmp_path / "st", mean_tokens=False, lasttoken=True)
    with pytest.raises(ValueError, match=r"1_Pooling/config.json: pooling modes \['lasttoken'\].*pooling: cls"):
        encoder_pooling(str(folder))


def tiny_pooled_config(**changes) -> PooledEncoderConfig:
    encoder = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=32)
    return PooledEncoderConfig(encoder=encoder.to_dict(), num_labels=3, **changes)


def test_the_pooled_config_round_trips_and_reads_the_encoders_sizes(tmp_path):
    config = tiny_pooled_config(pooling_modes=["cls_token", "mean_tokens"], pooling_source="here")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is PooledEncoderConfig
    assert (loaded.pooling_modes, loaded.pooling_source, loaded.num_labels) == (["cls_token", "mean_tokens"], "here", 3)
    assert (loaded.hidden_size, loaded.max_position_embeddings) == (8, 32)  # the encoder's, read through
    assert encoder_config(loaded).model_type == "bert" and classifier_pooling(loaded) == "mean"
    assert classifier_pooling(BertConfig()) == "cls" and encoder_config(loaded.encoder) is loaded.encoder
    with pytest.raises(AttributeError):
        loaded.no_such_setting


def test_the_classifier_has_no_cls_pooler_and_a_head_per_pooled_width():
    torch.manual_seed(0)
    model = PooledEncoderForSequenceClassification(tiny_pooled_config(pooling_modes=["cls_token", "mean_tokens"]))
    assert model.encoder.pooler is None
    assert model.classifier.in_features == 16 and model.classifier.out_features == 3
    assert abs(model.classifier.weight.std().item() - 0.02) < 0.01 and model.classifier.bias.abs().sum() == 0
    output = model(input_ids=torch.tensor([[2, 5, 7, 0]]), attention_mask=torch.tensor([[1, 1, 1, 0]]),
                   labels=torch.tensor([1]))
    assert output.logits.shape == (1, 3) and output.loss.item() > 0


def test_inference_settings_record_the_pooling_and_refuse_an_unknown_one(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    path = write_inference_settings(tmp_path, Config(pooling="mean"))
    assert json.loads(path.read_text())["pooling"] == "mean"
    assert read_inference_settings(tmp_path).pooling == "mean"
    path.write_text(json.dumps({"max_seq_length": 64, "truncation": "head", "head_tokens": 0}))
    assert read_inference_settings(tmp_path).pooling is None  # an older folder: not recorded
    path.write_text(json.dumps({"max_seq_length": 64, "truncation": "head", "head_tokens": 0, "pooling": "max"}))
    with pytest.raises(ModelCardError, match="pooling must be one of cls, mean, got 'max'"):
        read_inference_settings(tmp_path)


def test_auto_pooling_is_mean_for_a_sentence_transformers_folder_or_a_mean_classifier_and_cls_elsewhere(tmp_path):
    from otherdata_utils.pooling import POOLED_MODEL_TYPE, resolve_pooling

    encoder, plain, classifier = tmp_path / "st", tmp_path / "plain", tmp_path / "classifier"
    for folder in (encoder, plain, classifier):
        folder.mkdir()
    (encoder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (plain / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (classifier / "config.json").write_text(json.dumps({"model_type": POOLED_MODEL_TYPE}))
    assert [resolve_pooling("auto", str(folder)) for folder in (encoder, plain, classifier)] == ["mean", "cls", "mean"]
    assert resolve_pooling("auto", "bert-base-uncased") == "cls"  # a Hub id: nothing local to read
    assert resolve_pooling("cls", str(encoder)) == "cls" and resolve_pooling("mean", str(plain)) == "mean"
    # the packaged MiniLM is a sentence-transformers folder: auto trains the head the head study chose for it
    from otherdata_utils.modeling import packaged_model_path
    assert resolve_pooling("auto", str(packaged_model_path())) == "mean"
    # a saved folder records what auto resolved to, never the word auto
    path = write_inference_settings(classifier, Config())
    assert json.loads(path.read_text())["pooling"] == "mean"
    assert json.loads(write_inference_settings(plain, Config()).read_text())["pooling"] == "cls"


def test_config_pooling_defaults_to_auto_and_refuses_other_values():
    assert Config().pooling == "auto"
    with pytest.raises(ConfigError, match="pooling"):
        Config.from_params({"pooling": "max"})


def test_pooling_is_a_training_parameter_and_a_record_made_before_it_existed_reads_as_cls(tmp_path, capsys):
    from otherdata_utils import step_records

    assert "pooling" in step_records.TRAINING_PARAMS
    config = Config(output_dir=str(tmp_path / "run"), quiet=True, pooling="cls")
    step_records.record_step(config, "finetune")
    path = step_records.run_folder(config).step_record("finetune")
    record = json.loads(path.read_text())
    del record["params"]["pooling"]  # as 03_finetune recorded it before the parameter existed
    path.write_text(json.dumps(record))
    assert step_records.reusable(config, "finetune", made=True)
    assert not step_records.reusable(config.replace(pooling="mean"), "finetune", made=True)
    assert "pooling='cls' (now 'mean')" in capsys.readouterr().out


def test_a_broken_modules_file_is_named(tmp_path):
    (tmp_path / "modules.json").write_text("[{")
    with pytest.raises(ValueError, match=r"modules.json: not valid JSON"):
        encoder_pooling(str(tmp_path))
