"""The serving side of the benchmark on fixed numbers: which pipeline() row is the baseline, which row the headline
picks over it, the ratio arithmetic, the table's wording; how `precision` resolves for serving on given CPU flags."""
import pytest

from otherdata_utils.bench.tables import (PIPELINE_ROWS, _inference_section, _serving_headline_row, ratios,
                                          serving_baseline, serving_headline, stats)
from otherdata_utils.predictor import serving_precision

AMX = {"avx2", "avx512f", "amx_bf16", "amx_tile", "avx512_bf16"}
AVX2 = {"avx2", "fma"}


def _tost(equivalent: bool) -> dict:
    return {"delta": -0.002, "ci_low": -0.008, "ci_high": 0.004 if equivalent else 0.012, "margin": 0.01,
            "alpha": 0.05, "covers": "test rows", "equivalent": equivalent, "verdict": "..."}


def _row(rates: list[float], accuracy: float, *, vs_baseline: bool = None, vs_fp32: bool = None,
         batch_size: int = 32) -> dict:
    row = {"examples_per_second": stats(rates), "peak_rss_mb": stats([500.0]), "accuracy": accuracy,
           "agreement_with_fp32": 1.0, "batch_size": batch_size, "precision": "fp32",
           "tokenization": {"max_length": 128, "truncation": "head", "head_tokens": 0, "source": "as trained"}}
    if vs_baseline is not None:
        row["equivalence_vs_baseline"] = _tost(vs_baseline)
    if vs_fp32 is not None:
        row["equivalence_vs_fp32"] = _tost(vs_fp32)
    return row


def _inference(int8_equivalent: bool, bf16_equivalent: bool = True, batch_one_rates: tuple = (10.0, 10.0, 10.0)
               ) -> dict:
    contenders = {
        "pipeline_bs1": _row(list(batch_one_rates), 0.852, batch_size=1),
        "pipeline_bs32": _row([25.0, 20.0, 30.0], 0.850),  # median 25, min 20, max 30
        "predictor_fp32": _row([50.0, 40.0, 60.0], 0.848, vs_baseline=True),
        "predictor_bf16": _row([100.0, 90.0, 120.0], 0.846, vs_baseline=bf16_equivalent, vs_fp32=True),
        "predictor_int8": _row([150.0, 140.0, 160.0], 0.830, vs_baseline=int8_equivalent, vs_fp32=False),
    }
    found = ratios(contenders, "pipeline_bs1", ("pipeline_bs32",))
    found |= ratios(contenders, "pipeline_bs32", ("pipeline_bs1",))
    for name in ("predictor_fp32", "predictor_bf16", "predictor_int8"):
        found |= ratios(contenders, name, PIPELINE_ROWS)
    return {"texts": 512, "contenders": contenders, "ratios": found, "skipped": {},
            "headline": serving_headline(contenders, found)}


def test_headline_is_the_fastest_row_at_equal_accuracy_not_the_fastest_row() -> None:
    headline = _inference(int8_equivalent=False)["headline"]
    # int8 is faster (6x) but not shown equivalent; bf16 is: 100 / 25 = 4, worst 90 / 30 = 3, best 120 / 20 = 6
    assert headline["baseline"] == "pipeline_bs32"  # 25 ex/s against batch 1's 10
    assert headline["contender"] == "predictor_bf16"
    assert headline["ratio"] == headline["ratio_vs_pipeline_bs32"] == {"median": 4.0, "min": 3.0, "max": 6.0}
    assert (headline["accuracy"], headline["baseline_accuracy"]) == (0.846, 0.850)
    assert headline["equivalent"] is True and headline["reaches_target"] is True


def test_headline_divides_by_batch_one_where_it_is_the_faster_pipeline() -> None:
    inference = _inference(int8_equivalent=False, batch_one_rates=(40.0, 50.0, 45.0))  # median 45 beats 25
    headline = inference["headline"]
    assert serving_baseline(inference["contenders"]) == headline["baseline"] == "pipeline_bs1"
    assert headline["ratio"] == {"median": 100.0 / 45.0, "min": 90.0 / 50.0, "max": 120.0 / 40.0}
    assert headline["ratio_vs_pipeline_bs32"]["median"] == 4.0
    assert headline["baseline_accuracy"] == 0.852 and headline["reaches_target"] is False  # 2.2x: measured, not met
    row = _serving_headline_row(inference)
    assert "vs `pipeline()` at batch 1, the faster `pipeline()` here | **2.22×** (1.80–3.00)" in row
    assert "vs `pipeline(batch_size=32)` 4.00×; goal ≥ 3×: not met" in row


