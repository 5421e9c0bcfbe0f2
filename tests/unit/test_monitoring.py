"""Monitoring a dated stream: reading it (files and named sources), per-period shares with a p-chart limit set on a
baseline, and params/monitoring_blitzer.yaml through the runner at CI size."""

import pandas as pd
import pytest

from otherdata_utils.config import MonitorSpec
from otherdata_utils.monitoring import MonitorError, control_limits, period_shares, read_stream


def test_baseline_share_and_limits_follow_the_p_chart_and_flag_only_watched_periods():
    scored = pd.DataFrame({
        "time": pd.to_datetime(["2024-01-01"] * 10 + ["2024-01-02"] * 10 + ["2024-01-03"] * 4 + ["2024-01-04"] * 25),
        "prediction": ["neg"] * 2 + ["pos"] * 8 + ["neg"] * 2 + ["pos"] * 8 + ["neg"] * 2 + ["pos"] * 2
                      + ["neg"] * 20 + ["pos"] * 5})
    periods, rate = control_limits(period_shares(scored, "neg", "D"), "2024-01-02")
    assert rate == pytest.approx(0.2)  # 4 of the baseline's 20 texts
    assert list(periods["n"]) == [10, 10, 4, 25]
    # a quiet day (4 texts) gets a wide limit: 2 of 4 stays under 0.2 + 3·sqrt(0.16/4) = 0.8
    assert periods["upper_limit"].iloc[2] == pytest.approx(0.8)
    assert periods["upper_limit"].iloc[3] == pytest.approx(0.2 + 3 * (0.16 / 25) ** 0.5)
    assert list(periods["flagged"]) == [False, False, False, True]
    assert periods["ci_low"].iloc[3] < 0.8 < periods["ci_high"].iloc[3]


def test_baseline_must_leave_periods_to_watch():
    scored = pd.DataFrame({"time": pd.to_datetime(["2024-01-01", "2024-01-02"]), "prediction": ["neg", "pos"]})
    with pytest.raises(MonitorError, match="baseline must hold some of them and leave some to watch"):
        control_limits(period_shares(scored, "neg", "D"), "2024-02-01")


def test_a_stream_file_with_a_bad_time_names_its_line_and_column(tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text("published,headline\n2024-03-01 09:00,Shares fall\nyesterday,Profit rises\n", encoding="utf-8")
    spec = MonitorSpec(stream=str(feed), text_column="headline", time_column="published", label="negative",
                       baseline_end="2024-03-01")
    with pytest.raises(MonitorError, match=r"feed.csv, line 3: time 'yesterday' is not a date .*'published'"):
        read_stream(spec, None)
    with pytest.raises(MonitorError, match=r"no column 'text' \(monitoring.text_column\)"):
        read_stream(spec.model_copy(update={"text_column": "text"}), None)


