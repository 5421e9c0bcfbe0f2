"""auto picks bf16 only where bf16 matmul is native, and says why; explicit modes pass through."""
import pytest

from otherdata_utils.precision import resolve_precision

AMX = {"avx2", "avx512f", "amx_bf16", "amx_tile", "avx512_bf16"}
AVX2_ONLY = {"sse4_2", "avx2", "fma"}


def test_auto_chooses_bf16_on_a_cpu_with_amx_and_names_the_flag():
    choice = resolve_precision("auto", flags=AMX, capability="")
    assert (choice.mode, choice.label) == ("bf16", "bf16 autocast")
    assert "amx_bf16" in choice.reason


def test_auto_chooses_fp32_on_an_avx2_only_cpu_and_says_bf16_would_be_emulated():
    choice = resolve_precision("auto", flags=AVX2_ONLY, capability="")
    assert (choice.mode, choice.label) == ("no", "fp32")
    assert choice.reason == ("fp32: the CPU has avx2 but neither amx_bf16 nor avx512_bf16, so bf16 would be "
                             "emulated and slower than fp32")


def test_auto_respects_a_process_capped_to_avx2_on_an_amx_cpu():
    choice = resolve_precision("auto", flags=AMX, capability="avx2")
    assert choice.mode == "no" and "ATEN_CPU_CAPABILITY=avx2" in choice.reason


def test_explicit_modes_pass_through_and_fp16_on_a_cpu_is_refused_by_name():
    assert resolve_precision("bf16", flags=AVX2_ONLY).mode == "bf16"
    assert resolve_precision("no", flags=AMX).mode == "no"
    with pytest.raises(ValueError, match="mixed_precision: fp16 needs a GPU"):
        resolve_precision("fp16")
    with pytest.raises(ValueError, match="must be one of auto, no, bf16, fp16"):
        resolve_precision("fp32")


def test_host_class_names_the_isa_and_cores_timings_compare_within():
    from otherdata_utils.precision import host_class

    assert host_class(AMX, cores=2) == "AVX-512 + AMX, 2 cores"
    assert host_class(AVX2_ONLY, cores=1) == "AVX2, 1 core"
    assert host_class({"avx512f", "avx2"}, cores=16) == "AVX-512, 16 cores"


def test_a_bare_yaml_no_means_fp32_not_an_error():
    from otherdata_utils.config import Config

    assert Config(mixed_precision=False).mixed_precision == "no"
    with pytest.raises(ValueError, match="mixed_precision"):
        Config(mixed_precision=True)
