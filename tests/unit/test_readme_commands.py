"""The README's shell commands, pasted in document order: each `python -m otherdata_utils` command is a real
subcommand with arguments its parser accepts, and every file it names is in the repo or made by an earlier command.

Nothing runs here: arguments are parsed only. tests/e2e/test_readme_commands_run.py runs the cheap forms.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from otherdata_utils.__main__ import main
from otherdata_utils.config import load_config
from readme_blocks import CLI, REPO, Command, bash_commands, readme_commands

PATH_SUFFIXES = (".yaml", ".yml", ".csv", ".tsv", ".jsonl", ".json", ".parquet", ".gz", ".ipynb", ".txt")


def test_commands_are_split_at_and_and_joined_at_backslashes():
    text = "```bash\nmkdir -p a && tool a/x \\\n    -p k 'v w'   # note\n```\n```yaml\nx: 1\n```\n"
    assert [(c.line, c.words) for c in bash_commands(text)] == [
        (2, ("mkdir", "-p", "a")), (2, ("tool", "a/x", "-p", "k", "v w"))]


def test_the_readme_shows_the_commands_of_each_step():
    commands = readme_commands()
    assert {c.subcommand for c in commands if c.is_cli} >= {"run", "publish", "predict", "serve"}
    assert {c.words[1] for c in commands if c.words[0] == "make"} == {"run", "test", "test-fast"}


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


