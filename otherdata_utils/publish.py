"""Publishing: a finished run folder made into a small folder for readers (``python -m otherdata_utils publish``).

Takes a run folder (`runs.RunFolder`); hands on RESULTS_DIR: report, metrics, parameters, figures, study tables and
the executed notebooks without their volatile parts, swapped in whole and byte-identical when published again. Where
RESULTS_DIR lies in a results book (a folder with a README.md, like results/), the book's forest plot of every
published comparison, `forest.png`, is redrawn beside it.
"""
from __future__ import annotations

import argparse
import re
import sys
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Optional

import nbformat
import yaml
from PIL import Image

from . import plots
from .config import project_root
from .io import atomic_dir, atomic_path, read_json
from .republish import RestatError, mark, restat
from .runs import RunFolder

# A figure above this many bytes is re-encoded, then scaled down, until it fits: the folder goes into git.
MAX_FIGURE_BYTES = 300_000
# The smallest width a figure is scaled down to; past it the figure is kept larger than the limit rather than blurred.
MIN_FIGURE_WIDTH = 480
# Parameters that name folders of the machine the run was made on; published as null, so the params file runs as is
# elsewhere (data from OTHERDATA_DATA_DIR, the run folder under ./runs).
LOCAL_FOLDER_PARAMS = ("runs_dir", "output_dir", "data_dir", "cache_dir")
CLASSIFICATION_REPORT = "classification_report.txt"
README = "README.md"
# A folder of published results holding this index is a results book: publishing into it redraws its forest plot.
BOOK_INDEX = "README.md"
FOREST = "forest.png"
# A folder whose README.md holds this was written by publish, and may be replaced by it.
MARKER = "made by `python -m otherdata_utils publish`"
# What papermill and Jupyter record about one execution: when, how long, from and to which local file.
VOLATILE_PAPERMILL = ("start_time", "end_time", "duration", "input_path", "output_path")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# tqdm's bar ends in its timing bracket: "[00:01<00:02, 3.20it/s]" or, without a total, "[00:01, 3.20it/s]".
_PROGRESS = re.compile(r"\[\d+:\d{2}(?::\d{2})?(?:<[^\]]*)?(?:,[^\]]*)?\]\s*$")
# The file IPython compiles a cell to, named in warnings and tracebacks: new at every execution.
_CELL_FILE = re.compile(r"(?:/[\w.\-]+)*/ipykernel_\d+/\d+\.py")


class PublishError(ValueError):
    """The run folder cannot be published (or the results folder not replaced); one line naming the path."""


def publish(run_dir: Path, results_dir: Path) -> Path:
    """Write `results_dir` from the finished run in `run_dir` (see the module docstring); return `results_dir`.

    Refuses a run that did not finish, and a non-empty `results_dir` that publish did not write.
    """
    run = RunFolder(Path(run_dir).resolve())
    results_dir = Path(results_dir).resolve()
    check_finished(run)
    _check_target(run, results_dir)
    params = yaml.safe_load(run.params.read_text(encoding="utf-8")) or {}
    metrics = read_json(run.metrics)
    scrub = path_scrubber(run, params)
    with atomic_dir(results_dir) as tmp:
        out = RunFolder(tmp)
        for source, target in ((run.report, out.report), (run.metrics, out.metrics),
                               (run.environment, out.environment), (run.data_fingerprint, out.data_fingerprint),
                               (run.clock, out.clock)):
            if source.is_file():
                _write(target, scrub(source.read_text(encoding="utf-8")))
        _write(out.params, published_params(params))
        report = (metrics.get("test") or {}).get("classification_report")
        if report:
            _write(tmp / CLASSIFICATION_REPORT, report.rstrip() + "\n")
        for figure in sorted(run.figures.glob("*.png")):
            _write_bytes(out.figure(figure.stem), small_png(figure.read_bytes()))
        for stem in params.get("notebooks") or []:
            notebook = run.executed_notebook(f"{stem}.ipynb")
            if notebook.is_file():
                _write(out.executed_notebook(notebook.name), scrub_notebook(notebook, scrub))
        for table in sorted([*run.studies.glob("*/*.csv"), *run.studies.glob("*/*.md")]):
            _write(out.study(table.parent.name) / table.name, scrub(table.read_text(encoding="utf-8")))
        periods = run.monitoring / "periods.csv"  # the per-period table; scores.csv holds every text: it stays
        if periods.is_file():
            _write(out.monitoring / periods.name, periods.read_text(encoding="utf-8"))
        _write(tmp / README, _readme(run, results_dir, params, metrics, sorted(_relative_files(tmp))))
    if (results_dir.parent / BOOK_INDEX).is_file():
        draw_forest(results_dir.parent)
    return results_dir


