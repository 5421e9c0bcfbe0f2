"""What each step's output in a run folder was made with: the parameters each step reads, recorded beside its
outputs once they are written, and whether an output there may be reused for this config.

Hands the notebook steps (`pipeline`) `record_step`, `forget_step` and `reusable`, and the cell store the parameters
training reads (`TRAINING_PARAMS`) with `training_precision`, the precision `mixed_precision` resolves to on this host
(records and keys hold it, never `auto`: bf16 on one host and fp32 on another are different outputs); it builds nothing
itself.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from .config import Config
from .io import atomic_write_json, read_json
from .precision import PrecisionChoice, resolve_precision
from .runs import run_folder

# The parameters each step reads, with those of the steps it reads from: an output recorded with other values is
# rebuilt, not used. Paths, progress and resume settings change no output; study-only parameters are the studies'.
_DATA_PARAMS = ("sources", "validation_split_percentage", "test_split_percentage", "max_eval_samples",
                "max_test_samples", "min_text_chars", "max_text_chars", "dedupe", "near_dedupe", "dedupe_test",
                "remove_leakage", "seed")
_MIX_PARAMS = ("max_train_samples", "mixing_strategy", "mixing_temperature", "mixing_ratios", "mix_by", "few_shot_k",
               "target_domain", "other_label_errors", "label_error_model", "other_selection", "other_rows",
               "selection_target_texts", "augmentation", "augment_fraction", "eda_alpha", "back_translation_models")
# What continued pretraining reads (pretrain.pretrain_from_config); adapt_encoder also compares the training data.
_PRETRAINING_PARAMS = ("model_name_or_path", "pretrain_steps", "pretrain_domains", "target_domain",
                       "pretrain_max_texts", "pretrain_learning_rate", "mlm_probability", "per_device_train_batch_size",
                       "max_seq_length", "seed", "weight_decay", "warmup_ratio", "max_grad_norm", "mixed_precision")
# What fine-tuning a model reads (train, modeling, adapters); a study cell's key starts from these too (studies/store).
TRAINING_PARAMS = ("model_name_or_path", "max_seq_length", "truncation", "head_tokens", "group_by_length",
                   "pooling", "peft_method", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
                   "per_device_train_batch_size", "learning_rate", "weight_decay", "num_train_epochs", "max_steps",
                   "warmup_ratio", "gradient_accumulation_steps", "max_grad_norm", "mixed_precision",
                   "optim_implementation", "eval_strategy", "eval_steps", "metric_for_best_model",
                   "greater_is_better", "load_best_model_at_end", "early_stopping_patience")
# Parameters added after run folders were recorded, with the value every earlier output was made with: a record
# without one holds that value (a model trained before `pooling` existed read the [CLS] pooler).
PARAMS_ADDED_LATER: dict[str, Any] = {"pooling": "cls", "other_selection": "all", "other_rows": None,
                                      "selection_target_texts": None, "other_label_errors": "keep",
                                      "label_error_model": "probe"}
_FINETUNE_PARAMS = TRAINING_PARAMS + ("out_of_scope_class",)  # 03 also chooses a routing run's handover threshold
STEP_PARAMS: dict[str, tuple[str, ...]] = {
    "data": _DATA_PARAMS,  # 01: the cleaned splits
    "mix": _DATA_PARAMS + _MIX_PARAMS,  # 02: the mixed training set
    "pretraining": _PRETRAINING_PARAMS,  # 03: the adapted encoder (its record is metrics.json "pretraining")
    # 03: the model. num_processes is in its key: it sets the global batch (per device × processes × accumulation),
    # and even at the same global batch gloo/NCCL all-reduce sums gradients in another order, so the model is close
    # to but not bit-identical with one process's. Study cells train in one process each and never read it, so it
    # stays out of TRAINING_PARAMS (and the cell key); the stages before fine-tuning run in one process too.
    "finetune": tuple(dict.fromkeys(_DATA_PARAMS + _MIX_PARAMS + _PRETRAINING_PARAMS + _FINETUNE_PARAMS
                                    + ("num_processes",))),
}
STEP_PARAMS["evaluate"] = STEP_PARAMS["finetune"]  # 04: predictions and scores of that model
# 03: the intermediate task's encoder (its record is metrics.json "intermediate", with the encoder it started from)
STEP_PARAMS["intermediate"] = tuple(dict.fromkeys(_DATA_PARAMS + _FINETUNE_PARAMS))


def training_precision(config: Config) -> PrecisionChoice:
    """`config.mixed_precision` resolved on the device training runs on: a visible GPU, as Accelerate picks it,
    else the CPU (other accelerators resolve as the CPU does, to fp32 unless its flags show native bf16)."""
    return resolve_precision(config.mixed_precision, "cuda" if torch.cuda.is_available() else "cpu")


def step_params(config: Config, step: str) -> dict[str, Any]:
    """The values of `STEP_PARAMS[step]`, paths resolved as the runner records them (params.yaml), so a notebook
    opened on its own and the runner agree on a local source or model; `mixed_precision` as it resolves here. The mix
    step reads the training parameters too where fine-tuned models flag its label errors (`label_error_model`)."""
    values = config.resolved().to_params()
    names = STEP_PARAMS[step]
    if step == "mix" and config.other_label_errors != "keep" and config.label_error_model == "fine_tuned":
        names = tuple(dict.fromkeys(names + TRAINING_PARAMS))  # its flags come from models trained as these say
    if "mixed_precision" in names:
        values["mixed_precision"] = training_precision(config).mode
    return {key: values[key] for key in names}


def record_step(config: Config, step: str) -> None:
    """Record beside the run folder's outputs what `step` made them with; called once its outputs are all written."""
    params = step_params(config, step)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    atomic_write_json(run_folder(config).step_record(step), {"step": step, "fingerprint": digest, "params": params})


def forget_step(config: Config, step: str) -> None:
    """Drop `step`'s record before its outputs are replaced: a run killed in between rebuilds them rather than take
    the new outputs for the recorded ones."""
    run_folder(config).step_record(step).unlink(missing_ok=True)


def reusable(config: Config, step: str, *, made: bool) -> bool:
    """Whether `step`'s output in the run folder (`made`: it is there) was made with this config's parameters.

    An output there but made with other values, or with none recorded, is not: one line says which step and which
    parameters differ, and the caller rebuilds it.
    """
    if not made:
        return False
    path = run_folder(config).step_record(step)
    if not path.is_file():
        print(f"{step} step: its output in the run folder has no record of the parameters it was made with; "
              "rebuilding it", flush=True)
        return False
    recorded = {**PARAMS_ADDED_LATER, **read_json(path)["params"]}
    differing = {key: value for key, value in step_params(config, step).items()
                 if key not in recorded or recorded[key] != value}
    if differing:
        made_with = ", ".join(f"{key}={recorded.get(key, 'unrecorded')!r} (now {value!r})"
                              for key, value in differing.items())
        print(f"{step} step: its output in the run folder was made with {made_with}; rebuilding it", flush=True)
    return not differing
