"""Serving step: load a saved classifier folder and predict in length-sorted batches, for files or over HTTP.

Takes what `save_pretrained` (plus the model card) wrote; hands on predictions as file rows or JSON answers.
"""
import argparse
import asyncio
import csv
import gzip
import io
import json
import os
import sys
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from .io import ArtefactWriteError, atomic_path
from .model_card import ModelCardError, read_model_card
from .modeling import quiet_transformers

if TYPE_CHECKING:
    import fastapi

PathLike = Union[str, Path]
FILE_FORMATS = ("csv", "tsv", "jsonl")
# models whose position ids start after the padding index, so not every position embedding is usable
_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "camembert", "data2vec-text")
# tokenizers saved without a length report a huge sentinel (int(1e30)) instead of a real limit
_NO_LENGTH_SENTINEL = 1_000_000


class ModelLoadError(ValueError):
    """The model folder is missing, incomplete or not a single-label classifier; the message names the folder."""


class PredictInputError(ValueError):
    """An input file for batch prediction cannot be used; the message names the file, row or column and the fix."""


# --------------------------------------------------------------------------------------------------- predictor


class Predictor:
    """A saved sequence classifier ready to predict: tokenizer, model in eval mode, label names, max length."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, model_dir: Path, max_length: int,
                 batch_size: int, int8: bool, num_parameters: int, card: dict[str, Any]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.max_length = max_length
        self.batch_size = batch_size
        self.int8 = int8
        self.num_parameters = num_parameters
        self.card = card
        self.labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]

    @classmethod
    def load(cls, model_dir: PathLike, *, int8: bool = False, max_length: Optional[int] = None,
             batch_size: int = 32) -> "Predictor":
        """Load tokenizer and model from a `save_pretrained` folder (local files only, never remote code)."""
        model_dir = Path(model_dir)
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if not (model_dir / "config.json").is_file():
            what = "not found" if not model_dir.exists() else "has no config.json"
            raise ModelLoadError(f"{model_dir}: model folder {what}; expected a folder written by "
                                 "model.save_pretrained() and tokenizer.save_pretrained()")
        try:
            with quiet_transformers():  # a saved classifier loads without a report; its progress bar is noise
                tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().split("\n")[0]
            raise ModelLoadError(f"{model_dir}: cannot load the tokenizer and classifier: {first_line}") from error
        config = model.config
        if config.num_labels < 2 or config.problem_type in ("regression", "multi_label_classification"):
            raise ModelLoadError(f"{model_dir}: serving handles single-label classifiers with ≥ 2 classes; this "
                                 f"model has num_labels={config.num_labels}, problem_type={config.problem_type}")
        model.eval()
        # counted before quantising: int8 Linear layers keep packed weights that are no longer Parameters
        num_parameters = sum(parameter.numel() for parameter in model.parameters())
        if int8:
            model = _quantize_int8(model)
        limit = _max_length(config, tokenizer)
        if max_length is not None and not 1 <= max_length <= limit:
            raise ModelLoadError(f"{model_dir}: max_length must be between 1 and {limit} (the model's usable "
                                 f"positions), got {max_length}")
        try:
            card = read_model_card(model_dir)
        except ModelCardError as error:
            # a broken card must not stop a working model from serving; it shows up in metadata instead
            warnings.warn(str(error), stacklevel=2)
            card = {"error": str(error)}
        return cls(model, tokenizer, model_dir=model_dir, max_length=max_length or limit, batch_size=batch_size,
                   int8=int8, num_parameters=num_parameters, card=card)

    def predict(self, texts: Sequence[str], *, sort_by_length: bool = True,
                progress: bool = False) -> list[dict[str, Any]]:
        """One prediction per text, in input order: label, score (its probability), label_id, probabilities.

        Texts are tokenised once (truncated to max_length tokens), then batched by token length so a batch pads
        to its own longest text rather than the file's. In fp32 a text's answer does not depend on its batch
        beyond float rounding (~1e-7); int8 quantises activations per batch, so there it shifts by up to ~5e-3.
        """
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be a string, got {type(text).__name__}")
        if not texts:
            return []
        encodings = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        columns = list(encodings.keys())
        lengths = [len(ids) for ids in encodings["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__) if sort_by_length else list(range(len(texts)))
        results: list[dict[str, Any]] = [{}] * len(texts)
        starts = range(0, len(texts), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, disable=not progress, desc="predict", unit="batch"):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({column: [encodings[column][i] for i in rows] for column in columns},
                                           return_tensors="pt")
                probabilities = self.model(**batch).logits.float().softmax(dim=-1).tolist()
                for row, row_probabilities in zip(rows, probabilities):
                    results[row] = self._prediction(row_probabilities)
        return results

    def metadata(self) -> dict[str, Any]:
        """What a client or a report needs to know about the served model."""
        config = self.model.config
        return {
            "model_dir": str(self.model_dir),
            "model_type": config.model_type,
            "labels": list(self.labels),
            "label2id": {label: index for index, label in enumerate(self.labels)},
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "num_parameters": self.num_parameters,
            "int8": self.int8,
            "model_card": self.card,
        }

    def _prediction(self, probabilities: list[float]) -> dict[str, Any]:
        label_id = max(range(len(probabilities)), key=probabilities.__getitem__)
        return {
            "label": self.labels[label_id],
            "score": probabilities[label_id],
            "label_id": label_id,
            "probabilities": dict(zip(self.labels, probabilities)),
        }


def _quantize_int8(model: PreTrainedModel) -> torch.nn.Module:
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations quantised per batch).

    torch.ao.quantization is deprecated in favour of torchao's ``quantize_`` (not a dependency of this project),
    yet it still ships and works in torch 2.13; its deprecation warnings are silenced so CLI output stays clean.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _max_length(config: Any, tokenizer: Any) -> int:
    """Longest input the model can take: the tokenizer's model_max_length, capped at the position embeddings."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions and config.model_type in _OFFSET_POSITION_MODELS:
        positions -= (config.pad_token_id or 0) + 1
    declared = tokenizer.model_max_length if tokenizer.model_max_length < _NO_LENGTH_SENTINEL else None
    known = [value for value in (positions, declared) if value]
    if not known:
        raise ModelLoadError("neither the model config (max_position_embeddings) nor the tokenizer "
                             "(model_max_length) states a maximum input length; pass max_length")
    return min(known)


