"""Selection of other rows: which of the non-target rows enter the mix, by a budget and a method, with its report.

Takes the target's texts and the candidate rows (any sources, named or the user's own files, unified as Datasets)
and hands the mixing step a `Selection`: the chosen rows, every candidate's score and a report (rows per source
and domain chosen against available, scores of chosen against rejected rows, top and bottom examples).

Methods (`other_selection`):
- ``all``: every candidate, today's behaviour; it takes no budget (`other_rows` with ``all`` is a config error,
  and `select_other_rows` refuses one, so a budget never silently means nothing).
- ``random``: `budget` rows drawn uniformly without replacement, seeded: the baseline selection is judged against.
- ``similarity``: kNN-TAPT (Gururangan et al. 2020, "Don't Stop Pretraining", §5.2): they embed task and domain
  text in one space (VAMPIRE) and take, *for each task sentence*, its k nearest candidates, the union being the
  augmented set. We follow that per-target-row form rather than ranking candidates by their mean similarity to
  the target: a mean pulls every pick towards the target's centroid, so a target of several kinds of text (kitchen
  reviews of knives and of coffee makers) gets neighbours of its commonest kind only, while per-row neighbours cover
  each target row. The space is the encoder's mask-weighted mean-pooled, L2-normalised embeddings
  (`anchors.mean_pooled_embeddings`, all-MiniLM-L6-v2's own sentence vector), similarity their cosine. To meet an
  exact budget, k grows until the union holds `budget` rows; at the last k, candidates with the higher score (cosine
  to their nearest target row, the score reported) go first. Measured with the packaged MiniLM, 300 kitchen reviews
  as the target and 300 electronics reviews + 300 English tweets as candidates, 200 chosen: on three draws this
  kNN took 71.5-75.5% electronics; on two of them ranking by mean cosine 72.5-74%, by max cosine 79.5-86% (random:
  about half). Short target rows ("works great!") find tweets as their nearest neighbours; we keep the paper's
  coverage of every target row.
- ``importance``: DSIR (Xie et al. 2023, "Data Selection for Language Models via Importance Resampling"): hashed
  unigram and bigram counts (10,000 buckets), one bag-of-n-grams model of the target and one of the candidate pool,
  each candidate's log importance weight Σ_j count_j · (log p_target(j) − log p_pool(j)) (rescaled to the pool's
  mean length: `importance_log_weights` says why), then `budget` rows drawn without replacement ∝ weight by the
  Gumbel-top-k trick (argtop-k of log w + Gumbel noise), as the paper does. It
  is implemented here on scikit-learn's `HashingVectorizer`, not with the published `data-selection` package
  (1.0.3): that package reads and writes jsonl files and caches through a folder, tokenises with nltk (not in our
  stack), draws its Gumbel noise from numpy's global generator (unseeded here, so not reproducible per run), and by
  default drops texts under 100 tokens (most tweets, sentences and phrases). The arithmetic follows its
  `hashed_ngram_dsir.py`: the same word-punct tokens lower-cased, n-grams up to 2, and ε = 1e-8 added to both
  probabilities before the log; buckets come from scikit-learn's MurmurHash, not sha256.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union, get_args

import numpy as np
import pandas as pd
from datasets import Dataset
from matplotlib.figure import Figure
from sklearn.feature_extraction.text import HashingVectorizer

from . import files, plots
from .anchors import FrozenEncoder
from .clean import take_rows
from .config import Config
from .config.schema import OtherSelection
from .io import atomic_write_json, atomic_write_text
from .mix import few_shot
from .modeling import resolve_model_path
from .runs import RunFolder

METHODS: tuple[str, ...] = get_args(OtherSelection)  # all, random, similarity, importance
NGRAM_BUCKETS = 10_000  # DSIR's default number of hash buckets
NGRAM_RANGE = (1, 2)  # unigrams and bigrams, DSIR's n = 2
# nltk's WordPunctTokenizer pattern, which DSIR's reference uses: runs of word characters, runs of punctuation
WORD_PUNCT = r"(?u)\w+|[^\w\s]+"
PROBABILITY_FLOOR = 1e-8  # added to both bag-of-n-gram probabilities before the log, as in DSIR's reference
SCORE_NAMES = {"similarity": "cosine similarity to the nearest target row",
               "importance": "log importance weight (target vs pool n-grams)"}
EXAMPLE_CHARS = 300  # report examples are cut to this many characters


# --- the methods -----------------------------------------------------------------------------------------------------

def ngram_counts(texts: Sequence[str], buckets: int = NGRAM_BUCKETS) -> Any:
    """Hashed unigram + bigram counts per text (a sparse rows × buckets matrix), lower-cased word-punct tokens."""
    vectorizer = HashingVectorizer(n_features=buckets, ngram_range=NGRAM_RANGE, token_pattern=WORD_PUNCT,
                                   lowercase=True, alternate_sign=False, norm=None)
    return vectorizer.transform(list(texts))


def importance_log_weights(target_texts: Sequence[str], candidate_texts: Sequence[str], *,
                           buckets: int = NGRAM_BUCKETS, length_normalised: bool = True) -> np.ndarray:
    """Each candidate's DSIR log importance weight: its hashed n-gram counts dotted with
    log(p_target + ε) − log(p_pool + ε), each p a bag-of-n-grams model (bucket counts summed over its texts, normalised).

    `length_normalised` (the default) rescales each sum to the pool's mean n-gram count: (mean count / own count) ×
    sum. DSIR's examples are chunks of about one length; ours range from a tweet to a review five times longer, and
    a raw sum grows with length, so a long row of mostly fitting n-grams lost to a short off-target one (a kitchen
    target over electronics and tweets chose 40% electronics, below random's 48%; normalised, about 77%).
    """
    target, pool = ngram_counts(target_texts, buckets), ngram_counts(candidate_texts, buckets)
    target_total, pool_total = target.sum(), pool.sum()
    if target_total == 0:
        raise ValueError("importance selection: the target texts hold no word or punctuation token to model")
    p_target = np.asarray(target.sum(axis=0)).ravel() / target_total
    p_pool = np.asarray(pool.sum(axis=0)).ravel() / max(pool_total, 1)
    log_ratio = np.log(p_target + PROBABILITY_FLOOR) - np.log(p_pool + PROBABILITY_FLOOR)
    weights = np.asarray(pool @ log_ratio).ravel()
    if not length_normalised:
        return weights
    lengths = np.asarray(pool.sum(axis=1)).ravel()
    return weights * lengths.mean() / np.maximum(lengths, 1)


def gumbel_top_k(log_weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct indices drawn without replacement with probability ∝ exp(log_weights) (sequentially, like k draws
    from the renormalised remaining weights): the k largest of log w + Gumbel(0, 1) noise, largest first."""
    k = min(k, len(log_weights))
    keys = np.asarray(log_weights, dtype=float) + rng.gumbel(size=len(log_weights))
    top = np.argpartition(-keys, k - 1)[:k] if k else np.array([], dtype=int)
    return top[np.argsort(-keys[top], kind="stable")]


def knn_selection(target_vectors: np.ndarray, candidate_vectors: np.ndarray, budget: int, *,
                  chunk: int = 256) -> tuple[np.ndarray, np.ndarray, int]:
    """kNN-TAPT on unit vectors: (chosen indices in selection order, each candidate's cosine to its nearest target
    row, the k reached). A candidate's level is its best rank in any target row's neighbour list; taking levels
    0, 1, … is the union of every target row's k nearest for growing k; within a level the higher score goes first."""
    level = np.full(len(candidate_vectors), np.iinfo(np.int64).max, dtype=np.int64)
    best = np.full(len(candidate_vectors), -np.inf)
    for start in range(0, len(target_vectors), chunk):
        similarity = candidate_vectors @ target_vectors[start:start + chunk].T  # candidates × target rows
        ranks = np.empty_like(similarity, dtype=np.int64)
        order = np.argsort(-similarity, axis=0, kind="stable")
        np.put_along_axis(ranks, order, np.arange(len(candidate_vectors))[:, None], axis=0)
        level = np.minimum(level, ranks.min(axis=1))
        best = np.maximum(best, similarity.max(axis=1))
    chosen = np.lexsort((-best, level))[:budget]
    depth = int(level[chosen].max()) + 1 if len(chosen) else 0
    return chosen, best, depth


# --- the step ---------------------------------------------------------------------------------------------------------

@dataclass
class Selection:
    """The candidates a method chose: the rows (a subset of the candidates, in their order), every candidate's
    score (NaN under all and random), the chosen indices into the candidates, and what `report()` shows."""

    method: str
    budget: Optional[int]
    seed: int
    by: str
    rows: Dataset
    indices: list[int]
    scores: np.ndarray
    target_rows: int
    candidates: Dataset = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict)  # the method's settings (encoder, buckets, k reached)

    @property
    def score_name(self) -> Optional[str]:
        return SCORE_NAMES.get(self.method)

    @property
    def chosen_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.candidates), dtype=bool)
        mask[self.indices] = True
        return mask

    def counts(self, column: str) -> pd.DataFrame:
        """Rows per value of `column`: available, chosen, the share of the chosen rows and the share kept."""
        values = self.candidates.with_format("arrow")[:].column(column).to_pylist()
        available, chosen = Counter(values), Counter(values[i] for i in self.indices)
        frame = pd.DataFrame({column: sorted(available), "available": [available[v] for v in sorted(available)],
                              "chosen": [chosen[v] for v in sorted(available)]})
        frame["share_of_chosen"] = frame["chosen"] / max(len(self.indices), 1)
        frame["kept"] = frame["chosen"] / frame["available"]
        return frame

    def _score_summary(self, mask: np.ndarray) -> Optional[dict[str, float]]:
        values = self.scores[mask]
        if not len(values) or np.isnan(values).all():
            return None
        return {"n": int(len(values)), "mean": float(np.mean(values)), "median": float(np.median(values)),
                "min": float(np.min(values)), "max": float(np.max(values))}

    def _examples(self, order: np.ndarray, n: int) -> list[dict[str, Any]]:
        texts, mask = self.candidates["text"], self.chosen_mask
        groups = self.candidates[self.by]
        return [{"text": texts[i][:EXAMPLE_CHARS], self.by: groups[i], "score": round(float(self.scores[i]), 4),
                 "chosen": bool(mask[i])} for i in order[:n]]

    def report(self, examples: int = 5) -> dict[str, Any]:
        """Plain data for reports: counts per source and domain, score summaries of chosen and rejected rows, the
        `examples` highest- and lowest-scoring candidates (none under all and random, which score nothing)."""
        mask = self.chosen_mask
        columns = [self.by] + [c for c in ("source", "domain") if c != self.by and c in self.candidates.column_names]
        scored = not np.isnan(self.scores).all()
        order = np.argsort(-self.scores, kind="stable") if scored else np.array([], dtype=int)
        return {
            "method": self.method, "budget": self.budget, "seed": self.seed, "by": self.by,
            "target_rows": self.target_rows, "candidates": len(self.candidates), "chosen": len(self.indices),
            "counts": {column: self.counts(column).to_dict(orient="records") for column in columns},
            "score_name": self.score_name,
            "scores": {"chosen": self._score_summary(mask), "rejected": self._score_summary(~mask)},
            "top": self._examples(order, examples), "bottom": self._examples(order[::-1], examples),
            "details": self.details, "summary": self.summary(),
        }

    def summary(self) -> str:
        shares = ", ".join(f"{row[self.by]} {row['chosen']:,}/{row['available']:,}"
                           for row in self.counts(self.by).to_dict(orient="records"))
        target = f" against {self.target_rows:,} target texts" if self.method in SCORE_NAMES else ""
        return (f"Selected {len(self.indices):,} of {len(self.candidates):,} other rows by '{self.method}'{target}; "
                f"chosen/available per {self.by}: {shares}.")


