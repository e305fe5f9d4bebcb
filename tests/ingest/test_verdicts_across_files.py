"""Verdicts across files (issue 15): records of one connection from different files are judged
together; a connection denied at either end is denied, never an allow rule, and counted once.

Documented behaviour encoded here (FORMATS.md §4 and "Measured pitfalls"; Microsoft Learn,
"Virtual network flow logs", log format): Azure writes one blob per NIC (MAC) per hour; a v4 flow
tuple is ``epoch-ms,src,dst,sport,dport,protocol,direction,state,encryption,packets S2D,bytes
S2D,packets D2S,bytes D2S``, its source is the initiator, and state ``D`` means denied. A
connection refused at the server's NIC is ``D`` there, while the client's NIC logs the attempt
going out as ``B`` (begin) and ``E`` (end).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from netpolgen import GenerateOptions, generate, generate_from_files, load_flows, resolve_flows
from netpolgen.cli import cli
from netpolgen.cluster.inventory import load_inventory
from tests.flowkit import inventory, namespace, pod

T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z in ms
PODS = {"web": "10.0.1.4", "backend": "10.0.2.5", "db": "10.0.3.6"}
MACS = {"web": "00224871C1A1", "backend": "00224871C1A2", "db": "00224871C1A3"}
PORTS = {"backend": 8080, "db": 5432}


def blob(nic: str, tuples: list[str]) -> dict[str, Any]:
    """One hour's blob of the NIC ``nic``, as Network Watcher writes it."""
    return {"records": [{
        "time": "2025-12-01T10:01:00.0000000Z", "flowLogVersion": 4,
        "flowLogGUID": "66aa66aa-6666-6666-6666-666666666666", "macAddress": MACS[nic],
        "category": "FlowLogFlowEvent", "operationName": "FlowLogFlowEvent",
        "flowLogResourceID": "/SUBSCRIPTIONS/00000000/RESOURCEGROUPS/RG/PROVIDERS/"
                             "MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/AKS",
        "targetResourceID": f"/subscriptions/00000000/resourceGroups/rg/providers/"
                            f"Microsoft.Network/networkInterfaces/{nic}-nic",
        "flowRecords": {"flows": [{"aclID": "00000000-1111-2222-3333-444444444444",
                                   "flowGroups": [{"rule": "DefaultRule_AllowVnetOutBound",
                                                   "flowTuples": tuples}]}]},
    }]}  # fmt: skip


def tup(ms: int, src: str, dst: str, sport: int, direction: str, state: str) -> str:
    counters = "0,0,0,0" if state in "BD" else "4,520,3,1800"
    dport = PORTS[dst]
    return f"{T0 + ms},{PODS[src]},{PODS[dst]},{sport},{dport},6,{direction},{state},NX,{counters}"


def three_tier_blobs() -> dict[str, dict[str, Any]]:
    """web -> backend:8080 and backend -> db:5432 allowed; web -> db:5432 refused at db's NIC."""
    return {
        "web": blob("web", [
            tup(0, "web", "backend", 41000, "O", "B"), tup(900, "web", "backend", 41000, "O", "E"),
            tup(2000, "web", "db", 41002, "O", "B"), tup(23000, "web", "db", 41002, "O", "E"),
        ]),
        "backend": blob("backend", [
            tup(1, "web", "backend", 41000, "I", "B"), tup(901, "web", "backend", 41000, "I", "E"),
            tup(100, "backend", "db", 52000, "O", "B"), tup(400, "backend", "db", 52000, "O", "E"),
        ]),
        "db": blob("db", [
            tup(101, "backend", "db", 52000, "I", "B"), tup(401, "backend", "db", 52000, "I", "E"),
            tup(2001, "web", "db", 41002, "I", "D"),
        ]),
    }  # fmt: skip


def _inventory() -> dict[str, Any]:
    items: list[dict[str, Any]] = [namespace("default")]
    for name, ip in PODS.items():
        ports = [{"containerPort": PORTS[name], "protocol": "TCP"}] if name in PORTS else []
        item = pod("default", f"{name}-0", {"app": "myapp", "role": name}, ip, ports)
        item["status"] |= {"phase": "Running", "startTime": "2025-12-01T09:00:00Z"}
        items.append(item)
    return inventory(*items)


@pytest.fixture
def written(tmp_path: Path) -> tuple[list[Path], Path]:
    paths = []
    for nic, document in three_tier_blobs().items():
        path = tmp_path / f"macAddress={MACS[nic]}" / "PT1H.json"
        path.parent.mkdir()
        path.write_text(json.dumps(document))
        paths.append(path)
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(_inventory()))
    return paths, inv


def _peers(policies: list[Any], name: str, direction: str) -> set[str]:
    found = set()
    for policy in policies:
        if policy["metadata"]["name"] != name:
            continue
        for rule in policy["spec"].get(direction, []):
            for peer in rule.get("from" if direction == "ingress" else "to", []):
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                if labels.get("app") == "myapp":  # not the DNS rule
                    found.add(labels["role"])
    return found


def test_a_connection_refused_at_the_servers_nic_is_no_allow_rule(
    written: tuple[list[Path], Path],
) -> None:
    paths, inv = written
    result = generate_from_files(paths, GenerateOptions(), inventory=[inv])
    documents = list(yaml.safe_load_all(result.to_yaml()))
    assert _peers(documents, "db-access-ingress", "ingress") == {"backend"}
    assert _peers(documents, "web-access-egress", "egress") == {"backend"}
    # Counted once, as denied: its tuple at db's NIC; web's B and E merge into one record
    # (same file) which is then a duplicate observation of the denied connection.
    assert result.report.filtered["denied verdict"] == 1


