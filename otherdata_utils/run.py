"""The papermill runner: params file(s) -> validated config -> executed notebooks in runs/<name>/.

It hands on a self-describing run folder: params.yaml, executed notebooks, metrics.json, figures, report.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import papermill
import yaml
import zmq
from jupyter_client.manager import AsyncKernelManager
from papermill.exceptions import PapermillExecutionError
from traitlets import default

from . import preflight, studies  # studies: registers every study kind, whose block load_config validates
from .clock import record_invocation
from .config import Config, ConfigError, load_config, project_root
from .env import PARAMS_OVERLAY_ENV
from .folder_lock import LOCK_HOLDER_ENV, RunFolderBusy, hold_run_folder
from .io import atomic_write_text
from .params_text import parse_override
from .progress import PROGRESS_ENV
from .report import write_report
from .runs import BATCH_ENV, RunFolder, is_quiet, run_folder
from .checkpoints import list_checkpoints


class CurveKernelManager(AsyncKernelManager):
    """The kernel manager papermill starts notebook kernels with: encrypted (CurveZMQ) where pyzmq and the
    kernelspec support it, since ipykernel >= 7.3 warns on every start of a kernel over plain TCP."""

    @default("transport_encryption")
    def _auto_encryption(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"

    async def start_kernel(self, **kw):
        # The notebooks run as a batch: with `quiet` unset in the params they show no progress bars (runs.is_quiet),
        # while the same notebook opened in JupyterLab shows them. The run's params.yaml already holds the params
        # overlay's values: read over it again, the overlay would undo the --set values the run was started with.
        env = {name: value for name, value in kw.get("env", os.environ).items() if name != PARAMS_OVERLAY_ENV}
        kw["env"] = {**env, BATCH_ENV: "1"}
        return await super().start_kernel(**kw)


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
    """The suite's notebooks: found from the current folder, or beside this package when started elsewhere."""
    return project_root() / "notebooks"


def prepare_run(config: Config) -> Path:
    """Create the run folder and record the resolved params (absolute paths) that every notebook reads."""
    resolved = config.resolved()
    paths = run_folder(resolved)
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.params, yaml.safe_dump(resolved.to_params(), sort_keys=False, allow_unicode=True))
    return paths.params


def execute_study(config: Config, *, label: str = "", plan: Optional[preflight.RunPlan] = None) -> RunOutcome:
    """Run the config's notebooks in order with papermill; stop at the first failing one, keeping its executed copy.

    `plan` (from `preflight.check`) skips the notebooks an interrupted run in the same folder finished and resumes
    its training from the last checkpoint. run_state.json records each finished notebook; an executed notebook is
    written as <name>.partial.ipynb and renamed when its run ends, so a killed run leaves no complete-looking copy.
    The run folder is held for the whole run (`folder_lock`): another process on it raises `RunFolderBusy`.
    """
    if plan is None:
        plan = preflight.RunPlan(run_folder(config).root, list(config.notebooks), [], resuming=False,
                                 replace=False, data_rows=0)

    def say(line: str) -> None:
        print(f"[{config.run_name}] {line}", flush=True)

    with ExitStack() as held:
        # Held for the whole run, before anything in the folder is read or written: a second runner stops here.
        held.enter_context(hold_run_folder(plan.run_dir, say=say))
        if plan.replace:
            say(f"--fresh: deleting the earlier run in {plan.run_dir}")
            preflight.remove_run_folder(plan.run_dir)  # the lock file goes with it: hold the new folder's
            held.enter_context(hold_run_folder(plan.run_dir, say=say))
        held.enter_context(kernels_report_to(run_folder(config), say))
        return _execute_notebooks(config, label, plan)


