"""Paired inference: paired t, exact McNemar, two-level bootstrap, Holm, minimum detectable effects, verdicts and the
comparison table, each pinned against scipy or statsmodels on fixed vectors."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from otherdata_utils import stats

# Five replicates (split seed x training seed) of a reference and an arm: the arm wins on every replicate by a
# little, while the replicates themselves spread much more than the gap.
REFERENCE = [0.80, 0.82, 0.79, 0.85, 0.81]
ARM = [0.83, 0.84, 0.80, 0.88, 0.82]


def _correctness(n_rows: int, accuracy: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n_rows) < accuracy


# --- paired t ------------------------------------------------------------------------------------------------------

def test_paired_t_matches_scipy_ttest_rel_and_its_interval():
    result = stats.paired_t(REFERENCE, ARM)
    scipy_result = scipy_stats.ttest_rel(ARM, REFERENCE)
    interval = scipy_result.confidence_interval(0.95)
    assert result.n == 5 and result.df == 4
    assert result.delta == pytest.approx(0.02)
    assert result.sd_diff == pytest.approx(0.01)
    assert result.t == pytest.approx(scipy_result.statistic)
    assert result.p == pytest.approx(scipy_result.pvalue)
    assert result.p == pytest.approx(0.01106, abs=1e-5)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high))
    assert result.note == ""


def test_paired_t_sees_a_consistent_gain_that_welch_over_seeds_misses():
    paired = stats.paired_t(REFERENCE, ARM).p
    welch = scipy_stats.ttest_ind(ARM, REFERENCE, equal_var=False).pvalue
    assert paired < 0.05 < welch
    assert welch == pytest.approx(0.270, abs=0.001)
    assert paired < welch / 20


def test_paired_t_difference_is_arm_minus_reference():
    assert stats.paired_t(ARM, REFERENCE).delta == pytest.approx(-0.02)
    assert stats.paired_t(ARM, REFERENCE).ci_high < 0


def test_paired_t_interval_is_not_clipped_at_zero():
    result = stats.paired_t([0.90, 0.95, 0.92], [0.98, 0.90, 0.99], confidence=0.90)
    assert result.ci_low < 0 < result.delta < result.ci_high
    half = scipy_stats.t.ppf(0.95, 2) * result.sd_diff / math.sqrt(3)
    assert result.ci_high - result.delta == pytest.approx(half)


def test_paired_t_with_one_replicate_reports_the_difference_but_no_p():
    result = stats.paired_t([0.8], [0.9])
    assert result.n == 1 and result.delta == pytest.approx(0.1)
    assert math.isnan(result.p) and math.isnan(result.ci_low)
    assert "one replicate" in result.note


def test_paired_t_of_identical_arms_gives_p_one_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stats.paired_t(REFERENCE, list(REFERENCE))
    assert result.p == 1.0 and result.delta == 0.0 and result.sd_diff == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert "identical" in result.note


def test_paired_t_of_a_constant_shift_leaves_p_undefined_with_a_reason():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stats.paired_t([0.80, 0.81, 0.82], [0.83, 0.84, 0.85])
    assert math.isnan(result.p) and result.delta == pytest.approx(0.03)
    assert "same difference" in result.note


def test_paired_t_of_no_replicates_does_not_crash():
    result = stats.paired_t([], [])
    assert result.n == 0 and math.isnan(result.delta) and math.isnan(result.p)


def test_paired_t_rejects_unmatched_lengths_and_failed_runs():
    with pytest.raises(ValueError, match="shapes"):
        stats.paired_t([0.8, 0.9], [0.8])
    with pytest.raises(ValueError, match="non-finite"):
        stats.paired_t([0.8, float("nan")], [0.8, 0.9])


# --- McNemar -------------------------------------------------------------------------------------------------------

def test_mcnemar_counts_discordant_rows_and_matches_binomtest_and_statsmodels():
    reference = [1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1]
    arm = [1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1]
    result = stats.mcnemar_exact(reference, arm)
    assert (result.b, result.c, result.n_rows) == (1, 4, 12)
    assert result.delta == pytest.approx(10 / 12 - 7 / 12)
    assert result.p == pytest.approx(scipy_stats.binomtest(1, 5, 0.5).pvalue)
    assert result.p == pytest.approx(sm_mcnemar([[6, 1], [4, 1]], exact=True).pvalue)
    assert result.p == pytest.approx(0.375)


def test_mcnemar_of_all_concordant_rows_gives_p_one():
    rows = [True, False, True, True]
    result = stats.mcnemar_exact(rows, rows)
    assert (result.b, result.c, result.p, result.delta) == (0, 0, 1.0, 0.0)
    assert "concordant" in result.note


def test_mcnemar_rejects_rows_that_are_not_correctness():
    with pytest.raises(ValueError, match="True/False"):
        stats.mcnemar_exact([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="same test rows"):
        stats.mcnemar_exact([0, 1, 1], [0, 1])


# --- bootstrap -----------------------------------------------------------------------------------------------------

def test_bootstrap_is_reproducible_with_a_seed_and_changes_with_another():
    reference, arm = _correctness(400, 0.80, 1), _correctness(400, 0.84, 2)
    first = stats.paired_bootstrap(reference, arm, n_resamples=500, seed=7)
    again = stats.paired_bootstrap(reference, arm, n_resamples=500, seed=7)
    other = stats.paired_bootstrap(reference, arm, n_resamples=500, seed=8)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_bootstrap_over_one_replicate_matches_the_normal_width_of_a_paired_difference():
    reference, arm = _correctness(1000, 0.80, 1), _correctness(1000, 0.84, 2)
    result = stats.paired_bootstrap(reference, arm, n_resamples=4000, seed=0)
    row_difference = arm.astype(float) - reference
    expected_half = 1.96 * row_difference.std() / math.sqrt(row_difference.size)
    assert result.covers == "test rows" and result.n_replicates == 1 and result.n_rows == 1000
    assert result.delta == pytest.approx(row_difference.mean())
    assert (result.ci_high - result.ci_low) / 2 == pytest.approx(expected_half, rel=0.08)


def test_bootstrap_over_replicates_and_rows_is_wider_than_either_level_alone():
    # The arm's gain swings between replicates (+0.01 to +0.09): rows alone understate the uncertainty.
    gains = [0.01, 0.09, 0.03, 0.07, 0.05]
    reference = np.stack([_correctness(300, 0.80, seed) for seed in range(5)])
    arm = np.stack([_correctness(300, 0.80 + gain, 10 + seed) for seed, gain in enumerate(gains)])
    both = stats.paired_bootstrap(reference, arm, n_resamples=2000, seed=0)
    replicates_only = stats.paired_bootstrap(reference, arm, n_resamples=2000, seed=0, resample_rows=False)
    rows_only = stats.paired_bootstrap(reference.ravel(), arm.ravel(), n_resamples=2000, seed=0)
    assert both.covers == "replicates + test rows" and both.n_replicates == 5
    assert replicates_only.covers == "replicates" and rows_only.covers == "test rows"
    assert both.ci_low < both.delta < both.ci_high
    width = both.ci_high - both.ci_low
    assert width > replicates_only.ci_high - replicates_only.ci_low
    assert width > rows_only.ci_high - rows_only.ci_low


def test_bootstrap_reads_replicates_from_a_list_or_from_groups_alike():
    reference = [_correctness(200, 0.8, 1), _correctness(150, 0.8, 2), _correctness(250, 0.8, 3)]
    arm = [_correctness(200, 0.85, 4), _correctness(150, 0.85, 5), _correctness(250, 0.85, 6)]
    groups = np.repeat(["s0", "s1", "s2"], [200, 150, 250])
    from_list = stats.paired_bootstrap(reference, arm, n_resamples=300, seed=3)
    from_groups = stats.paired_bootstrap(np.concatenate(reference), np.concatenate(arm), groups,
                                         n_resamples=300, seed=3)
    assert from_list == from_groups
    per_replicate = [y.mean() - x.mean() for x, y in zip(reference, arm)]
    assert from_list.delta == pytest.approx(np.mean(per_replicate))
    assert from_list.n_rows == 600 and from_list.covers == "replicates + test rows"


# --- Holm ----------------------------------------------------------------------------------------------------------

def test_holm_equals_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005, 0.20, 0.04, 0.7]
    adjusted = stats.holm(p)
    np.testing.assert_allclose(adjusted, multipletests(p, method="holm")[1])
    assert adjusted[3] == pytest.approx(0.035)


def test_holm_keeps_nan_in_place_and_does_not_count_it_as_a_test():
    p = [0.02, float("nan"), 0.01, 0.9, float("nan")]
    adjusted = stats.holm(p)
    assert np.isnan(adjusted[[1, 4]]).all()
    np.testing.assert_allclose(adjusted[[0, 2, 3]], multipletests([0.02, 0.01, 0.9], method="holm")[1])
    assert adjusted[2] == pytest.approx(0.03)


def test_holm_is_monotone_in_the_raw_order_and_capped_at_one():
    p = np.array([0.55, 0.011, 0.012, 0.6, 0.02])
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()
    assert adjusted[1] == adjusted[2] == pytest.approx(0.055)  # 0.012 x 4 < 0.011 x 5: stepped up to stay monotone
    assert adjusted[0] == adjusted[3] == 1.0  # 0.55 x 2 capped
    assert np.isnan(stats.holm([float("nan")])).all() and stats.holm([]).size == 0


# --- minimum detectable effect -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, alpha, power", [(2, 0.05, 0.8), (3, 0.05, 0.8), (4, 0.05, 0.8), (5, 0.05, 0.8),
                                            (10, 0.01, 0.9), (30, 0.05, 0.5), (100, 0.05, 0.8)])
def test_minimum_detectable_effect_matches_statsmodels_ttest_power(n, alpha, power):
    sd_diff = 0.012
    expected = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power) * sd_diff
    assert stats.minimum_detectable_effect(sd_diff, n, alpha, power) == pytest.approx(expected, rel=1e-3)


def test_minimum_detectable_effect_needs_two_replicates_and_is_zero_without_spread():
    assert math.isnan(stats.minimum_detectable_effect(0.01, 1))
    assert math.isnan(stats.minimum_detectable_effect(float("nan"), 5))
    assert stats.minimum_detectable_effect(0.0, 5) == 0.0
    assert stats.minimum_detectable_effect(0.01, 20) < stats.minimum_detectable_effect(0.01, 5)


def test_mde_two_proportions_gives_about_the_stated_power_under_exact_mcnemar():
    n_rows, accuracy = 1000, 0.8
    mde = stats.mde_two_proportions(accuracy, n_rows)
    psi = 2 * accuracy * (1 - accuracy)
    first_order = (scipy_stats.norm.isf(0.025) + scipy_stats.norm.ppf(0.8)) * math.sqrt(psi / n_rows)
    assert mde == pytest.approx(first_order, rel=0.02)
    assert mde == pytest.approx(0.05, abs=0.002)
    # Simulate rows: discordant with probability psi, won by the arm with probability (psi + mde) / (2 psi).
    rng = np.random.default_rng(0)
    discordant = rng.binomial(n_rows, psi, size=2000)
    arm_wins = rng.binomial(discordant, (psi + mde) / (2 * psi))
    rejected = [scipy_stats.binomtest(int(c), int(d), 0.5).pvalue < 0.05 for c, d in zip(arm_wins, discordant)]
    assert np.mean(rejected) == pytest.approx(0.8, abs=0.04)


def test_mde_two_proportions_shrinks_when_models_disagree_on_fewer_rows():
    independent = stats.mde_two_proportions(0.8, 500)
    correlated = stats.mde_two_proportions(0.8, 500, discordant=0.1)
    assert correlated < independent
    assert stats.mde_two_proportions(0.8, 2000) < independent


# --- verdict and the comparison table ------------------------------------------------------------------------------

def test_verdict_reads_helps_hurts_and_cannot_tell():
    assert stats.verdict(0.042, (0.02, 0.06), 0.003, 0.01) == "helps (+0.042, p_adj=0.003)"
    assert stats.verdict(-0.031, (-0.05, -0.01), 0.0004, 0.01) == "hurts (-0.031, p_adj<0.001)"
    assert stats.verdict(0.01, (-0.041, 0.061), 0.41, 0.05) == \
        "cannot tell: differences up to 0.061 not excluded (p_adj=0.410)"


def test_verdict_names_directions_of_a_metric_that_is_not_a_score():
    """Seconds are not better when higher: a PEFT arm 10 s quicker per model reads "faster", not "hurts"."""
    quicker = stats.verdict(-10.1, (-12.0, -8.2), 0.0004, 2.0, directions=("slower", "faster"))
    assert quicker == "faster (-10.100, p_adj<0.001)"
    assert stats.verdict(0.5, (-1.0, 2.0), 0.4, 2.0, directions=("slower", "faster")).startswith("cannot tell")


def test_verdict_judges_on_the_adjusted_p_and_falls_back_to_the_mde():
    # Raw p would be 0.01 and the interval excludes 0, but after Holm across the table p_adj = 0.08: likely, not
    # confirmed, rather than "cannot tell".
    assert stats.verdict(0.02, (0.005, 0.035), 0.08, 0.03) == \
        "likely helps, but this size cannot confirm it (p_adj=0.080)"
    assert stats.verdict(-0.02, (-0.035, -0.005), 0.08, 0.03) == \
        "likely hurts, but this size cannot confirm it (p_adj=0.080)"
    assert stats.verdict(0.02, (-0.005, 0.035), 0.08, 0.03).startswith("cannot tell: differences up to 0.035")
    nan = float("nan")
    assert stats.verdict(0.02, (nan, nan), 0.3, 0.045) == \
        "cannot tell: differences up to 0.045 not excluded (p_adj=0.300)"
    assert stats.verdict(0.1, (nan, nan), nan, nan, reason="one replicate") == "cannot tell: one replicate"


def _study_cells() -> pd.DataFrame:
    """Three arms over 2 split seeds x 3 training seeds at two budgets; rows shuffled so pairing must use keys."""
    rows = []
    noise = np.random.default_rng(0).normal(0, 0.02, size=(2, 6))
    for b, budget in enumerate((100, 400)):
        for r, (split_seed, seed) in enumerate([(s, t) for s in (0, 1) for t in (0, 1, 2)]):
            base = 0.80 + noise[b, r]
            for arm, gain in (("target", 0.0), ("mixed", 0.03 + 0.002 * r), ("other", 0.001 * (-1) ** r)):
                rows.append({"budget": budget, "split_seed": split_seed, "seed": seed, "arm": arm,
                             "accuracy": base + gain})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_compare_paired_pairs_by_replicate_and_applies_holm_across_the_table():
    cells = _study_cells()
    table = stats.compare_paired(cells, "target", "arm", "accuracy", ["split_seed", "seed"], within=["budget"])
    assert len(table) == 4 and set(table["arm"]) == {"mixed", "other"}
    assert list(table.columns) == ["budget", "arm", "reference", "family", "n_replicates", "mean_reference",
                                   "mean_arm", "delta", "ci_low", "ci_high", "interval_covers", "p", "p_holm", "mde",
                                   "mde_alpha", "margin", "tost_low", "tost_high", "equivalence", "verdict"]
    row = table[(table["budget"] == 100) & (table["arm"] == "mixed")].iloc[0]
    ordered = cells.sort_values(["split_seed", "seed"])
    expected = stats.paired_t(ordered.query("budget == 100 and arm == 'target'")["accuracy"].to_numpy(),
                              ordered.query("budget == 100 and arm == 'mixed'")["accuracy"].to_numpy())
    assert row["n_replicates"] == 6 and row["delta"] == pytest.approx(0.035)
    assert row["p"] == pytest.approx(expected.p)
    # four tests in the one family: the MDE at Holm's first-step level 0.05 / 4
    assert row["mde_alpha"] == pytest.approx(0.0125)
    assert row["mde"] == pytest.approx(stats.minimum_detectable_effect(expected.sd_diff, 6, alpha=0.0125))
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p"], method="holm")[1])
    assert (table["interval_covers"] == "replicates").all()
    assert row["verdict"].startswith("helps (+0.035")
    assert table.loc[table["arm"] == "other", "verdict"].str.startswith("cannot tell").all()


def test_compare_paired_leaves_out_unmatched_replicates_and_says_when_none_match():
    cells = _study_cells()
    cells = cells[~((cells["arm"] == "mixed") & (cells["seed"] == 0))]
    cells = cells[~((cells["arm"] == "target") & (cells["budget"] == 400))]
    table = stats.compare_paired(cells, "target", "arm", "accuracy", ["split_seed", "seed"], within=["budget"])
    mixed_100 = table[(table["budget"] == 100) & (table["arm"] == "mixed")].iloc[0]
    assert mixed_100["n_replicates"] == 4
    at_400 = table[table["budget"] == 400]
    assert (at_400["n_replicates"] == 0).all()
    assert (at_400["verdict"] == "cannot tell: no matched replicates").all()
    assert np.isnan(at_400["p_holm"]).all()


def test_compare_paired_rejects_ambiguous_pairs_and_an_unknown_reference():
    cells = _study_cells()
    with pytest.raises(ValueError, match="several rows for one arm and replicate"):
        stats.compare_paired(cells, "target", "arm", "accuracy", ["split_seed"], within=["budget"])
    with pytest.raises(ValueError, match="reference arm 'baseline'"):
        stats.compare_paired(cells, "baseline", "arm", "accuracy", ["split_seed", "seed"])
    with pytest.raises(KeyError, match="macro_f1"):
        stats.compare_paired(cells, "target", "arm", "macro_f1", ["split_seed", "seed"])


def test_equivalence_holds_only_when_the_whole_interval_sits_inside_the_margin():
    rng = np.random.default_rng(3)
    reference = rng.random((5, 400)) < 0.85
    # The arm flips 2 of 400 rows per replicate: |delta| <= 0.005, well inside a 1-point margin.
    arm = reference.copy()
    arm[:, :2] = ~arm[:, :2]
    close = stats.equivalence_bootstrap(reference, arm, margin=0.01)
    assert close.equivalent and close.verdict.startswith("equivalent within +-0.010")
    assert -0.01 < close.ci_low <= close.delta <= close.ci_high < 0.01
    # The same data with a margin smaller than the observed spread cannot be called equivalent.
    tight = stats.equivalence_bootstrap(reference, arm, margin=0.001)
    assert not tight.equivalent and tight.verdict.startswith("equivalence not shown")
    # A 90% interval (alpha 0.05) is narrower than the 95% one paired_bootstrap gives on the same resamples.
    wide = stats.paired_bootstrap(reference, arm, confidence=0.95)
    assert wide.ci_high - wide.ci_low > close.ci_high - close.ci_low


def test_equivalence_refuses_a_margin_that_is_not_positive():
    with pytest.raises(ValueError, match="margin must be positive"):
        stats.equivalence_bootstrap(np.ones(10, bool), np.ones(10, bool), margin=0)


# --- statistics by default: Holm-step MDE, TOST, families, intervals over test rows ------------------------------

@pytest.mark.parametrize("n, tests", [(5, 4), (5, 8), (10, 8), (10, 10), (10, 1)])
def test_holm_step_mde_matches_statsmodels_ttest_power_at_alpha_over_m(n, tests):
    sd = 0.021
    alpha = stats.holm_mde_alpha(0.05, tests)
    assert alpha == pytest.approx(0.05 / tests)
    expected = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05 / tests, power=0.8) * sd
    assert stats.minimum_detectable_effect(sd, n, alpha=alpha) == pytest.approx(expected, rel=1e-5)


def test_holm_step_mde_is_1_44_to_1_88_times_the_unadjusted_one():
    """The issue's ratios: n = 10 with 8 tests, n = 5 with 10 tests. (At n = 5, alpha = 0.005 statsmodels'
    solve_power stops short, at power 0.78, so the power is checked on scipy's noncentral t directly.)"""
    assert stats.minimum_detectable_effect(1, 10, stats.holm_mde_alpha(0.05, 8)) / \
        stats.minimum_detectable_effect(1, 10) == pytest.approx(1.44, abs=0.005)
    effect = stats.minimum_detectable_effect(1, 5, stats.holm_mde_alpha(0.05, 10))
    assert effect / stats.minimum_detectable_effect(1, 5) == pytest.approx(1.88, abs=0.01)
    crit = scipy_stats.t.isf(0.005 / 2, 4)
    assert scipy_stats.nct.sf(crit, 4, effect * math.sqrt(5)) == pytest.approx(0.8, abs=1e-4)


