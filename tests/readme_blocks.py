"""The README's shell commands as a reader pastes them: every command of its ```bash blocks, in document order.

Hands on `Command` and `readme_commands()` to the README tests of the unit and end-to-end tiers.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CLI = ("-m", "otherdata_utils")
PYTHONS = (".venv/bin/python", "python")


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
