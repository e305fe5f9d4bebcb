"""``netpolgen inspect`` through CliRunner, and the progress and verbosity helpers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netpolgen.cli import cli
from netpolgen.cli.progress import IngestProgress, show_progress
from tests.conftest import SAMPLE_FLOWS

SHOP_CSV = str(SAMPLE_FLOWS / "online-shop.csv")
THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")


def run(*args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def test_table_output() -> None:
    result = run("inspect", SHOP_CSV)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for title in ("Records", "Top talkers", "Protocols and ports", "Workloads", "Edges",
                  "Unresolved addresses"):  # fmt: skip
        assert title in out
    assert "shop/loadgenerator" in out and "TCP/8080" in out
    assert "10.244.1.250" in out
    # No progress bar or summary line mixed into standard output.
    assert "records read from" not in out


def test_csv_output_has_one_section_per_table() -> None:
    result = run("inspect", SHOP_CSV, "--format", "csv")
    assert result.exit_code == 0, result.output
    sections = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert sections == [
        "# totals", "# top_talkers", "# protocols", "# workloads", "# edges", "# unresolved"
    ]  # fmt: skip
    assert "src,dst,src_namespace,dst_namespace" in result.stdout


def test_json_output_is_one_document() -> None:
    result = run("inspect", THREE_TIER, "--format", "json", "--top", "2")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["top_talkers"]) == 2
    assert document["totals"]["workloads"] == 3
    assert {(e["src"], e["dst"], e["port"]) for e in document["edges"]} == {
        ("default/web", "default/backend", "TCP/8080"),
        ("default/backend", "default/db", "TCP/5432"),
    }


def test_stdin_and_flow_format() -> None:
    data = Path(THREE_TIER).read_bytes()
    result = run("inspect", "-", "-f", "csv", "--format", "json", input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"]["files"] == ["<stdin>"]


def test_graph_dot(tmp_path: Path) -> None:
    target = tmp_path / "shop.dot"
    result = run("inspect", SHOP_CSV, "--graph", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("digraph netpolgen {")
    assert f"wrote the communication graph to {target}" in result.stderr


def test_graph_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("networkx")
    target = tmp_path / "shop.svg"
    result = run("inspect", THREE_TIER, "--graph", str(target), "-q")
    assert result.exit_code == 0, result.output
    assert "<svg" in target.read_text()
    assert result.stderr == ""


def test_graph_unknown_type_is_a_clean_error(tmp_path: Path) -> None:
    # Issue 18: a usage error up front (exit 2), before any table is printed or any work done.
    for name in ("g.jpeg", "g.txt", "graph"):
        result = run("inspect", THREE_TIER, "--graph", str(tmp_path / name))
        assert result.exit_code == 2
        assert "unknown graph file type" in result.stderr and result.stdout == ""
        assert "Traceback" not in result.output


def test_missing_file_is_a_clean_error() -> None:
    result = run("inspect", "no/such/flows.csv")
    assert result.exit_code == 2  # usage, as in every command
    assert "no/such/flows.csv: no such file" in result.stderr


def test_unknown_output_format_is_a_usage_error() -> None:
    assert run("inspect", THREE_TIER, "--format", "xml").exit_code == 2


def test_warnings_go_to_stderr_unless_quiet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(Path(THREE_TIER).read_text() + "2026-11-20T10:00:00Z,default,x,app=x,,,"
                   "default,y,app=y,,http,TCP,allowed,,1,\n")  # fmt: skip
    loud = run("inspect", str(bad))
    assert loud.exit_code == 0
    assert "skipped: dst_port is not an integer" in loud.stderr
    quiet = run("inspect", str(bad), "-q")
    assert quiet.stderr == ""
    verbose = run("inspect", str(bad), "-v")
    assert f"read {bad} as csv" in verbose.stderr
    assert "records read from 1 file(s)" in verbose.stderr


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_takes_quiet_and_verbose(command: str) -> None:
    help_text = run(command, "--help").output
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text


@pytest.mark.parametrize("command", ["from-flows", "inspect"])
def test_quiet_and_verbose_on_commands(command: str) -> None:
    help_text = run(command, "--help").output
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text
    result = run(command, THREE_TIER, "-q")
    assert result.exit_code == 0 and result.stderr == ""
    result = run(command, THREE_TIER, "-vv")
    assert result.exit_code == 0 and "as csv" in result.stderr


def test_progress_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert show_progress(False, Terminal())
    assert not show_progress(True, Terminal())
    assert not show_progress(False, io.StringIO())


def test_progress_counts_records_and_files() -> None:
    with IngestProgress(["a.csv", "b.csv"], enabled=False) as progress:
        progress("a.csv", 10)
        progress("a.csv", 5)
        progress("b.csv", 7)
    assert progress.records == 22


def test_progress_bar_draws_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with IngestProgress(["a.csv"], enabled=True) as progress:
        progress("a.csv", 3)
    captured = capsys.readouterr()
    assert captured.out == ""


def test_hubble_sample_with_inventory() -> None:
    hubble = str(SAMPLE_FLOWS / "online-shop.hubble.jsonl")
    inventory = str(SAMPLE_FLOWS / "online-shop.inventory.json")
    result = run("inspect", hubble, "-i", inventory, "--format", "json", "-v")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["report"]["formats"] == {hubble: "hubble"}
    assert document["totals"]["filtered"]["duplicate observation of a connection"] > 0
    assert document["totals"]["edges"] == 62
    assert [u["ip"] for u in document["unresolved"]] == ["10.244.1.250"]
    assert f"read {hubble} as hubble" in result.stderr


def test_missing_inventory_is_a_clean_error() -> None:
    result = run("inspect", THREE_TIER, "-i", "no/such/inventory.json")
    assert result.exit_code == 2
    assert "no/such/inventory.json" in result.stderr and "Traceback" not in result.output


def test_verify_takes_quiet_and_verbose(tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(run("from-flows", THREE_TIER, "-q").stdout)
    quiet = run("verify", "--flows", THREE_TIER, "--policies", str(policies), "-q")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
    verbose = run("verify", "--flows", THREE_TIER, "--policies", str(policies), "-v")
    assert f"read {THREE_TIER} as csv" in verbose.stderr


def test_inspect_skips_and_counts_overlong_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from netpolgen.cli import cli

    path = tmp_path / "flows.csv"
    path.write_text(
        "src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n"
        "a,app=x,a,app=y,80\n"
        "a,app=x,a,app=y," + "9" * 5000 + "\n"
    )
    result = CliRunner().invoke(
        cli, ["inspect", str(path), "--format", "json", "--max-line-bytes", "1000"]
    )
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)["report"]
    assert report["records_used"] == 1 and report["records_skipped"] == 1


def test_inspect_an_addresses_only_log_without_inventory() -> None:
    # No workload at all (every endpoint an address): the names fall back to the addresses.
    from click.testing import CliRunner

    from netpolgen.cli import cli

    log = Path(__file__).parents[1] / "data" / "ingest" / "aws-v2-default.log"
    result = CliRunner().invoke(cli, ["inspect", str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    edges = json.loads(result.stdout)["edges"]
    assert edges and all(edge["src"] and edge["dst"] for edge in edges)
