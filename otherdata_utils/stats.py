"""Paired inference for studies: paired t over matched replicates, exact McNemar, a two-level bootstrap and a
variance-sum interval over replicates and test rows, Holm adjustment, minimum detectable effects, equivalence by
TOST and verdicts in words.

Hands dataclass results and one comparison table (`compare_paired`, one row per arm) to the studies engine.
Convention everywhere: `a` is the reference, `b` the arm, and every difference is arm minus reference (b - a).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

# Differences of accuracies read from floats (0.83 - 0.80 vs 0.84 - 0.81) differ by ~1e-17 where they are equal;
# below this spread the differences count as constant.
_CONSTANT_ATOL = 1e-12


@dataclass
class PairedT:
    """Paired t test of matched replicates; `delta` is mean(b - a), arm minus reference."""

    n: int  # matched replicates
    mean_a: float
    mean_b: float
    delta: float
    sd_diff: float  # sample sd (ddof=1) of the per-replicate differences
    t: float
    df: int
    p: float  # two-sided; nan where no test is possible (see `note`)
    ci_low: float  # t interval of the mean difference, not clipped
    ci_high: float
    confidence: float
    note: str = ""  # why p is nan or set by hand; empty for an ordinary test


@dataclass
class McNemar:
    """Exact McNemar test of two models' per-row correctness on the same test rows."""

    n_rows: int
    accuracy_a: float
    accuracy_b: float
    delta: float  # accuracy_b - accuracy_a = (c - b) / n_rows
    b: int  # rows only the reference (a) gets right
    c: int  # rows only the arm (b) gets right
    p: float  # exact two-sided binomial p of b among b + c discordant rows; 1 when there are none
    note: str = ""


@dataclass
class Bootstrap:
    """Percentile bootstrap interval of the accuracy difference (arm minus reference)."""

    delta: float  # mean over replicates of each replicate's accuracy difference
    ci_low: float
    ci_high: float
    confidence: float
    covers: str  # sources of variation the interval covers: "test rows", "replicates", "replicates + test rows"
    n_replicates: int
    n_rows: int  # test rows over all replicates
    n_resamples: int
    seed: int