# ------------------------------------------------------------------------------------------- batch prediction


def predict_file(model_dir: PathLike, input_path: PathLike, output_path: PathLike, *, text_column: str = "text",
                 id_column: Optional[str] = None, batch_size: int = 32, int8: bool = False,
                 max_length: Optional[int] = None, quiet: bool = False) -> Path:
    """Predict every row of a CSV/TSV/JSONL file (plain or .gz); write id, label, score and prob_<label> columns.

    The output format follows the output file's extension; the file is written atomically.
    """
    file_format(output_path)  # a bad output name fails before the model is loaded
    ids, texts = read_texts(input_path, text_column=text_column, id_column=id_column)
    predictor = Predictor.load(model_dir, int8=int8, max_length=max_length, batch_size=batch_size)
    return write_predictions(output_path, ids, predictor.predict(texts, progress=not quiet), predictor.labels)


def file_format(path: PathLike) -> tuple[str, bool]:
    """(format, gzipped) from a file name such as ``reviews.jsonl.gz``."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    kind = suffixes[-1].lstrip(".") if suffixes else ""
    if kind not in FILE_FORMATS:
        raise PredictInputError(f"{path}: unknown file type {kind or '(no extension)'!r}; use .csv, .tsv or "
                                ".jsonl, optionally followed by .gz")
    return kind, gzipped


def read_texts(path: PathLike, *, text_column: str = "text",
               id_column: Optional[str] = None) -> tuple[list[Any], list[str]]:
    """(ids, texts) from a CSV/TSV/JSONL file; ids are the id column's values, else 0-based row numbers.

    CSV follows RFC 4180 quoting; TSV has no quoting (GLUE style, so quotes inside sentences stay as they are);
    JSONL is split on "\\n" only. An empty CSV/TSV cell counts as a null text.
    """
    path = Path(path)
    kind, gzipped = file_format(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise PredictInputError(f"{path}: input file {what}")
    raw = path.read_bytes()
    if gzipped:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise PredictInputError(f"{path}: not a readable gzip file ({error})") from None
    if not raw.strip():
        raise PredictInputError(f"{path}: file is empty; expected a header line and one row per text"
                                if kind != "jsonl" else f"{path}: file is empty; expected one JSON object a line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise PredictInputError(f"{path}: not UTF-8 text (byte {error.start}, line {line}); re-save it as UTF-8, "
                                "e.g. iconv -f latin1 -t utf-8") from None
    columns, records = _jsonl_records(path, text) if kind == "jsonl" else _delimited_records(path, text, kind)
    if not records:
        raise PredictInputError(f"{path}: no data rows (only a header line)")
    for role, column in (("text", text_column), ("id", id_column)):
        if column is not None and column not in columns:
            present = ", ".join(repr(name) for name in columns)
            raise PredictInputError(f"{path}: no {role} column {column!r}; columns present: {present}. "
                                    f"Name the right one with --{role}-column / {role}_column=")
    texts: list[str] = []
    ids: list[Any] = []
    problems: list[str] = []
    for row, (line, record) in enumerate(records):
        value = record.get(text_column)
        if value is None or (kind != "jsonl" and value == ""):
            problems.append(f"row {row} (line {line}) is null")
        elif not isinstance(value, str):
            problems.append(f"row {row} (line {line}) holds a {_json_type(value)}, not text")
        texts.append(value)
        if id_column is not None:
            if record.get(id_column) is None:
                raise PredictInputError(f"{path}: id column {id_column!r} is null in row {row} (line {line})")
            ids.append(record[id_column])
        else:
            ids.append(row)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PredictInputError(f"{path}: text column {text_column!r} has {len(problems)} unusable value(s): "
                                f"{shown}. Fill or drop those rows")
    return ids, texts


def write_predictions(path: PathLike, ids: Sequence[Any], predictions: Sequence[dict[str, Any]],
                      labels: Sequence[str]) -> Path:
    """Write id, label, score and one prob_<label> column per class, atomically; format by file extension."""
    path = Path(path)
    kind, gzipped = file_format(path)
    header = ["id", "label", "score", *(f"prob_{label}" for label in labels)]
    rows = ([identifier, prediction["label"], prediction["score"], *prediction["probabilities"].values()]
            for identifier, prediction in zip(ids, predictions))
    buffer = io.StringIO(newline="")
    if kind == "jsonl":
        for row in rows:
            buffer.write(json.dumps(dict(zip(header, row)), ensure_ascii=False) + "\n")
    else:
        writer = csv.writer(buffer, delimiter="," if kind == "csv" else "\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(gzip.compress(data) if gzipped else data)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def _delimited_records(path: Path, text: str, kind: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    quoting = csv.QUOTE_MINIMAL if kind == "csv" else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t", quoting=quoting)
    records: list[tuple[int, dict[str, str]]] = []
    header: Optional[list[str]] = None
    try:
        for row in reader:
            if not row:
                continue  # blank line
            if header is None:
                header = row
                repeated = sorted({name for name in header if header.count(name) > 1})
                if repeated:
                    raise PredictInputError(f"{path}: the header repeats column(s) {', '.join(map(repr, repeated))}")
                continue
            if len(row) != len(header):
                raise PredictInputError(
                    f"{path}: row {len(records)} (line {reader.line_num}) has {len(row)} fields but the header has "
                    f"{len(header)}; check the delimiter and quoting"
                    + (" (a TSV field cannot contain a tab)" if kind == "tsv" else ""))
            records.append((reader.line_num, dict(zip(header, row))))
    except csv.Error as error:
        raise PredictInputError(f"{path}: line {reader.line_num}: cannot parse {kind.upper()}: {error}") from None
    return header or [], records


def _jsonl_records(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    records: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}  # keys in order of first appearance
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PredictInputError(f"{path}: line {line_number} is not valid JSON ({error.msg} at column "
                                    f"{error.colno})") from None
        if not isinstance(record, dict):
            raise PredictInputError(f"{path}: line {line_number} is a JSON {_json_type(record)}; expected an "
                                    'object like {"text": "..."}')
        columns.update(dict.fromkeys(record))
        records.append((line_number, record))
    return list(columns), records


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


# ------------------------------------------------------------------------------------------------------ HTTP


@dataclass(frozen=True)
class ServiceLimits:
    """What one POST /predict may carry; a larger request is refused with a 4xx that names the limit."""

    max_texts: int = 64  # texts per request
    max_chars: int = 10_000  # characters per text
    max_body_bytes: int = 1_000_000  # request body size

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"ServiceLimits.{name} must be ≥ 1, got {value}")


class RequestError(Exception):
    """A request the service refuses: HTTP status and a message naming the field or limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class _Job:
    texts: list[str]
    future: asyncio.Future


