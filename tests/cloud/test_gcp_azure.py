"""Property tests: GCP and Azure renderings of random clusters give the labelled CSV's policies.

The renderers (``tests/cloud/gcp.py``, ``tests/cloud/azure.py``) follow the providers'
documentation; the reference is the labelled CSV of the same connections
(``tests/cloud/model.labelled_csv``), without what VPC-level logs never see (traffic between two
pods of one node: a documented loss of every provider). Checked on each drawn cluster:

* the policies are the reference's (the same NetworkPolicies, annotations aside);
* no denied connection is allowed by them (Azure: ``D`` at the server's NIC judged with the
  client's ``B``/``E`` in another blob; GCP: the network policy log's ``deny`` judged with the
  VPC records of the request);
* no rule is on a port that is not a server's (no client's ephemeral port becomes a rule).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, assume, given, settings

from netpolgen import generate_from_files, load_inventory, verify
from netpolgen.ingest import load_flows
from tests import flowkit
from tests.cloud import azure, gcp
from tests.cloud.model import Cluster, clusters, inventory, labelled_csv, random_cluster

SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _on_the_wire(cluster: Cluster) -> Cluster:
    """A draw whose every connection is between pods of one node puts nothing on the wire: no
    provider logs anything (and an empty input is an error), so there is nothing to compare."""
    assume(any(not c.node_local for c in cluster.connections))
    return cluster


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _check(
    cluster: Cluster, root: Path, rendered: Path, *, same: bool = True, ports: bool = True
) -> None:
    inv = root / "inventory.json"
    inv.write_text(json.dumps(inventory(cluster)))
    reference_csv = root / "reference.csv"
    reference_csv.write_text(labelled_csv(cluster, include_node_local=False))
    reference = generate_from_files([reference_csv], inventory=[inv])
    got = generate_from_files([rendered], inventory=[inv])
    if same:
        assert got.policies == reference.policies, (got.to_yaml(), reference.to_yaml())
    # No denied connection is allowed by a rule: replay them, as if observed allowed, against the
    # policies plus a deny-all in every namespace (so that an end no policy isolates is denied
    # unless a rule admits the connection).
    denied = pd.read_csv(reference_csv)
    denied = denied[denied["verdict"] == "denied"].assign(verdict="allowed")
    if len(denied):
        replay = root / "denied.csv"
        denied.to_csv(replay, index=False)
        deny_all = flowkit.policies("".join(
            f"---\nmetadata: {{name: deny-all, namespace: {ns}}}\n"
            "spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n"
            for ns in cluster.namespaces
        ))  # fmt: skip
        policies = [*got.policies, *deny_all]
        report = verify(load_flows(replay), policies, load_inventory([inv]))
        assert report.counts["flows_allowed"] == 0, report.edges
    servers = {c.server_port for c in cluster.connections}
    for policy in got.policies if ports else ():
        manifest = policy.to_manifest()["spec"]
        for rule in [*manifest.get("ingress", []), *manifest.get("egress", [])]:
            for port in rule.get("ports", []):
                assert port.get("port") in servers, (port, servers)


@SETTINGS
@given(clusters())
def test_azure_blobs_per_nic_give_the_reference_policies(cluster: Cluster) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _on_the_wire(cluster)
        _write(root / "blobs", azure.render(cluster, seed=cluster.seed))
        _check(cluster, root, root / "blobs")


@SETTINGS
@given(clusters())
def test_gcp_reporters_and_policy_logs_give_the_reference_policies(cluster: Cluster) -> None:
    # GCP's records are aggregated over 5 s: a connection whose both directions fall in one
    # window, to a server port that no inventory declares and in the ephemeral range (gRPC's
    # 50051), has no direction to be read from the log, and is left out by design (rule d of
    # netpolgen.reduce.direction, counted as undecided). Such draws (random_cluster(17627165):
    # one app1 -> app4:50051 connection, undeclared) are the documented loss, not a mismatch.
    assume(not _undecidable_on_gcp(cluster))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _on_the_wire(cluster)
        _write(root / "gcp", gcp.render(cluster, seed=cluster.seed))
        _check(cluster, root, root / "gcp")


def _undecidable_on_gcp(cluster: Cluster) -> bool:
    """Whether a connection on the wire goes to an undeclared server port in the ephemeral range
    that fewer than MIN_FAN logged connections reach (no evidence of a server there either:
    connections between pods of one node are never logged)."""
    from netpolgen.reduce.direction import EPHEMERAL_LOW, MIN_FAN

    pods = {f"{pod.namespace}/{pod.name}": pod for pod in cluster.pods}
    wire = [c for c in cluster.connections if not c.node_local]
    fan: dict[tuple[str, str, int], int] = {}
    for c in wire:
        end = (c.server, c.protocol, c.server_port)
        fan[end] = fan.get(end, 0) + 1
    for c in wire:
        declared = {(p.protocol, p.port) for p in pods[c.server].ports}
        if (
            c.server_port >= EPHEMERAL_LOW
            and (c.protocol, c.server_port) not in declared
            and fan[(c.server, c.protocol, c.server_port)] < MIN_FAN
        ):
            return True
    return False


@SETTINGS
@given(clusters())
def test_gcp_sampled_records_never_allow_a_denied_connection(cluster: Cluster) -> None:
    # Sampling loses records (a documented loss: a connection can vanish, and a reply whose
    # request records were all sampled away has no direction of its own); denials still hold.
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _on_the_wire(cluster)
        _write(root / "gcp", gcp.render(cluster, seed=cluster.seed, sample=0.3))
        _check(cluster, root, root / "gcp", same=False, ports=False)


@SETTINGS
@given(clusters())
def test_gcp_sampled_records_put_no_rule_on_an_ephemeral_port(cluster: Cluster) -> None:
    """A reply whose request records were all sampled away leaves no rule on the client's port:
    a declared server port (containerPort, Service targetPort) makes it a reply (rule b); an
    undeclared one leaves it undecided, one direction seen in GCP's aggregation window, to an
    ephemeral port (rule d with the window the reader sets), so it is left out."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _on_the_wire(cluster)
        _write(root / "gcp", gcp.render(cluster, seed=cluster.seed, sample=0.3))
        _check(cluster, root, root / "gcp", same=False)


