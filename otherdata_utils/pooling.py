"""How a sentence vector is read from an encoder's token states, and the classifier that pools them (`pooling: mean`).

Hands `pool` to the frozen probe (`anchors`), `encoder_pooling` (the pooling a sentence-transformers folder declares)
and `PooledEncoderForSequenceClassification` with its config to `modeling` (which builds it from an encoder),
`adapters` (LoRA targets) and `predictor` (which loads it). Importing this module registers the classifier with
transformers' Auto classes, so `AutoModelForSequenceClassification.from_pretrained` and `pipeline()` load a saved
folder without remote code.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

# sentence-transformers' Pooling modes we compute, in the order it concatenates them when several are on
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
MASK_MEAN = ("mean_tokens",)  # a folder that declares no pooling: the mask-weighted mean over non-padding tokens
POOLED_MODEL_TYPE = "otherdata_pooled_encoder"
_ST_POOLING = "sentence_transformers.models.Pooling"
TRAINED_POOLINGS = ("cls", "mean")  # what a trained head reads (`pooling: auto` is resolved to one before training)


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor,
         modes: tuple[str, ...] | list[str] = MASK_MEAN) -> torch.Tensor:
    """One vector per text from the last hidden states, as sentence-transformers' Pooling computes it: each of
    `modes` over the non-padding tokens (`attention_mask`), concatenated in `POOLING_MODES` order."""
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown or not modes:
        raise ValueError(f"pooling modes {list(modes)}: use one or more of {list(POOLING_MODES)}")
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    tokens = mask.sum(dim=1).clamp(min=1e-9)  # sentence-transformers' guard against a text of padding only
    parts = []
    for mode in POOLING_MODES:
        if mode not in modes:
            continue
        if mode == "cls_token":
            parts.append(hidden_states[:, 0])
        elif mode == "max_tokens":
            parts.append(hidden_states.masked_fill(mask == 0, -1e9).max(dim=1).values)
        else:
            summed = (hidden_states * mask).sum(dim=1)
            parts.append(summed / tokens if mode == "mean_tokens" else summed / tokens.sqrt())
    return torch.cat(parts, dim=-1)


@dataclass(frozen=True)
class EncoderPooling:
    """The pooling an encoder's folder declares (`modes`, for `pool`) and, in words, where it was read from."""

    modes: tuple[str, ...]
    source: str


def encoder_pooling(path: str) -> EncoderPooling:
    """The sentence-transformers pooling of the encoder at `path` (its modules.json names the Pooling module's
    folder, whose config.json sets the modes); the mask-weighted token mean where `path` declares none (a plain
    transformers folder or a Hub id)."""
    folder = Path(path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return EncoderPooling(MASK_MEAN, f"mean over non-padding tokens (no sentence-transformers modules.json in "
                                         f"{path})")
    modules = _read_json(modules_file)
    pooling = [module for module in modules if module.get("type") == _ST_POOLING]
    if not pooling:
        return EncoderPooling(MASK_MEAN, f"mean over non-padding tokens ({modules_file} lists no Pooling module)")
    config_file = folder / pooling[0]["path"] / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{modules_file} names the Pooling module's folder {pooling[0]['path']!r}, which holds no "
                         f"config.json; restore {config_file} or point model_name_or_path at a complete folder")
    declared = _read_json(config_file)
    on = [key.removeprefix("pooling_mode_") for key, value in declared.items()
          if key.startswith("pooling_mode_") and value is True]
    unsupported = [mode for mode in on if mode not in POOLING_MODES]
    if unsupported or not on:
        raise ValueError(f"{config_file}: pooling modes {on} — pooling: mean computes "
                         f"{', '.join(POOLING_MODES)} (and combinations of them); use pooling: cls for this encoder")
    return EncoderPooling(tuple(mode for mode in POOLING_MODES if mode in on), str(config_file))


def resolve_pooling(requested: str, path: str) -> str:
    """`pooling: auto` made concrete for the model at `path`: mean where the folder is a sentence-transformers encoder
    (its modules.json lists a Pooling module, as the packaged MiniLM's does) or a classifier trained with mean (model
    type `otherdata_pooled_encoder`), cls elsewhere (a plain transformers folder, a Hub id). cls and mean stay as
    asked. The head study chose mean for the packaged encoder on validation rows (results/study_head_*/)."""
    if requested != "auto":
        return requested
    folder = Path(path)
    modules_file = folder / "modules.json"
    if modules_file.is_file() and any(module.get("type") == _ST_POOLING for module in _read_json(modules_file)):
        return "mean"
    config_file = folder / "config.json"
    if config_file.is_file() and _read_json(config_file).get("model_type") == POOLED_MODEL_TYPE:
        return "mean"
    return "cls"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); restore the encoder folder's sentence-transformers "
                         "files") from None


