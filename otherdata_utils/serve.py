"""Command lines of the serving step: ``predict`` (a file in, a file of predictions out) and ``serve`` (HTTP).

Parses arguments and reports every error as one line on stderr; hands the work to `predictor` and `http_app`.
"""
import argparse
import sys
from pathlib import Path
from typing import Union

from .http_app import ServiceLimits, create_app
from .io import ArtefactWriteError
from .predictor import SERVING_PRECISIONS, ModelLoadError, PredictInputError, Predictor, predict_file


class _UsageError(Exception):
    pass


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so every CLI error is one line on stderr."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see --help)")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {number}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {number}")
    return number


def _parse(parser: _ArgumentParser, argv: list[str]) -> Union[argparse.Namespace, int]:
    """Parsed arguments, or the exit code: 0 after --help, 2 after a usage error (reported on stderr)."""
    try:
        return parser.parse_args(argv)
    except _UsageError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help
        return int(done.code or 0)


MAX_LENGTH_HELP = ("tokens kept per text (default: the max_seq_length the model was trained at, stored in its "
                   "otherdata_inference.json; without that file, every position the model has, as pipeline() "
                   "does). Long texts are cut with the truncation training used (head, tail or head_tail)")


PRECISION_HELP = ("what the forward pass computes in (default: auto): auto is bf16 autocast where the CPU has native "
                  "bf16 (AMX or AVX512-BF16) and fp32 elsewhere; no is fp32; int8 quantises the Linear layers. "
                  "GET /metadata and the model's metadata() say which was used and why")


def _add_precision(parser: _ArgumentParser) -> None:
    """--precision, and --int8 as its older shorthand; giving both is a usage error."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--precision", choices=SERVING_PRECISIONS, default="auto", help=PRECISION_HELP)
    group.add_argument("--int8", action="store_const", dest="precision", const="int8",
                       help="the same as --precision int8")


def predict_command(argv: list[str]) -> int:
    """``python -m otherdata_utils predict MODEL_DIR INPUT OUTPUT [...]``; 0 on success, 2 on any input error."""
    parser = _ArgumentParser(prog="python -m otherdata_utils predict",
                             description="Predict a label for every row of a CSV, TSV or JSONL file (plain or .gz) "
                                         "or a parquet file.")
    parser.add_argument("model_dir", type=Path, help="folder written by save_pretrained (model + tokenizer)")
    parser.add_argument("input", type=Path, help="input file: .csv, .tsv or .jsonl, optionally .gz, or .parquet")
    parser.add_argument("output", type=Path, help="output file; its extension picks the format (csv, tsv, jsonl)")
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--id-column", default=None, help="column copied to the output's id (default: row number)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="texts per forward pass")
    _add_precision(parser)
    parser.add_argument("--max-length", type=_positive_int, default=None, help=MAX_LENGTH_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        done = predict_file(args.model_dir, args.input, args.output, text_column=args.text_column,
                            id_column=args.id_column, batch_size=args.batch_size, precision=args.precision,
                            max_length=args.max_length, quiet=args.quiet)
    except (PredictInputError, ModelLoadError, ArtefactWriteError) as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"{done.rows} rows -> {done.path}: {done.rows / max(done.predict_seconds, 1e-9):.1f} rows/s "
          f"({done.predict_seconds:.2f} s predicting in {done.precision}, {done.load_seconds:.2f} s loading the model)")
    return 0


def serve_command(argv: list[str]) -> int:
    """``python -m otherdata_utils serve MODEL_DIR [...]``: run the HTTP service until interrupted."""
    defaults = ServiceLimits()
    parser = _ArgumentParser(prog="python -m otherdata_utils serve",
                             description="Serve a saved classifier over HTTP: POST /predict, GET /health, "
                                         "GET /metadata.")
    parser.add_argument("model_dir", type=Path, help="folder written by save_pretrained (model + tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    _add_precision(parser)
    parser.add_argument("--max-length", type=_positive_int, default=None, help=MAX_LENGTH_HELP)
    parser.add_argument("--max-texts", type=_positive_int, default=defaults.max_texts, help="texts per request")
    parser.add_argument("--max-chars", type=_positive_int, default=defaults.max_chars, help="characters per text")
    parser.add_argument("--max-body-bytes", type=_positive_int, default=defaults.max_body_bytes)
    parser.add_argument("--batch-window-ms", type=_non_negative_float, default=5.0,
                        help="how long the first request of a batch waits for others to join it")
    parser.add_argument("--max-batch", type=_positive_int, default=64, help="most texts in one merged batch")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        # uvicorn is the optional "serve" extra: imported here so that `predict` runs without it
        import uvicorn
    except ImportError:
        print(f"{parser.prog}: error: the service needs fastapi and uvicorn, the `serve` extra: from a clone of "
              f"this repository, pip install -e \".[serve]\" -c constraints.txt", file=sys.stderr)
        return 2
    try:
        predictor = Predictor.load(args.model_dir, precision=args.precision, max_length=args.max_length,
                                   batch_size=args.max_batch)
    except ModelLoadError as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"serving in {predictor.precision.label} ({predictor.precision.reason})", flush=True)
    limits = ServiceLimits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes)
    app = create_app(predictor, limits, batch_window_ms=args.batch_window_ms, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