def draw_forest(book: Path) -> Optional[Path]:
    """Redraw `book`/forest.png from every comparison table published in `book`'s folders (`plots.forest_rows`),
    at most MAX_FIGURE_BYTES; return its path, or None (writing nothing) when no folder holds a comparison."""
    try:
        rows = plots.forest_rows(book)
    except ValueError as error:  # no such folder, or a comparisons table without Δ and its interval
        raise PublishError(f"{Path(book) / FOREST} not drawn: {error}") from error
    if rows.empty:
        return None
    target = Path(book) / FOREST
    plots.plot_forest(rows, target)
    drawn = target.read_bytes()
    small = small_png(drawn)
    if small != drawn:
        with atomic_path(target) as tmp:
            tmp.write_bytes(small)
    return target


def check_finished(run: RunFolder) -> None:
    """Raise PublishError unless `run` holds a run whose every notebook finished, with its metrics and report."""
    root = run.root
    if not root.is_dir():
        raise PublishError(f"{root}: no such run folder")
    for path, why in ((run.params, "the runner writes it first"), (run.metrics, "the steps write it"),
                      (run.report, "the runner writes it when every notebook finished")):
        if not path.is_file():
            raise PublishError(f"{root} is not a finished run: no {path.name} ({why}); finish the run with "
                               f"`python -m otherdata_utils run` first")
    if run.run_state.is_file():
        state = read_json(run.run_state)
        failed = state.get("failed")
        if failed:
            raise PublishError(f"{root} is not a finished run: {run.run_state.name} says {failed.get('notebook')} "
                               f"failed ({failed.get('error')}); fix it and run again before publishing")
        planned = (yaml.safe_load(run.params.read_text(encoding="utf-8")) or {}).get("notebooks") or []
        missing = [stem for stem in planned if stem not in state.get("notebooks_done", [])]
        if missing:
            raise PublishError(f"{root} is not a finished run: {', '.join(missing)} did not run (interrupted?); "
                               f"the same `python -m otherdata_utils run` command resumes it")


def _check_target(run: RunFolder, results_dir: Path) -> None:
    """The results folder is replaced whole: never the run folder, a folder around it, or someone else's files."""
    if results_dir == run.root or run.root in results_dir.parents or results_dir in run.root.parents:
        raise PublishError(f"{results_dir}: the results folder must lie outside the run folder {run.root} and "
                           "not contain it; give a folder of its own, e.g. results/<run name>")
    if results_dir.is_file():
        raise PublishError(f"{results_dir} is a file; give a folder for the results")
    readme = results_dir / README
    if results_dir.is_dir() and any(results_dir.iterdir()) and not (
            readme.is_file() and MARKER in readme.read_text(encoding="utf-8", errors="replace")):
        raise PublishError(f"{results_dir} holds files publish did not write (no {README} saying so); it would be "
                           "replaced whole, so give an empty or new folder")


def path_scrubber(run: RunFolder, params: dict[str, Any]) -> Callable[[str], str]:
    """A function that writes the local paths in a text relative: the run folder's as relative to it (the published
    folder has its layout), the project's relative to the project, the data and cache folders as their environment
    variables, the home folder as ~."""
    roots: dict[str, str] = {}
    for folder in (params.get("output_dir"), run.root):  # the folder the run wrote to, and where it is now
        if folder:
            roots[str(folder)] = ""
    for folder in {project_root(run.root), project_root()}:
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():  # not the fallback, the cwd
            roots.setdefault(str(folder), "")
    for key, name in (("data_dir", "$OTHERDATA_DATA_DIR"), ("cache_dir", "$OTHERDATA_CACHE_DIR")):
        if params.get(key):
            roots.setdefault(str(params[key]), name)
    home = str(Path.home())
    if home != "/":
        roots.setdefault(home, "~")
    # Longest first, so a folder inside another is matched as itself; a root only matches up to a path boundary.
    ordered = sorted(((root.rstrip("/"), name) for root, name in roots.items() if root.rstrip("/")),
                     key=lambda item: (-len(item[0]), item[0]))
    pattern = re.compile("|".join(f"({re.escape(root)})(/|(?![\\w.\\-]))" for root, _ in ordered))
    names = [name for _, name in ordered]

    def replace(match: re.Match) -> str:
        index = next(i for i in range(len(names)) if match.group(2 * i + 1) is not None)
        name, slash = names[index], match.group(2 * index + 2)
        if slash:
            return f"{name}/" if name else ""
        return name or "."

    def scrub(text: str) -> str:
        return pattern.sub(replace, _CELL_FILE.sub("<cell>", text))

    return scrub


