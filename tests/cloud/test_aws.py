"""AWS VPC Flow Logs as AWS writes them (tests/cloud/aws.py) give the policies of the traffic.

Each test names the documented behaviour it encodes; the renderer is written from AWS's
documentation (FORMATS.md §2, the VPC user guide), not from netpolgen's reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.generator import generate_from_files
from netpolgen.reduce.direction import EPHEMERAL_LOW
from tests.cloud.aws import ACCOUNT, V5_FIELDS, render, write
from tests.cloud.model import (
    EPOCH,
    Cluster,
    Connection,
    ContainerPort,
    Node,
    Pod,
    Service,
    ServicePort,
    inventory,
    labelled_csv,
    random_cluster,
)


def _policies(text: str) -> list[dict[str, Any]]:
    """The documents without their evidence annotations (counts and times differ by design:
    AWS aggregates records over windows and logs each connection at both ENIs)."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    for document in documents:
        document["metadata"].pop("annotations", None)
    return documents


def _run(cluster: Cluster, tmp: Path, version: str, seed: int, **options: Any) -> tuple[Any, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "inventory.json").write_text(json.dumps(inventory(cluster)))
    (tmp / "flows.csv").write_text(labelled_csv(cluster, include_node_local=False))
    paths = write(cluster, tmp / version, version, seed=seed, **options)
    reference = generate_from_files([tmp / "flows.csv"], inventory=[tmp / "inventory.json"])
    aws = generate_from_files(paths, inventory=[tmp / "inventory.json"])
    return reference, aws


def _rule_ports(documents: list[dict[str, Any]]) -> set[int]:
    ports = set()
    for document in documents:
        for key in ("ingress", "egress"):
            for rule in document["spec"].get(key, []):
                ports |= {int(p["port"]) for p in rule.get("ports", []) if "port" in p}
    return ports


def _rules(documents: list[dict[str, Any]]) -> set[tuple[str, str, str, int]]:
    """Each (policy, direction, peer, port) a policy allows."""
    out = set()
    for document in documents:
        name = f"{document['metadata']['namespace']}/{document['metadata']['name']}"
        for key, side in (("ingress", "from"), ("egress", "to")):
            for rule in document["spec"].get(key, []):
                for peer in rule.get(side, []):
                    for port in rule.get("ports", []):
                        out.add((name, key, json.dumps(peer, sort_keys=True), int(port["port"])))
    return out


def _declared(cluster: Cluster) -> set[int]:
    return {p.port for pod in cluster.pods for p in pod.ports} | {
        p.target_port for s in cluster.services for p in s.ports
    }


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    version=st.sampled_from(["v3-no-flags", "v3", "v5"]),
    width=st.sampled_from([60, 600]),
)
def test_aws_rendering_gives_the_labelled_csv_policies(
    tmp_path: Path, seed: int, version: str, width: int
) -> None:
    """Per-ENI records in both directions, windowed (60 s Nitro, 600 s default) with 0-60 s of
    delay on start/end, shuffled within and across files, tcp-flags (v3, v5) or none
    (v3-no-flags, and UDP always): with the inventory, the same policies as the labelled CSV of
    the same traffic less node-local connections (which no ENI sees). So no denied connection
    is allowed (the CSV has them denied) and no rule is on a port no pod declares unless the
    traffic really went there."""
    cluster = random_cluster(seed)
    reference, aws = _run(cluster, tmp_path / f"{seed}-{version}-{width}", version, seed,
                          width=width)  # fmt: skip
    # Documented loss: a server that declares no port, listens in the ephemeral range and is
    # reached once or twice, without tcp-flags, is undecidable (no record, inventory or count
    # says who listens): its records are left out, counted, never a rule on a client's port.
    undecidable = {
        p.port for pod in cluster.pods for p in pod.undeclared if p.port >= EPHEMERAL_LOW
    }
    found, wanted = _rules(_policies(aws.to_yaml())), _rules(_policies(reference.to_yaml()))
    assert found <= wanted
    assert {rule[-1] for rule in wanted - found} <= undecidable
    if not undecidable:
        assert _policies(aws.to_yaml()) == _policies(reference.to_yaml())
    undeclared = {p.port for pod in cluster.pods for p in pod.undeclared}
    assert _rule_ports(_policies(aws.to_yaml())) <= _declared(cluster) | undeclared


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**31 - 1), version=st.sampled_from(["v2", "v3-no-flags", "v5"]))
def test_without_an_inventory_no_rule_is_on_an_ephemeral_port(
    tmp_path: Path, seed: int, version: str
) -> None:
    """Without an inventory only the records and the whole input decide (rules a, c, d): a
    record still undecided is left out, never a rule on an ephemeral port (Linux clients take
    32768-60999), and no denied connection is allowed (the server's ENI logs it REJECT)."""
    cluster = random_cluster(seed)
    paths = write(cluster, tmp_path / f"{seed}-{version}", version, seed=seed)
    edges = generate_from_files(paths).edges  # addresses only: edges, not policies
    listening = _declared(cluster) | {p.port for pod in cluster.pods for p in pod.undeclared}
    for port in edges["dst_port"].dropna().astype(int):
        assert port < EPHEMERAL_LOW or port in listening, port
    found = set(zip(edges["src"], edges["dst"], edges["dst_port"].astype("Int64"), strict=True))
    allowed = {(c.client, c.server, c.server_port) for c in cluster.connections if not c.denied}
    for c in cluster.connections:
        if c.denied and (c.client, c.server, c.server_port) not in allowed:
            a, b = cluster.pod(c.client), cluster.pod(c.server)
            assert (f"ip:{a.ip}", f"ip:{b.ip}", c.server_port) not in found


