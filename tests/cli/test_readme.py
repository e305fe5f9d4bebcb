"""Issue 18: the README's command synopses are the commands' own options, generated from click.

A synopsis block is a fenced block whose first line is ``netpolgen <command>``; each must be
exactly what ``python -m netpolgen.cli.synopsis`` prints for it, so an option added, renamed or
hidden shows up here until the README says so. The flags are compared too, for a readable
failure.
"""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from netpolgen.cli import cli
from netpolgen.cli.synopsis import synopses
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
SYNOPSES = {
    block.split()[1]: block.rstrip("\n")
    for block in BLOCKS
    if block.startswith("netpolgen ") and block.split()[1] in cli.commands
}
FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def visible_flags(command: click.Command) -> set[str]:
    flags: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            if param.is_flag and param.secondary_opts:
                flags |= {max(param.opts, key=len), *param.secondary_opts}
            else:
                flags.add(min(param.opts, key=len))
    return flags


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_the_readme_has_each_commands_complete_synopsis(name: str) -> None:
    assert name in SYNOPSES, (
        f"README: add the synopsis of {name} (python -m netpolgen.cli.synopsis)"
    )
    documented = set(FLAG.findall(SYNOPSES[name].split(None, 2)[2]))
    expected = visible_flags(cli.commands[name])
    assert documented == expected, (
        f"{name}: missing {sorted(expected - documented)}, extra {sorted(documented - expected)}"
    )
    assert SYNOPSES[name] == synopses(cli)[name], "paste python -m netpolgen.cli.synopsis"


def test_the_synopsis_script_prints_them() -> None:
    done = subprocess.run([sys.executable, "-m", "netpolgen.cli.synopsis"], cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert all(text in done.stdout for text in SYNOPSES.values())


def test_the_readme_has_the_exit_code_table_and_kubectl_steps() -> None:
    for row in ("| 0 | success", "| 1 | error", "| 2 | usage error", "| 3 | `verify`"):
        assert row in README
    assert "kubectl apply -k out/policies/" in README
    assert "kubectl apply --dry-run=server -k out/policies/" in README
    assert "_NETPOLGEN_COMPLETE=bash_source netpolgen" in README
    assert "pip install -e '.[notebook]'" in README and "jupyter lab" in README


def test_readme_examples_write_where_git_ignores() -> None:
    # An example run from the checkout must not leave files that git status shows.
    ignored = [line.strip().strip("/") for line in (REPO / ".gitignore").read_text().splitlines()]
    commands = [line for block in re.findall(r"```sh\n(.*?)```", README, re.S)
                for line in block.splitlines() if "netpolgen " in line]  # fmt: skip
    targets = [m for line in commands for m in re.findall(r"(?:-o|--output) (\S+)", line)]
    assert targets
    for target in targets:
        assert target == "-" or target.startswith("/tmp") or target.split("/")[0] in ignored, target


def test_user_sections_come_before_the_developer_notes() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert (
        headings.index("Quick start") < headings.index("Commands") < headings.index("Development")
    )
    assert headings[-1] == "Development"  # developer notes in their own, last, section
    assert "round" not in README.split("## Performance")[1].split("## Development")[0]
