"""The README's CLI commands pasted in order, each in a fresh interpreter from the repo root, without
OTHERDATA_DATA_DIR (the data default to ../shared/data) or the network: a `run` command with --check (pre-flight
only), any other subcommand as `--help`."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from readme_blocks import CLI, REPO, Command, readme_commands
from shared_data import MISSING_DATA, data_required


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


@pytest.mark.slow  # 45-85 s: every command a fresh interpreter that imports torch
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
    runs_before = sorted(path.name for path in (REPO / "runs").glob("*"))
    forms = cheap_forms([c for c in readme_commands() if c.is_cli])
    assert [form[0] for form in forms].count("run") >= 4
    for form in forms:
        done = subprocess.run([sys.executable, *CLI, *form], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{shlex.join(form)} exited {done.returncode}:\n{done.stderr[-2000:]}"
        expected = "--check: would " if form[0] == "run" else f"usage: python -m otherdata_utils {form[0]}"
        assert expected in done.stdout, f"{shlex.join(form)}:\n{done.stdout[-2000:]}"
    # --check wrote no run folder, in the runs folder or at an --out path
    assert not (tmp_path / "runs").exists()
    assert sorted(path.name for path in (REPO / "runs").glob("*")) == runs_before
