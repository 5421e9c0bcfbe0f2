"""The few-shot study's selection arms: per split, the other rows a selection method (`selection.select_other_rows`:
kNN similarity or DSIR importance) picks for the split's own k-shot target rows, as many as the split's random pool,
added by concatenation. Beside `concat` (the same dose drawn at random) each is one paired comparison: does choosing
the other rows beat drawing them at random, at an equal dose and equal steps?

Takes the split's target rows and the other training rows; hands `few_shot` the selected pools (`selected_pools`),
the arm names (`selection_arm`), the facts a cell records about its pool (`selection_facts`), and the comparisons of
each selection arm with `concat` (`selection_comparisons`, one Holm family per k).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import pandas as pd
from datasets import Dataset

from .. import modeling, selection
from ..anchors import FrozenEncoder
from ..config import Config
from .engine import compare_arms
from .sampling import column
from .tables import comparison_sentence

SELECTION_TEXT = ("concat ~method = the k-shot rows + as many other rows as concat's random pool, chosen for the "
                  "split's k-shot rows by the method (similarity: each target row's nearest other rows by the "
                  "encoder's mean-pooled cosine, kNN-TAPT; importance: DSIR's hashed n-gram importance resampling), "
                  "the same steps; compared with concat (the same dose at random) in selection_vs_random.csv")
RANDOM_ARM = "concat"  # the split's seeded random pool: the reference a selection arm is compared with
_ENCODERS: dict[tuple[str, int], FrozenEncoder] = {}  # one per model and length per process: it remembers vectors


def selection_arm(method: str) -> str:
    return f"{RANDOM_ARM} ~{method}"


def encoder_for(config: Config) -> FrozenEncoder:
    """The study's base encoder, frozen, loaded once per process (it keeps each text's vector, so the other rows are
    embedded once for every split and k, and re-planning a study embeds nothing again)."""
    path = modeling.resolve_model_path(config.model_name_or_path, config.resolved_cache_dir())
    key = (path, config.max_seq_length)
    if key not in _ENCODERS:
        _ENCODERS[key] = FrozenEncoder(path, config.max_seq_length)
    return _ENCODERS[key]


def selected_pools(config: Config, methods: Sequence[str], target: Dataset, others: Dataset, size: int,
                   split_seed: int) -> dict[str, Dataset]:
    """Per method, `size` of `others` chosen for the k-shot `target` rows' texts (seeded by the split seed): as many
    as the split's random pool, so a selection arm and concat differ only in which other rows they add."""
    return {method: selection.select_other_rows(
                list(column(target, "text")), others, method, size, seed=split_seed,
                encoder=encoder_for(config) if method == "similarity" else None,
                max_length=config.max_seq_length, by=config.mix_by).rows
            for method in methods}


def selection_facts(rows: Dataset, method: str, by: str) -> dict[str, Any]:
    """What a selection arm's cell records about its pool: the method, and the rows it took per group."""
    counts = Counter(column(rows, by))
    return {"selection": method, "selected_from": ", ".join(f"{group} {count}" for group, count in
                                                            sorted(counts.items(), key=lambda item: -item[1]))}


def selection_comparisons(cells: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Each selection arm against concat (the same dose at random) per k: paired over replicates, the interval over
    replicates and test rows, Holm over the selection arms of a k (one family: the question this table asks)."""
    arms = [RANDOM_ARM, *(selection_arm(method) for method in methods)]
    return compare_arms(cells[cells["arm"].isin(arms)], RANDOM_ARM, within=["k_label"], anchors=())


def selection_reading(cells: pd.DataFrame, methods: Sequence[str]) -> str:
    """The selection arms against concat per k in words, and the rows each method took."""
    table = selection_comparisons(cells, methods)
    per_k = " ".join(f"k = {k}: {comparison_sentence(table[table['k_label'] == k])}"
                     for k in dict.fromkeys(table["k_label"]))
    shares = "; ".join(f"{method} took {selected_share(cells, method)}" for method in methods)
    return ("Selection against concat's random pool at the same dose and steps (paired, Holm over the selection "
            f"arms of each k): {per_k} Rows chosen, over the splits: {shares}.")


def selected_share(cells: pd.DataFrame, method: str) -> str:
    """The rows a method took per group, summed over its cells of one seed (each split once), in words."""
    rows = cells[(cells["arm"] == selection_arm(method)) & (cells["seed"] == cells["seed"].min())]
    totals: Counter = Counter()
    for text in rows["selected_from"]:
        for part in str(text).split(", "):
            group, count = part.rsplit(" ", 1)
            totals[group] += int(count)
    whole = sum(totals.values()) or 1
    return ", ".join(f"{group} {count / whole:.0%}" for group, count in totals.most_common())
