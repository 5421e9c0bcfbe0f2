"""The workload every benchmark contender shares: settings, the mixed-length texts, the model's parameter counts.

Hands on `BenchSettings`, the tokenised texts' description and the rotated order to the contenders and the table.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import torch

from .. import data
from ..config import Config

SOURCES = ("uci_sentences", "blitzer_mds:electronics")  # short sentences and longer reviews: mixed lengths
LABEL_NAMES = ["neg", "pos"]
CONTENDERS = ("ours", "seed_style", "trainer")
# our loop in bf16 autocast, beside the fp32 contenders on hosts where `mixed_precision: auto` picks bf16
BF16_CONTENDERS = ("ours_bf16",)
# pipeline() at batch 1 and 32; the Predictor at the saved training settings in fp32, bf16 autocast and int8
INFERENCE_CONTENDERS = ("pipeline_bs1", "pipeline_bs32", "predictor_fp32", "predictor_bf16", "predictor_int8",
                        "predictor_fp32_pipeline_cut", "predictor_bf16_pipeline_cut")


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run measures; `--quick` shrinks the counts, never the comparison itself."""

    model: str = "default"  # model_name_or_path: the packaged MiniLM, or "tiny-random"
    batch_size: int = 16  # per_device_train_batch_size of the default study
    max_seq_length: int = 128
    learning_rate: float = 1e-4
    warmup_steps: int = 5  # untimed optimizer steps on their own examples before each timed run
    steps: int = 40  # timed optimizer steps per run: one epoch over steps * batch_size examples
    repeats: int = 3  # runs per contender, contenders alternating in a rotated order
    matmul_size: int = 2048
    matmul_repeats: int = 10
    inference_texts: int = 800  # every test row of both sources (600 + 400 allow 400 each): TOSTs need rows
    inference_repeats: int = 3
    ablations: bool = True  # variants of our loop: what each optimisation is worth
    e2e: bool = True  # time `python -m otherdata_utils run params/default.yaml`
    default_study: bool = False  # time that study with mixed_precision "no" and "auto" (`--default-study`)
    study_layout: bool = False  # a study slice serially vs on Ray workers (`--study-layout`)
    study_cells: int = 4  # cells in that slice: UCI sentence models, one per seed
    study_train_rows: int = 240  # training rows per cell (2 epochs of batch 16: 30 optimizer steps)
    study_test_rows: int = 300  # test rows every cell is scored on
    seed: int = 42


FULL = BenchSettings()
QUICK = BenchSettings(warmup_steps=3, steps=4, repeats=3, matmul_repeats=3, inference_texts=64,
                      inference_repeats=3, ablations=False, e2e=False, study_cells=2, study_train_rows=32,
                      study_test_rows=32)


def train_config(settings: BenchSettings, workdir: Path) -> Config:
    """Our loop's config for the timed runs: no evaluation, no checkpoints, caches in the throwaway `workdir`."""
    return Config(
        model_name_or_path=settings.model,
        max_seq_length=settings.max_seq_length,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        warmup_ratio=0.1,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        quiet=True,
        seed=settings.seed,
        cache_dir=str(workdir / "cache"),
        output_dir=str(workdir / "run"),
    )


def load_bench_texts(data_dir: Path, *, train_rows: int, inference_rows: int, seed: int) -> datasets.DatasetDict:
    """Half UCI sentences (short), half Blitzer electronics reviews (long), seeded, in one shuffled order.

    Training rows come from the sources' train splits, inference texts from their test splits.
    """
    loaded = [data.load_source(name, Path(data_dir), seed=seed) for name in SOURCES]
    splits = {}
    for split, source_split, rows in (("train", "train", train_rows), ("inference", "test", inference_rows)):
        parts = []
        for position, dsd in enumerate(loaded):
            share = rows // len(loaded) + (1 if position < rows % len(loaded) else 0)
            pool = dsd[source_split]
            if share > len(pool):
                raise ValueError(f"the benchmark wants {share} {source_split} rows of {SOURCES[position]} but it "
                                 f"has {len(pool)}; lower --steps or the number of inference texts")
            parts.append(pool.shuffle(seed=seed).select(range(share))
                         .select_columns(["id", "text", "label", "domain", "source"]))
        splits[split] = datasets.concatenate_datasets(parts).shuffle(seed=seed).flatten_indices()
    return datasets.DatasetDict(splits)


def describe_data(train_texts: datasets.Dataset, measure: datasets.Dataset, settings: BenchSettings,
                  tokenize_seconds: float) -> dict[str, Any]:
    """Rows, tokens per example and the positions fixed padding would feed: what the FLOP count and table need."""
    lengths = np.asarray(measure["length"])
    batches = settings.steps
    return {
        "sources": list(SOURCES),
        "train_rows": len(train_texts),
        "timed_rows": len(measure),
        "warmup_rows": len(train_texts) - len(measure),
        "tokens_per_example": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                               "min": int(lengths.min()), "max": int(lengths.max())},
        "real_tokens": int(lengths.sum()),
        # Fixed padding feeds batches * batch_size * max_seq_length positions whatever the texts hold.
        "padded_tokens_fixed": batches * settings.batch_size * settings.max_seq_length,
        "tokenize_seconds": tokenize_seconds,
        "tokenize_examples_per_second": len(train_texts) / tokenize_seconds if tokenize_seconds else None,
    }


def describe_model(model: torch.nn.Module, config: Config) -> dict[str, Any]:
    """Parameter counts for the FLOP estimate: embedding tables do lookups, not matmuls, so they are left out."""
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Embedding))
    per_example = sum(p.numel() for name, p in model.named_parameters()
                      if ".pooler." in name or name.startswith(("classifier.", "pre_classifier.")))
    return {
        "name": config.model_name_or_path,
        "type": model.config.model_type,
        "layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        "attention": model.config._attn_implementation,
        "parameters": total,
        "embedding_parameters": embedding,
        "non_embedding_parameters": total - embedding,
        "per_example_parameters": per_example,
    }


def rotated(names: Sequence[str], repeat: int) -> list[str]:
    """ours, seed, trainer; then seed, trainer, ours; …: each contender takes each place in turn."""
    shift = repeat % len(names)
    return list(names[shift:]) + list(names[:shift])


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
