"""Benchmarks: training throughput (our loop vs a seed-style loop vs transformers' Trainer), the machine's matmul
ceiling, inference throughput (pipeline() vs the length-sorted Predictor vs int8), peak memory, end-to-end time.

Hands on benchmarks/results.json and benchmarks/RESULTS.md: ratios first, absolute numbers labelled as this machine's.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence
from unittest import mock

import numpy as np
import torch

from .config import DATA_DIR_ENV, Config, project_root
from .io import atomic_write_json, atomic_write_text

SOURCES = ("uci_sentences", "blitzer_mds:electronics")  # short sentences and longer reviews: mixed lengths
LABEL_NAMES = ["neg", "pos"]
CONTENDERS = ("ours", "seed_style", "trainer")
INFERENCE_CONTENDERS = ("pipeline", "predictor", "predictor_int8")


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
    inference_texts: int = 512
    inference_repeats: int = 3
    ablations: bool = True  # variants of our loop: what each optimisation is worth
    e2e: bool = True  # time `python -m otherdata_utils run params/default.yaml`
    seed: int = 42


FULL = BenchSettings()
QUICK = BenchSettings(warmup_steps=3, steps=4, repeats=3, matmul_repeats=3, inference_texts=64,
                      inference_repeats=3, ablations=False, e2e=False)


# --- command line ---------------------------------------------------------------------------------------------------

def bench_command(argv: list[str]) -> int:
    """``python -m otherdata_utils bench [--quick] [--skip-e2e] [--out DIR] [--data-dir DIR] [--model NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils bench", description=bench_command.__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="few steps and texts, no ablations, no end-to-end study (CI smoke run)")
    parser.add_argument("--skip-e2e", action="store_true", help="do not time the default study end to end")
    parser.add_argument("--skip-ablations", action="store_true", help="do not measure variants of our loop")
    parser.add_argument("--out", help="folder for results.json and RESULTS.md (default: benchmarks/)")
    parser.add_argument("--data-dir", help="local data root laid out like shared/data (default: OTHERDATA_DATA_DIR)")
    parser.add_argument("--model", help="model_name_or_path (default: the packaged MiniLM; 'tiny-random' for tests)")
    parser.add_argument("--repeats", type=int, help="timed runs per contender (≥ 3 for medians worth reading)")
    parser.add_argument("--threads", type=int,
                        help="torch intra-op threads for the whole run (default: torch's, one per core)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be ≥ 1")
        torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.model:
        changes["model"] = args.model
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be ≥ 1")
        changes["repeats"] = changes["inference_repeats"] = args.repeats
    if args.skip_e2e:
        changes["e2e"] = False
    if args.skip_ablations:
        changes["ablations"] = False
    settings = replace(settings, **changes)
    out_dir = Path(args.out) if args.out else project_root() / "benchmarks"
    data_dir = Config(data_dir=args.data_dir).resolved_data_dir()
    if data_dir is None:
        print("error: the benchmark reads local data: set OTHERDATA_DATA_DIR to a copy laid out like shared/data",
              file=sys.stderr)
        return 2
    results = run_benchmarks(settings, data_dir=data_dir, quick=args.quick)
    json_path, md_path = write_results(results, out_dir)
    print(f"[bench] wrote {json_path} and {md_path}", flush=True)
    return 0


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """results.json and RESULTS.md in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    return (atomic_write_json(out_dir / "results.json", results),
            atomic_write_text(out_dir / "RESULTS.md", render_markdown(results)))


# --- the whole run --------------------------------------------------------------------------------------------------

def run_benchmarks(settings: BenchSettings, *, data_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Every section, in one process; returns plain data (what results.json holds)."""
    from . import modeling

    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "settings": asdict(settings),
        "machine": machine_info(),
        "memory_method": _PeakRSS.method(),
    }
    _log(f"machine: {results['machine']['cpu_model']}, {results['machine']['torch_threads']} torch threads, "
         f"load {results['machine']['load_average_at_start']}")
    with tempfile.TemporaryDirectory(prefix="otherdata-bench-") as tmp:
        workdir = Path(tmp)
        config = _train_config(settings, workdir)
        # A fresh cache: tokenisation below really tokenises, so its time is worth reporting.
        model, tokenizer = modeling.load_model_and_tokenizer(config, LABEL_NAMES)
        train_rows = settings.batch_size * (settings.warmup_steps + settings.steps)
        with modeling.quiet_transformers():
            texts = load_bench_texts(data_dir, train_rows=train_rows, inference_rows=settings.inference_texts,
                                     seed=settings.seed)
        tick = time.perf_counter()
        tokenized = modeling.tokenize_splits(texts, tokenizer, config)
        tokenize_seconds = time.perf_counter() - tick
        warm = tokenized["train"].select(range(settings.batch_size * settings.warmup_steps))
        measure = tokenized["train"].select(range(settings.batch_size * settings.warmup_steps, train_rows))
        results["data"] = _describe_data(texts["train"], measure, settings, tokenize_seconds)
        results["model"] = _describe_model(model, config)
        del model

        _log(f"matmul ceiling: {settings.matmul_size}² fp32 torch.mm")
        ceiling_runs = [matmul_gflops(settings.matmul_size, settings.matmul_repeats)]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
        model_dir = workdir / "model"  # our loop's trained model: the one the inference runs serve
        for repeat in range(settings.repeats):
            order = _rotated(CONTENDERS, repeat)
            for name in order:
                run = train_contender(name, config, tokenizer, warm, measure, workdir / f"{name}-{repeat}",
                                      save_to=model_dir if name == "ours" else None)
                runs[name].append(run)
                _log(f"training {repeat + 1}/{settings.repeats} {name}: {run['examples_per_second']:.2f} ex/s, "
                     f"peak RSS {run['peak_rss_mb']:.0f} MB")
            # The ceiling again beside every repetition, so load from other processes hits both alike.
            ceiling_runs.append(matmul_gflops(settings.matmul_size, settings.matmul_repeats))
        results["matmul"] = _summarise_ceiling(ceiling_runs, settings)
        results["training"] = _summarise_training(runs, results["data"], results["model"], results["matmul"])

        if settings.ablations:
            results["ablations"] = run_ablations(settings, config, tokenizer, warm, measure, workdir,
                                                 baseline=runs["ours"], model_info=results["model"])

        results["inference"] = run_inference(model_dir, list(texts["inference"]["text"]), settings)

    if settings.e2e:
        results["e2e"] = time_default_study(data_dir=data_dir)
    else:
        results["e2e"] = {"skipped": True, "reason": "--quick" if quick else "--skip-e2e"}
    results["machine"]["load_average_at_end"] = _load_average()
    results["total_seconds"] = time.perf_counter() - started
    return results


