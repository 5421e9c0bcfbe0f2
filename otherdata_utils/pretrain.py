"""Continued masked-language-model pretraining (DAPT / TAPT, Gururangan et al. 2020) on unlabelled text.

Hands on a saved model folder (encoder + MLM head + tokenizer); `pretrained_model_config` points fine-tuning at it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from accelerate.utils import set_seed
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from .config import Config
from .modeling import quiet_transformers, resolve_model_path, save_model
from .runs import is_quiet
from .step_records import training_precision
from .train import build_optimizer, precision_accelerator

EVAL_SPLITS = ("validation", "test")
HELDOUT_BATCH_SIZE = 64


@dataclass
class PretrainResult:
    """What continued pretraining did. `seconds` counts the training steps only (not loading, held-out scoring or
    saving). Held-out losses are mean cross-entropy per masked token on the same masked held-out texts before and
    after training. `head_initialised_fresh`: the checkpoint had no MLM head, so "before" scores a random head."""

    output_dir: Path
    steps: int
    examples_seen: int
    seconds: float
    loss_history: list[dict]
    heldout_loss_before: float
    heldout_loss_after: float
    head_initialised_fresh: bool
    train_texts: int
    heldout_texts: int

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / max(self.seconds, 1e-9)

    @property
    def heldout_perplexity_before(self) -> float:
        return math.exp(self.heldout_loss_before)

    @property
    def heldout_perplexity_after(self) -> float:
        return math.exp(self.heldout_loss_after)


def unlabelled_texts(
    dsd: DatasetDict,
    *,
    domains: Optional[Sequence[str]] = None,
    splits: Sequence[str] = ("train",),
    limit: Optional[int] = None,
    seed: int = 42,
    allow_eval_text: bool = False,
) -> list[str]:
    """Texts only (labels dropped) of the given domains (None: all) and splits, exact duplicates removed.

    TAPT: the target domain's own training texts. DAPT: another domain's training texts. Validation and test texts
    are refused unless `allow_eval_text`: pretraining on them lets the encoder see the evaluation text first.
    `limit` keeps a seeded random sample of that many texts.
    """
    eval_asked = [split for split in splits if split in EVAL_SPLITS]
    if eval_asked and not allow_eval_text:
        raise ValueError(
            f"unlabelled_texts(splits={list(splits)}): {eval_asked} hold evaluation text, and pretraining on it leaks "
            "the texts the model is later scored on; use splits=('train',), or pass allow_eval_text=True on purpose"
        )
    missing = [split for split in splits if split not in dsd]
    if missing:
        raise ValueError(f"unlabelled_texts: no split {missing} in the data; it has {list(dsd)}")
    if limit is not None and limit < 1:
        raise ValueError(f"unlabelled_texts: limit must be ≥ 1 or None, got {limit}")
    texts: list[str] = []
    available: set[str] = set()
    for split in splits:
        # to_dict reads each column in one go; iterating a datasets Column fetches row by row (slow).
        table = dsd[split].select_columns(["text", "domain"]).to_dict()
        available.update(table["domain"])
        texts += [text for text, domain in zip(table["text"], table["domain"]) if domains is None or domain in domains]
    unknown = sorted(set(domains or ()) - available)
    if unknown:
        raise ValueError(f"unlabelled_texts: no domain {unknown} in splits {list(splits)}; "
                         f"the data has domains {sorted(available)}")
    texts = list(dict.fromkeys(text for text in texts if text.strip()))
    if limit is not None and len(texts) > limit:
        keep = np.random.default_rng(seed).choice(len(texts), size=limit, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    return texts


def continue_pretraining(
    config: Config,
    texts: Union[Sequence[str], Dataset],
    *,
    output_dir: Path,
    max_steps: int,
    learning_rate: float = 5e-5,
    batch_size: int = 16,
    mlm_probability: float = 0.15,
    max_seq_length: Optional[int] = None,
    seed: Optional[int] = None,
    heldout_fraction: float = 0.1,
) -> PretrainResult:
    """Masked-language-model training of `config.model_name_or_path` on `texts`; saves the model to `output_dir`.

    Each text is one example, truncated to `max_seq_length` (default config.max_seq_length): the same inputs the
    classifier later sees. A seeded `heldout_fraction` of the texts is never trained on; its masks are drawn once,
    so the held-out loss before and after compares the same masked tokens. AdamW (config.weight_decay) with
    linear warmup (config.warmup_ratio) and decay, gradient clipping at config.max_grad_norm; masking, batch order
    and dropout follow `seed` (default config.seed).

    The packaged all-MiniLM-L6-v2 is a sentence-transformers export without MLM head weights: its head starts
    random (`head_initialised_fresh`): "before" is at or above ln(vocab size), the first steps mostly train the
    head, and the encoder meanwhile gets gradients through a random head. The real DAPT setting is a checkpoint
    with a trained head, such as bert-base-uncased or roberta-base.
    The checkpoint's pooler, which MLM models leave out but BERT classifiers use, is carried into the saved
    folder unchanged, so fine-tuning from it differs from fine-tuning the original only in the adapted encoder.
    """
    if max_steps < 1:
        raise ValueError(f"continue_pretraining: max_steps must be ≥ 1, got {max_steps}")
    if batch_size < 1:
        raise ValueError(f"continue_pretraining: batch_size must be ≥ 1, got {batch_size}")
    if not 0 < mlm_probability < 1:
        raise ValueError(f"continue_pretraining: mlm_probability must be in (0, 1), got {mlm_probability}")
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"continue_pretraining: heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if isinstance(texts, Dataset):
        texts = texts.select_columns(["text"]).to_dict()["text"]
    texts = [text for text in texts if text.strip()]
    if len(texts) < 2:
        raise ValueError(f"continue_pretraining: needs at least 2 non-empty texts (train + held out), got {len(texts)}")
    seed = config.seed if seed is None else seed
    max_seq_length = max_seq_length or config.max_seq_length
    output_dir = Path(output_dir)
    set_seed(seed)

    # --- model: an MLM head on the checkpoint's encoder
    path = resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    with quiet_transformers(is_quiet(config)):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, loading = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        pooler = _checkpoint_pooler(path, model, loading["unexpected_keys"])
    encoder_prefix = f"{model.base_model_prefix}."
    fresh_encoder = sorted(k for k in loading["missing_keys"] if k.startswith(encoder_prefix))
    if fresh_encoder:
        raise ValueError(f"model {config.model_name_or_path!r} ({path}): encoder weights {fresh_encoder[:5]} are not "
                         "in the checkpoint, so there is no pretrained encoder to continue from")
    head_initialised_fresh = any(not k.startswith(encoder_prefix) for k in loading["missing_keys"])

    # --- data: a seeded held-out slice; training batches masked afresh each time they are drawn
    order = np.random.default_rng(seed).permutation(len(texts))
    num_heldout = min(len(texts) - 1, max(1, round(heldout_fraction * len(texts))))
    heldout = [texts[i] for i in order[:num_heldout]]
    train = [texts[i] for i in order[num_heldout:]]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
    loader = DataLoader(_encode(tokenizer, train, max_seq_length), batch_size=batch_size, shuffle=True,
                        collate_fn=collator, generator=torch.Generator().manual_seed(seed))
    heldout_collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed + 1)
    heldout_batches = list(DataLoader(_encode(tokenizer, heldout, max_seq_length), batch_size=HELDOUT_BATCH_SIZE,
                                      collate_fn=heldout_collator))

    # --- optimizer and schedule (counted in optimizer steps, as in train.train), placed by accelerate
    accelerator = precision_accelerator(training_precision(config))  # bf16 autocast where auto finds it native
    model.to(accelerator.device)
    optimizer = build_optimizer(model, config.replace(learning_rate=learning_rate))
    scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=math.ceil(config.warmup_ratio * max_steps) * accelerator.num_processes,
        num_training_steps=max_steps * accelerator.num_processes,
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    heldout_loss_before = _heldout_loss(model, heldout_batches, accelerator.device)

    # --- the loop: as many passes over the training texts as max_steps needs
    history: list[dict] = []
    step = epoch = 0
    examples = torch.zeros((), dtype=torch.long, device=accelerator.device)
    running_loss = torch.zeros((), device=accelerator.device)
    running_batches = 0
    progress = tqdm(total=max_steps, desc="Continued pretraining",
                    disable=is_quiet(config) or not accelerator.is_local_main_process)
    model.train()
    tick = time.perf_counter()
    while step < max_steps:
        loader.set_epoch(epoch)
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            examples += batch["input_ids"].shape[0]
            running_loss += loss.detach()
            running_batches += 1
            progress.update(1)
            if step % config.logging_steps == 0 or step == max_steps:
                mean_loss = accelerator.reduce(running_loss / running_batches, reduction="mean").item()
                history.append({"step": step, "epoch": round(step / len(loader), 4), "loss": mean_loss,
                                "learning_rate": scheduler.get_last_lr()[0]})
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                running_loss.zero_()
                running_batches = 0
            if step >= max_steps:
                break
        epoch += 1
    seconds = time.perf_counter() - tick
    progress.close()
    heldout_loss_after = _heldout_loss(model, heldout_batches, accelerator.device)

    # --- save encoder + MLM head (+ the checkpoint's pooler) + tokenizer, atomically
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(model)
        if pooler is not None:
            model.base_model.pooler = pooler
        with quiet_transformers(is_quiet(config)):
            save_model(model, tokenizer, output_dir)
    accelerator.wait_for_everyone()
    return PretrainResult(
        output_dir=output_dir,
        steps=step,
        examples_seen=int(accelerator.reduce(examples, reduction="sum").item()),
        seconds=seconds,
        loss_history=history,
        heldout_loss_before=heldout_loss_before,
        heldout_loss_after=heldout_loss_after,
        head_initialised_fresh=head_initialised_fresh,
        train_texts=len(train),
        heldout_texts=len(heldout),
    )


def pretrain_from_config(config: Config, dsd: DatasetDict, *, output_dir: Path) -> Optional[PretrainResult]:
    """Continued pretraining as the config asks, or None when `pretrain_steps` is 0.

    Texts: training texts of `pretrain_domains`, else of `target_domain` (TAPT), else of every domain, capped at
    `pretrain_max_texts`. For DAPT on a domain you do not want to fine-tune on, load it as a source and keep it out
    of training with mixing_strategy "target_only".
    """
    if config.pretrain_steps == 0:
        return None
    domains = config.pretrain_domains or ([config.target_domain] if config.target_domain else None)
    texts = unlabelled_texts(dsd, domains=domains, limit=config.pretrain_max_texts, seed=config.seed)
    return continue_pretraining(
        config, texts, output_dir=output_dir, max_steps=config.pretrain_steps,
        learning_rate=config.pretrain_learning_rate, batch_size=config.per_device_train_batch_size,
        mlm_probability=config.mlm_probability, seed=config.seed,
    )


def pretrained_model_config(config: Config, result: PretrainResult) -> Config:
    """The config with fine-tuning starting from the adapted encoder."""
    return config.replace(model_name_or_path=str(result.output_dir))


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_seq_length: int) -> list[dict]:
    # The special-token mask spares the collator a second pass to find [CLS]/[SEP], which must never be masked.
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, return_special_tokens_mask=True)
    return [dict(zip(encoded.keys(), row)) for row in zip(*encoded.values())]


def _checkpoint_pooler(path: str, model: PreTrainedModel, unexpected_keys: Sequence[str]) -> Optional[torch.nn.Module]:
    """The checkpoint's pooler when the MLM model dropped it (BERT-style), else None."""
    # BERT-style MLM models keep a `pooler` attribute set to None; models without one at all need nothing here.
    if getattr(model.base_model, "pooler", False) is not None:
        return None
    if not any(".pooler." in f".{key}" for key in unexpected_keys):
        return None
    return AutoModel.from_pretrained(path).pooler


@torch.no_grad()
def _heldout_loss(model: torch.nn.Module, batches: list[dict], device: torch.device) -> float:
    """Mean cross-entropy per masked token over fixed masked batches (eval mode: no dropout)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    tokens = 0
    for batch in batches:
        batch = {key: value.to(device) for key, value in batch.items()}
        masked = int((batch["labels"] != -100).sum())
        if masked:
            total += model(**batch).loss.double() * masked
            tokens += masked
    model.train(was_training)
    if tokens == 0:
        raise ValueError("held-out texts got no masked tokens; give more texts or a larger heldout_fraction")
    return float(total / tokens)
