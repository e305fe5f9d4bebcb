"""Issue 18: one flag vocabulary across the commands, checked over every command's parameters.

The vocabulary (README, "Commands"): flows are positional (FLOWS...), ``-f/--flow-format`` is the
input format, ``-F/--format`` a report's format, ``-o/--output`` the destination, ``-i`` an
inventory, and ``-q``, ``-v``, ``--debug`` are accepted before or after the command. A flag
means one thing wherever it appears.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")
COMMANDS = sorted(cli.commands)
READERS = ["from-flows", "inspect", "migrate", "verify"]  # the commands that read flows
REPORTERS = ["diff", "inspect", "verify"]  # the commands that print a report


def run(*args: str, input: str | None = None) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), input=input)


def options(command: str) -> dict[str, click.Option]:
    return {
        p.name: p
        for p in cli.commands[command].params
        if isinstance(p, click.Option) and p.name is not None
    }


def test_the_commands_are_the_documented_seven() -> None:
    assert COMMANDS == ["diff", "from-flows", "inspect", "migrate", "report", "update", "verify"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_the_global_options(command: str) -> None:
    found = options(command)
    assert found["quiet"].opts == ["-q", "--quiet"]
    assert found["verbose"].opts == ["-v", "--verbose"] and found["verbose"].count
    assert found["debug"].opts == ["--debug"]


@pytest.mark.parametrize("command", READERS)
def test_readers_take_flows_positionally_and_the_same_input_options(command: str) -> None:
    params = cli.commands[command].params
    arguments = [p for p in params if isinstance(p, click.Argument)]
    assert arguments[0].name == "flows" and arguments[0].nargs == -1
    found = options(command)
    assert found["flow_format"].opts == ["-f", "--flow-format"]
    assert found["inventories"].opts == ["-i", "--inventory"] and found["inventories"].multiple
    assert found["max_line_bytes"].opts == ["--max-line-bytes"]
    assert found["summary"].opts == ["--summary"]


@pytest.mark.parametrize("command", REPORTERS)
def test_reports_take_dash_capital_f_for_their_format(command: str) -> None:
    found = options(command)
    assert found["report_format"].opts == ["-F", "--format"]
    assert found["output"].opts == ["-o", "--output"]


def test_a_flag_means_one_thing_in_every_command() -> None:
    meaning: dict[str, set[str]] = {}
    for command in COMMANDS:
        for option in options(command).values():
            if option.hidden:
                continue
            for flag in [*option.opts, *option.secondary_opts]:
                meaning.setdefault(flag, set()).add(str(option.name))
    clashes = {flag: names for flag, names in meaning.items() if len(names) > 1}
    assert clashes == {}
    # The only hidden spellings are the kept aliases: verify --flows, from-flows --format.
    hidden = {
        (command, flag)
        for command in COMMANDS
        for option in options(command).values()
        if option.hidden
        for flag in option.opts
    }
    assert hidden == {("verify", "--flows"), ("from-flows", "--format")}


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_command(where: str, tmp_path: Path) -> None:
    args = ["inspect", THREE_TIER, "-F", "json"]
    quiet = run("-q", *args) if where == "before" else run(*args, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    loud = run("-v", *args) if where == "before" else run(*args, "-v")
    assert "read " in loud.stderr and "as csv" in loud.stderr
    debug = run("--debug", *args) if where == "before" else run(*args, "--debug")
    assert debug.exit_code == 0


@pytest.mark.parametrize("command", ["from-flows", "inspect", "verify"])
def test_scheduler_without_dask_is_a_usage_error(command: str, tmp_path: Path) -> None:
    extra = ["--policies", THREE_TIER] if command == "verify" else []
    result = run(command, THREE_TIER, *extra, "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2
    assert "--scheduler needs --engine dask" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["from-flows", "{missing}"],
        ["inspect", "{missing}"],
        ["verify", "{missing}", "--policies", "{policies}"],
        ["verify", "--flows", "{missing}", "--policies", "{policies}"],
        ["verify", THREE_TIER, "--policies", "{missing}"],
        ["migrate", "{missing}", "-o", "{out}"],
        ["diff", "{missing}", "{policies}"],
        ["from-flows", THREE_TIER, "-i", "{missing}"],
        ["update", "{missing}", "--policies", "{directory}"],
        ["report", "{missing}", "-o", "{out}"],
    ],
)
def test_a_missing_file_is_a_usage_error_in_every_command(args: list[str], tmp_path: Path) -> None:
    policies = tmp_path / "p.yaml"
    policies.write_text("")
    names = {"missing": str(tmp_path / "nope.csv"), "policies": str(policies),
             "out": str(tmp_path / "plan"), "directory": str(tmp_path)}  # fmt: skip
    result = run(*[a.format(**names) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "nope.csv" in result.stderr or "is a directory" in result.stderr


def test_from_flows_keeps_its_format_spellings() -> None:
    # DESIGN.md's contract: from-flows -f/--format is the flow format; -f is every command's.
    expected = run("from-flows", THREE_TIER, "--no-egress", "-f", "csv").stdout
    assert "backend-access-ingress" in expected
    assert run("from-flows", THREE_TIER, "--no-egress", "--flow-format", "csv").stdout == expected
    assert run("from-flows", THREE_TIER, "--no-egress", "--format", "csv").stdout == expected


def test_verify_keeps_flows_as_a_hidden_alias(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    assert run("from-flows", THREE_TIER, "-o", str(out)).exit_code == 0
    positional = run("verify", THREE_TIER, "--policies", str(out), "-F", "json", "-q")
    alias = run("verify", "--flows", THREE_TIER, "--policies", str(out), "-F", "json", "-q")
    assert positional.exit_code == alias.exit_code == 0
    assert positional.stdout == alias.stdout
    assert json.loads(positional.stdout)["ok"] is True
    assert "--flows" not in run("verify", "--help").stdout


def test_output_dash_dir_or_yaml_file(tmp_path: Path) -> None:
    stdout = run("from-flows", THREE_TIER, "-o", "-").stdout
    single = tmp_path / "out.yaml"
    result = run("from-flows", THREE_TIER, "-o", str(single))
    assert result.exit_code == 0, result.output
    assert single.is_file() and single.read_text() == stdout  # one multi-document file
    assert "wrote 4 policies to" in result.stderr
    again = run("from-flows", THREE_TIER, "-o", str(single))
    assert again.exit_code == 1 and "exists" in again.stderr  # never over a file by surprise
    assert run("from-flows", THREE_TIER, "-o", str(single), "--force").exit_code == 0
    directory = tmp_path / "dir"
    assert run("from-flows", THREE_TIER, "-o", str(directory)).exit_code == 0
    docs = [
        yaml.safe_load(p.read_text())
        for p in sorted(directory.glob("*/*.yaml"))
        if p.name != "kustomization.yaml"
    ]
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(
        d["metadata"]["name"] for d in yaml.safe_load_all(stdout)
    )


def test_reports_go_to_a_file_with_dash_o(tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    result = run("inspect", THREE_TIER, "-F", "json", "-o", str(report), "-q")
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(report.read_text()) == json.loads(
        run("inspect", THREE_TIER, "-F", "json").stdout
    )


@pytest.mark.parametrize("output", ["-", "plan.yaml"])
def test_migrate_output_must_be_a_directory(output: str, tmp_path: Path) -> None:
    result = run("migrate", THREE_TIER, "-o", output)
    assert result.exit_code == 2 and "directory" in result.stderr


def test_diff_exits_one_when_the_sets_differ(tmp_path: Path) -> None:
    # diff(1) and kubectl diff: 0 same, 1 different.
    both, ingress = tmp_path / "both.yaml", tmp_path / "ingress.yaml"
    assert run("from-flows", THREE_TIER, "-o", str(both)).exit_code == 0
    assert run("from-flows", THREE_TIER, "--no-egress", "-o", str(ingress)).exit_code == 0
    assert run("diff", str(both), str(both)).exit_code == 0
    different = run("diff", str(both), str(ingress), "-F", "json")
    assert different.exit_code == 1
    assert json.loads(different.stdout)["same"] is False


def test_the_exit_codes_are_one_table_in_the_help() -> None:
    text = run("--help").stdout
    for line in ("0  success", "1  error", "2  usage error", "3  verify found"):
        assert line in text