def test_headline_takes_the_faster_row_once_it_is_equivalent_too() -> None:
    headline = _inference(int8_equivalent=True)["headline"]
    assert headline["contender"] == "predictor_int8"
    assert headline["ratio"] == {"median": 6.0, "min": 140.0 / 30.0, "max": 8.0}


def test_headline_without_an_equivalent_row_reports_the_fastest_and_does_not_meet_the_goal() -> None:
    inference = _inference(int8_equivalent=False, bf16_equivalent=False)
    inference["contenders"]["predictor_fp32"]["equivalence_vs_baseline"] = _tost(False)
    headline = serving_headline(inference["contenders"], inference["ratios"])
    assert headline["contender"] == "predictor_int8" and headline["ratio"]["median"] == 6.0
    assert headline["equivalent"] is False and headline["reaches_target"] is False


def test_an_equivalent_row_below_three_times_is_reported_with_its_measured_ratio() -> None:
    inference = _inference(int8_equivalent=False, bf16_equivalent=False)
    headline = inference["headline"]
    assert headline["contender"] == "predictor_fp32"
    assert headline["ratio"] == {"median": 2.0, "min": 40.0 / 30.0, "max": 3.0}
    assert headline["equivalent"] is True and headline["reaches_target"] is False
    assert _serving_headline_row(inference) == (
        "| inference: fastest `Predictor` at equal accuracy (TOST ±1 point), our `Predictor`, fp32, vs `pipeline()` at "
        "batch 32, the faster `pipeline()` here | **2.00×** (1.33–3.00) (accuracy 84.8% vs 85.0%; 128, head; vs "
        "`pipeline(batch_size=32)` 2.00×; goal ≥ 3×: not met) |")


def test_headline_needs_rows_tested_against_the_baseline() -> None:
    contenders = {"pipeline_bs32": _row([25.0], 0.85), "pipeline_bs1": _row([10.0], 0.85)}
    with pytest.raises(ValueError, match="no contender has a TOST against the baseline"):
        serving_headline(contenders, ratios(contenders, "pipeline_bs1", ("pipeline_bs32",)))


def test_inference_table_has_every_measured_row_its_tosts_and_says_why_bf16_is_missing() -> None:
    inference = _inference(int8_equivalent=False)
    del inference["contenders"]["predictor_bf16"]
    inference["skipped"] = {"predictor_bf16": "not measured on this host: the CPU has avx2 but neither ..."}
    text = "\n".join(_inference_section(inference))
    assert "| `pipeline(batch_size=32)` | 128, head | 32 | 25.0 (20.0–30.0) | **2.50×** (2.00–3.00) | 1.00× |" in text
    assert "| our `Predictor`, int8 dynamic quantisation | 128, head | 32 | 150.0 (140.0–160.0) | **15.00×** " \
           "(14.00–16.00) | **6.00×** (4.67–8.00) | 83.0% | 100.0% | -0.2 pt [-0.8, +1.2] not shown | " \
           "-0.2 pt [-0.8, +1.2] not shown | 500 (500–500) |" in text
    assert "bf16 autocast |" not in text
    assert "our `Predictor`, bf16 autocast: not measured on this host: the CPU has avx2" in text


@pytest.mark.parametrize("requested, flags, capability, used, reason", [
    ("auto", AMX, "", "bf16", "auto: the CPU has amx_bf16 and avx512_bf16"),
    ("auto", AVX2, "", "fp32", "auto: fp32: the CPU has avx2 but neither amx_bf16 nor avx512_bf16"),
    ("auto", AMX, "avx2", "fp32", "ATEN_CPU_CAPABILITY=avx2 caps torch's kernels"),
    ("no", AMX, "", "fp32", "asked for (precision=no)"),
    ("bf16", AVX2, "", "bf16", "asked for (precision=bf16); but the CPU has avx2"),
    ("int8", AMX, "", "int8", "asked for (precision=int8)"),
])
def test_serving_precision_follows_the_cpu_for_auto_and_passes_explicit_choices(
        requested: str, flags: set, capability: str, used: str, reason: str) -> None:
    choice = serving_precision(requested, flags=flags, capability=capability)
    assert (choice.requested, choice.used) == (requested, used)
    assert reason in choice.reason


def test_serving_precision_refuses_fp16_and_unknown_names_naming_the_parameter() -> None:
    for requested in ("fp16", "float32"):
        with pytest.raises(ValueError, match="precision must be one of auto, no, bf16, int8"):
            serving_precision(requested)