def test_paired_t_tost_matches_statsmodels_ttost_paired():
    from statsmodels.stats.weightstats import ttost_paired
    rng = np.random.default_rng(5)
    for shift, spread, margin in [(0.002, 0.004, 0.02), (0.015, 0.01, 0.02), (0.03, 0.01, 0.02), (-0.01, 0.02, 0.02),
                                  (0.0, 0.05, 0.01)]:
        reference = rng.normal(0.8, 0.03, size=8)
        arm = reference + shift + rng.normal(0, spread, size=8)
        ours = stats.equivalence_paired_t(reference, arm, margin)
        p_statsmodels = ttost_paired(arm, reference, -margin, margin)[0]
        assert ours.p == pytest.approx(p_statsmodels, rel=1e-9)
        assert ours.equivalent == (p_statsmodels < 0.05)
        # the decision equals the 90% t interval lying inside the margin
        assert ours.equivalent == (-margin < ours.ci_low and ours.ci_high < margin)
        assert ours.verdict.startswith("equivalent within" if ours.equivalent else "equivalence not shown")


def test_paired_t_tost_cannot_show_equivalence_from_one_replicate():
    result = stats.equivalence_paired_t([0.8], [0.8], 0.02)
    assert not result.equivalent and result.verdict.startswith("equivalence not shown")