def select_other_rows(target_texts: Sequence[str], candidates: Dataset, method: OtherSelection, budget: Optional[int], *,
                      seed: int, encoder: Union[FrozenEncoder, str, None] = None, max_length: int = 128,
                      by: str = "domain") -> Selection:
    """`budget` of the `candidates` rows chosen by `method` for the target that `target_texts` show (see the module
    docstring); a budget at or above the candidates' number keeps them all. `encoder` (similarity only) is a
    `FrozenEncoder` or a model folder; `by` is the column the report counts by first. Candidates need `text`
    and `by` columns."""
    if method not in METHODS:
        raise ValueError(f"other_selection {method!r}: choose one of {list(METHODS)}")
    missing = [column for column in ("text", by) if column not in candidates.column_names]
    if missing:
        raise ValueError(f"select_other_rows: the candidates lack column(s) {missing} (have {candidates.column_names})")
    if method == "all":
        if budget is not None:
            raise ValueError(f"other_selection 'all' keeps every candidate; other_rows={budget} would be ignored: "
                             "drop other_rows or choose random, similarity or importance")
    elif budget is None or budget < 1:
        raise ValueError(f"other_selection {method!r} needs other_rows ≥ 1 (the number of other rows to keep), "
                         f"got {budget}")
    if method in SCORE_NAMES and not target_texts:
        raise ValueError(f"other_selection {method!r} needs target texts to compare candidates with; none given")
    if len(candidates) == 0:
        raise ValueError(f"other_selection {method!r}: there are no other rows to select from (every training row "
                         "is the target's); add a source of other data or set other_selection: all")
    n = len(candidates)
    take = n if budget is None else min(budget, n)
    scores = np.full(n, np.nan)
    details: dict[str, Any] = {}
    texts = list(candidates["text"])
    if method == "all" or take == n and method == "random":
        chosen = np.arange(n)
    elif method == "random":
        chosen = np.random.default_rng(seed).choice(n, size=take, replace=False)
    elif method == "importance":
        scores = importance_log_weights(target_texts, texts)
        chosen = gumbel_top_k(scores, take, np.random.default_rng(seed))
        details = {"buckets": NGRAM_BUCKETS, "ngram_range": list(NGRAM_RANGE), "tokens": "word-punct, lower-cased",
                   "probability_floor": PROBABILITY_FLOOR, "length_normalised": True,
                   "sampling": "Gumbel-top-k without replacement"}
    else:
        if encoder is None:
            raise ValueError("other_selection 'similarity' needs an encoder (a FrozenEncoder or a model folder)")
        if not isinstance(encoder, FrozenEncoder):
            encoder = FrozenEncoder(encoder, max_length)
        chosen, scores, depth = knn_selection(encoder.embed(list(target_texts)), encoder.embed(texts), take)
        details = {"encoder": encoder.model_path, "max_length": encoder.max_length,
                   "pooling": "mean, L2-normalised", "neighbours_per_target_row": depth}
    indices = sorted(int(i) for i in chosen)
    rows = take_rows(candidates, indices, f"select {method} {budget} {seed}")
    return Selection(method=method, budget=budget, seed=seed, by=by, rows=rows, indices=indices, scores=scores,
                     target_rows=len(target_texts), candidates=candidates, details=details)


