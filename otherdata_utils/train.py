"""The training loop on accelerate.Accelerator: AdamW, linear warmup and decay, evaluation, early stopping, checkpoints.

Takes a model, tokenizer and tokenised splits from `modeling`; hands back a `TrainResult` and `Predictions`. Training
and prediction compute in the precision `mixed_precision` resolves to here (`precision_accelerator`: Accelerate's
autocast; weights and optimizer stay fp32).
"""
from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.tracking import GeneralTracker
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from .adapters import after_optimizer_step, plain_model, restore_adapter, save_adapter
from .checkpoints import CHECKPOINTS, LoopState, find_checkpoint, resume, save_checkpoint
from .config import Config
from .io import atomic_write_json, read_json
from .metrics import compute_classification_metrics
from .modeling import make_dataloader, quiet_transformers, save_model
from .precision import PrecisionChoice
from .progress import StepLines, say, to_runner
from .runs import is_quiet
from .step_records import training_precision
from .trackers import TRACKER_PROJECT, announce_offline_wandb, build_trackers, check_trackers

logger = logging.getLogger(__name__)

BEST_MODEL = "best_model"
BEST_INFO = "best_model_info.json"


@dataclass
class TrainResult:
    """What a training run did.

    `history` holds one row per logging step (loss, learning_rate) and one per evaluation (eval_* metrics).
    `epochs_completed` counts whole epochs' worth of optimizer steps. Training throughputs count time in training
    steps only (not evaluation or checkpoints) and real, non-padding tokens; eval throughputs are over all
    evaluations of this call (None if none ran). `best_model_dir` is None unless the best model was restored.
    """

    history: list[dict]
    best_metric: Optional[float]
    best_step: Optional[int]
    global_step: int
    epochs_completed: int
    stopped_early: bool
    train_runtime_s: float
    train_examples_per_second: float
    train_tokens_per_second: float
    eval_examples_per_second: Optional[float]
    eval_tokens_per_second: Optional[float]
    best_model_dir: Optional[Path]


@dataclass
class Predictions:
    """Model outputs in the split's own row order; labels, ids and domains are None where the split has none."""

    logits: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    labels: Optional[np.ndarray]
    ids: Optional[list[str]] = None
    domains: Optional[list[str]] = None


