"""The README's CLI commands pasted in order, in a fresh interpreter from the repo root, without OTHERDATA_DATA_DIR
(the data default to ../shared/data) or the network: a `run` command with --check (pre-flight only), any other
subcommand as `--help`. One interpreter runs them all, one after the other through the command line's `main`, as a
user's shell runs them one after the other: an interpreter each would add only its start-up (torch's import) each
time, which tests/e2e/test_runner.py and test_user_commands.py exercise."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from readme_blocks import REPO, Command, readme_commands
from shared_data import MISSING_DATA, data_required


# Runs each command of argv[1] (a JSON list of argument lists) through the command line's main, and writes to
# argv[2] each one's exit status (argparse's --help exits) and what it printed.
PASTED = """
import contextlib, io, json, sys
from otherdata_utils.__main__ import main
done = []
for form in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(form)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    done.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
with open(sys.argv[2], "w") as handle:
    json.dump(done, handle)
"""

# Named in the README's prose (its closing pointer to CONTRIBUTING.md), not in a bash block: its help runs after the
# blocks' commands.
PROSE_SUBCOMMANDS = ("bench",)


def cheap_forms(commands: list[Command]) -> list[list[str]]:
    """What runs for the README's CLI commands, in order: each `run` with --check, each other subcommand's --help
    once, then the subcommands named only in prose."""
    forms: list[list[str]] = []
    for command in commands:
        if command.subcommand == "run":
            form = [command.subcommand, *command.args, *(["--check"] if "--check" not in command.args else [])]
        else:
            form = [command.subcommand, "--help"]
        if form not in forms:
            forms.append(form)
    return forms + [[name, "--help"] for name in PROSE_SUBCOMMANDS if [name, "--help"] not in forms]


def runs_in_the_project() -> list[str]:
    """The folders in the project's runs/, but the CI run fixture's (OTHERDATA_CI_RUN_DIR, runs/_ci under make test),
    which another xdist worker may be writing meanwhile."""
    ci_run = os.environ.get("OTHERDATA_CI_RUN_DIR")
    ci_run = Path(ci_run).resolve() if ci_run else None
    return sorted(path.name for path in (REPO / "runs").glob("*") if path.resolve() != ci_run)


@pytest.mark.slow  # the interpreter imports torch
def test_readme_cli_commands_pasted_in_order_pass_their_pre_flight_or_help(tmp_path):
    shared_data = REPO.parent / "shared" / "data"
    if not (shared_data / "README.md").is_file():  # the README's default data directory: its commands read its copies
        message = f"{MISSING_DATA} at {shared_data}, the README's default data directory"
        if data_required():
            pytest.fail(f"{message} (OTHERDATA_REQUIRE_DATA or CI is set)")
        pytest.skip(message)
    # A user's shell: no OTHERDATA_* variable (the Makefile used to be the only place setting the data directory)
    # and no network. Run folders resolve under tmp_path, so an earlier run in runs/ cannot refuse a pre-flight.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTHERDATA_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OTHERDATA_RUNS_DIR=str(tmp_path / "runs"))
    runs_before = runs_in_the_project()
    forms = cheap_forms([c for c in readme_commands() if c.is_cli])
    assert [form[0] for form in forms].count("run") >= 4
    record = tmp_path / "done.json"
    child = subprocess.run([sys.executable, "-c", PASTED, json.dumps(forms), str(record)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    done = json.loads(record.read_text())
    assert len(done) == len(forms)
    for form, result in zip(forms, done):
        assert result["code"] == 0, f"{shlex.join(form)} exited {result['code']}:\n{result['stderr'][-2000:]}"
        expected = "--check: would " if form[0] == "run" else f"usage: python -m otherdata_utils {form[0]}"
        assert expected in result["stdout"], f"{shlex.join(form)}:\n{result['stdout'][-2000:]}"
    # --check wrote no run folder, in the runs folder or at an --out path
    assert not (tmp_path / "runs").exists()
    assert runs_in_the_project() == runs_before
