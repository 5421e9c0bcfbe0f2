"""Does a source's similarity to the target predict the help it brings? Across few-shot runs that add each other
source alone (`study.few_shot.other_groups`: one "+source" arm per source, against target-only at k), per (target,
source) pair: the source's similarity to the target and the paired Δ its arm brought, then Spearman's rank
correlation over the pairs with an interval.

Similarity is the cosine between the centroids of the frozen encoder's mean-pooled, L2-normalised embeddings of the
target's training rows and of the source's (a seeded sample of each), the space the similarity selection uses.
The interval is a cluster bootstrap over targets: the pairs of one target share its target-only reference and its
test rows, so they are not independent, and resampling pairs one by one would make the interval too narrow.

Takes each run's prepared data and recorded comparisons (after its few-shot study has run); hands on the pairs table
(`similarity_and_help`) and the correlation (`spearman_over_targets`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .. import runs
from ..config import Config
from .engine import prepared_data
from .few_shot import few_shot_params
from .sampling import column, domain_rows, seeded_cap
from .selection_arms import encoder_for

SAMPLE_ROWS = 256  # rows of the target and of each source whose embeddings make the centroids


def centroid_similarity(config: Config, target_texts: Sequence[str], source_texts: Sequence[str]) -> float:
    """Cosine between the mean of the normalised embeddings of each text set."""
    encoder = encoder_for(config)
    a, b = encoder.embed(list(target_texts)).mean(axis=0), encoder.embed(list(source_texts)).mean(axis=0)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def similarity_and_help(configs: Sequence[Config], k_label: str) -> pd.DataFrame:
    """One row per (target, source) over the runs: the source's centroid similarity to the target (training rows,
    `SAMPLE_ROWS` of each, seeded by the run's seed) and its "+source" arm's Δ against target-only at `k_label`,
    with the interval and p_adj the run recorded."""
    rows = []
    for config in configs:
        path = runs.run_folder(config).study("few_shot_mixing") / "comparisons.csv"
        if not path.is_file():
            raise ValueError(f"{path}: no few-shot comparisons for run {config.run_name!r}; run its study first")
        comparisons = pd.read_csv(path, dtype={"k_label": str})
        prepared, _ = prepared_data(config)
        train, by, target = prepared["train"], config.mix_by, config.target_domain
        target_texts = column(seeded_cap(domain_rows(train, target, by), SAMPLE_ROWS, config.seed), "text")
        for source in few_shot_params(config).other_groups:
            arm = comparisons[(comparisons["arm"] == f"+{source}") & (comparisons["k_label"] == k_label)]
            if arm.empty:
                raise ValueError(f"{path}: no '+{source}' arm at k = {k_label}")
            source_texts = column(seeded_cap(domain_rows(train, source, by), SAMPLE_ROWS, config.seed), "text")
            rows.append({"target": target, "source": source,
                         "similarity": centroid_similarity(config, target_texts, source_texts),
                         **arm.iloc[0][["delta", "ci_low", "ci_high", "p_holm"]].to_dict()})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class RankCorrelation:
    rho: float
    ci_low: float
    ci_high: float
    pairs: int
    targets: int
    covers: str = "targets (cluster bootstrap: each target's pairs resampled together)"


def spearman_over_targets(pairs: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> RankCorrelation:
    """Spearman's rho of similarity against Δ over the pairs, with a 95% percentile interval from resampling whole
    targets with replacement (a draw whose pooled pairs have no spread in either column is skipped)."""
    if len(pairs) < 3 or pairs["target"].nunique() < 2:
        raise ValueError(f"a rank correlation over targets needs ≥ 3 pairs from ≥ 2 targets; got {len(pairs)} pairs "
                         f"from {pairs['target'].nunique()} target(s)")
    rho = float(scipy_stats.spearmanr(pairs["similarity"], pairs["delta"]).statistic)
    groups = [group for _, group in pairs.groupby("target")]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        pooled = pd.concat([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        if pooled["similarity"].nunique() > 1 and pooled["delta"].nunique() > 1:
            draws.append(scipy_stats.spearmanr(pooled["similarity"], pooled["delta"]).statistic)
    low, high = np.percentile(draws, [2.5, 97.5])
    return RankCorrelation(rho, float(low), float(high), len(pairs), len(groups))
