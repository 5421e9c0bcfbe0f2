"""Inference contenders: a naive `pipeline()`, our length-sorted `Predictor`, and the int8 `Predictor`.

Hands on texts-to-labels throughput, peak memory and agreement with `pipeline()` for results.json.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import pipeline

from ..modeling import quiet_transformers
from ..predictor import Predictor
from .machine import PeakRSS, release_memory
from .tables import ratios, stats
from .workload import BenchSettings, log, rotated


def run_inference(model_dir: Path, texts: list[str], settings: BenchSettings) -> dict[str, Any]:
    """Texts in, predictions out (tokenisation included) for pipeline(), the Predictor and the int8 Predictor."""
    def naive(batch: list[str]) -> list[str]:
        return [output["label"] for output in classifier(batch, truncation=True)]

    def ours(batch: list[str]) -> list[str]:
        return [row["label"] for row in predictor.predict(batch, sort_by_length=True)]

    def ours_int8(batch: list[str]) -> list[str]:
        return [row["label"] for row in predictor_int8.predict(batch, sort_by_length=True)]

    runners = {"pipeline": naive, "predictor": ours, "predictor_int8": ours_int8}
    rss: dict[str, float] = {}
    with quiet_transformers():
        release_memory()
        with PeakRSS() as load:
            classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
        rss["pipeline_load"] = load.peak_mb
        with PeakRSS() as load:
            predictor = Predictor.load(model_dir)
        rss["predictor_load"] = load.peak_mb
        with PeakRSS() as load:
            predictor_int8 = Predictor.load(model_dir, int8=True)
        rss["predictor_int8_load"] = load.peak_mb
        labels = {name: runner(texts) for name, runner in runners.items()}  # warm-up, and the answers to compare
        timings: dict[str, list[float]] = {name: [] for name in runners}
        peaks: dict[str, list[float]] = {name: [] for name in runners}
        for repeat in range(settings.inference_repeats):
            for name in rotated(list(runners), repeat):
                with PeakRSS() as peak:
                    tick = time.perf_counter()
                    runners[name](texts)
                    timings[name].append(time.perf_counter() - tick)
                peaks[name].append(peak.peak_mb)
                log(f"inference {repeat + 1}/{settings.inference_repeats} {name}: "
                    f"{len(texts) / timings[name][-1]:.1f} ex/s")
    contenders = {
        name: {"examples_per_second": stats([len(texts) / seconds for seconds in timings[name]]),
               "peak_rss_mb": stats(peaks[name]),
               "agreement_with_pipeline": float(np.mean([a == b for a, b in zip(labels[name], labels["pipeline"])]))}
        for name in runners
    }
    return {
        "texts": len(texts),
        "batch_size": {"pipeline": classifier._batch_size or 1, "predictor": predictor.batch_size},
        "max_length": predictor.max_length,
        "contenders": contenders,
        "ratios": ratios(contenders, "predictor", ("pipeline",)) | ratios(contenders, "predictor_int8",
                                                                           ("pipeline", "predictor")),
        "load_peak_rss_mb": rss,
    }
