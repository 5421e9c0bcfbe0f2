"""Command line: ``python -m otherdata_utils {run,predict,serve,bench,publish} …``; each parses its own arguments."""
from __future__ import annotations

import os
import sys

USAGE = """usage: python -m otherdata_utils COMMAND [ARGS]

commands:
  run PARAMS.yaml [...] [--set k=v] [--out DIR]   run the notebook study for each params file
  predict MODEL_DIR INPUT OUTPUT [--text-column C]  batch prediction on a CSV/TSV/JSONL file
  serve MODEL_DIR [--host H] [--port N]             HTTP prediction service
  bench [--quick]                                   training/inference throughput benchmarks
  publish RUN_DIR RESULTS_DIR                       a finished run's small, reader-facing results folder
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Each command imports its own module only when chosen: `run` alone pulls in torch, transformers and papermill
    # (seconds), so `--help`, `predict` and `publish` do not wait for what they never use.
    if command == "run":
        from .run import run_command
        return run_command(rest)
    if command == "predict":
        from .serve import predict_command
        return predict_command(rest)
    if command == "serve":
        from .serve import serve_command
        return serve_command(rest)
    if command == "publish":
        from .publish import publish_command
        return publish_command(rest)
    if command == "bench":
        from .bench import bench_command
        return bench_command(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
