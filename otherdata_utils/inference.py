"""Texts to model inputs, as training cut them: special tokens, truncation (head, tail, head_tail) and quiet loading.

The light half of tokenisation, with no data-side import (no datasets, accelerate or pandas): `modeling` hands it
training splits, `predictor` hands it the texts to serve, so both cut a text to the same tokens.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import transformers
from transformers import PreTrainedTokenizerBase


@contextmanager
def quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' and datasets' warnings (weight load reports) and progress bars, then restore them."""
    if not quiet:
        yield
        return
    # datasets' bars only where training already imported it: serving must not pay for importing it
    datasets = sys.modules.get("datasets")
    verbosity = transformers.logging.get_verbosity()
    hf_bars = transformers.utils.logging.is_progress_bar_enabled()
    ds_bars = datasets is not None and not datasets.are_progress_bars_disabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if datasets is not None:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if hf_bars:
            transformers.utils.logging.enable_progress_bar()
        if ds_bars:
            datasets.enable_progress_bars()


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int, truncation: str,
                 head_tokens: int) -> dict[str, list]:
    """input_ids, attention_mask and length per text, unpadded, cut to `max_length` exactly as
    `modeling.tokenize_splits` cuts training and evaluation texts (what a served model must do to see what it was
    trained on)."""
    prefix, suffix = special_token_frame(tokenizer)
    return encode_batch({"text": list(texts)}, tokenizer=tokenizer, prefix=prefix, suffix=suffix,
                        budget=max_length - len(prefix) - len(suffix), truncation=truncation,
                        head_tokens=head_tokens)


def encode_batch(batch: dict, *, tokenizer: PreTrainedTokenizerBase, prefix: list[int], suffix: list[int],
                 budget: int, truncation: str, head_tokens: int) -> dict:
    """One batch of rows (a "text" column, and "label" when training) as unpadded model inputs and their lengths."""
    # Tokenise without truncation, then cut here: the tokenizer itself can only keep the head.
    encoded = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["input_ids"]
    input_ids = [prefix + truncate_ids(ids, budget, truncation, head_tokens) + suffix for ids in encoded]
    columns = {
        "input_ids": input_ids,
        "attention_mask": [[1] * len(ids) for ids in input_ids],
        "length": [len(ids) for ids in input_ids],
    }
    if "label" in batch:  # texts to predict on have none
        columns["labels"] = batch["label"]
    return columns


def truncate_ids(ids: list[int], budget: int, truncation: str, head_tokens: int) -> list[int]:
    """At most `budget` token ids: the head, the tail, or head_tokens from the start plus the rest from the end."""
    if len(ids) <= budget:
        return ids
    if truncation == "head":
        return ids[:budget]
    if truncation == "tail":
        return ids[len(ids) - budget:]
    if truncation == "head_tail":
        head = min(head_tokens, budget)
        return ids[:head] + ids[len(ids) - (budget - head):]
    raise ValueError(f"truncation={truncation!r}: expected 'head', 'tail' or 'head_tail'")


def special_token_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special token ids a single sequence gets before and after its text ([CLS] … [SEP] for BERT)."""
    probe = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(framed) - len(probe) + 1):
        if framed[start:start + len(probe)] == probe:
            return framed[:start], framed[start + len(probe):]
    raise ValueError(f"cannot tell where {type(tokenizer).__name__} puts its special tokens")
