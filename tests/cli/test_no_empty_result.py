"""No silent empty result (issue 15): usable flows that give no policy are an error (exit 1) that
says why and what to pass; nothing is written, and an existing ``-o`` directory is left as it
was even with ``--force``. ``verify`` and ``diff`` with no policy loaded are errors too, and their
reports say how many policies they loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS
from tests.flowkit import inventory, namespace, pod

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")
FIELDMASK_DROPPED = Path("/work/shared/samples/hubble/cilium-docs_exporter-fieldmask-dropped.jsonl")
# AWS's documented default-format (v2) record (FORMATS.md §2.1): addresses only.
AWS_V2 = (
    "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 "
    "1418530010 1418530070 ACCEPT OK\n"
)
HEADER = "time,src_ip,src_port,dst_ip,dst_port,protocol,verdict\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """An output directory from an earlier, good run."""
    out = tmp_path / "policies"
    out.mkdir()
    (out / "db-access-ingress.yaml").write_text("kind: NetworkPolicy # earlier run\n")
    return out


def assert_refused(result: Result, kept: Path, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.stderr.lower()
    for word in words:
        assert word.lower() in message, (word, result.stderr)
    assert "wrote" not in message
    assert sorted(p.name for p in kept.iterdir()) == ["db-access-ingress.yaml"]
    assert (kept / "db-access-ingress.yaml").read_text() == "kind: NetworkPolicy # earlier run\n"


def test_both_directions_off(kept: Path) -> None:
    result = run("from-flows", THREE_TIER, "--no-ingress", "--no-egress", "-o", str(kept),
                 "--force")  # fmt: skip
    assert_refused(result, kept, "ingress and egress", "--no-ingress or --no-egress")


def test_namespace_matching_nothing(kept: Path) -> None:
    result = run("from-flows", THREE_TIER, "-n", "nosuch", "-o", str(kept), "--force")
    assert_refused(result, kept, "nosuch", "seen: default", "drop -n")


def test_every_endpoint_outside_the_cluster(tmp_path: Path, kept: Path) -> None:
    flows = tmp_path / "outside.csv"
    flows.write_text(
        HEADER + "2026-12-01T10:00:00Z,198.51.100.7,40000,203.0.113.9,443,TCP,allowed\n"
    )
    result = run("from-flows", str(flows), "-o", str(kept), "--force")
    assert_refused(result, kept, "no flow endpoint is a pod", "-i")


def test_address_only_log_without_an_inventory(tmp_path: Path, kept: Path) -> None:
    flows = tmp_path / "vpc.log"
    flows.write_text(AWS_V2)
    result = run("from-flows", str(flows), "-o", str(kept), "--force")
    assert_refused(result, kept, "addresses only", "without an inventory", "-i")


def test_inventory_that_resolves_no_address(tmp_path: Path, kept: Path) -> None:
    flows = tmp_path / "vpc.log"
    flows.write_text(AWS_V2)
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(inventory(namespace("shop"), pod("shop", "web-1", {"app": "web"},
                                                               "10.9.9.9"))))  # fmt: skip
    result = run("from-flows", str(flows), "-i", str(inv), "-o", str(kept), "--force")
    assert_refused(result, kept, "no flow endpoint is a pod the inventory lists", "snapshots")


def test_to_standard_output_nothing_is_printed(tmp_path: Path) -> None:
    result = run("from-flows", THREE_TIER, "-n", "nosuch")
    assert result.exit_code == 1 and result.stdout == ""


def test_summary_json_carries_the_error(tmp_path: Path) -> None:
    result = run("from-flows", THREE_TIER, "-n", "nosuch", "--summary", "json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines and "nosuch" in lines[-1]["error"]


def test_verify_with_no_policy_loaded(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("verify", "--flows", THREE_TIER, "--policies", str(empty))
    assert result.exit_code == 1, result.output
    assert "no NetworkPolicy loaded (0 policies)" in result.stderr
    assert "Traceback" not in result.output


def test_verify_and_diff_reports_say_how_many_policies_they_loaded(tmp_path: Path) -> None:
    out = tmp_path / "p"
    assert run("from-flows", THREE_TIER, "-o", str(out)).exit_code == 0
    count = len([p for p in out.rglob("*.yaml") if p.name != "kustomization.yaml"])
    verified = run("verify", "--flows", THREE_TIER, "--policies", str(out))
    assert verified.exit_code == 0, verified.output
    assert f"policies loaded: {count}\n" in verified.stdout
    as_json = run("verify", "--flows", THREE_TIER, "--policies", str(out), "--format", "json")
    assert json.loads(as_json.stdout)["counts"]["policies"] == count
    diffed = run("diff", str(out), str(out))
    assert diffed.exit_code == 0, diffed.output
    assert f"policies loaded: {count} old, {count} new" in diffed.stdout
    diff_json = json.loads(run("diff", str(out), str(out), "--format", "json").stdout)
    assert diff_json["policies_loaded"] == {"old": count, "new": count}


@pytest.mark.parametrize("side", ["old", "new"])
def test_diff_with_no_policy_loaded(tmp_path: Path, side: str) -> None:
    out, empty = tmp_path / "p", tmp_path / "empty"
    empty.mkdir()
    assert run("from-flows", THREE_TIER, "-o", str(out)).exit_code == 0
    args = (str(empty), str(out)) if side == "old" else (str(out), str(empty))
    result = run("diff", *args)
    assert result.exit_code == 1, result.output
    assert f"{side.upper()} {empty}: no NetworkPolicy loaded" in result.stderr


def test_inspect_json_of_a_fieldmasked_capture_with_only_drops() -> None:
    # Every flow of this real capture is dropped and its endpoints have no identity: the
    # unresolved table had no peers, and rendering it as JSON crashed (pyarrow ArrowInvalid).
    result = run("inspect", str(FIELDMASK_DROPPED), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {row["ip"] for row in data["unresolved"]} == {"10.244.1.5", "10.244.1.60"}
    assert all(row["peers"] == "" for row in data["unresolved"])
