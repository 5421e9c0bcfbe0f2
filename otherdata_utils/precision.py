"""Which numeric precision a run computes in: `mixed_precision: auto | no | bf16 | fp16` resolved on this host.

`auto` picks bf16 autocast where the hardware does bf16 matmul natively (a CPU with AMX or AVX512-BF16 that torch is
allowed to use, or a GPU that reports bf16 support) and fp32 elsewhere, because emulated bf16 is slower than fp32.
Hands a `PrecisionChoice` (the mode Accelerate takes, and the reason in words) to training, evaluation, serving and
the run's environment record. Master weights and the optimizer stay fp32 in every mode: autocast only changes the
dtype matmuls run in.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

PRECISIONS = ("auto", "no", "bf16", "fp16")
# CPU flags (as /proc/cpuinfo spells them) that give native bf16 matmul: AMX tiles, or AVX-512 BF16 dot products.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# ATEN_CPU_CAPABILITY below avx512 caps torch's kernels to an older ISA (our reference notebooks pin avx2); on such a
# capped process bf16 falls back to emulation, so auto must not choose it there.
_CAPPED_CAPABILITIES = ("default", "avx2", "zvector", "vsx")


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run computes in: `mode` is Accelerate's mixed_precision ("no", "bf16", "fp16"); `requested` what the
    config asked; `reason` one sentence on why, for environment.json and the model's inference settings."""

    requested: str
    mode: str
    device: str
    reason: str

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """"fp32" or "bf16 autocast" / "fp16 autocast": how tables and logs name it."""
        return "fp32" if self.mode == "no" else f"{self.mode} autocast"

    @property
    def summary(self) -> str:
        """The label and its reason on one line, as the training log and report.md give it: "bf16 autocast (the CPU
        has amx_bf16 and avx512_bf16 (native bf16 matmul))", "fp32 (set in the config)"."""
        return f"{self.label} ({self.reason.removeprefix('fp32: ')})"  # auto's fp32 reason names fp32 already


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags of the first processor; empty where /proc/cpuinfo is missing (macOS, Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def native_cpu_bf16(flags: Optional[set[str]] = None, capability: Optional[str] = None) -> tuple[bool, str]:
    """Whether this process can run bf16 matmul natively on the CPU, and why in words."""
    flags = cpu_flags() if flags is None else flags
    native = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
    if not native:
        isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no AVX2/AVX-512" if flags else None
        seen = f"the CPU has {isa} but neither {' nor '.join(NATIVE_BF16_FLAGS)}" if isa else \
            "the CPU's feature flags cannot be read here"
        return False, f"{seen}, so bf16 would be emulated and slower than fp32"
    capability = os.environ.get("ATEN_CPU_CAPABILITY", "") if capability is None else capability
    if capability.lower() in _CAPPED_CAPABILITIES:
        return False, (f"the CPU has {native[0]}, but ATEN_CPU_CAPABILITY={capability} caps torch's kernels below "
                       f"AVX-512, so bf16 would be emulated")
    return True, f"the CPU has {' and '.join(native)} (native bf16 matmul)"


def resolve_precision(requested: str, device: str = "cpu", *, flags: Optional[set[str]] = None,
                      capability: Optional[str] = None) -> PrecisionChoice:
    """Resolve a config's `mixed_precision` on `device` ("cpu" or "cuda"/"cuda:N"); explicit modes pass through.

    fp16 on a CPU is refused: torch's CPU autocast in fp16 has no fast kernels and Accelerate's GradScaler path is
    for GPUs; the error names the parameter.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    on_gpu = device.startswith("cuda")
    if requested == "fp16" and not on_gpu:
        raise ValueError("mixed_precision: fp16 needs a GPU; on a CPU use bf16 (or auto, which picks bf16 where the "
                         "CPU has it natively)")
    if requested != "auto":
        return PrecisionChoice(requested, requested, device, "set in the config")
    if on_gpu:
        import torch

        if torch.cuda.is_bf16_supported():
            return PrecisionChoice(requested, "bf16", device, "the GPU supports bf16")
        return PrecisionChoice(requested, "no", device, "the GPU has no bf16 support, so fp32")
    native, why = native_cpu_bf16(flags, capability)
    return PrecisionChoice(requested, "bf16" if native else "no", device, why if native else f"fp32: {why}")


def host_class(flags: Optional[set[str]] = None, cores: Optional[int] = None) -> str:
    """The host class a timing belongs to, e.g. "AVX-512 + AMX, 2 cores": timings compare only within a class."""
    flags = cpu_flags() if flags is None else flags
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "amx_bf16" in flags:
        isa = "AVX-512 + AMX"
    elif "avx512_bf16" in flags:
        isa = "AVX-512 + BF16"
    elif "avx512f" in flags:
        isa = "AVX-512"
    elif "avx2" in flags:
        isa = "AVX2"
    else:
        isa = "CPU of unknown ISA" if not flags else "pre-AVX2"
    return f"{isa}, {cores} core{'s' if cores != 1 else ''}"
