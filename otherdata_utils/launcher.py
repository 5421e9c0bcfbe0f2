"""Training over several processes from a notebook: accelerate's `notebook_launcher` run by the `num_processes`
parameter, one process per GPU, else CPU processes on gloo.

Hands the fine-tune step `check_launchable`, `launch` (runs a module-level function in every process and waits for
them), `start_process` (what each launched process does first) and `global_batch_line` (the batch the run trains with).
"""
from __future__ import annotations

import socket
import sys
from typing import Any, Callable

import datasets
import torch
import transformers
from accelerate import notebook_launcher
from accelerate.state import AcceleratorState, GradientState, PartialState

from .config import Config
from .execution import available_cores
from .progress import to_runner


def global_batch(config: Config, processes: int) -> int:
    """Rows per optimizer step: each process takes its own batches and their gradients are averaged."""
    return config.per_device_train_batch_size * processes * config.gradient_accumulation_steps


def global_batch_line(config: Config) -> str:
    """One line for the log: where training runs, its global batch, and why its step count is not one process's."""
    processes = config.num_processes
    where = f"{processes} GPUs" if torch.cuda.device_count() else f"{processes} CPU processes (gloo)"
    line = (f"training on {where}: global batch {global_batch(config, processes)} = "
            f"{config.per_device_train_batch_size} per process × {processes} processes × "
            f"{config.gradient_accumulation_steps} accumulation steps")
    if config.max_steps > 0:
        return f"{line}; max_steps={config.max_steps} optimizer steps, as on one process"
    # An epoch is the same rows whatever the placement, so keeping one process's step count would mean training
    # num_processes times the epochs: another run. The params file's epochs are kept, in fewer, larger steps.
    return (f"{line}; an epoch takes 1/{processes} of the optimizer steps one process takes (at global batch "
            f"{global_batch(config, 1)}); to repeat a one-process run, divide gradient_accumulation_steps or "
            f"per_device_train_batch_size by {processes}")


def check_launchable(config: Config) -> None:
    """Refuse, before anything is trained, a `num_processes` this machine cannot launch: more processes than GPUs;
    GPU stages that would run in this process first (continued pretraining, intermediate-task training) and so
    start CUDA here, where the forked processes can then no longer use it; or Colab without two GPUs, where
    notebook_launcher runs the function once in this process (a global batch other than the one recorded)."""
    processes = config.num_processes
    gpus = torch.cuda.device_count()  # NVML: asking does not start CUDA here, which forking forbids
    if "google.colab" in sys.modules and gpus < 2:
        raise ValueError(f"num_processes={processes}: on Colab accelerate's notebook_launcher starts several "
                         f"processes only on several GPUs, and this runtime has {gpus}; set num_processes: 1")
    if gpus and processes > gpus:
        raise ValueError(f"num_processes={processes}: this machine has {gpus} GPU(s), one process each; set "
                         f"num_processes to at most {gpus}")
    earlier = [stage for stage, present in (("continued pretraining (pretrain_steps > 0)", config.pretrain_steps > 0),
                                            ("intermediate-task training (intermediate sources)",
                                             any(spec.intermediate for spec in config.source_specs))) if present]
    if gpus and earlier:
        raise ValueError(f"num_processes={processes}: {' and '.join(earlier)} runs on the GPU in this process before "
                         "fine-tuning is launched, after which forked processes cannot use CUDA; set num_processes: 1 "
                         "for this run")


def launch(function: Callable[..., Any], args: tuple, config: Config) -> None:
    """Run `function(*args)` in `config.num_processes` processes started by accelerate's notebook_launcher (forked:
    `function` must be defined at module level, and nothing may have used CUDA in this process) and wait for all.

    Each process calls `start_process(config)` first (the function's job). Nothing comes back but a failure: the
    function hands its results over through the run folder.
    """
    check_launchable(config)
    processes = config.num_processes
    if torch.cuda.is_initialized():
        raise RuntimeError(f"num_processes={processes}: CUDA was already used in this process, and forked "
                           "processes cannot use it after that; restart the kernel and run this notebook from the "
                           "top without touching the GPU first")
    if PartialState._shared_state and PartialState().use_distributed:
        raise RuntimeError(f"num_processes={processes}: this process is already one of "
                           f"{PartialState().num_processes} started by a launcher (accelerate launch, torchrun); set "
                           "num_processes: 1 and let that launcher place the processes")
    # An earlier step's single-process Accelerator (continued pretraining, another run in this kernel) holds no
    # device or process group on CPU, but the forked processes would inherit it and each train alone: forget it.
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    notebook_launcher(function, args, num_processes=processes, use_port=str(free_port()))


def start_process(config: Config) -> Config:
    """What a launched process does before anything else: join the process group (on CPU accelerate does so only
    when asked for the CPU first) and take its share of the cores. Returns the config it trains with.

    Forked from a notebook kernel, a process cannot draw the notebook's progress widgets (the kernel drops their
    messages, warning once per update): its bars are off there. Under the runner its step lines still reach the
    terminal (`progress.StepLines`); in an interactive notebook the result shows when training ends.
    """
    if not torch.cuda.device_count():
        PartialState(cpu=True)
        torch.set_num_threads(max(1, available_cores() // config.num_processes))
    if "ipykernel" not in sys.modules:
        return config
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    return config.replace(quiet=True) if config.quiet is None and not to_runner() else config


def free_port() -> int:
    """A TCP port free now on this host: several runs (or test sessions) may launch side by side, where accelerate's
    fixed default port would let the second fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
