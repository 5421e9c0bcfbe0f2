"""Command line: ``python -m otherdata_utils {run,predict,serve,bench,publish,data} …``; each parses its own
arguments."""
from __future__ import annotations

import os
import sys
from typing import Callable

USAGE = """usage: python -m otherdata_utils COMMAND [ARGS]

commands:
  run PARAMS.yaml [...] [--set k=v] [--out DIR] [--check]
                                                  run the notebook study for each params file (--check: pre-flight)
  predict MODEL_DIR INPUT OUTPUT [--text-column C]  batch prediction on a CSV/TSV/JSONL file
  serve MODEL_DIR [--host H] [--port N]             HTTP prediction service
  bench [--quick]                                   training/inference throughput benchmarks
  publish RUN_DIR RESULTS_DIR                       a finished run's small, reader-facing results folder
  publish --restat RESULTS_DIR...                   re-render published comparisons from their cells (no training)
  data list [--data-dir DIR]                        each named source: original, licence, Hub copy, copy read
  data fetch NAME... [--data-dir DIR] [--force]     write sources' Hub copies into the data dir, laid out to read
"""
# commands whose modules import the `run` extra's libraries (training, notebooks, figures)
RUN_EXTRA_COMMANDS = ("run", "publish", "bench")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Each command imports its own module only when chosen: `run` alone pulls in torch, transformers and papermill
    # (seconds), so `--help`, `predict` and `publish` do not wait for what they never use, and `predict` and `serve`
    # work in a lean install (the `serve` extra) without the `run` extra.
    if command == "predict":
        from .serve import predict_command
        return predict_command(rest)
    if command == "serve":
        from .serve import serve_command
        return serve_command(rest)
    if command == "data":
        from .data.fetch import data_command
        return data_command(rest)
    if command in RUN_EXTRA_COMMANDS:
        try:
            handler = _run_extra_command(command)
        except ModuleNotFoundError as error:
            if error.name is None or error.name.split(".")[0] == "otherdata_utils":
                raise
            print(f"python -m otherdata_utils {command}: error: needs the `run` extra (no module named "
                  f"{error.name!r}): from a clone of this repository, pip install -e \".[run]\" -c constraints.txt",
                  file=sys.stderr)
            return 2
        return handler(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _run_extra_command(command: str) -> Callable[[list[str]], int]:
    """The command's entry point; importing it needs the `run` extra (papermill, nbformat, matplotlib, ...)."""
    if command == "run":
        from .run import run_command
        return run_command
    if command == "publish":
        from .publish import publish_command
        return publish_command
    from .bench import bench_command
    return bench_command


if __name__ == "__main__":
    sys.exit(main())
