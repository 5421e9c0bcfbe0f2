"""Training contenders: our loop (fp32 and bf16 autocast), the seed-style loop, transformers' Trainer, and our loop
with one thing changed.

Hands on one timed run's seconds, per-step times, peak memory and held-out accuracy (`train_contender`) and the
ablation summary.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from datasets import Dataset
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from .. import model_card, modeling, train
from ..config import Config
from .machine import PeakRSS, release_memory, rss_mb
from .tables import stats
from .workload import LABEL_NAMES, BenchSettings, log, rotated


def train_contender(name: str, config: Config, tokenizer: PreTrainedTokenizerBase, warm: Dataset, measure: Dataset,
                    workdir: Path, *, heldout: Optional[Dataset] = None, threads: Optional[int] = None,
                    attention: Optional[str] = None, save_to: Optional[Path] = None) -> dict[str, Any]:
    """Fresh model, untimed warm-up steps on `warm`, then one timed epoch over `measure`; time and peak memory.

    Model loading and tokenisation are outside the timing; the clock runs from the first forward pass of the
    timed run to the end of its last optimizer step. `heldout` (tokenised, labelled) is scored after the timing, in
    the contender's precision, so every row's speed comes with its accuracy on the same texts. `threads` runs it on
    that many torch threads, `attention` with that attention implementation ("eager", "sdpa"); `save_to` keeps the
    trained model with its inference settings (for the inference runs), as `pipeline.finetune` saves it.
    """
    runner, precision = CONTENDER_RUNS[name]
    config = config.replace(mixed_precision=precision)
    fresh_accelerator_state()
    release_memory()
    rss_before = rss_mb()
    with PeakRSS() as whole, (_torch_threads(threads) if threads else contextlib.nullcontext()):
        model, _ = modeling.load_model_and_tokenizer(config, LABEL_NAMES)
        if attention is not None:
            model.set_attn_implementation(attention)
        used_threads = torch.get_num_threads()
        runner(model, tokenizer, warm, config.replace(max_steps=len(warm) // config.per_device_train_batch_size),
               workdir / "warmup")
        with PeakRSS() as steps, StepClock(model) as clock:
            runner(model, tokenizer, measure, config, workdir / "timed")
    # after the memory block, which covers loading and training only
    accuracy = heldout_accuracy(model, tokenizer, heldout, config) if heldout is not None else None
    if save_to is not None:
        with modeling.quiet_transformers():
            modeling.save_model(model, tokenizer, save_to)
        model_card.write_inference_settings(save_to, config)  # after save_model, which swaps in a whole new folder
    del model
    if len(clock.step_ends) != config.max_steps:
        raise RuntimeError(f"{name}: timed {len(clock.step_ends)} optimizer steps, expected {config.max_steps}")
    seconds = clock.seconds()
    return {
        "seconds": seconds,
        "examples_per_second": len(measure) / seconds,
        "step_seconds": clock.step_seconds(),
        "cpu_seconds": clock.cpu_end - clock.cpu_start,
        "threads": used_threads,
        "precision": precision,
        "accuracy": accuracy,
        "rss_before_mb": rss_before,
        "peak_rss_mb": steps.peak_mb,
        "peak_rss_whole_mb": whole.peak_mb,
    }


def fresh_accelerator_state() -> None:
    """Forget Accelerate's process-wide state before a contender builds its Accelerator (or Trainer does).

    Accelerate keeps one `AcceleratorState` per process and refuses an Accelerator with another mixed_precision than
    the first one's, while a plain `Accelerator()` silently inherits it; the bench alternates fp32 and bf16 runs in
    one process, so each run starts from no state, as it would in a process of its own.
    """
    AcceleratorState._reset_state()


def heldout_accuracy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, heldout: Dataset,
                     config: Config) -> float:
    """Accuracy of the trained `model` on the labelled `heldout` rows, predicted in `config.mixed_precision`."""
    fresh_accelerator_state()
    scores, _ = train.evaluate(model, heldout, tokenizer, config, LABEL_NAMES,
                               accelerator=Accelerator(mixed_precision=config.mixed_precision))
    return float(scores["accuracy"])


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_ours(model, tokenizer, split, config: Config, output_dir: Path) -> None:
    """train.train as the notebooks call it: length-grouped batches, dynamic padding, fused AdamW, linear schedule."""
    train.train(config, model, tokenizer, {"train": split}, output_dir=output_dir, label_names=LABEL_NAMES)


def seed_style_train(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, split: Dataset, *, batch_size: int,
                     max_seq_length: int, learning_rate: float, steps: int, seed: int) -> None:
    """The loop this project started from: random batches padded to max_seq_length, plain AdamW, no schedule."""
    inputs = split.select_columns(["input_ids", "attention_mask", "labels"]).with_format("torch")
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_seq_length)
    loader = DataLoader(inputs, batch_sampler=modeling.RandomBatchSampler(len(inputs), batch_size, seed=seed),
                        collate_fn=collator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, foreach=False, fused=False)
    model.train()
    for _, batch in zip(range(steps), loader):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def _run_seed_style(model, tokenizer, split, config: Config, output_dir: Path) -> None:
    seed_style_train(model, tokenizer, split, batch_size=config.per_device_train_batch_size,
                     max_seq_length=config.max_seq_length, learning_rate=config.learning_rate,
                     steps=config.max_steps, seed=config.seed)


def trainer_arguments(config: Config, output_dir: Path) -> TrainingArguments:
    """transformers' Trainer set up like our loop: same batch, lr, decay, warm-up, clipping; length-grouped batches.

    transformers 5 calls the option ``train_sampling_strategy="group_by_length"`` (4.x: ``group_by_length=True``);
    its default optimizer on torch ≥ 2.8 is ``adamw_torch_fused``, the same kernel our loop uses.
    """
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the steps in transformers 5
        max_grad_norm=config.max_grad_norm,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=config.seed,
    )


def _run_trainer(model, tokenizer, split, config: Config, output_dir: Path) -> None:
    with modeling.quiet_transformers():
        trainer = Trainer(model=model, args=trainer_arguments(config, output_dir),
                          train_dataset=split.remove_columns([c for c in ("id", "domain") if c in split.column_names]),
                          processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict to stdout
        trainer.train()


# contender -> (how it trains, Accelerate's mixed_precision for our loop and Trainer; the seed-style loop has no
# Accelerator and always runs fp32)
CONTENDER_RUNS = {"ours": (_run_ours, "no"), "ours_bf16": (_run_ours, "bf16"), "seed_style": (_run_seed_style, "no"),
                  "trainer": (_run_trainer, "no")}


class StepClock:
    """Times the training of one model: from its first forward call to the end of each optimizer step after it.

    Optimizer steps before the first forward (build_optimizer's one-parameter probe) are not counted.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.first_forward: Optional[float] = None
        self.step_ends: list[float] = []
        self.cpu_start = self.cpu_end = 0.0  # process CPU time: less sensitive to other processes than wall time

    def __enter__(self) -> "StepClock":
        self._hooks = [self.model.register_forward_pre_hook(self._on_forward),
                       register_optimizer_step_post_hook(self._on_step)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()

    def _on_forward(self, module: torch.nn.Module, args: Any) -> None:
        if self.first_forward is None:
            self.first_forward = time.perf_counter()
            self.cpu_start = time.process_time()

    def _on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.first_forward is not None:
            self.step_ends.append(time.perf_counter())
            self.cpu_end = time.process_time()

    def seconds(self) -> float:
        return self.step_ends[-1] - self.first_forward

    def step_seconds(self) -> list[float]:
        return list(np.diff([self.first_forward, *self.step_ends]))


# --- ablations: what each part of our loop is worth -----------------------------------------------------------------

def run_ablations(settings: BenchSettings, config: Config, tokenizer: PreTrainedTokenizerBase, warm: Dataset,
                  measure: Dataset, workdir: Path, *, baselines: dict[str, list[dict]],
                  heldout: Optional[Dataset] = None) -> dict[str, Any]:
    """Our loop with one thing changed at a time; each variant against its contender's runs in the main table
    (`baselines`: contender -> runs), with its accuracy on `heldout`; bf16 variants only where the main table has
    our loop in bf16."""
    # name -> (label, contender, its config, train_contender options): each a real option of the loop or the model.
    variants: dict[str, tuple[str, str, Config, dict[str, Any]]] = {
        "random_batches": ("random batches, dynamic padding (no length grouping)", "ours",
                           config.replace(group_by_length=False), {}),
        "foreach_adamw": ("foreach AdamW instead of fused", "ours", config.replace(optim_implementation="foreach"),
                          {}),
        "eager_attention": ("eager attention instead of SDPA", "ours", config, {"attention": "eager"}),
        "one_thread": ("1 torch thread instead of all cores", "ours", config, {"threads": 1}),
        # how bf16's gain changes with threads: the part of a step that does not shrink with bf16 matmuls
        "bf16_one_thread": ("bf16 autocast on 1 torch thread instead of all cores", "ours_bf16", config,
                            {"threads": 1}),
    }
    variants = {name: variant for name, variant in variants.items() if variant[1] in baselines}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    accuracies: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(settings.repeats):
        for name in rotated(list(variants), repeat):
            _, contender, variant_config, options = variants[name]
            run = train_contender(contender, variant_config, tokenizer, warm, measure,
                                  workdir / f"ablation-{name}-{repeat}", heldout=heldout, **options)
            rates[name].append(run["examples_per_second"])
            if run["accuracy"] is not None:
                accuracies[name].append(run["accuracy"])
            log(f"ablation {repeat + 1}/{settings.repeats} {name}: {run['examples_per_second']:.2f} ex/s")
    return {name: {"label": label, "baseline": contender, "examples_per_second": stats(rates[name]),
                   "accuracy": stats(accuracies[name]) if accuracies[name] else None,
                   "vs_baseline": statistics.median(rates[name]) / statistics.median(
                       [run["examples_per_second"] for run in baselines[contender]])}
            for name, (label, contender, _, _) in variants.items()}