class PooledEncoderConfig(PreTrainedConfig):
    """A sequence classifier over a pooled encoder: the encoder's own config under `encoder`, the pooling modes and
    where they were read from. Reading an attribute it lacks reads the encoder's (hidden_size, num_hidden_layers,
    max_position_embeddings), as a reader of any BERT classifier's config expects."""

    model_type = POOLED_MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    encoder: PreTrainedConfig | dict | None = None
    pooling_modes: list[str] | None = None
    pooling_source: str = ""
    classifier_dropout: float | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.pooling_modes = list(self.pooling_modes or MASK_MEAN)

    def __getattr__(self, name: str) -> Any:
        # only called when the config itself has no such attribute; never for private names or before `encoder` is set
        encoder = self.__dict__.get("encoder")
        if name.startswith("_") or encoder is None or isinstance(encoder, dict):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(encoder, name)


def encoder_config(config: PreTrainedConfig) -> PreTrainedConfig:
    """The config of the encoder a classifier reads text with: a pooled classifier's `encoder`, else the config."""
    return config.encoder if isinstance(config, PooledEncoderConfig) else config


def classifier_pooling(config: PreTrainedConfig) -> str:
    """The config `pooling` a loaded classifier was built with: mean for a pooled classifier, else cls."""
    return "mean" if isinstance(config, PooledEncoderConfig) else "cls"


def without_pooler(config: PreTrainedConfig) -> dict[str, Any]:
    """Keyword arguments that build the encoder without its [CLS] pooler layer where it has one (BERT, RoBERTa): a
    layer that gets no gradient makes DistributedDataParallel fail, and it would be saved for nothing."""
    model_class = AutoModel._model_mapping[type(config)]
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class).parameters else {}


class PooledEncoderForSequenceClassification(PreTrainedModel):
    """The encoder's token states pooled as its sentence-transformers folder pools them, then dropout and a linear
    layer; loss as transformers' sequence classifiers compute it."""

    config_class = PooledEncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"

    def __init__(self, config: PooledEncoderConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = AutoModel.from_config(config.encoder, **without_pooler(config.encoder))
        dropout = config.classifier_dropout
        if dropout is None:
            dropout = getattr(config.encoder, "hidden_dropout_prob", getattr(config.encoder, "dropout", 0.1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.encoder.hidden_size * len(config.pooling_modes), config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # the head as the encoder's own classifiers start theirs (BERT: normal with the encoder's initializer_range)
        std = getattr(self.config.encoder, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                **kwargs: Any) -> SequenceClassifierOutput:
        kwargs.pop("return_dict", None)  # always a SequenceClassifierOutput, which peft and the loop read
        if attention_mask is None:
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
            attention_mask = torch.ones(shape, dtype=torch.long,
                                        device=(input_ids if input_ids is not None else inputs_embeds).device)
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        for name, value in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            if value is not None:
                encoder_inputs[name] = value
        outputs = self.encoder(**encoder_inputs, **kwargs)
        pooled = pool(outputs.last_hidden_state, attention_mask, self.config.pooling_modes)
        logits = self.classifier(self.dropout(pooled))
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)


def pooled_classifier(encoder_path: str, *, num_labels: int, id2label: dict[int, str],
                      use_safetensors: Optional[bool] = None) -> PooledEncoderForSequenceClassification:
    """A new pooled classifier over the encoder at `encoder_path` (a base encoder, or a classifier whose encoder is
    reused), pooling as `encoder_pooling` reads it there; the head is new (seed before calling)."""
    choice = encoder_pooling(encoder_path)
    base_config = AutoConfig.from_pretrained(encoder_path, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(encoder_path, trust_remote_code=False, use_safetensors=use_safetensors,
                                        **without_pooler(base_config))
    config = PooledEncoderConfig(encoder=encoder.config.to_dict(), pooling_modes=list(choice.modes),
                                 pooling_source=choice.source, num_labels=num_labels, id2label=id2label,
                                 label2id={name: i for i, name in id2label.items()})
    model = PooledEncoderForSequenceClassification(config)
    model.encoder.load_state_dict(encoder.state_dict())
    return model


# Registered at import, as transformers documents for models outside the library: Auto classes and pipeline() then
# load a saved folder by its model_type, with no trust_remote_code.
AutoConfig.register(POOLED_MODEL_TYPE, PooledEncoderConfig, exist_ok=True)
AutoModelForSequenceClassification.register(PooledEncoderConfig, PooledEncoderForSequenceClassification,
                                            exist_ok=True)
