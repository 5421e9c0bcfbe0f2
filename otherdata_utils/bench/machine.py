"""The machine under the benchmark: CPU, threads, BLAS and versions, the fp32 and bf16 matmul ceilings, peak memory.

Hands on `machine_info`, `matmul_gflops` and the `PeakRSS` block that every timed phase runs inside.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

import accelerate
import datasets
import torch
import transformers


def machine_info() -> dict[str, Any]:
    """CPU model and cores, torch threads and BLAS, library versions: what the absolute numbers depend on."""
    config_text = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config_text)
    libraries = [line.strip(" -") for line in config_text.splitlines()
                 if re.search(r"Math Kernel Library|OpenBLAS|MKL-DNN|oneDNN", line)]
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "blas": blas.group(1) if blas else "unknown",
        "math_libraries": libraries,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
        "load_average_at_start": load_average(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> Optional[list[float]]:
    """1, 5 and 15 minute load averages: other processes on the machine make the numbers noisier."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def matmul_gflops(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> list[float]:
    """GFLOP/s of `torch.mm` on two size² matrices of `dtype` (2·size³ FLOPs each), on all torch threads; one rate
    per repeat. bf16 is the ceiling of bf16 autocast, whose matmuls run on bf16 operands."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    for _ in range(2):  # warm-up: thread pool start, page faults on `out`, oneDNN's kernel choice for bf16
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        tick = time.perf_counter()
        torch.mm(a, b, out=out)
        rates.append(2 * size ** 3 / (time.perf_counter() - tick) / 1e9)
    return rates


# --- memory -----------------------------------------------------------------------------------------------------------

class PeakRSS:
    """Peak resident set size of this process inside a `with` block, in MB.

    Linux resets the kernel's own high-water mark (VmHWM) when "5" is written to /proc/self/clear_refs, so the peak is
    exact and costs nothing. Elsewhere a thread samples RSS every 5 ms (psutil), which can miss short spikes.
    RSS counts everything the process holds: libraries, earlier allocations the allocator kept, torch's tensors.
    """

    _open: list["PeakRSS"] = []  # enclosing blocks: a reset for an inner block must not lose their peak

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def method() -> str:
        if _can_clear_refs():
            return "VmHWM from /proc/self/status, reset through /proc/self/clear_refs before each phase (exact peak RSS)"
        return "psutil RSS sampled every 5 ms in a thread (can miss spikes shorter than that)"

    def __enter__(self) -> "PeakRSS":
        self._exact = _can_clear_refs()
        if self._exact:
            peak_so_far = _status_mb("VmHWM")
            for outer in self._open:
                outer.peak_mb = max(outer.peak_mb, peak_so_far)
            _clear_refs()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._open.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._open.remove(self)
        if self._exact:
            self.peak_mb = max(self.peak_mb, _status_mb("VmHWM"))
            for outer in self._open:
                outer.peak_mb = max(outer.peak_mb, self.peak_mb)
        else:
            self._stop.set()
            self._thread.join()

    def _sample(self) -> None:
        import psutil  # only machines without /proc/self/clear_refs (macOS) need it, so it loads only here

        process = psutil.Process()
        while True:
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            if self._stop.wait(0.005):
                return


def _clear_refs() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _can_clear_refs() -> bool:
    try:
        return Path("/proc/self/status").is_file() and os.access("/proc/self/clear_refs", os.W_OK)
    except OSError:
        return False


def _status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


def rss_mb() -> float:
    """This process's resident set size now, in MB."""
    try:
        return _status_mb("VmRSS")
    except OSError:
        import psutil  # not a declared dependency: only machines without /proc/self/status need it

        return psutil.Process().memory_info().rss / 2**20


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so one phase's leftovers inflate the next one's RSS less."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