def published_params(params: dict[str, Any]) -> str:
    """The resolved parameters, with the folders of the machine the run was made on set to null."""
    shown = {key: (None if key in LOCAL_FOLDER_PARAMS else value) for key, value in params.items()}
    return yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)


def scrub_notebook(path: Path, scrub: Callable[[str], str]) -> str:
    """An executed notebook with its outputs, less what changes from one execution to the next: execution counts,
    timing metadata, papermill's timestamps and local paths, progress bars and widgets; local paths made relative."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    papermill = notebook.metadata.get("papermill")
    if papermill is not None:
        for key in VOLATILE_PAPERMILL:
            papermill.pop(key, None)
        notebook.metadata["papermill"] = _scrub_strings(papermill, scrub)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        for key in VOLATILE_PAPERMILL:
            cell.metadata.get("papermill", {}).pop(key, None)
        cell.source = scrub(cell.source)  # papermill's injected cell names the local params file
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = [kept for kept in (_scrub_output(output, scrub) for output in cell.outputs) if kept]
    return nbformat.writes(notebook)


def _scrub_output(output: dict, scrub: Callable[[str], str]) -> Optional[dict]:
    """The output less its volatile parts, or None when nothing else is left (a progress bar, a widget)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = _drop_progress(output.get("text", ""))
        if not text.strip():
            return None
        output["text"] = scrub(text)
        return output
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        if WIDGET_MIME in data:
            return None
        for mime, value in data.items():
            if isinstance(value, str) and not mime.startswith("image/"):  # base64 images hold no paths
                data[mime] = scrub(value)
        if kind == "execute_result":
            output["execution_count"] = None
        return output
    if kind == "error":
        output["traceback"] = [scrub(line) for line in output.get("traceback", [])]
        output["evalue"] = scrub(output.get("evalue", ""))
    return output


def _drop_progress(text: str) -> str:
    """The text less tqdm's progress bars (redrawn with carriage returns); other lines stay as they are."""
    lines = []
    for line in text.split("\n"):
        if "\r" not in line and not _PROGRESS.search(line):
            lines.append(line)
            continue
        # A terminal would show the last state a line was redrawn to, unless that is a progress bar.
        kept = [segment for segment in line.split("\r") if segment and not _PROGRESS.search(segment)]
        if kept:
            lines.append(kept[-1])
    return "\n".join(lines)


def _scrub_strings(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_strings(item, scrub) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(item, scrub) for item in value]
    return value


def small_png(data: bytes, limit: int = MAX_FIGURE_BYTES) -> bytes:
    """The PNG as it is when it is at most `limit` bytes; else re-encoded with a 256-colour palette (plots have
    few colours), then scaled down step by step until it fits or reaches `MIN_FIGURE_WIDTH`."""
    if len(data) <= limit:
        return data
    with Image.open(BytesIO(data)) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    scale = 1.0
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        scaled = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        buffer = BytesIO()
        scaled.quantize(colors=256).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= limit or size[0] * 0.8 < MIN_FIGURE_WIDTH:
            return buffer.getvalue()
        scale *= 0.8


def _readme(run: RunFolder, results_dir: Path, params: dict[str, Any], metrics: dict[str, Any],
            files: list[str]) -> str:
    source, target = _shown_path(run.root), _shown_path(results_dir)
    lines = [f"# Results of run `{params.get('run_name', run.root.name)}`", "",
             f"Published from the run folder `{source}`; {MARKER}:", "",
             f"    python -m otherdata_utils publish {source} {target}", ""]
    test = metrics.get("test")
    if test:
        lines += [f"Test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on {test['n']} examples "
                  f"(model `{params.get('model_name_or_path')}`). Start with [report.md](report.md).", ""]
    lines += [
        "- `report.md`: the run's report, figures included; `metrics.json`: every number it shows",
        "- `params.yaml`: the resolved parameters; the local folders (" + ", ".join(LOCAL_FOLDER_PARAMS) + ") are "
        "null, so `python -m otherdata_utils run params.yaml` repeats the run on another machine",
        *([f"- `{CLASSIFICATION_REPORT}`: the test split's classification report"] if CLASSIFICATION_REPORT in files
          else []),
        f"- figures as PNG (those over {MAX_FIGURE_BYTES // 1000} KB made smaller); study tables under studies/; a "
        "monitored stream's per-period table under monitoring/",
        "- the executed notebooks with their outputs, less execution counts, timings, progress bars, widgets and "
        "local paths",
        "",
        "Model weights, checkpoints, data and per-example predictions stay in the run folder.",
        "",
        "Files:",
        "",
        *[f"- {name}" for name in files],
    ]
    return "\n".join(lines) + "\n"


