"""The model card: README.md in a saved model folder (YAML front matter and prose), and otherdata_inference.json.

Training hands its facts here (base model, data mix, params, test metrics, how it tokenised, which precision it computed
in); serving reads them back.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, get_args

import yaml

from .config import Config, Truncation
from .io import atomic_write_json, atomic_write_text
from .pooling import TRAINED_POOLINGS, resolve_pooling
from .precision import PrecisionChoice

CARD_NAME = "README.md"
# a folder trained with `pooling: mean` holds a model type that transformers learns from otherdata_utils.pooling
MEAN_POOLING_NOTE = ("This classifier pools the encoder's tokens as its sentence-transformers folder does "
                     "(`pooling: mean`): its model type `otherdata_pooled_encoder` loads only where the `otherdata` "
                     "package is installed and `otherdata_utils.pooling` is imported (no remote code is run).\n\n")
INFERENCE_NAME = "otherdata_inference.json"


class ModelCardError(ValueError):
    """README.md exists but its front matter cannot be read; the message names the file and the problem."""


def write_model_card(
    model_dir: Path,
    *,
    base_model: str,
    sources: list[str],
    mix: Optional[dict] = None,
    params: dict,
    test_metrics: Optional[dict] = None,
    per_domain: Optional[dict] = None,
    intended_use: Optional[str] = None,
    limitations: Optional[list[str]] = None,
) -> Path:
    """Write ``model_dir/README.md`` atomically and return its path.

    ``test_metrics`` maps metric name -> value (numbers become model-index results, anything else stays in the
    otherdata block); ``per_domain`` maps domain -> {metric: value}; ``mix`` maps a domain or source to its
    share, or to a dict of facts (rows, share).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found; save the model before writing its card")
    mix, params = _plain(mix or {}), _plain(params)
    test_metrics, per_domain = _plain(test_metrics or {}), _plain(per_domain or {})
    front = _front_matter(model_dir.name, base_model, sources, mix, params, test_metrics, per_domain)
    body = _body(model_dir.name, base_model, sources, mix, params, test_metrics, per_domain, intended_use,
                 limitations or [])
    text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + body
    return atomic_write_text(model_dir / CARD_NAME, text)


def read_model_card(model_dir: Path) -> dict[str, Any]:
    """The card's front matter as a dict; {} when the folder has no README.md or the README has no front matter."""
    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ModelCardError(f"{path}: not UTF-8 text (byte {error.start}); rewrite the card as UTF-8") from None
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ModelCardError(f"{path}: front matter opened with '---' on line 1 is never closed") from None
    try:
        front = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 2}:" if mark else ""
        raise ModelCardError(f"{path}:{where} front matter is not valid YAML: "
                             f"{getattr(error, 'problem', None) or error}") from None
    if front is None:
        return {}
    if not isinstance(front, dict):
        raise ModelCardError(f"{path}: front matter must be 'key: value' lines, got a {type(front).__name__}")
    return front


@dataclass(frozen=True)
class InferenceSettings:
    """How training cut its inputs: a served model must cut long texts the same way or it scores other tokens."""

    max_seq_length: int  # tokens per text, special tokens included
    truncation: str  # head, tail or head_tail
    head_tokens: int  # head_tail: tokens kept from the start, the rest from the end
    # routing: a text whose best class is less probable than this is handed over (chosen on validation); None: never
    handover_threshold: Optional[float] = None
    # the precision training computed in (`PrecisionChoice`: mode and reason); None: not recorded (older folders)
    training_precision: Optional[PrecisionChoice] = None
    # the sentence vector the head reads (config `pooling`): cls or mean; None: not recorded (older folders, all cls)
    pooling: Optional[str] = None

    @classmethod
    def from_config(cls, config: Config, handover_threshold: Optional[float] = None,
                    training_precision: Optional[PrecisionChoice] = None, *,
                    model_dir: Optional[Path] = None) -> InferenceSettings:
        """The settings `config` trained with; `pooling: auto` as the saved folder at `model_dir` resolves it (a
        mean-pooled classifier's model type says mean), never the word auto."""
        pooling = config.pooling
        if pooling == "auto":
            if model_dir is None:
                raise ValueError("pooling: auto is resolved from the saved model folder; pass model_dir")
            pooling = resolve_pooling(pooling, str(model_dir))
        return cls(config.max_seq_length, config.truncation, config.head_tokens, handover_threshold,
                   training_precision, pooling)


