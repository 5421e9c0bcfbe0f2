"""Publishing a finished run: what the results folder holds and leaves out, scrubbed notebooks, refusals, idempotency.

The run is the session's small run folder (pipeline steps in-process, tiny random model, uci_sentences); its executed
notebook is written with the volatile parts papermill and Jupyter leave (timings, progress bars, widgets, paths).
"""
import base64
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from otherdata_utils import metrics, preflight, publish, report
from otherdata_utils.runs import RunFolder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS = "Tokenising test:  50%|█████     | 45/90 [00:00<00:00, 900.00 examples/s]"
NEVER_PUBLISHED = ("model", "training", "data", "predictions", "run_state.json")


@pytest.fixture(scope="module")
def finished_run(small_run_folder, copy_run, tmp_path_factory):
    """A run folder as the runner leaves it after 01–04 (a copy of the session's small run): data, model, metrics,
    figures, report, an executed notebook and a study table, plus one oversized figure."""
    paths = copy_run(small_run_folder, tmp_path_factory.mktemp("runs") / "tiny")
    root = paths.root
    # Noise does not compress: far over the 300 KB a published figure may take.
    noise = np.random.default_rng(0).integers(0, 256, size=(900, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(paths.figure("huge"), format="PNG")
    (paths.study("few_shot")).mkdir(parents=True)
    (paths.study("few_shot") / "summary.csv").write_text("k,mean\n8,0.61\n")
    (paths.study("few_shot") / "table.md").write_text("| k | mean |\n|---|---|\n| 8 | 0.61 |\n")
    nbformat.write(_executed_notebook(root), paths.executed_notebook("04_evaluate.ipynb"))
    preflight.write_run_state(root, ["04_evaluate"])
    report.write_report(root)
    return paths


def _executed_notebook(root: Path) -> nbformat.NotebookNode:
    timing = {"iopub.execute_input": "2026-12-01T03:02:44.166489Z", "shell.execute_reply": "2026-12-01T03:02:44.1Z"}
    papermill_cell = {"duration": 0.01, "start_time": "2026-12-01T03:02:44+00:00", "end_time": "2026-12-01T03:02:45",
                      "exception": False, "status": "completed"}
    png = base64.b64encode(RunFolder(root).figure("calibration_test").read_bytes()).decode()
    return new_notebook(
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "papermill": {"duration": 8.98, "start_time": "2026-12-01T03:02:43", "end_time": "2026-12-01T03:02:52",
                          "input_path": f"{REPO}/notebooks/04_evaluate.ipynb",
                          "output_path": f"{root}/notebooks/04_evaluate.partial.ipynb",
                          "parameters": {"params_file": f"{root}/params.yaml"}, "version": "2.7.0"},
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
        },
        cells=[
            new_markdown_cell("# 04 · Evaluation", metadata={"papermill": dict(papermill_cell)}),
            new_code_cell(f'params_file = "{root}/params.yaml"\n', execution_count=1,
                          metadata={"tags": ["injected-parameters"], "execution": timing,
                                    "papermill": dict(papermill_cell)}),
            new_code_cell("results = pipeline.evaluate_splits(config)", execution_count=2,
                          metadata={"execution": timing, "papermill": dict(papermill_cell)}, outputs=[
                new_output("display_data", data={WIDGET: {"model_id": "9022b2", "version_major": 2},
                                                 "text/plain": "Loading weights:   0%|          | 0/41"}),
                new_output("stream", name="stderr", text=f"{PROGRESS}\r{PROGRESS.replace('50%', '100%')}\n"),
                new_output("stream", name="stderr",
                           text=f"/tmp/ipykernel_3071/3824964509.py:3: UserWarning: leakage, see {root}/reports\n"),
                new_output("stream", name="stdout", text=f"saved {root}/predictions/test.csv\n"),
                new_output("execute_result", data={"text/plain": "0.5"}, execution_count=2),
                new_output("display_data", data={"image/png": png, "text/plain": "<Figure size 1000x420>"}),
            ]),
        ],
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


@pytest.fixture(scope="module")
def published(finished_run, tmp_path_factory):
    return publish.publish(finished_run.root, tmp_path_factory.mktemp("results") / "tiny")


# --- the evaluation views the run folder holds ---------------------------------------------------------------------

def test_evaluation_records_calibration_confusion_shares_and_length_quartiles_per_split(finished_run):
    recorded = json.loads(finished_run.metrics.read_text())
    for split in ("validation", "test"):
        scores = recorded[split]
        calibration = scores["calibration"]
        assert calibration["n_bins"] == 15 and len(calibration["bins"]) == 15
        assert sum(b["n"] for b in calibration["bins"]) == scores["n"]
        predictions = metrics.load_predictions(finished_run.split_predictions(split))
        expected = metrics.calibration_bins(predictions["confidence"], predictions["correct"])
        assert calibration["ece"] == pytest.approx(expected["ece"])
        assert [b["n"] for b in calibration["bins"]] == [b["n"] for b in expected["bins"]]
        shares = np.asarray(scores["confusion_matrix_normalized"])
        assert shares.sum(axis=1) == pytest.approx([1.0] * len(scores["label_names"]))
        quartiles = scores["accuracy_by_length"]
        assert [row["group"] for row in quartiles] == ["Q1", "Q2", "Q3", "Q4"]
        assert sum(row["n"] for row in quartiles) == scores["n"]
        assert [row["min_tokens"] for row in quartiles] == sorted(row["min_tokens"] for row in quartiles)
        for kind in ("calibration", "confusion", "length", "per_domain"):
            assert finished_run.split_figure(kind, split).is_file()


def test_length_quartiles_count_tokens_before_truncation(finished_run):
    test = json.loads(finished_run.metrics.read_text())["test"]
    # max_seq_length is 16: the longest quarter of real sentences runs past it, so counts were not truncated ones.
    longest = test["accuracy_by_length"][-1]
    assert longest["max_tokens"] > 16 and longest["truncated"] > 0
    predictions = metrics.load_predictions(finished_run.split_predictions("test"))
    correct = sum(row["accuracy"] * row["n"] for row in test["accuracy_by_length"])
    assert correct == pytest.approx(predictions["correct"].sum())


def test_report_shows_ece_length_table_and_both_confusion_panels(finished_run):
    text = finished_run.report.read_text()
    test = json.loads(finished_run.metrics.read_text())["test"]
    assert f"expected calibration error **{test['calibration']['ece']:.4f}**" in text
    assert "![calibration_test](figures/calibration_test.png)" in text
    assert "![confusion_test](figures/confusion_test.png)" in text
    first = test["accuracy_by_length"][0]
    assert f"| Q1 | {first['min_tokens']}–{first['max_tokens']} | {first['n']} |" in text
    assert text.count("![length_test]") == 1  # shown in its section, not again under Figures


# --- what publish writes -------------------------------------------------------------------------------------------

def test_published_folder_holds_the_reader_facing_files_and_no_weights_data_or_predictions(finished_run, published):
    files = set(_files(published))
    figures = {f"figures/{p.name}" for p in finished_run.figures.glob("*.png")}
    assert files == {"README.md", "report.md", "metrics.json", "params.yaml", "classification_report.txt",
                     "reports/data_fingerprint.json", "notebooks/04_evaluate.ipynb", "studies/few_shot/summary.csv",
                     "studies/few_shot/table.md", *figures}
    assert not any(name.split("/")[0] in NEVER_PUBLISHED for name in files)
    assert not any(name.endswith((".safetensors", ".bin", ".pt", ".arrow")) for name in files)


def test_classification_report_file_is_the_test_report_in_metrics(finished_run, published):
    test = json.loads(finished_run.metrics.read_text())["test"]
    text = (published / "classification_report.txt").read_text()
    assert text == test["classification_report"].rstrip() + "\n"
    assert re.search(r"^\s+neg\s+\d\.\d{4}", text, flags=re.M)


def test_small_figures_are_copied_as_they_are_and_large_ones_shrink_below_the_limit(finished_run, published):
    for source in finished_run.figures.glob("*.png"):
        data = (published / "figures" / source.name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        if source.stat().st_size <= publish.MAX_FIGURE_BYTES:
            assert data == source.read_bytes()
    huge = published / "figures" / "huge.png"
    assert finished_run.figure("huge").stat().st_size > 2 * publish.MAX_FIGURE_BYTES
    assert huge.stat().st_size <= publish.MAX_FIGURE_BYTES
    with Image.open(huge) as image:
        assert publish.MIN_FIGURE_WIDTH <= image.width < 1200
        assert image.height == pytest.approx(image.width * 900 / 1200, abs=1)


def test_published_notebook_keeps_outputs_without_counts_timings_progress_widgets_or_local_paths(finished_run,
                                                                                                  published):
    text = (published / "notebooks" / "04_evaluate.ipynb").read_text()
    notebook = nbformat.reads(text, as_version=4)
    assert "widgets" not in notebook.metadata
    assert set(notebook.metadata["papermill"]) == {"parameters", "version"}
    assert notebook.metadata["papermill"]["parameters"] == {"params_file": "params.yaml"}
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is None and "execution" not in cell.metadata for cell in code)
    assert all(set(cell.metadata["papermill"]) == {"exception", "status"} for cell in notebook.cells)
    assert code[0].source == 'params_file = "params.yaml"\n'
    outputs = code[1].outputs
    assert [output.output_type for output in outputs] == ["stream", "stream", "execute_result", "display_data"]
    assert outputs[0].text == "<cell>:3: UserWarning: leakage, see reports\n"
    assert outputs[1].text == "saved predictions/test.csv\n"
    assert outputs[2].execution_count is None and outputs[2].data["text/plain"] == "0.5"
    assert outputs[3].data["image/png"]  # figures stay: they are what a reader opens the notebook for
    assert str(finished_run.root) not in text and "ipykernel_" not in text and "it/s]" not in text
    assert "%|" not in text and WIDGET not in text and "2026-12-01" not in text


def test_published_params_are_the_resolved_ones_without_local_folders(finished_run, published):
    original = yaml.safe_load(finished_run.params.read_text())
    shown = yaml.safe_load((published / "params.yaml").read_text())
    assert list(shown) == list(original)
    for key in publish.LOCAL_FOLDER_PARAMS:
        assert shown[key] is None
    assert {k: v for k, v in shown.items() if k not in publish.LOCAL_FOLDER_PARAMS} == \
        {k: v for k, v in original.items() if k not in publish.LOCAL_FOLDER_PARAMS}


def test_readme_names_the_run_and_the_command_that_made_the_folder(published):
    readme = (published / "README.md").read_text()
    assert readme.startswith("# Results of run `small`")
    assert "python -m otherdata_utils publish tiny tiny" in readme
    assert "- notebooks/04_evaluate.ipynb" in readme and "- figures/huge.png" in readme
    assert "`classification_report.txt`: the test split's classification report" in readme


def test_publishing_twice_gives_identical_bytes(finished_run, published):
    before = _files(published)
    publish.publish(finished_run.root, published)
    assert _files(published) == before
    # and nothing of the swap is left beside it
    assert sorted(p.name for p in published.parent.iterdir()) == [published.name]


# --- refusals ------------------------------------------------------------------------------------------------------


def test_a_results_folder_with_other_files_is_not_replaced(finished_run, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(publish.PublishError, match="holds files publish did not write"):
        publish.publish(finished_run.root, target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    with pytest.raises(publish.PublishError, match="outside the run folder"):
        publish.publish(finished_run.root, finished_run.root / "results")


# --- the pieces ------------------------------------------------------------------------------------------------------


def test_the_data_step_reports_leakage_as_distributed_beside_what_cleaning_left(finished_run):
    cleaning = json.loads(finished_run.cleaning_report.read_text())
    raw, kept = cleaning["leakage_as_distributed"], cleaning["leakage"]
    # cleaning only ever removes rows, so it can only remove leaked pairs, never add them
    assert set(raw["rows"]) == set(kept["rows"]) and len(raw["pairs"]) >= len(kept["pairs"])
    assert sum(raw["rows"].values()) >= sum(kept["rows"].values())


