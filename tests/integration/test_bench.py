"""The benchmark in its CI form: `bench --quick` completes and writes results.json and RESULTS.md with every section,
its summaries computed from its own repeats; and the ratio arithmetic on fixed timings. No timing thresholds: how fast
the CI machine is, is not the claim."""
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from otherdata_utils.__main__ import main
from otherdata_utils.bench.inference import run_inference
from otherdata_utils.bench.tables import PIPELINE_ROWS, paired_ratio, ratios, serving_baseline, serving_headline, stats
from otherdata_utils.bench.workload import BF16_CONTENDERS, CONTENDERS, INFERENCE_CONTENDERS, QUICK, BenchSettings
from otherdata_utils.config import Config
from otherdata_utils.model_card import write_inference_settings
from otherdata_utils.precision import native_cpu_bf16, resolve_precision
from otherdata_utils.predictor import Predictor

NATIVE_BF16 = resolve_precision("auto").mode == "bf16"

SECTIONS = ("## Headline", "## Training throughput", "## Matmul ceiling", "## Inference throughput",
            "## Peak memory", "## End to end", "## Machine", "## Method")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """One `bench --quick` run on the tiny random model (the packaged MiniLM is the full run's model).

    One torch thread: on shared CI cores two OpenMP threads that wait on each other run ~10x slower.
    """
    out = tmp_path_factory.mktemp("bench")
    before = torch.get_num_threads()
    try:
        assert main(["bench", "--quick", "--model", "tiny-random", "--threads", "1", "--out", str(out),
                     "--data-dir", str(data_dir)]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def test_quick_benchmark_reports_positive_training_throughput_for_every_contender(quick_results: Path) -> None:
    results = json.loads((quick_results / "results.json").read_text())
    training = results["training"]
    assert set(training["contenders"]) == set(CONTENDERS + (BF16_CONTENDERS if NATIVE_BF16 else ()))
    # every contender trains on the same timed examples: 4 steps of 16
    assert results["data"]["timed_rows"] == 64
    for name in training["contenders"]:
        row = training["contenders"][name]
        runs = row["runs"]
        assert row["examples_per_second"]["n"] == len(runs) == 3, name
        # each repeat's rate is the timed rows over its own seconds, and the table's cells summarise those repeats
        assert [run["examples_per_second"] for run in runs] == pytest.approx([64 / run["seconds"] for run in runs])
        assert row["examples_per_second"] == stats([run["examples_per_second"] for run in runs]), name
        assert row["gflops"] == stats([training["flops_per_epoch"] / run["seconds"] / 1e9 for run in runs]), name
        assert row["peak_rss_mb"] == stats([run["peak_rss_mb"] for run in runs]), name
    fp32_ratios = {name: ratio for name, ratio in training["ratios"].items() if name != "ours_bf16_vs_ours"}
    assert fp32_ratios == ratios(training["contenders"], "ours", ("seed_style", "trainer"))
    assert set(results["matmul"]) == ({"fp32", "bf16"} if NATIVE_BF16 else {"fp32"})
    for matmul in results["matmul"].values():  # each ceiling over every measurement brackets each measurement's median
        assert matmul["threads"] == 1
        assert len(matmul["per_measurement_median"]) == 1 + QUICK.repeats  # before, then beside every repetition
        assert matmul["gflops"]["min"] <= min(matmul["per_measurement_median"]) <= max(
            matmul["per_measurement_median"]) <= matmul["gflops"]["max"]


@pytest.mark.skipif(not NATIVE_BF16, reason="mixed_precision auto picks fp32 on this host: no bf16 rows")
def test_quick_benchmark_reports_our_loop_in_bf16_with_its_accuracy_on_the_same_texts(quick_results: Path) -> None:
    results = json.loads((quick_results / "results.json").read_text())
    training = results["training"]
    fp32, bf16 = training["contenders"]["ours"], training["contenders"]["ours_bf16"]
    assert (fp32["precision"], bf16["precision"]) == ("no", "bf16")
    # the ratio pairs the two rows' runs repetition by repetition
    assert training["ratios"]["ours_bf16_vs_ours"] == paired_ratio(
        [run["examples_per_second"] for run in bf16["runs"]], [run["examples_per_second"] for run in fp32["runs"]])
    # each row's share is of its own precision's ceiling
    for row, ceiling in ((fp32, "fp32"), (bf16, "bf16")):
        assert row["share_of_ceiling"]["median"] == pytest.approx(
            row["gflops"]["median"] / results["matmul"][ceiling]["gflops"]["median"])
    # every run scored on the same held-out texts (the inference texts): a whole number of them right
    for row in (fp32, bf16):
        for run in row["runs"]:
            right = run["accuracy"] * QUICK.inference_texts
            assert right == pytest.approx(round(right))
    markdown = (quick_results / "RESULTS.md").read_text()
    assert "| training: our loop in bf16 autocast vs fp32 (paired runs; accuracy" in markdown
    assert "| our loop, `mixed_precision: bf16`" in markdown
    assert "- Ceiling: bf16 `torch.mm` of two 2048² matrices on 1 threads" in markdown


def test_quick_benchmark_reports_inference_machine_and_skips_the_study(quick_results: Path) -> None:
    results = json.loads((quick_results / "results.json").read_text())
    inference = results["inference"]
    contenders = inference["contenders"]
    # pipeline() at batch 32 pads differently from batch 1, yet it is the same fp32 model at the same length
    assert contenders["pipeline_bs32"]["agreement_with_fp32"] == pytest.approx(
        contenders["pipeline_bs1"]["agreement_with_fp32"], abs=0.05)
    # every row scored on the same labelled test texts; bf16 only where the CPU has it natively
    measured = tuple(name for name in INFERENCE_CONTENDERS if native_cpu_bf16()[0] or "bf16" not in name)
    assert set(contenders) == set(measured)  # results.json sorts its keys
    assert inference["texts"] == QUICK.inference_texts
    for name in measured:  # an accuracy over the scored texts: a whole number of them right
        assert contenders[name]["accuracy"] * QUICK.inference_texts == \
            pytest.approx(round(contenders[name]["accuracy"] * QUICK.inference_texts)), name
    # the trained model was saved with the bench's training settings, and the Predictor rows served at them
    for name in ("predictor_fp32", "predictor_int8"):
        cut = contenders[name]["tokenization"]
        assert (cut["max_length"], cut["truncation"]) == (results["settings"]["max_seq_length"], "head"), name
    # the rows at pipeline()'s cut read the tokens pipeline() reads: its length, the head of each text
    for name in ("predictor_fp32_pipeline_cut", *(("predictor_bf16_pipeline_cut",) if native_cpu_bf16()[0] else ())):
        cut = contenders[name]["tokenization"]
        assert (cut["max_length"], cut["truncation"]) == (512, "head"), name
        assert cut["source"].startswith("the given max_length"), name
    assert contenders["pipeline_bs1"]["tokenization"]["max_length"] == 512
    assert inference["headline"] == serving_headline(contenders, inference["ratios"])
    assert results["machine"]["torch_threads"] == 1  # --threads 1
    assert results["machine"]["cpu_model"]
    assert results["e2e"] == {"skipped": True, "reason": "--quick"}
    assert "ablations" not in results


def test_quick_benchmark_writes_a_markdown_table_with_every_section(quick_results: Path) -> None:
    markdown = (quick_results / "RESULTS.md").read_text()
    missing = [section for section in SECTIONS if section not in markdown]
    assert not missing
    assert "| our loop (`train.train`" in markdown
    assert "| accuracy |" in markdown and "Every row predicts the same texts" in markdown
    assert "| our `Predictor`, fp32 | 128, head | 32 |" in markdown
    assert "| `pipeline(batch_size=32)` | 512, head | 32 |" in markdown
    # the serving headline, over the faster pipeline() row
    assert re.search(r"vs `pipeline\(\)` at batch (1|32), the faster `pipeline\(\)` here \| \*\*", markdown)
    assert "nan" not in markdown.lower()
    assert not list(quick_results.glob(".*.tmp"))  # atomic writes leave no temporary files behind


def test_inference_scores_every_contender_on_the_same_labelled_texts_and_serves_the_saved_settings(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    write_inference_settings(model_dir, Config(max_seq_length=64, truncation="head_tail", head_tokens=16))
    texts = ["fine", "awful " * 300, "a long review that goes on " * 40, "great", "bad", "ok " * 100]
    served = Predictor.load(model_dir)
    answers = [row["label_id"] for row in served.predict(texts)]
    # gold labels that agree with the saved-settings answers on the first four texts only: its accuracy is 4/6
    gold = answers[:4] + [1 - label_id for label_id in answers[4:]]
    labelled = Dataset.from_dict({"text": texts, "label": gold},
                                 features=Features({"text": Value("string"), "label": ClassLabel(names=served.labels)}))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inference = run_inference(model_dir, labelled, BenchSettings(inference_repeats=1))
    finally:
        torch.set_num_threads(before)
    assert inference["texts"] == len(texts)
    contenders = inference["contenders"]
    native, why = native_cpu_bf16()
    bf16_rows = ("predictor_bf16", "predictor_bf16_pipeline_cut")
    skipped = {} if native else {name: f"not measured on this host: {why}" for name in bf16_rows}
    # trained with head_tail, which the Predictor keeps: it cannot cut where pipeline() cuts, so those rows say why
    at_cut = {name: "not measured: the model was trained with truncation 'head_tail', which the Predictor keeps, so "
              "it cannot cut where pipeline() cuts (the head)" for name in ("predictor_fp32_pipeline_cut", *bf16_rows[1:])
              if name not in skipped}
    assert inference["skipped"] == skipped | at_cut
    assert tuple(contenders) == tuple(name for name in INFERENCE_CONTENDERS if name not in inference["skipped"])
    assert contenders["predictor_fp32"]["accuracy"] == pytest.approx(4 / 6)
    assert contenders["predictor_fp32"]["agreement_with_fp32"] == 1.0
    for name, row in contenders.items():
        assert row["accuracy"] in {correct / len(texts) for correct in range(len(texts) + 1)}, name
        assert row["examples_per_second"]["n"] == 1, name
    cut = {name: row["tokenization"] for name, row in contenders.items()}
    for name in ("predictor_fp32", "predictor_int8", *(("predictor_bf16",) if native else ())):
        assert {key: cut[name][key] for key in ("max_length", "truncation", "head_tokens")} == \
            {"max_length": 64, "truncation": "head_tail", "head_tokens": 16}, name
        assert cut[name]["source"].startswith("as trained"), name
        # paired TOSTs on the 6 texts: one text is 17 points, so ±1 point cannot be shown unless no text differs
        tost = contenders[name]["equivalence_vs_baseline"]
        assert tost["margin"] == 0.01 and tost["equivalent"] == (tost["ci_low"] == tost["ci_high"] == 0.0), name
    assert "equivalence_vs_fp32" not in contenders["predictor_fp32"]
    assert contenders["predictor_int8"]["precision"] == "int8 dynamic quantisation"
    assert cut["pipeline_bs1"]["max_length"] == cut["pipeline_bs32"]["max_length"] == 512
    assert (contenders["pipeline_bs1"]["batch_size"], contenders["pipeline_bs32"]["batch_size"]) == (1, 32)
    assert ratios(contenders, "predictor_fp32", PIPELINE_ROWS).items() <= inference["ratios"].items()
    assert inference["headline"]["baseline"] == serving_baseline(contenders)


def test_study_layout_runs_the_same_cells_serially_and_on_ray_workers(data_dir: Path, tmp_path: Path,
                                                                      all_cores: None) -> None:
    """`bench --study-layout` at `--quick` size: two tiny cells through the serial executor at every core, then on
    Ray at a one-thread worker per core; each layout scores both cells on the same test rows (at the machine's
    cores, not an xdist worker's share)."""
    pytest.importorskip("ray")
    from dataclasses import replace

    from otherdata_utils.bench.study_layout import compare_layouts
    from otherdata_utils.bench.tables import summarise_study_layout
    from otherdata_utils.execution import available_cores

    if available_cores() < 2:
        pytest.skip("one core: there is no layout to choose")
    before = torch.get_num_threads()
    serial, ray = compare_layouts(replace(QUICK, model="tiny-random"), data_dir, tmp_path)
    assert torch.get_num_threads() == before  # the serial layout pins threads only while its cells run
    assert (serial["executor"], serial["threads_per_cell"]) == ("serial", available_cores())
    assert (ray["executor"], ray["threads_per_cell"], ray["workers"]) == ("ray", 1, available_cores())
    for layout in (serial, ray):
        assert sorted(layout["cells"]) == ["seed-1", "seed-2"]
        for cell in layout["cells"].values():
            assert cell["n_test"] == QUICK.study_test_rows and cell["n_train"] == QUICK.study_train_rows
            assert len(cell["correct"]) == QUICK.study_test_rows  # one mark per test row
        assert layout["seconds"] >= max(layout["cell_seconds"].values())
    # every cell on the same test rows, in both layouts
    assert len({cell["test_rows"] for layout in (serial, ray) for cell in layout["cells"].values()}) == 1
    summary = summarise_study_layout(serial, ray)
    assert summary["serial_over_ray"] == serial["seconds"] / ray["seconds"]
    assert summary["cells_identical"] == (serial["cells"] == ray["cells"])
