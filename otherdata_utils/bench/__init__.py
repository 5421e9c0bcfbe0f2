"""Benchmarks, one command: training (fp32 and bf16) and inference throughput against baselines, the fp32 and bf16
matmul ceilings, memory, the default study's wall time (fp32 vs auto) and the study cell layout (serial vs Ray).

Hands on benchmarks/results.json and benchmarks/RESULTS.md: ratios first, absolute numbers labelled as this machine's.
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Optional

import torch

from .. import modeling
from ..config import DATA_DIR_ENV, Config, project_root
from ..execution import available_cores
from ..io import atomic_write_json, atomic_write_text
from ..precision import resolve_precision
from .contenders import run_ablations, train_contender
from .inference import run_inference
from .machine import PeakRSS, load_average, machine_info, matmul_gflops
from .study_layout import compare_layouts
from .tables import (CEILING_DTYPES, render_markdown, summarise_ceiling, summarise_default_study,
                     summarise_study_layout, summarise_training)
from .workload import (BF16_CONTENDERS, CONTENDERS, FULL, LABEL_NAMES, QUICK, BenchSettings, describe_data,
                       describe_model, load_bench_texts, log, rotated, train_config)


def bench_command(argv: list[str]) -> int:
    """``python -m otherdata_utils bench [--quick] [--skip-e2e] [--default-study] [--study-layout] [--out DIR]
    [--data-dir DIR] [--model NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils bench", description=bench_command.__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="few steps and texts, no ablations, no end-to-end study (CI smoke run)")
    parser.add_argument("--skip-e2e", action="store_true", help="do not time the default study end to end")
    parser.add_argument("--skip-ablations", action="store_true", help="do not measure variants of our loop")
    parser.add_argument("--default-study", action="store_true",
                        help="time the default study end to end twice, mixed_precision no and auto (~2 × 3 min)")
    parser.add_argument("--study-layout", action="store_true",
                        help="run a small study slice serially (all cores per cell) and on Ray (a worker per core)")
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
    if args.default_study:
        changes["e2e"] = changes["default_study"] = True
    if args.study_layout:
        changes["study_layout"] = True
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


# RESULTS.md from this heading on is written by hand (findings, profiles) and kept when the bench rewrites the file
NOTES_HEADING = "## Notes (written by hand; the bench keeps this section)"


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """results.json and RESULTS.md in `out_dir`, each written atomically; RESULTS.md keeps its hand-written notes."""
    out_dir = Path(out_dir)
    markdown = render_markdown(results)
    previous = out_dir / "RESULTS.md"
    if previous.is_file() and NOTES_HEADING in (text := previous.read_text()):
        markdown += "\n" + text[text.index(NOTES_HEADING):]
    return (atomic_write_json(out_dir / "results.json", results),
            atomic_write_text(out_dir / "RESULTS.md", markdown))


def run_benchmarks(settings: BenchSettings, *, data_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Every section, in one process; returns plain data (what results.json holds)."""
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "settings": asdict(settings),
        "machine": machine_info(),
        "memory_method": PeakRSS.method(),
        # what mixed_precision auto picks here: the bf16 rows run only where it picks bf16
        "precision": resolve_precision("auto").as_record(),
    }
    contenders = CONTENDERS + (BF16_CONTENDERS if results["precision"]["mode"] == "bf16" else ())
    ceilings = {"fp32": [], **({"bf16": []} if results["precision"]["mode"] == "bf16" else {})}
    if "bf16" not in ceilings:
        log(f"no bf16 rows: mixed_precision auto picks {results['precision']['reason']}")
    log(f"machine: {results['machine']['cpu_model']}, {results['machine']['torch_threads']} torch threads, "
        f"load {results['machine']['load_average_at_start']}")
    with tempfile.TemporaryDirectory(prefix="otherdata-bench-") as tmp:
        workdir = Path(tmp)
        config = train_config(settings, workdir)
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
        results["data"] = describe_data(texts["train"], measure, settings, tokenize_seconds)
        results["model"] = describe_model(model, config)
        del model

        def measure_ceilings() -> None:
            for precision, measured in ceilings.items():
                measured.append(matmul_gflops(settings.matmul_size, settings.matmul_repeats, CEILING_DTYPES[precision]))

        log(f"matmul ceilings: {settings.matmul_size}² torch.mm in {' and '.join(ceilings)}")
        measure_ceilings()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        # our loop's trained model with its training length and truncation: the one the inference runs serve
        model_dir = workdir / "model"
        for repeat in range(settings.repeats):
            for name in rotated(contenders, repeat):
                run = train_contender(name, config, tokenizer, warm, measure, workdir / f"{name}-{repeat}",
                                      heldout=tokenized["inference"], save_to=model_dir if name == "ours" else None)
                runs[name].append(run)
                log(f"training {repeat + 1}/{settings.repeats} {name}: {run['examples_per_second']:.2f} ex/s, "
                    f"held-out accuracy {run['accuracy']:.1%}, peak RSS {run['peak_rss_mb']:.0f} MB")
            # The ceilings again beside every repetition, so load from other processes hits them alike.
            measure_ceilings()
        results["matmul"] = {precision: summarise_ceiling(measured, settings, precision)
                             for precision, measured in ceilings.items()}
        results["training"] = summarise_training(runs, results["data"], results["model"], results["matmul"])

        if settings.ablations:
            results["ablations"] = run_ablations(settings, config, tokenizer, warm, measure, workdir,
                                                 baselines=runs, heldout=tokenized["inference"])

        results["inference"] = run_inference(model_dir, texts["inference"], settings)

        if settings.study_layout:
            if available_cores() < 2:
                results["study_layout"] = {"skipped": True, "reason": f"{available_cores()} core available: "
                                           "one cell at a time either way"}
            else:
                results["study_layout"] = summarise_study_layout(*compare_layouts(settings, data_dir,
                                                                                  workdir / "study-layout"))

    if settings.e2e:
        # fp32 alone, or (--default-study) fp32 and then what auto picks on this host: one run of each (~3 min);
        # where auto picks fp32 a second fp32 run would only time the machine's noise
        auto_differs = results["precision"]["mode"] != "no"
        if settings.default_study and not auto_differs:
            log(f"default study: mixed_precision auto is fp32 here, so one run ({results['precision']['reason']})")
        precisions = ("no", "auto") if settings.default_study and auto_differs else ("no",)
        results["e2e"] = summarise_default_study(
            {precision: time_default_study(data_dir=data_dir, mixed_precision=precision) for precision in precisions})
    else:
        results["e2e"] = {"skipped": True, "reason": "--quick" if quick else "--skip-e2e"}
    results["machine"]["load_average_at_end"] = load_average()
    results["total_seconds"] = time.perf_counter() - started
    return results


def time_default_study(params: str = "params/default.yaml", *, data_dir: Optional[Path] = None,
                       mixed_precision: str = "no") -> dict[str, Any]:
    """Wall time of ``python -m otherdata_utils run params/default.yaml`` in a throwaway run folder, at
    `mixed_precision` ("auto" is resolved here, and the run is given the mode it picks, with the reason)."""
    root = project_root()
    choice = resolve_precision(mixed_precision)
    log(f"end to end: python -m otherdata_utils run {params} at mixed_precision {choice.mode} "
        f"({choice.label}; several minutes)")
    with tempfile.TemporaryDirectory(prefix="otherdata-bench-e2e-") as tmp:
        tick = time.perf_counter()
        env = {**os.environ, **({DATA_DIR_ENV: str(data_dir)} if data_dir else {})}
        completed = subprocess.run([sys.executable, "-m", "otherdata_utils", "run", params, "--out", tmp,
                                    "--set", f"mixed_precision={choice.mode}"],
                                   cwd=root, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - tick
    # ru_maxrss of waited-for descendants: the largest single process (the notebook kernel), not their sum, and
    # over every run this process waited for so far.
    children_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    outcome = {"params": params, "precision": choice.as_record(), "seconds": seconds, "ok": completed.returncode == 0,
               "largest_process_peak_rss_mb": children_peak_mb, "method": "timed here (subprocess wall clock)"}
    if completed.returncode != 0:
        outcome["error"] = (completed.stderr or completed.stdout)[-2000:]
        log(f"end to end FAILED (exit {completed.returncode}); see results.json")
    return outcome