def read_target_texts(path: Union[str, Path]) -> list[str]:
    """Unlabelled target texts from a file: CSV, TSV, JSONL or parquet (plain or .gz) with a `text` column, or any
    other file as plain text, one text a line; blank ones are skipped."""
    fmt = files.file_format(path)
    try:
        records = None if fmt is None else files.read_records(path, fmt)
        lines = files.read_lines(path) if fmt is None else []
    except files.FileReadError as error:
        raise ValueError(f"selection_target_texts: {error}") from None
    if records is None:
        texts = lines
    else:
        if "text" not in records.columns:
            raise ValueError(f"selection_target_texts {str(path)!r}: no 'text' column (columns: "
                             f"{list(records.columns)}); name the column of target texts 'text'")
        texts = ["" if value is None else str(value) for value in records.columns["text"]]
    texts = [text.strip() for text in texts if text and text.strip()]
    if not texts:
        raise ValueError(f"selection_target_texts {str(path)!r}: the file holds no text")
    return texts


def select_for_config(train: Dataset, config: Config, *, seed: Optional[int] = None,
                      encoder: Optional[FrozenEncoder] = None) -> tuple[Dataset, Optional[Selection]]:
    """`train` with its non-target rows cut to those `config.other_selection` chooses (target rows all kept, order
    kept), and the `Selection`; `train` itself and None under ``all``.

    The target texts are `selection_target_texts` where set, else the target's training rows as the model will see
    them: with `few_shot_k`, the very k-per-class rows `mix.mix` then samples (same seed; cutting other rows changes
    no target pick), so a few-shot run never selects with target rows it does not own.
    """
    if config.other_selection == "all":
        return train, None
    seed = config.seed if seed is None else seed
    column, target = config.mix_by, config.target_domain
    groups = train.with_format("arrow")[:].column(column).to_pylist()
    target_rows = [row for row, group in enumerate(groups) if target is not None and group == target]
    other_rows = [row for row, group in enumerate(groups) if target is None or group != target]
    if config.selection_target_texts:
        target_texts = read_target_texts(config.selection_target_texts)
    else:
        owned = take_rows(train, target_rows, f"target rows {column}={target}")
        if config.few_shot_k is not None:
            owned = few_shot(owned, config.few_shot_k, seed=seed, domain=target, column=column)
        target_texts = list(owned["text"])
    if encoder is None and config.other_selection == "similarity":
        encoder = FrozenEncoder(resolve_model_path(config.model_name_or_path, config.resolved_cache_dir()),
                                config.max_seq_length)
    candidates = take_rows(train, other_rows, f"other rows {column}!={target}")
    selection = select_other_rows(target_texts, candidates, config.other_selection, config.other_rows, seed=seed,
                                  encoder=encoder, max_length=config.max_seq_length, by=column)
    kept = sorted(target_rows + [other_rows[i] for i in selection.indices])
    return take_rows(train, kept, f"selected {config.other_selection} {config.other_rows} {seed}"), selection


