"""Does a source's similarity to the target predict the help it brings? Across few-shot runs that add each other
source alone (`study.few_shot.other_groups`: one "+source" arm per source, against target-only at k), per (target,
source) pair: the source's similarity to the target and the paired Δ its arm brought, then Spearman's rank
correlation over the pairs with an interval.

Similarity is the cosine between the centroids of the frozen encoder's mean-pooled, L2-normalised embeddings of the
target's training rows and of the source's (a seeded sample of each), the space the similarity selection uses.
The interval is a cluster bootstrap over targets: the pairs of one target share its target-only reference and its
test rows, so they are not independent, and resampling pairs one by one would make the interval too narrow.

A pooled rank correlation mixes two questions: targets differ in how much any other data helps them, so pairs of
an easily helped target can line up by target alone. The mean of the per-target correlations
(`within_target_spearman`) asks the practitioner's question: for one target, do the more similar sources help more?

Takes each run's prepared data and recorded comparisons (after its few-shot study has run); hands on the pairs table
(`similarity_and_help`), the correlations (`spearman_over_targets`, `within_target_spearman`), and for a run whose
`study.few_shot.source_help_runs` names its siblings, the whole step (`source_help_report`): pairs.csv,
correlation.csv and source_help.md under studies/source_help/, figures/source_help.png and the run's metrics entry.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .. import pipeline, plots, runs
from ..config import Config, load_config
from ..io import atomic_write_text
from .engine import prepared_data
from .few_shot import few_shot_params
from .head import k_label
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
    """Spearman's rho of similarity against Δ over the pooled pairs, with a 95% percentile interval from resampling
    whole targets with replacement (a draw whose pooled pairs have no spread in either column is skipped)."""
    return _over_targets(pairs, _pooled_rho, n_resamples, seed)


def within_target_spearman(pairs: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0) -> RankCorrelation:
    """The mean over targets of Spearman's rho within each target's pairs (does the more similar source help more,
    for one target?), with the same cluster bootstrap: whole targets resampled with replacement."""
    return _over_targets(pairs, _mean_within_rho, n_resamples, seed)


def _pooled_rho(groups: Sequence[pd.DataFrame]) -> float:
    pooled = pd.concat(groups)
    if pooled["similarity"].nunique() < 2 or pooled["delta"].nunique() < 2:
        return float("nan")
    return float(scipy_stats.spearmanr(pooled["similarity"], pooled["delta"]).statistic)


def _mean_within_rho(groups: Sequence[pd.DataFrame]) -> float:
    rhos = [scipy_stats.spearmanr(group["similarity"], group["delta"]).statistic for group in groups
            if group["similarity"].nunique() > 1 and group["delta"].nunique() > 1]
    return float(np.mean(rhos)) if rhos else float("nan")


def _over_targets(pairs: pd.DataFrame, statistic: Callable[[Sequence[pd.DataFrame]], float], n_resamples: int,
                  seed: int) -> RankCorrelation:
    if len(pairs) < 3 or pairs["target"].nunique() < 2:
        raise ValueError(f"a rank correlation over targets needs ≥ 3 pairs from ≥ 2 targets; got {len(pairs)} pairs "
                         f"from {pairs['target'].nunique()} target(s)")
    groups = [group for _, group in pairs.groupby("target")]
    rng = np.random.default_rng(seed)
    draws = [statistic([groups[i] for i in rng.integers(0, len(groups), len(groups))]) for _ in range(n_resamples)]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return RankCorrelation(statistic(groups), float(low), float(high), len(pairs), len(groups))


@dataclass(frozen=True)
class SourceHelpReport:
    """What notebook 07 shows for a run with `source_help_runs`: the pairs, both correlations, figure and reading."""

    pairs: pd.DataFrame
    pooled: RankCorrelation
    within: RankCorrelation
    figure: object
    reading: str


def source_help_report(config: Config, *, n_resamples: int = 2000) -> Optional[SourceHelpReport]:
    """The similarity-against-help step over this run and the runs its `study.few_shot.source_help_runs` names
    (each must have run its few-shot study): written under studies/source_help/ and figures/, recorded in
    metrics.json. None for a run without `source_help_runs`."""
    params = few_shot_params(config)
    if not params.source_help_runs:
        return None
    configs = [load_config(path) for path in params.source_help_runs] + [config]
    named = [c.target_domain for c in configs]
    if len(set(named)) != len(named):
        raise ValueError(f"study.few_shot.source_help_runs: each run must have its own target; targets {named}")
    at = k_label(params.k_values[0])
    pairs = similarity_and_help(configs, at)
    pooled = spearman_over_targets(pairs, n_resamples=n_resamples, seed=config.seed)
    within = within_target_spearman(pairs, n_resamples=n_resamples, seed=config.seed)
    folder = runs.run_folder(config).study("source_help")
    correlations = pd.DataFrame([{"correlation": name, **asdict(value)}
                                 for name, value in (("pooled", pooled), ("within_target_mean", within))])
    atomic_write_text(folder / "pairs.csv", pairs.to_csv(index=False))
    atomic_write_text(folder / "correlation.csv", correlations.to_csv(index=False))
    figure = plots.plot_similarity_vs_help(pairs, path=runs.run_folder(config).figure("source_help"))
    reading = _reading(pairs, pooled, within, at)
    table = _table(pairs)
    atomic_write_text(folder / "source_help.md", table + "\n\n" + reading + "\n")
    pipeline.update_study(config, "source_help", {
        "k_label": at, "runs": [c.run_name for c in configs], "pairs": pairs.to_dict("records"),
        "pooled": asdict(pooled), "within_target_mean": asdict(within), "table_markdown": table, "reading": reading})
    return SourceHelpReport(pairs, pooled, within, figure, reading)


def _table(pairs: pd.DataFrame) -> str:
    lines = ["| target | source | similarity | Δ vs target-only | 95% interval | p_holm (its run) |",
             "|---|---|---|---|---|---|"]
    for row in pairs.sort_values(["target", "similarity"], ascending=[True, False]).itertuples():
        lines.append(f"| {row.target} | {row.source} | {row.similarity:.3f} | {row.delta:+.3f} | "
                     f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}] | {row.p_holm:.3f} |")
    return "\n".join(lines)


def _reading(pairs: pd.DataFrame, pooled: RankCorrelation, within: RankCorrelation, at: str) -> str:
    def said(value: RankCorrelation) -> str:
        verdict = ("positive" if value.ci_low > 0 else "negative" if value.ci_high < 0 else
                   "cannot tell its sign at this size")
        return f"{value.rho:+.2f} [{value.ci_low:+.2f}, {value.ci_high:+.2f}] ({verdict})"

    helped = pairs[(pairs["p_holm"] < 0.05) & (pairs["delta"] > 0)]
    hurt = pairs[(pairs["p_holm"] < 0.05) & (pairs["delta"] < 0)]
    return (f"{len(pairs)} (target, source) pairs at k = {at} from {pooled.targets} targets: {len(helped)} sources "
            f"help their target and {len(hurt)} hurt it (Holm within each run), the rest cannot be told from "
            f"target-only. Spearman's rho of the source's similarity to the target against the Δ it brings: pooled "
            f"over the pairs {said(pooled)}; the mean of the per-target correlations, the practitioner's question "
            f"(for one target, do the more similar sources help more?), {said(within)}. Intervals are 95% cluster "
            f"bootstraps over the {pooled.targets} targets, so with this few targets they are wide.")
