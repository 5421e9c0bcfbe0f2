"""Predictor: a saved classifier folder loaded for prediction in length-sorted batches, and batch prediction of a file.

Takes what `save_pretrained` (plus the model card and the stored max length and truncation) wrote; texts are cut as
training cut them, in the precision `precision` resolves for this host (fp32, bf16 autocast or dynamic int8). Hands
on predictions as dicts or as rows of a written file.
"""
import csv
import gzip
import io
import json
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from . import files, routing
# the encoder modeling.tokenize_splits uses: serving must cut texts exactly as training and evaluation did
from .inference import encode_texts, quiet_transformers, special_token_frame
from .io import atomic_path
from .model_card import INFERENCE_NAME, InferenceSettings, ModelCardError, read_inference_settings, read_model_card
# imported for its registration too: a folder trained with `pooling: mean` loads through the Auto classes below
from .pooling import classifier_pooling, encoder_config
from .precision import native_cpu_bf16, resolve_precision

PathLike = Union[str, Path]
# what serving computes in: auto (bf16 where this CPU has it natively, else fp32), no (fp32), bf16 autocast, int8
SERVING_PRECISIONS = ("auto", "no", "bf16", "int8")
OUTPUT_FORMATS = ("csv", "tsv", "jsonl")
# models whose position ids start after the padding index, so not every position embedding is usable
_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "camembert", "data2vec-text")
# tokenizers saved without a length report a huge sentinel (int(1e30)) instead of a real limit
_NO_LENGTH_SENTINEL = 1_000_000
# What a command-line user does about a file the reader refuses; a reason not listed carries its remedy already.
_INPUT_REMEDIES = {
    "fields": "check the delimiter and the quoting of that row",
    "not_object": 'each line holds one object like {"text": "..."}',
}


class ModelLoadError(ValueError):
    """The model folder is missing, incomplete or not a single-label classifier; the message names the folder."""


class PredictInputError(ValueError):
    """An input file for batch prediction cannot be used; the message names the file, row or column and the fix."""


# --------------------------------------------------------------------------------------------------- precision


@dataclass(frozen=True)
class ServingPrecision:
    """What the forward pass computes in: `used` is fp32, bf16 (autocast: matmuls in bf16, weights stay fp32) or
    int8 (dynamic quantisation of the Linear layers); `requested` is what the caller asked; `reason` says why."""

    requested: str
    used: str
    reason: str

    @property
    def label(self) -> str:
        """How tables and metadata name it."""
        return {"fp32": "fp32", "bf16": "bf16 autocast", "int8": "int8 dynamic quantisation"}[self.used]


def serving_precision(requested: str, *, flags: Optional[set[str]] = None,
                      capability: Optional[str] = None) -> ServingPrecision:
    """Resolve `precision` for serving on the CPU: auto through `precision.resolve_precision` (bf16 where the CPU
    does bf16 natively, fp32 elsewhere); explicit choices pass through, bf16 noting when this CPU only emulates it.

    `flags` and `capability` stand in for this host's CPU flags and ATEN_CPU_CAPABILITY (tests).
    """
    if requested not in SERVING_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(SERVING_PRECISIONS)}; got {requested!r}")
    if requested == "int8":
        return ServingPrecision(requested, "int8", "asked for (precision=int8): int8 weights, activations "
                                                   "quantised per batch")
    if requested == "no":
        return ServingPrecision(requested, "fp32", "asked for (precision=no)")
    if requested == "auto":
        choice = resolve_precision(requested, "cpu", flags=flags, capability=capability)
        return ServingPrecision(requested, "bf16" if choice.mode == "bf16" else "fp32", f"auto: {choice.reason}")
    native, why = native_cpu_bf16(flags, capability)
    return ServingPrecision(requested, "bf16", "asked for (precision=bf16)" + ("" if native else f"; but {why}"))


# --------------------------------------------------------------------------------------------------- predictor


