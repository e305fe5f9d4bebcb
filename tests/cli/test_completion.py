"""Issue 18: shell completion, click's documented mechanism (no extra dependency).

``eval "$(_NETPOLGEN_COMPLETE=bash_source netpolgen)"`` in ~/.bashrc (``zsh_source``,
``fish_source`` for the others; https://click.palletsprojects.com/en/stable/shell-completion/).
Every TAB runs netpolgen, so it must answer without importing the pipeline (issue 17).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from netpolgen.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def complete(words: str, cword: int) -> list[tuple[str, str]]:
    env = {"_NETPOLGEN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(cli, [], prog_name="netpolgen", env=env)
    assert result.exit_code == 0, result.output
    return [tuple(line.split(",", 1)) for line in result.stdout.splitlines()]  # type: ignore[misc]


SCRIPTS = [
    ("bash", "_netpolgen_completion()"),
    ("zsh", "#compdef netpolgen"),
    ("fish", "complete --no-files --command netpolgen"),
]


@pytest.mark.parametrize(("shell", "marker"), SCRIPTS)
def test_each_shell_gets_its_script(shell: str, marker: str) -> None:
    env = {"_NETPOLGEN_COMPLETE": f"{shell}_source"}
    result = CliRunner().invoke(cli, [], prog_name="netpolgen", env=env)
    assert result.exit_code == 0 and marker in result.stdout


def test_commands_options_and_choices_complete() -> None:
    assert ("plain", "from-flows") in complete("netpolgen fr", 1)
    assert {v for _, v in complete("netpolgen verify -F ", 3)} == {"table", "json", "markdown"}
    assert ("plain", "aws-vpc") in complete("netpolgen inspect -f ", 3)
    assert ("plain", "--flow-format") in complete("netpolgen migrate --fl", 2)
    # Flow files complete as files (the shell lists them), inventories too.
    assert complete("netpolgen from-flows sample", 2) == [("file", "sample")]
    assert complete("netpolgen inspect x -i inv", 4) == [("file", "inv")]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_through_the_sourced_script(tmp_path: Path) -> None:
    # The whole loop: bash sources the script, TAB (the function, given the command's name
    # as bash's `complete -F` does) runs netpolgen.
    launcher = tmp_path / "netpolgen"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} -m netpolgen "$@"\n')
    launcher.chmod(0o755)
    script = (
        'eval "$(_NETPOLGEN_COMPLETE=bash_source netpolgen)"; '
        "COMP_WORDS=(netpolgen ver); COMP_CWORD=1; _netpolgen_completion netpolgen; "
        'echo "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["verify"]


def test_completion_imports_no_pipeline() -> None:
    probe = (
        "import sys\n"
        "from netpolgen.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'pandas', 'numpy', 'pyarrow', 'yaml', 'sklearn'} & "
        "{m.split('.')[0] for m in sys.modules}\n"
        "sys.stderr.write('HEAVY=' + ','.join(sorted(heavy)))\n"
    )
    env = {**os.environ, "_NETPOLGEN_COMPLETE": "bash_complete",
           "COMP_WORDS": "netpolgen from-flows --", "COMP_CWORD": "2"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)  # fmt: skip
    assert "--flow-format" in done.stdout
    assert done.stderr.rsplit("HEAVY=", 1)[1] == ""