@contextmanager
def kernels_report_to(paths: RunFolder, say) -> Iterator[None]:
    """The notebook kernels started meanwhile pass the run folder's lock through (LOCK_HOLDER_ENV) and append
    their progress lines to the progress log, which a thread prints here as they come."""
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.progress_log.touch()
    before = {name: os.environ.get(name) for name in (LOCK_HOLDER_ENV, PROGRESS_ENV)}
    os.environ.update({LOCK_HOLDER_ENV: str(os.getpid()), PROGRESS_ENV: str(paths.progress_log)})
    stop = threading.Event()

    def follow() -> None:
        with open(paths.progress_log, encoding="utf-8") as log:
            log.seek(0, os.SEEK_END)
            pending = ""
            while True:
                pending += log.read()
                *lines, pending = pending.split("\n")
                for line in lines:
                    say(line)
                if stop.is_set():
                    return
                stop.wait(0.5)

    follower = threading.Thread(target=follow, name="progress-log", daemon=True)
    follower.start()
    try:
        yield
    finally:
        stop.set()
        follower.join(timeout=5)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute_notebooks(config: Config, label: str, plan: preflight.RunPlan) -> RunOutcome:
    started = time.perf_counter()
    prepare_run(config)
    paths = run_folder(config)
    run_dir = paths.root
    outcome = RunOutcome(params_file=label, run_dir=run_dir, notebooks_done=[f"{stem}.ipynb" for stem in plan.done])
    done = list(plan.done)
    preflight.write_run_state(run_dir, done)
    # Notebooks read params.yaml; a resumed run also tells them to continue training from its last checkpoint,
    # unless its parameters changed: those checkpoints were trained with the old ones.
    resume = plan.resuming and not plan.changed and config.resume_from_checkpoint is None
    extra_parameters = {"overrides": {"resume_from_checkpoint": "auto"}} if resume else {}
    if plan.resuming:
        print(f"[{config.run_name}] resuming {run_dir}: {', '.join(done) or 'no notebook'} done before"
              f"{_checkpoint_note(paths) if resume else ''}{_changed_note(plan)}", flush=True)
    source_dir = notebooks_dir()
    for position, stem in enumerate(config.notebooks, start=1):
        if stem in done:
            continue
        name = f"{stem}.ipynb"
        print(f"[{config.run_name}] {position}/{len(config.notebooks)} {name}", flush=True)
        executed, partial = paths.executed_notebook(name), paths.partial_notebook(name)
        try:
            papermill.execute_notebook(
                str(source_dir / name),
                str(partial),
                parameters={"params_file": str(paths.params), **extra_parameters},
                kernel_name="python3",
                kernel_manager_class=CurveKernelManager,
                cwd=str(source_dir),
                progress_bar=not is_quiet(config, batch=True),
                request_save_on_cell_execute=True,
            )
        except PapermillExecutionError as error:
            outcome.failed_notebook = name
            outcome.error = f"cell {error.exec_count}: {error.ename}: {error.evalue}"
        except Exception as error:  # the kernel died or the notebook could not be read: report, go on with the next run
            outcome.failed_notebook = name
            outcome.error = f"{type(error).__name__}: {error}"
        if partial.is_file():  # executed to the end, or to the failing cell: a complete record either way
            partial.replace(executed)
        if not outcome.ok:
            preflight.write_run_state(run_dir, done, failed={"notebook": name, "error": outcome.error})
            break
        done.append(stem)
        preflight.write_run_state(run_dir, done)
        outcome.notebooks_done.append(name)
    ran = outcome.notebooks_done[len(plan.done):] + ([outcome.failed_notebook] if outcome.failed_notebook else [])
    if ran:  # an invocation that found every notebook done computed nothing: no time to add
        record_invocation(config, time.perf_counter() - started, ran, completed=outcome.ok)
    if outcome.ok:
        try:
            write_report(run_dir)
        except OSError as error:  # disk full: the notebooks' results are kept, and the same command writes it again
            outcome.error = f"{error}; every notebook finished: free space and re-run the same command to write it"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _checkpoint_note(paths: RunFolder) -> str:
    checkpoints = list_checkpoints(paths.training)
    return f"; training resumes from {checkpoints[-1].name}" if checkpoints else ""


def _changed_note(plan: preflight.RunPlan) -> str:
    if not plan.changed:
        return ""
    return (f"; parameters changed since ({', '.join(plan.changed)}): the notebooks after the data steps run again "
            "and their studies train only the cells not already stored")


