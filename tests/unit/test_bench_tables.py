"""The benchmark's arithmetic and instruments on fixed inputs: summaries and ratios of fixed timings, the contenders'
rotation, the step clock, the peak-memory sampler."""
import numpy as np
import pytest
import torch

from otherdata_utils.bench.contenders import StepClock
from otherdata_utils.bench.machine import PeakRSS
from otherdata_utils.bench.tables import summarise_training
from otherdata_utils.bench.workload import CONTENDERS, rotated


def test_training_summary_and_ratios_on_fixed_timings() -> None:
    def timed(seconds: float, peak: float) -> dict:
        return {"seconds": seconds, "examples_per_second": 64 / seconds, "peak_rss_mb": peak, "peak_rss_whole_mb": peak,
                "rss_before_mb": 100.0, "threads": 1}

    runs = {"ours": [timed(2.0, 300.0), timed(4.0, 310.0), timed(1.0, 290.0)],
            "seed_style": [timed(8.0, 400.0), timed(4.0, 420.0), timed(16.0, 410.0)],
            "trainer": [timed(4.0, 500.0), timed(4.0, 500.0), timed(2.0, 520.0)]}
    summary = summarise_training(runs, {"real_tokens": 1000}, {"non_embedding_parameters": 500_000},
                                 {"gflops": {"median": 2.0}})
    # ours: 16, 32, 64 ex/s; seed style: 4, 8, 16; trainer: 16, 16, 32
    assert summary["contenders"]["ours"]["examples_per_second"] == {"median": 32.0, "min": 16.0, "max": 64.0, "n": 3}
    assert summary["ratios"] == {
        "ours_vs_seed_style": {"median": 4.0, "min": 1.0, "max": 16.0},
        "ours_vs_trainer": {"median": 2.0, "min": 0.5, "max": 4.0},
    }
    # 6 x 500,000 parameters x 1,000 tokens = 3 GFLOP per epoch; at 2 s that is 1.5 GFLOP/s, 0.75 of the ceiling
    assert summary["flops_per_epoch"] == 3e9
    assert summary["contenders"]["ours"]["gflops"]["median"] == pytest.approx(1.5)
    assert summary["contenders"]["ours"]["share_of_ceiling"]["median"] == pytest.approx(0.75)
    assert summary["contenders"]["trainer"]["peak_rss_mb"] == {"median": 500.0, "min": 500.0, "max": 520.0, "n": 3}


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