# --- The DNS case of issue 15: CoreDNS's UDP 53 answer and the client's query in one window.


def _dns_cluster() -> Cluster:
    nodes = (
        Node("ip-10-0-0-10.ec2.internal", "10.0.0.10", "i-00000000000000001", "eni-001"),
        Node("ip-10-0-1-10.ec2.internal", "10.0.1.10", "i-00000000000000002", "eni-002"),
    )
    dns = Pod("kube-system", "coredns-7db6d8ff4d-abcde", "coredns",
              (("k8s-app", "kube-dns"), ("pod-template-hash", "7db6d8ff4d")), "10.0.0.21",
              nodes[0].name, (ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp")),
              template_hash="7db6d8ff4d")  # fmt: skip
    web = Pod("shop", "web-5d9c7b8f6-xk2qz", "web",
              (("app", "web"), ("pod-template-hash", "5d9c7b8f6")), "10.0.1.21", nodes[1].name,
              (ContainerPort(8080, "TCP", "http"),))  # fmt: skip
    service = Service("kube-system", "kube-dns", (("k8s-app", "kube-dns"),), "172.20.0.10",
                      (ServicePort(53, 53, "UDP", "dns"),))  # fmt: skip
    query = Connection(f"{web.namespace}/{web.name}", f"{dns.namespace}/{dns.name}", "UDP",
                       48123, 53, EPOCH + 30.0, 0.002, 1, 1, 74, 120)  # fmt: skip
    return Cluster(nodes, (dns, web), (service,), (query,), ("kube-system", "shop"))


def _dns_lines(first: str) -> list[str]:
    """The two records of one DNS exchange that web's ENI (eni-002) writes in one window, v5,
    both with the same start/end (within the second): the answer first or the query first."""
    values = {f: "-" for f in V5_FIELDS}
    values.update({"version": "5", "protocol": "17", "type": "IPv4", "packets": "1",
                   "account-id": ACCOUNT, "interface-id": "eni-002",
                   "instance-id": "i-00000000000000002", "action": "ACCEPT", "tcp-flags": "0",
                   "start": str(EPOCH + 60), "end": str(EPOCH + 60),
                   "log-status": "OK"})  # fmt: skip
    query = {**values, "srcaddr": "10.0.1.10", "dstaddr": "10.0.0.21", "srcport": "48123",
             "dstport": "53", "pkt-srcaddr": "10.0.1.21", "pkt-dstaddr": "10.0.0.21",
             "bytes": "74", "flow-direction": "egress", "traffic-path": "1"}  # fmt: skip
    answer = {**values, "srcaddr": "10.0.0.21", "dstaddr": "10.0.1.10", "srcport": "53",
              "dstport": "48123", "pkt-srcaddr": "10.0.0.21", "pkt-dstaddr": "10.0.1.21",
              "bytes": "120", "flow-direction": "ingress"}  # fmt: skip
    pair = [answer, query] if first == "answer" else [query, answer]
    return [" ".join(V5_FIELDS)] + [" ".join(r[f] for f in V5_FIELDS) for r in pair]


@pytest.mark.parametrize("first", ["answer", "query"])
def test_dns_answer_in_the_same_window_is_not_a_rule(tmp_path: Path, first: str) -> None:
    """UDP has no tcp-flags; the ENI logs the query (web:48123 -> CoreDNS:53) and the answer
    (CoreDNS:53 -> web:48123) as two records of one window, in either order. CoreDNS declares
    53/UDP: the query is the request, whichever comes first. Before issue 15 the answer
    listed first became a rule on 48123 and the query lost its rule."""
    cluster = _dns_cluster()
    (tmp_path / "inventory.json").write_text(json.dumps(inventory(cluster)))
    log = tmp_path / "flows.log"
    log.write_text("\n".join(_dns_lines(first)) + "\n")
    result = generate_from_files([log], inventory=[tmp_path / "inventory.json"])
    documents = {d["metadata"]["name"]: d for d in _policies(result.to_yaml())}
    ingress = documents["coredns-access-ingress"]["spec"]["ingress"]
    assert ingress == [
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                   "podSelector": {"matchLabels": {"app": "web"}}}],
         "ports": [{"protocol": "UDP", "port": 53}]}
    ]  # fmt: skip
    assert 48123 not in _rule_ports(list(documents.values()))
    assert result.report.filtered["reply traffic"] == 1


