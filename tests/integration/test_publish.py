"""Publishing a finished run: what the results folder holds and leaves out, scrubbed notebooks, refusals, idempotency.

The run is the session's small run folder (pipeline steps in-process, tiny random model, uci_sentences); its executed
notebook is written with the volatile parts papermill and Jupyter leave (timings, progress bars, widgets, paths).
"""
import base64
import json
import re
from io import BytesIO
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from otherdata_utils import __main__ as cli
from otherdata_utils import metrics, preflight, publish, report
from otherdata_utils.config import load_config
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


def test_a_study_run_without_a_test_report_is_published_without_naming_one(tmp_path):
    run = _fake_run(tmp_path / "runs" / "study", state={"notebooks_done": ["03_finetune", "04_evaluate"]})
    folder = publish.publish(run, tmp_path / "results" / "study")
    readme = (folder / "README.md").read_text()
    assert "classification_report" not in readme and not (folder / "classification_report.txt").exists()
    assert "python -m otherdata_utils publish runs/study study" in readme  # a run folder outside the project


def test_publishing_twice_gives_identical_bytes(finished_run, published):
    before = _files(published)
    publish.publish(finished_run.root, published)
    assert _files(published) == before
    # and nothing of the swap is left beside it
    assert sorted(p.name for p in published.parent.iterdir()) == [published.name]


def _study_run(root: Path, comparisons: str) -> Path:
    """A finished study run (as `_fake_run`) whose study published one comparisons table."""
    _fake_run(root, state={"notebooks_done": ["03_finetune", "04_evaluate"]})
    table = RunFolder(root).study("few_shot_mixing") / "comparisons.csv"
    table.parent.mkdir(parents=True)
    table.write_text(comparisons)
    return root


COMPARISON_ROWS = ("k_label,arm,reference,delta,ci_low,ci_high,verdict\n"
                   "8,concat,target_only,0.12,0.09,0.15,helps\n32,concat,target_only,0.02,-0.01,0.05,cannot tell\n")


def test_publishing_into_a_results_book_redraws_its_forest_plot_with_every_published_comparison(tmp_path):
    book = tmp_path / "results"
    book.mkdir()
    (book / "README.md").write_text("# Results\n")
    publish.publish(_study_run(tmp_path / "runs" / "a", COMPARISON_ROWS), book / "study_a")
    first = (book / publish.FOREST).read_bytes()
    assert first.startswith(b"\x89PNG") and len(first) <= publish.MAX_FIGURE_BYTES
    one_row = COMPARISON_ROWS.rsplit("32,", 1)[0]
    publish.publish(_study_run(tmp_path / "runs" / "b", one_row), book / "study_b")
    second = (book / publish.FOREST).read_bytes()
    # the second folder's row was added: the plot is taller by its heading and its row
    assert Image.open(BytesIO(second)).height > Image.open(BytesIO(first)).height
    assert sorted(path.name for path in book.iterdir()) == ["README.md", "forest.png", "study_a", "study_b"]