class Predictor:
    """A saved sequence classifier ready to predict: tokenizer, model in eval mode, label names, how texts are cut."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any, *, model_dir: Path, max_length: int,
                 truncation: str, head_tokens: int, tokenization: str, batch_size: int, precision: ServingPrecision,
                 num_parameters: int, card: dict[str, Any], handover_threshold: Optional[float] = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.max_length = max_length
        self.truncation = truncation
        self.head_tokens = head_tokens
        self.tokenization = tokenization  # where max_length and truncation came from, in words
        self._special_tokens = sum(len(part) for part in special_token_frame(tokenizer))
        self.batch_size = batch_size
        self.precision = precision
        self.num_parameters = num_parameters
        self.card = card
        self.handover_threshold = handover_threshold  # a routing model hands over texts below it
        self.labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]

    @classmethod
    def load(cls, model_dir: PathLike, *, precision: str = "no", int8: bool = False,
             max_length: Optional[int] = None, batch_size: int = 32) -> "Predictor":
        """Load tokenizer and model from a `save_pretrained` folder (local files only, never remote code): a
        [CLS]-pooled transformers classifier or one trained with `pooling: mean` (`pooling`).

        Texts are cut to the max length and with the truncation training used (otherdata_inference.json);
        `max_length` overrides the length only. A folder without that file is served at the model's positions,
        keeping the head of each text. `precision` is one of SERVING_PRECISIONS (see `serving_precision`): fp32
        unless asked, so library callers (evaluation, monitoring) get the same numbers on every host; the `predict`
        and `serve` commands ask for auto. `int8=True` is the older spelling of precision="int8".
        """
        model_dir = Path(model_dir)
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if int8:
            if precision not in ("no", "int8"):
                raise ValueError(f"int8=True and precision={precision!r} contradict each other; pass "
                                 "precision='int8' alone")
            precision = "int8"
        chosen = serving_precision(precision)
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
        if chosen.used == "int8":
            model = _quantize_int8(model)
        limit = _max_length(encoder_config(config), tokenizer)
        try:
            trained = read_inference_settings(model_dir)
        except ModelCardError as error:
            raise ModelLoadError(str(error)) from None
        if trained and trained.pooling and trained.pooling != classifier_pooling(config):
            raise ModelLoadError(f"{model_dir}: {INFERENCE_NAME} says training used pooling: {trained.pooling}, but "
                                 f"config.json holds a {classifier_pooling(config)}-pooled classifier "
                                 f"({config.model_type}); the folder mixes two models, save it again")
        length = max_length or (trained.max_seq_length if trained else limit)
        if not 1 <= length <= limit:
            given = "max_length" if max_length else f"max_seq_length in {INFERENCE_NAME}"
            raise ModelLoadError(f"{model_dir}: {given} must be between 1 and {limit} (the model's usable "
                                 f"positions), got {length}")
        try:
            card = read_model_card(model_dir)
        except ModelCardError as error:
            # a broken card must not stop a working model from serving; it shows up in metadata instead
            warnings.warn(str(error), stacklevel=2)
            card = {"error": str(error)}
        predictor = cls(model, tokenizer, model_dir=model_dir, max_length=length,
                        truncation=trained.truncation if trained else "head",
                        head_tokens=trained.head_tokens if trained else 0,
                        tokenization=_tokenization_source(trained, max_length, limit), batch_size=batch_size,
                        precision=chosen, num_parameters=num_parameters, card=card,
                        handover_threshold=trained.handover_threshold if trained else None)
        if predictor._text_budget() < 1:
            raise ModelLoadError(f"{model_dir}: max_length {length} leaves no room for text beside the model's "
                                 f"{length - predictor._text_budget()} special tokens; use a larger max_length")
        return predictor

    def predict(self, texts: Sequence[str], *, sort_by_length: bool = True,
                progress: bool = False) -> list[dict[str, Any]]:
        """One prediction per text, in input order: label, score (its probability), label_id, probabilities.

        Texts are tokenised once (cut as `encode` cuts them), then batched by token length so a batch pads to
        its own longest text rather than the file's. In fp32 a text's answer does not depend on its batch
        beyond float rounding (~1e-7); int8 quantises activations per batch, so there it shifts by up to ~5e-3; bf16
        autocast rounds every matmul's output to 8 significant bits (its answers differ from fp32's by ~1e-3 on the
        tests' tiny model).
        """
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] must be a string, got {type(text).__name__}")
        if not texts:
            return []
        encodings = self.encode(texts)
        columns = ("input_ids", "attention_mask")
        lengths = encodings["length"]
        order = sorted(range(len(texts)), key=lengths.__getitem__) if sort_by_length else list(range(len(texts)))
        results: list[dict[str, Any]] = [{}] * len(texts)
        starts = range(0, len(texts), self.batch_size)
        # one autocast region for all batches, so each weight is cast to bf16 once per call rather than per batch
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision.used == "bf16" else nullcontext()
        with torch.inference_mode(), autocast:
            for start in tqdm(starts, disable=not progress, desc="predict", unit="batch"):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({column: [encodings[column][i] for i in rows] for column in columns},
                                           return_tensors="pt")
                probabilities = self.model(**batch).logits.float().softmax(dim=-1).tolist()
                for row, row_probabilities in zip(rows, probabilities):
                    results[row] = self._prediction(row_probabilities)
        return results

    def encode(self, texts: Sequence[str]) -> dict[str, list]:
        """input_ids, attention_mask and length per text, unpadded: the tokens `modeling.tokenize_splits` gives
        training and evaluation at this max length and truncation."""
        return encode_texts(self.tokenizer, texts, max_length=self.max_length, truncation=self.truncation,
                            head_tokens=self.head_tokens)

    def _text_budget(self) -> int:
        return self.max_length - self._special_tokens

    def metadata(self) -> dict[str, Any]:
        """What a client or a report needs to know about the served model."""
        config = self.model.config
        return {
            "model_dir": str(self.model_dir),
            "model_type": config.model_type,
            "pooling": classifier_pooling(config),
            "labels": list(self.labels),
            "label2id": {label: index for index, label in enumerate(self.labels)},
            "max_length": self.max_length,
            "truncation": self.truncation,
            "head_tokens": self.head_tokens,
            "tokenization": self.tokenization,
            "batch_size": self.batch_size,
            "num_parameters": self.num_parameters,
            "precision": {**asdict(self.precision), "label": self.precision.label},
            "int8": self.precision.used == "int8",
            "handover_threshold": self.handover_threshold,
            "model_card": self.card,
        }

    def _prediction(self, probabilities: list[float]) -> dict[str, Any]:
        """The best class, or for a routing model whose best class is below its threshold `routing.HANDOVER`
        (label_id None; score stays the best class's probability, so a client sees how close it came)."""
        label_id = max(range(len(probabilities)), key=probabilities.__getitem__)
        handover = self.handover_threshold is not None and probabilities[label_id] < self.handover_threshold
        return {
            "label": routing.HANDOVER if handover else self.labels[label_id],
            "score": probabilities[label_id],
            "label_id": None if handover else label_id,
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


def _tokenization_source(trained: Optional[InferenceSettings], max_length: Optional[int], limit: int) -> str:
    """Where the served max length and truncation come from, for metadata: a reader must see a guessed setting."""
    if trained is None:
        length = "the given max_length" if max_length else f"the model's {limit} positions"
        return (f"no {INFERENCE_NAME} in the model folder, so the training settings are unknown: {length}, "
                "keeping the head of each text")
    if max_length:
        return f"the given max_length (trained at {trained.max_seq_length}); truncation as trained ({INFERENCE_NAME})"
    return f"as trained ({INFERENCE_NAME})"


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


@dataclass(frozen=True)
class PredictedFile:
    """What `predict_file` wrote: the file, its rows, the seconds spent loading the model and predicting, and the
    precision it predicted in (its label)."""

    path: Path
    rows: int
    load_seconds: float
    predict_seconds: float
    precision: str


def predict_file(model_dir: PathLike, input_path: PathLike, output_path: PathLike, *, text_column: str = "text",
                 id_column: Optional[str] = None, batch_size: int = 32, precision: str = "no",
                 max_length: Optional[int] = None, quiet: bool = False) -> PredictedFile:
    """Predict every row of a CSV/TSV/JSONL (plain or .gz) or parquet file; write id, label, score, prob_<label>.

    The output format follows the output file's extension; the file is written atomically. A bad output name or
    input file fails before the model is loaded.
    """
    output_format(output_path)
    ids, texts = read_texts(input_path, text_column=text_column, id_column=id_column)
    started = time.perf_counter()
    predictor = Predictor.load(model_dir, precision=precision, max_length=max_length, batch_size=batch_size)
    loaded = time.perf_counter()
    predictions = predictor.predict(texts, progress=not quiet)
    predicted = time.perf_counter()
    path = write_predictions(output_path, ids, predictions, predictor.labels)
    return PredictedFile(path, len(texts), loaded - started, predicted - loaded, predictor.precision.label)


def output_format(path: PathLike) -> str:
    """csv, tsv or jsonl from an output file name such as ``predictions.csv.gz``."""
    fmt = files.file_format(path)
    if fmt not in OUTPUT_FORMATS:
        raise _unknown_file_type(path, ".csv, .tsv or .jsonl, optionally followed by .gz")
    return fmt


def read_texts(path: PathLike, *, text_column: str = "text",
               id_column: Optional[str] = None) -> tuple[list[Any], list[str]]:
    """(ids, texts) from a file `files` reads; ids are the id column's values, else 0-based row numbers.

    The file must be UTF-8. An empty CSV/TSV cell counts as a null text; a null text is refused, not predicted.
    """
    path = Path(path)
    fmt = files.file_format(path)
    if fmt is None:
        raise _unknown_file_type(path, ".csv, .tsv or .jsonl, optionally followed by .gz, or .parquet")
    try:
        records = files.read_records(path, fmt, "utf-8")
    except files.FileReadError as error:
        raise _input_error(error, fmt) from None
    for role, column in (("text", text_column), ("id", id_column)):
        if column is not None and column not in records.columns:
            present = ", ".join(repr(name) for name in records.columns)
            raise PredictInputError(f"{path}: no {role} column {column!r}; columns present: {present}. "
                                    f"Name the right one with --{role}-column / {role}_column=")
    texts: list[str] = records.columns[text_column]
    ids: list[Any] = list(range(len(texts))) if id_column is None else records.columns[id_column]
    problems: list[str] = []
    for row, value in enumerate(texts):
        if value is None or (fmt in ("csv", "tsv") and value == ""):
            problems.append(f"{_row(records, row)} is null")
        elif not isinstance(value, str):
            problems.append(f"{_row(records, row)} holds a {files.json_type(value)}, not text")
        if ids[row] is None:
            raise PredictInputError(f"{path}: id column {id_column!r} is null in {_row(records, row)}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PredictInputError(f"{path}: text column {text_column!r} has {len(problems)} unusable value(s): "
                                f"{shown}. Fill or drop those rows")
    return ids, texts


def _unknown_file_type(path: PathLike, accepted: str) -> PredictInputError:
    return PredictInputError(f"{path}: unknown file type {files.file_type(path) or '(no extension)'!r}; use {accepted}")


def _row(records: files.Records, row: int) -> str:
    """A 0-based row as the messages name it: "row 3 (line 5)" in text files, "row 3" in parquet."""
    return f"row {row} (line {records.positions[row]})" if records.unit == "line" else f"row {row}"


def _input_error(error: files.FileReadError, fmt: str) -> PredictInputError:
    """The reader's error in a command-line user's words, with what to do about it."""
    path = error.path
    if error.reason == "encoding":
        return PredictInputError(f"{path}: not UTF-8 text (byte {error.byte}, line {error.line}); re-save it as "
                                 "UTF-8, e.g. iconv -f latin1 -t utf-8")
    if error.reason == "empty":
        expected = "one JSON object a line" if fmt == "jsonl" else "a header line and one row per text"
        return PredictInputError(f"{path}: file is empty; expected {expected}")
    if error.reason == "no_rows":
        return PredictInputError(f"{path}: no data rows" + (" (only a header line)" if fmt in ("csv", "tsv") else ""))
    remedy = _INPUT_REMEDIES.get(error.reason)
    return PredictInputError(f"{error}; {remedy}" if remedy else str(error))


def write_predictions(path: PathLike, ids: Sequence[Any], predictions: Sequence[dict[str, Any]],
                      labels: Sequence[str]) -> Path:
    """Write id, label, score and one prob_<label> column per class, atomically; format by file extension."""
    path = Path(path)
    kind = output_format(path)
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
            handle.write(gzip.compress(data) if files.is_gzipped(path) else data)
            handle.flush()
            os.fsync(handle.fileno())
    return path