def test_every_file_order_gives_the_same_policies(written: tuple[list[Path], Path]) -> None:
    paths, inv = written
    first = generate_from_files(paths, inventory=[inv]).to_yaml()
    assert generate_from_files(paths[::-1], inventory=[inv]).to_yaml() == first
    # Loading every file into one table judges them the same way.
    flows = resolve_flows(load_flows(paths), load_inventory([inv]))
    assert generate(flows, inventory=load_inventory([inv])).to_yaml() == first


def test_tiny_chunks_give_the_same_policies(
    written: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, inv = written
    whole = generate_from_files(paths, inventory=[inv]).to_yaml()
    assert generate_from_files(paths, inventory=[inv], chunk_size=1).to_yaml() == whole


def test_verify_of_the_generated_policies_is_clean(
    written: tuple[list[Path], Path], tmp_path: Path
) -> None:
    paths, inv = written
    out = tmp_path / "out"
    runner = CliRunner()
    made = runner.invoke(cli, ["from-flows", *map(str, paths), "-i", str(inv), "-o", str(out)])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(
        cli, ["verify", "--flows", *map(str, paths), "--policies", str(out), "-i", str(inv)]
    )
    assert checked.exit_code == 0, checked.output


def test_the_client_side_alone_is_allowed_traffic(written: tuple[list[Path], Path]) -> None:
    # Without the server's blob nothing says the connection was refused: observed, so allowed.
    paths, inv = written
    result = generate_from_files(paths[:1], inventory=[inv])
    documents = list(yaml.safe_load_all(result.to_yaml()))
    assert _peers(documents, "web-access-egress", "egress") == {"backend", "db"}


def test_only_records_near_the_denial_are_judged_by_it() -> None:
    from netpolgen.ingest.collapse import DeniedConnections
    from netpolgen.ingest.report import IngestReport
    from tests import flowkit

    base = {"src": "10.0.1.4", "dst": "10.0.3.6", "src_port": 41002, "dst_port": 5432}
    flows = flowkit.flows(
        {**base, "time": "2025-12-01T10:00:00Z", "verdict": "denied"},
        {**base, "time": "2025-12-01T10:00:01Z", "verdict": "allowed"},  # the client's side
        {**base, "time": "2025-12-01T12:30:00Z", "verdict": "allowed"},  # later: a new attempt
        {**base, "time": "2025-12-01T10:00:02Z", "verdict": "allowed", "src_port": 41003},
        {**base, "verdict": "allowed"},  # no time: the same 5-tuple is the same connection
    )
    flows["time"] = flows["time"].astype("datetime64[ns, UTC]")
    denied = DeniedConnections()
    denied.collect(flows)
    report = IngestReport(records_read=5, records_used=5)
    kept = denied.apply(flows, report)
    assert kept["verdict"].astype(str).tolist() == ["denied", "allowed", "allowed"]
    assert kept["src_port"].tolist() == [41002, 41002, 41003]
    assert report.filtered == {"duplicate observation of a connection": 2}
    assert report.records_used == 3


def test_a_directory_of_blobs_is_one_input(
    written: tuple[list[Path], Path], tmp_path: Path
) -> None:
    paths, inv = written
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.json").write_text("not flows")  # hidden: left out
    tree = [p.parent for p in paths]
    from_dirs = generate_from_files(tree, inventory=[inv]).to_yaml()
    assert from_dirs == generate_from_files(paths, inventory=[inv]).to_yaml()
    runner = CliRunner()
    out = tmp_path / "out"
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for path in paths:
        target = blobs / path.parent.name / "PT1H.json"
        target.parent.mkdir()
        target.write_bytes(path.read_bytes())
    made = runner.invoke(cli, ["from-flows", str(blobs), "-i", str(inv), "-o", str(out), "-q"])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(
        cli, ["verify", "--flows", str(blobs), "--policies", str(out), "-i", str(inv), "-q"]
    )
    assert checked.exit_code == 0, checked.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(cli, ["from-flows", str(empty)])
    assert refused.exit_code == 1 and "directory holds no flow file" in refused.stderr


def test_the_flows_annotation_counts_a_connection_once_per_file(
    written: tuple[list[Path], Path], tmp_path: Path
) -> None:
    """Documented (README, policy/synthesize.py): web -> backend and backend -> db are each
    logged by both ends' NICs, a blob per NIC: ``netpolgen.io/flows`` is 2 for each policy from
    the three blobs, 1 from one blob holding all their records; the policies are the same."""
    paths, inv = written
    records = [r for p in paths for r in json.loads(p.read_text())["records"]]
    one = tmp_path / "one" / "PT1H.json"
    one.parent.mkdir()
    one.write_text(json.dumps({"records": records}))
    blobs = generate_from_files(paths, inventory=[inv])
    single = generate_from_files([one], inventory=[inv])
    counts = {p.name: dict(p.annotations)["netpolgen.io/flows"] for p in blobs.policies}
    assert set(counts.values()) == {"2"} and len(counts) == 4
    assert {dict(p.annotations)["netpolgen.io/flows"] for p in single.policies} == {"1"}
    assert blobs.policies == single.policies  # annotations aside (Policy equality)
