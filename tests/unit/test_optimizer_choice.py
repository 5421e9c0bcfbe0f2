"""The AdamW kernel the loop builds: the implementation asked for, fused where the device has it, an unknown one
refused."""
from __future__ import annotations

import pytest
import torch

from otherdata_utils import train
from otherdata_utils.config import Config, ConfigError


@pytest.mark.parametrize("implementation", ["fused", "foreach"])
def test_optim_implementation_builds_the_adamw_kernel_asked_for(implementation):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = train.build_optimizer(model, Config(optim_implementation=implementation))
    other = {"fused": "foreach", "foreach": "fused"}[implementation]
    assert optimizer.defaults[implementation] is True
    assert not optimizer.defaults[other]
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0]  # the LayerNorm keeps no decay
    assert [len(group["params"]) for group in optimizer.param_groups] == [1, 3]


def test_auto_optim_implementation_picks_fused_adamw_where_the_device_has_it():
    optimizer = train.build_optimizer(torch.nn.Linear(4, 4), Config())
    assert optimizer.defaults["fused"] is True  # torch ≥ 2.4 has a fused AdamW on CPU too


def test_an_unknown_optim_implementation_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="parameter 'optim_implementation' must be one of 'auto', 'fused' or "
                                          "'foreach' \\(got 'apex'\\)"):
        Config.from_params({"optim_implementation": "apex"}, origin="test.yaml")