def _shown_path(path: Path) -> str:
    """A folder as the README names it: relative to the project when inside it, else by its name (no local path),
    under runs/ where it sits in a runs folder (another checkout's, say)."""
    root = project_root()
    if root in path.parents:
        return path.relative_to(root).as_posix()
    return f"runs/{path.name}" if path.parent.name == "runs" else path.name


def _relative_files(folder: Path) -> list[str]:
    return [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()] + [README]


def _write(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    # Inside the temporary folder that atomic_dir swaps in whole: plain writes are atomic enough.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def publish_command(argv: list[str]) -> int:
    """``python -m otherdata_utils publish RUN_DIR RESULTS_DIR``, ``publish --forest BOOK`` or ``publish --restat
    RESULTS_DIR...``: exit code 0, or 2 with one line naming the path."""
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils publish", description=publish.__doc__)
    parser.add_argument("run_dir", nargs="?", help="a finished run folder, e.g. runs/imdb")
    parser.add_argument("results_dir", nargs="?", help="the folder to write (replaced whole), e.g. results/imdb")
    parser.add_argument("--forest", metavar="BOOK", help="only redraw BOOK/forest.png from the comparisons "
                        "published in BOOK's folders, e.g. --forest results")
    parser.add_argument("--restat", nargs="+", metavar="RESULTS_DIR", help="re-render published folders' "
                        "comparisons from their cells with today's statistics, no retraining (`republish.restat`), "
                        "then redraw their book's forest plot, e.g. --restat results/study_*")
    parser.add_argument("--mark", nargs=2, metavar=("RESULTS_DIR", "LINE"), help="put LINE (\"Superseded by …\" "
                        "or \"Reading note: …\") at the top of a published folder's README.md and report.md")
    args = parser.parse_args(argv)
    if args.mark is not None:
        try:
            mark(Path(args.mark[0]), args.mark[1])
        except RestatError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"marked {args.mark[0]}", flush=True)
        return 0
    if args.restat is not None:
        if args.run_dir is not None or args.forest is not None:
            parser.error("--restat rewrites published folders in place and takes no RUN_DIR or --forest")
        return restat_command([Path(folder) for folder in args.restat])
    if args.forest is not None:
        if args.run_dir is not None:
            parser.error("--forest redraws a book's forest plot and takes no RUN_DIR or RESULTS_DIR")
        try:
            forest = draw_forest(Path(args.forest))
        except PublishError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{args.forest}: no comparisons table published, no forest plot" if forest is None
              else f"redrew {forest}", flush=True)
        return 0
    if args.results_dir is None:
        parser.error("the following arguments are required: run_dir, results_dir (or --forest BOOK)")
    try:
        target = publish(Path(args.run_dir), Path(args.results_dir))
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    count = sum(1 for path in target.rglob("*") if path.is_file())
    forest = Path(args.results_dir).parent / FOREST
    redrawn = f"; redrew {forest}" if (target.parent / BOOK_INDEX).is_file() and forest.is_file() else ""
    print(f"published {args.run_dir} as {args.results_dir}: {count} files{redrawn}", flush=True)
    return 0


def restat_command(folders: list[Path]) -> int:
    """Restat each folder (`republish.restat`), then redraw the forest plot of each book they lie in."""
    try:
        for folder in folders:
            done = restat(folder)
            covers = "; ".join(f"{name}: {', '.join(kinds)}" for name, kinds in done.covers.items())
            print(f"restated {folder}: {covers or 'no comparisons'}", flush=True)
        for book in sorted({folder.resolve().parent for folder in folders}):
            if (book / BOOK_INDEX).is_file():
                draw_forest(book)
    except (PublishError, RestatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