def _plan_summary(plan: preflight.RunPlan) -> str:
    """What `execute_study` would do with `plan`, in words, for --check."""
    todo = ", ".join(plan.notebooks) or "no notebook"
    if plan.replace:
        return f"delete the earlier run in {plan.run_dir} (--fresh), then run {todo}"
    if plan.resuming and not plan.notebooks:
        return f"run no notebook: {plan.run_dir} finished every one (report.md is written again)"
    if plan.resuming:
        return f"resume {plan.run_dir} ({', '.join(plan.done) or 'no notebook'} done): run {todo}{_changed_note(plan)}"
    return f"run {todo} into {plan.run_dir}"


def run_command(argv: list[str]) -> int:
    """``python -m otherdata_utils run PARAMS.yaml [PARAMS.yaml …] [--set key=value …] [--out runs/NAME] [--fresh]
    [--check]``.

    Every params file, its data and its model are checked before any notebook runs or any run folder is touched
    (`preflight`); --check stops there. The same command again resumes an interrupted run; a study grown or
    changed (replicates, its study block, fine-tuning settings) runs again in the same folder and trains only the
    cells it lacks; other data or data parameters for an existing run folder are refused (a new --out, or --fresh
    to replace it). Exit code: the number of failed runs (2 for bad parameters or input).
    """
    parser = argparse.ArgumentParser(prog="python -m otherdata_utils run", description=run_command.__doc__)
    parser.add_argument("params", nargs="+", help="params YAML file(s), run one after another")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (YAML value), e.g. --set learning_rate=1e-4")
    parser.add_argument("--out", help="run folder, relative to the current folder (only with a single params file); "
                                      "default: runs/<run_name> in the project root")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="run only these notebooks (e.g. 00_setup 01_data); same as --set notebooks=[...]")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the run folder's earlier run and start over, instead of resuming it")
    parser.add_argument("--check", action="store_true",
                        help="pre-flight only: check the params, data, model and run folder, then stop; no notebook "
                             "runs and nothing is written to the run folder")
    args = parser.parse_args(argv)
    if args.out and len(args.params) > 1:
        print("error: --out names one run folder; give a single params file or drop --out", file=sys.stderr)
        return 2
    try:
        overrides = dict(parse_override(item) for item in args.overrides)
        if args.out:  # a path typed on the command line is relative to where it was typed
            overrides["output_dir"] = str(Path(args.out).expanduser().resolve())
        if args.notebooks:
            overrides["notebooks"] = args.notebooks
        configs = [load_config(path, overrides) for path in args.params]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    plans = []
    for path, config in zip(args.params, configs):
        try:
            plans.append(preflight.check(config, fresh=args.fresh))
        except preflight.PreflightError as error:
            print(f"error: {path + ': ' if len(configs) > 1 else ''}{error}", file=sys.stderr)
            return 2
        print(f"[{config.run_name}] pre-flight passed: {plans[-1].data_rows:,} rows, model "
              f"{config.model_name_or_path!r}", flush=True)
    if args.check:
        for config, plan in zip(configs, plans):
            print(f"[{config.run_name}] --check: would {_plan_summary(plan)}", flush=True)
        return 0

    outcomes = []
    for path, config, plan in zip(args.params, configs, plans):
        try:
            outcome = execute_study(config, label=path, plan=plan)
        except RunFolderBusy as error:
            print(f"error: [{config.run_name}] {error}", file=sys.stderr, flush=True)
            outcomes.append(RunOutcome(params_file=path, run_dir=plan.run_dir, error=str(error)))
            continue
        outcomes.append(outcome)
        paths = RunFolder(outcome.run_dir)
        if outcome.ok:
            print(f"[{config.run_name}] done in {outcome.seconds:.0f} s: {paths.report}", flush=True)
        elif outcome.failed_notebook is None:
            print(f"[{config.run_name}] FAILED writing report.md: {outcome.error}", file=sys.stderr, flush=True)
        else:
            print(f"[{config.run_name}] FAILED in {outcome.failed_notebook} ({outcome.error}); executed notebook "
                  f"kept at {paths.executed_notebook(outcome.failed_notebook)}", file=sys.stderr, flush=True)
    failed = sum(not outcome.ok for outcome in outcomes)
    if len(outcomes) > 1:
        print(f"{len(outcomes) - failed} of {len(outcomes)} runs succeeded", flush=True)
    return failed