def test_gcp_lone_reply_of_an_undeclared_server_is_no_rule() -> None:
    """The draw that found it: app1 listens on UDP 8125 without declaring it; with 60 % of the
    records sampled away one connection is left with its reply (8125 -> the client's 56676)
    only. Without GCP's window that reply was taken for a request: a rule on UDP 56676."""
    cluster = random_cluster(1013)
    assert any(p.port == 8125 for pod in cluster.pods for p in pod.undeclared)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write(root / "gcp", gcp.render(cluster, seed=cluster.seed, sample=0.6))
        _check(cluster, root, root / "gcp", same=False)


def test_azure_layout_and_tuples_follow_the_documentation(tmp_path: Path) -> None:
    cluster = random_cluster(3, workloads=4, nodes=3, connections=30, denied=0.5)
    blobs = azure.render(cluster)
    assert blobs, "a cluster over three nodes logs something"
    for path, text in blobs.items():
        assert path.startswith(f"flowLogResourceID={azure.FLOW_LOG}/y=")
        assert "/m=00/macAddress=" in path and path.endswith("/PT1H.json")
        for record in json.loads(text)["records"]:
            assert record["flowLogVersion"] == 4 and record["category"] == "FlowLogFlowEvent"
            for flow in record["flowRecords"]["flows"]:
                for group in flow["flowGroups"]:
                    for text_tuple in group["flowTuples"]:
                        fields = text_tuple.split(",")
                        assert len(fields) == 13 and fields[6] in "IO" and fields[7] in "BCED"
                        if fields[7] == "B":
                            assert fields[9:] == ["0", "0", "0", "0"]
    denied = [c for c in cluster.connections if c.denied and not c.node_local]
    assert denied, "the seed draws refused connections"
    c = denied[0]
    server_ip = cluster.pod(c.server).ip
    states = {
        (t.split(",")[6], t.split(",")[7])
        for text in blobs.values()
        for record in json.loads(text)["records"]
        for flow in record["flowRecords"]["flows"]
        for group in flow["flowGroups"]
        for t in group["flowTuples"]
        if t.split(",")[3] == str(c.client_port) and t.split(",")[2] == server_ip
    }
    assert states == {("O", "B"), ("O", "E"), ("I", "D")}


def test_gcp_one_connection_to_an_undeclared_ephemeral_server_port_is_left_out() -> None:
    """The draw that found it: app1 -> app4:50051 (gRPC, not declared as a containerPort) is
    the only logged connection to that port, and GCP logs its two directions in one 5 s window:
    nothing says which end listened, so both records are left out as undecided, and no rule
    names either port (the other connections to app4 are between pods of one node: unlogged)."""
    cluster = random_cluster(17627165)
    assert _undecidable_on_gcp(cluster)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write(root / "gcp", gcp.render(cluster, seed=cluster.seed))
        inv = root / "inventory.json"
        inv.write_text(json.dumps(inventory(cluster)))
        got = generate_from_files([root / "gcp"], inventory=[inv])
    undecided = (
        "direction undecided: both directions in one aggregation window, to an ephemeral port"
    )
    assert got.report.filtered[undecided] == 2
    assert "50051" not in got.to_yaml() and "35833" not in got.to_yaml()
