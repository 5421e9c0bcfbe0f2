"""The resolved precision, not `auto`, is what the records hold and what keys study cells and run-folder steps; the
model folder keeps the precision that trained it, and older folders without it still read. No model, no data."""
import json

import pytest
from datasets import Dataset

from otherdata_utils import precision, report, step_records
from otherdata_utils.config import Config
from otherdata_utils.model_card import (INFERENCE_NAME, InferenceSettings, ModelCardError, read_inference_settings,
                                        write_inference_settings)
from otherdata_utils.precision import PrecisionChoice, resolve_precision
from otherdata_utils.runs import run_folder
from otherdata_utils.studies import engine

AMX = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX2_ONLY = {"avx2", "fma"}
LABELS = ["neg", "pos"]


@pytest.fixture
def host(monkeypatch):
    """Pretend to run on a host with the given CPU flags (no GPU, torch not capped below AVX-512)."""
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(step_records.torch.cuda, "is_available", lambda: False)

    def on(flags: set[str]) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: set(flags))

    return on


def _rows(prefix: str, n: int) -> Dataset:
    return Dataset.from_dict({"id": [f"{prefix}{i}" for i in range(n)], "text": [f"text {i}" for i in range(n)],
                              "label": [i % 2 for i in range(n)], "domain": ["d"] * n})


def _key(config: Config) -> str:
    cell = engine.Cell(arm="a", seed=1, train=_rows("r", 4), validation=_rows("v", 2), facts={"k": 4})
    return engine.cell_job(config, cell, _rows("t", 3), LABELS, headline=None, groups=None, threads=1).key


def test_a_cells_key_holds_the_resolved_precision_so_auto_differs_between_amx_and_avx2_hosts(host, tmp_path):
    config = Config(output_dir=str(tmp_path / "run"), quiet=True, model_name_or_path="tiny-random")
    auto, bf16, fp32 = (config.replace(mixed_precision=mode) for mode in ("auto", "bf16", "no"))
    host(AMX)
    on_amx = {"auto": _key(auto), "bf16": _key(bf16), "no": _key(fp32)}
    host(AVX2_ONLY)
    on_avx2 = {"auto": _key(auto), "bf16": _key(bf16), "no": _key(fp32)}
    assert on_amx["auto"] == on_amx["bf16"] != on_amx["no"]
    assert on_avx2["auto"] == on_avx2["no"] != on_avx2["bf16"]
    assert on_amx["auto"] != on_avx2["auto"]  # an AMX host's bf16 cell is not an AVX2 host's fp32 cell
    assert on_amx["no"] == on_avx2["no"]  # explicit fp32 cells stay shared between hosts


def test_a_step_made_in_bf16_by_auto_is_rebuilt_on_a_host_where_auto_means_fp32(host, tmp_path, capsys):
    config = Config(output_dir=str(tmp_path / "run"), quiet=True, mixed_precision="auto")
    host(AMX)
    assert step_records.step_params(config, "finetune")["mixed_precision"] == "bf16"
    step_records.record_step(config, "finetune")
    assert step_records.reusable(config, "finetune", made=True)
    host(AVX2_ONLY)
    assert not step_records.reusable(config, "finetune", made=True)
    assert "mixed_precision='bf16' (now 'no')" in capsys.readouterr().out


def test_the_model_folder_keeps_the_training_precision_and_older_settings_files_still_read(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    config = Config(max_seq_length=32, truncation="head_tail", head_tokens=8)
    choice = resolve_precision("auto", flags=AVX2_ONLY, capability="")
    write_inference_settings(model, config, training_precision=choice)
    assert json.loads((model / INFERENCE_NAME).read_text())["training_precision"]["mode"] == "no"
    assert read_inference_settings(model) == InferenceSettings(32, "head_tail", 8, None, choice, "cls")

    write_inference_settings(model, config)  # as a model folder written before precision was recorded
    assert "training_precision" not in json.loads((model / INFERENCE_NAME).read_text())
    assert read_inference_settings(model).training_precision is None

    (model / INFERENCE_NAME).write_text(json.dumps({"max_seq_length": 32, "truncation": "head", "head_tokens": 0,
                                                    "training_precision": {"mode": "fp8"}}))
    with pytest.raises(ModelCardError, match=f"{INFERENCE_NAME}: training_precision must hold requested, mode"):
        read_inference_settings(model)


def test_report_md_says_in_one_line_which_precision_trained_the_model(tmp_path):
    paths = run_folder(Config(output_dir=str(tmp_path / "run")))
    paths.model.mkdir(parents=True)
    (paths.model / "config.json").write_text("{}")
    paths.metrics.write_text(json.dumps({"train": {"global_step": 12, "train_runtime_s": 3.5}}))
    choice = resolve_precision("auto", flags=AMX, capability="")
    write_inference_settings(paths.model, Config(), training_precision=choice)
    text = report.write_report(paths.root).read_text()
    assert "- precision: bf16 autocast (the CPU has amx_bf16 and avx512_bf16 (native bf16 matmul))\n" in text
    assert text.count("precision:") == 1


def test_the_summary_of_an_auto_fp32_choice_names_fp32_once_with_its_reason():
    choice = resolve_precision("auto", flags=AVX2_ONLY, capability="")
    assert choice.summary == ("fp32 (the CPU has avx2 but neither amx_bf16 nor avx512_bf16, so bf16 would be "
                              "emulated and slower than fp32)")
    assert PrecisionChoice("no", "no", "cpu", "set in the config").summary == "fp32 (set in the config)"
