"""Inference contenders: a naive `pipeline()` at the model's 512 positions, our length-sorted `Predictor` at the same
length (fp32 and int8), and the `Predictor` at the max length and truncation saved with the model (how it serves).

Hands on texts-to-labels throughput, peak memory, each contender's length and truncation, and its accuracy on the
same labelled test texts (and agreement with `pipeline()`) for results.json.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from datasets import Dataset
from transformers import pipeline

from ..modeling import quiet_transformers
from ..predictor import Predictor
from .machine import PeakRSS, release_memory
from .tables import ratios, stats
from .workload import INFERENCE_CONTENDERS, BenchSettings, log, rotated


def run_inference(model_dir: Path, labelled: Dataset, settings: BenchSettings) -> dict[str, Any]:
    """The `labelled` texts in, predictions out (tokenisation included) for every contender; all predict the same
    texts, so speed and accuracy compare directly."""
    texts = list(labelled["text"])
    gold = [labelled.features["label"].int2str(label) for label in labelled["label"]]
    rss: dict[str, float] = {}
    with quiet_transformers():
        release_memory()
        with PeakRSS() as load:
            classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
        rss["pipeline_load"] = load.peak_mb
        positions = classifier.tokenizer.model_max_length  # where pipeline(truncation=True) cuts, keeping the head
        # The first two predictors serve at pipeline()'s length, so their rows time batching (and int8) alone;
        # the last one at the length and truncation training used, as predict and serve do by default.
        options = {"predictor": {"max_length": positions}, "predictor_int8": {"max_length": positions, "int8": True},
                   "predictor_saved": {}}
        predictors: dict[str, Predictor] = {}
        for name, load_options in options.items():
            with PeakRSS() as load:
                predictors[name] = Predictor.load(model_dir, **load_options)
            rss[f"{name}_load"] = load.peak_mb

        def naive(batch: list[str]) -> list[str]:
            return [output["label"] for output in classifier(batch, truncation=True)]

        def served_by(predictor: Predictor) -> Callable[[list[str]], list[str]]:
            return lambda batch: [row["label"] for row in predictor.predict(batch, sort_by_length=True)]

        runners = {"pipeline": naive, **{name: served_by(predictor) for name, predictor in predictors.items()}}
        labels = {name: runner(texts) for name, runner in runners.items()}  # warm-up, and the answers to score
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
    tokenization = {"pipeline": {"max_length": positions, "truncation": "head", "head_tokens": 0,
                                 "source": "pipeline(truncation=True): the tokenizer's model_max_length"}}
    tokenization |= {name: {"max_length": predictor.max_length, "truncation": predictor.truncation,
                            "head_tokens": predictor.head_tokens, "source": predictor.tokenization}
                     for name, predictor in predictors.items()}
    contenders = {
        name: {"examples_per_second": stats([len(texts) / seconds for seconds in timings[name]]),
               "peak_rss_mb": stats(peaks[name]),
               "tokenization": tokenization[name],
               "accuracy": float(np.mean([a == b for a, b in zip(labels[name], gold)])),
               "agreement_with_pipeline": float(np.mean([a == b for a, b in zip(labels[name], labels["pipeline"])]))}
        for name in INFERENCE_CONTENDERS
    }
    return {
        "texts": len(texts),  # labelled test rows: every contender's accuracy is on these same texts
        "batch_size": {"pipeline": classifier._batch_size or 1, "predictor": predictors["predictor"].batch_size},
        "contenders": contenders,
        "ratios": (ratios(contenders, "predictor", ("pipeline",))
                   | ratios(contenders, "predictor_int8", ("pipeline", "predictor"))
                   | ratios(contenders, "predictor_saved", ("pipeline", "predictor"))),
        "load_peak_rss_mb": rss,
    }