def test_publish_outside_a_results_book_draws_no_forest_and_the_command_redraws_one_on_demand(tmp_path, capsys):
    elsewhere = tmp_path / "shared"
    publish.publish(_study_run(tmp_path / "runs" / "a", COMPARISON_ROWS), elsewhere / "study_a")
    assert sorted(path.name for path in elsewhere.iterdir()) == ["study_a"]
    assert cli.main(["publish", "--forest", str(elsewhere)]) == 0
    assert capsys.readouterr().out == f"redrew {elsewhere / publish.FOREST}\n"
    assert (elsewhere / publish.FOREST).read_bytes().startswith(b"\x89PNG")
    (tmp_path / "single_runs" / "imdb_offline").mkdir(parents=True)  # a run's folder without a study
    assert cli.main(["publish", "--forest", str(tmp_path / "single_runs")]) == 0
    assert "no comparisons table published, no forest plot" in capsys.readouterr().out
    assert cli.main(["publish", "--forest", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing' / publish.FOREST} not drawn: ")


# --- refusals ------------------------------------------------------------------------------------------------------

def _fake_run(root: Path, *, state: dict | None, with_metrics: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "params.yaml").write_text("run_name: fake\nnotebooks: [03_finetune, 04_evaluate]\n")
    (root / "report.md").write_text("# Run `fake`\n")
    if with_metrics:
        (root / "metrics.json").write_text("{}\n")
    if state is not None:
        (root / "run_state.json").write_text(json.dumps(state))
    return root


def test_a_failed_run_is_refused_with_the_notebook_and_the_path(tmp_path):
    root = _fake_run(tmp_path / "failed", state={"notebooks_done": ["03_finetune"], "failed": {
        "notebook": "04_evaluate.ipynb", "error": "cell 5: ValueError: boom"}})
    with pytest.raises(publish.PublishError, match=rf"^{re.escape(str(root))} is not a finished run: "
                                                   r"run_state.json says 04_evaluate.ipynb failed"):
        publish.publish(root, tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_a_run_without_metrics_or_with_notebooks_left_is_refused(tmp_path):
    no_metrics = _fake_run(tmp_path / "no_metrics", state=None, with_metrics=False)
    with pytest.raises(publish.PublishError, match=r"no_metrics is not a finished run: no metrics.json"):
        publish.publish(no_metrics, tmp_path / "results")
    interrupted = _fake_run(tmp_path / "interrupted", state={"notebooks_done": ["03_finetune"], "failed": None})
    with pytest.raises(publish.PublishError, match=r"04_evaluate did not run"):
        publish.publish(interrupted, tmp_path / "results")


def test_command_line_refusal_is_one_line_naming_the_path(tmp_path, capsys):
    root = _fake_run(tmp_path / "failed", state={"notebooks_done": [], "failed": {
        "notebook": "03_finetune.ipynb", "error": "KeyboardInterrupt"}})
    assert cli.main(["publish", str(root), str(tmp_path / "results")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: {root} is not a finished run")


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

def test_progress_bars_are_dropped_and_other_stderr_lines_kept():
    text = f"{PROGRESS}\r{PROGRESS}\nwarning: kept\n\nMap: 1000 examples [00:00, 5000.00 examples/s]\nlast\n"
    assert publish._drop_progress(text) == "warning: kept\n\nlast\n"


def test_local_paths_become_relative_to_the_run_or_named_by_their_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the project publish runs in
    run_root = tmp_path / "runs" / "r"
    scrub = publish.path_scrubber(RunFolder(run_root), {"output_dir": "/old/runs/r", "data_dir": "/srv/data"})
    text = f"{run_root}/params.yaml in {run_root}; /old/runs/r/model; /old/runs/r2 /srv/data/imdb {REPO}/notebooks"
    assert scrub(text) == "params.yaml in .; model; /old/runs/r2 $OTHERDATA_DATA_DIR/imdb notebooks"


def test_png_under_the_limit_is_returned_unchanged():
    buffer = BytesIO()
    Image.new("RGB", (40, 30), "white").save(buffer, format="PNG")
    assert publish.small_png(buffer.getvalue()) == buffer.getvalue()


def test_the_data_step_reports_leakage_as_distributed_beside_what_cleaning_left(finished_run):
    cleaning = json.loads(finished_run.cleaning_report.read_text())
    raw, kept = cleaning["leakage_as_distributed"], cleaning["leakage"]
    # cleaning only ever removes rows, so it can only remove leaked pairs, never add them
    assert set(raw["rows"]) == set(kept["rows"]) and len(raw["pairs"]) >= len(kept["pairs"])
    assert sum(raw["rows"].values()) >= sum(kept["rows"].values())


def test_every_committed_results_folder_is_a_line_of_the_book_and_repeats_from_its_params():
    """results/README.md links each published folder once; each holds its report, metrics and executed notebooks,
    and its params.yaml loads as the run it repeats (no local paths)."""
    book = (REPO / "results" / "README.md").read_text()
    folders = sorted(path for path in (REPO / "results").iterdir() if path.is_dir())
    assert folders, "no published results"
    for folder in folders:
        assert book.count(f"]({folder.name}/)") == 1, f"results/README.md should link {folder.name}/ once"
        for needed in ("README.md", "report.md", "metrics.json", "params.yaml"):
            assert (folder / needed).is_file(), f"{folder.name} lacks {needed}"
        assert list((folder / "notebooks").glob("*.ipynb")), f"{folder.name} has no executed notebook"
        config = load_config(folder / "params.yaml")
        assert config.run_name == folder.name, f"{folder.name}/params.yaml repeats run {config.run_name!r}"
        local = {key: value for key, value in yaml.safe_load((folder / "params.yaml").read_text()).items()
                 if key in ("runs_dir", "output_dir", "data_dir", "cache_dir") and value is not None}
        assert not local, f"{folder.name}/params.yaml keeps local paths {local}"
