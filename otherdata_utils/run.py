"""The papermill runner: params file(s) -> validated config -> executed notebooks in runs/<name>/.

It hands on a self-describing run folder: params.yaml, executed notebooks, metrics.json, figures, report.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .config import Config, ConfigError, load_config, parse_override, project_root
from .io import atomic_write_text

@dataclass
class RunOutcome:
    params_file: str
    run_dir: Path
    failed_notebook: Optional[str] = None
    error: Optional[str] = None
    seconds: float = 0.0
    notebooks_done: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def prepare_run(config: Config) -> Path:
    """Create the run folder and record the resolved params (absolute paths) that every notebook reads."""
    resolved = config.resolved()
    run_dir = Path(resolved.output_dir)
    (run_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    params_path = run_dir / "params.yaml"
    atomic_write_text(params_path, yaml.safe_dump(resolved.to_params(), sort_keys=False, allow_unicode=True))
    return params_path


def execute_study(config: Config, *, label: str = "") -> RunOutcome:
    """Run the config's notebooks in order with papermill; stop at the first failing one, keeping its executed copy."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .report import write_report

    started = time.perf_counter()
    params_path = prepare_run(config)
    run_dir = params_path.parent
    outcome = RunOutcome(params_file=label, run_dir=run_dir)
    source_dir = notebooks_dir()
    for position, stem in enumerate(config.notebooks, start=1):
        name = f"{stem}.ipynb"
        print(f"[{config.run_name}] {position}/{len(config.notebooks)} {name}", flush=True)
        executed = run_dir / "notebooks" / name
        try:
            papermill.execute_notebook(
                str(source_dir / name),
                str(executed),
                parameters={"params_file": str(params_path)},
                kernel_name="python3",
                cwd=str(source_dir),
                progress_bar=not config.quiet,
                request_save_on_cell_execute=True,
            )
        except PapermillExecutionError as error:
            outcome.failed_notebook = name
            outcome.error = f"cell {error.exec_count}: {error.ename}: {error.evalue}"
            break
        except Exception as error:  # the kernel died or the notebook could not be read: report, go on with the next run
            outcome.failed_notebook = name
            outcome.error = f"{type(error).__name__}: {error}"
            break
        outcome.notebooks_done.append(name)
    if outcome.ok:
        write_report(run_dir)
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_command(argv: list[str]) -> int:
    """``python -m otherdata_utils run PARAMS.yaml [PARAMS.yaml …] [--set key=value …] [--out runs/NAME]``.

    Every params file is validated before any notebook runs. Exit code: the number of failed runs (2 for bad
    parameters).
    """
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils run", description=run_command.__doc__)
    parser.add_argument("params", nargs="+", help="params YAML file(s), run one after another")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (YAML value), e.g. --set learning_rate=1e-4")
    parser.add_argument("--out", help="run folder (only with a single params file)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="run only these notebooks (e.g. 00_setup 01_data); same as --set notebooks=[...]")
    args = parser.parse_args(argv)
    if args.out and len(args.params) > 1:
        print("error: --out names one run folder; give a single params file or drop --out", file=sys.stderr)
        return 2
    try:
        overrides = dict(parse_override(item) for item in args.overrides)
        if args.out:
            overrides["output_dir"] = args.out
        if args.notebooks:
            overrides["notebooks"] = args.notebooks
        configs = [load_config(path, overrides) for path in args.params]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    outcomes = []
    for path, config in zip(args.params, configs):
        outcome = execute_study(config, label=path)
        outcomes.append(outcome)
        if outcome.ok:
            print(f"[{config.run_name}] done in {outcome.seconds:.0f} s: {outcome.run_dir / 'report.md'}", flush=True)
        else:
            print(f"[{config.run_name}] FAILED in {outcome.failed_notebook} ({outcome.error}); executed notebook "
                  f"kept at {outcome.run_dir / 'notebooks' / outcome.failed_notebook}", file=sys.stderr, flush=True)
    failed = sum(not outcome.ok for outcome in outcomes)
    if len(outcomes) > 1:
        print(f"{len(outcomes) - failed} of {len(outcomes)} runs succeeded", flush=True)
    return failed
