"""The `num_processes` parameter: validated, logged as a global batch, refused before training where this machine
cannot launch it, and free to change in an existing run folder (the fine-tuning then runs again). No data, no
process is started: tests/e2e/test_notebook_launcher.py launches two."""
from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from papermill.translators import PythonTranslator

from otherdata_utils import launcher, preflight, run
from otherdata_utils.config import Config, ConfigError, load_config, project_root


def test_num_processes_is_one_unless_set_and_must_be_at_least_one():
    assert Config().num_processes == 1
    with pytest.raises(ConfigError, match="num_processes"):
        Config.from_params({"num_processes": 0})


def test_the_log_line_gives_the_global_batch_and_why_an_epoch_takes_fewer_steps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    config = Config(num_processes=2, per_device_train_batch_size=16, gradient_accumulation_steps=3)
    line = launcher.global_batch_line(config)
    assert line.startswith("training on 2 CPU processes (gloo): global batch 96 = 16 per process × 2 processes × "
                           "3 accumulation steps;")
    assert "an epoch takes 1/2 of the optimizer steps one process takes (at global batch 48)" in line
    assert line.endswith("divide gradient_accumulation_steps or per_device_train_batch_size by 2")
    assert "max_steps=40 optimizer steps, as on one process" in launcher.global_batch_line(config.replace(max_steps=40))


def test_more_processes_than_gpus_are_refused_before_anything_trains(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"num_processes=2: this machine has 1 GPU\(s\)"):
        launcher.check_launchable(Config(num_processes=2))
    launcher.check_launchable(Config(num_processes=1))


def test_colab_without_two_gpus_is_refused_as_it_would_train_in_one_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(ValueError, match="on Colab accelerate's notebook_launcher starts several processes only on "
                                         "several GPUs, and this runtime has 0"):
        launcher.check_launchable(Config(num_processes=2))


@pytest.mark.parametrize("gpus, refused", [(2, True), (0, False)])
def test_gpu_stages_run_before_the_launch_are_refused_only_on_gpus(monkeypatch, gpus, refused):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    config = Config(num_processes=2, pretrain_steps=10)
    if refused:
        with pytest.raises(ValueError, match=r"continued pretraining \(pretrain_steps > 0\) runs on the GPU"):
            launcher.check_launchable(config)
    else:
        launcher.check_launchable(config)  # on CPU forking stays possible after a stage ran in this process


def test_a_run_folder_lets_num_processes_change_and_runs_the_notebooks_after_the_data_steps_again(tmp_path):
    before = Config(output_dir=str(tmp_path / "run"), data_dir="")
    run.prepare_run(before)
    preflight.write_run_state(tmp_path / "run", ["00_setup", "01_data", "02_mixing", "03_finetune"])
    after = before.replace(num_processes=2)
    plan = preflight.plan_run(after, None)
    assert plan.changed == {"num_processes": (1, 2)}
    assert plan.done == ["00_setup", "01_data"]
    assert plan.notebooks[:2] == ["02_mixing", "03_finetune"]
    # the runner hands the notebooks the params file it writes: the count reaches 03_finetune through it
    assert load_config(run.prepare_run(after)).num_processes == 2


def test_03_finetune_takes_num_processes_as_a_parameter_papermill_documents():
    notebook = json.loads((project_root() / "notebooks" / "03_finetune.ipynb").read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    parameters = {p.name: p for p in PythonTranslator.inspect({"source": "".join(cell["source"])})}
    assert parameters["num_processes"].default == "None"
    assert parameters["num_processes"].help.startswith("int or None: processes to train over")