class MicroBatcher:
    """Gathers the texts of concurrent requests for a short window and answers them with one predict call.

    One worker task owns the queue; the model runs in a single background thread so the event loop keeps
    accepting requests (and answering /health) during a forward pass, and the tokenizer is never shared
    between threads.
    """

    def __init__(self, predictor: Predictor, *, window_ms: float = 5.0, max_batch: int = 64) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ValueError(f"batch window must be ≥ 0 ms and max_batch ≥ 1, got {window_ms} and {max_batch}")
        self.predictor = predictor
        self.window_ms = window_ms
        self.max_batch = max_batch
        self.requests = 0
        self.texts = 0
        self.batches = 0
        self.forward_passes = 0
        self.largest_batch_requests = 0
        self._queue: Optional[asyncio.Queue[_Job]] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._waiting: set[asyncio.Future] = set()

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otherdata-predict")
        self._worker = asyncio.create_task(self._run(), name="otherdata-micro-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting get 503 (uvicorn lets in-flight requests finish first)."""
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
        for future in self._waiting:
            if not future.done():
                future.set_exception(RequestError(503, "the service is shutting down; retry on another instance"))
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def submit(self, texts: list[str]) -> list[dict[str, Any]]:
        if not self.running or self._queue is None:
            raise RequestError(503, "the prediction worker is not running")
        future = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        try:
            self._queue.put_nowait(_Job(texts, future))
            return await future
        finally:
            self._waiting.discard(future)

    def stats(self) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "max_batch": self.max_batch,
            "requests": self.requests,
            "texts": self.texts,
            "batches": self.batches,
            "forward_passes": self.forward_passes,
            "largest_batch_requests": self.largest_batch_requests,
        }

    async def _run(self) -> None:
        assert self._queue is not None
        carried: Optional[_Job] = None
        while True:
            backlog = carried is not None
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if not backlog:
                # a job left over from the last batch means requests are already queued: no need to wait for more
                await asyncio.sleep(self.window_ms / 1000)
            jobs, count = [first], len(first.texts)
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if count + len(job.texts) > self.max_batch:
                    carried = job
                    break
                jobs.append(job)
                count += len(job.texts)
            await self._answer([job for job in jobs if not job.future.done()])  # done: the client went away

    async def _answer(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        loop = asyncio.get_running_loop()
        try:
            predictions = await loop.run_in_executor(self._executor, self.predictor.predict, texts)
        except Exception as error:
            if len(jobs) == 1:
                if not jobs[0].future.done():
                    jobs[0].future.set_exception(error)
                return
            # one request the model chokes on must not fail the others merged with it: answer each on its own
            for job in jobs:
                await self._answer([job])
            return
        self.requests += len(jobs)
        self.texts += len(texts)
        self.batches += 1
        self.forward_passes += -(-len(texts) // self.predictor.batch_size)
        self.largest_batch_requests = max(self.largest_batch_requests, len(jobs))
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(predictions[start:end])
            start = end


def create_app(predictor: Predictor, limits: Optional[ServiceLimits] = None, *, batch_window_ms: float = 5.0,
               max_batch: int = 64) -> "fastapi.FastAPI":
    """The HTTP service: POST /predict, GET /health, GET /metadata, with server-side micro-batching.

    Every refusal is JSON ``{"error": "..."}``: 400 for a body that is not JSON, 413 for a body over
    max_body_bytes, 422 for JSON of the wrong shape or over the per-request limits.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    limits = limits or ServiceLimits()
    batcher = MicroBatcher(predictor, window_ms=batch_window_ms, max_batch=max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="otherdata text classifier", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.limits = limits

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"prediction failed: {type(error).__name__}: {error}"}, status_code=500)

    @app.post("/predict")
    async def predict(request: Request):
        texts = _parse_texts(await _read_body(request, limits.max_body_bytes), limits)
        predictions = await batcher.submit(texts)
        return {"predictions": [{"label": p["label"], "score": p["score"]} for p in predictions]}

    @app.get("/health")
    async def health():
        if not batcher.running:
            return JSONResponse({"status": "unavailable", "error": "the prediction worker is not running"},
                                status_code=503)
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata():
        return {**predictor.metadata(), "limits": asdict(limits), "batching": batcher.stats()}

    return app


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused with 413 as soon as Content-Length or the bytes actually received pass the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError(400, f"header 'Content-Length' is not a byte count: {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"body is {int(declared)} bytes; the limit is {limit} bytes (max_body_bytes): "
                                    "send fewer or shorter texts per request")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked uploads carry no Content-Length, so count what actually arrives
            raise RequestError(413, f"body is over the limit of {limit} bytes (max_body_bytes): "
                                    "send fewer or shorter texts per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_texts(body: bytes, limits: ServiceLimits) -> list[str]:
    usage = 'send {"texts": ["first text", "second text"]}'
    if not body.strip():
        raise RequestError(400, f"body is empty; {usage}")
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, f"body is not UTF-8 encoded JSON; {usage}") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"body is not valid JSON ({error.msg} at line {error.lineno} column "
                                f"{error.colno}); {usage}") from None
    except RecursionError:
        raise RequestError(400, f"body is nested too deeply to be a request; {usage}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"body must be a JSON object, got a JSON {_json_type(payload)}; {usage}")
    if "texts" not in payload:
        got = ", ".join(repr(key) for key in payload) or "no fields"
        raise RequestError(422, f"field 'texts' is missing (got {got}); {usage}")
    # extra fields are refused rather than ignored, so a misspelt option is never silently dropped
    extra = [key for key in payload if key != "texts"]
    if extra:
        raise RequestError(422, f"unknown field(s) {', '.join(map(repr, extra))}; only 'texts' is accepted")
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f"field 'texts' must be a list of strings, got a JSON {_json_type(texts)}")
    if not texts:
        raise RequestError(422, "field 'texts' is an empty list; send at least one text")
    if len(texts) > limits.max_texts:
        raise RequestError(422, f"field 'texts' has {len(texts)} texts; the limit is {limits.max_texts} per "
                                "request (max_texts): split it into several requests")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f"field 'texts[{index}]' must be a string, got a JSON {_json_type(text)}")
        if len(text) > limits.max_chars:
            raise RequestError(422, f"field 'texts[{index}]' has {len(text)} characters; the limit is "
                                    f"{limits.max_chars} (max_chars): shorten or split the text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            # a lone surrogate (JSON "\ud800") would make the tokenizer fail for every request in the batch
            raise RequestError(422, f"field 'texts[{index}]' has an unpaired surrogate at character "
                                    f"{error.start}; send valid Unicode text") from None
    return texts


# ------------------------------------------------------------------------------------------ command lines


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


MAX_LENGTH_HELP = ("tokens kept per text (default: every position the model has, as pipeline() does; "
                   "a model trained on shorter inputs, e.g. max_seq_length 128, may be served at that length)")


def predict_command(argv: list[str]) -> int:
    """``python -m otherdata_utils predict MODEL_DIR INPUT OUTPUT [...]``; 0 on success, 2 on any input error."""
    parser = _ArgumentParser(prog="python -m otherdata_utils predict",
                             description="Predict a label for every row of a CSV, TSV or JSONL file (plain or .gz).")
    parser.add_argument("model_dir", type=Path, help="folder written by save_pretrained (model + tokenizer)")
    parser.add_argument("input", type=Path, help="input file: .csv, .tsv or .jsonl, optionally .gz")
    parser.add_argument("output", type=Path, help="output file; its extension picks the format (csv, tsv, jsonl)")
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--id-column", default=None, help="column copied to the output's id (default: row number)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="texts per forward pass")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of Linear layers")
    parser.add_argument("--max-length", type=_positive_int, default=None, help=MAX_LENGTH_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    try:
        file_format(args.output)
        ids, texts = read_texts(args.input, text_column=args.text_column, id_column=args.id_column)
        started = time.perf_counter()
        predictor = Predictor.load(args.model_dir, int8=args.int8, max_length=args.max_length,
                                   batch_size=args.batch_size)
        loaded = time.perf_counter()
        predictions = predictor.predict(texts, progress=not args.quiet)
        seconds = time.perf_counter() - loaded
        write_predictions(args.output, ids, predictions, predictor.labels)
    except (PredictInputError, ModelLoadError, ArtefactWriteError) as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(f"{len(texts)} rows -> {args.output}: {len(texts) / max(seconds, 1e-9):.1f} rows/s "
          f"({seconds:.2f} s predicting, {loaded - started:.2f} s loading the model)")
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
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of Linear layers")
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
        import uvicorn
    except ImportError:
        print(f"{parser.prog}: error: the service needs fastapi and uvicorn: pip install 'otherdata[serve]'",
              file=sys.stderr)
        return 2
    try:
        predictor = Predictor.load(args.model_dir, int8=args.int8, max_length=args.max_length,
                                   batch_size=args.max_batch)
    except ModelLoadError as error:
        print(f"{parser.prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    limits = ServiceLimits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes)
    app = create_app(predictor, limits, batch_window_ms=args.batch_window_ms, max_batch=args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
