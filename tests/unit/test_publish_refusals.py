"""Publishing without a trained run: study runs without a test report, the results book's forest plot, refusals of
failed or unfinished runs, scrubbing of progress bars and local paths, and the committed results folders."""
import json
import re
from io import BytesIO
from pathlib import Path

import pytest
import yaml
from PIL import Image

from otherdata_utils import __main__ as cli
from otherdata_utils import publish
from otherdata_utils.config import load_config
from otherdata_utils.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]
PROGRESS = "Tokenising test:  50%|█████     | 45/90 [00:00<00:00, 900.00 examples/s]"


def test_a_study_run_without_a_test_report_is_published_without_naming_one(tmp_path):
    run = _fake_run(tmp_path / "runs" / "study", state={"notebooks_done": ["03_finetune", "04_evaluate"]})
    folder = publish.publish(run, tmp_path / "results" / "study")
    readme = (folder / "README.md").read_text()
    assert "classification_report" not in readme and not (folder / "classification_report.txt").exists()
    assert "python -m otherdata_utils publish runs/study study" in readme  # a run folder outside the project


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