def _train_config(settings: BenchSettings, workdir: Path) -> Config:
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


def _rotated(names: Sequence[str], repeat: int) -> list[str]:
    """ours, seed, trainer; then seed, trainer, ours; …: each contender takes each place in turn."""
    shift = repeat % len(names)
    return list(names[shift:]) + list(names[:shift])


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- machine ----------------------------------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """CPU model and cores, torch threads and BLAS, library versions: what the absolute numbers depend on."""
    import accelerate
    import datasets
    import transformers

    config_text = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config_text)
    libraries = [line.strip(" -") for line in config_text.splitlines()
                 if re.search(r"Math Kernel Library|OpenBLAS|MKL-DNN|oneDNN", line)]
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "blas": blas.group(1) if blas else "unknown",
        "math_libraries": libraries,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
        "load_average_at_start": _load_average(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> Optional[list[float]]:
    """1, 5 and 15 minute load averages: other processes on the machine make the numbers noisier."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def matmul_gflops(size: int = 2048, repeats: int = 10) -> list[float]:
    """GFLOP/s of fp32 `torch.mm` on two size² matrices (2·size³ FLOPs each), on all torch threads; one per repeat."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    for _ in range(2):  # warm-up: thread pool start, page faults on `out`
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        tick = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * size ** 3 / (time.perf_counter() - tick) / 1e9)
    return rates


def _summarise_ceiling(runs: list[list[float]], settings: BenchSettings) -> dict[str, Any]:
    every = [rate for run in runs for rate in run]
    return {
        "size": settings.matmul_size,
        "threads": torch.get_num_threads(),
        "gflops": _stats(every),
        "per_measurement_median": [statistics.median(run) for run in runs],
    }


