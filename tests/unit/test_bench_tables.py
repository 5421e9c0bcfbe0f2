"""The benchmark's arithmetic and instruments on fixed inputs: summaries and ratios of fixed timings, the contenders'
rotation, the step clock, the peak-memory sampler."""
import numpy as np
import pytest
import torch

from otherdata_utils.bench.contenders import StepClock
from otherdata_utils.bench.machine import PeakRSS
from otherdata_utils.bench.tables import (_e2e_lines, _study_layout_lines, paired_ratio, summarise_default_study,
                                          summarise_study_layout, summarise_training)
from otherdata_utils.bench.workload import CONTENDERS, rotated


def test_training_summary_and_ratios_on_fixed_timings() -> None:
    def timed(seconds: float, peak: float) -> dict:
        return {"seconds": seconds, "examples_per_second": 64 / seconds, "peak_rss_mb": peak, "peak_rss_whole_mb": peak,
                "rss_before_mb": 100.0, "threads": 1, "precision": "no", "accuracy": 0.5}

    runs = {"ours": [timed(2.0, 300.0), timed(4.0, 310.0), timed(1.0, 290.0)],
            "seed_style": [timed(8.0, 400.0), timed(4.0, 420.0), timed(16.0, 410.0)],
            "trainer": [timed(4.0, 500.0), timed(4.0, 500.0), timed(2.0, 520.0)]}
    summary = summarise_training(runs, {"real_tokens": 1000}, {"non_embedding_parameters": 500_000},
                                 {"fp32": {"gflops": {"median": 2.0}}})
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


def test_bf16_row_is_paired_with_fp32_run_by_run_and_measured_against_the_bf16_ceiling() -> None:
    def timed(seconds: float, precision: str, accuracy: float) -> dict:
        return {"seconds": seconds, "examples_per_second": 64 / seconds, "peak_rss_mb": 1.0, "peak_rss_whole_mb": 1.0,
                "rss_before_mb": 1.0, "threads": 2, "precision": precision, "accuracy": accuracy}

    # fp32 16, 32, 8 ex/s; bf16 32, 40, 16 ex/s in the same repetitions: paired ratios 2.0, 1.25, 2.0
    runs = {"ours": [timed(4.0, "no", 0.80), timed(2.0, "no", 0.80), timed(8.0, "no", 0.80)],
            "ours_bf16": [timed(2.0, "bf16", 0.75), timed(1.6, "bf16", 0.8125), timed(4.0, "bf16", 0.8125)],
            "seed_style": [timed(8.0, "no", 0.5)] * 3, "trainer": [timed(4.0, "no", 0.5)] * 3}
    summary = summarise_training(runs, {"real_tokens": 1000}, {"non_embedding_parameters": 500_000},
                                 {"fp32": {"gflops": {"median": 2.0}}, "bf16": {"gflops": {"median": 10.0}}})
    assert summary["ratios"]["ours_bf16_vs_ours"] == {"median": 2.0, "min": 1.25, "max": 2.0, "n": 3}
    bf16 = summary["contenders"]["ours_bf16"]
    assert (bf16["precision"], bf16["ceiling"]) == ("bf16", "bf16")
    # 3 GFLOP per epoch in 2.0, 1.6, 4.0 s: 1.5, 1.875, 0.75 GFLOP/s of a 10 GFLOP/s bf16 ceiling
    assert bf16["share_of_ceiling"]["median"] == pytest.approx(0.15)
    assert bf16["share_of_ceiling"]["max"] == pytest.approx(0.1875)
    assert summary["contenders"]["ours"]["share_of_ceiling"]["median"] == pytest.approx(0.375)  # 0.75 of 2.0
    assert bf16["accuracy"] == {"median": 0.8125, "min": 0.75, "max": 0.8125, "n": 3}


def test_paired_ratio_refuses_runs_that_do_not_pair() -> None:
    assert paired_ratio([3.0, 1.0], [1.0, 2.0]) == {"median": 1.75, "min": 0.5, "max": 3.0, "n": 2}
    with pytest.raises(ValueError, match="as many of each"):
        paired_ratio([1.0, 2.0], [1.0])


def test_study_layout_ratio_and_cell_agreement_on_fixed_timings() -> None:
    scores = {"seed-1": {"accuracy": 0.8, "correct": "1101"}, "seed-2": {"accuracy": 0.7, "correct": "0101"}}
    serial = {"seconds": 60.0, "cells": scores, "cell_seconds": {"seed-1": 30.0, "seed-2": 30.0},
              "threads_per_cell": 2, "workers": 1}
    ray = {"seconds": 48.0, "cells": dict(scores), "cell_seconds": {"seed-1": 44.0, "seed-2": 46.0},
           "threads_per_cell": 1, "workers": 2}
    same = summarise_study_layout(serial, ray)
    assert (same["serial_over_ray"], same["faster"], same["cells_identical"]) == (1.25, "ray", True)
    assert "**1.25×** (ray is faster); every cell's scores identical" in "\n".join(_study_layout_lines(same))
    assert "| Ray, 2 workers × 1 thread | 48.0 | 45.0 |" in _study_layout_lines(same)
    moved = summarise_study_layout(serial, {**ray, "seconds": 75.0,
                                            "cells": {**scores, "seed-2": {"accuracy": 0.7, "correct": "0110"}}})
    assert (moved["serial_over_ray"], moved["faster"]) == (0.8, "serial")
    assert (moved["cells_identical"], moved["differing_cells"]) == (False, ["seed-2"])


def test_default_study_fp32_over_auto_on_fixed_timings() -> None:
    def run(seconds: float, requested: str, mode: str, ok: bool = True) -> dict:
        return {"params": "params/default.yaml", "seconds": seconds, "ok": ok, "largest_process_peak_rss_mb": 2000.0,
                "method": "timed here", "precision": {"requested": requested, "mode": mode, "reason": "why"}}

    both = summarise_default_study({"no": run(180.0, "no", "no"), "auto": run(120.0, "auto", "bf16")})
    assert both["fp32_over_auto"] == 1.5
    lines = _e2e_lines(both)
    assert "- fp32 / auto wall time: **1.50×** (one run of each, fp32 first)." in lines
    assert any("mixed_precision auto (picks bf16: why): **2.0 min**" in line for line in lines)
    assert summarise_default_study({"no": run(180.0, "no", "no"),
                                    "auto": run(9.0, "auto", "bf16", ok=False)})["fp32_over_auto"] is None
    fp32_only = summarise_default_study({"no": run(180.0, "no", "no")})  # where auto picks fp32: one run
    assert fp32_only["fp32_over_auto"] is None
    assert _e2e_lines(fp32_only)[0].startswith("- `python -m otherdata_utils run params/default.yaml` at "
                                                "mixed_precision no: **3.0 min**")


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


def test_rewriting_results_keeps_the_hand_written_notes(tmp_path, monkeypatch) -> None:
    from otherdata_utils import bench

    renders = iter(["# run 1\n", "# run 2\n"])
    monkeypatch.setattr(bench, "render_markdown", lambda results: next(renders))
    bench.write_results({"run": 1}, tmp_path)
    notes = f"{bench.NOTES_HEADING}\n\nbf16 profile: casts 25%.\n"
    (tmp_path / "RESULTS.md").write_text((tmp_path / "RESULTS.md").read_text() + "\n" + notes)
    bench.write_results({"run": 2}, tmp_path)
    assert (tmp_path / "RESULTS.md").read_text() == "# run 2\n\n" + notes
