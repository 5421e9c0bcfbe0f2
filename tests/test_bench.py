"""The benchmark in its CI form: `bench --quick` completes and writes results.json and RESULTS.md with every section
and positive numbers. No timing thresholds: how fast the CI machine is, is not the claim."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from otherdata_utils.__main__ import main
from otherdata_utils.bench.contenders import StepClock
from otherdata_utils.bench.inference import run_inference
from otherdata_utils.bench.machine import PeakRSS
from otherdata_utils.bench.workload import CONTENDERS, INFERENCE_CONTENDERS, QUICK, BenchSettings, rotated
from otherdata_utils.config import Config
from otherdata_utils.model_card import write_inference_settings
from otherdata_utils.predictor import Predictor

SECTIONS = ("## Headline", "## Training throughput", "## Matmul ceiling", "## Inference throughput",
            "## Peak memory", "## End to end", "## Machine", "## Method")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One `bench --quick` run on the tiny random model (the packaged MiniLM is the full run's model).

    One torch thread: on shared CI cores two OpenMP threads that wait on each other run ~10x slower.
    """
    out = tmp_path_factory.mktemp("bench")
    before = torch.get_num_threads()
    try:
        assert main(["bench", "--quick", "--model", "tiny-random", "--threads", "1", "--out", str(out),
                     "--data-dir", str(data_dir)]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def test_quick_benchmark_reports_positive_training_throughput_for_every_contender(quick_results: Path) -> None:
    results = json.loads((quick_results / "results.json").read_text())
    training = results["training"]
    assert set(training["contenders"]) == set(CONTENDERS)
    for name in CONTENDERS:
        row = training["contenders"][name]
        assert row["examples_per_second"]["n"] == 3, name
        assert row["examples_per_second"]["min"] > 0, name
        assert row["gflops"]["min"] > 0, name
        assert row["peak_rss_mb"]["min"] > 0, name
    assert training["ratios"]["ours_vs_seed_style"]["median"] > 0
    assert training["ratios"]["ours_vs_trainer"]["median"] > 0
    assert results["matmul"]["gflops"]["min"] > 0
    # every contender trains on the same timed examples: 4 steps of 16
    assert results["data"]["timed_rows"] == 64


def test_quick_benchmark_reports_inference_machine_and_skips_the_study(quick_results: Path) -> None:
    results = json.loads((quick_results / "results.json").read_text())
    inference = results["inference"]
    for name in INFERENCE_CONTENDERS:
        assert inference["contenders"][name]["examples_per_second"]["min"] > 0, name
    assert inference["contenders"]["predictor"]["agreement_with_pipeline"] > 0.9  # the same model in fp32
    # every row scored on the same labelled test texts
    assert tuple(inference["contenders"]) == INFERENCE_CONTENDERS
    assert inference["texts"] == QUICK.inference_texts
    for name in INFERENCE_CONTENDERS:
        assert 0 <= inference["contenders"][name]["accuracy"] <= 1, name
    # the trained model was saved with the bench's training settings, and the saved-settings row served at them
    saved = inference["contenders"]["predictor_saved"]["tokenization"]
    assert (saved["max_length"], saved["truncation"]) == (results["settings"]["max_seq_length"], "head")
    assert inference["contenders"]["pipeline"]["tokenization"]["max_length"] == 512
    assert inference["ratios"]["predictor_saved_vs_pipeline"]["median"] > 0
    assert results["machine"]["torch_threads"] == 1  # --threads 1
    assert results["machine"]["cpu_model"]
    assert results["e2e"] == {"skipped": True, "reason": "--quick"}
    assert "ablations" not in results


def test_quick_benchmark_writes_a_markdown_table_with_every_section(quick_results: Path) -> None:
    markdown = (quick_results / "RESULTS.md").read_text()
    missing = [section for section in SECTIONS if section not in markdown]
    assert not missing
    assert "| our loop (`train.train`" in markdown
    assert "| accuracy |" in markdown and "Every row predicts the same texts" in markdown
    assert "| our `Predictor` at the model's saved training settings (how predict and serve run it) | 128, head |" \
        in markdown
    assert "nan" not in markdown.lower()
    assert not list(quick_results.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_rotation_puts_each_contender_in_each_place_once() -> None:
    orders = [rotated(CONTENDERS, repeat) for repeat in range(len(CONTENDERS))]
    for position in range(len(CONTENDERS)):
        assert sorted(order[position] for order in orders) == sorted(CONTENDERS)


def test_step_clock_ignores_optimizer_steps_before_the_first_forward() -> None:
    model = torch.nn.Linear(4, 2)
    probe = torch.zeros(1, requires_grad=True)
    probe.grad = torch.zeros(1)
    with StepClock(model) as clock:
        torch.optim.SGD([probe], lr=0.1).step()  # like build_optimizer's fused-AdamW probe
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            model(torch.ones(1, 4)).sum().backward()
            optimizer.step()
    assert len(clock.step_ends) == 3
    assert clock.seconds() == pytest.approx(sum(clock.step_seconds()))


def test_peak_rss_of_an_outer_block_includes_a_spike_inside_an_inner_block() -> None:
    with PeakRSS() as outer:
        with PeakRSS() as inner:
            spike = np.ones(64 * 2**20 // 8)  # 64 MB, touched
            del spike
    assert inner.peak_mb > 64
    assert outer.peak_mb >= inner.peak_mb


def test_inference_scores_every_contender_on_the_same_labelled_texts_and_serves_the_saved_settings(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    write_inference_settings(model_dir, Config(max_seq_length=64, truncation="head_tail", head_tokens=16))
    texts = ["fine", "awful " * 300, "a long review that goes on " * 40, "great", "bad", "ok " * 100]
    served = Predictor.load(model_dir)
    answers = [row["label_id"] for row in served.predict(texts)]
    # gold labels that agree with the saved-settings answers on the first four texts only: its accuracy is 4/6
    gold = answers[:4] + [1 - label_id for label_id in answers[4:]]
    labelled = Dataset.from_dict({"text": texts, "label": gold},
                                 features=Features({"text": Value("string"), "label": ClassLabel(names=served.labels)}))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inference = run_inference(model_dir, labelled, BenchSettings(inference_repeats=1))
    finally:
        torch.set_num_threads(before)
    assert inference["texts"] == len(texts)
    assert tuple(inference["contenders"]) == INFERENCE_CONTENDERS
    assert inference["contenders"]["predictor_saved"]["accuracy"] == pytest.approx(4 / 6)
    for name in INFERENCE_CONTENDERS:
        row = inference["contenders"][name]
        assert row["accuracy"] in {correct / len(texts) for correct in range(len(texts) + 1)}, name
        assert row["examples_per_second"]["n"] == 1, name
    cut = {name: row["tokenization"] for name, row in inference["contenders"].items()}
    assert {key: cut["predictor_saved"][key] for key in ("max_length", "truncation", "head_tokens")} == \
        {"max_length": 64, "truncation": "head_tail", "head_tokens": 16}
    assert cut["predictor_saved"]["source"].startswith("as trained")
    assert cut["pipeline"]["max_length"] == cut["predictor"]["max_length"] == cut["predictor_int8"]["max_length"] \
        == 512
