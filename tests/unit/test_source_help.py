"""Spearman over (target, source) pairs with a cluster bootstrap over targets: rho equals scipy's, the interval
resamples whole targets (so it is wider than one over independent pairs when a target's pairs move together), and
too few pairs are refused."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from otherdata_utils.studies.source_help import spearman_over_targets


def _pairs(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for target in range(4):
        shift = rng.normal(scale=0.05)  # a target's own offset: its pairs move together
        for source in range(6):
            similarity = rng.uniform(0.2, 0.9)
            rows.append({"target": f"t{target}", "source": f"s{source}", "similarity": similarity,
                         "delta": 0.1 * similarity + shift + rng.normal(scale=0.01)})
    return pd.DataFrame(rows)


def test_rho_is_scipys_and_the_interval_resamples_targets():
    pairs = _pairs()
    result = spearman_over_targets(pairs, n_resamples=500)
    assert result.rho == pytest.approx(stats.spearmanr(pairs["similarity"], pairs["delta"]).statistic)
    assert (result.pairs, result.targets) == (24, 4) and result.ci_low <= result.rho <= result.ci_high
    assert spearman_over_targets(pairs, n_resamples=500) == result  # seeded
    # pair-by-pair resampling ignores that a target's pairs share its offset: its interval is narrower
    rng = np.random.default_rng(0)
    naive = [stats.spearmanr(*pairs.iloc[rng.integers(0, 24, 24)][["similarity", "delta"]].T.values).statistic
             for _ in range(500)]
    assert result.ci_high - result.ci_low > np.subtract(*np.percentile(naive, [97.5, 2.5]))


def test_too_few_pairs_or_one_target_are_refused():
    with pytest.raises(ValueError, match="≥ 2 targets"):
        spearman_over_targets(_pairs()[lambda frame: frame["target"] == "t0"])