def paired_t(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedT:
    """Paired t test of arm `b` against reference `a`, matched by position (same split seed and training seed).

    Fewer than two pairs give p = nan; differences that are all equal give p = 1 when they are zero and p = nan
    otherwise (no spread to judge a shift against); `note` says which.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired_t needs two flat vectors of matched replicates; got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"paired_t got non-finite values (a={x.tolist()}, b={y.tolist()}): drop failed replicates")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = int(x.size)
    nan = math.nan
    if n == 0:
        return PairedT(n=0, mean_a=nan, mean_b=nan, delta=nan, sd_diff=nan, t=nan, df=0, p=nan, ci_low=nan,
                       ci_high=nan, confidence=confidence, note="no matched replicates")
    diff = y - x
    delta = float(diff.mean())
    base = dict(n=n, mean_a=float(x.mean()), mean_b=float(y.mean()), delta=delta, confidence=confidence)
    if n == 1:
        return PairedT(**base, sd_diff=nan, t=nan, df=0, p=nan, ci_low=nan, ci_high=nan,
                       note="one replicate: no spread to test against")
    if np.ptp(diff) <= _CONSTANT_ATOL:
        if abs(delta) <= _CONSTANT_ATOL:
            return PairedT(**base, sd_diff=0.0, t=nan, df=n - 1, p=1.0, ci_low=delta, ci_high=delta,
                           note="identical on every replicate")
        return PairedT(**base, sd_diff=0.0, t=math.copysign(math.inf, delta), df=n - 1, p=nan, ci_low=delta,
                       ci_high=delta, note="the same difference on every replicate: no spread to judge it against")
    test = stats.ttest_rel(y, x)
    sd_diff = float(diff.std(ddof=1))
    half_width = float(stats.t.ppf((1 + confidence) / 2, df=n - 1)) * sd_diff / math.sqrt(n)
    return PairedT(**base, sd_diff=sd_diff, t=float(test.statistic), df=n - 1, p=float(test.pvalue),
                   ci_low=delta - half_width, ci_high=delta + half_width)


def _correctness(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a flat, non-empty vector of per-row correctness; got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only True/False (or 1/0) per test row; got {np.unique(array)[:5]}")
    return array.astype(bool)


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemar:
    """Exact McNemar test: were reference `a` and arm `b` right on different numbers of the same test rows?"""
    x, y = _correctness(correct_a, "correct_a"), _correctness(correct_b, "correct_b")
    if x.shape != y.shape:
        raise ValueError(f"correct_a and correct_b must cover the same test rows; got {x.size} and {y.size} rows")
    b, c = int((x & ~y).sum()), int((~x & y).sum())
    n_rows = int(x.size)
    if b + c == 0:
        p, note = 1.0, "all rows concordant"
    else:
        p, note = float(stats.binomtest(b, b + c, 0.5).pvalue), ""
    return McNemar(n_rows=n_rows, accuracy_a=float(x.mean()), accuracy_b=float(y.mean()), delta=(c - b) / n_rows,
                   b=b, c=c, p=p, note=note)


def _replicates(correct_a: Any, correct_b: Any, groups: Optional[Sequence[Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-replicate (correct_a, correct_b) pairs from a flat vector (+ groups), a 2-D array or a list of vectors."""
    if groups is not None:
        x, y = _correctness(correct_a, "correct_a"), _correctness(correct_b, "correct_b")
        labels = np.asarray(groups)
        if not x.shape == y.shape == labels.shape:
            raise ValueError(f"correct_a, correct_b and groups must have one entry per row; got {x.size}, {y.size} "
                             f"and {labels.size}")
        return [(x[labels == g], y[labels == g]) for g in pd.unique(labels)]
    nested = isinstance(correct_a, (list, tuple)) and len(correct_a) > 0 and np.ndim(correct_a[0]) == 1
    if nested or np.ndim(correct_a) == 2:
        if len(correct_a) != len(correct_b):
            raise ValueError(f"correct_a has {len(correct_a)} replicates and correct_b {len(correct_b)}")
        pairs = [(_correctness(x, f"correct_a[{i}]"), _correctness(y, f"correct_b[{i}]"))
                 for i, (x, y) in enumerate(zip(correct_a, correct_b))]
    else:
        pairs = [(_correctness(correct_a, "correct_a"), _correctness(correct_b, "correct_b"))]
    for i, (x, y) in enumerate(pairs):
        if x.shape != y.shape:
            raise ValueError(f"replicate {i}: correct_a has {x.size} rows and correct_b {y.size}; pair the same rows")
    return pairs


def paired_bootstrap(correct_a: Any, correct_b: Any, groups: Optional[Sequence[Any]] = None, *,
                     n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95,
                     resample_rows: bool = True) -> Bootstrap:
    """Percentile interval of the accuracy difference (b - a) from per-row correctness on the same rows.

    Replicates come as a 2-D array (replicates x rows), a list of vectors (sizes may differ) or a flat vector with
    `groups` naming each row's replicate; one flat vector is one replicate. Each resample draws replicates with
    replacement, then test rows with replacement within each drawn replicate, pairing a and b on the same rows, so
    the interval covers both sources. Where replicates have different test splits the between-replicate spread
    already holds some test-row noise, which makes the interval a little conservative. `resample_rows=False`
    resamples replicates only.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    pairs = _replicates(correct_a, correct_b, groups)
    n_replicates = len(pairs)
    if n_replicates == 1 and not resample_rows:
        raise ValueError("resample_rows=False with one replicate leaves nothing to resample")
    rows = np.array([x.size for x, _ in pairs])
    arm_only = np.array([int((~x & y).sum()) for x, y in pairs])
    reference_only = np.array([int((x & ~y).sum()) for x, y in pairs])
    per_replicate = (arm_only - reference_only) / rows
    rng = np.random.default_rng(seed)
    if n_replicates > 1:
        picks = rng.integers(n_replicates, size=(n_resamples, n_replicates))
    else:
        picks = np.zeros((n_resamples, 1), dtype=int)
    if resample_rows:
        # A resample's difference depends only on how many drawn rows are arm-only and reference-only right, and
        # resampling m rows with replacement draws those counts from a multinomial of the replicate's proportions.
        m = rows[picks]
        shares = np.stack([arm_only, reference_only, rows - arm_only - reference_only], axis=-1) / rows[:, None]
        counts = rng.multinomial(m, shares[picks])
        resampled = ((counts[..., 0] - counts[..., 1]) / m).mean(axis=1)
    else:
        resampled = per_replicate[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    covers = ("replicates + test rows" if n_replicates > 1 else "test rows") if resample_rows else "replicates"
    return Bootstrap(delta=float(per_replicate.mean()), ci_low=float(low), ci_high=float(high),
                     confidence=confidence, covers=covers, n_replicates=n_replicates, n_rows=int(rows.sum()),
                     n_resamples=n_resamples, seed=seed)


@dataclass
class VarianceSum:
    """t interval of the accuracy difference (arm minus reference) over replicates and test rows."""

    delta: float  # mean over replicates of each replicate's accuracy difference
    ci_low: float
    ci_high: float
    confidence: float
    covers: str  # "replicates + test rows", or "test rows" with one replicate
    n_replicates: int
    n_rows: int  # test rows over all replicates
    se_replicates: float  # sd of the per-replicate differences / sqrt(replicates); 0 with one replicate
    se_rows: float  # the test-row standard error of the mean difference (0 where each replicate drew its rows)


def paired_variance_sum(correct_a: Any, correct_b: Any, groups: Optional[Sequence[Any]] = None, *,
                        shared_rows: bool = True, confidence: float = 0.95) -> VarianceSum:
    """Interval of the accuracy difference (b - a) over replicates and test rows, from per-row correctness.

    delta ± t(n - 1) · sqrt(s² / n + v): s² the variance of the n per-replicate differences, v the test-row variance
    of their mean. With `shared_rows` (every replicate scored on the same test rows, in the same order) the replicates
    cannot average the test sample's noise away: v = var over rows of each row's mean difference across replicates,
    over the row count (rows all replicates find hard count once, not n times). Without, each replicate drew its own
    test rows, so s² already holds their noise and v = 0. The interval is never narrower than the paired t interval
    over replicates alone, which the percentile bootstrap over 3 to 10 replicates can be (it reads the replicate
    spread with divisor n and normal tails). One replicate: a normal interval of the test-row noise alone.
    Replicates come as in `paired_bootstrap`.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    pairs = _replicates(correct_a, correct_b, groups)
    n = len(pairs)
    differences = [y.astype(float) - x.astype(float) for x, y in pairs]
    per_replicate = np.array([d.mean() for d in differences])
    if shared_rows and len({d.size for d in differences}) > 1:
        raise ValueError("shared_rows: the replicates hold different numbers of test rows "
                         f"({sorted({d.size for d in differences})}); pass shared_rows=False")
    if shared_rows or n == 1:
        row_means = np.mean(differences, axis=0)
        row_variance = float(row_means.var(ddof=1) / row_means.size) if row_means.size > 1 else 0.0
    else:
        row_variance = 0.0
    between = float(per_replicate.var(ddof=1)) / n if n > 1 else 0.0
    quantile = stats.t.ppf((1 + confidence) / 2, n - 1) if n > 1 else stats.norm.ppf((1 + confidence) / 2)
    half_width = float(quantile) * math.sqrt(between + row_variance)
    delta = float(per_replicate.mean())
    return VarianceSum(delta=delta, ci_low=delta - half_width, ci_high=delta + half_width, confidence=confidence,
                       covers="replicates + test rows" if n > 1 else "test rows", n_replicates=n,
                       n_rows=int(sum(d.size for d in differences)), se_replicates=math.sqrt(between),
                       se_rows=math.sqrt(row_variance))


@dataclass
class Equivalence:
    """Two one-sided tests (TOST) of |arm - reference| < margin, read from the (1 - 2 alpha) bootstrap interval.

    Equivalence at level alpha holds when that interval lies inside (-margin, +margin): each one-sided test rejects
    its bound at alpha. `verdict` says it in words; "not shown" is not "different".
    """

    delta: float
    ci_low: float  # the (1 - 2 alpha) interval, e.g. 90% for alpha = 0.05
    ci_high: float
    margin: float
    alpha: float
    covers: str
    equivalent: bool
    verdict: str
    p: float = math.nan  # the larger one-sided p of the paired-t TOST; nan for the interval-only TOSTs


def _check_tost(margin: float, alpha: float) -> None:
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be between 0 and 0.5 for a TOST, got {alpha}")


def _equivalence(delta: float, low: float, high: float, margin: float, alpha: float, covers: str, *,
                 equivalent: bool, p: Optional[float] = None) -> Equivalence:
    """An `Equivalence` with its verdict in words, from the (1 - 2 alpha) interval [low, high]."""
    span = f"{1 - 2 * alpha:.0%} CI [{low:+.3f}, {high:+.3f}]"
    verdict_text = (f"equivalent within +-{margin:.3f} ({span})" if equivalent
                    else f"equivalence not shown at +-{margin:.3f} ({span})")
    extra = {} if p is None else {"p": p}
    return Equivalence(delta=delta, ci_low=low, ci_high=high, margin=margin, alpha=alpha, covers=covers,
                       equivalent=bool(equivalent), verdict=verdict_text, **extra)


def equivalence_bootstrap(correct_a: Any, correct_b: Any, margin: float, groups: Optional[Sequence[Any]] = None, *,
                          alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0) -> Equivalence:
    """TOST of the accuracy difference (b - a) within +-`margin`, on the two-level bootstrap of `paired_bootstrap`.

    The (1 - 2 alpha) percentile interval covers replicates and test rows as that function does; equivalence is
    claimed only when the whole interval lies strictly inside the margin.
    """
    _check_tost(margin, alpha)
    interval = paired_bootstrap(correct_a, correct_b, groups, n_resamples=n_resamples, seed=seed,
                                confidence=1 - 2 * alpha)
    return _equivalence(interval.delta, interval.ci_low, interval.ci_high, margin, alpha, interval.covers,
                        equivalent=-margin < interval.ci_low and interval.ci_high < margin)


def equivalence_paired_t(a: Sequence[float], b: Sequence[float], margin: float = 0.02, *,
                         alpha: float = 0.05) -> Equivalence:
    """TOST of the mean paired difference (b - a) within +-`margin`, on the replicates alone (paired t).

    For metrics without per-row correctness (macro-F1, a balanced score, seconds). Equivalent at level `alpha` when
    both one-sided t tests reject, which is when the (1 - 2 alpha) t interval lies inside (-margin, +margin);
    `p` is the larger one-sided p, as statsmodels' `ttost_paired` reports it.
    """
    _check_tost(margin, alpha)
    test = paired_t(a, b, confidence=1 - 2 * alpha)
    if test.n < 2 or not math.isfinite(test.sd_diff):
        return Equivalence(delta=test.delta, ci_low=math.nan, ci_high=math.nan, margin=margin, alpha=alpha,
                           covers="replicates", equivalent=False,
                           verdict=f"equivalence not shown at +-{margin:.3f} ({test.note or 'no test'})")
    if test.sd_diff == 0:
        p = 0.0 if abs(test.delta) < margin else 1.0
    else:
        standard_error = test.sd_diff / math.sqrt(test.n)
        p_lower = float(stats.t.sf((test.delta + margin) / standard_error, test.df))
        p_upper = float(stats.t.cdf((test.delta - margin) / standard_error, test.df))
        p = max(p_lower, p_upper)
    return _equivalence(test.delta, test.ci_low, test.ci_high, margin, alpha, "replicates", equivalent=p < alpha, p=p)


def equivalence_variance_sum(correct_a: Any, correct_b: Any, margin: float = 0.02,
                             groups: Optional[Sequence[Any]] = None, *, shared_rows: bool = True,
                             alpha: float = 0.05) -> Equivalence:
    """TOST of the accuracy difference (b - a) within +-`margin` on the (1 - 2 alpha) interval of
    `paired_variance_sum`, over replicates and test rows: equivalent only when that interval lies inside."""
    _check_tost(margin, alpha)
    interval = paired_variance_sum(correct_a, correct_b, groups, shared_rows=shared_rows, confidence=1 - 2 * alpha)
    return _equivalence(interval.delta, interval.ci_low, interval.ci_high, margin, alpha, interval.covers,
                        equivalent=-margin < interval.ci_low and interval.ci_high < margin)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in input order; nan stays nan and does not count as a test."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"holm needs a flat vector of p-values; got shape {p.shape}")
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return adjusted
    if ((p[tested] < 0) | (p[tested] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p.tolist()}")
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _paired_power(effect: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t test at a standardized effect; both tails, as statsmodels."""
    df = n - 1
    crit = stats.t.isf(alpha / 2, df)
    noncentrality = effect * math.sqrt(n)
    # The lower tail as sf at -noncentrality: the same value, but nct.cdf returns nan far out in that tail.
    return float(stats.nct.sf(crit, df, noncentrality) + stats.nct.sf(crit, df, -noncentrality))


def minimum_detectable_effect(sd_diff: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true mean difference a two-sided paired t test over `n` replicates detects with `power`.

    Solved on the noncentral t for the standardized effect, then scaled by `sd_diff`. nan for n < 2 or an unknown
    sd; 0 when the differences have no spread.
    """
    if not (0 < alpha < 1 and alpha < power < 1):
        raise ValueError(f"need 0 < alpha < power < 1; got alpha={alpha}, power={power}")
    if n < 2 or sd_diff is None or not math.isfinite(sd_diff):
        return math.nan
    if sd_diff == 0:
        return 0.0
    upper = 1.0
    while _paired_power(upper, n, alpha) < power:
        upper *= 2
    effect = optimize.brentq(lambda d: _paired_power(d, n, alpha) - power, 0.0, upper, xtol=1e-10)
    return float(effect * sd_diff)


def mde_two_proportions(p: float, n_rows: int, alpha: float = 0.05, power: float = 0.8,
                        discordant: Optional[float] = None) -> float:
    """Smallest accuracy difference a McNemar-style comparison on `n_rows` shared test rows detects with `power`.

    Connor's (1987) normal approximation for paired proportions, solved for the difference delta:
    sqrt(n) * delta = z(1 - alpha/2) * sqrt(psi) + z(power) * sqrt(psi - delta^2), where psi is the share of rows
    the two models disagree on. Without `discordant`, psi = 2 p (1 - p): both models near accuracy `p` with
    independent errors; models that fail on the same hard rows disagree less and detect smaller differences.
    """
    if not (0 < alpha < 1 and alpha < power < 1):
        raise ValueError(f"need 0 < alpha < power < 1; got alpha={alpha}, power={power}")
    if not 0 <= p <= 1:
        raise ValueError(f"p is an accuracy in [0, 1], got {p}")
    psi = 2 * p * (1 - p) if discordant is None else discordant
    if not 0 <= psi <= 1:
        raise ValueError(f"discordant is a share of rows in [0, 1], got {psi}")
    if n_rows < 1:
        return math.nan
    if psi == 0:
        return 0.0
    z_alpha, z_power = stats.norm.isf(alpha / 2), stats.norm.ppf(power)
    root = math.sqrt(psi)

    def gap(delta: float) -> float:
        return math.sqrt(n_rows) * delta - z_alpha * root - z_power * math.sqrt(max(psi - delta * delta, 0.0))

    if gap(root) < 0:
        return math.nan  # no difference the models can show on these rows (at most psi) is detectable
    return float(optimize.brentq(gap, 0.0, root, xtol=1e-12))


def holm_mde_alpha(alpha: float, tests: int) -> float:
    """The level the MDE of a Holm-adjusted comparison is computed at: alpha / m, m the tests in its family.

    That is the level Holm's first (strictest) step applies; later steps apply alpha / (m - 1), ..., alpha, so the
    MDE at alpha / m is conservative for every comparison but the one with the smallest p. One rule for every row
    keeps the MDE independent of the other comparisons' p-values.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return alpha / max(int(tests), 1)


def _p_text(p: float) -> str:
    return "p_adj<0.001" if p < 0.001 else f"p_adj={p:.3f}"


def verdict(delta: float, ci: tuple[float, float], p_adjusted: float, mde: float, alpha: float = 0.05,
            reason: str = "", directions: tuple[str, str] = ("helps", "hurts")) -> str:
    """The comparison in words for a table, judged on the adjusted p (never the raw one) and the interval `ci`.

    "helps (+0.042, p_adj=0.003)" or "hurts (-0.031, p_adj=0.012)" where the adjusted p passes and the interval
    agrees; "likely helps, but this size cannot confirm it (p_adj=0.073)" where the unadjusted interval excludes 0
    and the adjusted p does not pass; else "cannot tell: differences up to 0.061 not excluded (p_adj=0.41)", the
    bound being the largest |difference| inside the interval (the MDE when there is no interval). Where the adjusted
    p passes but the interval (one that also covers test rows) holds 0, it cannot tell either, and says why.
    Without a test, "cannot tell: <reason>". `directions` names a positive and a negative difference where the
    metric is not a score (seconds: "slower", "faster").
    """
    if p_adjusted is None or not math.isfinite(p_adjusted) or not math.isfinite(delta):
        return f"cannot tell: {reason or 'no test'}"
    low, high = ci
    has_interval = math.isfinite(low) and math.isfinite(high)
    excludes_zero = has_interval and (low > 0 or high < 0)
    direction = directions[0] if delta > 0 else directions[1]
    if p_adjusted < alpha and delta != 0:
        if not has_interval or excludes_zero:
            return f"{direction} ({delta:+.3f}, {_p_text(p_adjusted)})"
        return (f"cannot tell: {_p_text(p_adjusted)} over replicates, but the interval [{low:+.3f}, {high:+.3f}], "
                "which also covers test rows, holds 0")
    if excludes_zero and delta != 0:
        return f"likely {direction}, but this size cannot confirm it ({_p_text(p_adjusted)})"
    bound = max(abs(low), abs(high)) if has_interval else mde
    if not math.isfinite(bound):
        return f"cannot tell ({_p_text(p_adjusted)})"
    return f"cannot tell: differences up to {bound:.3f} not excluded ({_p_text(p_adjusted)})"


EQUIVALENCE_MARGIN = 0.02  # TOST margin of every comparisons table: +-2 points of accuracy (or of the metric)
ANCHOR_ARMS = ("probe", "setfit")  # arms that are reference points, not other data: a Holm family of their own
FAMILIES = ("other data", "anchors")

_COMPARE_COLUMNS = ["reference", "family", "n_replicates", "mean_reference", "mean_arm", "delta", "ci_low",
                    "ci_high", "interval_covers", "p", "p_holm", "mde", "mde_alpha", "margin", "tost_low",
                    "tost_high", "equivalence", "verdict"]


def compare_paired(frame: pd.DataFrame, reference: str, arm_column: str, metric: str,
                   replicate_columns: Sequence[str], within: Sequence[str] = (), *, correct: Optional[str] = None,
                   shared_rows: bool = True,
                   anchors: Sequence[str] = ANCHOR_ARMS, margin: Optional[float] = EQUIVALENCE_MARGIN,
                   confidence: float = 0.95, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Every arm against `reference`, paired on `replicate_columns` (e.g. split seed and training seed).

    One row per (value of `within`, arm other than the reference):
    - `delta` (arm minus reference, the mean over matched replicates) and its 95% interval: with `correct` (a
      column holding each cell's per-row correctness, a sequence of bools on the rows `metric` is measured on) the
      t interval on the variance sum over replicates and test rows (`paired_variance_sum`; `shared_rows`: every
      cell scored on the same test rows), else the paired t interval over replicates; `interval_covers` says which;
    - `p`: the paired t test over replicates; `p_holm`: Holm within the row's `family`, "anchors" for the arms in
      `anchors` (reference points such as a frozen probe or SetFit), "other data" for the others, each adjusted
      over the whole table apart from the other;
    - `mde`: the smallest true Δ the paired t test finds with `power` at `mde_alpha` = alpha / m, m the tests of
      the family (`holm_mde_alpha`), from the observed sd of the differences;
    - the TOST at +-`margin`: its (1 - 2 alpha) interval (`tost_low`, `tost_high`; of the same kind as the 95%
      one) and `equivalence`, "equivalent within ±margin" or "equivalence not shown" (margin None: no TOST, for
      a metric no common margin fits, such as seconds);
    - the `verdict` in words (`verdict`).
    Replicates missing from either arm, or with a nan metric, are left out of that pair.
    """
    within, keys = list(within), list(replicate_columns)
    missing = [c for c in [arm_column, metric, *keys, *within, *([correct] if correct else [])]
               if c not in frame.columns]
    if missing:
        raise KeyError(f"compare_paired: columns {missing} not in the frame (it has {list(frame.columns)})")
    if not keys:
        raise ValueError("compare_paired needs replicate_columns to pair arms on (e.g. split seed, training seed)")
    if not (frame[arm_column] == reference).any():
        raise ValueError(f"reference arm {reference!r} not in column {arm_column!r} "
                         f"(arms: {sorted(map(str, frame[arm_column].unique()))})")
    duplicated = frame.duplicated([*within, arm_column, *keys], keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, [*within, arm_column, *keys]].iloc[0].to_dict()
        raise ValueError(f"compare_paired: several rows for one arm and replicate, e.g. {example}; "
                         f"add the column that tells them apart to replicate_columns or within")
    measured = [metric, *([correct] if correct else [])]
    rows = []
    groups = frame.groupby(within, sort=False, dropna=False) if within else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        baseline = group.loc[group[arm_column] == reference, [*keys, *measured]]
        for arm, scores in group.groupby(arm_column, sort=False):
            if arm == reference:
                continue
            pairs = baseline.merge(scores[[*keys, *measured]], on=keys, suffixes=("_reference", "_arm"))
            pairs = pairs.dropna(subset=[f"{metric}_reference", f"{metric}_arm"])
            test = paired_t(pairs[f"{metric}_reference"], pairs[f"{metric}_arm"], confidence)
            row = {**dict(zip(within, key)), arm_column: arm, "reference": reference,
                   "family": FAMILIES[1] if arm in anchors else FAMILIES[0], "n_replicates": test.n,
                   "mean_reference": test.mean_a, "mean_arm": test.mean_b, "delta": test.delta,
                   "ci_low": test.ci_low, "ci_high": test.ci_high, "interval_covers": "replicates", "p": test.p,
                   "sd_diff": test.sd_diff, "margin": margin, "note": test.note}
            if correct and test.n > 0:
                a, b = list(pairs[f"{correct}_reference"]), list(pairs[f"{correct}_arm"])
                interval = paired_variance_sum(a, b, shared_rows=shared_rows, confidence=confidence)
                row.update(delta=interval.delta, ci_low=interval.ci_low, ci_high=interval.ci_high,
                           interval_covers=interval.covers)
                tost = (None if margin is None else
                        equivalence_variance_sum(a, b, margin, shared_rows=shared_rows, alpha=alpha))
            else:
                tost = (None if margin is None else
                        equivalence_paired_t(pairs[f"{metric}_reference"], pairs[f"{metric}_arm"], margin,
                                             alpha=alpha))
            if tost is not None:
                row.update(tost_low=tost.ci_low, tost_high=tost.ci_high,
                           equivalence=(f"equivalent within ±{margin:g}" if tost.equivalent
                                        else "equivalence not shown"))
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*within, arm_column, *_COMPARE_COLUMNS, "sd_diff", "note"])
    table["p_holm"] = np.nan
    table["mde_alpha"] = np.nan
    for family in FAMILIES:
        members = table["family"] == family
        p = table.loc[members, "p"].to_numpy(dtype=float)
        table.loc[members, "p_holm"] = holm(p)
        table.loc[members, "mde_alpha"] = holm_mde_alpha(alpha, int(np.isfinite(p).sum()))
    table["mde"] = [minimum_detectable_effect(r.sd_diff, r.n_replicates, r.mde_alpha, power)
                    for r in table.itertuples()]
    table["verdict"] = [verdict(r.delta, (r.ci_low, r.ci_high), r.p_holm, r.mde, alpha, r.note)
                        for r in table.itertuples()]
    return table.drop(columns=["sd_diff", "note"])
