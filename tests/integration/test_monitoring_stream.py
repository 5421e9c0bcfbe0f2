"""Monitoring's named stream: the Blitzer reviews read in time order with their labels."""
import pandas as pd

from otherdata_utils.config import MonitorSpec
from otherdata_utils.monitoring import read_stream


def test_a_named_stream_is_read_in_time_order_with_its_labels_and_undated_rows_counted(data_dir):
    spec = MonitorSpec(stream="blitzer_mds:electronics", label="neg", baseline_end="2005-12-31", start="2005-01-01")
    stream = read_stream(spec, data_dir)
    assert stream["time"].is_monotonic_increasing and stream["time"].min() >= pd.Timestamp("2005-01-01")
    assert set(stream["label"]) == {"neg", "pos"}
    assert stream.attrs["undated"] == 1  # one electronics review has no date