@pytest.mark.parametrize("first", ["answer", "query"])
def test_dns_pair_without_an_inventory_keeps_the_query_only(tmp_path: Path, first: str) -> None:
    """Without an inventory, one exchange in one window gives no evidence of who asked: the
    record to the ephemeral port (48123) is left out and counted, the one to 53 is kept."""
    log = tmp_path / "flows.log"
    log.write_text("\n".join(_dns_lines(first)) + "\n")
    result = generate_from_files([log])
    assert result.edges[["src", "dst", "dst_port"]].values.tolist() == [
        ["ip:10.0.1.21", "ip:10.0.0.21", 53]
    ]
    reasons = dict(result.report.filtered)
    assert (
        reasons.get(
            "direction undecided: both directions in one aggregation window, to an ephemeral port"
        )
        == 1
    )
    assert any("direction undecided" in m and "48123" in m for m in result.report.details)
    assert not any("direction undecided" in m for m in result.report.messages)


def test_many_clients_make_a_server_without_an_inventory(tmp_path: Path) -> None:
    """Rule (c): CoreDNS:53 answers many clients' ports; each client port is seen once. With no
    inventory and no flags, the answers (to ephemeral ports) are replies, the queries requests."""
    cluster = random_cluster(11, workloads=4, connections=40)
    paths = write(cluster, tmp_path / "v3", "v3-no-flags", seed=11)
    result = generate_from_files(paths)
    ports = set(result.edges["dst_port"].dropna().astype(int))
    assert 53 in ports
    assert (
        not {p for p in ports if p >= EPHEMERAL_LOW}
        - _declared(cluster)
        - {p.port for pod in cluster.pods for p in pod.undeclared}
    )


def test_the_renderer_writes_what_the_docs_describe() -> None:
    """The renderer itself: v2 shows the ENI's primary address for pod (secondary) IPs; every
    connection across nodes has a request and a response record at both ENIs; node-local
    connections are absent; the first window's TCP records carry SYN (2) and SYN-ACK (18)."""
    cluster = random_cluster(5, connections=20, denied=0.0)
    v2 = [line for lines in render(cluster, "v2", seed=5, nodata=0) for line in lines]
    node_ips = {n.ip for n in cluster.nodes}
    for line in v2:
        if line.startswith("version"):
            continue
        fields = line.split()
        assert fields[3] in node_ips or fields[4] in node_ips  # srcaddr or dstaddr: the ENI's
    v5 = [line.split() for lines in render(cluster, "v5", seed=5, nodata=0) for line in lines]
    rows = [dict(zip(V5_FIELDS, f, strict=True)) for f in v5 if f[0] != "version"]
    crossing = [c for c in cluster.connections if not c.node_local]
    assert (
        len({(r["pkt-srcaddr"], r["srcport"], r["interface-id"]) for r in rows})
        >= 4 * len({(c.client, c.client_port) for c in crossing}) // 2
    )
    local = [c for c in cluster.connections if c.node_local]
    for c in local:
        assert not any(r["srcport"] == str(c.client_port) for r in rows)
    flags = {r["tcp-flags"] for r in rows if r["protocol"] == "6"}
    assert {"2", "18"} <= {str(int(f) & 18) for f in flags} | flags
