"""Spearman over (target, source) pairs with a cluster bootstrap over targets: rho equals scipy's, the interval
resamples whole targets (so it is wider than one over independent pairs when a target's pairs move together), and
too few pairs are refused."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from otherdata_utils.studies.source_help import spearman_over_targets, within_target_spearman


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


def test_within_target_rho_ignores_how_much_each_target_is_helped():
    # within every target the more similar source helps more, but the least helped target has the most similar
    # sources: pooled, the pairs line up the other way; the mean of the per-target correlations says +1
    rows = [{"target": target, "source": f"s{i}", "similarity": base + 0.01 * i, "delta": offset + 0.001 * i}
            for target, base, offset in (("a", 0.2, 0.3), ("b", 0.5, 0.1), ("c", 0.8, -0.1)) for i in range(5)]
    pairs = pd.DataFrame(rows)
    within = within_target_spearman(pairs, n_resamples=200)
    assert within.rho == pytest.approx(1.0) and within.ci_low == pytest.approx(1.0)
    assert spearman_over_targets(pairs, n_resamples=200).rho < -0.5


def test_the_report_writes_pairs_correlations_figure_and_reading(tmp_path, monkeypatch):
    from otherdata_utils import runs
    from otherdata_utils.config import Config
    from otherdata_utils.io import read_json
    from otherdata_utils.studies import source_help

    study = {"few_shot": {"k_values": [32], "other_groups": ["dvd", "imdb"], "source_help_runs": ["sibling.yaml"]}}
    config = Config(run_name="help", output_dir=str(tmp_path / "run"), target_domain="books", study=study)
    sibling = Config(run_name="sibling", output_dir=str(tmp_path / "sibling"), target_domain="dvd", study=study)
    monkeypatch.setattr(source_help, "load_config", lambda path: sibling if path == "sibling.yaml" else None)
    seen = {}

    def pairs_of(configs, at):
        seen["runs"], seen["k"] = [c.run_name for c in configs], at
        frame = _pairs()
        return frame.assign(ci_low=frame["delta"] - 0.02, ci_high=frame["delta"] + 0.02, p_holm=0.5)

    monkeypatch.setattr(source_help, "similarity_and_help", pairs_of)
    report = source_help.source_help_report(config, n_resamples=100)
    assert seen == {"runs": ["sibling", "help"], "k": "32"}
    folder = runs.run_folder(config)
    written = pd.read_csv(folder.study("source_help") / "pairs.csv")
    assert len(written) == 24 and set(written["target"]) == {"t0", "t1", "t2", "t3"}
    correlations = pd.read_csv(folder.study("source_help") / "correlation.csv")
    assert list(correlations["correlation"]) == ["pooled", "within_target_mean"]
    assert correlations["rho"].iloc[0] == pytest.approx(report.pooled.rho)
    assert folder.figure("source_help").is_file()
    recorded = read_json(folder.metrics)["studies"]["source_help"]
    assert recorded["runs"] == ["sibling", "help"] and recorded["reading"] == report.reading
    assert "24 (target, source) pairs at k = 32 from 4 targets: 0 sources help" in report.reading
    # a run without siblings has no such step
    plain = Config(run_name="plain", output_dir=str(tmp_path / "plain"), study={"few_shot": {"k_values": [32]}})
    assert source_help.source_help_report(plain) is None


def test_source_help_runs_need_other_groups_and_one_k():
    from otherdata_utils.config import Config
    from otherdata_utils.studies.few_shot import few_shot_params

    with pytest.raises(Exception, match="one k_values entry"):
        few_shot_params(Config(study={"few_shot": {"k_values": [8, 32], "other_groups": ["dvd"],
                                                   "source_help_runs": ["x.yaml"]}}))
