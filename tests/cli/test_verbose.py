"""What ``-v`` and ``-vv`` add on standard error, and what is printed without them.

The online-shop AWS sample, read with its inventory, has 11 addresses the inventory matches to
no pod, Service or node (the VPC resolver, the API server's endpoint, internet clients, the
payment API, one address in a pod range that no pod held): ``sample_flows/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netpolgen.cli import cli
from tests.conftest import SAMPLE_FLOWS

AWS = str(SAMPLE_FLOWS / "online-shop.aws-vpc.log.gz")
INVENTORY = str(SAMPLE_FLOWS / "online-shop.inventory.json")
UNMATCHED = [
    "10.0.0.2",
    "10.0.0.10",
    "10.244.1.250",
    "192.0.2.80",
    "192.0.2.161",
    "198.51.100.7",
    "198.51.100.25",
    "198.51.100.77",
    "203.0.113.10",
    "203.0.113.11",
    "203.0.113.12",
]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def listed(stderr: str) -> list[str] | None:
    """The addresses of the ``inventory: unmatched addresses:`` line, or None without one."""
    lines = [line for line in stderr.splitlines() if "unmatched addresses:" in line]
    if not lines:
        return None
    assert len(lines) == 1, lines
    text = lines[0].split("unmatched addresses: ", 1)[1].split(" (and ", 1)[0]
    return text.split(", ")


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("verbose") / "policies"
    result = run("from-flows", AWS, "-i", INVENTORY, "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    return str(out)


@pytest.mark.parametrize("command", ["inspect", "from-flows", "verify"])
def test_unmatched_addresses_listed_with_v_all_with_vv(
    command: str, policies: str, tmp_path: Path
) -> None:
    args = {
        "inspect": ["inspect", AWS, "-i", INVENTORY],
        "from-flows": ["from-flows", AWS, "-i", INVENTORY, "-o", str(tmp_path / "out")],
        "verify": ["verify", AWS, "--policies", policies, "-i", INVENTORY],
    }[command]
    quiet = run(*args)
    assert quiet.exit_code == 0, quiet.output
    # The count is a warning at every verbosity; the addresses only with -v.
    assert "11 address(es) matched no pod, service or node" in quiet.stderr
    assert listed(quiet.stderr) is None
    if command == "from-flows":
        args[-1] = str(tmp_path / "out-v")
    one = run(*args, "-v")
    assert one.exit_code == 0, one.output
    assert listed(one.stderr) == UNMATCHED[:10]
    assert "(and 1 more; -vv lists all)" in one.stderr
    if command == "from-flows":
        args[-1] = str(tmp_path / "out-vv")
    two = run(*args, "-vv")
    assert two.exit_code == 0, two.output
    assert listed(two.stderr) == UNMATCHED
    assert "more; -vv" not in two.stderr
    # Standard output is the same report whatever the verbosity.
    assert one.stdout == two.stdout == quiet.stdout


def test_no_inventory_no_list() -> None:
    result = run("inspect", str(SAMPLE_FLOWS / "online-shop.csv"), "-vv")
    assert result.exit_code == 0, result.output
    assert listed(result.stderr) is None


def test_the_report_carries_the_set_and_merges_it() -> None:
    import netpolgen

    report = netpolgen.IngestReport()
    flows = netpolgen.load_flows(AWS, report=report)
    netpolgen.resolve_flows(flows, netpolgen.load_inventory(INVENTORY), report=report)
    assert report.unmatched_addresses == set(UNMATCHED)
    other = netpolgen.IngestReport(unmatched_addresses={"2001:db8::1", "10.0.0.2"})
    other.merge(report)
    assert other.unmatched_addresses == {*UNMATCHED, "2001:db8::1"}
    assert other.unmatched_text(None) == (
        "inventory: unmatched addresses: " + ", ".join([*UNMATCHED, "2001:db8::1"])
    )


def test_undecided_direction_examples_only_with_v(tmp_path: Path) -> None:
    """An AWS DNS exchange (query and answer in one window, UDP: no tcp-flags) without an
    inventory: the record to the ephemeral port is left out as undecided. The summary line
    counts it at every verbosity; the example connection is printed with -v only."""
    from tests.cloud.test_aws import _dns_lines

    log = tmp_path / "flows.log"
    log.write_text("\n".join(_dns_lines("answer")) + "\n")
    reason = "direction undecided: both directions in one aggregation window, to an ephemeral port"
    plain = run("inspect", str(log))
    assert plain.exit_code == 0, plain.output
    assert f"filtered: {reason}\t1" in plain.stdout
    assert "48123" not in plain.stderr
    verbose = run("inspect", str(log), "-v")
    assert verbose.exit_code == 0, verbose.output
    assert verbose.stdout == plain.stdout
    assert f"1 {reason}" in verbose.stderr  # -v prints the summary line too
    notes = [line for line in verbose.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "direction undecided for some records" in notes[0]
    assert "48123" in notes[0]


def _icmp_flows(path: Path, pairs: int) -> Path:
    """``pairs`` distinct workload pairs that ping each other: one warning each (ICMP has no
    port NetworkPolicy can name), plus one TCP connection so that there is a policy."""
    head = "src_namespace,src_labels,dst_namespace,dst_labels,protocol,dst_port,src_port\n"
    rows = [f"shop,app=c{i},shop,app=s{i},ICMP,," for i in range(pairs)]
    rows.append("shop,app=web,shop,app=api,TCP,8080,40000")
    path.write_text(head + "\n".join(rows) + "\n")
    return path


def test_many_warnings_of_one_kind_are_counted_not_listed(tmp_path: Path) -> None:
    flows = str(_icmp_flows(tmp_path / "ping.csv", 12))
    out = tmp_path / "out"
    plain = CliRunner().invoke(cli, ["from-flows", flows, "-o", str(out)])
    assert plain.exit_code == 0, plain.output
    icmp = [line for line in plain.stderr.splitlines() if "ICMP" in line]
    assert len(icmp) == 5 and all(line.startswith("warning: shop/app=c") for line in icmp)
    assert (
        "warning: 7 more: not expressible in NetworkPolicy (only TCP, UDP and SCTP ports are)"
        "; left out (-v lists them all)" in plain.stderr.splitlines()
    )
    verbose = CliRunner().invoke(cli, ["from-flows", flows, "-o", str(tmp_path / "v"), "-v"])
    assert len([line for line in verbose.stderr.splitlines() if "ICMP" in line]) == 12
    assert "more:" not in verbose.stderr


def test_a_few_warnings_of_a_kind_are_all_listed(tmp_path: Path) -> None:
    flows = str(_icmp_flows(tmp_path / "ping.csv", 5))
    result = CliRunner().invoke(cli, ["from-flows", flows, "-o", str(tmp_path / "out")])
    assert len([line for line in result.stderr.splitlines() if "ICMP" in line]) == 5
    assert "more:" not in result.stderr
