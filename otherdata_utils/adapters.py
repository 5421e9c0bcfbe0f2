"""Parameter-efficient tuning through peft: LoRA or AdaLoRA adapters on a classifier, and the loop's PEFT hooks.

Hands `apply_peft` to `modeling`, and to `train` the hooks that save, restore and merge adapters and step AdaLoRA.
"""
from __future__ import annotations

import copy
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file
from transformers import PreTrainedModel

from .config import Config
from .pooling import PooledEncoderConfig, encoder_config

ADAPTER_DIR = "adapter"  # inside a best_model folder: the PEFT adapter that training restores


def apply_peft(model: PreTrainedModel, config: Config) -> torch.nn.Module:
    """`model` wrapped for `config.peft_method`: LoRA or AdaLoRA adapters on `lora_target_modules`, the new
    classification head fully trainable; "none" returns the model as it is."""
    if config.peft_method == "none":
        return model
    # peft is an optional extra (otherdata[studies]): only a run that asks for adapters needs it installed.
    from peft import AdaLoraConfig, LoraConfig, TaskType, get_peft_model

    # TaskType.SEQ_CLS makes peft keep the classification head ("classifier" / "score") fully trainable
    # (modules_to_save): a freshly initialised head cannot be learnt through adapters alone.
    shared = {"task_type": TaskType.SEQ_CLS, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
              "target_modules": config.lora_target_modules or _default_targets(model, config.peft_method)}
    if config.peft_method == "lora":
        peft_config = LoraConfig(r=config.lora_r, **shared)
    else:
        # AdaLoRA (Zhang et al., ICLR 2023) starts every adapter at 1.5 × the target rank and prunes to lora_r on
        # average. Its schedule needs the number of optimizer steps, which only the training loop knows:
        # `after_optimizer_step` sets it then.
        peft_config = AdaLoraConfig(init_r=math.ceil(1.5 * config.lora_r), target_r=config.lora_r,
                                    total_step=max(config.max_steps, 1), **shared)
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`: nothing for a user to act on.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            return get_peft_model(model, peft_config)
    except ValueError as error:
        raise ValueError(
            f"peft_method={config.peft_method!r} on {config.model_name_or_path!r} "
            f"({encoder_config(model.config).model_type}): "
            f"{error}. Set lora_target_modules to the names of this model's attention projections "
            "(BERT, RoBERTa, XLM-R: [query, value]; DistilBERT: [q_lin, v_lin])"
        ) from None


def _default_targets(model: PreTrainedModel, method: str) -> Optional[list[str]]:
    """peft's default target modules for a pooled classifier's encoder type (peft knows them by model_type, and a
    pooled classifier's own type is not the encoder's); None, peft's own lookup, for any other model."""
    if not isinstance(model.config, PooledEncoderConfig):
        return None
    from peft.utils.constants import (TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING,
                                      TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)

    defaults = (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING if method == "lora"
                else TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING)
    return defaults.get(model.config.encoder.model_type)


def is_peft_model(model: torch.nn.Module) -> bool:
    # Only an imported peft can have built a PeftModel, so plain models never pay for importing it.
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and all parameters (a PEFT model counts its adapters and both copies of the saved head, as peft's
    own `print_trainable_parameters` does)."""
    return {"trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in model.parameters())}


def plain_model(model: torch.nn.Module) -> PreTrainedModel:
    """A plain transformers model: a PEFT model's adapters merged into a copy of its weights (the original keeps
    its adapters and can train on); any other model as it is. `pipeline()` and `serve` load what this saves."""
    if not is_peft_model(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def save_adapter(model: torch.nn.Module, folder: Path) -> None:
    """A PEFT model's adapter (weights and config) in folder/adapter, for `restore_adapter`; nothing otherwise."""
    if is_peft_model(model):
        model.save_pretrained(str(Path(folder) / ADAPTER_DIR))


def restore_adapter(model: torch.nn.Module, folder: Path) -> bool:
    """Load folder/adapter into a PEFT model's adapters and trainable head; False (nothing done) for other models."""
    if not is_peft_model(model):
        return False
    from peft import set_peft_model_state_dict  # only reached with a PEFT model: peft is installed and loaded

    adapter = Path(folder) / ADAPTER_DIR
    live = model.peft_config[model.active_adapter]
    if getattr(live, "rank_pattern", None) is not None:
        # AdaLoRA saves each adapter cut to the rank pattern of its moment, and peft cuts the live model by the live
        # pattern before loading: a checkpoint from before a later re-allocation must bring its own pattern.
        live.rank_pattern = json.loads((adapter / "adapter_config.json").read_text())["rank_pattern"]
    set_peft_model_state_dict(model, load_file(str(adapter / "adapter_model.safetensors")))
    return True


def after_optimizer_step(model: torch.nn.Module, steps_done: int, total_steps: int) -> None:
    """AdaLoRA's rank allocation after an optimizer step (`steps_done` counts it); nothing for other models.

    AdaLoRA scores every adapter rank by its weight × gradient and prunes the least important on a schedule:
    ranks are kept for the first tenth of training, pruned towards the budget, then frozen for the last fifth.
    It must run after the optimizer step and before the gradients are zeroed.
    """
    if not is_peft_model(model) or not hasattr(model.base_model, "update_and_allocate"):
        return
    schedule = model.peft_config[model.active_adapter]
    if schedule.total_step != total_steps:
        schedule.total_step, schedule.tinit, schedule.tfinal = total_steps, total_steps // 10, total_steps // 5
    model.base_model.update_and_allocate(steps_done)