def _row_cells(anchor_gain: float) -> pd.DataFrame:
    """5 replicates of 300 shared test rows: target, an other-data arm that gains 3 points, a probe anchor."""
    rng = np.random.default_rng(11)
    rows = []
    for seed in range(5):
        truth = rng.random(300) < 0.75
        for arm, flip in (("target_only", 0.0), ("concat", 0.03), ("probe", anchor_gain)):
            correct = truth.copy()
            wrong = np.flatnonzero(~correct)
            correct[wrong[: int(round(flip * 300))]] = True
            rows.append({"split_seed": seed, "seed": seed, "arm": arm, "accuracy": correct.mean(),
                         "correct": list(correct)})
    return pd.DataFrame(rows)


def test_variance_sum_interval_adds_the_test_row_variance_to_the_replicate_spread():
    rng = np.random.default_rng(8)
    reference = rng.random((4, 250)) < 0.8
    arm = reference ^ (rng.random((4, 250)) < 0.06)
    result = stats.paired_variance_sum(reference, arm)
    differences = arm.astype(float) - reference.astype(float)
    per_replicate = differences.mean(axis=1)
    row_variance = differences.mean(axis=0).var(ddof=1) / 250  # the same 250 test rows in every replicate
    half = scipy_stats.t.ppf(0.975, 3) * math.sqrt(per_replicate.var(ddof=1) / 4 + row_variance)
    assert result.delta == pytest.approx(per_replicate.mean())
    assert (result.ci_low, result.ci_high) == pytest.approx((result.delta - half, result.delta + half))
    assert result.covers == "replicates + test rows" and result.n_rows == 1000
    # never narrower than the paired t interval over the replicates alone
    over_replicates = stats.paired_t(reference.mean(axis=1), arm.mean(axis=1))
    assert result.ci_low < over_replicates.ci_low and result.ci_high > over_replicates.ci_high
    # replicates with test rows of their own already carry the rows' noise in their spread: the t interval
    own_rows = stats.paired_variance_sum(reference, arm, shared_rows=False)
    assert (own_rows.ci_low, own_rows.ci_high) == pytest.approx((over_replicates.ci_low, over_replicates.ci_high))
    with pytest.raises(ValueError, match="different numbers of test rows"):
        stats.paired_variance_sum([reference[0], reference[1, :200]], [arm[0], arm[1, :200]])


