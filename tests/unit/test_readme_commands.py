"""The README's shell commands, pasted in document order: each `python -m otherdata_utils` command is a real
subcommand with arguments its parser accepts, every file it names is in the repo or made by an earlier command, and
the cheap forms run from the repo root without OTHERDATA_DATA_DIR (the data default to ../shared/data) or the network.

Long jobs never run here: a `run` command runs with --check (pre-flight only), any other subcommand as `--help`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from otherdata_utils.__main__ import main
from otherdata_utils.config import load_config

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CLI = ("-m", "otherdata_utils")
PYTHONS = (".venv/bin/python", "python")
PATH_SUFFIXES = (".yaml", ".yml", ".csv", ".tsv", ".jsonl", ".json", ".parquet", ".gz", ".ipynb", ".txt")
# Named in the README's prose (its closing pointer to CONTRIBUTING.md), not in a bash block: its help runs after the
# blocks' commands.
PROSE_SUBCOMMANDS = ("bench",)


@dataclass(frozen=True)
class Command:
    line: int  # README line the command starts on
    words: tuple[str, ...]

    @property
    def is_cli(self) -> bool:
        return self.words[0] in PYTHONS and self.words[1:3] == CLI

    @property
    def subcommand(self) -> str:
        return self.words[3]

    @property
    def args(self) -> list[str]:
        return list(self.words[4:])

    def __str__(self) -> str:
        return f"README.md:{self.line}: {shlex.join(self.words)}"


def bash_commands(text: str) -> list[Command]:
    """Every command of every ```bash block, in document order: continuation lines joined, comments dropped, and
    `a && b` split in two."""
    commands: list[Command] = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            in_block = line.strip() == "```bash"
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words, pending = shlex.split(pending + line, comments=True), ""
        part: list[str] = []
        for word in [*words, "&&"]:
            if word != "&&":
                part.append(word)
            elif part:
                commands.append(Command(start, tuple(part)))
                part = []
    return commands


def readme_commands() -> list[Command]:
    return bash_commands(README.read_text(encoding="utf-8"))


def test_commands_are_split_at_and_and_joined_at_backslashes():
    text = "```bash\nmkdir -p a && tool a/x \\\n    -p k 'v w'   # note\n```\n```yaml\nx: 1\n```\n"
    assert [(c.line, c.words) for c in bash_commands(text)] == [
        (2, ("mkdir", "-p", "a")), (2, ("tool", "a/x", "-p", "k", "v w"))]


def test_the_readme_shows_the_commands_of_each_step():
    commands = readme_commands()
    assert {c.subcommand for c in commands if c.is_cli} >= {"run", "publish", "predict", "serve"}
    assert {c.words[1] for c in commands if c.words[0] == "make"} == {"run", "test"}


# --- the CLI accepts every command ---------------------------------------------------------------------------------

class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


def parse_only(command: Command) -> argparse.Namespace:
    """The subcommand's arguments as its own argparse parser reads them, stopping right after parsing: nothing runs.

    Fails the test, with the CLI's message, on an unknown subcommand or arguments its parser refuses.
    """
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    stderr = io.StringIO()
    argparse.ArgumentParser.parse_args = parse_and_stop
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main([command.subcommand, *command.args])
    except _Parsed as parsed:
        return parsed.namespace
    except SystemExit as error:
        code = error.code
    finally:
        argparse.ArgumentParser.parse_args = original
    lines = stderr.getvalue().strip().splitlines() or [""]
    said = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # argparse's usage ... its error
    pytest.fail(f"{command}: refused (exit {code}): {said}")


def test_every_cli_command_in_the_readme_is_a_subcommand_with_arguments_it_accepts():
    parsed = {str(c): parse_only(c) for c in readme_commands() if c.is_cli}
    assert len(parsed) >= 8
    # each `run` command's parser read the params files the README names, in the README's order
    for command in readme_commands():
        if command.is_cli and command.subcommand == "run":
            assert parsed[str(command)].params == [word for word in command.args if word.endswith(".yaml")
                                                   and not word.startswith("-")], str(command)


@pytest.mark.parametrize("words, message", [
    (("publish", "runs/a", "results/a", "--no-such-option"), "unrecognized arguments: --no-such-option"),
    (("predict", "runs/a/model", "input.csv"), "the following arguments are required: output"),
    (("train", "params/ci.yaml"), "unknown command 'train'"),
])
def test_parse_only_fails_on_what_the_cli_refuses(words, message):
    with pytest.raises(pytest.fail.Exception, match=re.escape(message)):
        parse_only(Command(1, (".venv/bin/python", *CLI, *words)))


# --- every file a command names is there when it runs --------------------------------------------------------------

def path_words(command: Command) -> list[str]:
    """The words of a command that name files: a relative path with a folder or a file suffix; never an option, a
    URL, JSON, a quoted text or the program itself."""
    words = command.args if command.is_cli else list(command.words[1:])
    return [word for word in words
            if not word.startswith("-") and not re.search(r"[:{}\s'\"]", word)
            and ("/" in word or word.endswith(PATH_SUFFIXES))]


def made_by(command: Command) -> set[str]:
    """The paths, relative to the repo root, that a command creates: a run folder, a results folder, an output."""
    words = list(command.words)
    made = {words[i + 1] for i, word in enumerate(words[:-1]) if word == ">"}
    if words[0] == "mkdir":
        made |= {word for word in words[1:] if not word.startswith("-")}
    elif words[0].endswith("papermill"):
        made.add(words[2])
    elif command.is_cli and command.subcommand == "run":
        args = parse_only(command)
        # a missing params file makes nothing: the file check names it
        made |= {args.out} if args.out else {f"runs/{load_config(REPO / p).run_name}" for p in args.params
                                             if (REPO / p).is_file()}
    elif command.is_cli and command.subcommand == "publish":
        made |= {parse_only(command).results_dir} - {None}  # `publish --forest BOOK` makes no results folder
    elif command.is_cli and command.subcommand == "predict":
        made.add(command.args[2])
    elif command.is_cli and command.subcommand == "data" and command.args[:1] == ["fetch"]:
        made |= {command.args[i + 1] for i, word in enumerate(command.args[:-1]) if word == "--data-dir"}
    return made


def test_every_file_a_readme_command_names_exists_or_an_earlier_command_makes_it():
    made: set[str] = set()
    missing = []
    for command in readme_commands():
        output = made_by(command)
        for word in path_words(command):
            if {word, *map(str, Path(word).parents)} & (made | output):
                continue
            if not (REPO / word).exists():
                missing.append(f"{command}: {word} does not exist")
        made |= output
    assert missing == []
    assert {"runs/default", "runs/imdb_offline", "input.csv"} <= made  # the outputs later commands read


def test_the_makefile_has_the_targets_the_readme_names():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), flags=re.M))
    assert {c.words[1] for c in readme_commands() if c.words[0] == "make"} <= targets


# --- the cheap forms, executed in order ----------------------------------------------------------------------------

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
    if not (shared_data / "README.md").is_file():
        pytest.fail(f"{shared_data}, the README's default data directory, is missing: the commands read its copies")
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
