"""report_to: one tracker or a list, unknown ones named with the valid ones, the trackers Accelerate supports."""
from __future__ import annotations

import pytest
from accelerate.utils import LoggerType

from otherdata_utils.config import TRACKER_PACKAGES, Config, ConfigError


def test_report_to_takes_one_tracker_or_a_list():
    assert Config(report_to="wandb").trackers == ["wandb"]
    assert Config(report_to=["tensorboard", "mlflow"]).trackers == ["tensorboard", "mlflow"]
    assert Config(report_to=[]).trackers == []


@pytest.mark.parametrize(
    ("report_to", "expected"),
    [
        ("neptune", "names unknown tracker(s) ['neptune']; use 'none', one of ['tensorboard', 'wandb', 'mlflow'"),
        (["wandb", "tensorbord"], "unknown tracker(s) ['tensorbord']"),
        ("all", "unknown tracker(s) ['all']"),
        (["none", "wandb"], "combines 'none' with trackers"),
        (["wandb", "wandb"], "repeats a tracker"),
    ],
)
def test_an_unknown_tracker_is_a_config_error_naming_the_valid_ones(report_to, expected):
    with pytest.raises(ConfigError) as error:
        Config.from_params({"report_to": report_to}, origin="run.yaml")
    assert str(error.value).startswith("run.yaml: parameter 'report_to'")
    assert expected in str(error.value)


def test_the_trackers_are_the_ones_accelerate_supports():
    assert set(TRACKER_PACKAGES) == {str(tracker) for tracker in LoggerType} - {"all"}