def test_variance_sum_of_one_replicate_is_the_normal_interval_of_the_row_differences():
    rng = np.random.default_rng(9)
    reference = rng.random(400) < 0.7
    arm = reference ^ (rng.random(400) < 0.1)
    result = stats.paired_variance_sum(reference, arm)
    d = arm.astype(float) - reference.astype(float)
    half = scipy_stats.norm.ppf(0.975) * d.std(ddof=1) / math.sqrt(400)
    assert result.covers == "test rows"
    assert (result.ci_low, result.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_variance_sum_tost_is_its_90_percent_interval_inside_the_margin():
    rng = np.random.default_rng(3)
    reference = rng.random((5, 2000)) < 0.85
    arm = reference.copy()
    arm[:, :4] = ~arm[:, :4]
    close = stats.equivalence_variance_sum(reference, arm, margin=0.02)
    interval = stats.paired_variance_sum(reference, arm, confidence=0.90)
    assert (close.ci_low, close.ci_high) == pytest.approx((interval.ci_low, interval.ci_high))
    assert close.equivalent and -0.02 < close.ci_low and close.ci_high < 0.02
    assert not stats.equivalence_variance_sum(reference, arm, margin=0.002).equivalent


def test_compare_paired_with_correctness_covers_test_rows_and_is_wider_than_over_replicates():
    cells = _row_cells(0.05)
    by_rows = stats.compare_paired(cells, "target_only", "arm", "accuracy", ["split_seed", "seed"],
                                   correct="correct")
    by_replicates = stats.compare_paired(cells, "target_only", "arm", "accuracy", ["split_seed", "seed"])
    concat = by_rows.set_index("arm").loc["concat"]
    assert concat["interval_covers"] == "replicates + test rows"
    assert (by_replicates["interval_covers"] == "replicates").all()
    # every replicate gains exactly 9 rows: no spread over replicates, but the rows still vary
    assert concat["delta"] == pytest.approx(0.03)
    assert concat["ci_high"] - concat["ci_low"] > 0.01
    assert by_replicates.set_index("arm").loc["concat", "ci_high"] == pytest.approx(0.03)  # no spread at all
    # the TOST comes from the 90% interval of the same kind: narrower than the 95% one
    assert concat["ci_low"] < concat["tost_low"] <= concat["tost_high"] < concat["ci_high"]
    assert concat["equivalence"] == "equivalence not shown" and concat["margin"] == 0.02


def test_anchor_comparisons_form_their_own_holm_family():
    cells = _study_cells().query("budget == 100").assign(arm=lambda f: f["arm"].replace({"other": "probe"}))
    table = stats.compare_paired(cells, "target", "arm", "accuracy", ["split_seed", "seed"])
    by_arm = table.set_index("arm")
    assert by_arm.loc["mixed", "family"] == "other data" and by_arm.loc["probe", "family"] == "anchors"
    # each alone in its family: no adjustment, and the MDE at the full alpha
    assert by_arm.loc["mixed", "p_holm"] == pytest.approx(by_arm.loc["mixed", "p"])
    assert by_arm.loc["probe", "p_holm"] == pytest.approx(by_arm.loc["probe", "p"])
    assert (table["mde_alpha"] == 0.05).all()
    mixed_together = stats.compare_paired(cells, "target", "arm", "accuracy", ["split_seed", "seed"], anchors=())
    assert mixed_together.set_index("arm").loc["mixed", "p_holm"] > by_arm.loc["mixed", "p_holm"]


def test_compare_paired_without_a_margin_leaves_the_tost_out():
    table = stats.compare_paired(_study_cells(), "target", "arm", "accuracy", ["split_seed", "seed"],
                                 within=["budget"], margin=None)
    assert table["equivalence"].isna().all() and table["tost_low"].isna().all()


def test_verdict_does_not_call_a_difference_whose_row_level_interval_holds_zero():
    text = stats.verdict(0.02, (-0.004, 0.044), 0.01, 0.01)
    assert text.startswith("cannot tell: p_adj=0.010 over replicates, but the interval [-0.004, +0.044]")