def write_inference_settings(model_dir: Path, config: Config, *, handover_threshold: Optional[float] = None,
                             training_precision: Optional[PrecisionChoice] = None) -> Path:
    """Write ``model_dir/otherdata_inference.json`` (max length and truncation training used, the precision it
    computed in, the pooling its head reads, and a routing model's handover threshold) atomically.

    Call it after the model is saved: saving swaps in a whole new folder.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no saved model (config.json) to describe; save the model first")
    settings = asdict(InferenceSettings.from_config(config, handover_threshold, training_precision,
                                                     model_dir=model_dir))
    # a classifier that never hands over, or written without its precision, keeps the file it always had
    for optional in ("handover_threshold", "training_precision"):
        if settings[optional] is None:
            del settings[optional]
    return atomic_write_json(model_dir / INFERENCE_NAME, settings)


def read_inference_settings(model_dir: Path) -> Optional[InferenceSettings]:
    """The stored settings; None for a folder without the file (a model saved by something other than otherdata)."""
    path = Path(model_dir) / INFERENCE_NAME
    if not path.is_file():
        return None
    redo = "delete it to serve with the model's defaults, or rewrite it with model_card.write_inference_settings"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelCardError(f"{path}: not a JSON object ({error}); {redo}") from None
    required = {"max_seq_length", "truncation", "head_tokens"}
    optional = {"handover_threshold", "training_precision", "pooling"}
    if not isinstance(stored, dict) or not required <= set(stored) <= required | optional:
        got = sorted(stored) if isinstance(stored, dict) else type(stored).__name__
        raise ModelCardError(f"{path}: expected max_seq_length, truncation and head_tokens (and optionally "
                             f"handover_threshold), and training_precision and pooling where training recorded them, "
                             f"got {got}; {redo}")
    if stored.get("pooling", "cls") not in TRAINED_POOLINGS:
        raise ModelCardError(f"{path}: pooling must be one of {', '.join(TRAINED_POOLINGS)}, got "
                             f"{stored['pooling']!r}; {redo}")
    threshold = stored.get("handover_threshold")
    if threshold is not None and (type(threshold) not in (int, float) or not 0 <= threshold <= 1):
        raise ModelCardError(f"{path}: handover_threshold must be a probability in [0, 1], got {threshold!r}; "
                             f"{redo}")
    for name, least in (("max_seq_length", 1), ("head_tokens", 0)):
        if type(stored[name]) is not int or stored[name] < least:  # type(): a JSON true is no length
            raise ModelCardError(f"{path}: {name} must be a whole number ≥ {least}, got {stored[name]!r}; {redo}")
    if stored["truncation"] not in get_args(Truncation):
        raise ModelCardError(f"{path}: truncation must be one of {', '.join(get_args(Truncation))}, got "
                             f"{stored['truncation']!r}; {redo}")
    if "training_precision" in stored:
        stored["training_precision"] = _training_precision(stored["training_precision"], path, redo)
    return InferenceSettings(**stored)


def _training_precision(stored: Any, path: Path, redo: str) -> PrecisionChoice:
    fields = ("requested", "mode", "device", "reason")
    if not isinstance(stored, dict) or set(stored) != set(fields) or \
            not all(isinstance(stored[name], str) for name in fields) or stored["mode"] not in ("no", "bf16", "fp16"):
        raise ModelCardError(f"{path}: training_precision must hold {', '.join(fields)} as text, with mode no, bf16 "
                             f"or fp16; got {stored!r}; {redo}")
    return PrecisionChoice(**stored)


def _front_matter(name: str, base_model: str, sources: list[str], mix: dict, params: dict,
                  test_metrics: dict, per_domain: dict) -> dict[str, Any]:
    numeric = {key: value for key, value in test_metrics.items() if _is_number(value) and key != "n"}
    front: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "base_model": base_model,
        "tags": ["text-classification", "otherdata"],
    }
    if numeric:
        front["metrics"] = list(numeric)
        # model-index is where the Hub reads metric values from; the dataset is our own held-out split
        front["model-index"] = [{
            "name": name,
            "results": [{
                "task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"type": "otherdata-test", "name": "held-out test split of " + ", ".join(sources)},
                "metrics": [{"type": key, "name": key, "value": value} for key, value in numeric.items()],
            }],
        }]
    # everything else a reader or the predictor wants back, under one key the Hub ignores
    front["otherdata"] = {
        "sources": list(sources),
        "mix": mix,
        "params": params,
        "test_metrics": test_metrics,
        "per_domain": per_domain,
    }
    return front


def _body(name: str, base_model: str, sources: list[str], mix: dict, params: dict, test_metrics: dict,
          per_domain: dict, intended_use: Optional[str], limitations: list[str]) -> str:
    sections = [
        f"# {name}\n\nA text classifier fine-tuned with otherdata.",
        f"## Base model\n\n`{base_model}`",
        "## Data sources and mix\n\n" + "\n".join(f"- `{source}`" for source in sources)
        + ("\n\nAchieved training mix:\n\n" + _table(mix, "part") if mix else ""),
        "## Training parameters\n\n" + (_table(params, "parameter", rounded=False) if params else "none recorded"),
        "## Test metrics\n\n" + (_table(test_metrics, "metric") if test_metrics else "not measured")
        + (_per_domain_section(per_domain) if per_domain else ""),
        "## Intended use\n\n" + (intended_use or "Not stated by the trainer. Check the data sources and test "
                                  "metrics above against your own texts before relying on the predictions."),
        "## Limitations\n\n" + ("\n".join(f"- {item}" for item in limitations) if limitations
                                else "- Only measured on the test split above; other domains may differ."),
        "## How to use\n\n"
        + (MEAN_POOLING_NOTE if params.get("pooling") == "mean" else "")
        + "```python\n" + ("import otherdata_utils.pooling  # registers the mean-pooled classifier with transformers\n"
                           if params.get("pooling") == "mean" else "")
        + "from transformers import pipeline\n\n"
        'classifier = pipeline("text-classification", model="path/to/this/folder")\n'
        'classifier(["a text to classify"])\n```\n\n'
        "or `python -m otherdata_utils predict MODEL_DIR input.csv predictions.csv`.",
    ]
    return "\n\n".join(sections) + "\n"


def _per_domain_section(per_domain: dict) -> str:
    text = "\n\nPer domain:\n\n" + _table(per_domain, "domain")
    # the worst domain is the number a user of the model in an unseen domain should look at first (as in WILDS)
    scored = {domain: row.get("accuracy") for domain, row in per_domain.items()
              if isinstance(row, dict) and _is_number(row.get("accuracy"))}
    if len(scored) > 1:
        worst = min(scored, key=scored.get)
        text += f"\n\nWorst domain by accuracy: `{worst}` ({_cell(scored[worst])})."
    return text


def _table(mapping: dict, key_name: str, rounded: bool = True) -> str:
    """A markdown table: one row per key; nested dicts spread over columns (the union of their keys).

    Metrics and shares are rounded to 4 decimals; parameters are not (a learning rate of 5e-5 must stay 5e-5).
    """
    if all(isinstance(value, dict) for value in mapping.values()):
        columns: list[str] = []
        for row in mapping.values():
            columns += [column for column in row if column not in columns]
        lines = [f"| {key_name} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for key, row in mapping.items():
            lines.append(f"| {key} | " + " | ".join(_cell(row.get(column), rounded) for column in columns) + " |")
        return "\n".join(lines)
    lines = [f"| {key_name} | value |", "|---|---:|"]
    lines += [f"| {key} | {_cell(value, rounded)} |" for key, value in mapping.items()]
    return "\n".join(lines)


def _cell(value: Any, rounded: bool = True) -> str:
    if value is None:
        return "—"
    if rounded and isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) and abs(value) >= 1e-3 else f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """Built-in types only, so safe_dump writes plain YAML: numpy values become numbers, paths and the like text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)
