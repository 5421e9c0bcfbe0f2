"""Inference contenders: `transformers.pipeline()` at batch 1 and at batch 32 (the faster of the two is the baseline
the serving headline divides by), and our `Predictor` in fp32, bf16 autocast (on CPUs with native bf16) and int8,
each at the max length and truncation saved with the model, as `predict` and `serve` run it, and in fp32 and bf16
at pipeline()'s own cut (its length, the head), where only batching and precision differ from pipeline().

Hands on texts-to-labels throughput, peak memory, each row's length, truncation and precision, its accuracy on the
same labelled test texts, its agreement with the fp32 `Predictor`, paired TOSTs of accuracy differences at ±1 point,
and the serving headline (`tables.serving_headline`) for results.json.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from datasets import Dataset
from transformers import pipeline

from ..modeling import quiet_transformers
from ..precision import native_cpu_bf16
from ..predictor import Predictor
from ..stats import equivalence_bootstrap
from .machine import PeakRSS, release_memory
from .tables import (EQUIVALENCE_MARGIN, PIPELINE_ROWS, SERVING_REFERENCE, ratios, serving_baseline, serving_headline,
                     stats)
from .workload import INFERENCE_CONTENDERS, BenchSettings, log, rotated

PIPELINE_BATCHES = {"pipeline_bs1": 1, "pipeline_bs32": 32}
PREDICTOR_PRECISIONS = {"predictor_fp32": "no", "predictor_bf16": "bf16", "predictor_int8": "int8",
                        "predictor_fp32_pipeline_cut": "no", "predictor_bf16_pipeline_cut": "bf16"}
# Served at pipeline()'s own cut (the tokenizer's model_max_length, keeping the head) instead of the saved length:
# the same tokens pipeline() reads, so these rows differ from it only in batching and precision, and equal accuracy
# does not rest on the saved length being as good as the full one.
AT_PIPELINE_CUT = ("predictor_fp32_pipeline_cut", "predictor_bf16_pipeline_cut")


def run_inference(model_dir: Path, labelled: Dataset, settings: BenchSettings) -> dict[str, Any]:
    """The `labelled` texts in, predictions out (tokenisation included) for every contender; all predict the same
    texts, so speed and accuracy compare directly, row by row."""
    texts = list(labelled["text"])
    gold = [labelled.features["label"].int2str(label) for label in labelled["label"]]
    native_bf16, bf16_reason = native_cpu_bf16()
    # emulated bf16 is slower than fp32 and would only show the emulation: such a host gets a line saying why
    skipped = {} if native_bf16 else {name: f"not measured on this host: {bf16_reason}"
                                      for name, precision in PREDICTOR_PRECISIONS.items() if precision == "bf16"}
    names = [name for name in INFERENCE_CONTENDERS if name not in skipped]
    rss: dict[str, float] = {}
    with quiet_transformers():
        release_memory()
        with PeakRSS() as load:
            classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
        rss["pipeline_load"] = load.peak_mb
        positions = classifier.tokenizer.model_max_length  # where pipeline(truncation=True) cuts, keeping the head
        predictors: dict[str, Predictor] = {}
        for name, precision in PREDICTOR_PRECISIONS.items():
            if name in names:
                with PeakRSS() as load:
                    predictors[name] = Predictor.load(model_dir, precision=precision,
                                                      max_length=positions if name in AT_PIPELINE_CUT else None)
                rss[f"{name}_load"] = load.peak_mb
                if name in AT_PIPELINE_CUT and predictors[name].truncation != "head":
                    # the Predictor keeps the truncation training used; pipeline() keeps the head
                    skipped[name] = (f"not measured: the model was trained with truncation "
                                     f"{predictors.pop(name).truncation!r}, which the Predictor keeps, so it cannot "
                                     "cut where pipeline() cuts (the head)")
        names = [name for name in names if name not in skipped]

        def piped(batch_size: int) -> Callable[[list[str]], list[str]]:
            # the texts in their given order, as a pipeline() user passes them; pipeline pads each batch itself
            return lambda batch: [output["label"] for output in
                                  classifier(batch, batch_size=batch_size, truncation=True)]

        def served_by(predictor: Predictor) -> Callable[[list[str]], list[str]]:
            return lambda batch: [row["label"] for row in predictor.predict(batch, sort_by_length=True)]

        runners = {name: piped(PIPELINE_BATCHES[name]) if name in PIPELINE_BATCHES else served_by(predictors[name])
                   for name in names}
        labels = {name: runner(texts) for name, runner in runners.items()}  # warm-up, and the answers to score
        timings: dict[str, list[float]] = {name: [] for name in runners}
        peaks: dict[str, list[float]] = {name: [] for name in runners}
        for repeat in range(settings.inference_repeats):
            for name in rotated(names, repeat):
                with PeakRSS() as peak:
                    tick = time.perf_counter()
                    runners[name](texts)
                    timings[name].append(time.perf_counter() - tick)
                peaks[name].append(peak.peak_mb)
                log(f"inference {repeat + 1}/{settings.inference_repeats} {name}: "
                    f"{len(texts) / timings[name][-1]:.1f} ex/s")
    pipeline_cut = {"max_length": positions, "truncation": "head", "head_tokens": 0,
                    "source": "pipeline(truncation=True): the tokenizer's model_max_length"}
    setup = {name: {"tokenization": pipeline_cut, "precision": "fp32", "batch_size": size}
             for name, size in PIPELINE_BATCHES.items()}
    setup |= {name: {"tokenization": {"max_length": predictor.max_length, "truncation": predictor.truncation,
                                      "head_tokens": predictor.head_tokens, "source": predictor.tokenization},
                     "precision": predictor.precision.label, "precision_reason": predictor.precision.reason,
                     "batch_size": predictor.batch_size}
              for name, predictor in predictors.items()}
    correct = {name: np.array([a == b for a, b in zip(answers, gold)]) for name, answers in labels.items()}
    contenders = {
        name: {"examples_per_second": stats([len(texts) / seconds for seconds in timings[name]]),
               "peak_rss_mb": stats(peaks[name]),
               **setup[name],
               "accuracy": float(correct[name].mean()),
               "agreement_with_fp32": float(np.mean([a == b for a, b in zip(labels[name],
                                                                          labels[SERVING_REFERENCE])]))}
        for name in names
    }
    baseline = serving_baseline(contenders)
    for name in predictors:  # equal accuracy, tested: paired on the same texts, TOST at ±1 point
        contenders[name]["equivalence_vs_baseline"] = _tost(correct[baseline], correct[name])
        if name != SERVING_REFERENCE:
            contenders[name]["equivalence_vs_fp32"] = _tost(correct[SERVING_REFERENCE], correct[name])
    batch_one, batch_32 = PIPELINE_ROWS
    found = ratios(contenders, batch_one, (batch_32,)) | ratios(contenders, batch_32, (batch_one,))
    for name in predictors:
        found |= ratios(contenders, name, PIPELINE_ROWS)
        if name != SERVING_REFERENCE:
            found |= ratios(contenders, name, (SERVING_REFERENCE,))
    return {
        "texts": len(texts),  # labelled test rows: every contender's accuracy is on these same texts
        "contenders": contenders,
        "skipped": skipped,
        "ratios": found,
        "headline": serving_headline(contenders, found),
        "load_peak_rss_mb": rss,
    }


def _tost(reference: np.ndarray, arm: np.ndarray) -> dict[str, Any]:
    """The TOST of arm minus reference accuracy within ±EQUIVALENCE_MARGIN, as plain data for results.json."""
    return asdict(equivalence_bootstrap(reference, arm, EQUIVALENCE_MARGIN))