def train(
    config: Config,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tokenized: DatasetDict,
    *,
    output_dir: Path,
    label_names: Sequence[str],
    accelerator: Optional[Accelerator] = None,
    stop_after_steps: Optional[int] = None,
) -> TrainResult:
    """Fine-tune `model` on tokenized["train"], evaluating on tokenized["validation"]; returns what happened.

    Seed before building the model (`modeling.load_model_and_tokenizer` does). Checkpoints go to
    output_dir/checkpoints/step-N (accelerator state + loop_state.json), the best model to output_dir/best_model.
    `config.resume_from_checkpoint` ("auto" = latest, or a folder) continues the same run: same batches, RNG and
    schedule, so the result equals an uninterrupted run. `stop_after_steps` stops after that many optimizer steps
    (schedule unchanged) and saves a checkpoint there, to resume later. Runs unchanged under `accelerate launch`.
    `config.mixed_precision` resolves on this host (`step_records.training_precision`); a caller's accelerator must
    compute in that precision.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    label_names = list(label_names)
    evaluating = config.eval_strategy != "no"
    if evaluating and "validation" not in tokenized:
        raise ValueError(f"eval_strategy={config.eval_strategy!r} needs a 'validation' split; got {list(tokenized)}")
    metric_key = config.metric_for_best_model.removeprefix("eval_")
    if evaluating:
        _check_metric_name(metric_key, label_names)
    precision = training_precision(config)
    trackers: list[GeneralTracker] = []
    if accelerator is None:  # a caller's accelerator logs to the trackers it was built with
        check_trackers(config)
        trackers = build_trackers(config, output_dir)
        accelerator = precision_accelerator(
            precision, gradient_accumulation_steps=config.gradient_accumulation_steps, log_with=trackers or None)
    elif accelerator.mixed_precision != precision.mode:
        raise ValueError(f"mixed_precision={config.mixed_precision!r} resolves to {precision.mode!r} here, but the "
                         f"accelerator passed to train() computes in {accelerator.mixed_precision!r}; build it with "
                         "train.precision_accelerator(step_records.training_precision(config))")
    else:
        accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps
    logger.info("training in %s", precision.summary)

    # --- data: seeded, length-grouped training batches; evaluation batches sorted by length
    pad_multiple = 8 if accelerator.device.type == "cuda" else None  # tensor cores like multiples of 8
    train_loader = make_dataloader(
        tokenized["train"], tokenizer, batch_size=config.per_device_train_batch_size, shuffle=True,
        group_by_length=config.group_by_length, seed=config.seed, pad_to_multiple_of=pad_multiple,
    )
    # accelerate wraps the loader; keep our sampler to give it the epoch ourselves.
    batch_sampler = train_loader.batch_sampler
    eval_loader = eval_order = None
    if evaluating:
        eval_loader = make_dataloader(
            tokenized["validation"], tokenizer, batch_size=config.per_device_eval_batch_size, shuffle=False,
            group_by_length=True, seed=config.seed, pad_to_multiple_of=pad_multiple,
        )
        eval_order = np.asarray(eval_loader.sampler)

    # --- schedule: counted in optimizer steps; each process sees 1/num_processes of the batches
    batches_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    if config.max_steps > 0:
        total_steps = config.max_steps
    else:
        total_steps = max(1, math.ceil(config.num_train_epochs * steps_per_epoch))
    num_epochs = math.ceil(total_steps / steps_per_epoch)

    # --- optimizer and schedule, then let accelerate place and wrap everything
    model.to(accelerator.device)
    optimizer = build_optimizer(model, config)
    # An accelerate-wrapped scheduler steps once per process at each optimizer step (run_glue_no_trainer does this).
    scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=math.ceil(config.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    # --- start, or continue the run a checkpoint left off
    state = LoopState(total_steps=total_steps, batches_per_epoch=batches_per_epoch)
    checkpoint = find_checkpoint(config.resume_from_checkpoint, output_dir)
    if checkpoint is not None:
        state = resume(accelerator, checkpoint, state)
    elif accelerator.is_main_process:
        _clear_previous_run(output_dir)
    accelerator.wait_for_everyone()
    if trackers:  # every tracker gets the scalar hyperparameters, then the same losses and evaluations
        accelerator.init_trackers(TRACKER_PROJECT, config={k: v for k, v in config.to_params().items()
                                                           if isinstance(v, (int, float, str, bool))})
        announce_offline_wandb(accelerator)

    train_seconds = eval_seconds = 0.0
    eval_examples = eval_tokens = 0
    train_examples = torch.zeros((), dtype=torch.long, device=accelerator.device)
    train_tokens = torch.zeros((), dtype=torch.long, device=accelerator.device)
    running_loss = torch.tensor(state.running_loss, device=accelerator.device)
    running_batches = state.running_batches
    stopped_early = interrupted = False

    def evaluate_and_track() -> None:
        """Score the validation split, record it, keep the best model on disk, count patience."""
        nonlocal eval_seconds, eval_examples, eval_tokens, stopped_early
        tick = time.perf_counter()
        predictions, tokens = _predict_loader(model, eval_loader, eval_order, accelerator)
        scores = _score(predictions, label_names)
        seconds = time.perf_counter() - tick
        eval_seconds += seconds
        eval_examples += len(predictions.predicted)
        eval_tokens += tokens
        entry = {"step": state.global_step, "epoch": round(state.global_step / steps_per_epoch, 4)}
        entry.update({f"eval_{k}": v for k, v in scores.items() if isinstance(v, (int, float))})
        entry["eval_examples_per_second"] = len(predictions.predicted) / seconds
        state.history.append(entry)
        accelerator.log({k: v for k, v in entry.items() if k not in ("step", "epoch")}, step=state.global_step)
        value = scores[metric_key]
        if state.best_metric is None or (value > state.best_metric if config.greater_is_better
                                         else value < state.best_metric):
            state.best_metric, state.best_step, state.patience_counter = value, state.global_step, 0
            if config.load_best_model_at_end:
                with quiet_transformers(is_quiet(config)):
                    _save_best_model(accelerator, model, tokenizer, output_dir, state, metric_key)
        else:
            state.patience_counter += 1
            stopped_early = (config.early_stopping_patience is not None
                             and state.patience_counter >= config.early_stopping_patience)
        model.train()

    # --- the loop
    progress = tqdm(total=total_steps, initial=state.global_step, desc="Training",
                    disable=is_quiet(config) or not accelerator.is_local_main_process)
    # the runner's terminal sees no tqdm bar: a line every 30 s instead (a study's quiet cells stay silent)
    step_lines = StepLines(total_steps, state.global_step, enabled=config.quiet is None and to_runner()
                           and accelerator.is_local_main_process)
    if step_lines.enabled:
        say(f"training in {precision.summary}")
    model.train()
    for epoch in range(state.epoch, num_epochs):
        state.epoch = epoch
        batch_sampler.set_epoch(epoch)
        train_loader.set_epoch(epoch)
        # Mid-epoch resume: the same batches in the same order, minus the ones already trained on.
        loader = accelerator.skip_first_batches(train_loader, state.batches_in_epoch) if state.batches_in_epoch \
            else train_loader
        tick = time.perf_counter()
        for batch in loader:
            if state.global_step >= total_steps:  # resumed from the last step: only the epoch's end is left
                break
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:  # AdaLoRA re-allocates adapter ranks from these gradients
                    after_optimizer_step(accelerator.unwrap_model(model), state.global_step + 1, total_steps)
                scheduler.step()
                optimizer.zero_grad()
            state.batches_in_epoch += 1
            running_loss += loss.detach()
            running_batches += 1
            train_examples += batch["labels"].numel()
            train_tokens += batch["attention_mask"].sum()
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            progress.update(1)
            step_lines.update(state.global_step)
            if state.global_step % config.logging_steps == 0:
                mean_loss = accelerator.reduce(running_loss / running_batches, reduction="mean").item()
                entry = {"step": state.global_step, "epoch": round(state.global_step / steps_per_epoch, 4),
                         "loss": mean_loss, "learning_rate": scheduler.get_last_lr()[0]}
                state.history.append(entry)
                accelerator.log({"loss": mean_loss, "learning_rate": entry["learning_rate"]}, step=state.global_step)
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                step_lines.loss = mean_loss
                running_loss.zero_()
                running_batches = 0
            train_seconds += time.perf_counter() - tick
            if config.eval_strategy == "steps" and state.global_step % config.eval_steps == 0:
                evaluate_and_track()
            interrupted = stop_after_steps is not None and stop_after_steps <= state.global_step < total_steps
            if (config.save_strategy == "steps" and state.global_step % config.save_steps == 0) or \
                    (interrupted and config.save_strategy != "no"):
                state.running_loss = accelerator.reduce(running_loss, reduction="mean").item()
                state.running_batches = running_batches
                save_checkpoint(accelerator, output_dir, state, config.save_total_limit)
            tick = time.perf_counter()
            if stopped_early or interrupted or state.global_step >= total_steps:
                break
        train_seconds += time.perf_counter() - tick
        if stopped_early or interrupted:
            break
        # The epoch is over (or training ends inside it): evaluate and save at its end.
        state.epoch, state.batches_in_epoch = epoch + 1, 0
        if config.eval_strategy == "epoch":
            evaluate_and_track()
        if config.save_strategy == "epoch":
            state.running_loss = accelerator.reduce(running_loss, reduction="mean").item()
            state.running_batches = running_batches
            save_checkpoint(accelerator, output_dir, state, config.save_total_limit)
        if stopped_early or state.global_step >= total_steps:
            break
    progress.close()

    # --- finish: best weights back into the model, throughput over all processes
    accelerator.wait_for_everyone()
    best_model_dir = None
    if evaluating and config.load_best_model_at_end and not interrupted:
        with quiet_transformers(is_quiet(config)):
            best_model_dir = _restore_best_model(accelerator, model, output_dir, state)
    train_examples = int(accelerator.reduce(train_examples, reduction="sum").item())
    train_tokens = int(accelerator.reduce(train_tokens, reduction="sum").item())
    # Not accelerator.end_training(): that also tears down the process group, and studies call train() in a loop.
    for tracker in accelerator.trackers:
        tracker.finish()
    return TrainResult(
        history=state.history,
        best_metric=state.best_metric,
        best_step=state.best_step,
        global_step=state.global_step,
        epochs_completed=state.global_step // steps_per_epoch,
        stopped_early=stopped_early,
        train_runtime_s=time.perf_counter() - started,
        train_examples_per_second=train_examples / max(train_seconds, 1e-9),
        train_tokens_per_second=train_tokens / max(train_seconds, 1e-9),
        eval_examples_per_second=eval_examples / eval_seconds if eval_seconds else None,
        eval_tokens_per_second=eval_tokens / eval_seconds if eval_seconds else None,
        best_model_dir=best_model_dir,
    )


def precision_accelerator(precision: PrecisionChoice, **options: Any) -> Accelerator:
    """An Accelerator (built with `options`) whose autocast computes in `precision.mode`; parameters, gradients and
    the optimizer state stay fp32.

    Accelerate keeps one precision per process and refuses to build an Accelerator in another one. A notebook or a
    study that trains in fp32 and in bf16 in turn needs both, so a change of precision starts Accelerate's state
    afresh; the process group (kept in its PartialState) stays.
    """
    if AcceleratorState._shared_state.get("_mixed_precision", precision.mode) != precision.mode:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision.mode, **options)


def build_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and normalisation weights.

    `config.optim_implementation` picks the kernel: "fused", "foreach", or "auto" (fused where the device has it).
    """
    no_decay = {
        f"{module_name}.{name}" if module_name else name
        for module_name, module in model.named_modules() if "norm" in type(module).__name__.lower()
        for name, _ in module.named_parameters(recurse=False)
    }
    decay, keep = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (keep if name in no_decay or name.endswith("bias") else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    device = next(model.parameters()).device
    implementation = config.optim_implementation
    if implementation == "auto":
        implementation = "fused" if _fused_adamw_works(device) else "foreach"
    elif implementation == "fused" and not _fused_adamw_works(device):
        raise ValueError(f"optim_implementation='fused': torch {torch.__version__} has no fused AdamW on "
                         f"{device.type}; set optim_implementation to 'auto' or 'foreach'")
    if implementation == "fused":
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    return torch.optim.AdamW(groups, lr=config.learning_rate, foreach=True)


def _fused_adamw_works(device: torch.device) -> bool:
    # torch checks fused support lazily at the first step, so try one step on a throwaway parameter.
    probe = torch.zeros(1, device=device, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        torch.optim.AdamW([probe], fused=True).step()
    except RuntimeError:
        return False
    return True


# --- prediction and scoring -------------------------------------------------------------------------------------------

def predict(
    model: PreTrainedModel,
    split: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    config: Config,
    *,
    accelerator: Optional[Accelerator] = None,
) -> Predictions:
    """Logits, predicted ids and probabilities for a tokenised split, in its own row order (batched by length),
    computed in the precision training used (`config.mixed_precision` as it resolves here)."""
    accelerator = accelerator or precision_accelerator(training_precision(config))
    loader = make_dataloader(split, tokenizer, batch_size=config.per_device_eval_batch_size, shuffle=False,
                             group_by_length=True, seed=config.seed)
    order = np.asarray(loader.sampler)
    model.to(accelerator.device)
    predictions, _ = _predict_loader(model, accelerator.prepare_data_loader(loader), order, accelerator)
    predictions.ids = list(split["id"]) if "id" in split.column_names else None
    predictions.domains = list(split["domain"]) if "domain" in split.column_names else None
    return predictions


def evaluate(
    model: PreTrainedModel,
    split: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    config: Config,
    label_names: Sequence[str],
    *,
    accelerator: Optional[Accelerator] = None,
) -> tuple[dict[str, Any], Predictions]:
    """`metrics.compute_classification_metrics` plus the mean cross-entropy `loss`, and the predictions."""
    predictions = predict(model, split, tokenizer, config, accelerator=accelerator)
    return _score(predictions, list(label_names)), predictions


def _predict_loader(
    model: torch.nn.Module, loader: DataLoader, order: np.ndarray, accelerator: Accelerator
) -> tuple[Predictions, int]:
    """Run a (prepared) loader; gather across processes; undo the loader's row order. Also counts real tokens."""
    model.eval()
    logits, labels, tokens = [], [], 0
    with torch.inference_mode(), accelerator.autocast():
        for batch in loader:
            batch_labels = batch.pop("labels", None)
            output = model(**batch).logits.float()
            logits.append(accelerator.gather_for_metrics(output).cpu())
            tokens += int(accelerator.gather_for_metrics(batch["attention_mask"].sum(dim=1)).sum())
            if batch_labels is not None:
                labels.append(accelerator.gather_for_metrics(batch_labels).cpu())
    # Row i of the gathered output is row order[i] of the split.
    in_order = np.empty_like(order)
    in_order[order] = np.arange(len(order))
    stacked = torch.cat(logits)[torch.from_numpy(in_order)]
    return Predictions(
        logits=stacked.numpy(),
        predicted=stacked.argmax(dim=-1).numpy(),
        probabilities=torch.softmax(stacked, dim=-1).numpy(),
        labels=torch.cat(labels)[torch.from_numpy(in_order)].numpy() if labels else None,
    ), tokens


def _score(predictions: Predictions, label_names: list[str]) -> dict[str, Any]:
    if predictions.labels is None:
        raise ValueError("cannot score a split without labels: it has no 'labels' column")
    scores = compute_classification_metrics(predictions.labels, predictions.predicted, label_names)
    scores["loss"] = float(F.cross_entropy(torch.from_numpy(predictions.logits),
                                           torch.from_numpy(predictions.labels).long()))
    return scores


def _check_metric_name(metric_key: str, label_names: list[str]) -> None:
    known = [k for k, v in compute_classification_metrics([0], [0], label_names).items()
             if isinstance(v, (int, float))] + ["loss"]
    if metric_key not in known:
        raise ValueError(f"metric_for_best_model={metric_key!r} is not a validation metric; choose one of {known}")


def _clear_previous_run(output_dir: Path) -> None:
    """A fresh run replaces the checkpoints and best model an earlier run left, so 'auto' never resumes those."""
    for stale in (output_dir / CHECKPOINTS, output_dir / BEST_MODEL):
        if stale.exists():
            logger.warning("starting afresh: removing %s from an earlier run", stale)
            shutil.rmtree(stale)


def _save_best_model(accelerator: Accelerator, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                     output_dir: Path, state: LoopState, metric_key: str) -> None:
    unwrapped = accelerator.unwrap_model(model)
    # A PEFT model is saved merged (a plain transformers folder) and with its adapter, which restoring reads back.
    folder = save_model(plain_model(unwrapped), tokenizer, output_dir / BEST_MODEL)
    if accelerator.is_main_process:
        save_adapter(unwrapped, folder)
        atomic_write_json(folder / BEST_INFO, {"step": state.best_step, metric_key: state.best_metric})
    accelerator.wait_for_everyone()


def _restore_best_model(accelerator: Accelerator, model: torch.nn.Module, output_dir: Path,
                        state: LoopState) -> Optional[Path]:
    """Load output_dir/best_model into `model` if it is the best step's; None (final weights kept) otherwise."""
    folder = output_dir / BEST_MODEL
    info = read_json(folder / BEST_INFO) if (folder / BEST_INFO).is_file() else {}
    if info.get("step") != state.best_step:
        # A resumed run that did not repeat the interrupted run's evaluations exactly can leave a stale folder.
        logger.warning("%s is not from the best step %s; keeping the final weights", folder, state.best_step)
        return None
    unwrapped = accelerator.unwrap_model(model)
    if restore_adapter(unwrapped, folder):
        return folder
    best = type(unwrapped).from_pretrained(folder)
    unwrapped.load_state_dict(best.state_dict())
    return folder