# --- the report -------------------------------------------------------------------------------------------------------

def report_markdown(selection: Selection, examples: int = 5) -> str:
    """The selection report as a markdown section: counts per group, score summaries, top and bottom examples."""
    report = selection.report(examples)
    lines = ["## Selection of other rows", "", report["summary"], ""]
    for column, rows in report["counts"].items():
        lines += [f"| {column} | available | chosen | share of chosen | kept |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {row[column]} | {row['available']:,} | {row['chosen']:,} | {row['share_of_chosen']:.1%} | "
                  f"{row['kept']:.1%} |" for row in rows]
        lines.append("")
    if report["score_name"]:
        lines += [f"Score: {report['score_name']}.", "", "| rows | n | mean | median | min | max |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in ("chosen", "rejected"):
            stats = report["scores"][name]
            if stats:
                lines.append(f"| {name} | {stats['n']:,} | {stats['mean']:.4g} | {stats['median']:.4g} | "
                             f"{stats['min']:.4g} | {stats['max']:.4g} |")
        for title, rows in (("Highest-scoring candidates", report["top"]),
                            ("Lowest-scoring candidates", report["bottom"])):
            lines += ["", f"### {title}", ""]
            lines += [f"- ({row['score']:.4g}, {row[selection.by]}, {'chosen' if row['chosen'] else 'rejected'}) "
                      f"{_one_line(row['text'])}" for row in rows]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def write_selection_report(selection: Optional[Selection], paths: RunFolder) -> None:
    """The selection's JSON, markdown section and score figure into the run folder, atomically; with no selection
    (`other_selection: all`) those of an earlier run are removed, so the folder never shows a selection not made."""
    outputs = (paths.selection_report, paths.selection_markdown, paths.figure("selection"))
    if selection is None:
        for path in outputs:
            path.unlink(missing_ok=True)
        return
    atomic_write_json(paths.selection_report, selection.report())
    atomic_write_text(paths.selection_markdown, report_markdown(selection))
    figure = score_figure(selection, paths.figure("selection"))
    if figure is None:
        paths.figure("selection").unlink(missing_ok=True)
    else:
        plots.close(figure)  # written, not shown: the notebook shows it where it narrates the selection


def score_figure(selection: Optional[Selection], path: Optional[Union[str, Path]] = None) -> Optional[Figure]:
    """The scores of chosen against rejected candidates (`plots.plot_selection_scores`); None when the method
    scores nothing (all, random) or there was no selection."""
    if selection is None or not selection.score_name:
        return None
    return plots.plot_selection_scores(selection.scores, selection.chosen_mask, selection.score_name, path=path)


def describe(selection: Optional[Selection]) -> str:
    """The selection report as markdown for a notebook; one sentence when `other_selection` is all."""
    if selection is None:
        return ("`other_selection: all`: every other row was offered to the mix; set `other_selection` (random, "
                "similarity, importance) and `other_rows` to select.\n")
    return report_markdown(selection)


def chosen_share(selection: Selection, value: str, column: Optional[str] = None) -> float:
    """The share of the chosen rows whose `column` (default: `by`) is `value`; NaN when nothing was chosen."""
    counts = selection.counts(column or selection.by).set_index(column or selection.by)["chosen"]
    total = int(counts.sum())
    return float(counts.get(value, 0)) / total if total else math.nan