# --- data and model ---------------------------------------------------------------------------------------------------

def load_bench_texts(data_dir: Path, *, train_rows: int, inference_rows: int, seed: int):
    """Half UCI sentences (short), half Blitzer electronics reviews (long), seeded, in one shuffled order.

    Training rows come from the sources' train splits, inference texts from their test splits.
    """
    import datasets

    from . import data

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


def _describe_data(train_texts, measure, settings: BenchSettings, tokenize_seconds: float) -> dict[str, Any]:
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


def _describe_model(model: torch.nn.Module, config: Config) -> dict[str, Any]:
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


# --- training contenders ------------------------------------------------------------------------------------------------

def train_contender(name: str, config: Config, tokenizer, warm, measure, workdir: Path,
                    variant: Optional[Callable[[], contextlib.AbstractContextManager]] = None,
                    prepare_model: Optional[Callable[[torch.nn.Module], torch.nn.Module]] = None,
                    save_to: Optional[Path] = None) -> dict[str, Any]:
    """Fresh model, untimed warm-up steps on `warm`, then one timed epoch over `measure`; time and peak memory.

    Model loading and tokenisation are outside the timing; the clock runs from the first forward pass of the
    timed run to the end of its last optimizer step. `save_to` keeps the trained model (for the inference runs).
    """
    from . import modeling

    runner = {"ours": _run_ours, "seed_style": _run_seed_style, "trainer": _run_trainer}[name]
    _release_memory()
    rss_before = _rss_mb()
    with _PeakRSS() as whole, (variant() if variant else contextlib.nullcontext()):
        model, _ = modeling.load_model_and_tokenizer(config, LABEL_NAMES)
        if prepare_model is not None:
            model = prepare_model(model)
        threads = torch.get_num_threads()
        runner(model, tokenizer, warm, config.replace(max_steps=len(warm) // config.per_device_train_batch_size),
               workdir / "warmup")
        with _PeakRSS() as steps, _StepClock(model) as clock:
            runner(model, tokenizer, measure, config, workdir / "timed")
    if save_to is not None:
        with modeling.quiet_transformers():
            modeling.save_model(model, tokenizer, save_to)
    del model
    if len(clock.step_ends) != config.max_steps:
        raise RuntimeError(f"{name}: timed {len(clock.step_ends)} optimizer steps, expected {config.max_steps}")
    seconds = clock.seconds()
    return {
        "seconds": seconds,
        "examples_per_second": len(measure) / seconds,
        "step_seconds": clock.step_seconds(),
        "cpu_seconds": clock.cpu_end - clock.cpu_start,
        "threads": threads,
        "rss_before_mb": rss_before,
        "peak_rss_mb": steps.peak_mb,
        "peak_rss_whole_mb": whole.peak_mb,
    }


def _run_ours(model, tokenizer, split, config: Config, output_dir: Path) -> None:
    """train.train as the notebooks call it: length-grouped batches, dynamic padding, fused AdamW, linear schedule."""
    from . import train

    train.train(config, model, tokenizer, {"train": split}, output_dir=output_dir, label_names=LABEL_NAMES)


def seed_style_train(model: torch.nn.Module, tokenizer, split, *, batch_size: int, max_seq_length: int,
                     learning_rate: float, steps: int, seed: int) -> None:
    """The loop this project started from: random batches padded to max_seq_length, plain AdamW, no schedule."""
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding

    from .modeling import RandomBatchSampler

    inputs = split.select_columns(["input_ids", "attention_mask", "labels"]).with_format("torch")
    collator = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_seq_length)
    loader = DataLoader(inputs, batch_sampler=RandomBatchSampler(len(inputs), batch_size, seed=seed),
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


def trainer_arguments(config: Config, output_dir: Path):
    """transformers' Trainer set up like our loop: same batch, lr, decay, warm-up, clipping; length-grouped batches.

    transformers 5 calls the option ``train_sampling_strategy="group_by_length"`` (4.x: ``group_by_length=True``);
    its default optimizer on torch ≥ 2.8 is ``adamw_torch_fused``, the same kernel our loop uses.
    """
    from transformers import TrainingArguments

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
    from transformers import DataCollatorWithPadding, Trainer
    from transformers.trainer_callback import PrinterCallback

    from .modeling import quiet_transformers

    with quiet_transformers():
        trainer = Trainer(model=model, args=trainer_arguments(config, output_dir),
                          train_dataset=split.remove_columns([c for c in ("id", "domain") if c in split.column_names]),
                          processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict to stdout
        trainer.train()


class _StepClock:
    """Times the training of one model: from its first forward call to the end of each optimizer step after it.

    Optimizer steps before the first forward (build_optimizer's one-parameter probe) are not counted.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.first_forward: Optional[float] = None
        self.step_ends: list[float] = []
        self.cpu_start = self.cpu_end = 0.0  # process CPU time: less sensitive to other processes than wall time

    def __enter__(self) -> "_StepClock":
        from torch.optim.optimizer import register_optimizer_step_post_hook

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


def _summarise_training(runs: dict[str, list[dict]], data_info: dict, model_info: dict,
                        matmul: dict) -> dict[str, Any]:
    ceiling = matmul["gflops"]["median"]
    flops = 6 * model_info["non_embedding_parameters"] * data_info["real_tokens"]
    summary: dict[str, Any] = {"contenders": {}, "flops_per_epoch": flops}
    for name, contender_runs in runs.items():
        rates = [run["examples_per_second"] for run in contender_runs]
        gflops = [flops / run["seconds"] / 1e9 for run in contender_runs]
        summary["contenders"][name] = {
            "examples_per_second": _stats(rates),
            "tokens_per_second": _stats([data_info["real_tokens"] / run["seconds"] for run in contender_runs]),
            "gflops": _stats(gflops),
            "share_of_ceiling": _stats([rate / ceiling for rate in gflops]),
            "peak_rss_mb": _stats([run["peak_rss_mb"] for run in contender_runs]),
            "peak_rss_whole_mb": _stats([run["peak_rss_whole_mb"] for run in contender_runs]),
            "rss_before_mb": _stats([run["rss_before_mb"] for run in contender_runs]),
            "threads": sorted({run["threads"] for run in contender_runs}),
            "runs": contender_runs,
        }
    summary["ratios"] = _ratios(summary["contenders"], "ours", ("seed_style", "trainer"))
    return summary


def _ratios(contenders: dict[str, dict], ours: str, others: Sequence[str]) -> dict[str, dict[str, float]]:
    """ours / other on medians; min–max pairs the worst of ours with the best of the other and vice versa."""
    mine = contenders[ours]["examples_per_second"]
    ratios = {}
    for other in others:
        theirs = contenders[other]["examples_per_second"]
        ratios[f"{ours}_vs_{other}"] = {"median": mine["median"] / theirs["median"],
                                        "min": mine["min"] / theirs["max"], "max": mine["max"] / theirs["min"]}
    return ratios


# --- ablations: what each part of our loop is worth -----------------------------------------------------------------

def run_ablations(settings: BenchSettings, config: Config, tokenizer, warm, measure, workdir: Path, *,
                  baseline: list[dict], model_info: dict) -> dict[str, Any]:
    """Our loop with one thing changed at a time; each variant against the baseline runs of the main table."""
    from . import train

    def one_thread() -> contextlib.AbstractContextManager:
        return _threads(1)

    def foreach_adamw() -> contextlib.AbstractContextManager:
        return mock.patch.object(train, "_fused_adamw_works", lambda device: False)

    def eager_attention(model: torch.nn.Module) -> torch.nn.Module:
        model.set_attn_implementation("eager")
        return model

    variants: dict[str, tuple[str, dict[str, Any]]] = {
        "random_batches": ("random batches, dynamic padding (no length grouping)",
                           {"config": config.replace(group_by_length=False)}),
        "foreach_adamw": ("foreach AdamW instead of fused", {"variant": foreach_adamw}),
        "eager_attention": ("eager attention instead of SDPA", {"prepare_model": eager_attention}),
        "one_thread": ("1 torch thread instead of all cores", {"variant": one_thread}),
    }
    results: dict[str, Any] = {}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(settings.repeats):
        for name in _rotated(list(variants), repeat):
            _, options = variants[name]
            run = train_contender("ours", options.get("config", config), tokenizer, warm, measure,
                                  workdir / f"ablation-{name}-{repeat}", variant=options.get("variant"),
                                  prepare_model=options.get("prepare_model"))
            rates[name].append(run["examples_per_second"])
            _log(f"ablation {repeat + 1}/{settings.repeats} {name}: {run['examples_per_second']:.2f} ex/s")
    base = [run["examples_per_second"] for run in baseline]
    for name, (label, _) in variants.items():
        results[name] = {"label": label, "examples_per_second": _stats(rates[name]),
                         "vs_ours": statistics.median(rates[name]) / statistics.median(base)}
    return results


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- inference --------------------------------------------------------------------------------------------------------

def run_inference(model_dir: Path, texts: list[str], settings: BenchSettings) -> dict[str, Any]:
    """Texts in, predictions out (tokenisation included) for pipeline(), the Predictor and the int8 Predictor."""
    from transformers import pipeline

    from .modeling import quiet_transformers
    from .serve import Predictor

    def naive(batch: list[str]) -> list[str]:
        return [output["label"] for output in classifier(batch, truncation=True)]

    def ours(batch: list[str]) -> list[str]:
        return [row["label"] for row in predictor.predict(batch, sort_by_length=True)]

    def ours_int8(batch: list[str]) -> list[str]:
        return [row["label"] for row in predictor_int8.predict(batch, sort_by_length=True)]

    runners = {"pipeline": naive, "predictor": ours, "predictor_int8": ours_int8}
    rss: dict[str, float] = {}
    with quiet_transformers():
        _release_memory()
        with _PeakRSS() as load:
            classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
        rss["pipeline_load"] = load.peak_mb
        with _PeakRSS() as load:
            predictor = Predictor.load(model_dir)
        rss["predictor_load"] = load.peak_mb
        with _PeakRSS() as load:
            predictor_int8 = Predictor.load(model_dir, int8=True)
        rss["predictor_int8_load"] = load.peak_mb
        labels = {name: runner(texts) for name, runner in runners.items()}  # warm-up, and the answers to compare
        timings: dict[str, list[float]] = {name: [] for name in runners}
        peaks: dict[str, list[float]] = {name: [] for name in runners}
        for repeat in range(settings.inference_repeats):
            for name in _rotated(list(runners), repeat):
                with _PeakRSS() as peak:
                    tick = time.perf_counter()
                    runners[name](texts)
                    timings[name].append(time.perf_counter() - tick)
                peaks[name].append(peak.peak_mb)
                _log(f"inference {repeat + 1}/{settings.inference_repeats} {name}: "
                     f"{len(texts) / timings[name][-1]:.1f} ex/s")
    contenders = {
        name: {"examples_per_second": _stats([len(texts) / seconds for seconds in timings[name]]),
               "peak_rss_mb": _stats(peaks[name]),
               "agreement_with_pipeline": float(np.mean([a == b for a, b in zip(labels[name], labels["pipeline"])]))}
        for name in runners
    }
    return {
        "texts": len(texts),
        "batch_size": {"pipeline": classifier._batch_size or 1, "predictor": predictor.batch_size},
        "max_length": predictor.max_length,
        "contenders": contenders,
        "ratios": _ratios(contenders, "predictor", ("pipeline",)) | _ratios(contenders, "predictor_int8",
                                                                             ("pipeline", "predictor")),
        "load_peak_rss_mb": rss,
    }


# --- end to end -----------------------------------------------------------------------------------------------------

def time_default_study(params: str = "params/default.yaml", *, data_dir: Optional[Path] = None) -> dict[str, Any]:
    """Wall time of ``python -m otherdata_utils run params/default.yaml`` in a throwaway run folder."""
    import resource

    root = project_root()
    _log(f"end to end: python -m otherdata_utils run {params} (several minutes)")
    with tempfile.TemporaryDirectory(prefix="otherdata-bench-e2e-") as tmp:
        tick = time.perf_counter()
        env = {**os.environ, **({DATA_DIR_ENV: str(data_dir)} if data_dir else {})}
        completed = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", params, "--out", tmp],
                                   cwd=root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - tick
    # ru_maxrss of waited-for descendants: the largest single process (the notebook kernel), not their sum.
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    outcome = {"params": params, "seconds": seconds, "ok": completed.returncode == 0,
               "largest_process_peak_rss_mb": children_peak_mb, "method": "timed here (subprocess wall clock)"}
    if completed.returncode != 0:
        outcome["error"] = (completed.stderr or completed.stdout)[-2000:]
        _log(f"end to end FAILED (exit {completed.returncode}); see results.json")
    return outcome


# --- memory -----------------------------------------------------------------------------------------------------------

class _PeakRSS:
    """Peak resident set size of this process inside a `with` block, in MB.

    Linux resets the kernel's own high-water mark (VmHWM) when "5" is written to /proc/self/clear_refs, so the peak is
    exact and costs nothing. Elsewhere a thread samples RSS every 5 ms (psutil), which can miss short spikes.
    RSS counts everything the process holds: libraries, earlier allocations the allocator kept, torch's tensors.
    """

    _open: list["_PeakRSS"] = []  # enclosing blocks: a reset for an inner block must not lose their peak

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def method() -> str:
        if _can_clear_refs():
            return "VmHWM from /proc/self/status, reset through /proc/self/clear_refs before each phase (exact peak RSS)"
        return "psutil RSS sampled every 5 ms in a thread (can miss spikes shorter than that)"

    def __enter__(self) -> "_PeakRSS":
        self._exact = _can_clear_refs()
        if self._exact:
            peak_so_far = _status_mb("VmHWM")
            for outer in self._open:
                outer.peak_mb = max(outer.peak_mb, peak_so_far)
            _clear_refs()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._open.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._open.remove(self)
        if self._exact:
            self.peak_mb = max(self.peak_mb, _status_mb("VmHWM"))
            for outer in self._open:
                outer.peak_mb = max(outer.peak_mb, self.peak_mb)
        else:
            self._stop.set()
            self._thread.join()

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while True:
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            if self._stop.wait(0.005):
                return


def _clear_refs() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _can_clear_refs() -> bool:
    try:
        return Path("/proc/self/status").is_file() and os.access("/proc/self/clear_refs", os.W_OK)
    except OSError:
        return False


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def _rss_mb() -> float:
    try:
        return _status_mb("VmRSS")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so one phase's leftovers inflate the next one's RSS less."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- numbers and the markdown table ------------------------------------------------------------------------------------

def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "n": len(values)}


def _fmt(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _ratio_fmt(ratio: dict[str, float]) -> str:
    return f"**{ratio['median']:.2f}×** ({ratio['min']:.2f}–{ratio['max']:.2f})"


TRAINING_LABELS = {
    "ours": "our loop (`train.train`: length-grouped, dynamic padding, fused AdamW)",
    "seed_style": "seed-style loop (pad to 128, random batches, for-loop AdamW, no schedule)",
    "trainer": "transformers `Trainer` (`train_sampling_strategy=\"group_by_length\"`)",
}
INFERENCE_LABELS = {
    "pipeline": "naive `pipeline()` (default batch, `truncation=True`)",
    "predictor": "our `Predictor` (length-sorted batches)",
    "predictor_int8": "our `Predictor`, int8 dynamic quantisation",
}


def render_markdown(results: dict[str, Any]) -> str:
    """RESULTS.md: headline ratios, then each section's medians with min–max, then the machine and the method."""
    machine, settings, data = results["machine"], results["settings"], results["data"]
    training, matmul, inference = results["training"], results["matmul"], results["inference"]
    ours = training["contenders"]["ours"]
    lines = [
        "# otherdata benchmarks",
        "",
        f"Written by `python -m otherdata_utils bench{' --quick' if results['quick'] else ''}` on {results['date']}. "
        "Ratios are the headline; absolute numbers are this machine's and move with its load. Every cell is the "
        f"median of the runs with their min–max in brackets.",
        "",
        "## Headline",
        "",
        "| comparison | ratio |",
        "|---|---|",
        f"| training: our loop vs seed-style loop | {_ratio_fmt(training['ratios']['ours_vs_seed_style'])} |",
        f"| training: our loop vs `Trainer` | {_ratio_fmt(training['ratios']['ours_vs_trainer'])} |",
        f"| training: our loop's FLOP/s as a share of the fp32 matmul ceiling | "
        f"**{ours['share_of_ceiling']['median']:.0%}** ({ours['share_of_ceiling']['min']:.0%}–"
        f"{ours['share_of_ceiling']['max']:.0%}) |",
        f"| inference: `Predictor` vs naive `pipeline()` | "
        f"{_ratio_fmt(inference['ratios']['predictor_vs_pipeline'])} |",
        f"| inference: int8 `Predictor` vs naive `pipeline()` | "
        f"{_ratio_fmt(inference['ratios']['predictor_int8_vs_pipeline'])} |",
        "",
        "## Training throughput (this machine)",
        "",
        f"{data['timed_rows']} examples ({settings['steps']} optimizer steps of {settings['batch_size']}), "
        f"max_seq_length {settings['max_seq_length']}, after {settings['warmup_steps']} untimed warm-up steps on "
        f"{data['warmup_rows']} other examples; {settings['repeats']} runs per contender in rotated order; "
        f"model `{results['model']['name']}` ({results['model']['type']}, {results['model']['layers']} layers, "
        f"hidden {results['model']['hidden_size']}).",
        "",
        "| contender | examples/s | real tokens/s | GFLOP/s | share of ceiling | peak RSS MB (steps) | threads |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in TRAINING_LABELS.items():
        row = training["contenders"][name]
        lines.append(f"| {label} | {_fmt(row['examples_per_second'], 2)} | {_fmt(row['tokens_per_second'], 0)} | "
                     f"{_fmt(row['gflops'], 1)} | {_fmt(row['share_of_ceiling'], 2)} | "
                     f"{_fmt(row['peak_rss_mb'], 0)} | {', '.join(map(str, row['threads']))} |")
    tokens = data["tokens_per_example"]
    lines += [
        "",
        f"Tokens per example: mean {tokens['mean']:.1f}, median {tokens['median']:.0f}, range {tokens['min']}–"
        f"{tokens['max']} (after truncation); the seed-style loop feeds {data['padded_tokens_fixed']:,} positions "
        f"for {data['real_tokens']:,} real tokens. Tokenising all {data['train_rows']} training rows took "
        f"{data['tokenize_seconds']:.2f} s ({data['tokenize_examples_per_second']:.0f} examples/s), once, before "
        "training and outside the timings.",
        "",
        "## Matmul ceiling and achieved FLOP/s (this machine)",
        "",
        f"Ceiling: fp32 `torch.mm` of two {matmul['size']}² matrices on {matmul['threads']} threads: "
        f"**{_fmt(matmul['gflops'], 1)} GFLOP/s**, measured before the training runs and again after each "
        "repetition (the share uses the median of all).",
        "",
        "Training FLOPs are counted as 6 × non-embedding parameters × real tokens "
        f"(6 × {results['model']['non_embedding_parameters']:,} × {data['real_tokens']:,} = "
        f"{training['flops_per_epoch'] / 1e12:.2f} TFLOP per timed epoch). The count leaves out the attention "
        "score and context matmuls (QKᵀ and AV, which grow with sequence length), the embedding lookups, softmax, "
        "layer norm, GELU, dropout and the optimizer, and counts no work on padding; it counts the pooler and "
        f"classifier ({results['model']['per_example_parameters']:,} parameters) per token although they run once "
        "per example. So it is a useful-work rate: the seed-style loop does far more arithmetic on padding than its "
        "GFLOP/s shows.",
        "",
        "## Inference throughput (this machine)",
        "",
        f"{inference['texts']} texts (half UCI sentences, half Blitzer reviews, from the test splits) in, predicted "
        "labels out, tokenisation included, served from the model our loop trained in its last run; "
        f"max_length {inference['max_length']} for all; batch size: pipeline() "
        f"{inference['batch_size']['pipeline']}, Predictor {inference['batch_size']['predictor']}.",
        "",
        "| contender | examples/s | × pipeline() | peak RSS MB | labels agreeing with pipeline() |",
        "|---|---|---|---|---|",
    ]
    for name, label in INFERENCE_LABELS.items():
        row = inference["contenders"][name]
        ratio = "1.00×" if name == "pipeline" else _ratio_fmt(inference["ratios"][f"{name}_vs_pipeline"])
        lines.append(f"| {label} | {_fmt(row['examples_per_second'], 1)} | {ratio} | {_fmt(row['peak_rss_mb'], 0)} | "
                     f"{row['agreement_with_pipeline']:.1%} |")
    lines += ["", "## Peak memory", "",
              f"Method: {results['memory_method']}. Training rows above are the peak during the timed steps; the "
              "process also holds the data, the tokenizer and the libraries, so compare differences, not totals.",
              "",
              "| phase | peak RSS MB | RSS before the phase MB |", "|---|---|---|"]
    for name, label in TRAINING_LABELS.items():
        row = training["contenders"][name]
        lines.append(f"| training: {name} (model load, warm-up and timed steps) | {_fmt(row['peak_rss_whole_mb'], 0)} "
                     f"| {_fmt(row['rss_before_mb'], 0)} |")
    for name, value in inference["load_peak_rss_mb"].items():
        lines.append(f"| inference: {name.replace('_', ' ')} | {value:.0f} | |")
    e2e = results["e2e"]
    lines += ["", "## End to end: the default study", ""]
    if e2e.get("skipped"):
        lines.append(f"Not measured in this run ({e2e['reason']}).")
    elif e2e["ok"]:
        lines.append(f"`python -m otherdata_utils run {e2e['params']}`: **{e2e['seconds'] / 60:.1f} min** wall time "
                     f"({e2e['method']}); largest single process peak RSS {e2e['largest_process_peak_rss_mb']:.0f} MB.")
    else:
        lines.append(f"`python -m otherdata_utils run {e2e['params']}` failed after {e2e['seconds']:.0f} s; the error "
                     "is in results.json.")
    if results.get("ablations"):
        lines += ["", "## What each part of our loop is worth (this machine)", "",
                  "Our loop with one thing changed, same examples, steps and repetitions; the ratio is against our "
                  "loop's median in the training table (below 1.00× means the change makes it slower).", "",
                  "| variant | examples/s | vs our loop |", "|---|---|---|"]
        for row in results["ablations"].values():
            lines.append(f"| {row['label']} | {_fmt(row['examples_per_second'], 2)} | {row['vs_ours']:.2f}× |")
    load = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    lines += [
        "", "## Machine", "",
        "| | |", "|---|---|",
        f"| CPU | {machine['cpu_model']} ({machine['usable_cpus']} usable of {machine['logical_cpus']} logical CPUs, "
        f"{machine['cpu_capability']}) |",
        f"| memory | {machine['memory_gb']} GiB |",
        f"| torch threads | {machine['torch_threads']} intra-op, {machine['torch_interop_threads']} inter-op |",
        f"| BLAS | {machine['blas']}: {'; '.join(machine['math_libraries'])} |",
        f"| versions | Python {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']}, "
        f"accelerate {machine['accelerate']}, datasets {machine['datasets']} |",
        f"| platform | {machine['platform']} |",
        f"| load average (1, 5, 15 min) | start {load[0]}, end {load[1]} |",
        f"| benchmark wall time | {results['total_seconds'] / 60:.1f} min |",
        "",
        "## Method",
        "",
        "- One process; the same examples, batch size, max_seq_length and number of optimizer steps for every "
        "training contender, each on a freshly loaded model with the same seed and the same torch threads.",
        "- Timed: one epoch over the timed examples, from the first forward pass to the end of the last optimizer "
        "step (a forward pre-hook and torch's global optimizer step hook); it includes batching and padding, "
        "excludes model loading, tokenisation and the warm-up steps, which run first on their own examples.",
        "- Contenders alternate: each repetition rotates their order, so drifting load hits all of them.",
        "- The seed-style loop is `bench.seed_style_train`: random batches padded to max_seq_length, "
        "`torch.optim.AdamW(foreach=False, fused=False)`, no schedule, no clipping.",
        "- `Trainer` uses transformers' defaults otherwise (optimizer `adamw_torch_fused`, linear schedule).",
        "- Inference runs are timed from texts to labels; every contender predicts the same texts once untimed first.",
    ]
    return "\n".join(lines) + "\n"
